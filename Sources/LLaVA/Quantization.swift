import Checkpoint
import Foundation
import Kernels

/// How a part of the model keeps its matrices in memory.
public enum WeightQuantization: String, Sendable, CaseIterable {
    /// As stored in the checkpoint (F32, F16 or BF16), widened to Float32 on use: exact.
    case none
    /// Symmetric int8 with one scale per row and block of columns, made at load time; products
    /// run on int8 (activations quantized per row and block on the fly: AMX, AVX-512 VNNI or AVX2).
    case q8
    /// 4-bit: blocks of 32 columns with an F16 scale (4.5 bits per weight), products on int8
    /// activations with AVX-512 VNNI (elsewhere the weights are widened to Float32 on use).
    /// `lm_head` is kept in q8: it alone decides the next token, and it is a small part of the model.
    case q4
}

/// Loads the matrices of linear layers, quantizing them when asked and releasing the checkpoint
/// pages they came from, so only the quantized copy stays resident. Rows whose length is not a
/// multiple of 32 (CLIP's patch embedding) stay as stored.
struct LinearLoader {
    let checkpoint: CheckpointFolder
    let quantization: WeightQuantization

    func callAsFunction(_ name: String, shape: [Int]) throws -> Weight {
        let w = try checkpoint.weight(name, shape: shape)
        guard quantization != .none, w.canQuantizeQ8, !w.isQuantized else { return w }
        let q = quantization == .q4 && !name.hasSuffix("lm_head.weight") ? w.quantizedQ4() : w.quantizedQ8()
        checkpoint.releasePages(of: name)
        return q
    }
}
