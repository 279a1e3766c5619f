import Checkpoint
import Foundation
import Kernels

/// The first half of one CLIP encoder layer's attention, read but never run: layer_norm1 and the
/// q/k projections. PruMerge+ takes its CLS attention and keys from the layer after the feature
/// layer, the one whose input is the selected hidden state (the official code hooks layer 23 of
/// CLIP-L, whose input is the feature layer −2); the tower itself stops at the feature layer.
final class CLIPAttentionProbe {
    let layerNorm1: (weight: [Float], bias: [Float])
    let qProj: Weight, kProj: Weight
    let qBias: [Float], kBias: [Float]
    let eps: Float

    init(_ ckpt: CheckpointFolder, _ load: LinearLoader, prefix: String, config: CLIPVisionConfiguration) throws {
        let c = config.hiddenSize
        layerNorm1 = (try ckpt.floats(prefix + "layer_norm1.weight", shape: [c]), try ckpt.floats(prefix + "layer_norm1.bias", shape: [c]))
        qProj = try load(prefix + "self_attn.q_proj.weight", shape: [c, c])
        kProj = try load(prefix + "self_attn.k_proj.weight", shape: [c, c])
        qBias = try ckpt.floats(prefix + "self_attn.q_proj.bias", shape: [c])
        kBias = try ckpt.floats(prefix + "self_attn.k_proj.bias", shape: [c])
        eps = config.layerNormEps
    }

    /// For the layer's input `h` [T, C] (row 0 = CLS): row 0 of softmax(q kᵀ · C^-½) over all T
    /// tokens, one head over the full width as the official code computes it, and the keys [T, C].
    func clsAttentionAndKeys(_ h: Matrix) -> (clsAttention: [Float], keys: Matrix) {
        let normed = Matrix(rows: h.rows, cols: h.cols)
        layerNorm(h, weight: layerNorm1.weight, bias: layerNorm1.bias, eps: eps, into: normed)
        let keys = linear(normed, kProj, bias: kBias)
        let query = linear(normed.gatherRows([0]), qProj, bias: qBias)
        let scores = matmulTransposed(query, keys)
        let scale = Float(pow(Double(h.cols), -0.5))
        for j in 0..<scores.cols { scores[0, j] *= scale }
        softmaxRows(scores)
        return (scores.rowArray(0), keys)
    }
}
