import Foundation

/// VQAv2. On test-dev the score is the upload file LLaVA's `convert_vqav2_for_submission.py`
/// writes: one row per question of `llava_vqav2_mscoco_test2015.jsonl`, the answer through the
/// EvalAI processor, `""` when unanswered. On val (the release's questions and annotations with
/// a LLaVA question file for them) the official VQA evaluator scores the answers as submitted
/// (the headline) and as raw text, and lmms-eval's variant is given beside them.
public struct VQAv2Benchmark: BenchmarkAdapter {
    public enum Split: String, Sendable, CaseIterable {
        case testDev = "test-dev"
        case val
    }

    public let name = BenchmarkName.vqav2
    public let folder: String
    public let split: Split

    public static let testDevQuestions = "llava_vqav2_mscoco_test-dev2015.jsonl"
    public static let testQuestions = "llava_vqav2_mscoco_test2015.jsonl"
    public static let valQuestions = "llava_vqav2_mscoco_val2014.jsonl"
    public static let valReleaseQuestions = "v2_OpenEnded_mscoco_val2014_questions.json"
    public static let valAnnotations = "v2_mscoco_val2014_annotations.json"

    public init(folder: String, split: Split = .testDev) {
        self.folder = folder
        self.split = split
    }

    public func questions() throws -> [BenchmarkItem] {
        switch split {
        case .testDev: try llavaQuestions(Self.testDevQuestions, imageFolder: "test2015")
        case .val: try valQuestions()
        }
    }

    /// LLaVA's val question file, or, when the folder has only the release's
    /// `v2_OpenEnded_mscoco_val2014_questions.json`, the same questions built from it as LLaVA
    /// words them (the question, then the single-word instruction; image `COCO_val2014_<id>.jpg`).
    func valQuestions() throws -> [BenchmarkItem] {
        if FileManager.default.fileExists(atPath: path(Self.valQuestions)) {
            return try llavaQuestions(Self.valQuestions, imageFolder: "val2014")
        }
        guard FileManager.default.fileExists(atPath: path(Self.valReleaseQuestions)) else {
            throw BenchmarkFileError(path(Self.valQuestions), "no such file, and no \(Self.valReleaseQuestions) to build it from (VQAv2's val questions from visualqa.org)")
        }
        return try ReleaseFile.decode(ReleaseQuestions.self, path(Self.valReleaseQuestions)).questions.map { q in
            let image = "COCO_val2014_" + String(repeating: "0", count: max(0, 12 - String(q.image_id).count)) + String(q.image_id) + ".jpg"
            return BenchmarkItem(id: .int(q.question_id), image: .file(path("val2014/" + image)),
                                 text: q.question + "\n" + Self.instruction, category: "default")
        }
    }

    /// The instruction LLaVA puts after every VQAv2 question.
    public static let instruction = "Answer the question using a single word or phrase."

    struct ReleaseQuestions: Decodable {
        struct Question: Decodable {
            let image_id: Int64
            let question: String
            let question_id: Int64
        }
        let questions: [Question]
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        try checkSplit(answers)
        switch split {
        case .testDev: return try scoreTestDev(answers)
        case .val: return try scoreVal(answers)
        }
    }

    /// Refuses an answer file none of whose answers is to a question of this split, naming the
    /// split the answers belong to when it is the other one.
    func checkSplit(_ answers: AnswerSet) throws {
        guard !answers.answers.isEmpty else { return }
        let mine = Set(try questions().map(\.id))
        guard !answers.answers.contains(where: { mine.contains($0.id) }) else { return }
        let other: Split = split == .testDev ? .val : .testDev
        let theirs = Set((try? VQAv2Benchmark(folder: folder, split: other).questions().map(\.id)) ?? [])
        if answers.answers.contains(where: { theirs.contains($0.id) }) {
            throw BenchmarkFileError(answers.path, "the answers are to VQAv2 \(other.rawValue) questions, none to \(split.rawValue) ones: give --split \(other.rawValue)")
        }
        throw BenchmarkFileError(answers.path, "no answer is to a VQAv2 \(split.rawValue) question of \(folder)")
    }

    func scoreTestDev(_ answers: AnswerSet) throws -> BenchmarkScore {
        let asked = try questions()
        let all = try QuestionFile(path: path(Self.testQuestions))
        if let issue = all.issues.first { throw EvalFileError.malformed(issue) }
        let rows: [JSONValue] = all.questions.map { q in
            let text = answers.usable(q.id).map { AnswerNormalizer.normalize($0.text) } ?? ""
            return .object(["question_id": q.id.json, "answer": .string(text)])
        }
        let unanswered = asked.filter { answers.usable($0.id) == nil }.map(\.id)
        return BenchmarkScore(benchmark: name, headline: [:], metrics: [:], questions: asked.count,
                              unanswered: unanswered, submission: .array(rows))
    }

    struct Annotations: Decodable {
        struct Annotation: Decodable {
            struct Human: Decodable { let answer: String }
            let question_id: Int64
            let question_type: String
            let answer_type: String
            let answers: [Human]
        }
        let annotations: [Annotation]
    }

    func scoreVal(_ answers: AnswerSet) throws -> BenchmarkScore {
        let annotations = try ReleaseFile.decode(Annotations.self, path(Self.valAnnotations)).annotations
        var submitted = OfficialTally(), raw = OfficialTally()
        var lmms = 0.0
        var unanswered: [QuestionID] = []
        for a in annotations {
            let id = QuestionID.int(a.question_id)
            let answer = answers.usable(id)
            if answer == nil { unanswered.append(id) }
            let text = answer?.text ?? ""
            let humans = a.answers.map(\.answer)
            submitted.add(VQAAccuracy.official(prediction: AnswerNormalizer.normalize(text), humans: humans), a)
            raw.add(VQAAccuracy.official(prediction: text, humans: humans), a)
            lmms += VQAAccuracy.lmmsEval(prediction: text, humans: humans)
        }
        let headline = submitted.overall
        return BenchmarkScore(
            benchmark: name, headline: ["val_accuracy": .double(headline)],
            metrics: [
                "val_official_on_submitted_answers": submitted.json,
                "val_official_on_raw_text": raw.json,
                "val_lmms_eval_exact_match_mean": .double(annotations.isEmpty ? 0 : 100 * lmms / Double(annotations.count)),
            ],
            questions: annotations.count, unanswered: unanswered)
    }

    /// The VQA evaluator's `accuracy`: overall (also unrounded) and per answer and question type,
    /// rounded to 2 decimals as it stores them.
    struct OfficialTally {
        var all: [Double] = []
        var perAnswerType: [(String, [Double])] = []
        var perQuestionType: [(String, [Double])] = []

        mutating func add(_ accuracy: Double, _ a: Annotations.Annotation) {
            all.append(accuracy)
            Self.append(accuracy, to: &perAnswerType, key: a.answer_type)
            Self.append(accuracy, to: &perQuestionType, key: a.question_type)
        }

        static func append(_ x: Double, to groups: inout [(String, [Double])], key: String) {
            if let i = groups.firstIndex(where: { $0.0.pyEquals(key) }) { groups[i].1.append(x) } else { groups.append((key, [x])) }
        }

        static func mean100(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : 100 * xs.reduce(0, +) / Double(xs.count) }

        var overall: Double { Self.mean100(all) }

        var json: JSONValue {
            .object([
                "overall": .double(overall),
                "overall_rounded": .double(pythonRound(overall, 2)),
                "perAnswerType": .object(JSONObject(perAnswerType.map { ($0.0, .double(pythonRound(Self.mean100($0.1), 2))) })),
                "perQuestionType": .object(JSONObject(perQuestionType.map { ($0.0, .double(pythonRound(Self.mean100($0.1), 2))) })),
            ])
        }
    }
}
