import ArgumentParser
import Foundation
import Imaging
import Kernels
import LLaVA
import VQAEval

extension BenchmarkName: ExpressibleByArgument {}
extension VQAv2Benchmark.Split: ExpressibleByArgument {}

/// `--benchmark NAME --data DIR`: a benchmark read from its folder (LLaVA's
/// `playground/data/eval/NAME` layout) instead of a plain question file.
struct BenchmarkFlags: ParsableArguments {
    @Option(name: .long, help: "Benchmark: \(BenchmarkName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var benchmark: BenchmarkName?

    @Option(name: .long, help: "The benchmark's folder, laid out as LLaVA's playground/data/eval/<folder>.")
    var data: String?

    @Option(name: .long, help: "VQAv2 questions: test-dev (writes the upload file) or val (accuracy against the val annotations).")
    var split: VQAv2Benchmark.Split = .testDev

    @Option(name: .long, help: "With --benchmark: write the file the official server takes (vqav2 test-dev, vizwiz; also gqa's converted predictions and seed's upload).")
    var submission: String?

    var isSet: Bool { benchmark != nil }

    func adapter() throws -> any BenchmarkAdapter {
        guard let benchmark else { throw CLIError("no --benchmark given") }
        guard let data else { throw CLIError("--benchmark \(benchmark.rawValue) needs --data DIR (the benchmark's folder)") }
        var info = stat()
        guard stat(data, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { throw CLIError("\(data): no such folder") }
        return benchmark.adapter(folder: data, options: BenchmarkSuiteOptions(vqav2Split: split))
    }
}

/// Prints a benchmark's headline and writes its summary (and submission) files.
enum BenchmarkReport {
    static func finish(_ score: BenchmarkScore, answers: String, flags: BenchmarkFlags, summary: String?) throws {
        if flags.submission != nil && score.submission == nil {
            throw CLIError("--submission: \(score.benchmark.rawValue) has no submission file (vqav2 test-dev, vizwiz, gqa and seed have one)")
        }
        var lines: [[String]] = [["metric", "value"]]
        for (k, v) in score.headline.pairs { lines.append([k, v.numberValue.map { formatFixed($0, decimals: 4) } ?? v.description]) }
        lines.append(["questions", String(score.questions)])
        lines.append(["unanswered", String(score.unanswered.count)])
        print("\(score.benchmark.rawValue)\n" + alignedTable(lines), terminator: "")
        guard case .object(var object) = score.summary else { return }
        object["answers"] = .string(answers)
        object["data"] = flags.data.map { .string($0) } ?? .null
        try writeSummary(object, to: summary ?? defaultSummaryPath(answers))
        if let path = flags.submission {
            let content = score.submission!
            var text = ""
            if score.benchmark == .seed, case .array(let rows) = content {
                // SEED's upload file is JSON lines.
                for row in rows { row.write(to: &text); text += "\n" }
            } else {
                content.write(to: &text)
            }
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw CLIError("\(path): cannot write the submission: \(error.localizedDescription)")
            }
        }
        if !score.unanswered.isEmpty {
            printErr("llava: eval: \(score.unanswered.count) of \(score.questions) questions have no usable answer in \(answers) (scored as wrong)")
        }
    }
}

extension EvalScore {
    /// `eval score --benchmark NAME --data DIR --answers A` (or `--annotations REFS` for captions).
    func scoreBenchmark(_ flags: BenchmarkFlags, answers: String, annotations: String?, summary: String?) throws {
        try reportingErrors {
            let score: BenchmarkScore
            if let annotations, flags.data == nil {
                guard flags.benchmark == .cocoCaption else {
                    throw CLIError("--annotations without --data is for coco-caption; \(flags.benchmark!.rawValue) is read from its folder (--data)")
                }
                let references = try CaptionBenchmark.references(annotations: annotations)
                score = try CaptionBenchmark.score(AnswerSet(path: answers), references: references)
            } else {
                let adapter = try flags.adapter()
                score = try adapter.score(AnswerSet(path: answers))
            }
            try BenchmarkReport.finish(score, answers: answers, flags: flags, summary: summary)
        }
    }
}

extension EvalRun {
    /// `eval run --benchmark NAME --data DIR --answers OUT`: asks the benchmark's questions as
    /// LLaVA does, appends LLaVA-format answer lines durably (resumable), then scores the file.
    func runBenchmark(_ flags: BenchmarkFlags) throws {
        if retryFailed { throw CLIError("--retry-failed does not apply to --benchmark runs; remove the failed lines from \(answers) and run again") }
        if annotations != nil { throw CLIError("--annotations does not apply to --benchmark runs: the benchmark folder has the answers") }
        let adapter = try flags.adapter()
        let questions = try adapter.questions()
        let shard = try self.shard.map { try Shard(parsing: $0) }
        let mine = shard?.slice(questions) ?? questions
        let directory = try model.resolve()
        let modelID = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        let template = try ConversationTemplate.load(generation.template)
        let seed = generation.seed ?? 0
        let options = GenerationOptions(maxTokens: generation.maxTokens, temperature: generation.temperature,
                                        topP: generation.topP, seed: seed)
        let settings = evalSettings(template: template.name, seed: seed)
        let runSettings = RunSettings(evalSettingsFields.map { field in
            (field, field == "model_id" ? .string(modelID) : settings[String(field.dropFirst("metadata.".count))]!)
        })
        let file = try BenchmarkAnswerFile(path: answers, settings: runSettings)
        if file.repairedBytes > 0 {
            printErr("llava: \(answers): cut off an incomplete last line (\(file.repairedBytes) bytes) left by an interrupted run")
        }
        let pending = mine.filter { !file.answered.contains(BenchmarkAnswerFile.key($0.id, prompt: $0.recordedPrompt)) }
        if !quiet {
            printErr("llava: eval: \(adapter.name.rawValue): \(mine.count) questions, \(mine.count - pending.count) already answered in \(answers), \(pending.count) to go")
        }
        var failed = 0
        if !pending.isEmpty {
            let pipeline = try model.loadPipeline(directory)
            let asker = BenchmarkAsker(pipeline: pipeline, mode: imageOptions.imageMode, merge: merge.settings,
                                       template: template, options: options)
            for (n, q) in pending.enumerated() {
                var metadata = settings
                if let category = q.category { metadata["category"] = .string(category) }
                var text = ""
                do {
                    let g = try asker.answer(q)
                    text = g.text.pythonStripped()
                    metadata["visual_tokens"] = .int(Int64(g.visualTokens))
                    metadata["generated_tokens"] = .int(Int64(g.generatedTokens))
                    metadata["stop_reason"] = .string(g.stopReason)
                } catch {
                    failed += 1
                    metadata["error"] = .string(String(describing: error))
                    printErr("llava: question \(q.id): \(error)")
                }
                var line: JSONObject = ["question_id": q.id.json, "prompt": .string(q.recordedPrompt), "text": .string(text)]
                for (key, value) in q.extra { line[key] = value }
                line["answer_id"] = .string(AnswerID.make())
                line["model_id"] = .string(modelID)
                line["metadata"] = .object(metadata)
                do {
                    try file.append(line)
                } catch {
                    throw CLIError("\(error); the answers written so far are kept, run the same command again to resume")
                }
                if !quiet && ((n + 1) % 10 == 0 || n + 1 == pending.count) {
                    printErr("llava: eval: \(n + 1)/\(pending.count) answered")
                }
            }
        }
        file.closeFile()
        if shard == nil {
            let score = try adapter.score(AnswerSet(path: answers))
            try BenchmarkReport.finish(score, answers: answers, flags: flags, summary: summary)
        }
        if failed > 0 {
            throw CLIError("\(failed) of \(mine.count) questions failed (metadata.error in \(answers)); they count as unanswered")
        }
    }
}

/// Puts one benchmark question to the model: the image (a file, or bytes decoded in memory)
/// through the tower, then the question in the conversation template. The last image's
/// embeddings are kept, since benchmarks often ask several questions about one image in a row.
final class BenchmarkAsker {
    let pipeline: LlavaPipeline
    let mode: ImageMode
    let merge: VisionMergeSettings
    let template: ConversationTemplate
    let options: GenerationOptions
    private var last: (image: BenchmarkImage, embeddings: Matrix)?

    struct Answer {
        let text: String
        let visualTokens: Int
        let generatedTokens: Int
        let stopReason: String
    }

    init(pipeline: LlavaPipeline, mode: ImageMode, merge: VisionMergeSettings, template: ConversationTemplate,
         options: GenerationOptions) {
        self.pipeline = pipeline
        self.mode = mode
        self.merge = merge
        self.template = template
        self.options = options
    }

    func embeddings(_ image: BenchmarkImage) throws -> Matrix {
        if let last, last.image == image { return last.embeddings }
        let decoded: RGBImage
        switch image {
        case .file(let path): decoded = try RGBImage(contentsOfFile: path)
        case .encoded(let bytes): decoded = try RGBImage(encoded: bytes)
        }
        let (embeddings, _) = try pipeline.model.encodeImage(pixels: pipeline.pixels(decoded, mode: mode), merge: merge)
        last = (image, embeddings)
        return embeddings
    }

    func answer(_ q: BenchmarkItem) throws -> Answer {
        let embeddings = try q.image.map(embeddings)
        let ids: [Int]
        if let embeddings {
            ids = try pipeline.model.promptIds(template: template, question: q.text, imageTokens: embeddings.rows)
        } else {
            // A text-only question (ScienceQA without a picture): the turn without its image slot.
            var textOnly = template
            textOnly.firstTurn = textOnly.firstTurn.replacingOccurrences(of: ConversationTemplate.imagePlaceholder + "\n", with: "")
                .replacingOccurrences(of: ConversationTemplate.imagePlaceholder, with: "")
            let m = pipeline.model
            ids = try tokenizePrompt(textOnly.firstPrompt(question: q.text), tokenizer: m.tokenizer,
                                     imageTokenId: m.config.imageTokenIndex, imageTokens: 0)
        }
        let g = try pipeline.model.generate(ids: ids, imageEmbeddings: embeddings, options: options)
        return Answer(text: g.text, visualTokens: embeddings?.rows ?? 0, generatedTokens: g.generatedIds.count,
                      stopReason: g.stopReason.rawValue)
    }
}
