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
/// The sampler settings that answer files written before they were recorded were made with.
let samplerDefaults: [String: JSONValue] = [
    "metadata.top_k": .int(0), "metadata.min_p": .double(0), "metadata.repeat_penalty": .double(1),
    "metadata.repeat_last_n": .int(64), "metadata.ignore_eos": .bool(false), "metadata.ctx_size": .int(0),
]

let evalSettingsFields = [
    "model_id", "metadata.template", "metadata.image_mode", "metadata.max_tokens", "metadata.temperature",
    "metadata.top_p", "metadata.seed", "metadata.merge", "metadata.top_k", "metadata.min_p", "metadata.repeat_penalty",
    "metadata.repeat_last_n", "metadata.ignore_eos", "metadata.ctx_size",
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

        When every question has been tried, the file is put back in input order (atomically) if \
        a resume appended answers after later ones. Ctrl-C stops at once, saying how many answers \
        are saved; the same command resumes.

        A question whose image cannot be used (missing, unreadable, over a limit, or outside \
        --image-folder) is unanswered: its answer line has an empty text and metadata.error, it is \
        counted and listed in the summary, and a resume does not try it again unless \
        --retry-failed is given; the run goes on and exits with status 1 at the end. Decoding is \
        greedy unless --temperature is given; the sampling seed defaults to 0 here (-s sets it), so \
        a resumed run samples as an uninterrupted one.
        """
    )

    @Option(name: .long, help: "Question file: JSON lines with question_id, image, text, category (LLaVA's model_vqa_loader format).")
    var questions: String?

    @Option(name: .long, help: "Folder the questions' image paths are relative to (default: the question file's folder, then its images/); they must stay inside it.")
    var imageFolder: String?

    @Flag(name: .long, help: "Allow image paths that leave --image-folder (absolute paths, .. or symbolic links out of it).")
    var allowOutsideImages = false

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

    @OptionGroup var sharding: ShardFlags

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
        if !(imageCacheMb >= 0 && imageCacheMb < 1e9) { throw invalid("--image-cache-mb", "in [0, 1e9)", imageCacheMb) }
        if !(progressEvery > 0 && progressEvery <= 100) { throw invalid("--progress-every", "in (0, 100]", progressEvery) }
    }

    func run() throws {
        try reportingErrors {
            try execute()
        }
    }

    func execute() throws {
        try model.requireCLIP(for: [merge.merge])
        if benchmarkFlags.isSet { return try runBenchmark(benchmarkFlags) }
        guard let questions else { throw CLIError("give --questions (a question file), or --benchmark and --data") }
        let started = Date()
        let shard = try sharding.resolved()
        let file = try readQuestions(questions)
        let mine = shard?.slice(file.questions) ?? file.questions
        let keys = try annotations.map { try Annotations(path: $0) }
        let directory = try model.resolve()
        let template = try ConversationTemplate.load(generation.template)
        let run = RunSettings(directory: directory, model: model, imageMode: imageOptions.imageMode, merge: merge.settings,
                              generation: generation, defaultSeed: 0)
        let recorded = try BenchmarkSettings(run, template: template)
        let modelID = recorded.modelID, settings = recorded.metadata

        let writer = try AnswerWriter(path: answers, settings: recorded.recordedSettings, questionIDs: Set(mine.map(\.id)),
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

        let interrupt = InterruptReport(answers: answers, saved: writer.existing.count, progress: progress)
        if !pending.isEmpty {
            let pipeline = try model.loadPipeline(run)
            _ = try pipeline.model.contextSize(run.generation)
            _ = try pipeline.model.plannedVisualTokens(run.merge) // validates the merge settings for this tower
            progress.start()
            let asking = Asking(answerer: QuestionAnswerer(pipeline: pipeline, settings: run, template: template, cache: cache),
                                modelID: modelID, settings: settings)
            for q in pending {
                let answer = asking.answer(q, imagePath: { try imageLocation(q, questionFile: questions) })
                if answer.towerRun { towerRuns += 1 }
                if let message = answer.error {
                    failedNow += 1
                    progress.message("llava: question \(q.id) (\(questions):\(q.line)): \(message)")
                }
                let line = answer.line
                let record: AnswerRecord
                do {
                    record = try interrupt.saving { try writer.append(line) }
                } catch {
                    progress.finish()
                    throw CLIError("\(error); the answers written so far are kept, run the same command again to resume")
                }
                if let keys { running.add(record, annotations: keys, category: q.category) }
                progress.advance(accuracy: keys == nil || running.scores.overall.count == 0 ? nil : running.scores.overall.vqaAccuracy,
                                 cacheHits: cache.statistics.hits, failed: failedNow)
            }
            progress.finish()
        }
        if try writer.putInOrder(mine.map(\.id)), !quiet {
            printErr("llava: \(answers): put the answers back in input order")
        }
        writer.closeFile()
        interrupt.stop()

        try report(RunTally(questions: mine, newCount: pending.count, resumed: answered.count,
                            malformed: file.issues.count, towerRuns: towerRuns, elapsed: progress.elapsed,
                            started: started, cache: cache.statistics),
                   questionFile: questions, keys: keys, categoryOf: categoryOf, shard: shard, modelID: modelID,
                   settings: settings)
    }

    /// Reads the answer file back (the scores and counts are those of what is on disk), prints
    /// the scores, writes the summary, and fails when questions are unanswered.
    func report(_ tally: RunTally, questionFile questions: String, keys: Annotations?, categoryOf: [QuestionID: String?],
                shard: Shard?, modelID: String, settings: JSONObject) throws {
        let mine = tally.questions, newCount = tally.newCount, stats = tally.cache, towerRuns = tally.towerRuns
        let contents = try AnswerFileContents.read(answers)
        let ids = Set(mine.map(\.id))
        let records = contents.records.filter { ids.contains($0.id) }
        let failedIDs = records.filter { $0.error != nil }.map(\.id)
        let failed = failedIDs.count
        let seconds = Date().timeIntervalSince(tally.started)
        if !quiet && newCount > 0 {
            let rate = Double(newCount) / max(tally.elapsed, 1e-9)
            printErr("llava: eval: answered \(newCount) question\(newCount == 1 ? "" : "s") in \(formatDuration(tally.elapsed)) (\(formatFixed(rate, decimals: 2)) per s); image cache: \(stats.hits) hit\(stats.hits == 1 ? "" : "s"), \(towerRuns) tower run\(towerRuns == 1 ? "" : "s"), \(stats.evictions) evicted")
        }

        var report: ScoreReport?
        if let keys {
            let r = ScoreReport(records: records, annotations: keys, categoryOf: { categoryOf[$0] ?? nil })
            report = r
            StandardStream.output.write(r.scores.table())
            try StandardStream.output.check()
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
            "answered_this_run": .int(Int64(newCount)), "resumed": .int(Int64(tally.resumed)),
            "malformed_lines": .int(Int64(tally.malformed)),
        ])
        summaryObject["unanswered"] = .array(failedIDs.map(\.json))
        summaryObject["run"] = .object([
            "seconds": .double(rounded(seconds)),
            "questions_per_s": .double(rounded(newCount > 0 ? Double(newCount) / max(tally.elapsed, 1e-9) : 0)),
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
            let shown = failedIDs.prefix(10).map(\.description).joined(separator: ", ") + (failed > 10 ? ", …" : "")
            printErr("llava: eval: unanswered (metadata.error): \(shown)")
            throw CLIError("\(failed) of \(mine.count) question\(mine.count == 1 ? "" : "s") failed (metadata.error in \(answers)); run again with --retry-failed to answer them again")
        }
    }

    /// The question file, its malformed lines reported (and, with --strict, refused).
    func readQuestions(_ questions: String) throws -> QuestionFile {
        let file = try QuestionFile(path: questions)
        for issue in file.issues {
            printErr("llava: \(strict ? "error: " : "")\(issue)\(strict ? "" : " (line skipped)")")
        }
        if strict && !file.issues.isEmpty {
            throw CLIError("\(questions) has \(file.issues.count) malformed line\(file.issues.count == 1 ? "" : "s"); nothing was answered (--strict)")
        }
        return file
    }

    /// A question's image file: inside --image-folder, lexically and with symbolic links
    /// resolved, unless --allow-outside-images.
    func imageLocation(_ q: Question, questionFile: String) throws -> String {
        let path = ImageLocation.path(of: q.image, questionFile: questionFile, folder: imageFolder)
        if allowOutsideImages { return path }
        let root = imageFolder ?? ImageLocation.folder(of: questionFile)
        let outside = "image \(q.image) is outside \(imageFolder == nil ? "the question file's folder" : "--image-folder") \(root) (--allow-outside-images allows it)"
        if q.image.hasPrefix("/") { throw CLIError(outside) }
        var depth = 0
        for part in q.image.split(separator: "/") where part != "." {
            depth += part == ".." ? -1 : 1
            if depth < 0 { throw CLIError(outside) }
        }
        guard let resolved = realPath(path) else { return path } // missing: the decoder says so
        guard let root = realPath(root), resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw CLIError(outside + "; it resolves to \(resolved)")
        }
        return path
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
            if AnswerKeyCheck.isAnswerKey(answers) {
                throw CLIError("--answers: " + AnswerKeyCheck.message(answers) + "; the merge would replace it")
            }
            if let key = shards.first(where: AnswerKeyCheck.isAnswerKey) { throw CLIError(AnswerKeyCheck.message(key)) }
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
            if AnswerKeyCheck.isAnswerKey(answers) { throw CLIError(AnswerKeyCheck.message(answers)) }
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
            StandardStream.output.write(report.scores.table())
            try StandardStream.output.check()
            if report.unannotated > 0 { printErr("llava: eval score: \(report.unannotated) answers have no reference in \(annotations) (not scored)") }
            var object: JSONObject = [
                "answers": .string(answers), "annotations": .string(annotations),
                "questions": questions.map { .string($0) } ?? .null,
            ]
            object["counts"] = .object([
                "answers": .int(Int64(contents.records.count)), "missing": .int(Int64(missing)),
            ])
            object["scores"] = report.json
            if let path = summary ?? defaultSummaryPath(answers, outside: [annotations, questions].compactMap { $0 }) {
                try writeSummary(object, to: path)
            }
        }
    }
}

/// The default summary of `answers` unless that would put it into the folder of one of
/// `inputs` (a question file, an answer key, a benchmark folder): then nil, and a line on
/// stderr says how to ask for it.
func defaultSummaryPath(_ answers: String, outside inputs: [String]) -> String? {
    let path = defaultSummaryPath(answers)
    let folder = realPath(URL(fileURLWithPath: path).deletingLastPathComponent().path)
    for input in inputs {
        var info = stat()
        let isFolder = stat(input, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
        let inputFolder = isFolder ? input : URL(fileURLWithPath: input).deletingLastPathComponent().path
        if let folder, folder == realPath(inputFolder) {
            printErr("llava: eval: no summary written: \(path) would be beside \(input) (give --summary PATH to write one)")
            return nil
        }
    }
    return path
}

/// OUT.jsonl → OUT.summary.json (any other name gets .summary.json appended).
func defaultSummaryPath(_ answers: String) -> String {
    (answers.hasSuffix(".jsonl") ? String(answers.dropLast(".jsonl".count)) : answers) + ".summary.json"
}

/// Refuses an output file that could not be written: its folder missing or read-only, or the
/// path a folder.
func checkWritable(_ path: String, what: String) throws {
    var info = stat()
    if stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
        throw CLIError("\(path): cannot write \(what): it is a folder")
    }
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    guard stat(folder, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
        throw CLIError("\(path): cannot write \(what): no such folder \(folder)")
    }
    guard access(folder, W_OK) == 0 else {
        throw CLIError("\(path): cannot write \(what): the folder \(folder) is not writable")
    }
}

/// Writes a summary JSON file (pretty-printed, replaced atomically).
func writeSummary(_ object: JSONObject, to path: String) throws {
    let data = Data((JSONValue.object(object).prettyDescription + "\n").utf8)
    var info = stat()
    if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFREG {
        // An atomic write renames over the path: a device or a pipe would be replaced.
        throw CLIError("\(path): cannot write the summary: not a regular file")
    }
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

    /// Draws `text` over the current line, cut to the terminal's width (a line that wrapped
    /// would leave one screen line per update).
    func draw(_ text: String) {
        let text = String(text.prefix(max(1, terminalColumns(STDERR_FILENO) - 1)))
        lastLine = text
        drawn = true
        StandardStream.error.write("\r" + text + "\u{1B}[K")
    }

    /// Prints a line of its own without breaking the display.
    func message(_ text: String) {
        if enabled && terminal && drawn {
            StandardStream.error.write("\r\u{1B}[K" + text + "\n\r" + lastLine + "\u{1B}[K")
        } else {
            printErr(text)
        }
    }

    func finish() {
        if enabled && terminal && drawn {
            StandardStream.error.write("\n")
            drawn = false
        }
    }
}

/// The width of the terminal on `fd` (TIOCGWINSZ), else $COLUMNS, else 80.
func terminalColumns(_ fd: Int32) -> Int {
    var size = winsize()
    if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap({ Int($0) }), columns > 0 { return columns }
    return 80
}

/// `path` with symbolic links, `.` and `..` resolved, or nil when it does not exist.
func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// Ctrl-C during a run: says how many answers are saved and that the same command resumes,
/// then exits with status 130. An answer being written when the signal comes is finished
/// first (`saving` holds the lock the handler takes), so every saved answer is whole.
final class InterruptReport: @unchecked Sendable {
    private let lock = NSLock()
    private var saved: Int
    private let answers: String
    private let progress: ProgressDisplay
    private var source: DispatchSourceSignal?

    init(answers: String, saved: Int, progress: ProgressDisplay) {
        self.answers = answers
        self.saved = saved
        self.progress = progress
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            lock.lock() // never released: the process ends here
            self.progress.finish()
            let n = self.saved
            printErr("llava: interrupted: \(n) answer\(n == 1 ? "" : "s") saved in \(self.answers); run the same command again to resume")
            _exit(130)
        }
        source.resume()
        self.source = source
    }

    /// Runs `write` (one answer line) so that an interrupt waits for it, and counts it.
    func saving<T>(_ write: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        let result = try write()
        saved += 1
        return result
    }

    /// Back to the default Ctrl-C (the file is complete).
    func stop() {
        lock.lock()
        defer { lock.unlock() }
        source?.cancel()
        source = nil
        signal(SIGINT, SIG_DFL)
    }
}

/// One question of `eval run` put to the model: the answer line to append (with an empty text
/// and metadata.error when the image or the generation failed).
struct Asking {
    let answerer: QuestionAnswerer
    let modelID: String
    /// The settings part of the metadata, the same on every line.
    let settings: JSONObject

    func answer(_ q: Question, imagePath: () throws -> String) -> (line: JSONObject, towerRun: Bool, error: String?) {
        var metadata = settings
        if let category = q.category { metadata["category"] = .string(category) }
        var text = "", towerRun = false, failure: String?
        do {
            let encoded = try answerer.encode(.file(imagePath()), question: q.text)
            towerRun = !encoded.hit
            let answer = try answerer.answer(q.text, encoded: encoded)
            text = answer.text
            metadata["image_sha256"] = .string(encoded.digest)
            metadata["visual_tokens"] = .int(Int64(answer.visualTokens))
            metadata["generated_tokens"] = .int(Int64(answer.generatedTokens))
            metadata["stop_reason"] = .string(answer.stopReason.rawValue)
            metadata["image_cache_hit"] = .bool(answer.cacheHit)
            let t = answer.timings
            metadata["timings"] = .object([
                "image_ms": .double(rounded(t.imageMs)), "vision_ms": .double(rounded(t.visionMs)),
                "prefill_ms": .double(rounded(t.prefillMs)), "ttft_ms": .double(rounded(t.ttftMs)),
                "decode_ms": .double(rounded(t.decodeMs)), "decode_tokens_per_s": .double(rounded(t.decodeTokensPerS)),
                "total_ms": .double(rounded(t.totalMs)),
            ])
        } catch {
            failure = String(describing: error)
            metadata["image_cache_hit"] = .bool(false)
            metadata["error"] = .string(failure!)
        }
        let line: JSONObject = [
            "question_id": q.id.json, "prompt": .string(q.text), "text": .string(text),
            "answer_id": .string(AnswerID.make()), "model_id": .string(modelID), "metadata": .object(metadata),
        ]
        return (line, towerRun, failure)
    }
}

/// What one `eval run` did, for its report.
struct RunTally {
    let questions: [Question]
    let newCount: Int
    let resumed: Int
    let malformed: Int
    let towerRuns: Int
    let elapsed: Double
    let started: Date
    let cache: ImageCache.Statistics
}

extension EvalRun: Exemplified {
    static let examples = [
        "llava eval --questions Prompts/shapes/questions.jsonl --image-folder Prompts/shapes/images --answers answers.jsonl --annotations Prompts/shapes/answers.jsonl --quiet",
        "llava eval run --questions Prompts/shapes/questions.jsonl --image-folder Prompts/shapes/images --answers shard2.jsonl --shard 2/4 --merge pitome --ratio 0.9 --quiet",
    ]
}
