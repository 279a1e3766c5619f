import Foundation
import Kernels

/// Per-image token merging inside a vision tower.
///
/// The tower calls `merge(layer:tokens:metric:clsAttention:)` once after every layer that feeds the
/// selected feature layer (layers 0..<mergeLayers, in order), and feeds the returned tokens to the
/// next layer. A merger serves one image: make a new one for the next.
///
/// What the tower chooses (the merger only needs the matrices):
/// - the metric: the layer output itself (official LLaVA wiring: pass `tokens` as `metric`, merge
///   after the whole layer), or the keys of that layer's attention averaged over heads, [N, headDim]
///   (paper / timm ToMe: merge between attention and MLP, then run the MLP on the merged tokens);
/// - proportional attention: add `logSizes` (log of `sizes`) as a per-key bias to the attention
///   logits of the next layer (official LLaVA wiring: off);
/// - DiffRate (`needsCLSAttention`): pass the CLS row of that layer's attention probabilities
///   averaged over heads (N values; `Kernels.attention(clsAttention:)` produces it).
public final class TokenMerger {
    public let options: MergeOptions
    public let towerDepth: Int
    public let mergeLayers: Int
    public let initialTokens: Int
    public let schedule: MergeSchedule

    private var nextLayer = 0
    private var sizeMatrix: Matrix
    private var sourceMatrix: Matrix?

    public init(options: MergeOptions, towerDepth: Int, mergeLayers: Int, initialTokens: Int) throws {
        self.options = options
        self.towerDepth = towerDepth
        self.mergeLayers = mergeLayers
        self.initialTokens = initialTokens
        schedule = try MergeSchedule(options: options, towerDepth: towerDepth, mergeLayers: mergeLayers,
                                     initialTokens: initialTokens)
        sizeMatrix = Matrix(rows: initialTokens, cols: 1)
        sizeMatrix.fill(1)
        if options.trackSources {
            let patches = initialTokens - 1
            let m = Matrix(rows: initialTokens, cols: patches)
            for p in 0..<patches { m[p + 1, p] = 1 }
            sourceMatrix = m
        }
    }

    /// Tokens (CLS included) entering layer 0 and after each merge layer; `mergeLayers + 1` entries.
    /// The same schedule drives `merge`, so these are the counts the tower will see.
    public static func plannedTokenCounts(options: MergeOptions, towerDepth: Int, mergeLayers: Int,
                                          initialTokens: Int) throws -> [Int] {
        try MergeSchedule(options: options, towerDepth: towerDepth, mergeLayers: mergeLayers,
                          initialTokens: initialTokens).tokenCounts
    }

    public var plannedTokenCounts: [Int] { schedule.tokenCounts }

    /// Whether `merge` needs the CLS attention row of each layer.
    public var needsCLSAttention: Bool {
        options.method.site == .towerLayers && options.method.needs.contains(.clsAttention)
    }

    /// Whether a stage cuts to the budget at once (VisionZip, VisPruner): it acts on a layer's
    /// whole output, whatever the metric.
    public var cutsOnce: Bool { schedule.steps.contains { $0.stage.cutsToBudget } }

    /// Whether `merge` after layer `i` takes that layer's keys averaged over heads as its metric
    /// while merging the layer's output (VisionZip).
    public func needsKeys(layer i: Int) -> Bool { schedule.steps[i].stage.needsKeys }

    /// Whether `merge` after layer `i` needs the attention each token received at that layer:
    /// the attention probabilities averaged over heads and queries (MCTF's merge weights).
    public func needsReceivedAttention(layer i: Int) -> Bool {
        schedule.steps[i].stage.needsReceivedAttention && schedule.steps[i].remove > 0
    }

    /// How many original tokens each current token stands for (all 1 before any merge).
    public var sizes: [Float] { sizeMatrix.toArray() }

    /// log(size) per current token: the key bias for proportional attention.
    public var logSizes: [Float] { sizes.map { logf($0) } }

    /// With `trackSources`: for each current token, the original patch indices (0-based, CLS
    /// excluded, row-major grid order) it holds; CLS holds none. Nil when not tracked.
    public var sources: [[Int]]? {
        guard let m = sourceMatrix else { return nil }
        return (0..<m.rows).map { r in (0..<m.cols).filter { m[r, $0] > 0.5 } }
    }

    /// Merges the tokens after layer `i` and returns them; returns `tokens` itself when this layer
    /// merges nothing. `metric` (same rows as `tokens`, any width; may be `tokens`) decides what
    /// merges. `clsAttention` is required when `needsCLSAttention`, ignored otherwise.
    /// `receivedAttention` is required when `needsReceivedAttention(layer:)`, ignored otherwise.
    public func merge(layer i: Int, tokens: Matrix, metric: Matrix, clsAttention: [Float]?,
                      receivedAttention: [Float]? = nil) -> Matrix {
        precondition(i == nextLayer, "token merger expected layer \(nextLayer), got \(i) (a merger serves one image)")
        precondition(i < mergeLayers, "layer \(i) is past the \(mergeLayers) merge layers")
        let expected = schedule.tokenCounts[i]
        precondition(tokens.rows == expected, "layer \(i) should receive \(expected) tokens, got \(tokens.rows)")
        precondition(metric.rows == expected, "layer \(i) metric has \(metric.rows) rows, expected \(expected)")
        nextLayer += 1
        let step = schedule.steps[i]
        if step.remove == 0 { return tokens }

        if let transform = step.stage.transform {
            let out = transform(tokens, step.remove)
            // Every output patch token mixes all patches: spread their total size evenly.
            let patchSize = (1..<expected).reduce(Float(0)) { $0 + sizeMatrix[$1, 0] } / Float(out.rows - 1)
            let sizes = Matrix(rows: out.rows, cols: 1)
            sizes.fill(patchSize)
            sizes[0, 0] = sizeMatrix[0, 0]
            sizeMatrix = sizes
            return out
        }

        let input = StageInput(metric: metric, clsAttention: clsAttention, receivedAttention: receivedAttention, options: options)
        let plan = step.plan(input)
        let reduction: Reduction = step.stage.reduction?(sizes, input)
            ?? (options.weighting == .size ? .weightedMean(sizes: sizes) : .mean)
        return stage("merge.apply") {
            let out = apply(plan, to: tokens, reduction)
            step.stage.finish?(out, tokens, plan)
            sizeMatrix = apply(plan, to: sizeMatrix, .sum)
            if let m = sourceMatrix { sourceMatrix = apply(plan, to: m, .max) }
            return out
        }
    }

    /// Reduces the projector's output (one row per image token, the tower's last rows less the
    /// first `droppedTokens`) when the method cuts there (DivPrune, CDPruner), with what it reads
    /// besides; returns it unchanged otherwise. Sizes and sources follow the kept rows; the
    /// dropped rows (CLS) keep theirs.
    public func reduceProjected(_ embeddings: Matrix, droppedTokens: Int, inputs: ProjectorInputs = ProjectorInputs()) -> Matrix {
        guard let keep = schedule.projectorKeep else { return embeddings }
        precondition(embeddings.rows == sizeMatrix.rows - droppedTokens,
                     "the projector gave \(embeddings.rows) rows, expected \(sizeMatrix.rows - droppedTokens)")
        let plan = options.method.reducer.projectorPlan(embeddings, keep: keep, inputs: inputs)
        let lifted = MergePlan(inputRows: sizeMatrix.rows,
                               groups: (0..<droppedTokens).map { [$0] } + plan.groups.map { $0.map { $0 + droppedTokens } })
        sizeMatrix = apply(lifted, to: sizeMatrix, .sum)
        if let m = sourceMatrix { sourceMatrix = apply(lifted, to: m, .max) }
        return apply(plan, to: embeddings)
    }

    /// PruMerge+ on the tower's patch features [N, C] (the tower's last rows less the first
    /// `droppedTokens`), with those patches' keys and CLS attention from the layer after the
    /// feature layer: the schedule's `featureKeep` tokens, or the adaptive count when it has none.
    /// A kept token's size and sources are its own plus its neighbours' (neighbours are shared, so
    /// sizes add up to more than the patches); the extra token's are the pruned patches'.
    public func reducePatchFeatures(_ features: Matrix, keys: Matrix, clsAttention: [Float], droppedTokens: Int) -> Matrix {
        precondition(options.method.site == .probeLayer, "patch features are reduced by a probe-layer reducer (PruMerge+) only")
        precondition(features.rows == sizeMatrix.rows - droppedTokens,
                     "the tower gave \(features.rows) patch rows, expected \(sizeMatrix.rows - droppedTokens)")
        let kept = schedule.featureKeep.map { PruMergePlus.budgetSelection(clsAttention: clsAttention, keep: $0) }
            ?? PruMergePlus.adaptiveSelection(clsAttention: clsAttention)
        let result = PruMergePlus.merge(features: features, keys: keys, clsAttention: clsAttention, kept: kept)
        let groups = (0..<droppedTokens).map { [$0] }
            + zip(result.kept, result.neighbours).map { ([$0] + $1).map { $0 + droppedTokens } }
            + [result.pruned.map { $0 + droppedTokens }]
        sizeMatrix = Self.combine(sizeMatrix, groups, max: false)
        if let m = sourceMatrix { sourceMatrix = Self.combine(m, groups, max: true) }
        return result.features
    }

    /// One row per group: the sum (or element-wise maximum) of its rows; groups may overlap,
    /// an empty group gives zeros.
    private static func combine(_ m: Matrix, _ groups: [[Int]], max: Bool) -> Matrix {
        let out = Matrix(rows: groups.count, cols: m.cols)
        for (k, group) in groups.enumerated() {
            let o = out.row(k)
            for r in group {
                let src = m.row(r)
                for j in 0..<m.cols { o[j] = max ? Swift.max(o[j], src[j]) : o[j] + src[j] }
            }
        }
        return out
    }
}
