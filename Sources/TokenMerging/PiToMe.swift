import Foundation
import Kernels

/// PiToMe energy-based merging (`pitome_vision` + `pitome` in hchautran/PiToMe `algo/pitome/merge.py`),
/// for token sequences whose row 0 is a CLS token.
///
/// What the official code does: drop CLS from the metric; normalise the T' patch rows; W = V·Vᵀ
/// (self included); energy E_i = mean_j ELU_α(W_ij − m) over all T'; sort by energy, descending;
/// the top 2r are mergeable, A = even ranks, B = odd ranks; every A merges into its most similar B
/// (no edge selection); output = [CLS, protected tokens in descending energy, B in rank order].
/// Note the code subtracts m also above the margin, where the paper's formula adds W_ij; we follow
/// the code.
///
/// Where we differ:
/// - Energies that Float32 cannot tell apart: the order comes from Float32 energies (similarity
///   through BLAS), but tokens whose Float32 energies are within `tieTolerance` of their neighbour
///   in that order are scored again in Double from the raw metric and re-ordered among themselves.
///   Float32 rounding (about 1e-7 here) thus cannot flip the ranking; PyTorch's Float32 order agrees
///   with the Double order except on sub-ulp ties, which no implementation can reproduce reliably.
/// - Exact ties sort by index ascending; argmax takes the first index.
/// - r is clamped to T'/2 (the official code crashes when 2r > T'); r = 0 returns the identity
///   (the official code crashes there too).
public enum PiToMe {
    /// Float32 energies closer than this are re-scored in Double.
    public static let tieTolerance: Float = 1e-5

    /// Tokens removed at one layer with keep-ratio ρ: floor(T' − T'·ρ) in Double over the T' patch
    /// tokens (CLS excluded), clamped to T' / 2.
    public static func removal(patchTokens p: Int, ratio: Double) -> Int {
        let r = Int((Double(p) - Double(p) * ratio).rounded(.down))
        return max(0, min(r, p / 2))
    }

    /// The layer margin m_i = m₀ − m₀·(i / L) (official default m₀ = 0.9 for the LLaVA CLIP tower),
    /// computed in the same order as the official code.
    public static func margin(layer i: Int, depth l: Int, base: Double = 0.9) -> Double {
        base - base * (Double(i) / Double(l))
    }

    /// Energies E_i = (1/T') Σ_j ELU_α(W_ij − m) of a T'×T' cosine-similarity matrix, in Float32.
    public static func energy(similarity w: Matrix, margin: Float, alpha: Float) -> [Float] {
        let p = w.rows
        var e = [Float](repeating: 0, count: p)
        e.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            parallelFor(p, minPerThread: 32) { range in
                for i in range {
                    let row = w.row(i)
                    var sum: Float = 0
                    for j in 0..<w.cols {
                        let z = row[j] - margin
                        sum += z > 0 ? z : alpha * expm1f(z)
                    }
                    base[i] = sum / Float(w.cols)
                }
            }
        }
        return e
    }

    /// The energy of patch `i` (row i of `patches`) in Double: normalisation, dot products and sum.
    static func energyInDouble(_ i: Int, patches: Matrix, norms: [Double], margin: Double, alpha: Double) -> Double {
        let c = patches.cols
        let xi = patches.row(i)
        var sum = 0.0
        for j in 0..<patches.rows {
            let xj = patches.row(j)
            var dot = 0.0
            for k in 0..<c { dot += Double(xi[k]) * Double(xj[k]) }
            let z = dot / (norms[i] * norms[j]) - margin
            sum += z > 0 ? z : alpha * expm1(z)
        }
        return sum / Double(patches.rows)
    }

    /// Patch indices by descending energy (see the note on ties above).
    public static func energyOrder(patches: Matrix, similarity w: Matrix, margin: Double, alpha: Float) -> [Int] {
        let e = energy(similarity: w, margin: Float(margin), alpha: alpha)
        var order = descendingOrder(e)
        var norms: [Double] = []
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && e[order[end - 1]] - e[order[end]] < tieTolerance { end += 1 }
            if end - start > 1 {
                if norms.isEmpty {
                    norms = (0..<patches.rows).map { i in
                        let x = patches.row(i)
                        var s = 0.0
                        for k in 0..<patches.cols { s += Double(x[k]) * Double(x[k]) }
                        return max(s.squareRoot(), 1e-12)
                    }
                }
                let run = Array(order[start..<end])
                let exact = run.map { energyInDouble($0, patches: patches, norms: norms, margin: margin, alpha: Double(alpha)) }
                let reordered = exact.indices.sorted { a, b in
                    exact[a] > exact[b] || (exact[a] == exact[b] && run[a] < run[b])
                }
                for (k, idx) in reordered.enumerated() { order[start + k] = run[idx] }
            }
            start = end
        }
        return order
    }

    /// The merge plan removing `r` patch tokens (clamped to T' / 2) by the PiToMe energy rule.
    public static func plan(metric: Matrix, remove r: Int, margin: Double, alpha: Float = 1) -> MergePlan {
        let n = metric.rows
        let p = n - 1
        let r = min(r, p / 2)
        if r <= 0 { return .identity(rows: n) }
        let patches = metric.gatherRows(Array(1..<n))
        let v = normalizedRows(patches, Array(0..<p))
        let w = matmulTransposed(v, v)
        let order = energyOrder(patches: patches, similarity: w, margin: margin, alpha: alpha)
        let a = stride(from: 0, to: 2 * r, by: 2).map { order[$0] }
        let b = stride(from: 1, to: 2 * r, by: 2).map { order[$0] }
        var bGroups = b.map { [$0 + 1] }
        var scores = [Float](repeating: 0, count: r)
        for src in a {
            let row = w.row(src)
            for j in 0..<r { scores[j] = row[b[j]] }
            let dst = scores.withUnsafeBufferPointer { firstArgmax($0.baseAddress!, r).index }
            bGroups[dst].append(src + 1)
        }
        let protected = order[(2 * r)...].map { [$0 + 1] }
        return MergePlan(inputRows: n, groups: [[0]] + protected + bGroups)
    }
}
