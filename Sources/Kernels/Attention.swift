import CKernels
import COpenBLAS
import Foundation

/// Scaled dot-product attention over the heads of projected queries, keys and values.
///
/// Layouts (row-major, heads side by side in the columns, as the q/k/v projections produce them):
/// - `q`:  [M, heads · headDim]
/// - `k`, `v`: [N, kvHeads · headDim]  (grouped-query attention when kvHeads < heads)
/// - `out`: [M, heads · headDim]
///
/// - `causalOffset`: nil for bidirectional attention; otherwise query i sits at position
///   `causalOffset + i` and sees keys 0 ... causalOffset + i.
/// - `keyBias`: an optional additive bias per key (length N), e.g. log(token size) for
///   proportional attention.
/// - `clsAttention`: if given (length N), receives row 0 of the attention probabilities
///   averaged over heads.
public struct AttentionShape {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var scale: Float

    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float? = nil) {
        precondition(heads % kvHeads == 0, "heads must be a multiple of kvHeads")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
    }
}

public func attention(
    q: UnsafePointer<Float>, ldq: Int,
    k: UnsafePointer<Float>, ldk: Int,
    v: UnsafePointer<Float>, ldv: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int,
    queries m: Int, keys n: Int,
    shape: AttentionShape,
    causalOffset: Int? = nil,
    keyBias: UnsafePointer<Float>? = nil,
    clsAttention: UnsafeMutablePointer<Float>? = nil
) {
    if m == 0 || n == 0 { return }
    let d = shape.headDim
    let group = shape.heads / shape.kvHeads
    let scores = Matrix(rows: m, cols: n)
    if let clsAttention { clsAttention.update(repeating: 0, count: n) }
    for h in 0..<shape.heads {
        let g = h / group
        // scores = scale · Q_h · K_gᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(d),
                    shape.scale, q + h * d, Int32(ldq), k + g * d, Int32(ldk), 0, scores.data, Int32(n))
        parallelFor(m, minPerThread: 8) { range in
            for i in range {
                let row = scores.row(i)
                if let keyBias { k_add(row, keyBias, n) }
                let visible = causalOffset.map { min(n, $0 + i + 1) } ?? n
                k_softmax(row, visible)
                if visible < n { (row + visible).update(repeating: 0, count: n - visible) }
            }
        }
        if let clsAttention {
            let inv = 1 / Float(shape.heads)
            for j in 0..<n { clsAttention[j] += scores.data[j] * inv }
        }
        // out_h = P · V_g
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(d), Int32(n),
                    1, scores.data, Int32(n), v + g * d, Int32(ldv), 0, out + h * d, Int32(ldo))
    }
}
