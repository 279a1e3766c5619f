import Checkpoint
import Foundation
import Imaging
import Kernels
import LLaVA
import TokenMerging
import VQAEval

// Latency (and optionally accuracy) of the pipeline across merge settings: a list of settings
// goes in, one row of medians per setting comes out. Printing and plotting are the caller's.
// A module of its own above LLaVA, because the accuracy column is scored with VQAEval's rules
// and the model library does not depend on the scorers.

/// One benchmarked configuration of the vision tower.
public struct BenchmarkSetting: Sendable, Equatable {
    /// "none" for the shared unmerged baseline, otherwise the merge method's name.
    public var method: String
    /// ρ for ratio settings (1 for the baseline), nil for token budgets.
    public var ratio: Double?
    /// The token budget K for `--keep` settings.
    public var keep: Int?
    public var merge: VisionMergeSettings
    /// Visual tokens the tower's schedule gives for this setting.
    public var plannedTokens: Int

    public var isBaseline: Bool { !merge.isActive }
    public var label: String { isBaseline ? "none" : merge.label }
}

/// Methods × ratios and methods × token budgets, with one variant for every merged setting:
/// the merge settings `llava bench` and `llava eval sweep` run (as a `BenchmarkPlan`) and
/// `llava merge-map` draws.
public struct MergeGrid: Sendable, Equatable {
    public var methods: [MergeMethod]
    public var ratios: [Double]
    public var keeps: [Int]
    /// Metric, weighting, proportional attention, every-layer PiToMe, seed, FastV's layer and
    /// source tracking, applied to every merged setting (its method, ratio and budget are ignored).
    public var variant: VisionMergeSettings

    /// One setting asked for: a method with a ratio or a budget (neither for the baseline and
    /// fixed reductions).
    public struct Cell: Sendable, Equatable {
        public var method: MergeMethod
        public var ratio: Double?
        public var keep: Int?
    }

    public init(methods: [MergeMethod], ratios: [Double], keeps: [Int], variant: VisionMergeSettings = .none) {
        self.methods = methods
        self.ratios = ratios
        self.keeps = keeps
        self.variant = variant
    }

    /// The cells asked for, in order: the baseline when a ratio is 1 (or method none is listed),
    /// then per merged method its ratios below 1 and its budgets. A fixed reduction (2x2
    /// pooling) has one cell, whatever the ratios.
    public var cells: [Cell] {
        var out: [Cell] = []
        if ratios.contains(1) || methods.contains(.none) { out.append(Cell(method: .none)) }
        for method in methods where method != .none {
            if method.reducer.amount == .fixed {
                if !ratios.isEmpty { out.append(Cell(method: method)) }
            } else {
                for ratio in ratios where ratio != 1 { out.append(Cell(method: method, ratio: ratio)) }
            }
            for keep in keeps { out.append(Cell(method: method, keep: keep)) }
        }
        return out
    }

    /// `variant` with `method` at `ratio` or `keep`, keeping only the parameters the method owns.
    /// Method none is the unmerged baseline (with the variant's source tracking).
    public func settings(_ method: MergeMethod, ratio: Double? = nil, keep: Int? = nil) -> VisionMergeSettings {
        guard method != .none else {
            var baseline = VisionMergeSettings.none
            baseline.options.trackSources = variant.options.trackSources
            return baseline
        }
        var s = variant
        s.options = variant.options.keepingOnlyParameters(of: method)
        s.options.ratio = ratio
        s.options.keep = keep
        return s
    }

    public func settings(_ cell: Cell) -> VisionMergeSettings { settings(cell.method, ratio: cell.ratio, keep: cell.keep) }

    /// Checks every cell's settings (the rules of `VisionMergeSettings.validate`), before any
    /// tower is known.
    public func validate() throws {
        for cell in cells { try settings(cell).validate() }
    }
}

/// The settings of a benchmark: a `MergeGrid` made for one tower, each with its label and the
/// visual tokens its schedule gives, one shared unmerged baseline standing for ratio 1.
public struct BenchmarkPlan: Sendable {
    public var settings: [BenchmarkSetting]
    /// Settings that were left out, and why (a budget larger than the tower's tokens, …).
    public var notes: [String]

    public init(_ grid: MergeGrid, config: LlavaConfiguration) throws {
        var settings: [BenchmarkSetting] = []
        var notes: [String] = []
        let patches = config.vision.numPatches
        for r in grid.cells {
            let s = grid.settings(r)
            let planned: Int
            do {
                if let keep = r.keep, keep > patches {
                    notes.append("\(r.method.rawValue) keep=\(keep) skipped: the tower gives only \(patches) visual tokens")
                    continue
                }
                // Every cell has a ratio or a budget, so even PruMerge+ has a planned count.
                guard let count = try config.plannedVisualTokens(s) else { preconditionFailure("\(s.label) has no planned count") }
                planned = count
            } catch let error as MergeError where r.keep != nil {
                notes.append("\(r.method.rawValue) keep=\(r.keep!) skipped: \(error.description)")
                continue
            }
            let setting = BenchmarkSetting(method: r.method.rawValue, ratio: r.method == .none ? 1 : r.ratio, keep: r.keep,
                                           merge: s, plannedTokens: planned)
            if !settings.contains(setting) { settings.append(setting) }
        }
        self.settings = settings
        self.notes = notes
    }
}

/// Summary statistics of one measured quantity over the timed repeats.
public struct BenchmarkStatistic: Codable, Sendable, Equatable {
    public var median: Double
    public var mean: Double
    /// Sample standard deviation (0 for a single sample).
    public var stddev: Double
    public var min: Double
    public var max: Double
    public var samples: [Double]

    public init(_ samples: [Double]) {
        precondition(!samples.isEmpty, "a statistic needs at least one sample")
        self.samples = samples
        let sorted = samples.sorted()
        let n = sorted.count
        median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        mean = samples.reduce(0, +) / Double(n)
        let m = mean
        stddev = n > 1 ? (samples.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n - 1)).squareRoot() : 0
        min = sorted[0]
        max = sorted[n - 1]
    }
}

/// Exact-match accuracy over a question file.
public struct BenchmarkAccuracy: Codable, Sendable, Equatable {
    public var correct: Int
    public var total: Int
    public var fraction: Double { total > 0 ? Double(correct) / Double(total) : 0 }
}

/// The measurements of one setting at one thread count.
public struct BenchmarkRow: Sendable {
    public var setting: BenchmarkSetting
    /// Threads every stage ran on.
    public var threads: Int
    /// Visual tokens the language model received (checked against the plan).
    public var visualTokens: Int
    public var promptTokens: Int
    /// New tokens per timed run (EOS does not stop a timed run).
    public var generatedTokens: Int
    /// When each sample was taken: its position among all timed runs of the benchmark (0-based).
    public var runOrder: [Int]
    public var imageMs: BenchmarkStatistic
    public var visionMs: BenchmarkStatistic
    public var prefillMs: BenchmarkStatistic
    public var ttftMs: BenchmarkStatistic
    /// Of the time to first token, the time run on one thread (see `AskTimings.ttftAloneMs`).
    public var ttftAloneMs: BenchmarkStatistic
    public var decodeTokensPerS: BenchmarkStatistic
    public var totalMs: BenchmarkStatistic
    /// Milliseconds per stage and vision layer (see `StageTimes`), over the timed runs.
    public var stageMs: [StageTimes.Key: BenchmarkStatistic]
    /// Milliseconds per stage name, summed over the vision layers in each run, over the runs.
    public var stageTotalsMs: [String: BenchmarkStatistic]
    /// Of those, the milliseconds run on one thread (outside parallel regions), likewise.
    public var stageAloneTotalsMs: [String: BenchmarkStatistic]
    public var accuracy: BenchmarkAccuracy?
}

/// The stages a question's time is reported in, in pipeline order, with their names in the
/// stage table. "merge.text" is a question-aware reducer's text side (CDPruner: the question
/// through CLIP's text tower), before the tower runs. "merge" is a layer's whole merge step; the
/// four after it are its parts (ToMe has no energy; what no part covers — gathering rows, other
/// methods' plans — is the rest).
public enum BenchmarkStages {
    public static let names: [(stage: String, title: String)] = [
        ("merge.text", "question text (CLIP)"), ("embeddings", "vision embeddings"), ("attention", "vision attention"), ("mlp", "vision MLP"),
        ("merge", "merge step"), ("merge.similarity", "  similarity"), ("merge.energy", "  energy"),
        ("merge.matching", "  matching"), ("merge.apply", "  apply"), ("projector", "projector"),
        ("prefill", "prefill (decoder layers)"), ("lm_head", "lm_head"), ("decode", "decode (decoder layers)"),
        ("sampling", "sampling"),
    ]
}

/// How one setting's times change with the thread count: per stage (and for the vision tower,
/// prefill and time to first token), the median at each count, the speed-up over the smallest
/// count and the parallel efficiency (speed-up ÷ the ratio of thread counts).
public struct BenchmarkScaling: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        public var stage: String
        public var title: String
        /// Median milliseconds at each of `threads`.
        public var ms: [Double]
        /// ms at the smallest count ÷ ms at each count (1 for the smallest).
        public var speedup: [Double]
        /// speed-up ÷ (count ÷ smallest count).
        public var efficiency: [Double]
        /// Median milliseconds run on one thread at each count (nil where not measured).
        public var aloneMs: [Double]?
    }

    public var setting: String
    public var threads: [Int]
    public var lines: [Line]

    /// One scaling block per setting, from rows measured at two or more thread counts
    /// (empty when every row ran at the same count). Stages never timed are left out.
    public static func from(_ rows: [BenchmarkRow]) -> [BenchmarkScaling] {
        let threads = Array(Set(rows.map(\.threads))).sorted()
        guard threads.count > 1 else { return [] }
        var labels: [String] = []
        for r in rows where !labels.contains(r.setting.label) { labels.append(r.setting.label) }
        return labels.compactMap { label in
            let byThreads = threads.compactMap { t in rows.first { $0.setting.label == label && $0.threads == t } }
            guard byThreads.count == threads.count else { return nil }
            typealias Value = (BenchmarkRow) -> Double?
            var named: [(String, String, Value, Value?)] = [
                ("vision_ms", "vision (whole)", { $0.visionMs.median }, nil),
                ("prefill_ms", "prefill (whole)", { $0.prefillMs.median }, nil),
                ("ttft_ms", "time to first token", { $0.ttftMs.median }, { $0.ttftAloneMs.median }),
            ]
            for (stage, title) in BenchmarkStages.names {
                named.append((stage, title.trimmingCharacters(in: .whitespaces), { $0.stageTotalsMs[stage]?.median },
                              { $0.stageAloneTotalsMs[stage]?.median }))
            }
            let lines: [Line] = named.compactMap { stage, title, value, alone in
                let ms = byThreads.map { value($0) ?? 0 }
                guard ms.contains(where: { $0 > 0 }) else { return nil }
                let speedup = ms.map { $0 > 0 ? ms[0] / $0 : 0 }
                let efficiency = zip(speedup, threads).map { s, t in s / (Double(t) / Double(threads[0])) }
                return Line(stage: stage, title: title, ms: ms, speedup: speedup, efficiency: efficiency,
                            aloneMs: alone.map { a in byThreads.map { a($0) ?? 0 } })
            }
            return BenchmarkScaling(setting: label, threads: threads, lines: lines)
        }
    }
}

/// A question with its image and accepted answers, for the accuracy column.
public struct BenchmarkQuestion: Sendable, Equatable {
    public var id: String
    public var imagePath: String
    public var text: String
    public var reference: Reference

    public init(id: String, imagePath: String, text: String, answers: [String]) {
        self.id = id
        self.imagePath = imagePath
        self.text = text
        reference = Reference(answers: answers)
    }

    /// Reads a model_vqa_loader question file and joins it with an answer key by question_id,
    /// with the readers `llava eval` uses (`QuestionFile`, `Annotations`). A malformed line, or a
    /// question without an answer, is an error. `imagePath` turns a question's `image` into the
    /// file to read.
    public static func load(questions path: String, answerKey keyPath: String, limit: Int? = nil,
                            imagePath: (String) -> String) throws -> [BenchmarkQuestion] {
        let file = try QuestionFile(path: path)
        if let issue = file.issues.first { throw BenchmarkError.badFile(path: path, line: issue.line, why: issue.reason) }
        let key = try Annotations(path: keyPath)
        var out: [BenchmarkQuestion] = []
        for q in file.questions.prefix(limit ?? Int.max) {
            guard let reference = key.reference(for: q.id) else {
                throw BenchmarkError.badFile(path: keyPath, line: nil, why: "no answer for question_id \(q.id) of \(path)")
            }
            var question = BenchmarkQuestion(id: q.id.description, imagePath: imagePath(q.image), text: q.text, answers: [])
            question.reference = reference
            out.append(question)
        }
        if out.isEmpty { throw BenchmarkError.badFile(path: path, line: nil, why: "no questions") }
        return out
    }
}

public enum BenchmarkError: Error, CustomStringConvertible {
    case badFile(path: String, line: Int?, why: String)
    case tokenCount(setting: String, planned: Int, measured: Int)
    case invalidOptions(String)

    public var description: String {
        switch self {
        case .badFile(let path, let line, let why):
            return line.map { "\(path):\($0): \(why)" } ?? "\(path): \(why)"
        case .tokenCount(let s, let planned, let measured):
            return "\(s): the schedule plans \(planned) visual tokens but the tower gave \(measured)"
        case .invalidOptions(let why):
            return why
        }
    }
}

/// What every setting is measured on.
public struct BenchmarkOptions: Sendable {
    public var imagePath: String
    public var question: String
    public var template: ConversationTemplate
    public var imageMode: ImageMode
    /// Timed rounds: runs per setting (medians over these).
    public var repeats: Int
    /// Untimed rounds (every setting once) before the timed ones.
    public var warmup: Int
    /// New tokens per timed run.
    public var maxTokens: Int
    /// Questions for the accuracy column (empty: no accuracy).
    public var questions: [BenchmarkQuestion]
    /// New tokens per answer in the accuracy pass (greedy, stops at EOS).
    public var answerTokens: Int
    /// Thread counts every setting runs at (nil: the current `Threads.count` only).
    public var threadCounts: [Int]?

    public init(imagePath: String, question: String, template: ConversationTemplate, imageMode: ImageMode = .crop,
                repeats: Int = 3, warmup: Int = 1, maxTokens: Int = 16, questions: [BenchmarkQuestion] = [],
                answerTokens: Int = 8, threadCounts: [Int]? = nil) {
        self.threadCounts = threadCounts
        self.imagePath = imagePath
        self.question = question
        self.template = template
        self.imageMode = imageMode
        self.repeats = repeats
        self.warmup = warmup
        self.maxTokens = maxTokens
        self.questions = questions
        self.answerTokens = answerTokens
    }
}

/// Runs the measurement loop: `warmup` untimed rounds, then `repeats` timed rounds, where a
/// round runs every setting once, in plan order, at each thread count in turn (interleaved, so
/// that a slow moment of the machine spreads over every setting and count instead of skewing
/// one). A run is the whole question: image decoded and encoded again, prompt prefilled,
/// `maxTokens` greedy tokens, with its stages timed. Then the accuracy pass of every setting
/// when there are questions (at the largest thread count).
public final class BenchmarkRunner {
    public let pipeline: LlavaPipeline
    public let options: BenchmarkOptions

    public init(pipeline: LlavaPipeline, options: BenchmarkOptions) throws {
        guard options.repeats >= 1 else { throw BenchmarkError.invalidOptions("repeat must be at least 1") }
        guard options.warmup >= 0 else { throw BenchmarkError.invalidOptions("warmup must be at least 0") }
        guard options.maxTokens >= 1 else { throw BenchmarkError.invalidOptions("max tokens must be at least 1") }
        if let counts = options.threadCounts {
            guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else {
                throw BenchmarkError.invalidOptions("thread counts must be at least 1")
            }
            guard Set(counts).count == counts.count else { throw BenchmarkError.invalidOptions("thread counts repeat") }
        }
        self.pipeline = pipeline
        self.options = options
    }

    /// Measures every setting of `plan` at every thread count (rows in setting order, each
    /// setting's counts ascending as given); `onRun` sees each timed run (round, setting, thread
    /// count, result) as soon as it is done, `onRow` each finished row. Leaves `Threads` at the
    /// largest count.
    public func run(_ plan: BenchmarkPlan, onRun: ((Int, BenchmarkSetting, Int, AskResult) -> Void)? = nil,
                    onRow: ((BenchmarkRow) -> Void)? = nil) throws -> [BenchmarkRow] {
        let generation = GenerationOptions(maxTokens: options.maxTokens, temperature: 0, stopAtEOS: false)
        let counts = options.threadCounts ?? [Threads.count]
        let cells = plan.settings.flatMap { s in counts.map { (setting: s, threads: $0) } }
        for _ in 0..<options.warmup {
            for cell in cells {
                Threads.set(cell.threads)
                _ = try ask(cell.setting, generation)
            }
        }
        var results = [[(AskResult, StageTimes)]](repeating: [], count: cells.count)
        var order = [[Int]](repeating: [], count: cells.count)
        var position = 0
        for round in 0..<options.repeats {
            for (i, cell) in cells.enumerated() {
                Threads.set(cell.threads)
                let (result, stages) = try StageTimer.record { try ask(cell.setting, generation) }
                guard result.visualTokens == cell.setting.plannedTokens else {
                    throw BenchmarkError.tokenCount(setting: cell.setting.label, planned: cell.setting.plannedTokens,
                                                    measured: result.visualTokens)
                }
                results[i].append((result, stages))
                order[i].append(position)
                position += 1
                onRun?(round, cell.setting, cell.threads, result)
            }
        }
        Threads.set(counts.max()!)
        return try cells.indices.map { i in
            let row = try row(cells[i].setting, threads: cells[i].threads, results[i], order: order[i])
            onRow?(row)
            return row
        }
    }

    func row(_ setting: BenchmarkSetting, threads: Int, _ results: [(AskResult, StageTimes)], order: [Int]) throws -> BenchmarkRow {
        let first = results[0].0
        func stat(_ key: (AskTimings) -> Double) -> BenchmarkStatistic { BenchmarkStatistic(results.map { key($0.0.timings) }) }
        let keys = Set(results.flatMap { $0.1.nanoseconds.keys })
        let names = Set(keys.map(\.name))
        let counts = options.threadCounts ?? [threads]
        let accuracy = options.questions.isEmpty || threads != counts.max() ? nil : try accuracy(setting)
        return BenchmarkRow(
            setting: setting, threads: threads, visualTokens: first.visualTokens, promptTokens: first.promptIds.count,
            generatedTokens: first.generatedIds.count, runOrder: order,
            imageMs: stat(\.imageMs), visionMs: stat(\.visionMs), prefillMs: stat(\.prefillMs), ttftMs: stat(\.ttftMs),
            ttftAloneMs: stat(\.ttftAloneMs),
            decodeTokensPerS: stat(\.decodeTokensPerS), totalMs: stat(\.totalMs),
            stageMs: Dictionary(uniqueKeysWithValues: keys.map { k in (k, BenchmarkStatistic(results.map { $0.1.milliseconds(k) })) }),
            stageTotalsMs: Dictionary(uniqueKeysWithValues: names.map { n in (n, BenchmarkStatistic(results.map { $0.1.byName[n] ?? 0 })) }),
            stageAloneTotalsMs: Dictionary(uniqueKeysWithValues: names.map { n in
                (n, BenchmarkStatistic(results.map { $0.1.aloneByName[n] ?? 0 }))
            }),
            accuracy: accuracy)
    }

    func ask(_ setting: BenchmarkSetting, _ generation: GenerationOptions) throws -> AskResult {
        try pipeline.ask(imagePath: options.imagePath, question: options.question, template: options.template,
                         mode: options.imageMode, merge: setting.merge, options: generation)
    }

    /// Greedy answers to every question under `setting`, scored by exact match after the
    /// normalisation `llava eval` uses. Each image is encoded once per setting (the encodings are
    /// kept in an image cache of the default budget while the setting is answered).
    public func accuracy(_ setting: BenchmarkSetting) throws -> BenchmarkAccuracy {
        let model = pipeline.model
        let settings = RunSettings(modelDirectory: model.directory, template: options.template.name, imageMode: options.imageMode,
                                   generation: GenerationOptions(maxTokens: options.answerTokens, temperature: 0, stopAtEOS: true),
                                   merge: setting.merge, quantization: model.quantization,
                                   visionQuantization: model.visionQuantization)
        let answerer = QuestionAnswerer(pipeline: pipeline, settings: settings, template: options.template, cache: ImageCache())
        var correct = 0
        for q in options.questions {
            let answer = try answerer.answer(q.text, image: .file(q.imagePath))
            if VQAScoring.exactMatch(prediction: answer.text, reference: q.reference) { correct += 1 }
        }
        return BenchmarkAccuracy(correct: correct, total: options.questions.count)
    }
}
