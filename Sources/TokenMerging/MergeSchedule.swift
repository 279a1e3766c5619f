import Kernels

/// What one merge layer does.
public struct LayerStep: Equatable, Sendable {
    /// One kind of merge layer: how many tokens it removes at a ratio, its per-layer clamp, and
    /// what it does to the tokens. Each reducer's file defines its stages; two stages are equal
    /// when their names are.
    public struct Stage: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        /// Patch tokens removed from `p` patch tokens at keep-ratio ρ (the stage's own formula).
        let removal: @Sendable (_ patchTokens: Int, _ ratio: Double) -> Int
        /// The most patch tokens the stage may remove from `p` (the per-layer clamp).
        let maxRemoval: @Sendable (_ patchTokens: Int) -> Int
        /// The most patch tokens from which one layer can come down to `t` within its clamp.
        let largestInput: @Sendable (_ target: Int) -> Int
        /// The stage cuts to the reducer's budget at once (removal P − K), instead of a ratio's
        /// per-layer count.
        let cutsToBudget: Bool
        /// Reads the layer's keys averaged over heads as its metric.
        public let needsKeys: Bool
        /// Reads the CLS row of the layer's attention.
        public let needsCLSAttention: Bool
        /// Reads the attention each token received at the layer.
        public let needsReceivedAttention: Bool
        /// The merge plan for a step (nil for a transform).
        let plan: (@Sendable (LayerStep, StageInput) -> MergePlan)?
        /// How merged rows combine (nil: the options' weighting).
        let reduction: (@Sendable (_ sizes: [Float], StageInput) -> Reduction)?
        /// Work on the merged tokens after the plan is applied (merged, input, plan).
        let finish: (@Sendable (Matrix, Matrix, MergePlan) -> Void)?
        /// A transform instead of a plan: the tokens after removing `remove` patch tokens
        /// (every output token mixes all patches; sizes are spread evenly).
        let transform: (@Sendable (_ tokens: Matrix, _ remove: Int) -> Matrix)?

        public init(name: String,
                    removal: @escaping @Sendable (Int, Double) -> Int,
                    maxRemoval: @escaping @Sendable (Int) -> Int,
                    largestInput: @escaping @Sendable (Int) -> Int,
                    cutsToBudget: Bool = false,
                    needsKeys: Bool = false, needsCLSAttention: Bool = false, needsReceivedAttention: Bool = false,
                    plan: (@Sendable (LayerStep, StageInput) -> MergePlan)?,
                    reduction: (@Sendable ([Float], StageInput) -> Reduction)? = nil,
                    finish: (@Sendable (Matrix, Matrix, MergePlan) -> Void)? = nil,
                    transform: (@Sendable (Matrix, Int) -> Matrix)? = nil) {
            self.name = name
            self.removal = removal
            self.maxRemoval = maxRemoval
            self.largestInput = largestInput
            self.cutsToBudget = cutsToBudget
            self.needsKeys = needsKeys
            self.needsCLSAttention = needsCLSAttention
            self.needsReceivedAttention = needsReceivedAttention
            self.plan = plan
            self.reduction = reduction
            self.finish = finish
            self.transform = transform
        }

        public var description: String { name }
        public var rawValue: String { name }
        public static func == (a: Stage, b: Stage) -> Bool { a.name == b.name }
        public func hash(into h: inout Hasher) { h.combine(name) }

        /// A layer that passes its tokens on unchanged.
        public static let none = LayerStep.Stage(name: "none", removal: { _, _ in 0 }, maxRemoval: { _ in 0 }, largestInput: { $0 },
                                       plan: { step, input in .identity(rows: input.metric.rows) })

        /// The clamp shared by the bipartite stages: at most half of the patch tokens per layer.
        static func halving(name: String, removal: @escaping @Sendable (Int, Double) -> Int,
                            needsReceivedAttention: Bool = false,
                            plan: @escaping @Sendable (LayerStep, StageInput) -> MergePlan,
                            reduction: (@Sendable ([Float], StageInput) -> Reduction)? = nil,
                            finish: (@Sendable (Matrix, Matrix, MergePlan) -> Void)? = nil) -> Stage {
            Stage(name: name, removal: removal, maxRemoval: { $0 / 2 }, largestInput: { 2 * $0 },  // ceil(p/2) ≤ t
                  needsReceivedAttention: needsReceivedAttention, plan: plan, reduction: reduction, finish: finish)
        }

        /// A stage that cuts once to the budget (at least one patch token left): K tokens, or
        /// int(round(ρ·P)) for a ratio, as `MergeSchedule.outputBudget` counts them.
        static func cutOnce(name: String, needsKeys: Bool = false, needsCLSAttention: Bool = false,
                            plan: @escaping @Sendable (LayerStep, StageInput) -> MergePlan,
                            reduction: (@Sendable ([Float], StageInput) -> Reduction)? = nil) -> Stage {
            Stage(name: name, removal: { p, ratio in p - DivPrune.keptCount(tokens: p, ratio: ratio) },
                  maxRemoval: { max(0, $0 - 1) }, largestInput: { _ in Int.max }, cutsToBudget: true,
                  needsKeys: needsKeys, needsCLSAttention: needsCLSAttention, plan: plan, reduction: reduction)
        }
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

    /// The merge plan of this step for `metric` (N rows, row 0 = CLS). Not for a transform
    /// stage (DCT), which has no plan (see `DCT.compress`).
    public func plan(metric: Matrix, clsAttention: [Float]? = nil, alpha: Float = 1, seed: UInt64 = 0) -> MergePlan {
        plan(StageInput(metric: metric, clsAttention: clsAttention, receivedAttention: nil,
                        options: MergeOptions(alpha: alpha, seed: seed)))
    }

    func plan(_ input: StageInput) -> MergePlan {
        if remove == 0 { return .identity(rows: input.metric.rows) }
        guard let plan = stage.plan else { preconditionFailure("\(stage.name) is a transform, not a merge plan") }
        if stage.needsCLSAttention && input.clsAttention == nil {
            preconditionFailure("\(stage.name) needs the CLS attention of layer \(layer)")
        }
        return plan(self, input)
    }
}

/// What a stage may read besides its step: the metric (N rows, row 0 = CLS), the CLS attention
/// and received attention of the layer where its stage needs them, and the options.
public struct StageInput {
    public let metric: Matrix
    public let clsAttention: [Float]?
    public let receivedAttention: [Float]?
    public let options: MergeOptions
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
        let method = options.method, reducer = method.reducer
        let patches = initialTokens - 1
        try options.validate()
        if let keep = options.keep, keep > patches { throw MergeError.invalidKeep(keep: keep, patchTokens: patches) }
        try reducer.check(options, patchTokens: patches, mergeLayers: mergeLayers)

        let stages = (0..<mergeLayers).map {
            reducer.layerStage(layer: $0, towerDepth: towerDepth, mergeLayers: mergeLayers, options: options)
        }
        let removals: [Int]
        if reducer.site != .towerLayers {
            removals = stages.map { _ in 0 }
        } else if stages.contains(where: \.cutsToBudget) {
            let keep = Self.outputBudget(options: options, patchTokens: patches)
            removals = stages.map { $0.cutsToBudget ? patches - keep : 0 }
        } else if let keep = options.keep, reducer.amount != .fixed {
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
        projectorKeep = reducer.site == .projector ? Self.outputBudget(options: options, patchTokens: patches) : nil
        featureKeep = reducer.site == .probeLayer && (options.keep != nil || options.ratio != nil)
            ? Self.outputBudget(options: options, patchTokens: patches) : nil
    }

    /// The stage after layer `i`: the method's own rule (each reducer's `layerStage(layer:…)`).
    public static func stage(method: MergeMethod, layer i: Int, towerDepth l: Int, mergeLayers: Int,
                             pitomeEveryLayer: Bool = false) -> LayerStep.Stage {
        method.reducer.layerStage(layer: i, towerDepth: l, mergeLayers: mergeLayers,
                             options: MergeOptions(method: method, pitomeEveryLayer: pitomeEveryLayer))
    }

    /// Patch tokens a stage removes from `p` patch tokens at keep-ratio ρ (each stage's own
    /// formula, computed in Double like the official Python).
    public static func removal(stage: LayerStep.Stage, patchTokens p: Int, ratio: Double) -> Int {
        stage.removal(p, ratio)
    }

    /// Patch tokens kept by a method that cuts once (DivPrune, VisionZip, …): the budget K, or
    /// int(round(ρ·P)) for a ratio (half to even, as DivPrune's official count), at least 1.
    public static func outputBudget(options: MergeOptions, patchTokens p: Int) -> Int {
        options.keep ?? DivPrune.keptCount(tokens: p, ratio: options.ratio ?? 1)
    }

    /// The most patch tokens a stage may remove from `p` patch tokens (the per-layer clamp).
    public static func maxRemoval(stage: LayerStep.Stage, patchTokens p: Int) -> Int {
        stage.maxRemoval(p)
    }

    /// The most patch tokens from which one layer of `stage` can come down to `t` within its clamp.
    static func largestInput(stage: LayerStep.Stage, reaching t: Int) -> Int {
        stage.largestInput(t)
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
