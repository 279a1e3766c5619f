import Kernels

/// DiffRate baseline off the shelf, as wired for LLaVA in hchautran/PiToMe (`algo/DiffRate`).
///
/// What the official code does: sort the patch tokens by the CLS token's attention to them (mean
/// over heads), descending, CLS first; the first K tokens are "important"; every other token merges
/// (plain mean, destination included) into its most cosine-similar important token, CLS excluded as
/// a destination; output = the K important tokens in that order. K = N − floor(N − N·ρ) on even
/// layers (N counting CLS); no learned rates.
///
/// Where we differ:
/// - the official code also reorders by CLS attention on layers that do not merge; attention is
///   order-independent and the next merging layer reorders again, so we leave those layers alone;
/// - its odd-layer DiffRate modules keep their untrained default budget (ceil(mean(576…1)) + 1 =
///   290 tokens) and so prune to 290 tokens at layer 1; like the spec's token table, we do not;
/// - r is clamped to N − 2 so at least one patch token survives (CLS cannot absorb tokens);
/// - normalisation uses max(‖m‖, 1e-12); ties: stable order, first argmax.
public enum DiffRate {
    /// Tokens removed at one layer with ratio ρ: floor(N − N·ρ) in Double with N counting CLS,
    /// clamped to N − 2.
    public static func removal(tokens n: Int, ratio: Double) -> Int {
        let r = Int((Double(n) - Double(n) * ratio).rounded(.down))
        return max(0, min(r, n - 2))
    }

    /// The plan keeping `keep` tokens (CLS included, at least 2) ranked by `clsAttention`
    /// (length N, one value per token; entry 0, CLS attending to itself, is ignored).
    public static func plan(metric: Matrix, clsAttention: [Float], keep k: Int) -> MergePlan {
        let n = metric.rows
        precondition(clsAttention.count == n, "DiffRate needs \(n) CLS attention values, got \(clsAttention.count)")
        let k = max(2, min(k, n))
        let order = [0] + descendingOrder(Array(clsAttention[1...])).map { $0 + 1 }
        var groups = order[..<k].map { [$0] }
        if k < n {
            let rest = Array(order[k...])
            let sim = matmulTransposed(normalizedRows(metric, rest), normalizedRows(metric, Array(order[..<k])))
            var dsts = [Int](repeating: 0, count: rest.count)
            dsts.withUnsafeMutableBufferPointer { out in
                let o = out.baseAddress!
                parallelFor(rest.count, minPerThread: 32, workPerItem: k) { range in
                    for i in range { o[i] = 1 + firstArgmax(sim.row(i) + 1, k - 1).index }  // column 0 is CLS
                }
            }
            for (src, dst) in zip(rest, dsts) { groups[dst].append(src) }
        }
        return MergePlan(inputRows: n, groups: groups)
    }
}

extension DiffRate: TokenReducer {
    public static let name = "diffrate"
    public static let summary = "DiffRate off the shelf: CLS-attention ranking plus merging; even layers only"
    public static let site = ReducerSite.towerLayers
    public static let needs: ReducerNeeds = [.clsAttention]
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i % 2 == 0 ? .diffRate : .none
    }
}

extension LayerStep.Stage {
    public static let diffRate = LayerStep.Stage(
        name: "diffRate", removal: { p, ratio in DiffRate.removal(tokens: p + 1, ratio: ratio) },
        maxRemoval: { max(0, $0 - 1) }, largestInput: { _ in Int.max }, needsCLSAttention: true,
        plan: { step, input in
            DiffRate.plan(metric: input.metric, clsAttention: input.clsAttention!, keep: input.metric.rows - step.remove)
        })
}

extension MergeMethod {
    public static let diffRate = MergeMethod(DiffRate.self)
}
