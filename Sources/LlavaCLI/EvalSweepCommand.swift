import ArgumentParser
import Foundation
import LLaVA
import LlavaBenchmark
import TokenMerging
import VQAEval

/// `llava eval sweep`: every benchmark under every merge setting, then the paper's table.
struct EvalSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Answer and score every benchmark under every merge setting; write the results table and plot.",
        discussion: """
        Settings are --merge methods × --ratios (1 is the shared unmerged baseline) and × --keep budgets. \
        Each benchmark × setting is a cell with its own answer file, OUT/cells/<setting>/<benchmark>.jsonl, \
        appended durably: running the same command again resumes every cell where it stopped. Image \
        embeddings are cached per setting. After every cell OUT/table.md, table.csv, table.json and plot.svg \
        are written again: one row per setting (visual tokens, mean time to first token), one column per \
        benchmark's headline metric. Benchmarks scored on their server (VQAv2 test-dev, VizWiz; also \
        GQA, SEED and MMBench) get their upload file beside each cell's answers, \
        OUT/cells/<setting>/<benchmark>.submission.json (.xlsx for MMBench).

        --shard I/N (or auto) answers only the I-th of N contiguous runs of cells (settings in order, \
        benchmarks within each) and writes no table; once every shard is done, the same command \
        without --shard finds every cell answered, scores them and writes the table.
        """
    )

    @Option(name: .long, help: "Benchmarks, comma-separated: NAME (its folder under --data-root) or NAME=DIR. A name that is not a benchmark, with =DIR, is a plain question-file folder (questions.jsonl, images/, answers.jsonl), e.g. shapes=Prompts/shapes.")
    var benchmarks: String

    @Option(name: .long, help: "Folder holding the benchmark folders (LLaVA's playground/data/eval).")
    var dataRoot: String?

    @Option(name: .customLong("merge"), help: "Merge methods, comma-separated.")
    var methods = CommaList<MergeMethod>([.pitome], text: "pitome")

    @Option(name: .long, help: "Ratios, comma-separated; 1 is the unmerged baseline.")
    var ratios: CommaList<Double>?

    @Option(name: .long, help: "Token budgets, comma-separated.")
    var keep: CommaList<Int>?

    @Option(name: .long, help: "Output folder.")
    var out: String

    @Option(name: .long, help: "VQAv2 questions: val (scored locally) or test-dev (no score: each cell writes the upload file, OUT/cells/<setting>/vqav2.submission.json).")
    var split: VQAv2Benchmark.Split = .val

    @Option(name: .long, help: "Memory for cached image embeddings per setting, in MiB.")
    var imageCacheMb: Double = 512

    @OptionGroup var model: ModelOptions
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var generation: GenerationFlags

    @OptionGroup var sharding: ShardFlags

    @Flag(name: .long, help: "No progress messages on stderr.")
    var quiet = false

    func validate() throws {
        if methods.values.isEmpty { throw ValidationError("--merge needs at least one method") }
        if ratios == nil && keep == nil { throw ValidationError("give --ratios and/or --keep") }
        for r in ratios?.values ?? [] where !(r > 0 && r <= 1) { throw ValidationError("--ratios must satisfy 0 < ratio <= 1 (got \(r))") }
        for k in keep?.values ?? [] where k < 1 { throw ValidationError("--keep must be at least 1 (got \(k))") }
        if !(imageCacheMb >= 0 && imageCacheMb < 1e9) { throw ValidationError("--image-cache-mb must be >= 0") }
    }

    /// One benchmark of the sweep: its column label and adapter.
    struct Entry {
        let label: String
        let adapter: any BenchmarkAdapter
    }

    func entries() throws -> [Entry] {
        var out: [Entry] = []
        for item in benchmarks.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            let label = parts[0]
            let name = BenchmarkName(rawValue: label)
            var folder = parts.count == 2 ? parts[1] : nil
            if folder == nil {
                guard let name, let root = dataRoot else {
                    throw CLIError("--benchmarks: \(label) needs =DIR" + (name == nil ? " (it is not one of \(BenchmarkName.allCases.map(\.rawValue).joined(separator: ", ")))" : " or --data-root"))
                }
                folder = name.folderNames.map { root + "/" + $0 }.first { FileManager.default.fileExists(atPath: $0) }
                guard folder != nil else {
                    throw CLIError("\(root): no folder for \(label) (looked for \(name.folderNames.joined(separator: ", ")))")
                }
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder!, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("\(folder!): no such folder (benchmark \(label))")
            }
            if out.contains(where: { $0.label == label }) { throw CLIError("--benchmarks: \(label) is given twice") }
            let adapter = (name ?? .questionFile).adapter(folder: folder!, options: BenchmarkSuiteOptions(vqav2Split: split))
            out.append(Entry(label: label, adapter: adapter))
        }
        if out.isEmpty { throw CLIError("--benchmarks names no benchmark") }
        return out
    }

    func run() throws {
        try reportingErrors { try sweep() }
    }

    func sweep() throws {
        try model.requireCLIP(for: methods.values)
        let entries = try entries()
        let questions = try entries.map { try $0.adapter.questions() }
        let directory = try model.resolve()
        if !quiet { printErr("llava: eval sweep: " + LLaVAEvalSettings.line(entries.map(\.adapter.name), generation: generation, image: imageOptions)) }
        let pipeline = try model.loadPipeline(directory, reducers: methods.values)
        let grid = MergeGrid(methods: methods.values, ratios: ratios?.values ?? [], keeps: keep?.values ?? [])
        let plan = try BenchmarkPlan(grid, config: pipeline.model.config)
        for note in plan.notes { printErr("llava: eval sweep: \(note)") }
        guard !plan.settings.isEmpty else { throw CLIError("nothing to run: every setting was skipped") }
        try FileManager.default.createDirectory(atPath: out + "/cells", withIntermediateDirectories: true)
        let shard = try sharding.resolved()
        let mine = shard.map { Set($0.range(total: plan.settings.count * entries.count)) }
        var failed = 0
        let metrics = entries.map { $0.adapter.name == .vqav2 && split == .testDev ? nil : $0.adapter.name.primaryMetric }
        var table = SweepTable(benchmarks: zip(entries, metrics).map { ($0.label, $0.adapter.name, $1) })
        for (settingIndex, setting) in plan.settings.enumerated() {
            let cache = ImageCache(budgetBytes: Int(imageCacheMb * 1_048_576))
            let folder = out + "/cells/" + SweepTable.folderName(setting)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var row = SweepTable.Row(setting: setting)
            for (entryIndex, (entry, asked)) in zip(entries, questions).enumerated() {
                if let mine, !mine.contains(settingIndex * entries.count + entryIndex) { continue }
                let answers = folder + "/" + entry.label + ".jsonl"
                let generation = generation.llavaDefaults(for: entry.adapter.name)
                let run = RunSettings(directory: directory, model: model, imageMode: imageOptions.llavaDefault,
                                      merge: setting.merge, generation: generation, defaultSeed: 0)
                let recorded = try BenchmarkSettings(run, template: ConversationTemplate.load(run.template))
                let answerer = QuestionAnswerer(pipeline: pipeline, settings: run, template: recorded.template, cache: cache)
                let cell = try BenchmarkCell(adapter: entry.adapter, answers: answers, settings: recorded, label: entry.label)
                let pending = cell.pending(asked)
                if !quiet {
                    printErr("llava: eval sweep: \(setting.label), \(entry.label): \(asked.count - pending.count) of \(asked.count) answered, \(pending.count) to go")
                }
                failed += try cell.answer(pending, answerer: answerer, quiet: quiet)
                cell.file.closeFile()
                let score = try entry.adapter.score(AnswerSet(path: answers))
                guard case .object(var summary) = score.summary else { continue }
                summary["benchmark"] = .string(entry.label)
                summary["setting"] = .string(setting.label)
                try writeSummary(summary, to: folder + "/" + entry.label + ".summary.json")
                if score.submission != nil {
                    try score.writeSubmission(to: folder + "/" + entry.label + (entry.adapter.name == .mmbench ? ".submission.xlsx" : ".submission.json"))
                }
                row.scores[entry.label] = score
                row.ttft += try SweepTable.ttfts(answers)
                if shard == nil {
                    table.put(row)
                    try table.write(to: out, model: directory)
                }
            }
        }
        if let shard, let mine {
            printErr("llava: eval sweep: shard \(shard): \(mine.count) of \(plan.settings.count * entries.count) cells done; run the sweep without --shard to write the table")
        } else {
            print(table.markdown(), terminator: "")
        }
        if failed > 0 { throw CLIError("\(failed) questions failed (metadata.error in the cell answer files); they count as unanswered") }
    }
}

/// The sweep's results: one row per setting, one column per benchmark.
struct SweepTable {
    struct Row {
        let setting: BenchmarkSetting
        var scores: [String: BenchmarkScore] = [:]
        /// Time to first token of every answer line of the setting's cells, in ms.
        var ttft: [Double] = []

        var meanTTFT: Double? { ttft.isEmpty ? nil : ttft.reduce(0, +) / Double(ttft.count) }
    }

    /// Each column: its label, benchmark and headline metric (nil: none is computed locally, as
    /// for VizWiz and VQAv2 test-dev, whose cells give only the upload file).
    let benchmarks: [(label: String, name: BenchmarkName, metric: String?)]
    var rows: [Row] = []

    init(benchmarks: [(String, BenchmarkName, String?)]) {
        self.benchmarks = benchmarks.map { (label: $0.0, name: $0.1, metric: $0.2) }
    }

    mutating func put(_ row: Row) {
        if let i = rows.firstIndex(where: { $0.setting == row.setting }) { rows[i] = row } else { rows.append(row) }
    }

    /// A folder name for a setting: "none", "pitome-ratio0.9", "tome-keep64".
    static func folderName(_ s: BenchmarkSetting) -> String {
        s.label.replacingOccurrences(of: " ratio=", with: "-ratio").replacingOccurrences(of: " keep=", with: "-keep")
            .replacingOccurrences(of: " ", with: "-").replacingOccurrences(of: "=", with: "")
    }

    /// The `metadata.timings.ttft_ms` of every line of an answer file that has one.
    static func ttfts(_ path: String) throws -> [Double] {
        try JSONLines.lines(FileBytes.contents(path)).compactMap { line in
            (try? JSONLines.object(line.bytes))?["metadata"]?["timings"]?["ttft_ms"]?.numberValue
        }
    }

    func value(_ row: Row, _ b: (label: String, name: BenchmarkName, metric: String?)) -> Double? {
        guard let metric = b.metric else { return nil }
        return row.scores[b.label]?.headline[metric]?.numberValue
    }

    var header: [String] {
        ["method", "ratio", "keep", "visual tokens", "TTFT ms"] + benchmarks.map { b in
            b.label + (b.metric.map { " " + $0 } ?? "")
        }
    }

    func cells(_ row: Row) -> [String] {
        let s = row.setting
        return [s.method, s.ratio.map { String($0) } ?? "", s.keep.map { String($0) } ?? "", String(s.plannedTokens),
                row.meanTTFT.map { formatFixed($0, decimals: 1) } ?? ""]
            + benchmarks.map { b in value(row, b).map { formatFixed($0, decimals: b.name == .cocoCaption || b.name == .pope ? 4 : 2) } ?? "" }
    }

    func markdown() -> String {
        var s = "| " + header.joined(separator: " | ") + " |\n"
        s += "|" + header.map { _ in "---|" }.joined() + "\n"
        for row in rows { s += "| " + cells(row).joined(separator: " | ") + " |\n" }
        return s
    }

    func csv() -> String {
        func quote(_ x: String) -> String { x.contains(",") || x.contains("\"") ? "\"" + x.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : x }
        return ([header] + rows.map(cells)).map { $0.map(quote).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    func json(model: String) -> JSONValue {
        .object([
            "model": .string(model),
            "benchmarks": .array(benchmarks.map { b in
                .object(["label": .string(b.label), "benchmark": .string(b.name.rawValue),
                         "metric": b.metric.map { .string($0) } ?? .null])
            }),
            "rows": .array(rows.map { row in
                let s = row.setting
                return .object([
                    "method": .string(s.method), "ratio": s.ratio.map { .double($0) } ?? .null,
                    "keep": s.keep.map { .int(Int64($0)) } ?? .null, "visual_tokens": .int(Int64(s.plannedTokens)),
                    "ttft_ms_mean": row.meanTTFT.map { .double(rounded($0)) } ?? .null,
                    "scores": .object(JSONObject(benchmarks.map { b in (b.label, value(row, b).map { .double($0) } ?? .null) })),
                    "headlines": .object(JSONObject(benchmarks.compactMap { b in row.scores[b.label].map { (b.label, .object($0.headline)) } })),
                    "unanswered": .object(JSONObject(benchmarks.compactMap { b in row.scores[b.label].map { (b.label, .int(Int64($0.unanswered.count))) } })),
                ])
            }),
        ])
    }

    /// One panel per benchmark with a metric: the metric against visual tokens, a line per
    /// method (the unmerged baseline is every method's starting point).
    func chart() -> Chart {
        let baseline = rows.first { $0.setting.method == "none" }
        let methods = rows.map(\.setting.method).filter { $0 != "none" }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        var panels: [PlotPanel] = []
        for b in benchmarks where b.metric != nil {
            var series: [PlotSeries] = []
            for m in methods.isEmpty ? ["none"] : methods {
                var points = rows.filter { $0.setting.method == m }.compactMap { r in value(r, b).map { (x: Double(r.setting.plannedTokens), y: $0) } }
                if let baseline, m != "none", let y = value(baseline, b) { points.append((Double(baseline.setting.plannedTokens), y)) }
                points.sort { $0.x < $1.x }
                if !points.isEmpty { series.append(PlotSeries(name: m, points: points)) }
            }
            if !series.isEmpty {
                panels.append(PlotPanel(id: b.label, title: b.label, yLabel: b.metric!, series: series))
            }
        }
        return Chart(title: "Benchmarks against visual tokens", subtitle: "one line per merge method", xLabel: "visual tokens",
                     panels: panels)
    }

    func write(to folder: String, model: String) throws {
        let files = [("table.md", markdown()), ("table.csv", csv()), ("table.json", JSONValue.prettyJSON(json(model: model)))]
        for (name, text) in files {
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/" + name), options: .atomic)
            } catch {
                throw CLIError("\(folder)/\(name): cannot write: \(error.localizedDescription)")
            }
        }
        do {
            try ChartDrawing.write(chart(), svg: folder + "/plot.svg", png: folder + "/plot.png")
        } catch {
            printWarning("\(error) (the tables are written)")
        }
    }
}

extension JSONValue {
    static func prettyJSON(_ value: JSONValue) -> String { value.prettyDescription + "\n" }
}
