import ArgumentParser
import Foundation

/// What the argument parser leaves to us: an option given twice, the nearest real flag for an
/// unknown one, and one-line messages. A command's options are read from its help text, so
/// they are exactly the ones the parser accepts.
enum ArgumentCheck {
    /// The command the arguments select (the deepest subcommand named), and `eval`'s default.
    static func command(for arguments: [String]) -> ParsableCommand.Type {
        var current: ParsableCommand.Type = Llava.self
        for argument in arguments where !argument.hasPrefix("-") {
            guard let next = current.configuration.subcommands.first(where: { $0._commandName == argument }) else { break }
            current = next
        }
        return current.configuration.defaultSubcommand ?? current
    }

    /// An option of a command as its help lists it: every spelling, and whether a value follows.
    struct OptionName {
        var first: String
        /// The `--` spelling, when the option has one.
        var long: String?
        var takesValue: Bool
    }

    /// Every option spelling of `command` ("-m", "--model"), with the first spelling of its
    /// help line standing for the option.
    static func optionNames(of command: ParsableCommand.Type) -> [String: OptionName] {
        let help = Llava.helpMessage(for: command, columns: 10_000)
        var names: [String: OptionName] = [:]
        var inOptions = false
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasSuffix("OPTIONS:") || line.hasSuffix("ARGUMENTS:") { inOptions = line.hasSuffix("OPTIONS:"); continue }
            let trimmed = line.drop(while: { $0 == " " })
            guard inOptions, trimmed.hasPrefix("-"), line.hasPrefix("  ") else { continue }
            var spellings: [String] = []
            var takesValue = false
            for word in trimmed.split(separator: " ") {
                if word.hasPrefix("<") { takesValue = true }
                let name = word.hasSuffix(",") ? word.dropLast() : word[...]
                guard name.hasPrefix("-") else { break }
                spellings.append(String(name))
            }
            let long = spellings.first { $0.hasPrefix("--") }
            for spelling in spellings { names[spelling] = OptionName(first: spellings[0], long: long, takesValue: takesValue) }
        }
        return names
    }

    /// The arguments with every negative number that follows an option taking a value joined
    /// to it (`--ratio -1` → `--ratio=-1`, `-t -1` → `--threads=-1`), so that the parser reads
    /// it as the value, not as a flag, and the command's own check reports the bad value.
    static func joiningNegativeValues(_ arguments: [String]) -> [String] {
        let names = optionNames(of: command(for: arguments))
        var out: [String] = []
        var k = 0
        while k < arguments.count {
            let argument = arguments[k]
            k += 1
            if argument == "--" {
                out += arguments[(k - 1)...]
                break
            }
            if let option = names[argument], option.takesValue, let long = option.long, k < arguments.count,
               isNegativeNumber(arguments[k]) {
                out.append(long + "=" + arguments[k])
                k += 1
            } else {
                out.append(argument)
            }
        }
        return out
    }

    /// "-1", "-0.5", ".5"-style and "-inf"/"-nan" values, and comma lists starting with one.
    static func isNegativeNumber(_ text: String) -> Bool {
        guard text.hasPrefix("-"), text.count > 1 else { return false }
        let first = text.split(separator: ",", omittingEmptySubsequences: false)[0]
        return Double(first) != nil
    }

    /// Throws when `llava help` names a command that does not exist (the parser would print the
    /// top-level help and succeed).
    static func rejectUnknownHelpTopic(_ arguments: [String]) throws {
        guard arguments.first == "help" else { return }
        var current: ParsableCommand.Type = Llava.self
        var path = "llava"
        for name in arguments.dropFirst() where !name.hasPrefix("-") {
            let subcommands = current.configuration.subcommands
            guard let next = subcommands.first(where: { $0._commandName == name }) else {
                let names = subcommands.map { $0._commandName }.joined(separator: ", ")
                throw ValidationError("no command \(path) \(name)" + (names.isEmpty ? "" : " (commands: \(names))"))
            }
            current = next
            path += " " + name
        }
    }

    /// Throws when an option is unknown (naming the nearest real one), or given more than once
    /// (a later value would silently replace the first).
    static func rejectUnknownAndRepeatedOptions(_ arguments: [String]) throws {
        if arguments.contains(where: { $0.hasPrefix("--experimental") || $0.hasPrefix("--generate-completion") }) { return }
        let command = command(for: arguments)
        let names = optionNames(of: command)
        var seen: [String: String] = [:]
        var k = 0
        while k < arguments.count {
            let argument = arguments[k]
            k += 1
            if argument == "--" { break }
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            let spelling = parts.first ?? argument
            guard let option = names[spelling] else {
                if argument.hasPrefix("--") && argument.count > 2 && spelling != "--version" {
                    throw ValidationError(unknownOption(spelling, command: command, names: names))
                }
                continue
            }
            if option.takesValue && parts.count == 1 { k += 1 }
            if let first = seen[option.first] {
                let same = first == spelling ? "\(spelling) is given twice" : "\(first) and \(spelling) are the same option"
                throw ValidationError("\(same); give it once")
            }
            seen[option.first] = spelling
        }
    }

    static func unknownOption(_ name: String, command: ParsableCommand.Type, names: [String: OptionName]) -> String {
        let path = command == Llava.self ? "llava" : "llava " + commandPath(command)
        if let nearest = nearest(to: name, among: Array(names.keys)) {
            return "unknown option \(name) for \(path); did you mean \(nearest)?"
        }
        return "unknown option \(name) for \(path) (see \(path) --help)"
    }

    /// A parse or validation error as one line; an unknown option suggests the nearest real one.
    static func message(for error: Error, arguments: [String]) -> String {
        let text = Llava.message(for: error)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        if let first = lines.first, first.hasPrefix("Unknown option '"),
           let name = first.dropFirst("Unknown option '".count).split(separator: "'").first.map(String.init) {
            let command = command(for: arguments)
            return unknownOption(name, command: command, names: optionNames(of: command))
        }
        if let choice = invalidChoice(text) { return choice }
        return lines.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// The parser's message for a value outside an option's list ("The value 'foo' is invalid
    /// for '--merge <merge>'. Please provide one of the following: …") as one line:
    /// "--merge must be none, pitome, … or fastv, got foo".
    static func invalidChoice(_ text: String) -> String? {
        guard text.hasPrefix("The value '"), let forRange = text.range(of: "' is invalid for '"),
              let listRange = text.range(of: ". Please provide one of ") else { return nil }
        let value = text[text.index(text.startIndex, offsetBy: "The value '".count)..<forRange.lowerBound]
        let option = text[forRange.upperBound...].prefix { $0 != " " && $0 != "'" }
        let list = text[listRange.upperBound...]
        var choices: [String]
        if list.hasPrefix("the following:") {
            choices = list.split(separator: "\n").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { $0.hasPrefix("- ") }.map { String($0.dropFirst(2)) }
        } else {
            choices = list.split(separator: "'", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
        }
        guard !choices.isEmpty else { return nil }
        let last = choices.removeLast()
        let rule = choices.isEmpty ? last : choices.joined(separator: ", ") + " or " + last
        return "\(option) must be \(rule), got \(value)"
    }

    /// "eval run" for EvalRun.
    static func commandPath(_ command: ParsableCommand.Type) -> String {
        func find(_ type: ParsableCommand.Type, _ path: [String]) -> [String]? {
            if type == command { return path }
            for sub in type.configuration.subcommands {
                if let found = find(sub, path + [sub._commandName]) { return found }
            }
            return nil
        }
        return (find(Llava.self, []) ?? [command._commandName]).joined(separator: " ")
    }

    /// The closest long option by edit distance, when it is close enough to be a likely typo
    /// or a name from another tool.
    static func nearest(to name: String, among candidates: [String]) -> String? {
        let typed = name.drop(while: { $0 == "-" })
        var best: (name: String, distance: Int)?
        for candidate in candidates.sorted() where candidate.hasPrefix("--") {
            let d = editDistance(Array(typed), Array(candidate.dropFirst(2)))
            if best == nil || d < best!.distance { best = (candidate, d) }
        }
        guard let best, best.distance <= max(2, typed.count / 3) else { return nil }
        return best.name
    }

    /// Edit distance with insertions, deletions, substitutions and swaps of two neighbouring
    /// characters costing 1 each (optimal string alignment), so `--tmep` is one edit from `--temp`.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
