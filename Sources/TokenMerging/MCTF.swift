import Kernels

/// MCTF (multi-criteria token fusion) as the official PiToMe repository runs it on a CLIP tower
/// (`algo/mctf/merge.py`, `bipartite_soft_matching` and `merge_wavg`, wired by
/// `algo/mctf/patch/clip_llava.py`).
///
/// What that wiring does, r = floor(N − N·ρ) with N counting CLS:
/// 1. scores = ((cos + 1) / 2)^(1/τ_sim) between A = rows 0, 2, 4, … and B = rows 1, 3, 5, …,
///    τ_sim = 1; the attention and size criteria are off (the wiring passes neither to the
///    matching); A's CLS row is −∞;
/// 2. bidirectional: the r₁ = ⌊r/2⌋ A rows with the best score merge into their best B row; then,
///    with the same scores, the r₂ = r − r₁ B rows (with what they absorbed) whose best remaining
///    A row scores highest merge into it;
/// 3. merged features are weighted means with weight = attention received (the layer's attention
///    probabilities averaged over heads and queries) × token size; sizes add up;
/// 4. output: the remaining A rows in order (CLS first), then the remaining B rows in the order of
///    their best score, descending.
/// Layers: the encoder pops its per-layer ratios from the end of [ρ, 1, ρ, 1, …], so the odd
/// layers merge.
///
/// Where we differ: sorting ties keep index order (the fixtures are made with the official sorts
/// made stable); r is clamped to (N − 1) / 2; rows are normalised in Double with max(‖m‖, 1e-12).
public enum MCTF {
    /// The plan removing `r` tokens (clamped to (N − 1) / 2) from `metric` (N rows, row 0 = CLS).
    public static func plan(metric: Matrix, remove r: Int) -> MergePlan {
        let n = metric.rows
        let r = min(r, (n - 1) / 2)
        if r <= 0 { return .identity(rows: n) }
        let r1 = r / 2, r2 = r - r / 2
        let aRows = Array(stride(from: 0, to: n, by: 2)), bRows = Array(stride(from: 1, to: n, by: 2))
        let scores = matmulTransposed(normalizedRows(metric, aRows), normalizedRows(metric, bRows))
        for i in 0..<scores.count { scores.data[i] = (scores.data[i] + 1) / 2 }
        for b in 0..<bRows.count { scores[0, b] = -.infinity }

        // A → B: the r₁ best A rows merge into their best B row.
        var best = [Float](repeating: 0, count: aRows.count), bestB = [Int](repeating: 0, count: aRows.count)
        for a in 0..<aRows.count { (bestB[a], best[a]) = firstArgmax(scores.row(a), bRows.count) }
        let order = descendingOrder(best)
        var bGroups = bRows.map { [$0] }
        for a in order[..<r1] { bGroups[bestB[a]].append(aRows[a]) }
        let keptA = order[r1...].sorted()

        // B → A: the r₂ best B rows, with what they absorbed, merge into their best remaining A row.
        var best2 = [Float](repeating: -.infinity, count: bRows.count), bestA = [Int](repeating: 0, count: bRows.count)
        for b in 0..<bRows.count {
            for (u, a) in keptA.enumerated() where u == 0 || scores[a, b] > best2[b] {
                (best2[b], bestA[b]) = (scores[a, b], u)
            }
        }
        let order2 = descendingOrder(best2)
        var aGroups = keptA.map { [aRows[$0]] }
        for b in order2[..<r2] { aGroups[bestA[b]] += bGroups[b] }
        return MergePlan(inputRows: n, groups: aGroups + order2[r2...].map { bGroups[$0] })
    }

    /// Merge weights: attention received × size, over the largest size (as the official code scales them).
    public static func weights(receivedAttention: [Float], sizes: [Float]) -> [Float] {
        precondition(receivedAttention.count == sizes.count, "MCTF needs one attention value per token")
        let largest = sizes.max() ?? 1
        return zip(receivedAttention, sizes).map { $0 * ($1 / largest) }
    }
}

extension MCTF: TokenReducer {
    public static let name = "mctf"
    public static let summary = "MCTF as in the official PiToMe code's CLIP wiring (bidirectional matching, attention-weighted merges); odd layers only"
    public static let site = ReducerSite.towerLayers
    public static let needs: ReducerNeeds = [.receivedAttention]
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i % 2 == 1 ? .mctf : .none
    }
}

extension LayerStep.Stage {
    public static let mctf = halving(
        name: "mctf", removal: { p, ratio in ToMe.removal(tokens: p + 1, ratio: ratio) }, needsReceivedAttention: true,
        plan: { step, input in MCTF.plan(metric: input.metric, remove: step.remove) },
        reduction: { sizes, input in
            guard let received = input.receivedAttention else { preconditionFailure("MCTF needs the attention each token received") }
            return .weightedMean(sizes: MCTF.weights(receivedAttention: received, sizes: sizes))
        })
}

extension MergeMethod {
    public static let mctf = MergeMethod(MCTF.self)
}
