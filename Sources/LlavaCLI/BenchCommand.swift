import ArgumentParser
import Foundation
import Kernels
import LLaVA
import LlavaBenchmark
import TokenMerging
import VQAEval

/// A comma-separated list option (`--merge pitome,tome`, `--ratios 1,0.9`).
struct CommaList<Element: ExpressibleByArgument>: ExpressibleByArgument {
    var values: [Element]
    let text: String

    init(_ values: [Element], text: String) {
        self.values = values
        self.text = text
    }

    init?(argument: String) {
        var values: [Element] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Element(argument: part.trimmingCharacters(in: .whitespaces)) else { return nil }
            values.append(v)
        }
        self.init(values, text: argument)
    }

    var defaultValueDescription: String { text }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the pipeline across merge methods, ratios and token budgets (llama-bench style).",
        discussion: """
        Every setting (method × ratio, method × keep; ratio 1 is one shared unmerged baseline \
        "none") answers the same question --repeat times after --warmup untimed runs; the image \
        is decoded and encoded again every time. The runs are interleaved: each round runs every \
        setting once, so a slow moment of the machine spreads over all settings. Reported values \
        are medians (visual tokens, vision ms, prefill ms, time to first token, decode tokens/s, \
        total ms), with the fastest and slowest time to first token as the spread. Timed runs \
        always generate -n tokens (EOS does not stop them).

        With --questions and --annotations (an answer key), every setting also answers the \
        question file greedily (--answer-tokens new tokens), scored by exact match after answer \
        normalisation.

        With --questions, images are found as `eval` finds them: under --image-folder when given, \
        otherwise next to the question file, or in its images/ folder.

        Every timed run also records where its time went: each vision layer's attention, MLP and \
        merge step (similarity, energy, matching, apply), the projector, the decoder's layers on \
        the prompt (prefill) and per new token (decode), lm_head and sampling. The JSON has them \
        per layer; stdout shows a stage table summed over the layers. --threads 1,2,4 runs every \
        setting at each count (interleaved within each round) and prints a scaling table: per \
        stage, the median at each count, the speed-up over the smallest count, the parallel \
        efficiency (speed-up ÷ ratio of counts) and, at the largest count, the time the stage ran \
        on one thread (outside pool jobs and threaded BLAS calls; the JSON has it per stage and \
        count), then the most that 16 threads (or 4× the largest count) could gain over the largest \
        count with that time fixed (Amdahl's law).

        Writes PREFIX.csv, PREFIX.json (with machine details) and the plot as PREFIX.svg and \
        PREFIX.png: time to first token (and accuracy when measured) against the merge ratio, or \
        against the visual tokens when there are token budgets or pooling. A plot or a PyTorch \
        comparison that cannot be made is a warning, not a failure.

        Example:
          llava bench --image Prompts/shapes/images/shapes_0000.png --ratios 1,0.95,0.9 --keep 32,16 --out bench/shapes
        """
    )

    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Image file to time (default with --questions: the first question's image).")
    var image: String?
    @Option(name: .long, help: "Question asked in the timed runs.")
    var question = "Describe the image."
    @OptionGroup var imageOptions: ImageOptions

    @Option(name: .long, help: "Merge methods, comma-separated (\(Reducers.names)).")
    var merge = CommaList<MergeMethod>([.pitome, .tome], text: "pitome,tome")
    @Option(name: .long, help: "Ratios, comma-separated; 1 is the unmerged baseline.")
    var ratios = CommaList<Double>([1.0, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85], text: "1.0,0.975,0.95,0.925,0.9,0.875,0.85")
    @Option(name: .long, help: "Token budgets, comma-separated (budgets above the tower's tokens are skipped).")
    var keep: CommaList<Int>?
    @Option(name: .long, help: "Merge metric for every merged setting: hidden or keys.")
    var mergeMetric: MergeMetric = .hidden
    @Option(name: .long, help: "How merged tokens combine: mean or size.")
    var mergeWeighting: MergeWeighting = .mean
    @Flag(name: .long, help: "Proportional attention in every merged setting.")
    var propAttn = false
    @Option(name: .long, help: "FastV's K for the fastv settings: the language-model layers that see every visual token.")
    var fastvLayer = MergeOptions().fastvLayer

    @Option(name: .customLong("repeat"), help: "Timed runs per setting.")
    var repeats = 3
    @Option(name: .long, help: "Untimed runs per setting before the timed ones.")
    var warmup = 1
    @Option(name: [.customShort("n"), .long], help: "New tokens per timed run.")
    var maxTokens = 16
    @Option(name: .long, help: "Conversation template: llava-hf, llava-v1 or a .json path.")
    var template = "llava-hf"
    @Option(name: .long, help: "Output prefix: writes PREFIX.csv, PREFIX.json, PREFIX.svg and PREFIX.png.")
    var out = "llava-bench"

    @Option(name: .long, help: "Question file (JSONL: question_id, image, text) for the accuracy column.")
    var questions: String?
    @Option(name: .long, help: "Folder the question file's images are relative to (default: the question file's folder, then its images/).")
    var imageFolder: String?
    @Option(name: .long, help: "Answer key: JSONL (or a JSON array) of question_id with answer or answers.")
    var annotations: String?
    @Option(name: .long, help: "Use only the first N questions.")
    var limit: Int?
    @Option(name: .long, help: "New tokens per answer in the accuracy pass (greedy, stops at EOS).")
    var answerTokens = 8

    @Flag(name: .long, help: "Also time transformers (PyTorch CPU, Float32) on the same checkpoint, image and prompt first, and report our times as ratios of its.")
    var comparePytorch = false
    @Option(name: .long, help: "Python interpreter with torch and transformers, for --compare-pytorch.")
    var python = "python3"
    @Option(name: .long, help: "The PyTorch timing script (default: Scripts/bench/pytorch_bench.py of this package).")
    var pytorchScript: String?

    func validate() throws {
        if merge.values.isEmpty { throw ValidationError("--merge needs at least one method") }
        do {
            try grid.validate()
        } catch {
            throw mergeFlagError(error, ratioFlag: "--ratios")
        }
        if repeats < 1 { throw ValidationError("--repeat must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup must be at least 0") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if answerTokens < 1 { throw ValidationError("--answer-tokens must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if (questions == nil) != (annotations == nil) {
            throw ValidationError("--questions and --annotations go together")
        }
        if questions == nil && (imageFolder != nil || limit != nil) {
            throw ValidationError("--image-folder and --limit need --questions")
        }
        if image == nil && questions == nil { throw ValidationError("--image is required (or --questions)") }
        if comparePytorch && image == nil { throw ValidationError("--compare-pytorch needs --image") }
        if let counts = model.threads?.values, counts.count > 1 {
            if Set(counts).count != counts.count { throw ValidationError("--threads lists a count twice: \(model.threads!.text)") }
            if comparePytorch { throw ValidationError("--compare-pytorch times one thread count; give --threads one count") }
        }
    }

    /// The settings to time: --merge × --ratios and × --keep, each with the metric, weighting,
    /// proportional attention and FastV layer the flags give.
    var grid: MergeGrid {
        var variant = VisionMergeSettings.none
        variant.metric = mergeMetric
        variant.options.weighting = mergeWeighting
        variant.proportionalAttention = propAttn
        variant.options.fastvLayer = fastvLayer
        return MergeGrid(methods: merge.values, ratios: ratios.values, keeps: keep?.values ?? [], variant: variant)
    }

    func run() throws {
        try reportingErrors {
            try benchmark()
        }
    }

    func benchmark() throws {
        try model.requireCLIP(for: merge.values)
        let directory = try model.resolve(threadList: true)
        let threadCounts = model.threads.map { $0.values.count > 1 ? $0.values : nil } ?? nil
        // PyTorch goes first, in its own process, so the two never share memory or cores.
        var pytorch: PyTorchReference?
        if comparePytorch, let image {
            do {
                guard let script = pytorchScript ?? PackageResources.path("Scripts/bench/pytorch_bench.py") else {
                    throw CLIError("cannot find Scripts/bench/pytorch_bench.py; give --pytorch-script")
                }
                printErr("bench: timing transformers on the same checkpoint (\(script))")
                pytorch = try PyTorchReference.measure(python: python, script: script, model: directory, image: image,
                                                       question: question, template: template, threads: Threads.count,
                                                       maxTokens: maxTokens, repeats: repeats)
            } catch {
                printWarning("no PyTorch comparison: \(error)")
            }
        }
        let pipeline = try model.loadPipeline(directory, reducers: merge.values)
        let conversation = try ConversationTemplate.load(template)
        var questionList: [BenchmarkQuestion] = []
        if let questions, let annotations {
            questionList = try BenchmarkQuestion.load(questions: questions, answerKey: annotations, limit: limit) { image in
                ImageLocation.path(of: image, questionFile: questions, folder: imageFolder)
            }
        }
        let imagePath = image ?? questionList[0].imagePath
        let plan = try BenchmarkPlan(grid, config: pipeline.model.config)
        guard !plan.settings.isEmpty else { throw CLIError("nothing to benchmark: every setting was skipped") }
        let options = BenchmarkOptions(imagePath: imagePath, question: question, template: conversation,
                                       imageMode: imageOptions.imageMode, repeats: repeats, warmup: warmup,
                                       maxTokens: maxTokens, questions: questionList, answerTokens: answerTokens,
                                       threadCounts: threadCounts)
        let runner = try BenchmarkRunner(pipeline: pipeline, options: options)
        let threadText = threadCounts.map { $0.map(String.init).joined(separator: ",") } ?? String(Threads.count)
        printErr("bench: \(directory), \(plan.settings.count) settings, \(repeats) repeats after \(warmup) warm-up, -n \(maxTokens), threads \(threadText), BLAS \(Threads.blasCoreName), kernels \(Threads.kernelInstructionSet)"
                 + (questionList.isEmpty ? "" : ", \(questionList.count) questions"))
        let rows = try runner.run(plan, onRun: { round, setting, threads, result in
            printErr(String(format: "bench: round %d/%d: %@, %d threads: %d visual tokens, ttft %.2f ms", round + 1, repeats,
                            setting.label, threads, result.visualTokens, result.timings.ttftMs))
        }, onRow: { row in
            if let a = row.accuracy { printErr("bench: \(row.setting.label): accuracy \(a.correct)/\(a.total)") }
        })
        let report = BenchReport(rows: rows, notes: plan.notes, model: directory, image: imagePath, question: question,
                                 template: conversation.name, imageMode: imageOptions.imageMode.rawValue,
                                 repeats: repeats, warmup: warmup, maxTokens: maxTokens,
                                 questions: questions, imageFolder: imageFolder,
                                 annotations: annotations, questionCount: questionList.count, answerTokens: answerTokens,
                                 fullTokens: pipeline.model.fullImageTokens,
                                 visionFLOPs: try rows.map { try pipeline.model.config.visionFLOPs($0.setting.merge) },
                                 sgemmPeakGFLOPs: measureSGEMMPeak(), quantization: pipeline.model.quantizationLabel,
                                 pytorch: pytorch)
        print(report.table())
        print(report.stageTable())
        if let scaling = report.scalingTable() { print(scaling) }
        print(report.computeSummary())
        if let comparison = report.pytorchTable() { print(comparison) }
        for note in plan.notes { print("note: \(note)") }
        try report.write(prefix: out)
    }
}

/// Everything a benchmark produced, and its table, CSV, JSON and plot renderings.
struct BenchReport {
    let rows: [BenchmarkRow]
    let notes: [String]
    let model: String
    let image: String
    let question: String
    let template: String
    let imageMode: String
    let repeats: Int
    let warmup: Int
    let maxTokens: Int
    let questions: String?
    let imageFolder: String?
    let annotations: String?
    let questionCount: Int
    let answerTokens: Int
    let fullTokens: Int
    /// Vision tower + projector operations per image, per row.
    var visionFLOPs: [Double] = []
    /// OpenBLAS sgemm GFLOP/s measured in the same run.
    var sgemmPeakGFLOPs: Double? = nil
    var quantization = "none"
    var pytorch: PyTorchReference? = nil
    let date = Date()

    func visionGFLOPsPerSecond(_ i: Int) -> Double? {
        guard i < visionFLOPs.count, rows[i].visionMs.median > 0 else { return nil }
        return visionFLOPs[i] / (rows[i].visionMs.median / 1000) / 1e9
    }

    /// The vision tower's arithmetic rate against the sgemm peak of the same run.
    func computeSummary() -> String {
        var lines: [String] = []
        if let peak = sgemmPeakGFLOPs {
            lines.append(String(format: "OpenBLAS sgemm peak in this run: %.1f GFLOP/s (%@, %d threads); weights: %@",
                                peak, Threads.blasCoreName, Threads.count, quantization))
        }
        for (i, r) in rows.enumerated() {
            guard let rate = visionGFLOPsPerSecond(i) else { continue }
            var line = String(format: "vision %@: %.1f GFLOP in %.1f ms = %.1f GFLOP/s", columnName(r), visionFLOPs[i] / 1e9,
                              r.visionMs.median, rate)
            if let peak = sgemmPeakGFLOPs, peak > 0 { line += String(format: " (%.0f%% of the sgemm peak)", rate / peak * 100) }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// Our medians as ratios of transformers' on the same inputs.
    func pytorchTable() -> String? {
        guard let p = pytorch else { return nil }
        var lines = [String(format: "PyTorch %@ (Float32, %@ attention, %d threads): vision %.1f ms, prefill %.1f ms (%d tokens), time to first token %.1f ms, decode %.2f tokens/s",
                            p.torchVersion, p.attention, p.threads, p.visionMs, p.prefillMs, p.promptTokens, p.ttftMs, p.decodeTokensPerS)]
        if let b = baseline, b.promptTokens != p.promptTokens {
            lines.append("note: prompt lengths differ (ours \(b.promptTokens), PyTorch \(p.promptTokens))")
        }
        let header = ["setting", "tokens", "ttft ms", "ttft / PyTorch", "vision / PyTorch", "prefill / PyTorch", "decode / PyTorch"]
        let body = rows.map { r in
            [r.setting.label, String(r.visualTokens), String(format: "%.1f", r.ttftMs.median),
             String(format: "%.3f", r.ttftMs.median / p.ttftMs), String(format: "%.3f", r.visionMs.median / p.visionMs),
             String(format: "%.3f", r.prefillMs.median / p.prefillMs), String(format: "%.2fx", r.decodeTokensPerS.median / p.decodeTokensPerS)]
        }
        lines.append(markdownTable(header: header, rows: body))
        return lines.joined(separator: "\n")
    }

    /// The thread counts the rows ran at, ascending.
    var threadCounts: [Int] { Array(Set(rows.map(\.threads))).sorted() }
    /// The rows the plot shows: those at the largest thread count.
    var plotRows: [BenchmarkRow] { rows.filter { $0.threads == threadCounts.last } }
    var baseline: BenchmarkRow? { plotRows.first { $0.setting.isBaseline } }
    var hasAccuracy: Bool { rows.contains { $0.accuracy != nil } }

    /// Time to first token of the unmerged baseline at the same thread count ÷ the row's.
    func speedup(_ row: BenchmarkRow) -> Double? {
        guard let b = rows.first(where: { $0.setting.isBaseline && $0.threads == row.threads }), row.ttftMs.median > 0 else { return nil }
        return b.ttftMs.median / row.ttftMs.median
    }

    /// A row's name in the stage table: its setting, with the thread count when there are several.
    func columnName(_ r: BenchmarkRow) -> String {
        threadCounts.count > 1 ? "\(r.setting.label) @\(r.threads)" : r.setting.label
    }

    /// Median milliseconds per stage (summed over the vision layers), one column per row.
    func stageTable() -> String {
        let header = ["stage (ms, median)"] + rows.map(columnName)
        var body: [[String]] = []
        for (stage, title) in BenchmarkStages.names where rows.contains(where: { $0.stageTotalsMs[stage] != nil }) {
            body.append([title] + rows.map { r in r.stageTotalsMs[stage].map { String(format: "%.2f", $0.median) } ?? "-" })
        }
        body.append(["vision (whole)"] + rows.map { String(format: "%.2f", $0.visionMs.median) })
        body.append(["time to first token"] + rows.map { String(format: "%.2f", $0.ttftMs.median) })
        return markdownTable(header: header, rows: body)
    }

    /// Per setting and stage: median ms at each thread count, with the speed-up over the smallest
    /// count, the parallel efficiency and, at the largest count, the time run on one thread; then
    /// the bound that time puts on a larger count (Amdahl's law). One table per setting; nil with
    /// one thread count.
    func scalingTable() -> String? {
        let blocks = BenchmarkScaling.from(rows)
        guard let first = blocks.first, let largest = first.threads.last else { return nil }
        let counts = first.threads
        let last = counts.count - 1
        let header = ["stage"] + counts.map { "\($0) thr ms" } + counts.dropFirst().map { "×\($0) / eff." }
            + ["alone @\(largest) ms"]
        return blocks.map { block in
            let body = block.lines.map { line in
                [line.title] + line.ms.map { String(format: "%.2f", $0) } + counts.indices.dropFirst().map { i in
                    String(format: "%.2fx / %.0f%%", line.speedup[i], line.efficiency[i] * 100)
                } + [line.aloneMs.map { a in
                    String(format: "%.2f (%.0f%%)", a[last], line.ms[last] > 0 ? a[last] / line.ms[last] * 100 : 0)
                } ?? "-"]
            }
            var text = "scaling of \(block.setting) from \(counts[0]) thread\(counts[0] == 1 ? "" : "s") (speed-up ×N / parallel efficiency;"
                + " alone: time on one thread, outside pool jobs and threaded BLAS calls):\n"
                + markdownTable(header: header, rows: body)
            if let ttft = block.lines.first(where: { $0.stage == "ttft_ms" }), let alone = ttft.aloneMs, ttft.ms[last] > 0 {
                let target = max(16, largest * 4)
                let fraction = alone[last] / ttft.ms[last]
                let bound = 1 / (fraction + (1 - fraction) * Double(largest) / Double(target))
                text += String(format: "\ntime to first token at %d threads: %.2f ms, %.2f ms of it (%.1f%%) on one thread: %d threads"
                               + " could make it at most %.2fx faster, if everything else scaled perfectly (Amdahl's law)",
                               largest, ttft.ms[last], alone[last], fraction * 100, target, bound)
            }
            return text
        }.joined(separator: "\n")
    }

    // MARK: Table

    /// The aligned table, llama-bench style (Markdown pipes, numbers right-aligned).
    func table() -> String {
        let several = threadCounts.count > 1
        var header = ["method", "ratio", "keep", "tokens", "vision ms", "prefill ms", "ttft ms", "ttft min–max", "speed-up",
                      "decode t/s", "total ms"]
        if several { header.insert("threads", at: 3) }
        if hasAccuracy { header.append("accuracy") }
        let body: [[String]] = rows.map { r in
            var cells: [String] = [
                r.setting.method,
                r.setting.ratio.map { formatRatio($0) } ?? "-",
                r.setting.keep.map(String.init) ?? "-",
                String(r.visualTokens),
                String(format: "%.2f", r.visionMs.median),
                String(format: "%.2f", r.prefillMs.median),
                String(format: "%.2f", r.ttftMs.median),
                String(format: "%.2f–%.2f", r.ttftMs.min, r.ttftMs.max),
                speedup(r).map { String(format: "%.2fx", $0) } ?? "-",
                String(format: "%.2f", r.decodeTokensPerS.median),
                String(format: "%.2f", r.totalMs.median),
            ]
            if several { cells.insert(String(r.threads), at: 3) }
            if hasAccuracy {
                cells.append(r.accuracy.map { String(format: "%.1f%% (%d/%d)", $0.fraction * 100, $0.correct, $0.total) } ?? "-")
            }
            return cells
        }
        return markdownTable(header: header, rows: body)
    }

    func formatRatio(_ r: Double) -> String {
        var s = String(format: "%.3f", r)
        while s.hasSuffix("0") && !s.hasSuffix(".0") { s.removeLast() }
        return s
    }

    // MARK: CSV

    static let csvHeader = [
        "method", "ratio", "keep", "label", "threads", "visual_tokens", "planned_tokens", "prompt_tokens", "generated_tokens",
        "repeats", "image_ms", "vision_ms", "prefill_ms", "ttft_ms", "ttft_min_ms", "ttft_max_ms", "ttft_stddev_ms",
        "decode_tokens_per_s", "total_ms",
        "ttft_speedup", "accuracy", "correct", "questions",
    ]

    func csv() -> String {
        func num(_ x: Double) -> String { String(format: "%.3f", x) }
        var out = Self.csvHeader.joined(separator: ",") + "\n"
        for r in rows {
            let cells: [String] = [
                r.setting.method, r.setting.ratio.map { formatRatio($0) } ?? "", r.setting.keep.map(String.init) ?? "",
                csvQuote(r.setting.label), String(r.threads), String(r.visualTokens), String(r.setting.plannedTokens), String(r.promptTokens),
                String(r.generatedTokens), String(r.ttftMs.samples.count), num(r.imageMs.median), num(r.visionMs.median),
                num(r.prefillMs.median), num(r.ttftMs.median), num(r.ttftMs.min), num(r.ttftMs.max), num(r.ttftMs.stddev),
                num(r.decodeTokensPerS.median),
                num(r.totalMs.median), speedup(r).map { String(format: "%.4f", $0) } ?? "",
                r.accuracy.map { String(format: "%.4f", $0.fraction) } ?? "", r.accuracy.map { String($0.correct) } ?? "",
                r.accuracy.map { String($0.total) } ?? "",
            ]
            out += cells.joined(separator: ",") + "\n"
        }
        return out
    }

    func csvQuote(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    // MARK: JSON

    func json() throws -> String {
        func stat(_ s: BenchmarkStatistic) -> [String: Any] {
            ["median": rounded(s.median), "mean": rounded(s.mean), "stddev": rounded(s.stddev),
             "min": rounded(s.min), "max": rounded(s.max), "samples": s.samples.map(rounded)]
        }
        let rowObjects: [[String: Any]] = try rows.map { r in
            var o: [String: Any] = [
                "method": r.setting.method, "label": r.setting.label,
                "ratio": r.setting.ratio.map { $0 as Any } ?? NSNull(), "keep": r.setting.keep.map { $0 as Any } ?? NSNull(),
                "merge": try jsonObject(r.setting.merge),
                "visual_tokens": r.visualTokens, "planned_tokens": r.setting.plannedTokens,
                "prompt_tokens": r.promptTokens, "generated_tokens": r.generatedTokens, "run_order": r.runOrder,
                "threads": r.threads,
                "stages": [
                    "totals_ms": Dictionary(uniqueKeysWithValues: r.stageTotalsMs.map { ($0.key, stat($0.value)) }),
                    "one_thread_totals_ms": Dictionary(uniqueKeysWithValues: r.stageAloneTotalsMs.map { ($0.key, stat($0.value)) }),
                    "per_layer": r.stageMs.keys.sorted().map { k -> [String: Any] in
                        ["stage": k.name, "layer": k.layer.map { $0 as Any } ?? NSNull(), "label": k.label, "ms": stat(r.stageMs[k]!)]
                    },
                ] as [String: Any],
                "timings": [
                    "image_ms": stat(r.imageMs), "vision_ms": stat(r.visionMs), "prefill_ms": stat(r.prefillMs),
                    "ttft_ms": stat(r.ttftMs), "ttft_one_thread_ms": stat(r.ttftAloneMs),
                    "decode_tokens_per_s": stat(r.decodeTokensPerS), "total_ms": stat(r.totalMs),
                ],
                "ttft_speedup": speedup(r).map { rounded($0) as Any } ?? NSNull(),
            ]
            if let i = rows.firstIndex(where: { $0.setting == r.setting && $0.threads == r.threads }), let rate = visionGFLOPsPerSecond(i) {
                o["vision_gflop"] = rounded(visionFLOPs[i] / 1e9)
                o["vision_gflops_per_s"] = rounded(rate)
            }
            if let p = pytorch {
                o["vs_pytorch"] = ["ttft": rounded(r.ttftMs.median / p.ttftMs), "vision": rounded(r.visionMs.median / p.visionMs),
                                   "prefill": rounded(r.prefillMs.median / p.prefillMs),
                                   "decode_speed": rounded(r.decodeTokensPerS.median / p.decodeTokensPerS)]
            }
            if let a = r.accuracy {
                o["accuracy"] = ["correct": a.correct, "total": a.total, "accuracy": rounded(a.fraction)]
            } else {
                o["accuracy"] = NSNull()
            }
            return o
        }
        let iso = ISO8601DateFormatter()
        var object: [String: Any] = [
            "tool": "llava bench",
            "date": iso.string(from: date),
            "model": model,
            "image": image,
            "question": question,
            "template": template,
            "image_mode": imageMode,
            "repeat": repeats,
            "warmup": warmup,
            "schedule": "interleaved",
            "thread_counts": threadCounts,
            "scaling": BenchmarkScaling.from(rows).map { b -> [String: Any] in
                ["setting": b.setting, "threads": b.threads,
                 "stages": b.lines.map { l -> [String: Any] in
                     ["stage": l.stage, "title": l.title, "ms": l.ms.map(rounded), "speedup": l.speedup.map(rounded),
                      "efficiency": l.efficiency.map(rounded),
                      "one_thread_ms": l.aloneMs.map { $0.map(rounded) as Any } ?? NSNull()]
                 }]
            },
            "max_tokens": maxTokens,
            "full_visual_tokens": fullTokens,
            "machine": Self.machine(),
            "notes": notes,
            "rows": rowObjects,
            "quantization": quantization,
            "sgemm_peak_gflops": sgemmPeakGFLOPs.map { rounded($0) as Any } ?? NSNull(),
            "pytorch": pytorch.map { $0.raw as Any } ?? NSNull(),
            "plot": plotJSON(),
        ]
        if let questions {
            object["questions"] = ["file": questions, "image_folder": imageFolder.map { $0 as Any } ?? NSNull(), "annotations": annotations ?? "",
                                   "count": questionCount, "answer_tokens": answerTokens] as [String: Any]
        } else {
            object["questions"] = NSNull()
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func machine() -> [String: Any] {
        var cpu = "unknown"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let value = line.split(separator: ":", maxSplits: 1).last {
            cpu = value.trimmingCharacters(in: .whitespaces)
        }
        let p = ProcessInfo.processInfo
        return ["threads": Threads.count, "blas_core": Threads.blasCoreName, "kernels": Threads.kernelInstructionSet, "cpu": cpu,
                "logical_cpus": p.activeProcessorCount, "os": p.operatingSystemVersionString,
                "memory_gb": rounded(Double(p.physicalMemory) / 1_073_741_824)]
    }

    // MARK: Plot

    /// Time to first token, one line per method, against the merge ratio when every merged
    /// setting has one (the baseline is each line's ratio-1 point), otherwise against the visual
    /// tokens (token budgets, pooling; a method's budget rows get their own line next to its
    /// ratio rows). A second panel shows accuracy when it was measured.
    func chart() -> Chart {
        let merged = plotRows.filter { !$0.setting.isBaseline }
        let byRatio = merged.allSatisfy { $0.setting.ratio != nil }
        func seriesName(_ r: BenchmarkRow) -> String {
            let method = r.setting.method
            let alsoRatios = merged.contains { $0.setting.method == method && $0.setting.ratio != nil }
            return r.setting.keep != nil && alsoRatios ? method + " keep" : method
        }
        var names: [String] = []
        for r in merged where !names.contains(seriesName(r)) { names.append(seriesName(r)) }
        if names.isEmpty, baseline != nil { names = ["none"] }
        func x(_ r: BenchmarkRow) -> Double { byRatio ? (r.setting.ratio ?? 1) : Double(r.visualTokens) }
        func series(_ value: (BenchmarkRow) -> Double?) -> [PlotSeries] {
            names.map { name in
                var points: [(x: Double, y: Double)] = []
                if let b = baseline, let y = value(b) { points.append((x(b), y)) }
                for r in merged where seriesName(r) == name {
                    if let y = value(r) { points.append((x(r), y)) }
                }
                return PlotSeries(name: name, points: points)
            }
        }
        var panels = [PlotPanel(id: "ttft", title: "Time to first token (median of \(repeats))",
                                yLabel: "time to first token (ms)", series: series { $0.ttftMs.median })]
        if hasAccuracy {
            panels.append(PlotPanel(id: "accuracy", title: "Accuracy (\(questionCount) questions, exact match)",
                                    yLabel: "accuracy (%)", series: series { $0.accuracy.map { $0.fraction * 100 } },
                                    yRange: 0...100, yUnit: "%"))
        }
        // The model folder's last two path components ("llava-small/model", "…/llava-1.5-7b-hf").
        let name = URL(fileURLWithPath: model).pathComponents.suffix(2).joined(separator: "/")
        // ASCII only: cairo's built-in fallback font (no fonts installed) has no other characters.
        let subtitle = "\(name), \(fullTokens) visual tokens unmerged, \(Threads.count) threads, \(Threads.blasCoreName), -n \(maxTokens)"
        return Chart(title: "LLaVA time to first token vs " + (byRatio ? "merge ratio" : "visual tokens"),
                     subtitle: subtitle,
                     xLabel: byRatio ? "merge ratio (1 = no merging)" : "visual tokens (\(fullTokens) = no merging)",
                     panels: panels)
    }

    /// What the plot shows, for the JSON report.
    func plotJSON() -> [String: Any] {
        let c = chart()
        return [
            "title": c.title, "x_label": c.xLabel,
            "panels": c.panels.map { p -> [String: Any] in
                ["id": p.id, "title": p.title, "y_label": p.yLabel,
                 "series": p.series.map { ["name": $0.name, "points": $0.points.map { [rounded($0.x), rounded($0.y)] }] }]
            },
        ]
    }

    // MARK: Files

    /// Writes the CSV and the JSON (a failure is an error), then the plot (a failure is a warning).
    func write(prefix: String) throws {
        let dir = (prefix as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw CLIError("\(dir): cannot create the output folder: \(error.localizedDescription)")
            }
        }
        func save(_ text: String, _ ext: String) throws -> String {
            let path = prefix + "." + ext
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw CLIError("\(path): cannot write: \(error.localizedDescription)")
            }
            return path
        }
        var written = [try save(csv(), "csv"), try save(json(), "json")]
        do {
            try ChartDrawing.write(chart(), svg: prefix + ".svg", png: prefix + ".png")
            written += [prefix + ".svg", prefix + ".png"]
        } catch {
            printWarning("\(error) (the CSV and JSON are written)")
        }
        print("wrote " + written.joined(separator: ", "))
    }
}
