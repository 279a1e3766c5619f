import ArgumentParser
import Foundation
import Kernels
import LLaVA
import TokenMerging

/// --model and --threads, shared by every command.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint folder (Hugging Face layout). Default: the shipped Models/shapes-llava.")
    var model: String?

    @Option(name: [.customShort("t"), .long], help: "Threads for every stage (matrix products, attention, norms).")
    var threads: Int?

    @Option(name: .long, help: "Language-model weights: none (as stored, exact Float32 arithmetic) or q8 (int8 with one scale per row and block of columns, made at load time; about half the memory of F16; int8 products on AVX-512 VNNI).")
    var quantize: WeightQuantization = .none

    @Option(name: .long, help: "Vision tower and projector weights: none (as stored, exact) or q8 (int8, as --quantize).")
    var quantizeVision: WeightQuantization = .none

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Applies --threads and resolves the model folder.
    func resolve() throws -> String {
        Threads.set(threads ?? Threads.count)
        if let model { return model }
        guard let shipped = PackageResources.defaultModelDirectory else {
            throw CLIError("no --model given and the shipped model folder (Models/shapes-llava) was not found; set LLAVA_HOME to the package folder")
        }
        return shipped
    }

    /// Loads the model folder with the requested weight format; quantizing shows progress on stderr.
    func loadPipeline(_ directory: String) throws -> LlavaPipeline {
        guard quantize != .none else { return try LlavaPipeline(directory: directory, visionQuantization: quantizeVision) }
        let start = Date()
        let progress = ProgressLine()
        let pipeline = try LlavaPipeline(directory: directory, quantization: quantize,
                                         visionQuantization: quantizeVision) { done, total in
            progress.update("llava: quantizing the language model to \(quantize.rawValue): layer \(done)/\(total)")
        }
        progress.finish(String(format: "llava: quantized the language model to %@ in %.1f s", quantize.rawValue,
                               Date().timeIntervalSince(start)))
        return pipeline
    }
}

extension WeightQuantization: ExpressibleByArgument {}

/// Image preprocessing choice.
struct ImageOptions: ParsableArguments {
    @Option(name: .long, help: "Image preprocessing: crop (transformers' CLIPImageProcessor) or pad (original LLaVA: pad to a square with the mean colour).")
    var imageMode: ImageMode = .crop
}

extension ImageMode: ExpressibleByArgument {}

/// Token merging inside the vision tower.
struct MergeFlags: ParsableArguments {
    @Option(name: .long, help: "Visual-token merging: none, pitome, tome, tofu, dct, diffrate, random, pool, divprune, visionzip, crossget, mctf.")
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

    func validate() throws {
        try validateMergeSettings(settings)
    }

    var settings: VisionMergeSettings {
        VisionMergeSettings(
            options: MergeOptions(method: merge, ratio: ratio, keep: keep, weighting: mergeWeighting,
                                  pitomeEveryLayer: pitomeEveryLayer, seed: mergeSeed),
            metric: mergeMetric, proportionalAttention: propAttn)
    }
}

extension MergeMethod: ExpressibleByArgument {}
extension MergeWeighting: ExpressibleByArgument {}
extension MergeMetric: ExpressibleByArgument {}

/// Decoding settings.
struct GenerationFlags: ParsableArguments {
    @Option(name: [.customShort("n"), .long], help: "Maximum number of new tokens.")
    var maxTokens = 256

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Nucleus sampling: keep the smallest set of tokens whose probability reaches P.")
    var topP: Float = 1

    @Option(name: [.customShort("s"), .long], help: "Random seed for sampling (default: random).")
    var seed: UInt64?

    @Option(name: .long, help: "Conversation template: a name from Prompts/templates (llava-hf, llava-v1) or a .json path.")
    var template = "llava-hf"

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if !(temperature >= 0) { throw ValidationError("--temperature must be >= 0") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must satisfy 0 < P <= 1") }
    }

    var options: GenerationOptions {
        GenerationOptions(maxTokens: maxTokens, temperature: temperature, topP: topP,
                          seed: seed ?? UInt64.random(in: 0...UInt64(UInt32.max)))
    }
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
    FileHandle.standardError.write(Data("llava: error: \(message)\n".utf8))
    return ExitCode(1)
}

/// A status line on stderr: redrawn in place on a terminal, printed once at the end otherwise.
final class ProgressLine {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var shown = false

    func update(_ text: String) {
        guard isTerminal else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        shown = true
    }

    func finish(_ text: String) {
        FileHandle.standardError.write(Data(((shown ? "\r\u{1B}[K" : "") + text + "\n").utf8))
    }
}

func printErr(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
