/// A plain LLaVA question file with an answer key, as a benchmark: a folder holding
/// `questions.jsonl` (question_id, image, text, category), `images/` and `answers.jsonl` (the
/// key: `answer`, `answers` or `label` per question_id), like the shipped `Prompts/shapes`.
/// Scored with exact match and VQA accuracy after the EvalAI normaliser, per category.
public struct QuestionFileBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.questionFile
    public let folder: String
    public static let questionFile = "questions.jsonl"
    public static let imageFolder = "images"
    public static let keyFile = "answers.jsonl"

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestions(Self.questionFile, imageFolder: Self.imageFolder)
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let key = try Annotations(path: path(Self.keyFile))
        let asked = try questions()
        var report = ScoreAccumulator()
        var unanswered: [QuestionID] = []
        for q in asked {
            guard let reference = key.reference(for: q.id) else {
                throw BenchmarkFileError(path(Self.keyFile), "no answer for question_id \(q.id)")
            }
            let answer = answers.usable(q.id)
            if answer == nil { unanswered.append(q.id) }
            report.add(category: q.category, prediction: answer?.text ?? "", reference: reference, failed: answer == nil)
        }
        let exact = 100 * report.overall.exact, vqa = 100 * report.overall.vqaAccuracy
        var metrics: JSONObject = ["exact": .double(exact), "vqa_accuracy": .double(vqa)]
        metrics["per_category"] = .object(JSONObject(report.categories.map {
            ($0.name, JSONValue.object(["n": .int(Int64($0.count)), "exact": .double(100 * $0.exact),
                                        "vqa_accuracy": .double(100 * $0.vqaAccuracy)]))
        }))
        return BenchmarkScore(benchmark: name, headline: ["exact": .double(exact), "vqa_accuracy": .double(vqa)],
                              metrics: metrics, questions: asked.count, unanswered: unanswered)
    }
}
