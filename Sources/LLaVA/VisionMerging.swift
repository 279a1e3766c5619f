import Foundation
import Kernels
import Checkpoint
import TokenMerging

/// Which similarity metric drives the merge, and so where in the layer the merge sits.
public enum MergeMetric: String, Sendable, CaseIterable, Codable {
    /// The layer output; merge after the whole layer (official LLaVA wiring).
    case hidden
    /// The layer's keys averaged over heads; merge between attention and MLP (paper Fig. 2, ToMe).
    case keys
}

/// Everything that decides how the vision tower reduces its tokens.
public struct VisionMergeSettings: Sendable, Equatable {
    public var options: MergeOptions
    public var metric: MergeMetric
    /// Add log(token size) to the attention logits of later layers.
    public var proportionalAttention: Bool

    public init(options: MergeOptions = MergeOptions(), metric: MergeMetric = .hidden, proportionalAttention: Bool = false) {
        self.options = options
        self.metric = metric
        self.proportionalAttention = proportionalAttention
    }

    public static let none = VisionMergeSettings()

    public var isActive: Bool { options.method != .none }

    /// A short label such as "pitome ρ=0.9" or "tome keep=64".
    public var label: String {
        var s = options.method.rawValue
        if let r = options.ratio { s += " ratio=\(r)" }
        if let k = options.keep { s += " keep=\(k)" }
        if metric == .keys { s += " metric=keys" }
        if options.weighting == .size { s += " weighting=size" }
        if proportionalAttention { s += " prop-attn" }
        if options.pitomeEveryLayer { s += " every-layer" }
        return s
    }
}

/// Connects a `TokenMerger` to the CLIP tower.
final class TowerMerger: VisionMergeHook {
    let merger: TokenMerger
    let settings: VisionMergeSettings

    init(settings: VisionMergeSettings, towerDepth: Int, mergeLayers: Int, initialTokens: Int) throws {
        self.settings = settings
        merger = try TokenMerger(options: settings.options, towerDepth: towerDepth, mergeLayers: mergeLayers,
                                 initialTokens: initialTokens)
    }

    var placement: MergePlacement { settings.metric == .keys ? .betweenAttentionAndMLP : .afterLayer }
    var needsCLSAttention: Bool { merger.needsCLSAttention }
    var attentionKeyBias: [Float]? { settings.proportionalAttention ? merger.logSizes : nil }

    func merge(layer: Int, tokens: Matrix, metric: Matrix, clsAttention: [Float]?) -> Matrix {
        merger.merge(layer: layer, tokens: tokens, metric: metric, clsAttention: clsAttention)
    }
}

extension LlavaConfiguration {
    /// Visual tokens that reach the language model under `settings`, computed by the same
    /// schedule the tower's merger runs (merges after each of the `visionLayersToRun` layers;
    /// margins and stage switches use the full tower depth).
    public func plannedVisualTokens(_ settings: VisionMergeSettings) throws -> Int {
        try plannedTokenCounts(settings).last! - (visionFeatureSelectStrategy == "default" ? 1 : 0)
    }

    /// Tokens (CLS included) entering the first layer and after each merge layer.
    public func plannedTokenCounts(_ settings: VisionMergeSettings) throws -> [Int] {
        try TokenMerger.plannedTokenCounts(options: settings.options, towerDepth: vision.numHiddenLayers,
                                           mergeLayers: visionLayersToRun, initialTokens: vision.numPatches + 1)
    }
}

extension LlavaForConditionalGeneration {
    public func plannedVisualTokens(_ settings: VisionMergeSettings) throws -> Int {
        try config.plannedVisualTokens(settings)
    }

    /// A merger for one image under `settings`, or nil when nothing merges.
    func makeMerger(_ settings: VisionMergeSettings) throws -> TowerMerger? {
        guard settings.isActive || settings.options.trackSources else { return nil }
        if config.visionFeatureLayers.count > 1 {
            throw LlavaError.mergeWithSeveralFeatureLayers(config.visionFeatureLayers)
        }
        return try TowerMerger(settings: settings, towerDepth: config.vision.numHiddenLayers,
                               mergeLayers: config.visionLayersToRun, initialTokens: config.vision.numPatches + 1)
    }

    /// Image embeddings under a merge setting; also returns the source map when tracked.
    public func encodeImage(pixels: [Float], merge settings: VisionMergeSettings) throws -> (embeddings: Matrix, sources: [[Int]]?) {
        let merger = try makeMerger(settings)
        let embeddings = try encodeImage(pixels: pixels, merger: merger)
        return (embeddings, merger?.merger.sources)
    }
}
