import Checkpoint
import Foundation
import Kernels

/// How a part of the model keeps its matrices in memory.
public enum WeightQuantization: String, Sendable, CaseIterable {
    /// As stored in the checkpoint (F32, F16 or BF16), widened to Float32 on use: exact.
    case none
    /// Symmetric int8 with one scale per row and block of columns, made at load time; products
    /// run on int8 (activations quantized per row and block on the fly) where AVX-512 VNNI exists.
    case q8
}

/// Loads the matrices of linear layers, quantizing them when asked and releasing the checkpoint
/// pages they came from, so only the int8 copy stays resident. Rows whose length is not a
/// multiple of 32 (CLIP's patch embedding) stay as stored.
struct LinearLoader {
    let checkpoint: CheckpointFolder
    let quantization: WeightQuantization

    func callAsFunction(_ name: String, shape: [Int]) throws -> Weight {
        let w = try checkpoint.weight(name, shape: shape)
        guard quantization == .q8, w.canQuantizeQ8 else { return w }
        let q = w.quantizedQ8()
        checkpoint.releasePages(of: name)
        return q
    }
}
