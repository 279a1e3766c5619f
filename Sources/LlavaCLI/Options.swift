import ArgumentParser
import Foundation
import Kernels
import LLaVA
import TokenMerging

/// --model and --threads, shared by every command.
struct ModelOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: "Checkpoint folder (Hugging Face layout). Default: the shipped Models/shapes-llava.")
    var model: String?

    @Option(name: [.customShort("t"), .long], help: "Threads for every stage (matrix products, attention, norms). `llava bench` also takes a comma-separated list of counts to compare.")
    var threads: CommaList<Int>?

    @Option(name: .long, help: "Language-model weights: none (as stored, exact Float32 arithmetic), q8 (int8 with one scale per row and block of columns; about half the memory of F16) or q4 (4-bit blocks of 32 with an F16 scale). Made at load time, or read as stored from a folder written by `llava quantize`.")
    var quantize: WeightQuantization = .none

    @Option(name: .long, help: "Vision tower and projector weights: none (as stored, exact) or q8 (int8, as --quantize).")
    var quantizeVision: VisionQuantization = .none

    @Option(name: .long, help: ArgumentHelp("The CLIP folder the LLaVA tower came from (e.g. openai/clip-vit-large-patch14-336: config.json, model.safetensors, vocab.json, merges.txt), for question-aware reducers (--merge cdpruner): its text tower and projections.", valueName: "dir"))
    var clip: String?

    func validate() throws {
        if let model, model.isEmpty { throw ValidationError("--model is empty: give a checkpoint folder (or leave --model out for the shipped model)") }
        if let clip, clip.isEmpty { throw ValidationError("--clip is empty: give the CLIP folder the LLaVA tower came from") }
        if let bad = threads?.values.first(where: { $0 < 1 }) { throw invalid("--threads", "at least 1", bad) }
    }

    /// Applies --threads and resolves the model folder. Only `llava bench` takes several counts
    /// (`threadList`); it starts at the largest.
    func resolve(threadList: Bool = false) throws -> String {
        let counts = threads?.values ?? [Threads.count]
        if counts.count != 1 && !threadList {
            throw CLIError("--threads takes one count here (lists of counts are for llava bench), got \(threads?.text ?? "")")
        }
        Threads.set(counts.max()!)
        if let model { return model }
        guard let shipped = PackageResources.defaultModelDirectory else {
            throw CLIError("no --model given and the shipped model folder (Models/shapes-llava) was not found; set LLAVA_HOME to the package folder")
        }
        return shipped
    }

    /// Loads the model folder with the weight formats of --quantize and --quantize-vision
    /// (see `loadPipeline(_:reducers:)` taking run settings).
    func loadPipeline(_ directory: String, reducers: [MergeMethod] = []) throws -> LlavaPipeline {
        try loadPipeline(RunSettings(modelDirectory: directory, quantization: quantize, visionQuantization: quantizeVision.weights),
                         reducers: reducers)
    }

    /// Loads the settings' model folder with their weight formats; quantizing shows progress on
    /// stderr. `reducers`: the merge methods the command will run (nil: the settings' own); one
    /// that reads the question needs --clip, which is loaded (and checked against the tower)
    /// before the model.
    func loadPipeline(_ settings: RunSettings, reducers: [MergeMethod]? = nil) throws -> LlavaPipeline {
        try requireCLIP(for: reducers ?? [settings.merge.options.method])
        let encoder = try clip.map { try CLIPTextFolder(directory: $0) }
        let pipeline = try loadModel(settings)
        if let encoder {
            try encoder.checkVisionHiddenSize(pipeline.model.config.vision.hiddenSize)
            pipeline.model.questionEncoder = encoder
        }
        return pipeline
    }

    /// Throws unless --clip is given where one of `reducers` reads the question; commands that
    /// write or read files before loading the model call it first.
    func requireCLIP(for reducers: [MergeMethod]) throws {
        if let method = reducers.first(where: { $0.needs.contains(.question) }), clip == nil {
            throw CLIError(LlavaError.questionEncoderMissing(method).description)
        }
    }

    private func loadModel(_ settings: RunSettings) throws -> LlavaPipeline {
        let quantization = settings.quantization
        guard quantization != .none else { return try LlavaPipeline(settings: settings) }
        let start = Date()
        let progress = ProgressLine()
        let pipeline = try LlavaPipeline(settings: settings) { done, total in
            progress.update("llava: quantizing the language model to \(quantization.rawValue): layer \(done)/\(total)")
        }
        progress.finish(String(format: "llava: quantized the language model to %@ in %.1f s", quantization.rawValue,
                               Date().timeIntervalSince(start)))
        return pipeline
    }
}

extension WeightQuantization: ExpressibleByArgument {}

/// The weight formats the vision tower takes (4-bit blocks are for the language model only).
enum VisionQuantization: String, CaseIterable, ExpressibleByArgument {
    case none, q8

    var weights: WeightQuantization { self == .q8 ? .q8 : .none }
}

/// Image preprocessing choice.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("image-mode"), help: ArgumentHelp("Image preprocessing: crop (transformers' CLIPImageProcessor) or pad (original LLaVA: pad to a square with the mean colour). Default: crop; pad for benchmark runs (eval --benchmark, eval sweep).", valueName: "image-mode"))
    var imageModeFlag: ImageMode?

    var imageMode: ImageMode {
        get { imageModeFlag ?? .crop }
        set { imageModeFlag = newValue }
    }
}

extension ImageMode: ExpressibleByArgument {}

/// Token merging inside the vision tower.
struct MergeFlags: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Visual-token reducer, each described below.", discussion: Reducers.help))
    var merge: MergeMethod = .none

    @Option(name: .long, help: "Fraction of tokens each tower layer keeps (0 < R <= 1), compounded over layers.")
    var ratio: Double?

    @Option(name: .long, help: "Token budget: exactly K visual tokens reach the language model (instead of --ratio).")
    var keep: Int?

    @Option(name: .long, help: "How merged tokens combine: mean (official LLaVA wiring) or size (size-weighted).")
    var mergeWeighting: MergeWeighting = .mean

    @Option(name: .long, help: "Merge metric: hidden (layer output, merge after the layer; official LLaVA wiring) or keys (keys averaged over heads, merge between attention and MLP).")
    var mergeMetric: MergeMetric = .hidden

    @Flag(name: .long, help: "Add log(token size) to the attention logits (proportional attention).")
    var propAttn = false

    @Flag(name: .long, help: "PiToMe energy stage at every layer (instead of ToMe in the first half).")
    var pitomeEveryLayer = false

    @Option(name: .long, help: "Seed of the random-drop baseline.")
    var mergeSeed: UInt64 = 0

    @Option(name: .long, help: "FastV: the language-model layers that see every visual token before the cut (K, at least 1).")
    var fastvLayer = MergeOptions().fastvLayer

    @Option(name: .long, help: "VisPruner: the share of --keep chosen by CLS attention, the rest by diversity (0 ... 1).")
    var importantRatio = MergeOptions().importantRatio

    func validate() throws {
        try validateMergeSettings(settings)
    }

    var settings: VisionMergeSettings {
        VisionMergeSettings(
            options: MergeOptions(method: merge, ratio: ratio, keep: keep, weighting: mergeWeighting,
                                  pitomeEveryLayer: pitomeEveryLayer, seed: mergeSeed, fastvLayer: fastvLayer,
                                  importantRatio: importantRatio),
            metric: mergeMetric, proportionalAttention: propAttn)
    }
}

extension MergeMethod: ExpressibleByArgument {}
extension MergeWeighting: ExpressibleByArgument {}
extension MergeMetric: ExpressibleByArgument {}

/// Decoding settings (llama.cpp's names where it has them).
struct GenerationFlags: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: ArgumentHelp("Maximum number of new tokens. Default: 256; for benchmark runs (eval --benchmark, eval sweep), that of the benchmark's LLaVA-1.5 script.", valueName: "max-tokens"))
    var maxTokensFlag: Int?

    var maxTokens: Int {
        get { maxTokensFlag ?? 256 }
        set { maxTokensFlag = newValue }
    }

    @Option(name: [.long, .customLong("temp")], help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Keep only the K most likely tokens (0: all).")
    var topK = 0

    @Option(name: .long, help: "Nucleus sampling: keep the smallest set of tokens whose probability reaches P.")
    var topP: Float = 1

    @Option(name: .long, help: "Drop tokens less likely than P times the most likely one (0: off).")
    var minP: Float = 0

    @Option(name: .long, help: "Divide positive logits (multiply negative ones) of tokens among the last --repeat-last-n tokens of the conversation by F (1: off).")
    var repeatPenalty: Float = 1

    @Option(name: .long, help: "Window of the repeat penalty: the last N tokens (prompt text and answer; image positions do not count).")
    var repeatLastN = 64

    @Option(name: [.customShort("s"), .long], help: "Random seed for sampling (default: random for ask and chat, 0 for eval).")
    var seed: UInt64?

    @Option(name: [.customShort("c"), .long], help: "Context size in tokens (0: the model's; more than the model's is an error).")
    var ctxSize = 0

    @Flag(name: .long, help: "Keep generating after the end-of-sequence token (answers run to -n or the end of the context).")
    var ignoreEos = false

    @Option(name: .customLong("template"), help: ArgumentHelp("Conversation template: a name from Prompts/templates (llava-hf, llava-v1) or a .json path. Default: llava-hf; llava-v1 (LLaVA's vicuna_v1) for benchmark runs (eval --benchmark, eval sweep).", valueName: "template"))
    var templateFlag: String?

    var template: String {
        get { templateFlag ?? "llava-hf" }
        set { templateFlag = newValue }
    }

    /// The rules of `GenerationOptions.validate`, in the words of these flags.
    func validate() throws {
        do {
            try options(seed: 0).validate()
        } catch let error as RunSettingsError {
            throw flagError(error)
        }
    }

    var sampling: SamplingSettings {
        SamplingSettings(temperature: temperature, topK: topK, topP: topP, minP: minP,
                         repeatPenalty: repeatPenalty, repeatLastN: repeatLastN)
    }

    /// The options of one run; `seed` nil picks a random seed.
    func options(seed: UInt64? = nil) -> GenerationOptions {
        GenerationOptions(maxTokens: maxTokens, sampling: sampling,
                          seed: seed ?? self.seed ?? UInt64.random(in: 0...UInt64(UInt32.max)),
                          stopAtEOS: !ignoreEos, contextSize: ctxSize == 0 ? nil : ctxSize)
    }

    var options: GenerationOptions { options() }
}

extension RunSettings {
    /// The settings the flag groups give. `directory` is the model folder `ModelOptions.resolve`
    /// found; `imageMode`, `merge` and `generation` are passed as the command settled them
    /// (benchmark runs put LLaVA's defaults in where no flag was given); `defaultSeed` is the
    /// seed when -s is not given (nil: a random one).
    init(directory: String, model: ModelOptions, imageMode: ImageMode, merge: VisionMergeSettings,
         generation: GenerationFlags, defaultSeed: UInt64? = nil) {
        self.init(modelDirectory: directory, template: generation.template, imageMode: imageMode,
                  generation: generation.options(seed: generation.seed ?? defaultSeed), merge: merge,
                  quantization: model.quantize, visionQuantization: model.quantizeVision.weights)
    }
}

/// A run-settings error in the words of the flag that sets the field.
func flagError(_ error: RunSettingsError) -> ValidationError {
    let flags: [RunSettingsError.Field: String] = [
        .modelDirectory: "--model", .template: "--template", .visionQuantization: "--quantize-vision",
        .maxTokens: "--max-tokens", .temperature: "--temperature", .topK: "--top-k", .topP: "--top-p", .minP: "--min-p",
        .repeatPenalty: "--repeat-penalty", .repeatLastN: "--repeat-last-n", .contextSize: "--ctx-size",
    ]
    let flag = flags[error.field]!
    switch error {
    case .empty: return ValidationError("\(flag) is empty")
    case .outOfRange(_, let rule, let value): return invalid(flag, rule, value)
    }
}

/// A flag value outside its range: "--ratio must be in (0, 1], got -1".
func invalid(_ flag: String, _ rule: String, _ value: some CustomStringConvertible) -> ValidationError {
    ValidationError("\(flag) must be \(rule), got \(shown(value))")
}

/// A number as typed: -1 rather than -1.0.
func shown(_ value: some CustomStringConvertible) -> String {
    let text = value.description
    if text.hasSuffix(".0"), Double(text) != nil { return String(text.dropLast(2)) }
    return text
}

/// A failure worth one line on stderr.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command's body; an error (other than an exit code) becomes one line on stderr and
/// exit status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(error)
    }
}

/// Prints `error` as one line on stderr and exits with status 1.
func fail(_ error: Error) -> ExitCode {
    let message = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    StandardStream.error.write("llava: error: \(message)\n")
    return ExitCode(1)
}

/// A status line on stderr: redrawn in place on a terminal, printed once at the end otherwise.
final class ProgressLine {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var shown = false

    func update(_ text: String) {
        guard isTerminal else { return }
        StandardStream.error.write("\r\u{1B}[K\(text)")
        shown = true
    }

    func finish(_ text: String) {
        StandardStream.error.write((shown ? "\r\u{1B}[K" : "") + text + "\n")
    }
}

func printErr(_ text: String) {
    StandardStream.error.write(text + "\n")
}

/// stdout or stderr, written without buffering. A failed write (a full disk, a closed pipe) is
/// remembered, never a crash; `check` turns it into an error, so output that could not be
/// written is never a success. (Failures on stderr have nowhere to be reported.)
final class StandardStream: @unchecked Sendable {
    static let output = StandardStream(STDOUT_FILENO, name: "stdout")
    static let error = StandardStream(STDERR_FILENO, name: "stderr")

    let fd: Int32
    let name: String
    private(set) var failure: String?

    init(_ fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    func write(_ text: String) {
        guard failure == nil else { return }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                return
            }
            bytes = bytes.dropFirst(n)
        }
    }

    func check() throws {
        if let failure { throw CLIError("cannot write to \(name): \(failure)") }
    }
}
