import Foundation

/// The benchmarks of the LLaVA-1.5 evaluation, each read from its folder laid out as LLaVA's
/// `playground/data/eval/<folder>` and scored by its official rule.
public enum BenchmarkName: String, CaseIterable, Sendable {
    case vqav2, gqa, vizwiz, scienceqa, textvqa, pope, mme, mmbench, seed
    case cocoCaption = "coco-caption"
    /// A plain LLaVA question file with its answer key (see `QuestionFileBenchmark`).
    case questionFile = "question-file"

    /// An adapter reading the benchmark folder `folder`.
    public func adapter(folder: String, options: BenchmarkSuiteOptions = BenchmarkSuiteOptions()) -> any BenchmarkAdapter {
        switch self {
        case .vqav2: VQAv2Benchmark(folder: folder, split: options.vqav2Split)
        case .gqa: GQABenchmark(folder: folder)
        case .vizwiz: VizWizBenchmark(folder: folder)
        case .scienceqa: ScienceQABenchmark(folder: folder)
        case .textvqa: TextVQABenchmark(folder: folder)
        case .pope: POPEBenchmark(folder: folder)
        case .mme: MMEBenchmark(folder: folder)
        case .mmbench: MMBenchBenchmark(folder: folder)
        case .seed: SEEDBenchmark(folder: folder)
        case .cocoCaption: CaptionBenchmark(folder: folder)
        case .questionFile: QuestionFileBenchmark(folder: folder)
        }
    }

    /// The headline number a results table shows for this benchmark (nil: none is computed
    /// locally, as for VizWiz and VQAv2 test-dev).
    public var primaryMetric: String? {
        switch self {
        case .vqav2: "val_accuracy"
        case .gqa, .textvqa: "accuracy"
        case .vizwiz: nil
        case .scienceqa: "img_accuracy"
        case .pope: "f1_mean_over_categories"
        case .mme: "Perception"
        case .mmbench: "circular_accuracy_vlmevalkit"
        case .seed: "image_accuracy"
        case .cocoCaption: "CIDEr"
        case .questionFile: "vqa_accuracy"
        }
    }

    /// The answer length LLaVA-1.5 evaluates this benchmark with: its `scripts/v1_5/eval/*.sh`
    /// pass no `--max_new_tokens`, so it is the default of the answering script they call
    /// (`model_vqa_loader.py`: 128; `model_vqa_mmbench.py` and `model_vqa_science.py`: 1024).
    /// COCO captions and plain question files are answered as `model_vqa_loader.py` does.
    public var llavaMaxNewTokens: Int {
        switch self {
        case .mmbench, .scienceqa: 1024
        default: 128
        }
    }

    /// The LLaVA-1.5 script these settings come from.
    public var llavaScript: String {
        switch self {
        case .vqav2, .gqa, .vizwiz, .textvqa, .pope, .mme, .mmbench, .seed: "scripts/v1_5/eval/\(rawValue).sh"
        case .scienceqa: "scripts/v1_5/eval/sqa.sh"
        case .cocoCaption, .questionFile: "llava/eval/model_vqa_loader.py"
        }
    }

    /// Whether scoring gives a file for the benchmark's server (`--submission`).
    public func hasSubmission(vqav2Split: VQAv2Benchmark.Split) -> Bool {
        switch self {
        case .vqav2: vqav2Split == .testDev
        case .vizwiz, .gqa, .seed, .mmbench: true
        default: false
        }
    }

    /// Folder names tried under a data root: LLaVA's `playground/data/eval` names first.
    public var folderNames: [String] {
        switch self {
        case .mme: ["MME", "mme"]
        case .seed: ["seed_bench", "seed"]
        case .cocoCaption: ["coco-caption", "coco_caption"]
        case .questionFile: []
        default: [rawValue]
        }
    }
}

/// Choices a benchmark takes beyond its folder.
public struct BenchmarkSuiteOptions: Sendable {
    /// VQAv2: which question file `run` reads and `score` scores (`test-dev`: the upload file;
    /// `val`: accuracy against the val annotations).
    public var vqav2Split: VQAv2Benchmark.Split = .testDev
    public init(vqav2Split: VQAv2Benchmark.Split = .testDev) { self.vqav2Split = vqav2Split }
}

/// Where a question's image comes from.
public enum BenchmarkImage: Sendable, Hashable {
    /// A file on disk.
    case file(String)
    /// An encoded image (JPEG, PNG, …) as base64 text, as MMBench's table holds it; decoded in
    /// memory only when the question is asked.
    case base64(String)

    /// The encoded image bytes of a `.base64` image (nil for a file, or text that is not base64).
    public var base64Bytes: [UInt8]? {
        guard case .base64(let text) = self, let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else { return nil }
        return [UInt8](data)
    }
}

/// One question as the model is asked it.
public struct BenchmarkItem: Sendable {
    public let id: QuestionID
    public let image: BenchmarkImage?
    /// The user text after the image, as LLaVA's question file (or prompt builder) has it.
    public let text: String
    /// The answer file's `prompt` field (LLaVA writes the question text; ScienceQA puts
    /// `<image>\n` in front for questions with an image).
    public let recordedPrompt: String
    public let category: String?
    /// Extra fields LLaVA writes into the answer line (MMBench: `round_id`, `options`, …).
    public let extra: [(String, JSONValue)]

    public init(id: QuestionID, image: BenchmarkImage?, text: String, recordedPrompt: String? = nil,
                category: String? = nil, extra: [(String, JSONValue)] = []) {
        self.id = id
        self.image = image
        self.text = text
        self.recordedPrompt = recordedPrompt ?? text
        self.category = category
        self.extra = extra
    }
}

/// What scoring a benchmark gives.
public struct BenchmarkScore: Sendable {
    public let benchmark: BenchmarkName
    /// The numbers a paper reports, named and scaled as in the benchmark's reference output.
    public let headline: JSONObject
    /// Every number the official scripts print.
    public let metrics: JSONObject
    /// Questions scored.
    public let questions: Int
    /// Questions without a usable answer (no line, or a line recording an error); they count as wrong.
    public let unanswered: [QuestionID]
    /// The file the official server takes (VQAv2 test-dev, VizWiz), when the benchmark has one.
    public let submission: JSONValue?

    public init(benchmark: BenchmarkName, headline: JSONObject, metrics: JSONObject, questions: Int,
                unanswered: [QuestionID], submission: JSONValue? = nil) {
        self.benchmark = benchmark
        self.headline = headline
        self.metrics = metrics
        self.questions = questions
        self.unanswered = unanswered
        self.submission = submission
    }

    /// The submission file's text, byte for byte as the official converter writes it
    /// (`json.dump`; SEED: one `json.dumps` line per row).
    public func submissionText(_ content: JSONValue) -> String {
        if benchmark == .seed, case .array(let rows) = content {
            return rows.map { PythonJSON.dumps($0) + "\n" }.joined()
        }
        return PythonJSON.dumps(content)
    }

    /// Writes the submission file to `path`: MMBench's `.xlsx` workbook, the others' JSON text.
    public func writeSubmission(to path: String) throws {
        guard let content = submission else { return }
        if case .object(let table) = content, let columns = table["columns"]?.arrayValue,
           let rows = table["rows"]?.arrayValue {
            return try Spreadsheet.write(columns: columns, rows: rows.map { $0.arrayValue ?? [] }, to: path)
        }
        do {
            try Data(submissionText(content).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw BenchmarkFileError(path, "cannot write the submission: \(error.localizedDescription)")
        }
    }

    /// The summary file: `benchmark`, `headline`, `metrics`, then the answer counts.
    public var summary: JSONValue {
        .object([
            "benchmark": .string(benchmark.rawValue),
            "headline": .object(headline),
            "metrics": .object(metrics),
            "questions": .int(Int64(questions)),
            "answered": .int(Int64(questions - unanswered.count)),
            "unanswered": .int(Int64(unanswered.count)),
            "unanswered_ids": .array(unanswered.map(\.json)),
        ])
    }
}

/// A benchmark: where its files are, how its questions are put to the model, how answers are scored.
public protocol BenchmarkAdapter: Sendable {
    var name: BenchmarkName { get }
    /// The benchmark folder.
    var folder: String { get }
    /// The questions in the order LLaVA asks them.
    func questions() throws -> [BenchmarkItem]
    /// Scores a LLaVA answer file.
    func score(_ answers: AnswerSet) throws -> BenchmarkScore
}

extension BenchmarkAdapter {
    func path(_ relative: String) -> String { folder.hasSuffix("/") ? folder + relative : folder + "/" + relative }

    /// The questions of a LLaVA question file inside the folder, images under `imageFolder`.
    func llavaQuestions(_ file: String, imageFolder: String) throws -> [BenchmarkItem] {
        let qf = try QuestionFile(path: path(file))
        if let issue = qf.issues.first { throw EvalFileError.malformed(issue) }
        return qf.questions.map {
            BenchmarkItem(id: $0.id, image: .file($0.imagePath(folder: path(imageFolder))), text: $0.text, category: $0.category)
        }
    }

    /// The same for question files whose ids repeat (MME asks two questions per image under the
    /// image's id; TextVQA's id is the image id): every line is a question.
    func llavaQuestionLines(_ file: String, imageFolder: String) throws -> [BenchmarkItem] {
        let full = path(file)
        var out: [BenchmarkItem] = []
        for (number, bytes) in JSONLines.lines(try FileBytes.contents(full)) {
            do {
                let q = try QuestionFile.question(bytes, line: number)
                out.append(BenchmarkItem(id: q.id, image: .file(q.imagePath(folder: path(imageFolder))), text: q.text,
                                             category: q.category))
            } catch {
                throw EvalFileError.malformed(LineIssue(path: full, line: number, reason: "\(error)"))
            }
        }
        return out
    }
}

/// A benchmark file that is missing or unlike the release format.
public struct BenchmarkFileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// Release files read with Codable; errors name the file and the problem on one line.
enum ReleaseFile {
    static func decode<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        let bytes = try FileBytes.contents(path)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw BenchmarkFileError(path, "not in the expected format: " + describe(error))
        } catch {
            throw BenchmarkFileError(path, "invalid JSON: \(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
            return p.isEmpty ? "" : " at " + p
        }
        switch error {
        case .keyNotFound(let key, let c): return "missing \"\(key.stringValue)\"" + at(c)
        case .typeMismatch(let t, let c): return "expected \(t)" + at(c)
        case .valueNotFound(let t, let c): return "expected \(t), found null" + at(c)
        case .dataCorrupted(let c): return "invalid JSON" + at(c)
        @unknown default: return "\(error)"
        }
    }

    /// Each line of a JSON-lines file decoded as `T`.
    static func decodeLines<T: Decodable>(_ type: T.Type, _ path: String) throws -> [T] {
        let bytes = try FileBytes.contents(path)
        var out: [T] = []
        for (number, line) in JSONLines.lines(bytes) {
            do {
                out.append(try JSONDecoder().decode(T.self, from: Data(line)))
            } catch let error as DecodingError {
                throw BenchmarkFileError("\(path):\(number)", "not in the expected format: " + describe(error))
            }
        }
        return out
    }
}

/// A JSON `int` or `string` field, kept with its type (Python keeps `1` and `"1"` apart).
struct FlexibleID: Decodable, Hashable {
    let id: QuestionID
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) {
            id = .int(i)
        } else {
            id = .string(try c.decode(String.self))
        }
    }
}
