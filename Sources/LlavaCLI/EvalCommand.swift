import ArgumentParser
import Foundation
import Kernels
import LLaVA
import VQAEval

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Answer a LLaVA question file (durably, resumably, sharded) and score the answers.",
        discussion: """
        `llava eval --questions Q.jsonl --image-folder DIR --answers OUT.jsonl` answers every question \
        (the run subcommand is the default); `llava eval merge` joins shard answer files; `llava eval \
        score` scores an answer file against reference answers.
        """,
        subcommands: [EvalRun.self, EvalMerge.self, EvalScore.self, EvalSweep.self],
        defaultSubcommand: EvalRun.self
    )
}

/// The answer-line fields that record how an answer was produced. A file is resumed, and shard
/// files are merged, only when these agree.
let evalSettingsFields = [
    "model_id", "metadata.template", "metadata.image_mode", "metadata.max_tokens", "metadata.temperature",
    "metadata.top_p", "metadata.seed", "metadata.merge",
]

struct EvalRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Answer every question of a question file into an answer file (the default subcommand).",
        discussion: """
        Each answer line is written with a single write and fsynced as soon as it exists. Running the \
        same command again resumes: question_ids already in --answers are skipped and the others are \
        appended in input order; an incomplete last line left by a killed run is cut off first. The \
        settings recorded in the file (model, merge, template, image mode, decoding) must match.

        A question whose image cannot be read gets an answer line with an empty text and \
        metadata.error; the run goes on and exits with status 1 at the end. Decoding is greedy unless \
        --temperature is given; the sampling seed defaults to 0 here, so a resumed run samples as an \
        uninterrupted one.
        """
    )

    @Option(name: .long, help: "Question file: JSON lines with question_id, image, text, category (LLaVA's model_vqa_loader format).")
    var questions: String?

    @Option(name: .long, help: "Folder the questions' image paths are relative to.")
    var imageFolder: String?

    @OptionGroup var benchmarkFlags: BenchmarkFlags

    @Option(name: .long, help: "Answer file to write (JSON lines, LLaVA's format); resumed when it exists.")
    var answers: String

    @OptionGroup var model: ModelOptions
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var merge: MergeFlags
    @OptionGroup var generation: GenerationFlags

    @Option(name: .long, help: "Reference answers (JSON lines: question_id and answers, answer or label); prints scores.")
    var annotations: String?

    @Option(name: .long, help: "Summary JSON to write (default: the answer file with .summary.json).")
    var summary: String?

    @Option(name: .long, help: "Run only the I-th of N contiguous chunks of the questions (1-based), e.g. 2/8.")
    var shard: String?

    @Flag(name: .long, help: "Stop (exit 1, nothing answered) when the question file has a malformed line.")
    var strict = false

    @Flag(name: .long, help: "No progress display and no progress messages on stderr.")
    var quiet = false

    @Flag(name: .long, help: "Answer again the questions whose earlier answer line records an error.")
    var retryFailed = false

    @Option(name: .long, help: "Memory for encoded images, in MiB (0: no cache).")
    var imageCacheMb: Double = 512

    @Option(name: .long, help: "Without a terminal, print a progress line every P percent.")
    var progressEvery: Double = 10

    func validate() throws {
        if let shard {
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
        }
        if !(imageCacheMb >= 0 && imageCacheMb < 1e9) { throw ValidationError("--image-cache-mb must be >= 0") }
        if !(progressEvery > 0 && progressEvery <= 100) { throw ValidationError("--progress-every must satisfy 0 < P <= 100") }
    }

    func run() throws {
        try reportingErrors {
            try execute()
        }
    }

    func execute() throws {
        if benchmarkFlags.isSet { return try runBenchmark(benchmarkFlags) }
        guard let questions, let imageFolder else { throw CLIError("give --questions and --image-folder, or --benchmark and --data") }
        let started = Date()
        let shard = try self.shard.map { try Shard(parsing: $0) }
        let file = try QuestionFile(path: questions)
        for issue in file.issues {
            printErr("llava: \(strict ? "error: " : "")\(issue)\(strict ? "" : " (line skipped)")")
        }
        if strict && !file.issues.isEmpty {
            throw CLIError("\(questions) has \(file.issues.count) malformed line\(file.issues.count == 1 ? "" : "s"); nothing was answered (--strict)")
        }
        let mine = shard?.slice(file.questions) ?? file.questions
        let keys = try annotations.map { try Annotations(path: $0) }
        let directory = try model.resolve()
        let modelID = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        let template = try ConversationTemplate.load(generation.template)
        let mergeSettings = merge.settings
        let seed = generation.seed ?? 0
        let options = GenerationOptions(maxTokens: generation.maxTokens, temperature: generation.temperature,
                                        topP: generation.topP, seed: seed)
        let settings = evalSettings(template: template.name, seed: seed)
        let runSettings = RunSettings(evalSettingsFields.map { field in
            (field, field == "model_id" ? .string(modelID) : settings[String(field.dropFirst("metadata.".count))]!)
        })

        let writer = try AnswerWriter(path: answers, settings: runSettings, questionIDs: Set(mine.map(\.id)),
                                      retryFailed: retryFailed)
        if writer.repairedBytes > 0 {
            printErr("llava: \(answers): cut off an incomplete last line (\(writer.repairedBytes) bytes) left by an interrupted run")
        }
        if writer.removedFailed > 0 && !quiet {
            printErr("llava: \(answers): removed \(writer.removedFailed) failed answer\(writer.removedFailed == 1 ? "" : "s") to answer again (--retry-failed)")
        }
        let answered = Set(writer.existing.map(\.id))
        let pending = mine.filter { !answered.contains($0.id) }
        if !quiet {
            let scope = shard.map { " (shard \($0) of \(file.questions.count))" } ?? ""
            printErr("llava: eval: \(mine.count) questions\(scope), \(answered.count) already answered in \(answers), \(pending.count) to go")
        }

        var running = ScoreReport()
        let categoryOf = Dictionary(mine.map { ($0.id, $0.category) }, uniquingKeysWith: { a, _ in a })
        if let keys {
            for r in writer.existing { running.add(r, annotations: keys, category: categoryOf[r.id] ?? nil) }
        }
        let cache = ImageCache(budgetBytes: Int(imageCacheMb * 1_048_576))
        var towerRuns = 0, failedNow = 0
        let progress = ProgressDisplay(total: mine.count, done: answered.count, enabled: !quiet, step: progressEvery)

        if !pending.isEmpty {
            let pipeline = try model.loadPipeline(directory)
            _ = try pipeline.model.plannedVisualTokens(mergeSettings) // validates the merge settings for this tower
            progress.start()
            for q in pending {
                var metadata = settings
                if let category = q.category { metadata["category"] = .string(category) }
                var text = ""
                do {
                    let encoded = try pipeline.encode(imagePath: q.imagePath(folder: imageFolder), mode: imageOptions.imageMode,
                                                      merge: mergeSettings, cache: cache)
                    if !encoded.hit { towerRuns += 1 }
                    let result = try pipeline.ask(image: encoded.image, question: q.text, template: template, options: options)
                    text = result.text
                    metadata["image_sha256"] = .string(encoded.digest)
                    metadata["visual_tokens"] = .int(Int64(result.visualTokens))
                    metadata["generated_tokens"] = .int(Int64(result.generatedIds.count))
                    metadata["stop_reason"] = .string(result.stopReason.rawValue)
                    metadata["image_cache_hit"] = .bool(encoded.hit)
                    let t = result.timings
                    metadata["timings"] = .object([
                        "image_ms": .double(rounded(t.imageMs)), "vision_ms": .double(rounded(t.visionMs)),
                        "prefill_ms": .double(rounded(t.prefillMs)), "ttft_ms": .double(rounded(t.ttftMs)),
                        "decode_ms": .double(rounded(t.decodeMs)), "decode_tokens_per_s": .double(rounded(t.decodeTokensPerS)),
                        "total_ms": .double(rounded(t.totalMs)),
                    ])
                } catch {
                    failedNow += 1
                    let message = String(describing: error)
                    metadata["image_cache_hit"] = .bool(false)
                    metadata["error"] = .string(message)
                    progress.message("llava: question \(q.id) (\(questions):\(q.line)): \(message)")
                }
                let line: JSONObject = [
                    "question_id": q.id.json, "prompt": .string(q.text), "text": .string(text),
                    "answer_id": .string(AnswerID.make()), "model_id": .string(modelID), "metadata": .object(metadata),
                ]
                do {
                    try writer.append(line)
                } catch {
                    progress.finish()
                    throw CLIError("\(error); the answers written so far are kept, run the same command again to resume")
                }
                if let reference = keys?.reference(for: q.id) {
                    running.scores.add(category: q.category, prediction: text, reference: reference)
                }
                progress.advance(accuracy: keys == nil || running.scores.overall.count == 0 ? nil : running.scores.overall.vqaAccuracy,
                                 cacheHits: cache.statistics.hits, failed: failedNow)
            }
            progress.finish()
        }
        writer.closeFile()

        // Everything below reads the file back: the scores and counts are those of what is on disk.
        let contents = try AnswerFileContents.read(answers)
        let ids = Set(mine.map(\.id))
        let records = contents.records.filter { ids.contains($0.id) }
        let failed = records.filter { $0.error != nil }.count
        let seconds = Date().timeIntervalSince(started)
        let newCount = pending.count
        let stats = cache.statistics
        if !quiet && newCount > 0 {
            let rate = Double(newCount) / max(progress.elapsed, 1e-9)
            printErr("llava: eval: answered \(newCount) question\(newCount == 1 ? "" : "s") in \(formatDuration(progress.elapsed)) (\(formatFixed(rate, decimals: 2)) per s); image cache: \(stats.hits) hit\(stats.hits == 1 ? "" : "s"), \(towerRuns) tower run\(towerRuns == 1 ? "" : "s"), \(stats.evictions) evicted")
        }

        var report: ScoreReport?
        if let keys {
            let r = ScoreReport(records: records, annotations: keys, categoryOf: { categoryOf[$0] ?? nil })
            report = r
            print(r.scores.table(), terminator: "")
            if r.unannotated > 0 { printErr("llava: eval: \(r.unannotated) answers have no reference in \(keys.path) (not scored)") }
        }

        var summaryObject: JSONObject = [
            "answers": .string(answers), "questions": .string(questions),
            "annotations": annotations.map { .string($0) } ?? .null,
            "shard": shard.map { .string($0.description) } ?? .null,
            "model_id": .string(modelID), "settings": .object(settings),
        ]
        summaryObject["counts"] = .object([
            "questions": .int(Int64(mine.count)), "answered": .int(Int64(records.count)), "failed": .int(Int64(failed)),
            "answered_this_run": .int(Int64(newCount)), "resumed": .int(Int64(answered.count)),
            "malformed_lines": .int(Int64(file.issues.count)),
        ])
        summaryObject["run"] = .object([
            "seconds": .double(rounded(seconds)),
            "questions_per_s": .double(rounded(newCount > 0 ? Double(newCount) / max(progress.elapsed, 1e-9) : 0)),
            "threads": .int(Int64(Threads.count)),
            "image_cache": .object([
                "hits": .int(Int64(stats.hits)), "tower_runs": .int(Int64(towerRuns)), "misses": .int(Int64(stats.misses)),
                "evictions": .int(Int64(stats.evictions)), "entries": .int(Int64(stats.entries)),
                "bytes": .int(Int64(stats.bytes)), "budget_bytes": .int(Int64(stats.budgetBytes)),
            ]),
        ])
        summaryObject["scores"] = report?.json ?? .null
        try writeSummary(summaryObject, to: summary ?? defaultSummaryPath(answers))

        if failed > 0 {
            throw CLIError("\(failed) of \(mine.count) question\(mine.count == 1 ? "" : "s") failed (metadata.error in \(answers)); run again with --retry-failed to answer them again")
        }
    }

    /// The settings part of every answer line's metadata.
    func evalSettings(template: String, seed: UInt64) -> JSONObject {
        let s = merge.settings
        let o = s.options
        let mergeObject: JSONObject = [
            "method": .string(o.method.rawValue), "ratio": o.ratio.map { .double($0) } ?? .null,
            "keep": o.keep.map { .int(Int64($0)) } ?? .null, "metric": .string(s.metric.rawValue),
            "weighting": .string(o.weighting.rawValue), "prop_attn": .bool(s.proportionalAttention),
            "pitome_every_layer": .bool(o.pitomeEveryLayer), "seed": .int(Int64(truncatingIfNeeded: o.seed)),
        ]
        return [
            "template": .string(template), "image_mode": .string(imageOptions.imageMode.rawValue),
            "max_tokens": .int(Int64(generation.maxTokens)), "temperature": .double(Double("\(generation.temperature)") ?? 0),
            "top_p": .double(Double("\(generation.topP)") ?? 1), "seed": .int(Int64(truncatingIfNeeded: seed)),
            "merge": .object(mergeObject),
        ]
    }
}

struct EvalMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join shard answer files, in the order given, into one answer file.",
        discussion: """
        Every shard must end with a complete line, no question_id may repeat, and all lines must have \
        been produced with the same settings. The output is written to a temporary file and renamed.
        """
    )

    @Option(name: .long, help: "The merged answer file to write.")
    var answers: String

    @Argument(help: "Shard answer files, in shard order.")
    var shards: [String]

    @Flag(name: .long, help: "Print nothing on success.")
    var quiet = false

    func validate() throws {
        if shards.isEmpty { throw ValidationError("give the shard answer files to merge") }
    }

    func run() throws {
        do {
            let n = try AnswerMerger.merge(shards: shards, into: answers, settingsFields: evalSettingsFields)
            if !quiet { printErr("llava: eval merge: \(shards.count) file\(shards.count == 1 ? "" : "s"), \(n) answers → \(answers)") }
        } catch {
            throw fail(error)
        }
    }
}

struct EvalScore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score an existing answer file against reference answers.",
        discussion: """
        Prints exact match, VQA accuracy and (for yes/no references) POPE metrics per category and \
        overall, and writes the summary JSON. Categories come from --questions (or from the answers' \
        metadata.category).
        """
    )

    @Option(name: .long, help: "Answer file (JSON lines, LLaVA's format).")
    var answers: String

    @Option(name: .long, help: "Reference answers (JSON lines: question_id and answers, answer or label; with --benchmark coco-caption, reference captions).")
    var annotations: String?

    @OptionGroup var benchmarkFlags: BenchmarkFlags

    @Option(name: .long, help: "Question file, for the categories (and to count unanswered questions).")
    var questions: String?

    @Option(name: .long, help: "Summary JSON to write (default: the answer file with .summary.json).")
    var summary: String?

    func run() throws {
        if benchmarkFlags.isSet { return try scoreBenchmark(benchmarkFlags, answers: answers, annotations: annotations, summary: summary) }
        guard let annotations else { throw fail(CLIError("give --annotations, or --benchmark and --data")) }
        try reportingErrors {
            let contents = try AnswerFileContents.read(answers)
            if contents.tornBytes > 0 {
                printErr("llava: \(answers): ignoring an incomplete last line (\(contents.tornBytes) bytes)")
            }
            let keys = try Annotations(path: annotations)
            var categoryOf: [QuestionID: String?] = [:]
            var missing = 0
            if let questions {
                let file = try QuestionFile(path: questions)
                for issue in file.issues { printErr("llava: \(issue) (line skipped)") }
                categoryOf = Dictionary(file.questions.map { ($0.id, $0.category) }, uniquingKeysWith: { a, _ in a })
                let answered = Set(contents.records.map(\.id))
                missing = file.questions.filter { !answered.contains($0.id) }.count
                if missing > 0 {
                    printErr("llava: eval score: \(missing) questions of \(questions) have no answer in \(answers); the scores cover the answered ones")
                }
            }
            let report = ScoreReport(records: contents.records, annotations: keys, categoryOf: { categoryOf[$0] ?? nil })
            if report.scores.overall.count == 0 && !contents.records.isEmpty {
                throw CLIError("no answer in \(answers) has a reference in \(annotations) (do the question_ids match?)")
            }
            print(report.scores.table(), terminator: "")
            if report.unannotated > 0 { printErr("llava: eval score: \(report.unannotated) answers have no reference in \(annotations) (not scored)") }
            var object: JSONObject = [
                "answers": .string(answers), "annotations": .string(annotations),
                "questions": questions.map { .string($0) } ?? .null,
            ]
            object["counts"] = .object([
                "answers": .int(Int64(contents.records.count)), "missing": .int(Int64(missing)),
            ])
            object["scores"] = report.json
            try writeSummary(object, to: summary ?? defaultSummaryPath(answers))
        }
    }
}

/// OUT.jsonl → OUT.summary.json (any other name gets .summary.json appended).
func defaultSummaryPath(_ answers: String) -> String {
    (answers.hasSuffix(".jsonl") ? String(answers.dropLast(".jsonl".count)) : answers) + ".summary.json"
}

/// Writes a summary JSON file (pretty-printed, replaced atomically).
func writeSummary(_ object: JSONObject, to path: String) throws {
    let data = Data((JSONValue.object(object).prettyDescription + "\n").utf8)
    do {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw CLIError("\(path): cannot write the summary: \(error.localizedDescription)")
    }
}

/// "12.3 s" under a minute, then m:ss or h:mm:ss.
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    if seconds < 59.95 { return formatFixed(max(0, seconds), decimals: 1) + " s" }
    let s = Int(seconds.rounded())
    let two = { (x: Int) in x < 10 ? "0\(x)" : "\(x)" }
    return s >= 3600 ? "\(s / 3600):\(two(s / 60 % 60)):\(two(s % 60))" : "\(s / 60):\(two(s % 60))"
}

/// The progress display on stderr: redrawn in place on a terminal, one line every `step`
/// percent otherwise.
final class ProgressDisplay {
    let total: Int
    var done: Int
    let enabled: Bool
    let step: Double
    let terminal = isatty(STDERR_FILENO) == 1
    var began = Date()
    var answeredHere = 0
    var lastBucket = -1
    var drawn = false
    var lastLine = ""

    init(total: Int, done: Int, enabled: Bool, step: Double) {
        self.total = total
        self.done = done
        self.enabled = enabled
        self.step = step
    }

    var elapsed: Double { Date().timeIntervalSince(began) }

    func start() {
        began = Date()
        lastBucket = bucket
        if enabled && terminal { draw(line(accuracy: nil, cacheHits: 0, failed: 0)) }
    }

    var bucket: Int { total > 0 ? Int((Double(done) * 100 / Double(total) / step).rounded(.down)) : 0 }

    func advance(accuracy: Double?, cacheHits: Int, failed: Int) {
        done += 1
        answeredHere += 1
        guard enabled else { return }
        let text = line(accuracy: accuracy, cacheHits: cacheHits, failed: failed)
        if terminal {
            draw(text)
        } else if bucket > lastBucket || done == total {
            lastBucket = bucket
            printErr(text)
        }
    }

    func line(accuracy: Double?, cacheHits: Int, failed: Int) -> String {
        let percent = total > 0 ? Double(done) * 100 / Double(total) : 100
        let rate = answeredHere > 0 ? Double(answeredHere) / max(elapsed, 1e-9) : 0
        var s = "eval \(done)/\(total) \(formatFixed(percent, decimals: 1))%"
        if rate > 0 {
            s += "  \(formatFixed(rate, decimals: 2)) q/s  ETA \(formatDuration(Double(total - done) / rate))"
        }
        if let accuracy { s += "  vqa-acc \(formatFixed(100 * accuracy, decimals: 1))%" }
        s += "  cache hits \(cacheHits)"
        if failed > 0 { s += "  failed \(failed)" }
        return s
    }

    func draw(_ text: String) {
        lastLine = text
        drawn = true
        FileHandle.standardError.write(Data(("\r" + text + "\u{1B}[K").utf8))
    }

    /// Prints a line of its own without breaking the display.
    func message(_ text: String) {
        if enabled && terminal && drawn {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text + "\n\r" + lastLine + "\u{1B}[K").utf8))
        } else {
            printErr(text)
        }
    }

    func finish() {
        if enabled && terminal && drawn {
            FileHandle.standardError.write(Data("\n".utf8))
            drawn = false
        }
    }
}
