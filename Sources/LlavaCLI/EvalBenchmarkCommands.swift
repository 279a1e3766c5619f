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
    @Option(name: .long, help: "Benchmark: \(BenchmarkName.allCases.map(\.rawValue).joined(separator: ", ")). Asked with LLaVA-1.5's evaluation settings unless flags say otherwise: template llava-v1, image mode pad, greedy, the max new tokens of its script (128; mmbench and scienceqa 1024).")
    var benchmark: BenchmarkName?

    @Option(name: .long, help: "The benchmark's folder, laid out as LLaVA's playground/data/eval/<folder>.")
    var data: String?

    @Option(name: .long, help: "VQAv2 questions: test-dev (writes the upload file) or val (accuracy against the val annotations).")
    var split: VQAv2Benchmark.Split = .testDev

    @Option(name: .long, help: "With --benchmark: write the file the official server takes (vqav2 test-dev, vizwiz; also gqa's converted predictions, seed's upload and mmbench's .xlsx workbook). Checked before any question is asked.")
    var submission: String?

    var isSet: Bool { benchmark != nil }

    /// Refuses, before anything is asked or scored, a --submission the benchmark has no file
    /// for, and output files that could not be written.
    func checkOutputs(summary: String) throws {
        guard let benchmark else { return }
        try checkWritable(summary, what: "the summary")
        guard let submission else { return }
        guard benchmark.hasSubmission(vqav2Split: split) else {
            throw CLIError("--submission: \(benchmark.rawValue)\(benchmark == .vqav2 ? " " + split.rawValue : "") has no submission file (vqav2 test-dev, vizwiz, gqa, seed and mmbench have one)")
        }
        if benchmark == .mmbench && !submission.lowercased().hasSuffix(".xlsx") {
            throw CLIError("--submission \(submission): MMBench takes an Excel workbook, as LLaVA's convert_mmbench_for_submission.py writes it: name it .xlsx")
        }
        try checkWritable(submission, what: "the submission")
    }

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
    /// The default summary is not written into the benchmark folder or beside `annotations`.
    static func finish(_ score: BenchmarkScore, answers: String, flags: BenchmarkFlags, summary: String?,
                       annotations: String? = nil) throws {
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
        if let path = summary ?? defaultSummaryPath(answers, outside: [flags.data, annotations].compactMap { $0 }) {
            try writeSummary(object, to: path)
        }
        if let path = flags.submission { try score.writeSubmission(to: path) }
        if !score.unanswered.isEmpty {
            printErr("llava: eval: \(score.unanswered.count) of \(score.questions) questions have no usable answer in \(answers) (scored as wrong)")
        }
    }
}

extension EvalScore {
    /// `eval score --benchmark NAME --data DIR --answers A` (or `--annotations REFS` for captions).
    func scoreBenchmark(_ flags: BenchmarkFlags, answers: String, annotations: String?, summary: String?) throws {
        try reportingErrors {
            if AnswerKeyCheck.isAnswerKey(answers) { throw CLIError(AnswerKeyCheck.message(answers)) }
            try flags.checkOutputs(summary: summary ?? defaultSummaryPath(answers))
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
            try BenchmarkReport.finish(score, answers: answers, flags: flags, summary: summary, annotations: annotations)
        }
    }
}

extension EvalRun {
    /// `eval run --benchmark NAME --data DIR --answers OUT`: asks the benchmark's questions as
    /// LLaVA does, appends LLaVA-format answer lines durably (resumable), then scores the file.
    func runBenchmark(_ flags: BenchmarkFlags) throws {
        if retryFailed { throw CLIError("--retry-failed does not apply to --benchmark runs; remove the failed lines from \(answers) and run again") }
        if annotations != nil { throw CLIError("--annotations does not apply to --benchmark runs: the benchmark folder has the answers") }
        if questions != nil { throw CLIError("--questions does not apply to --benchmark runs: the benchmark folder has the questions") }
        if imageFolder != nil { throw CLIError("--image-folder does not apply to --benchmark runs: the benchmark folder has the images") }
        let adapter = try flags.adapter()
        try flags.checkOutputs(summary: summary ?? defaultSummaryPath(answers))
        let questions = try adapter.questions()
        let shard = try sharding.resolved()
        let mine = shard?.slice(questions) ?? questions
        let directory = try model.resolve()
        let generation = generation.llavaDefaults(for: adapter.name)
        let template = try ConversationTemplate.load(generation.template)
        if !quiet { printErr("llava: eval: " + LLaVAEvalSettings.line([adapter.name], generation: self.generation, image: imageOptions)) }
        let run = RunSettings(directory: directory, model: model, imageMode: imageOptions.llavaDefault, merge: merge.settings,
                              generation: generation, defaultSeed: 0)
        let recorded = try BenchmarkSettings(run, template: template)
        let cell = try BenchmarkCell(adapter: adapter, answers: answers, settings: recorded)
        if cell.file.repairedBytes > 0 {
            printErr("llava: \(answers): cut off an incomplete last line (\(cell.file.repairedBytes) bytes) left by an interrupted run")
        }
        let pending = cell.pending(mine)
        if !quiet {
            printErr("llava: eval: \(adapter.name.rawValue): \(mine.count) questions, \(mine.count - pending.count) already answered in \(answers), \(pending.count) to go")
        }
        var failed = 0
        if !pending.isEmpty {
            let pipeline = try model.loadPipeline(run)
            let answerer = QuestionAnswerer(pipeline: pipeline, settings: run, template: template,
                                            cache: ImageCache(budgetBytes: Int(imageCacheMb * 1_048_576)))
            failed = try cell.answer(pending, answerer: answerer, quiet: quiet)
        }
        cell.file.closeFile()
        if shard == nil {
            let score = try adapter.score(AnswerSet(path: answers))
            try BenchmarkReport.finish(score, answers: answers, flags: flags, summary: summary)
        }
        if failed > 0 {
            throw CLIError("\(failed) of \(mine.count) questions failed (metadata.error in \(answers)); they count as unanswered")
        }
    }
}

/// LLaVA-1.5's own evaluation settings, the defaults of benchmark runs so that their numbers
/// compare with the paper's: the vicuna_v1 conversation (our llava-v1 template), images padded
/// to a square (`image_aspect_ratio pad`), greedy decoding (`--temperature 0`) and the answer
/// length of the benchmark's script. Flags given on the command line take their place.
enum LLaVAEvalSettings {
    static let template = "llava-v1"
    static let imageMode = ImageMode.pad

    /// The one line a run prints at its start: "LLaVA-1.5 evaluation settings
    /// (scripts/v1_5/eval/gqa.sh): template llava-v1, image mode pad, greedy, at most 128 new tokens".
    static func line(_ benchmarks: [BenchmarkName], generation: GenerationFlags, image: ImageOptions) -> String {
        func given(_ isGiven: Bool) -> String { isGiven ? " (given)" : "" }
        var parts = [
            "template \(generation.templateFlag ?? template)" + given(generation.templateFlag != nil),
            "image mode \((image.imageModeFlag ?? imageMode).rawValue)" + given(image.imageModeFlag != nil),
            generation.temperature == 0 ? "greedy" : "temperature \(shown(generation.temperature)) (given)",
        ]
        if let n = generation.maxTokensFlag {
            parts.append("at most \(n) new tokens (given)")
        } else {
            let counts = Dictionary(grouping: benchmarks, by: \.llavaMaxNewTokens)
            let main = counts.max { a, b in (a.value.count, b.key) < (b.value.count, a.key) }!.key
            let others = counts.filter { $0.key != main }.sorted { $0.key < $1.key }
                .map { "\($0.value.map(\.rawValue).joined(separator: ", ")): \($0.key)" }
            parts.append("at most \(main) new tokens" + (others.isEmpty ? "" : " (" + others.joined(separator: "; ") + ")"))
        }
        let source = benchmarks.count == 1 ? " (\(benchmarks[0].llavaScript))" : ""
        return "LLaVA-1.5 evaluation settings\(source): " + parts.joined(separator: ", ")
    }
}

extension GenerationFlags {
    /// These flags with LLaVA's template and answer length for `benchmark` where none was given.
    func llavaDefaults(for benchmark: BenchmarkName) -> GenerationFlags {
        var g = self
        if templateFlag == nil { g.template = LLaVAEvalSettings.template }
        if maxTokensFlag == nil { g.maxTokens = benchmark.llavaMaxNewTokens }
        return g
    }
}

extension ImageOptions {
    /// --image-mode, or LLaVA's padding when none was given.
    var llavaDefault: ImageMode { imageModeFlag ?? LLaVAEvalSettings.imageMode }
}

/// How answers are produced, as recorded in every answer line (`model_id` and `metadata`) by
/// `eval run` and the benchmark runs alike: a resumed file must have been written with the same
/// values.
struct BenchmarkSettings {
    let run: RunSettings
    let template: ConversationTemplate
    let metadata: JSONObject

    /// `template` is `run.template` loaded (its name is what the lines record).
    init(_ run: RunSettings, template: ConversationTemplate) throws {
        self.run = run
        self.template = template
        let g = run.generation, sampling = run.generation.sampling
        metadata = [
            "template": .string(template.name), "image_mode": .string(run.imageMode.rawValue),
            "max_tokens": .int(Int64(g.maxTokens)), "temperature": .double(Double("\(sampling.temperature)") ?? 0),
            "top_p": .double(Double("\(sampling.topP)") ?? 1), "seed": .int(Int64(truncatingIfNeeded: g.seed)),
            "top_k": .int(Int64(sampling.topK)), "min_p": .double(Double("\(sampling.minP)") ?? 0),
            "repeat_penalty": .double(Double("\(sampling.repeatPenalty)") ?? 1),
            "repeat_last_n": .int(Int64(sampling.repeatLastN)), "ignore_eos": .bool(!g.stopAtEOS),
            "ctx_size": .int(Int64(g.contextSize ?? 0)),
            "merge": try JSONValue(mergeSettings: run.merge),
        ]
    }

    var modelID: String { run.modelID }

    var recordedSettings: RecordedSettings {
        RecordedSettings(evalSettingsFields.map { field in
            (field, field == "model_id" ? .string(modelID) : metadata[String(field.dropFirst("metadata.".count))]!)
        }, absentMeans: samplerDefaults)
    }
}

/// One benchmark answered under one setting: its answer file, resumed and appended durably.
struct BenchmarkCell {
    let adapter: any BenchmarkAdapter
    let answers: String
    let settings: BenchmarkSettings
    let file: BenchmarkAnswerFile
    /// The benchmark's name in messages.
    let label: String

    init(adapter: any BenchmarkAdapter, answers: String, settings: BenchmarkSettings, label: String? = nil) throws {
        self.adapter = adapter
        self.label = label ?? adapter.name.rawValue
        self.answers = answers
        self.settings = settings
        file = try BenchmarkAnswerFile(path: answers, settings: settings.recordedSettings)
    }

    func pending(_ questions: [BenchmarkItem]) -> [BenchmarkItem] {
        questions.filter { !file.answered.contains(BenchmarkAnswerFile.key($0.id, prompt: $0.recordedPrompt)) }
    }

    /// Asks `pending` in order, one durable line each; returns how many failed.
    func answer(_ pending: [BenchmarkItem], answerer: QuestionAnswerer, quiet: Bool) throws -> Int {
        var failed = 0
        for (n, q) in pending.enumerated() {
            var metadata = settings.metadata
            if let category = q.category { metadata["category"] = .string(category) }
            var text = ""
            do {
                let a = try answerer.answer(q.text, image: q.answererImage())
                text = a.text.pythonStripped()
                metadata["visual_tokens"] = .int(Int64(a.visualTokens))
                metadata["generated_tokens"] = .int(Int64(a.generatedTokens))
                metadata["stop_reason"] = .string(a.stopReason.rawValue)
                metadata["image_cache_hit"] = .bool(a.cacheHit)
                let t = a.timings
                metadata["timings"] = .object([
                    "image_ms": .double(rounded(t.imageMs)), "vision_ms": .double(rounded(t.visionMs)),
                    "prefill_ms": .double(rounded(t.prefillMs)), "ttft_ms": .double(rounded(t.ttftMs)),
                    "decode_ms": .double(rounded(t.decodeMs)),
                ])
            } catch {
                failed += 1
                metadata["error"] = .string(String(describing: error))
                printErr("llava: \(label) question \(q.id): \(error)")
            }
            var line: JSONObject = ["question_id": q.id.json, "prompt": .string(q.recordedPrompt), "text": .string(text)]
            for (key, value) in q.extra { line[key] = value }
            line["answer_id"] = .string(AnswerID.make())
            line["model_id"] = .string(settings.modelID)
            line["metadata"] = .object(metadata)
            do {
                try file.append(line)
            } catch {
                throw CLIError("\(error); the answers written so far are kept, run the same command again to resume")
            }
            if !quiet && ((n + 1) % 50 == 0 || n + 1 == pending.count) {
                printErr("llava: eval: \(label): \(n + 1)/\(pending.count) answered")
            }
        }
        return failed
    }
}

extension BenchmarkItem {
    /// The question's image for `QuestionAnswerer` (nil for a text-only question).
    func answererImage() throws -> QuestionAnswerer.Image? {
        switch image {
        case nil: return nil
        case .file(let path)?: return .file(path)
        case .base64?:
            guard let bytes = image?.base64Bytes else { throw CLIError("the image column is not base64") }
            return .bytes(bytes, name: "<base64 image>")
        }
    }
}
