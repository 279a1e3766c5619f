/// The two official readers that turn a free-form answer into an option letter for MMBench.
public enum ChoiceReader {
    /// Letters and option texts of one row, in letter order.
    public typealias Choices = [(letter: String, text: String)]

    static func isLetter(_ s: String, in choices: Choices) -> Bool { choices.contains { $0.letter.pyEquals(s) } }

    // MARK: VLMEvalKit (`can_infer`: option letter, else option text)

    static let refusals = ["Sorry, I can't help with images of people yet.", "I can't process this file.",
                           "I'm sorry, but without the image provided", "Cannot determine the answer"]

    /// VLMEvalKit's exact-matching reading; nil when it cannot tell (the row then fails).
    /// "Z" is its answer for refusals, never a valid option.
    public static func vlmEvalKit(_ answer: String, _ choices: Choices) -> String? {
        if let letter = vlmEvalKitOption(answer, choices) { return letter }
        return vlmEvalKitText(answer, choices)
    }

    static func vlmEvalKitOption(_ answer: String, _ choices: Choices) -> String? {
        if answer.pythonContains("Failed to obtain answer via API") { return nil }
        if refusals.contains(where: { answer.pythonContains($0) }) { return "Z" }
        var modified = answer
        for c in ".()[],:;!*#{}" { modified = modified.pythonReplacing(String(c), with: " ") }
        let splits = modified.pythonSplit().map { $0.pythonStripped() }
        func has(_ s: String) -> Bool { splits.contains { $0.pyEquals(s) } }
        let count = choices.filter { has($0.letter) }.count
        if count == 1 {
            for c in choices where has(c.letter) {
                let first = splits.firstIndex { $0.pyEquals(c.letter) }!
                if first > splits.count - 5 { return c.letter }
            }
        } else if count == 0 && has("Z") {
            return "Z"
        }
        if let letter = verboseAnswer(answer), isLetter(letter, in: choices) { return letter }
        return nil
    }

    /// `(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**`: the first match's letter, uppercased.
    static func verboseAnswer(_ text: String) -> String? {
        let s = Array(text.unicodeScalars)
        let word = Array("answer".unicodeScalars), isWord = Array("is".unicodeScalars)
        func matchesFolded(_ at: Int, _ w: [Unicode.Scalar]) -> Bool {
            guard at + w.count <= s.count else { return false }
            for (k, c) in w.enumerated() where !Self.foldEquals(s[at + k], c) { return false }
            return true
        }
        func spaces(_ at: Int) -> Int {
            var j = at
            while j < s.count, s[j].isRegexSpace { j += 1 }
            return j
        }
        var start = 0
        while start < s.count {
            // The optional "correct\s+" prefix never changes which letter the first match takes.
            if matchesFolded(start, word) {
                var j = start + word.count
                let afterAnswer = spaces(j)
                if afterAnswer > j, matchesFolded(afterAnswer, isWord) {
                    j = afterAnswer + isWord.count
                    let afterIs = spaces(j)
                    if afterIs > j {
                        var k = afterIs
                        while k < s.count, s[k] == "*" { k += 1 }
                        // Backtracking over the stars cannot produce a letter, so the greedy reading decides.
                        if k < s.count, let letter = Self.caseInsensitiveABCD(s[k]) { return letter }
                    }
                }
            }
            start += 1
        }
        return nil
    }

    static func foldEquals(_ a: Unicode.Scalar, _ lowerASCII: Unicode.Scalar) -> Bool {
        if a == lowerASCII { return true }
        if a.value < 0x80 { return a.value + 32 == lowerASCII.value && a.value >= 0x41 && a.value <= 0x5A }
        // Python's IGNORECASE also folds the Kelvin sign to k and long s to s.
        if lowerASCII == "k" && a.value == 0x212A { return true }
        if lowerASCII == "s" && a.value == 0x017F { return true }
        return false
    }

    static func caseInsensitiveABCD(_ c: Unicode.Scalar) -> String? {
        switch c.value {
        case 0x41...0x44: String(c)
        case 0x61...0x64: String(Unicode.Scalar(c.value - 32)!)
        default: nil
        }
    }

    static func vlmEvalKitText(_ answer: String, _ choices: Choices) -> String? {
        let lowered = answer.pythonLowercased()
        let total = choices.reduce(0) { $0 + $1.text.pythonCount }
        if lowered.pythonCount > 2 * total { return nil }
        let hits = choices.filter { lowered.pythonContains($0.text.pythonLowercased()) }
        return hits.count == 1 ? hits[0].letter : nil
    }

    // MARK: lmms-eval (`MMBench_Evaluator.can_infer`, then `extract_mcq_answer` in static mode)

    static let lmmsLetters = ["A", "B", "C", "D", "E"]

    /// lmms-eval's prefetch reading (letter among A–E, else option text).
    public static func lmmsPrefetch(_ answer: String, _ choices: Choices) -> String? {
        if let letter = lmmsOption(answer) { return letter }
        return vlmEvalKitTextWithoutLengthLimit(answer, choices)
    }

    static func lmmsOption(_ answer: String) -> String? {
        if answer.pythonContains("Failed to obtain answer via API") { return nil }
        let splits = answer.pythonSplit().map { $0.pythonStripped() }
        func count(_ prefix: String, _ suffix: String) -> Int {
            lmmsLetters.filter { l in splits.contains { $0.pyEquals(prefix + l + suffix) } }.count
        }
        if count("", "") == 1 {
            for l in lmmsLetters {
                if splits.contains(where: { $0.pyEquals("A") }) && splits.count > 3 { break }
                if splits.contains(where: { $0.pyEquals(l) }) { return l }
            }
        }
        let forms = [("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""), (":", ","),
                     (":", "."), (":", ")"), (":", ").")]
        for (prefix, suffix) in forms where count(prefix, suffix) == 1 {
            for l in lmmsLetters where splits.contains(where: { $0.pyEquals(prefix + l + suffix) }) { return l }
        }
        return nil
    }

    static func vlmEvalKitTextWithoutLengthLimit(_ answer: String, _ choices: Choices) -> String? {
        let lowered = answer.pythonLowercased()
        let hits = choices.filter { lowered.pythonContains($0.text.pythonLowercased()) }
        return hits.count == 1 ? hits[0].letter : nil
    }

    static let answerPhrases = ["the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
                                "best answer is", "the correct option is", "correct option is", "the best option is",
                                "best option is", "the choice is", "choice is", "the correct choice is", "correct choice is",
                                "i choose", "i select", "i pick", "my answer is", "my choice is", "옵션", "정답은", "답은", "답:",
                                "答案是", "答案为", "选", "答えは"]

    /// lmms-eval's `extract_mcq_answer`: candidates in several formats, the highest-priority
    /// format wins and, within it, the latest position; "" when none.
    public static func lmmsExtract(_ response: String, letters: [String]) -> String {
        if response.pythonStripped().isEmpty { return "" }
        var text = response.pythonStripped()
        for c in [",", ".", "!", "?", ";", ":", "'", "\""] { text = text.pythonStripped(c) }
        text = " " + text + " "
        var candidates: [(letter: String, position: Int, priority: Int)] = []
        let formats: [(String, String, Int)] = [("(", ")", 6), ("", ".", 5), ("", ":", 4), ("", ")", 3), ("", " ", 2)]
        for (prefix, suffix, priority) in formats {
            for l in letters {
                if let at = text.pythonRFind(prefix + l + suffix) { candidates.append((l, at, priority)) }
            }
        }
        let lowered = text.pythonLowercased()
        for phrase in answerPhrases {
            guard let at = lowered.pythonFind(phrase) else { continue }
            let after = at + phrase.pythonCount
            for l in letters {
                if let position = text.pythonFind(l, from: after) { candidates.append((l, position, 7)) }
            }
        }
        let stripped = Array(text.pythonStripped().unicodeScalars)
        let strippedText = String(scalars: stripped)
        for l in letters where strippedText.pythonHasPrefix(l) && (stripped.count == 1 || !stripped[1].isPythonAlpha) {
            candidates.append((l, 0, 10))
        }
        for l in letters where strippedText.pythonHasSuffix(l) && (stripped.count == 1 || !stripped[stripped.count - 2].isPythonAlpha) {
            candidates.append((l, text.pythonCount - 1, 9))
        }
        if candidates.isEmpty {
            for l in letters { if let at = text.pythonRFind(l) { candidates.append((l, at, 0)) } }
        }
        guard !candidates.isEmpty else { return "" }
        // Python's stable sort by (priority, position) descending: the first of the equal maxima wins.
        var best = candidates[0]
        for c in candidates.dropFirst() where (c.priority, c.position) > (best.priority, best.position) { best = c }
        return best.letter
    }
}

extension Unicode.Scalar {
    /// Python's `\s` in a str pattern (Unicode whitespace, as `str.isspace`).
    var isRegexSpace: Bool { isPythonWhitespace }

    /// Python's `str.isalpha()` for one code point (letters: categories Lu, Ll, Lt, Lm, Lo).
    var isPythonAlpha: Bool {
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }
}
