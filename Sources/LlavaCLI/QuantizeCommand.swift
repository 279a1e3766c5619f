import ArgumentParser
import Foundation
import Kernels
import LLaVA

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a checkpoint once and write it as a folder that loads with no re-quantization.",
        discussion: """
        The matrices are quantized exactly as --quantize does at load time and stored in their \
        packed layout in model.safetensors (layout: QuantizedCheckpoint in \
        Sources/LLaVA/Quantization.swift); every other tensor is copied as stored, and the \
        config, tokenizer and preprocessor files are copied. The folder then loads by memory \
        map: `--model OUT` needs no --quantize flag.
        """
    )

    @Option(name: .long, help: "Checkpoint folder to quantize (Hugging Face layout).")
    var model: String

    @Option(name: .long, help: "Output folder (created; must not exist or be empty).")
    var out: String

    @Option(name: .long, help: "Language-model weights: q8 or q4.")
    var type: WeightQuantization

    @Option(name: .long, help: "Vision tower and projector weights: none (as stored) or q8.")
    var vision: WeightQuantization = .none

    @Option(name: [.customShort("t"), .long], help: "Threads.")
    var threads: Int?

    func validate() throws {
        if type == .none { throw ValidationError("--type must be q8 or q4") }
        if vision == .q4 { throw ValidationError("--vision must be none or q8") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            Threads.set(threads ?? Threads.count)
            let start = Date()
            let progress = ProgressLine()
            try QuantizedCheckpoint.write(from: model, to: out, language: type, vision: vision) { done, total in
                progress.update("llava: quantizing the language model to \(type.rawValue): layer \(done)/\(total)")
            }
            progress.finish(String(format: "llava: wrote %@ (%@%@) in %.1f s", out, type.rawValue,
                                   vision == .none ? "" : ", vision \(vision.rawValue)", Date().timeIntervalSince(start)))
        }
    }
}

extension Quantize: Exemplified {
    static let examples = [
        "llava quantize --model ~/llava-1.5-7b-hf --out ~/llava-1.5-7b-q4 --type q4",
        "llava quantize --model ~/llava-1.5-7b-hf --out ~/llava-1.5-7b-q8 --type q8 --vision q8",
    ]
}
