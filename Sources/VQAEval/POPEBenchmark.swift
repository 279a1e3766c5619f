/// POPE (COCO), scored as LLaVA's `eval_pope.py`: an answer is "no" when, cut at its first
/// period, commas deleted and split on single spaces, one word is exactly `No`, `no` or `not`;
/// anything else reads "yes" (`NO`, `None` and the empty answer included). Per category the
/// answers, in answer-file order, are paired with the labels of `coco/coco_pope_<category>.json`
/// by position. A line recording a failure keeps its place in that pairing, counts among the
/// samples and is wrong: it is neither a yes nor a no prediction.
public struct POPEBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.pope
    public let folder: String
    public static let questionFile = "llava_pope_test.jsonl"
    public static let imageFolder = "val2014"
    public static let categories = ["adversarial", "popular", "random"]

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestions(Self.questionFile, imageFolder: Self.imageFolder)
    }

    /// The official reading of an answer.
    public static func saysYes(_ answer: String) -> Bool {
        var text = answer
        if text.pythonFind(".") != nil { text = text.pythonSplit(".")[0] }
        let words = text.pythonReplacing(",", with: "").pythonSplit(" ")
        return !words.contains { $0.pyEquals("No") || $0.pyEquals("not") || $0.pyEquals("no") }
    }

    struct Label: Decodable { let label: String }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let questionFile = try QuestionFile(path: path(Self.questionFile))
        if let issue = questionFile.issues.first { throw EvalFileError.malformed(issue) }
        var category: [QuestionID: String] = [:]
        for q in questionFile.questions { category[q.id] = q.category }
        var metrics = JSONObject()
        var f1Sum = 0.0, accuracySum = 0.0
        var unanswered = questionFile.questions.filter { answers.byID[$0.id] == nil }.map(\.id)
        for name in Self.categories {
            let labels = try ReleaseFile.decodeLines(Label.self, path("coco/coco_pope_\(name).json")).map { !$0.label.pyEquals("no") }
            let mine = answers.answers.filter { a in category[a.id].map { $0.pyEquals(name) } ?? false }
            var counts = YesNoCounts()
            var samples = 0, failed = 0
            for (answer, labelYes) in zip(mine, labels) {
                samples += 1
                if answer.failed {
                    failed += 1
                    unanswered.append(answer.id)
                } else {
                    counts.add(predictedYes: Self.saysYes(answer.text), labelYes: labelYes)
                }
            }
            let accuracy = ratio(counts.tp + counts.tn, samples)
            metrics[name] = .object([
                "samples": .int(Int64(samples)), "TP": .int(Int64(counts.tp)), "FP": .int(Int64(counts.fp)),
                "TN": .int(Int64(counts.tn)), "FN": .int(Int64(counts.fn)), "accuracy": .double(accuracy),
                "precision": .double(counts.precision), "recall": .double(counts.recall), "f1": .double(counts.f1),
                "yes_ratio": .double(ratio(counts.tp + counts.fp, samples)),
            ])
            f1Sum += counts.f1
            accuracySum += accuracy
        }
        let n = Double(Self.categories.count)
        return BenchmarkScore(
            benchmark: name,
            headline: ["f1_mean_over_categories": .double(f1Sum / n), "accuracy_mean_over_categories": .double(accuracySum / n)],
            metrics: metrics, questions: questionFile.questions.count, unanswered: unanswered)
    }
}
