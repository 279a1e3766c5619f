import Kernels

/// Random-drop baseline: at each layer, drop r patch tokens chosen uniformly at random, with
/// ToMe's per-layer counts. Not in the official code; a control for "does the choice of tokens matter".
///
/// The choice depends only on (seed, layer), so every image and every run drops the same positions
/// for the same configuration. Kept tokens stay in their order; CLS is never dropped.
public enum RandomDrop {
    public static func plan(tokens n: Int, remove r: Int, seed: UInt64, layer: Int) -> MergePlan {
        let r = max(0, min(r, n - 2))
        if r == 0 { return .identity(rows: n) }
        var generator = SplitMix64(state: seed ^ (UInt64(layer) &* 0x9E37_79B9_7F4A_7C15))
        var patches = Array(1..<n)
        for i in 0..<r {  // partial Fisher–Yates: patches[..<r] are the dropped ones
            let j = i + Int(generator.next() % UInt64(patches.count - i))
            patches.swapAt(i, j)
        }
        var dropped = [Bool](repeating: false, count: n)
        for t in patches[..<r] { dropped[t] = true }
        return .keeping((0..<n).filter { !dropped[$0] }, of: n)
    }
}

extension RandomDrop: TokenReducer {
    public static let name = "random"
    public static let summary = "seeded random dropping of patch tokens, with ToMe's per-layer counts"
    public static let site = ReducerSite.towerLayers
    public static func layerStage(layer: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage { .randomDrop }
}

extension LayerStep.Stage {
    public static let randomDrop = halving(
        name: "randomDrop", removal: { p, ratio in ToMe.removal(tokens: p + 1, ratio: ratio) },
        plan: { step, input in RandomDrop.plan(tokens: input.metric.rows, remove: step.remove, seed: input.options.seed, layer: step.layer) })
}

extension MergeMethod {
    public static let randomDrop = MergeMethod(RandomDrop.self)
}
