import Kernels

/// ToMe bipartite soft matching (Bolya et al.), for token sequences whose row 0 is a CLS token.
///
/// What the official code does (`tome/merge.py`, and `bsm` in PiToMe's `algo/pitome/merge.py`):
/// cosine similarity of the metric rows; A = rows 0, 2, 4, …, B = rows 1, 3, 5, …; A's CLS row is
/// −∞ so CLS is never a source; each A row's best B is its argmax; the r A rows with the highest
/// best score merge into their B rows; output = [unmerged A in original order (CLS first), then
/// all of B in original order].
///
/// Where we differ: rows are normalised by max(‖m‖, 1e-12) (official: no epsilon); ties sort by
/// value descending then index ascending, argmax takes the first index; r is clamped to
/// (N − 1) / 2 (the PiToMe repository's `bsm` has no clamp); r = 0 returns the identity.
public enum ToMe {
    /// Tokens removed at one layer with keep-ratio ρ: floor(N − N·ρ) in Double with N counting the
    /// CLS token (as the PiToMe repository's `bsm`), clamped to (N − 1) / 2.
    public static func removal(tokens n: Int, ratio: Double) -> Int {
        let r = Int((Double(n) - Double(n) * ratio).rounded(.down))
        return max(0, min(r, (n - 1) / 2))
    }

    /// The merge plan removing `r` tokens (clamped to (N − 1) / 2) by bipartite soft matching on `metric`.
    public static func plan(metric: Matrix, remove r: Int) -> MergePlan {
        let n = metric.rows
        let r = min(r, (n - 1) / 2)
        if r <= 0 { return .identity(rows: n) }
        let aRows = Array(stride(from: 0, to: n, by: 2))
        let bRows = Array(stride(from: 1, to: n, by: 2))
        let scores = stage("merge.similarity") { matmulTransposed(normalizedRows(metric, aRows), normalizedRows(metric, bRows)) }
        return stage("merge.matching") { match(scores: scores, aRows: aRows, bRows: bRows, remove: r) }
    }

    /// Each A row's best B row; the r A rows with the highest best scores merge into theirs.
    static func match(scores: Matrix, aRows: [Int], bRows: [Int], remove r: Int) -> MergePlan {
        var best = [Float](repeating: 0, count: aRows.count)
        var bestB = [Int](repeating: 0, count: aRows.count)
        best.withUnsafeMutableBufferPointer { bestOut in
            bestB.withUnsafeMutableBufferPointer { bestBOut in
                let value = bestOut.baseAddress!, index = bestBOut.baseAddress!
                parallelFor(aRows.count, minPerThread: 32, workPerItem: bRows.count) { range in
                    for a in range where a > 0 { (index[a], value[a]) = firstArgmax(scores.row(a), bRows.count) }
                }
            }
        }
        best[0] = -.infinity  // CLS: never a source
        let order = descendingOrder(best)
        var merged = [Bool](repeating: false, count: aRows.count)
        for a in order[..<r] { merged[a] = true }
        let kept = aRows.indices.filter { !merged[$0] }.map { aRows[$0] }
        return MergePlan(inputRows: aRows.count + bRows.count, heads: kept + bRows,
                         merges: order[..<r].map { (row: aRows[$0], into: kept.count + bestB[$0]) })
    }
}

extension ToMe: TokenReducer {
    public static let name = "tome"
    public static let summary = "ToMe bipartite soft matching at every layer"
    public static let site = ReducerSite.towerLayers
    public static func layerStage(layer: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage { .tome }
}

extension LayerStep.Stage {
    /// ToMe's bipartite soft matching: at most half of the patch tokens per layer.
    public static let tome = halving(name: "tome", removal: { p, ratio in ToMe.removal(tokens: p + 1, ratio: ratio) },
                                     plan: { step, input in ToMe.plan(metric: input.metric, remove: step.remove) })
}

extension MergeMethod {
    public static let tome = MergeMethod(ToMe.self)
}
