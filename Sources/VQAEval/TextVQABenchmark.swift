/// TextVQA val 0.5.1 with LLaVA's reference-OCR-token prompt, scored as `eval_textvqa.py`: each
/// answer line is matched to its annotation by (question_id = image id, the question read back
/// from the line's prompt, lowercased); prediction and the 10 human answers go through the
/// EvalAI processor and the score is the leave-one-out VQA accuracy. Questions of the question
/// file with no usable answer score 0 and are counted as unanswered.
public struct TextVQABenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.textvqa
    public let folder: String
    public static let questionFile = "llava_textvqa_val_v051_ocr.jsonl"
    public static let imageFolder = "train_images"
    public static let annotations = "TextVQA_0.5.1_val.json"

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestionLines(Self.questionFile, imageFolder: Self.imageFolder)
    }

    struct Release: Decodable {
        struct Entry: Decodable {
            let question: String
            let image_id: String
            let answers: [String]
        }
        let data: [Entry]
    }

    struct Key: Hashable {
        let image: PyText
        let question: PyText
    }

    /// `prompt_processor`: the question inside a prompt, lowercased; nil for a prompt of no
    /// known shape (the official script asserts).
    public static func question(fromPrompt prompt: String) -> String? {
        let lines = prompt.pythonSplit("\n")
        if prompt.pythonHasPrefix("OCR tokens: ") {
            guard let start = prompt.pythonFind("Question: ") else { return nil }
            let from = start + "Question: ".unicodeScalars.count
            guard let end = prompt.pythonFind(" Short answer:", from: from) else { return nil }
            return String(scalars: Array(prompt.unicodeScalars)[from..<end]).pythonLowercased()
        } else if prompt.pythonContains("Reference OCR token: ") && lines.count == 3 {
            return (prompt.pythonHasPrefix("Reference OCR token:") ? lines[1] : lines[0]).pythonLowercased()
        } else if lines.count == 2 {
            return lines[0].pythonLowercased()
        }
        return nil
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let release = try ReleaseFile.decode(Release.self, path(Self.annotations)).data
        var humans: [Key: [String]] = [:]
        for e in release { humans[Key(image: PyText(e.image_id), question: PyText(e.question.pythonLowercased()))] = e.answers }
        let asked = try questions()

        var scores: [Double] = []
        var lmms = 0.0
        var seen = Set<Key>()
        var unanswered: [QuestionID] = []
        for a in answers.answers {
            guard let prompt = a.prompt, let question = Self.question(fromPrompt: prompt) else {
                throw BenchmarkFileError("\(answers.path):\(a.line)", "the prompt is not a TextVQA question prompt")
            }
            let key = Key(image: PyText(a.id.key), question: PyText(question))
            guard let gt = humans[key] else {
                throw BenchmarkFileError("\(answers.path):\(a.line)", "no annotation for image \(a.id) and question \"\(question)\"")
            }
            guard gt.count == 10 else {
                throw BenchmarkFileError(path(Self.annotations), "image \(a.id), \"\(question)\": \(gt.count) answers, the evaluator needs 10")
            }
            seen.insert(key)
            if a.failed {
                unanswered.append(a.id)
                scores.append(0)
                continue
            }
            let s = VQAAccuracy.textVQA(prediction: a.text, humans: gt)
            scores.append(s)
            lmms += s
        }
        for q in asked {
            guard let question = Self.question(fromPrompt: q.text) else { continue }
            if !seen.contains(Key(image: PyText(q.id.key), question: PyText(question))) {
                unanswered.append(q.id)
                scores.append(0)
            }
        }
        let accuracy = scores.isEmpty ? 0 : 100 * (scores.reduce(0, +) / Double(scores.count))
        return BenchmarkScore(
            benchmark: name, headline: ["accuracy": .double(accuracy)],
            metrics: ["samples": .int(Int64(scores.count)), "accuracy": .double(accuracy),
                      "lmms_eval_exact_match_mean": .double(scores.isEmpty ? 0 : 100 * lmms / Double(scores.count))],
            questions: scores.count, unanswered: unanswered)
    }
}
