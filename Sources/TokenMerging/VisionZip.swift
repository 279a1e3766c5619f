import Kernels

/// VisionZip (Yang et al., 2024), training-free, once at the tower's selected feature layer:
/// dominant tokens are the patches the CLS token attends to most (summed over heads); the rest
/// are folded into a few contextual tokens by key similarity.
///
/// What the official code does (`visionzip/clip_encoder.py`, `CLIPVisionTower_VisionZip.forward`,
/// with `visionzip/utils.py` keeping the keys averaged over heads of the feature layer):
/// 1. dominant: the top `dominant` patches by CLS attention of the feature layer (row 0 of the
///    attention, summed over heads, CLS column excluded); with CLS they keep their original order;
/// 2. the other patches, in order, with their keys normalised: every `step`-th of them
///    (step = max(1, n ÷ contextual)), the first `contextual` of those, are targets; every other
///    one goes to the target of highest cosine similarity (first on ties);
/// 3. each contextual token = target + mean of the tokens assigned to it (the target itself is
///    not in the mean: not a convex combination; a target with nothing assigned stays as it is);
/// 4. output: CLS, the dominant patches, then the contextual tokens in target order.
/// Budgets in the official scripts: 64 → 54 + 10, 128 → 108 + 20, 192 → 162 + 30 tokens, the CLS
/// counted among the dominant ones and passed to the language model.
///
/// Where we differ: LLaVA's feature selection drops the CLS row afterwards, as for every other
/// method here, so a budget of K counts patch tokens only: contextual = ⌊10·K / 64⌋, dominant =
/// K − contextual (the official ratio), with at least one contextual token from K = 2 on (with none,
/// the remaining patches are dropped); the official run at "64" passes CLS + 53 + 10. Keys are
/// normalised by max(‖k‖, 1e-12); CLS attention ties keep index order.
public enum VisionZip {
    /// (dominant, contextual) patch tokens for a budget of K patch tokens.
    public static func split(keep k: Int) -> (dominant: Int, contextual: Int) {
        let contextual = k >= 2 ? Swift.max(1, 10 * k / 64) : 0
        return (k - contextual, contextual)
    }

    /// The plan for `metric` (keys averaged over heads, N rows, row 0 = CLS) and `clsAttention`
    /// (row 0 of the attention, N values, averaged or summed over heads).
    public static func plan(metric: Matrix, clsAttention: [Float], dominant: Int, contextual: Int) -> MergePlan {
        let n = metric.rows
        precondition(clsAttention.count == n, "VisionZip needs \(n) CLS attention values, got \(clsAttention.count)")
        precondition(dominant >= 0 && contextual >= 0 && dominant + contextual <= n - 1,
                     "VisionZip cannot keep \(dominant) + \(contextual) of \(n - 1) patch tokens")
        let ranked = descendingOrder(Array(clsAttention[1...])).map { $0 + 1 }
        let dominantRows = ranked[..<dominant].sorted()
        var groups = ([0] + dominantRows).map { [$0] }
        guard contextual > 0 else { return MergePlan(inputRows: n, groups: groups) }

        var isDominant = [Bool](repeating: false, count: n)
        for r in dominantRows { isDominant[r] = true }
        let rest = (1..<n).filter { !isDominant[$0] }
        let step = Swift.max(1, rest.count / contextual)
        let targetPositions = Array(stride(from: 0, to: rest.count, by: step).prefix(contextual))
        let targets = targetPositions.map { rest[$0] }
        var isTarget = [Bool](repeating: false, count: n)
        for t in targets { isTarget[t] = true }
        let sources = rest.filter { !isTarget[$0] }
        var contextualGroups = targets.map { [$0] }
        if !sources.isEmpty {
            let sim = matmulTransposed(normalizedRows(metric, sources), normalizedRows(metric, targets))
            for (i, src) in sources.enumerated() {
                contextualGroups[firstArgmax(sim.row(i), targets.count).index].append(src)
            }
        }
        groups += contextualGroups
        return MergePlan(inputRows: n, groups: groups)
    }
}

extension VisionZip: TokenReducer {
    public static let name = "visionzip"
    public static let summary = "VisionZip: dominant tokens by CLS attention plus contextual tokens merged by key similarity, once, at the feature layer"
    public static let site = ReducerSite.towerLayers
    public static let needs: ReducerNeeds = [.clsAttention, .keys]
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i == mergeLayers - 1 ? .visionZip : .none
    }
}

extension LayerStep.Stage {
    public static let visionZip = cutOnce(
        name: "visionZip", needsKeys: true, needsCLSAttention: true,
        plan: { step, input in
            let split = VisionZip.split(keep: input.metric.rows - 1 - step.remove)
            return VisionZip.plan(metric: input.metric, clsAttention: input.clsAttention!,
                                  dominant: split.dominant, contextual: split.contextual)
        },
        reduction: { _, _ in .destinationPlusMean })
}

extension MergeMethod {
    public static let visionZip = MergeMethod(VisionZip.self)
}
