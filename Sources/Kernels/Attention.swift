import CKernels
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
    if m <= rowByRowQueries && keyBias == nil && clsAttention == nil {
        attendRowByRow(q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv, out: out, ldo: ldo, queries: m, keys: n,
                       shape: shape, causalOffset: causalOffset)
        return
    }
    // Queries go in blocks; with a causal mask a block only scores the keys its last row sees.
    // The threads share out (head, block) pairs, so that more threads than heads still find work.
    let block = min(m, 128)
    let blocks = (m + block - 1) / block
    let clsRows = clsAttention.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: shape.heads * n) }
    defer { clsRows?.deallocate() }
    Threads.withSingleThreadedBLAS {
        // A unit scores and reads out `block` queries against n keys: 2 · block · n · d multiply-adds.
        parallelFor(shape.heads * blocks, minPerThread: blocksPerThread(2 * block * n * d)) { units in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * n)
            defer { scores.deallocate() }
            for unit in units {
                let h = unit / blocks, g = h / group
                let i0 = (unit % blocks) * block
                let rows = min(block, m - i0)
                let width = causalOffset.map { min(n, $0 + i0 + rows) } ?? n
                // scores = scale · Q_h · K_gᵀ over the visible keys
                sgemm(.none, .transposed, rows, width, d,
                      shape.scale, q + i0 * ldq + h * d, ldq, k + g * d, ldk, 0, scores, width)
                for r in 0..<rows {
                    let row = scores + r * width
                    if let keyBias { k_add(row, keyBias, width) }
                    let visible = causalOffset.map { min(n, $0 + i0 + r + 1) } ?? n
                    k_softmax(row, visible)
                    if visible < width { (row + visible).update(repeating: 0, count: width - visible) }
                }
                if i0 == 0, let clsRows {
                    (clsRows + h * n).update(from: scores, count: width)
                    (clsRows + h * n + width).update(repeating: 0, count: n - width)
                }
                // out_h = P · V_g
                sgemm(.none, .none, rows, d, width,
                      1, scores, width, v + g * d, ldv, 0, out + i0 * ldo + h * d, ldo)
            }
        }
    }
    if let clsAttention, let clsRows {
        let inv = 1 / Float(shape.heads)
        for j in 0..<n {
            var sum: Float = 0
            for h in 0..<shape.heads { sum += clsRows[h * n + j] }
            clsAttention[j] = sum * inv
        }
    }
}

/// Up to this many query rows (decoding, short follow-ups) attend row by row with `k_attend_row`;
/// longer prompts use products. One query row's scores are a matrix-vector product per head, where
/// two small sgemm calls per head cost more in set-up than in arithmetic.
let rowByRowQueries = 4

/// Attention row by row: each row and each group of query heads sharing a key/value head reads
/// the visible keys and values once. Heads are split over threads.
private func attendRowByRow(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                            v: UnsafePointer<Float>, ldv: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                            queries m: Int, keys n: Int, shape: AttentionShape, causalOffset: Int?) {
    let d = shape.headDim, group = shape.heads / shape.kvHeads
    parallelFor(shape.heads, minPerThread: blocksPerThread(2 * m * n * d)) { heads in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * n)
        defer { scores.deallocate() }
        for i in 0..<m {
            let visible = causalOffset.map { min(n, $0 + i + 1) } ?? n
            var h = heads.lowerBound
            while h < heads.upperBound {
                // The heads of this thread that share key/value head g.
                let g = h / group, end = min(heads.upperBound, (g + 1) * group)
                k_attend_row(q + i * ldq + h * d, end - h, d, k + g * d, ldk, v + g * d, ldv, visible, shape.scale,
                             scores, out + i * ldo + h * d)
                h = end
            }
        }
    }
}
