/// SEED-Bench-1, scored as LLaVA's `convert_seed_for_submission.py`: an answer is right only
/// when its text equals the answer letter exactly. Accuracy per question type (image and video
/// rows together), in total, and for the image rows (the headline) and video rows apart;
/// lmms-eval's reading (first character, case-insensitive) beside it. The upload file has one
/// `{"question_id", "prediction"}` row per release question.
public struct SEEDBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.seed
    public let folder: String
    public static let questionFile = "llava-seed-bench.jsonl"
    public static let release = "SEED-Bench.json"

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestions(Self.questionFile, imageFolder: ".")
    }

    struct Release: Decodable {
        struct Question: Decodable {
            let answer: String
            let data_type: String
            let question_id: String
            let question_type_id: Int
        }
        let questions: [Question]
        let question_type: [String: Int]
    }

    /// The answer-file id of a release question: an integer when the string reads as one.
    static func answerID(_ s: String) -> QuestionID {
        if let i = Int64(s.pythonStripped()) { return .int(i) }
        return .string(s)
    }

    /// The answer to a release question, looked up as the official converter's upload loop
    /// does: under the id as the release writes it (a string), else under its integer.
    static func answer(_ id: String, in answers: AnswerSet) -> ModelAnswer? {
        answers.usable(.string(id)) ?? answers.usable(answerID(id))
    }

    /// lmms-eval's reading: the stripped text's first character.
    static func lmmsRight(_ text: String, answer: String) -> Bool {
        var pred = text.pythonStripped()
        if pred.pythonCount > 1 { pred = String(scalars: [pred.unicodeScalars.first!]) }
        return pred.pythonLowercased().pythonStripped().pyEquals(answer.pythonLowercased().pythonStripped())
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let data = try ReleaseFile.decode(Release.self, path(Self.release))
        var typeName: [Int: String] = [:]
        for (n, id) in data.question_type { typeName[id] = n }
        var perType: [Int: Tally] = [:]
        var image = Tally(), video = Tally(), total = Tally()
        var lmmsImage = Tally(), lmmsVideo = Tally(), lmmsAll = Tally()
        var unanswered: [QuestionID] = []
        var upload: [JSONValue] = []
        for q in data.questions {
            let id = Self.answerID(q.question_id)
            let answer = Self.answer(q.question_id, in: answers)
            if answer == nil { unanswered.append(id) }
            let right = answer.map { $0.text.pyEquals(q.answer) } ?? false
            let lmms = answer.map { Self.lmmsRight($0.text, answer: q.answer) } ?? false
            perType[q.question_type_id, default: Tally()].add(right)
            total.add(right)
            lmmsAll.add(lmms)
            if q.data_type == "image" { image.add(right); lmmsImage.add(lmms) }
            if q.data_type == "video" { video.add(right); lmmsVideo.add(lmms) }
            upload.append(.object(["question_id": .string(q.question_id), "prediction": .string(answer?.text ?? "")]))
        }
        let types = perType.keys.sorted().map { (typeName[$0] ?? String($0), JSONValue.double(perType[$0]!.percent)) }
        let metrics: JSONObject = [
            "image_accuracy": .double(image.percent),
            "image_questions": .int(Int64(image.count)),
            "video_accuracy": .double(video.percent),
            "video_questions": .int(Int64(video.count)),
            "total_accuracy": .double(total.percent),
            "per_question_type": .object(JSONObject(types)),
            "lmms_eval": .object(["seed_image": .double(lmmsImage.percent), "seed_video": .double(lmmsVideo.percent),
                                  "seed_all": .double(lmmsAll.percent)]),
        ]
        return BenchmarkScore(benchmark: name, headline: ["image_accuracy": .double(image.percent)], metrics: metrics,
                              questions: total.count, unanswered: unanswered, submission: .array(upload))
    }
}
