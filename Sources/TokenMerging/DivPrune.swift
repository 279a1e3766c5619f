import Kernels

/// DivPrune (Alvar et al., CVPR 2025): keep the K visual tokens that are most diverse, chosen by
/// greedy max–min (farthest-point) selection on the cosine distance 1 − cos, once, on the
/// projector's output (the tokens the language model would see). Nothing merges; the rest are dropped.
///
/// What the official code does (`LLaVA/llava/model/llava_arch.py`, `DivPrune`, LLaVA-1.5 path):
/// D = 1 − cos over all visual tokens; the first pick is the token whose nearest neighbour is
/// farthest (per column, the second smallest entry of D, the smallest being the token itself);
/// every later pick is the token whose distance to the closest already-picked token is largest;
/// argmax takes the first index; the kept tokens go to the language model in their original order.
/// The count is int(round(ρ·N)) for a ratio ρ (Python rounds half to even).
///
/// Where we differ: tokens already picked are excluded from later picks (the official argmax can
/// pick a token twice when every remaining token duplicates a picked one, sending duplicates
/// onwards); rows are normalised by max(‖x‖, 1e-12) in Double (official: ‖x‖ in Float32, no epsilon).
public enum DivPrune {
    /// Tokens kept out of `n` at ratio ρ: int(round(ρ·n)), half to even, at least 1.
    public static func keptCount(tokens n: Int, ratio: Double) -> Int {
        max(1, min(n, Int((Double(n) * ratio).rounded(.toNearestOrEven))))
    }

    /// The picked rows of `features` in the order they were picked.
    public static func selectionOrder(features: Matrix, keep k: Int) -> [Int] {
        let n = features.rows
        let k = max(0, min(k, n))
        if k == 0 { return [] }
        let unit = normalizedRows(features, Array(0..<n))
        let cosine = matmulTransposed(unit, unit)
        func distance(_ i: Int, _ j: Int) -> Float { 1 - cosine[i, j] }

        // First pick: the largest second-smallest distance in each column (the smallest is the token itself).
        var closest = [Float](repeating: 0, count: n)
        for j in 0..<n {
            var smallest = Float.infinity, second = Float.infinity
            for i in 0..<n {
                let d = distance(i, j)
                if d < smallest { second = smallest; smallest = d } else if d < second { second = d }
            }
            closest[j] = n == 1 ? smallest : second
        }
        var picked = [Bool](repeating: false, count: n)
        var order = [firstLargest(closest, excluding: picked)]
        picked[order[0]] = true
        // Later picks: the largest distance to the nearest picked token.
        for j in 0..<n { closest[j] = distance(order[0], j) }
        while order.count < k {
            let next = firstLargest(closest, excluding: picked)
            order.append(next)
            picked[next] = true
            for j in 0..<n { closest[j] = Swift.min(closest[j], distance(next, j)) }
        }
        return order
    }

    /// The plan keeping the `keep` picked rows in their original order.
    public static func plan(features: Matrix, keep k: Int) -> MergePlan {
        .keeping(selectionOrder(features: features, keep: k).sorted(), of: features.rows)
    }

    private static func firstLargest(_ values: [Float], excluding excluded: [Bool]) -> Int {
        var best = -1
        for j in values.indices where !excluded[j] && (best < 0 || values[j] > values[best]) { best = j }
        return best
    }
}

extension DivPrune: TokenReducer {
    public static let name = "divprune"
    public static let summary = "DivPrune: the most diverse visual tokens (greedy max-min cosine distance), once, on the projector's output"
    public static let site = ReducerSite.projector
    public static func projectorPlan(_ embeddings: Matrix, keep: Int, inputs: ProjectorInputs) -> MergePlan {
        plan(features: embeddings, keep: keep)
    }
}

extension MergeMethod {
    public static let divPrune = MergeMethod(DivPrune.self)
}
