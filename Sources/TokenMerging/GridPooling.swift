/// 2×2 average pooling of the square patch grid (CLS kept apart): a fixed 4× reduction, applied
/// once, after the last merge layer, so the whole tower runs at full resolution and the projector
/// sees (s/2)² patch tokens, e.g. 24×24 → 12×12 = 144. Not in the official code; a baseline.
///
/// Requires the patch tokens in their original row-major grid order (no earlier merging) and an
/// even grid side. Output order: CLS, then the pooled cells row-major.
public enum GridPooling {
    /// The grid side s when `p` = s² with s even, else nil.
    public static func side(patchTokens p: Int) -> Int? {
        var s = 0
        while (s + 1) * (s + 1) <= p { s += 1 }
        return s * s == p && s > 0 && s % 2 == 0 ? s : nil
    }

    public static func plan(tokens n: Int) -> MergePlan {
        guard let s = side(patchTokens: n - 1) else {
            preconditionFailure("2x2 pooling needs a square, even patch grid; got \(n - 1) patch tokens")
        }
        var groups: [[Int]] = [[0]]
        for y in stride(from: 0, to: s, by: 2) {
            for x in stride(from: 0, to: s, by: 2) {
                let top = 1 + y * s + x
                groups.append([top, top + 1, top + s, top + s + 1])
            }
        }
        return MergePlan(inputRows: n, groups: groups)
    }
}

extension GridPooling: TokenReducer {
    public static let name = "pool"
    public static let summary = "2x2 average pooling of the patch grid, once, after the last merge layer (a fixed 4x reduction)"
    public static let site = ReducerSite.towerLayers
    public static let amount = ReducerAmount.fixed
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i == mergeLayers - 1 ? .pool2x2 : .none
    }
    public static func check(_ options: MergeOptions, patchTokens patches: Int, mergeLayers: Int) throws {
        guard let side = side(patchTokens: patches) else { throw MergeError.poolGrid(patchTokens: patches) }
        if let keep = options.keep, keep != side * side / 4 { throw MergeError.poolKeep(keep: keep, pooled: side * side / 4) }
        if mergeLayers == 0 { throw MergeError.poolWithoutLayers }
    }
}

extension LayerStep.Stage {
    public static let pool2x2 = LayerStep.Stage(
        name: "pool2x2", removal: { p, _ in p - p / 4 }, maxRemoval: { $0 - $0 / 4 }, largestInput: { 4 * $0 },
        plan: { _, input in GridPooling.plan(tokens: input.metric.rows) })
}

extension MergeMethod {
    public static let pool2x2 = MergeMethod(GridPooling.self)
}
