import ArgumentParser

/// A command whose help ends with example command lines. They are printed after the help
/// text, not inside it, so that each stays on one line at any terminal width (the help text is
/// wrapped at the terminal's width, which would break a command in the middle) and can be
/// copied whole.
protocol Exemplified {
    static var examples: [String] { get }
}

enum HelpExamples {
    /// The command whose help the arguments ask for (`llava`, `llava eval run --help`,
    /// `llava help eval run`), or nil when they do not ask for help.
    static func command(for arguments: [String]) -> ParsableCommand.Type? {
        let asksForHelp = arguments.isEmpty || arguments.first == "help" || arguments.contains("-h") || arguments.contains("--help")
        guard asksForHelp, !arguments.contains("--version") else { return nil }
        var current: ParsableCommand.Type = Llava.self
        for argument in arguments.drop(while: { $0 == "help" }) where !argument.hasPrefix("-") {
            guard let next = current.configuration.subcommands.first(where: { $0._commandName == argument }) else { break }
            current = next
        }
        return current
    }

    /// "Examples:" and one indented line per example; empty for a command without examples.
    static func section(for command: ParsableCommand.Type) -> String {
        guard let examples = (command as? Exemplified.Type)?.examples, !examples.isEmpty else { return "" }
        return "\nExamples:\n" + examples.map { "  " + $0 + "\n" }.joined()
    }
}
