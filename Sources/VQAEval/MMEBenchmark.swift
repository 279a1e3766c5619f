/// MME, scored as LLaVA's `convert_answer_to_mme.py` and MME's `calculation.py`: answers are
/// grouped by subtask (the first part of `question_id`) in answer-file order; the ground truth
/// is found by putting " Please answer yes or no." back on the question (two spaces when one is
/// not found); the answer, lowercased with the line's newline still attached, is yes/no when it
/// is exactly that, otherwise by its first four characters (containing "yes" → yes, else "no" →
/// no, else other, always wrong). Lines pair two by two into images: acc, acc+ (both right),
/// score = acc + acc+ in percent; Perception and Cognition are sums of subtask scores.
public struct MMEBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.mme
    public let folder: String
    public static let questionFile = "llava_mme.jsonl"
    public static let release = "MME_Benchmark_release_version"
    public static let perception = ["existence", "count", "position", "color", "posters", "celebrity", "scene",
                                    "landmark", "artwork", "OCR"]
    public static let cognition = ["commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"]
    static let suffix = "Answer the question using a single word or phrase."

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestionLines(Self.questionFile, imageFolder: Self.release)
    }

    /// `calculation.py`'s reading of a lowercased answer.
    public static func parse(_ lowered: String) -> String {
        if lowered.pyEquals("yes") || lowered.pyEquals("no") { return lowered }
        let prefix = String(scalars: lowered.unicodeScalars.prefix(4))
        if prefix.pythonContains("yes") { return "yes" }
        if prefix.pythonContains("no") { return "no" }
        return "other"
    }

    struct GTKey: Hashable {
        let category: PyText, file: PyText, question: PyText
    }

    /// Every `<subtask>/…/<stem>.txt`: question TAB Yes|No per line.
    func groundTruth() throws -> [GTKey: String] {
        var gt: [GTKey: String] = [:]
        for category in Self.perception + Self.cognition {
            let dir = path(Self.release + "/" + category)
            let qa = FileList.isDirectory(dir + "/images") ? dir + "/questions_answers_YN" : dir
            guard FileList.isDirectory(qa) else { throw BenchmarkFileError(qa, "missing (MME needs all 14 subtasks)") }
            for file in try FileList.names(in: qa) where file.pythonHasSuffix(".txt") {
                let text = String(decoding: try FileBytes.contents(qa + "/" + file), as: UTF8.self)
                for line in text.pythonSplit("\n") where !line.pythonStripped().isEmpty {
                    let parts = line.pythonStripped().pythonSplit("\t")
                    guard parts.count == 2 else { throw BenchmarkFileError(qa + "/" + file, "a line is not question<TAB>answer") }
                    gt[GTKey(category: PyText(category), file: PyText(file), question: PyText(parts[0]))] = parts[1]
                }
            }
        }
        return gt
    }

    struct Subtask {
        var gts: [String] = []
        var preds: [String] = []
        var plusRight = 0
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let gt = try groundTruth()
        let asked = try questions()
        // The converter's order is the answer file's; when questions have no answer line, the
        // question file's order is used instead, with those questions as failed (wrong) lines.
        let answeredKeys = Set(answers.answers.map { BenchmarkAnswerFile.key($0.id, prompt: $0.prompt ?? "") })
        let missing = asked.filter { !answeredKeys.contains(BenchmarkAnswerFile.key($0.id, prompt: $0.recordedPrompt)) }
        var ordered = answers.answers
        if !missing.isEmpty {
            var byKey: [PyText: ModelAnswer] = [:]
            for a in answers.answers { byKey[BenchmarkAnswerFile.key(a.id, prompt: a.prompt ?? "")] = a }
            ordered = asked.enumerated().map { (k, q) in
                byKey[BenchmarkAnswerFile.key(q.id, prompt: q.recordedPrompt)]
                    ?? ModelAnswer(id: q.id, text: "", prompt: q.recordedPrompt, failed: true, line: -(k + 1))
            }
        }
        var rows: [String: [(gt: String, answer: ModelAnswer)]] = [:]
        for a in ordered {
            let parts = a.id.key.pythonSplit("/")
            let category = parts[0]
            let file = parts.last!.pythonSplit(".")[0] + ".txt"
            var prompt = a.prompt ?? ""
            if prompt.pythonContains(Self.suffix) { prompt = prompt.pythonReplacing(Self.suffix, with: "").pythonStripped() }
            if !prompt.pythonContains("Please answer yes or no.") {
                prompt += " Please answer yes or no."
                if gt[GTKey(category: PyText(category), file: PyText(file), question: PyText(prompt))] == nil {
                    prompt = prompt.pythonReplacing(" Please answer yes or no.", with: "  Please answer yes or no.")
                }
            }
            guard let truth = gt[GTKey(category: PyText(category), file: PyText(file), question: PyText(prompt))] else {
                throw BenchmarkFileError("\(answers.path):\(a.line)", "no ground truth for \(category)/\(file): \"\(prompt)\"")
            }
            rows[category, default: []].append((truth, a))
        }
        var perSubtask = JSONObject()
        var perception = 0.0, cognition = 0.0
        var unanswered: [QuestionID] = []
        for category in Self.perception + Self.cognition {
            let lines = rows[category] ?? []
            var tp = 0, fn = 0, tn = 0, fp = 0, other = 0, right = 0, plus = 0
            var k = 0
            while k < lines.count {
                var imageRight = 0
                for row in lines[k..<min(k + 2, lines.count)] {
                    let g = row.gt.pythonLowercased()
                    let p = row.answer.failed ? "other" : Self.parse((row.answer.text + "\n").pythonLowercased())
                    if row.answer.failed { unanswered.append(row.answer.id) }
                    if g.pyEquals(p) { imageRight += 1; right += 1 }
                    switch (g, p) {
                    case ("yes", "yes"): tp += 1
                    case ("yes", "no"): fn += 1
                    case ("no", "no"): tn += 1
                    case ("no", "yes"): fp += 1
                    default: other += 1
                    }
                }
                if imageRight == 2 { plus += 1 }
                k += 2
            }
            let images = (lines.count + 1) / 2
            let acc = lines.isEmpty ? 0 : Double(right) / Double(lines.count)
            let accPlus = images == 0 ? 0 : Double(plus) / Double(images)
            let score = acc * 100 + accPlus * 100
            perSubtask[category] = .object([
                "acc": .double(acc * 100), "acc_plus": .double(accPlus * 100), "score": .double(score),
                "TP": .int(Int64(tp)), "FN": .int(Int64(fn)), "TN": .int(Int64(tn)), "FP": .int(Int64(fp)),
                "precision": .double(ratio(tp, tp + fp)), "recall": .double(ratio(tp, tp + fn)),
                "other_num": .int(Int64(other)), "questions": .int(Int64(lines.count)), "images": .int(Int64(images)),
            ])
            if Self.perception.contains(category) { perception += score } else { cognition += score }
        }
        return BenchmarkScore(
            benchmark: name, headline: ["Perception": .double(perception), "Cognition": .double(cognition)],
            metrics: ["per_subtask": .object(perSubtask), "Perception": .double(perception), "Cognition": .double(cognition)],
            questions: asked.count, unanswered: unanswered)
    }
}
