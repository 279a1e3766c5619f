import Kernels

/// VisPruner (Zhang et al., ICCV 2025), training-free, once on the feature layer's patch tokens:
/// a share of the budget goes to the patches the CLS token attends to most ("important"), the
/// rest to patches left after repeatedly dropping the ones most similar to others ("diverse").
/// Nothing merges; the kept patches keep their original order.
///
/// What the official code does (`llava/model/llava_arch.py`, `encode_images`, with the tower's
/// `feature_select` returning the feature layer's patch rows and `attentions[:, :, 0, 1:]`):
/// 1. a = the CLS row of the feature layer's attention over the patches, averaged over heads;
///    T_imp = int(T·r) (r = 0.5 by default), T_div = T − T_imp;
/// 2. important: the first T_imp patches of `argsort(a, descending)`; the others, in that order,
///    are the residual list;
/// 3. while the residual list holds R > T_div patches: q = min(8, R − T_div); its patches at even
///    positions are scored by their largest cosine similarity (features divided by their norm)
///    to a patch at an odd position; the even ones sorted by decreasing score lose their first q;
///    the new list is the remaining even ones in that sorted order, then the odd ones in order;
/// 4. kept: the important and the residual patches, as a mask over the patches (original order).
///
/// Where we differ: ties in both sorts keep index order, in the list's current order for the
/// scores (PyTorch's default sort is not stable; the fixtures run the official code with stable
/// sorts). When the even positions hold fewer than q patches all of them go. The official
/// indexing assumes an even R: with R odd it raises an error unless q = ⌊R/2⌋ ± 1, and at
/// q = ⌊R/2⌋ it drops all q + 1 even patches (T − 1 kept); with R even it raises when
/// q ≥ R/2 + 2 (budgets 1 and 8 at the default ratio, for instance, in their last rounds). Our
/// rule keeps exactly T in every case. A zero feature row stays zero (the official division
/// gives NaN).
/// Rounding: the norms and products are rounded as PyTorch 2.13 computes them in Float32 on an
/// AVX2 CPU with MKL (`torchNormalizedRows`, `torchProducts`), since the scores often tie: bit for
/// bit for products of at least 12 × 12 patches; PyTorch's smaller products (R < 24, the last
/// rounds of budgets with T_div < 24) sum in another order, so near-ties there may rank otherwise.
public enum VisPruner {
    /// The official default share of the budget that goes to important tokens.
    public static let defaultImportantRatio = 0.5
    /// Most patches dropped per round of duplicate removal.
    public static let removalsPerRound = 8

    /// (important, diverse) patches for a budget of T and important ratio r: int(T·r), the rest.
    public static func split(keep t: Int, importantRatio r: Double) -> (important: Int, diverse: Int) {
        let important = Swift.min(t, Swift.max(0, Int(Double(t) * r)))
        return (important, t - important)
    }

    /// The kept patch indices, ascending: exactly `keep` of the N rows of `features` [N, C] (the
    /// feature layer's patch rows, CLS excluded), given `clsAttention` (N values: the CLS row of
    /// that layer's attention over the patches, averaged over heads).
    public static func select(features: Matrix, clsAttention: [Float], keep t: Int,
                              importantRatio r: Double = defaultImportantRatio) -> [Int] {
        let n = features.rows
        precondition(clsAttention.count == n, "VisPruner needs \(n) CLS attention values, got \(clsAttention.count)")
        precondition(t >= 1 && t <= n, "VisPruner cannot keep \(t) of \(n) patch tokens")
        precondition(r >= 0 && r <= 1, "VisPruner's important ratio \(r) is outside 0...1")
        let (important, diverse) = split(keep: t, importantRatio: r)
        let ranked = torchDescendingOrder(clsAttention)
        let residual = Array(ranked[important...])
        guard diverse > 0, residual.count > diverse else { return (Array(ranked[..<important]) + residual.prefix(diverse)).sorted() }

        // Similarities among the residual patches, by position in the first residual list.
        let unit = torchNormalizedRows(features.gatherRows(residual))
        let similarity = torchProducts(unit, unit)
        var list = Array(0..<residual.count)
        while list.count > diverse {
            let remove = Swift.min(removalsPerRound, list.count - diverse)
            let evens = stride(from: 0, to: list.count, by: 2).map { list[$0] }
            let odds = stride(from: 1, to: list.count, by: 2).map { list[$0] }
            let scores = evens.map { e -> Float in
                let row = similarity.row(e)
                var best = -Float.infinity
                for o in odds {
                    let s = row[o]
                    if s.isNaN { return .nan }
                    if s > best { best = s }
                }
                return best
            }
            let order = torchDescendingOrder(scores)
            list = order.dropFirst(Swift.min(remove, evens.count)).map { evens[$0] } + odds
        }
        return (Array(ranked[..<important]) + list.map { residual[$0] }).sorted()
    }

    /// The plan keeping the selected patch rows, in their original order.
    public static func plan(features: Matrix, clsAttention: [Float], keep t: Int,
                            importantRatio r: Double = defaultImportantRatio) -> MergePlan {
        .keeping(select(features: features, clsAttention: clsAttention, keep: t, importantRatio: r), of: features.rows)
    }
}

extension VisPruner: TokenReducer {
    public static let name = "vispruner"
    public static let summary = "VisPruner: important patches by the feature layer's CLS attention (--important-ratio of the budget), the rest by dropping near-duplicates, once, at the feature layer"
    public static let site = ReducerSite.towerLayers
    public static let needs: ReducerNeeds = [.clsAttention]
    public static let parameters: Set<ReducerParameter> = [.importantRatio]
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i == mergeLayers - 1 ? .visPruner : .none
    }
}

extension LayerStep.Stage {
    /// VisPruner on the feature layer's output (row 0, CLS, is kept and passed on; the patch rows
    /// are selected).
    public static let visPruner = cutOnce(
        name: "visPruner", needsCLSAttention: true,
        plan: { step, input in
            let n = input.metric.rows
            let kept = VisPruner.select(features: input.metric.gatherRows(Array(1..<n)),
                                        clsAttention: Array(input.clsAttention![1...]), keep: n - 1 - step.remove,
                                        importantRatio: input.options.importantRatio)
            return .keeping([0] + kept.map { $0 + 1 }, of: n)
        })
}

extension MergeMethod {
    public static let visPruner = MergeMethod(VisPruner.self)
}
