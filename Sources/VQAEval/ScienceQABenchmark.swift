/// ScienceQA test split, prompted as LLaVA's `model_vqa_science.py --single-pred-prompt` and
/// scored as `eval_science_qa.py`: an answer is the letter when it is exactly one of A–E, starts
/// with "X. ", or contains `The answer is X` plus one more character exactly once; the letter
/// must be among the problem's choices and equal its answer. IMG-Accuracy counts the answers
/// whose recorded prompt contains `<image>` (an unanswered problem has none). ScienceQA's own
/// `evaluate_acc.py` category table and lmms-eval's image-subset reading come beside it.
public struct ScienceQABenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.scienceqa
    public let folder: String
    public static let questionFile = "llava_test_CQM-A.json"
    public static let imageFolder = "images/test"
    public static let suffix = "Answer with the option's letter from the given choices directly."
    public static let options = ["A", "B", "C", "D", "E"]

    public init(folder: String) { self.folder = folder }

    struct Entry: Decodable {
        struct Turn: Decodable { let value: String }
        let id: String
        let image: String?
        let conversations: [Turn]
    }

    struct Problem: Decodable {
        let choices: [String]
        let answer: Int
        let hint: String?
        let image: String?
        let grade: String?
        let subject: String?
        let topic: String?
        let split: String?
    }

    public func questions() throws -> [BenchmarkItem] {
        let entries = try ReleaseFile.decode([Entry].self, path(Self.questionFile))
        return try entries.map { e in
            guard let first = e.conversations.first else { throw BenchmarkFileError(path(Self.questionFile), "problem \(e.id) has no question") }
            let qs = first.value.pythonReplacing("<image>", with: "").pythonStripped()
            let text = (e.image != nil ? "<image>\n" : "") + qs + "\n" + Self.suffix
            return BenchmarkItem(id: .string(e.id), image: e.image.map { BenchmarkImage.file(path(Self.imageFolder + "/" + $0)) },
                                     text: qs + "\n" + Self.suffix, recordedPrompt: text)
        }
    }

    /// The letter `eval_science_qa.py` reads from an answer, or "FAILED".
    public static func parse(_ text: String) -> String {
        if options.contains(where: { $0.pyEquals(text) }) { return text }
        let s = Array(text.unicodeScalars)
        if s.count >= 3, options.contains(where: { $0.pyEquals(String(s[0])) }), s[1] == ".", s[2] == " " { return String(s[0]) }
        // re.findall(r'The answer is ([A-Z]).', text): non-overlapping, "." is any character but a newline.
        let pattern = Array("The answer is ".unicodeScalars)
        var found: [String] = []
        var k = 0
        while k + pattern.count + 2 <= s.count {
            if Array(s[k..<k + pattern.count]) == pattern {
                let letter = s[k + pattern.count], next = s[k + pattern.count + 1]
                if letter.value >= 0x41 && letter.value <= 0x5A && next != "\n" {
                    found.append(String(letter))
                    k += pattern.count + 2
                    continue
                }
            }
            k += 1
        }
        return found.count == 1 ? found[0] : "FAILED"
    }

    /// lmms-eval's `sqa_process_results`.
    static func lmmsRight(_ text: String, answer: Int) -> Bool {
        let target = options[answer].pythonLowercased()
        let pred = text.pythonStripped()
        if pred.pythonLowercased().pyEquals(target) { return true }
        let s = Array(pred.unicodeScalars)
        if s.count >= 2, s[0].properties.isUppercase, s[1] == "." { return String(s[0]).pythonLowercased().pyEquals(target) }
        return false
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let splits = try ReleaseFile.decode([String: [String]].self, path("pid_splits.json"))
        let problems = try ReleaseFile.decode([String: Problem].self, path("problems.json"))
        guard let test = splits["test"] else { throw BenchmarkFileError(path("pid_splits.json"), "no \"test\" split") }
        var all = Tally(), img = Tally(), lmms = Tally()
        var unanswered: [QuestionID] = []
        var predicted: [String: Int] = [:]
        for pid in test {
            guard let problem = problems[pid] else { throw BenchmarkFileError(path("problems.json"), "no problem \(pid)") }
            guard problem.answer >= 0, problem.answer < min(problem.choices.count, Self.options.count) else {
                throw BenchmarkFileError(path("problems.json"), "problem \(pid): answer index \(problem.answer) is out of range")
            }
            let answer = answers.usable(.string(pid))
            if answer == nil { unanswered.append(.string(pid)) }
            let letter = answer.map { Self.parse($0.text) } ?? "FAILED"
            let index = Self.options.prefix(problem.choices.count).firstIndex { $0.pyEquals(letter) } ?? -1
            predicted[pid] = index
            let right = index == problem.answer
            all.add(right)
            if let prompt = answer?.prompt, prompt.pythonContains("<image>") { img.add(right) }
            if problem.image != nil { lmms.add(answer.map { Self.lmmsRight($0.text, answer: problem.answer) } ?? false) }
        }
        let metrics: JSONObject = [
            "total": .int(Int64(all.count)), "correct": .int(Int64(all.right)), "accuracy": .double(all.percent),
            "img_correct": .int(Int64(img.right)), "img_total": .int(Int64(img.count)), "img_accuracy": .double(img.percent),
            "scienceqa_tool_categories": .object(Self.categoryTable(problems: problems, predicted: predicted)),
            "lmms_eval_scienceqa_img_exact_match_mean": .double(lmms.percent),
        ]
        return BenchmarkScore(benchmark: name, headline: ["img_accuracy": .double(img.percent), "accuracy": .double(all.percent)],
                              metrics: metrics, questions: all.count, unanswered: unanswered)
    }

    static let topics = ["punctuation", "literacy-in-science", "verbs", "pronouns", "civics", "culture", "word-study",
                         "economics", "physics", "units-and-measurement", "science-and-engineering-practices",
                         "reading-comprehension", "global-studies", "grammar", "figurative-language", "us-history",
                         "writing-strategies", "world-history", "reference-skills", "biology", "earth-science",
                         "phonological-awareness", "capitalization", "chemistry", "vocabulary", "geography"]

    /// `evaluate_acc.py`: accuracy of the release's test problems by subject, context, grade and
    /// topic, as two-decimal percentages (-1 for an empty group); the average divides by the
    /// number of scored problems.
    static func categoryTable(problems: [String: Problem], predicted: [String: Int]) -> JSONObject {
        let test = problems.filter { $0.value.split == "test" }
        func acc(_ include: (Problem) -> Bool) -> JSONValue {
            var t = Tally()
            for (pid, p) in test where include(p) { t.add(predicted[pid] == p.answer) }
            return t.count == 0 ? .double(-1) : .double(Double(formatC(t.fraction * 100, decimals: 2))!)
        }
        let hasText: (Problem) -> Bool = { !($0.hint ?? "").isEmpty }
        let hasImage: (Problem) -> Bool = { !($0.image ?? "").isEmpty }
        let low = (1...6).map { "grade\($0)" }, high = (7...12).map { "grade\($0)" }
        let right = test.filter { predicted[$0.key] == $0.value.answer }.count
        var out: JSONObject = [
            "natural": acc { $0.subject == "natural science" },
            "social": acc { $0.subject == "social science" },
            "language": acc { $0.subject == "language science" },
            "has_text": acc(hasText),
            "has_image": acc(hasImage),
            "no_context": acc { !hasText($0) && !hasImage($0) },
            "grade_1_6": acc { low.contains($0.grade ?? "") },
            "grade_7_12": acc { high.contains($0.grade ?? "") },
            "average": .double(Double(formatC(predicted.isEmpty ? 0 : Double(right) / Double(predicted.count) * 100, decimals: 2))!),
        ]
        for t in topics { out[t] = acc { $0.topic == t } }
        return out
    }
}
