/// VizWiz-VQA test: the upload file of LLaVA's `convert_vizwiz_for_submission.py`, one row per
/// line of `llava_test.jsonl` in file order, `{"image", "answer"}` with the answer through the
/// EvalAI processor. Test answers are not public, so there is no local metric; an unanswered
/// question (the official converter stops there) gets `""` and is counted.
public struct VizWizBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.vizwiz
    public let folder: String
    public static let questionFile = "llava_test.jsonl"
    public static let imageFolder = "test"

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestions(Self.questionFile, imageFolder: Self.imageFolder)
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let qf = try QuestionFile(path: path(Self.questionFile))
        if let issue = qf.issues.first { throw EvalFileError.malformed(issue) }
        let rows: [JSONValue] = qf.questions.map { q in
            let text = answers.usable(q.id).map { AnswerNormalizer.normalize($0.text) } ?? ""
            return .object(["image": .string(q.image), "answer": .string(text)])
        }
        let unanswered = qf.questions.filter { answers.usable($0.id) == nil }.map(\.id)
        return BenchmarkScore(benchmark: name, headline: [:], metrics: [:], questions: qf.questions.count,
                              unanswered: unanswered, submission: .array(rows))
    }
}
