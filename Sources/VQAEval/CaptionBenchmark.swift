import Foundation

/// COCO captions, Karpathy test split, as lmms-eval's `coco_karpathy_test` scores it: the image
/// id is the number at the end of the file name (the answer's `question_id`), the references are
/// the row's `sentences`, and BLEU-1..4, ROUGE-L and CIDEr-D come from `CaptionMetrics`
/// (METEOR needs Java and is not computed). An unanswered image is scored as the empty caption.
public struct CaptionBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.cocoCaption
    public let folder: String
    public static let rowsFile = "coco_karpathy_test.jsonl"
    public static let prompt = "Describe the image briefly."

    public init(folder: String) { self.folder = folder }

    /// A row of the test split: lmms-eval's (`sentences` as strings) or Karpathy's own
    /// (`sentences` as objects with `raw`), read as they are.
    struct Row: Decodable {
        let filename: String
        let filepath: String?
        let split: String?
        let sentences: [Sentence]
        var captions: [String] { sentences.map(\.raw) }
    }

    struct Sentence: Decodable {
        let raw: String
        enum Keys: String, CodingKey { case raw }
        init(from decoder: Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                raw = text
            } else {
                raw = try decoder.container(keyedBy: Keys.self).decode(String.self, forKey: .raw)
            }
        }
    }

    /// The test rows: `coco_karpathy_test.jsonl`, else the `test` rows of Karpathy's `dataset_coco.json`.
    func rows() throws -> [Row] {
        if !FileManager.default.fileExists(atPath: path(Self.rowsFile)),
           FileManager.default.fileExists(atPath: path(Self.karpathyFile)) {
            return try ReleaseFile.decode(KarpathyRows.self, path(Self.karpathyFile)).images.filter { ($0.split ?? "test") == "test" }
        }
        return try ReleaseFile.decodeLines(Row.self, path(Self.rowsFile))
    }

    public static let karpathyFile = "dataset_coco.json"

    struct KarpathyRows: Decodable { let images: [Row] }

    public func questions() throws -> [BenchmarkItem] {
        try rows().map { row in
            BenchmarkItem(id: .string(row.filename), image: .file(path((row.filepath ?? "val2014") + "/" + row.filename)),
                              text: Self.prompt)
        }
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        try Self.score(answers, references: rows().map { ($0.filename, $0.captions) })
    }

    /// Scores captions against references given as (file name, reference captions).
    public static func score(_ answers: AnswerSet, references: [(file: String, captions: [String])]) throws -> BenchmarkScore {
        var pairs: [(hypothesis: String, references: [String])] = []
        var unanswered: [QuestionID] = []
        for (file, captions) in references {
            guard !captions.isEmpty else { throw BenchmarkFileError(file, "has no reference captions") }
            let answer = answers.usable(.string(file))
            if answer == nil { unanswered.append(.string(file)) }
            pairs.append((CaptionMetrics.tokenize(answer?.text ?? ""), captions.map(CaptionMetrics.tokenize)))
        }
        let bleu = CaptionMetrics.bleu(pairs)
        let rouge = pairs.map { CaptionMetrics.rougeL(hypothesis: $0.hypothesis, references: $0.references) }
        let cider = CaptionMetrics.cider(pairs)
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }
        let metrics: JSONObject = [
            "Bleu_4": .double(bleu[3]), "Bleu_3": .double(bleu[2]), "Bleu_2": .double(bleu[1]), "Bleu_1": .double(bleu[0]),
            "ROUGE_L": .double(mean(rouge)), "CIDEr": .double(mean(cider)),
        ]
        return BenchmarkScore(benchmark: .cocoCaption, headline: metrics, metrics: metrics, questions: references.count,
                              unanswered: unanswered)
    }

    struct KarpathyDataset: Decodable {
        struct Image: Decodable {
            struct Sentence: Decodable { let raw: String }
            let filename: String
            let split: String?
            let sentences: [Sentence]
        }
        let images: [Image]
    }

    /// References from a Karpathy-format `dataset_coco.json` (the `test` split) or a
    /// `coco_karpathy_test.jsonl`-style file, for scoring a caption file without a benchmark folder.
    public static func references(annotations path: String) throws -> [(file: String, captions: [String])] {
        if path.pythonHasSuffix(".jsonl") {
            return try ReleaseFile.decodeLines(Row.self, path).map { ($0.filename, $0.captions) }
        }
        let data = try ReleaseFile.decode(KarpathyDataset.self, path)
        return data.images.filter { ($0.split ?? "test") == "test" }.map { ($0.filename, $0.sentences.map(\.raw)) }
    }
}
