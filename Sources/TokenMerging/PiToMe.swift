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
/// - Energies that Float32 cannot tell apart: similarities are Float32 (BLAS) and the ELU terms
///   Float32, summed in Double (errors up to 6e-8 in our measurements). Tokens whose energies are
///   within `tieTolerance` of their neighbour in that order are scored again entirely in Double from
///   the raw metric and re-ordered among themselves, so rounding cannot flip the ranking. PyTorch's
///   Float32 order agrees with the Double order except on sub-ulp ties, which no implementation
///   can reproduce reliably (two of the 80 official fixtures contain such near-ties, 2e-9 apart).
/// - Exact ties sort by index ascending; argmax takes the first index.
/// - r is clamped to T'/2 (the official code crashes when 2r > T'); r = 0 returns the identity
///   (the official code crashes there too).
public enum PiToMe {
    /// Energies closer than this are re-scored in Double.
    public static let tieTolerance = 1e-6

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

    /// Energies E_i = (1/T') Σ_j ELU_α(W_ij − m) of a T'×T' cosine-similarity matrix: each term in
    /// Float32, the sum in Double.
    public static func energy(similarity w: Matrix, margin: Float, alpha: Float) -> [Double] {
        let p = w.rows
        var e = [Double](repeating: 0, count: p)
        e.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            parallelFor(p, minPerThread: 32, workPerItem: 8 * w.cols) { range in
                for i in range {
                    let row = w.row(i)
                    var sum = 0.0
                    for j in 0..<w.cols {
                        let z = row[j] - margin
                        sum += Double(z > 0 ? z : alpha * expm1f(z))
                    }
                    base[i] = sum / Double(w.cols)
                }
            }
        }
        return e
    }

    /// Patch indices by descending energy (see the note on ties above).
    public static func energyOrder(patches: Matrix, similarity w: Matrix, margin: Double, alpha: Float) -> [Int] {
        let e = energy(similarity: w, margin: Float(margin), alpha: alpha)
        var order = descendingOrder(e)
        // Runs of neighbours in that order whose energies Float32 cannot separate.
        var runs: [Range<Int>] = []
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && e[order[end - 1]] - e[order[end]] < tieTolerance { end += 1 }
            if end - start > 1 { runs.append(start..<end) }
            start = end
        }
        if runs.isEmpty { return order }
        let exact = exactEnergies(of: runs.flatMap { order[$0] }, patches: patches, margin: margin, alpha: Double(alpha))
        for run in runs {
            let sorted = order[run].sorted { a, b in
                exact[a]! > exact[b]! || (exact[a]! == exact[b]! && a < b)
            }
            order.replaceSubrange(run, with: sorted)
        }
        return order
    }

    /// Energies of the listed patches in Double, from the raw metric rows: Float products are exact
    /// in Double, so only the Double sums round.
    static func exactEnergies(of tokens: [Int], patches: Matrix, margin: Double, alpha: Double) -> [Int: Double] {
        let p = patches.rows, c = patches.cols
        var norms = [Double](repeating: 0, count: p)
        var values = [Double](repeating: 0, count: tokens.count)
        norms.withUnsafeMutableBufferPointer { normBuffer in
            let n = normBuffer.baseAddress!
            parallelFor(p, minPerThread: 64, workPerItem: c) { range in
                for i in range { n[i] = max(doubleDot(patches.row(i), patches.row(i), c).squareRoot(), 1e-12) }
            }
            values.withUnsafeMutableBufferPointer { valueBuffer in
                let out = valueBuffer.baseAddress!
                parallelFor(tokens.count, workPerItem: p * c) { range in
                    let dots = UnsafeMutablePointer<Double>.allocate(capacity: p)
                    defer { dots.deallocate() }
                    for t in range {
                        let i = tokens[t]
                        // The same sums as doubleDot(row i, row j), four rows at a time.
                        doubleDots(patches.row(i), rows: patches.data, ld: c, count: p, length: c, into: dots)
                        var sum = 0.0
                        for j in 0..<p {
                            let z = dots[j] / (n[i] * n[j]) - margin
                            sum += z > 0 ? z : alpha * expm1(z)
                        }
                        out[t] = sum / Double(p)
                    }
                }
            }
        }
        return Dictionary(uniqueKeysWithValues: zip(tokens, values))
    }

    /// For each row in `a`, the position in `b` of its most similar row (the first on ties),
    /// rows of `a` split over threads.
    static func mostSimilar(of a: [Int], among b: [Int], similarity w: Matrix) -> [Int] {
        var dst = [Int](repeating: 0, count: a.count)
        dst.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            parallelFor(a.count, minPerThread: 16, workPerItem: b.count) { range in
                var scores = [Float](repeating: 0, count: b.count)
                for t in range {
                    let row = w.row(a[t])
                    for j in 0..<b.count { scores[j] = row[b[j]] }
                    o[t] = scores.withUnsafeBufferPointer { firstArgmax($0.baseAddress!, b.count).index }
                }
            }
        }
        return dst
    }

    /// The merge plan removing `r` patch tokens (clamped to T' / 2) by the PiToMe energy rule.
    public static func plan(metric: Matrix, remove r: Int, margin: Double, alpha: Float = 1) -> MergePlan {
        let n = metric.rows
        let p = n - 1
        let r = min(r, p / 2)
        if r <= 0 { return .identity(rows: n) }
        let patches = metric.gatherRows(Array(1..<n))
        let w = stage("merge.similarity") {
            let v = normalizedRows(metric, Array(1..<n))
            return matmulTransposed(v, v)
        }
        let order = stage("merge.energy") { energyOrder(patches: patches, similarity: w, margin: margin, alpha: alpha) }
        return stage("merge.matching") {
            let a = stride(from: 0, to: 2 * r, by: 2).map { order[$0] }
            let b = stride(from: 1, to: 2 * r, by: 2).map { order[$0] }
            let protected = order[(2 * r)...].map { $0 + 1 }
            let merges = zip(a, mostSimilar(of: a, among: b, similarity: w)).map { (row: $0 + 1, into: 1 + protected.count + $1) }
            return MergePlan(inputRows: n, heads: [0] + protected + b.map { $0 + 1 }, merges: merges)
        }
    }
}

extension PiToMe: TokenReducer {
    public static let name = "pitome"
    public static let summary = "PiToMe as wired for LLaVA: ToMe while 2·i <= L, the energy stage after (--pitome-every-layer: the energy stage everywhere)"
    public static let site = ReducerSite.towerLayers
    public static let parameters: Set<ReducerParameter> = [.everyLayer]
    public static func layerStage(layer i: Int, towerDepth l: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        options.pitomeEveryLayer || 2 * i > l ? .pitome : .tome
    }
}

extension LayerStep.Stage {
    /// PiToMe's energy stage with the layer's margin.
    public static let pitome = halving(
        name: "pitome", removal: { p, ratio in PiToMe.removal(patchTokens: p, ratio: ratio) },
        plan: { step, input in PiToMe.plan(metric: input.metric, remove: step.remove, margin: step.margin, alpha: input.options.alpha) })
}

extension MergeMethod {
    public static let pitome = MergeMethod(PiToMe.self)
}
