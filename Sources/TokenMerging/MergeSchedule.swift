import Kernels

/// What one merge layer does.
public struct LayerStep: Equatable, Sendable {
    public enum Stage: String, Sendable {
        case none, tome, pitome, tofuPrune, tofuMerge, dct, diffRate, randomDrop, pool2x2, visionZip, crossGet, mctf
    }

    public let layer: Int
    public let stage: Stage
    /// Patch tokens removed at this layer (0: the layer returns its input unchanged).
    public let remove: Int
    /// PiToMe margin m_i at this layer (used by the `pitome` stage only).
    public let margin: Double

    public init(layer: Int, stage: Stage, remove: Int, margin: Double) {
        self.layer = layer
        self.stage = stage
        self.remove = remove
        self.margin = margin
    }

    /// The merge plan of this step for `metric` (N rows, row 0 = CLS). Not for `dct`, which is a
    /// transform rather than a plan (see `DCT.compress`).
    public func plan(metric: Matrix, clsAttention: [Float]? = nil, alpha: Float = 1, seed: UInt64 = 0) -> MergePlan {
        let n = metric.rows
        if remove == 0 { return .identity(rows: n) }
        switch stage {
        case .none: return .identity(rows: n)
        case .tome, .tofuMerge: return ToMe.plan(metric: metric, remove: remove)
        case .crossGet: return CrossGET.plan(metric: metric, remove: remove)
        case .mctf: return MCTF.plan(metric: metric, remove: remove)
        case .tofuPrune: return ToFu.prunePlan(metric: metric, remove: remove)
        case .pitome: return PiToMe.plan(metric: metric, remove: remove, margin: margin, alpha: alpha)
        case .randomDrop: return RandomDrop.plan(tokens: n, remove: remove, seed: seed, layer: layer)
        case .pool2x2: return GridPooling.plan(tokens: n)
        case .diffRate:
            guard let clsAttention else { preconditionFailure("DiffRate needs the CLS attention of layer \(layer)") }
            return DiffRate.plan(metric: metric, clsAttention: clsAttention, keep: n - remove)
        case .visionZip:
            guard let clsAttention else { preconditionFailure("VisionZip needs the CLS attention of layer \(layer)") }
            let split = VisionZip.split(keep: n - 1 - remove)
            return VisionZip.plan(metric: metric, clsAttention: clsAttention, dominant: split.dominant, contextual: split.contextual)
        case .dct: preconditionFailure("DCT is a transform, not a merge plan: use DCT.compress")
        }
    }
}

/// The per-layer plan of a whole tower: which stage runs after each merge layer and how many
/// tokens it removes. The token counts reported here are exactly what `TokenMerger` produces,
/// because the merger runs these steps.
public struct MergeSchedule: Equatable, Sendable {
    public let steps: [LayerStep]
    /// Tokens (CLS included) entering merge layer 0, then after each merge layer:
    /// `mergeLayers + 1` entries.
    public let tokenCounts: [Int]
    /// Image tokens kept after the projector (DivPrune), or nil when the projector's output is
    /// passed on whole. The tower's counts above are then unchanged.
    public let projectorKeep: Int?
    /// PruMerge+: visual tokens made from the tower's patch features before the projector under a
    /// ratio or budget; nil for its adaptive count (decided per image) and for every other method.
    public let featureKeep: Int?

    /// - Parameters:
    ///   - towerDepth: L, the number of layers of the vision tower (margins and stage switches use it).
    ///   - mergeLayers: how many layers, from layer 0, feed the selected feature layer and merge
    ///     (23 for LLaVA-1.5's CLIP-L with feature layer −2).
    ///   - initialTokens: tokens entering layer 0, CLS included.
    public init(options: MergeOptions, towerDepth: Int, mergeLayers: Int, initialTokens: Int) throws {
        guard towerDepth >= 1 else { throw MergeError.invalidGeometry("tower depth \(towerDepth) must be at least 1") }
        guard mergeLayers >= 0 && mergeLayers <= towerDepth else {
            throw MergeError.invalidGeometry("merge layers \(mergeLayers) must be between 0 and the tower depth \(towerDepth)")
        }
        guard initialTokens >= 2 else {
            throw MergeError.invalidGeometry("\(initialTokens) tokens: need a CLS token and at least one patch token")
        }
        let method = options.method
        let patches = initialTokens - 1
        try options.validate()
        if let keep = options.keep, keep > patches { throw MergeError.invalidKeep(keep: keep, patchTokens: patches) }
        if method == .pool2x2 {
            guard let side = GridPooling.side(patchTokens: patches) else { throw MergeError.poolGrid(patchTokens: patches) }
            if let keep = options.keep, keep != side * side / 4 { throw MergeError.poolKeep(keep: keep, pooled: side * side / 4) }
            if mergeLayers == 0 { throw MergeError.poolWithoutLayers }
        }

        let stages = (0..<mergeLayers).map {
            Self.stage(method: method, layer: $0, towerDepth: towerDepth, mergeLayers: mergeLayers,
                       pitomeEveryLayer: options.pitomeEveryLayer)
        }
        let removals: [Int]
        if method == .divPrune || method == .fastV || method == .pruMergePlus {
            removals = stages.map { _ in 0 }
        } else if method == .visionZip {
            let keep = Self.outputBudget(options: options, patchTokens: patches)
            removals = stages.map { $0 == .visionZip ? patches - keep : 0 }
        } else if let keep = options.keep, method != .pool2x2 {
            removals = try Self.removals(stages: stages, patchTokens: patches, keep: keep, method: method)
        } else {
            removals = Self.removals(stages: stages, patchTokens: patches, ratio: options.ratio ?? 1)
        }
        var counts = [initialTokens]
        var steps: [LayerStep] = []
        for (i, stage) in stages.enumerated() {
            let margin = PiToMe.margin(layer: i, depth: towerDepth, base: options.marginBase)
            steps.append(LayerStep(layer: i, stage: stage, remove: removals[i], margin: margin))
            counts.append(counts[i] - removals[i])
        }
        self.steps = steps
        self.tokenCounts = counts
        if method == .divPrune {
            projectorKeep = Self.outputBudget(options: options, patchTokens: patches)
        } else {
            projectorKeep = nil
        }
        featureKeep = method == .pruMergePlus && (options.keep != nil || options.ratio != nil)
            ? Self.outputBudget(options: options, patchTokens: patches) : nil
    }

    /// The stage after layer `i` (official LLaVA wiring):
    /// - pitome: ToMe while 2·i ≤ L (the official "i ≤ 12" for L = 24, "m_i ≥ 0.45" in older code),
    ///   the energy stage after; with `pitomeEveryLayer`, the energy stage everywhere;
    /// - tome, randomDrop: every layer;
    /// - tofu: odd layers only, pruning while 2·i ≤ L, norm-preserving merging after;
    /// - crossget, mctf: odd layers only;
    /// - dct, diffRate: even layers only;
    /// - pool2x2: the last merge layer only.
    public static func stage(method: MergeMethod, layer i: Int, towerDepth l: Int, mergeLayers: Int,
                             pitomeEveryLayer: Bool = false) -> LayerStep.Stage {
        switch method {
        case .none: return .none
        case .tome: return .tome
        case .randomDrop: return .randomDrop
        case .pitome: return pitomeEveryLayer || 2 * i > l ? .pitome : .tome
        case .tofu: return i % 2 == 0 ? .none : (2 * i <= l ? .tofuPrune : .tofuMerge)
        case .dct: return i % 2 == 0 ? .dct : .none
        case .diffRate: return i % 2 == 0 ? .diffRate : .none
        case .pool2x2: return i == mergeLayers - 1 ? .pool2x2 : .none
        case .divPrune, .fastV, .pruMergePlus: return .none
        case .visionZip: return i == mergeLayers - 1 ? .visionZip : .none
        case .crossGet: return i % 2 == 1 ? .crossGet : .none
        case .mctf: return i % 2 == 1 ? .mctf : .none
        }
    }

    /// Patch tokens a stage removes from `p` patch tokens at keep-ratio ρ (each stage's own
    /// formula, computed in Double like the official Python, then clamped to `maxRemoval`).
    public static func removal(stage: LayerStep.Stage, patchTokens p: Int, ratio: Double) -> Int {
        switch stage {
        case .none: return 0
        case .tome, .tofuPrune, .tofuMerge, .randomDrop, .mctf: return ToMe.removal(tokens: p + 1, ratio: ratio)
        case .pitome: return PiToMe.removal(patchTokens: p, ratio: ratio)
        case .dct: return p - DCT.keptCount(patchTokens: p, ratio: ratio)
        case .diffRate: return DiffRate.removal(tokens: p + 1, ratio: ratio)
        case .pool2x2: return p - p / 4
        case .crossGet: return CrossGET.removal(patchTokens: p, ratio: ratio)
        case .visionZip: return p - outputBudget(options: MergeOptions(method: .visionZip, ratio: ratio), patchTokens: p)
        }
    }

    /// Patch tokens kept by a method that cuts once (DivPrune, VisionZip): the budget K, or
    /// int(round(ρ·P)) for a ratio (half to even, as DivPrune's official count), at least 1.
    public static func outputBudget(options: MergeOptions, patchTokens p: Int) -> Int {
        options.keep ?? DivPrune.keptCount(tokens: p, ratio: options.ratio ?? 1)
    }

    /// The most patch tokens a stage may remove from `p` patch tokens (the per-layer clamp).
    public static func maxRemoval(stage: LayerStep.Stage, patchTokens p: Int) -> Int {
        switch stage {
        case .none: return 0
        case .tome, .tofuPrune, .tofuMerge, .randomDrop, .pitome, .mctf: return p / 2
        case .dct, .diffRate, .visionZip, .crossGet: return max(0, p - 1)
        case .pool2x2: return p - p / 4
        }
    }

    /// The most patch tokens from which one layer of `stage` can come down to `t` within its clamp.
    static func largestInput(stage: LayerStep.Stage, reaching t: Int) -> Int {
        switch stage {
        case .none: return t
        case .tome, .tofuPrune, .tofuMerge, .randomDrop, .pitome, .mctf: return 2 * t  // ceil(p/2) ≤ t
        case .dct, .diffRate, .visionZip, .crossGet: return Int.max  // down to a single patch token
        case .pool2x2: return 4 * t
        }
    }

    /// Per-layer removals at a constant keep-ratio ρ (ρ = 0 gives the largest removal everywhere).
    static func removals(stages: [LayerStep.Stage], patchTokens: Int, ratio: Double) -> [Int] {
        var p = patchTokens
        return stages.map { stage in
            let r = removal(stage: stage, patchTokens: p, ratio: ratio)
            p -= r
            return r
        }
    }

    /// Per-layer removals that leave exactly `keep` patch tokens after the last merge layer.
    ///
    /// Token-budget rule (a deviation: the official code only has per-layer ratios):
    /// 1. Bisect (60 halvings of [0, 1]) for the smallest constant keep-ratio ρ* whose ordinary
    ///    ratio schedule (same stages, same per-layer formulas and clamps) still leaves ≥ K patch
    ///    tokens. The reduction therefore compounds over the layers as in the official ratio mode.
    /// 2. That schedule ends with K + e tokens, e ≥ 0. The surplus is trimmed on the last layers:
    ///    walking back from the last merge layer with target t = K, each layer's input target
    ///    becomes min(its ρ* count, the most tokens from which the layer can still reach t within
    ///    its clamp: 2t for ToMe/PiToMe/ToFu/random, unbounded for DCT/DiffRate, t for a layer that
    ///    does not merge). Earlier layers whose ρ* count already fits stay unchanged.
    /// Throws `keepUnreachable` if even the largest removal at every layer leaves more than K.
    static func removals(stages: [LayerStep.Stage], patchTokens: Int, keep: Int, method: MergeMethod) throws -> [Int] {
        func counts(_ removals: [Int]) -> [Int] {
            var c = [patchTokens]
            for r in removals { c.append(c.last! - r) }
            return c
        }
        func leaves(_ ratio: Double) -> Int { counts(removals(stages: stages, patchTokens: patchTokens, ratio: ratio)).last! }
        let minimum = leaves(0)
        guard keep >= minimum else {
            throw MergeError.keepUnreachable(keep: keep, minimum: minimum, method: method, layers: stages.count)
        }
        var lo = 0.0, hi = 1.0
        if leaves(lo) >= keep {
            hi = lo
        } else {
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                if leaves(mid) >= keep { hi = mid } else { lo = mid }
            }
        }
        let c = counts(removals(stages: stages, patchTokens: patchTokens, ratio: hi))
        var target = [Int](repeating: 0, count: stages.count + 1)
        target[stages.count] = keep
        for i in stride(from: stages.count - 1, through: 0, by: -1) {
            target[i] = min(c[i], largestInput(stage: stages[i], reaching: target[i + 1]))
        }
        precondition(target[0] == patchTokens, "token budget schedule does not start from the input count")
        return (0..<stages.count).map { target[$0] - target[$0 + 1] }
    }
}
