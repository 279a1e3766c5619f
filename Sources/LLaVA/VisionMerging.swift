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

/// Everything that decides how the vision tower reduces its tokens: the one value that the
/// command-line flags make, `validate()` checks, and the label, the image-cache key, the
/// answer-file metadata and the JSON reports are derived from.
///
/// Its JSON form is one flat object: method, ratio, keep (null when not set), metric,
/// weighting, prop_attn, pitome_every_layer, seed; alpha, margin_base, fastv_layer and important_ratio only when
/// they differ from their defaults. `trackSources` is not part of it (it records where tokens came from
/// and does not change them), but it is part of the value's identity (hash and equality).
public struct VisionMergeSettings: Sendable, Hashable, Codable {
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

    /// Throws the first rule the settings break (`MergeOptions.validate`); the limits of a
    /// particular tower are checked when its schedule is made.
    public func validate() throws {
        try options.validate()
    }

    /// A short label such as "pitome ratio=0.9" or "tome keep=64 metric=keys": the method and
    /// amount, then every setting that differs from its default.
    public var label: String {
        let defaults = MergeOptions()
        var s = options.method.rawValue
        if let r = options.ratio { s += " ratio=\(r)" }
        if let k = options.keep { s += " keep=\(k)" }
        if metric == .keys { s += " metric=keys" }
        if options.weighting == .size { s += " weighting=size" }
        if proportionalAttention { s += " prop-attn" }
        if options.pitomeEveryLayer { s += " every-layer" }
        if options.seed != defaults.seed { s += " seed=\(options.seed)" }
        if options.alpha != defaults.alpha { s += " alpha=\(options.alpha)" }
        if options.marginBase != defaults.marginBase { s += " margin-base=\(options.marginBase)" }
        if options.fastvLayer != defaults.fastvLayer { s += " fastv-layer=\(options.fastvLayer)" }
        if options.importantRatio != defaults.importantRatio { s += " important-ratio=\(options.importantRatio)" }
        return s
    }

    enum CodingKeys: String, CodingKey {
        case method, ratio, keep, metric, weighting, propAttn = "prop_attn", pitomeEveryLayer = "pitome_every_layer", seed
        case alpha, marginBase = "margin_base", fastvLayer = "fastv_layer", importantRatio = "important_ratio"
    }

    public func encode(to encoder: Encoder) throws {
        let o = options, defaults = MergeOptions()
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(o.method, forKey: .method)
        try c.encode(o.ratio, forKey: .ratio)
        try c.encode(o.keep, forKey: .keep)
        try c.encode(metric, forKey: .metric)
        try c.encode(o.weighting, forKey: .weighting)
        try c.encode(proportionalAttention, forKey: .propAttn)
        try c.encode(o.pitomeEveryLayer, forKey: .pitomeEveryLayer)
        // As a signed 64-bit number, the way every JSON reader can hold it.
        try c.encode(Int64(bitPattern: o.seed), forKey: .seed)
        if o.alpha != defaults.alpha { try c.encode(o.alpha, forKey: .alpha) }
        if o.marginBase != defaults.marginBase { try c.encode(o.marginBase, forKey: .marginBase) }
        if o.fastvLayer != defaults.fastvLayer { try c.encode(o.fastvLayer, forKey: .fastvLayer) }
        if o.importantRatio != defaults.importantRatio { try c.encode(o.importantRatio, forKey: .importantRatio) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = MergeOptions()
        options = MergeOptions(
            method: try c.decode(MergeMethod.self, forKey: .method),
            ratio: try c.decodeIfPresent(Double.self, forKey: .ratio),
            keep: try c.decodeIfPresent(Int.self, forKey: .keep),
            weighting: try c.decodeIfPresent(MergeWeighting.self, forKey: .weighting) ?? defaults.weighting,
            pitomeEveryLayer: try c.decodeIfPresent(Bool.self, forKey: .pitomeEveryLayer) ?? defaults.pitomeEveryLayer,
            alpha: try c.decodeIfPresent(Float.self, forKey: .alpha) ?? defaults.alpha,
            marginBase: try c.decodeIfPresent(Double.self, forKey: .marginBase) ?? defaults.marginBase,
            seed: UInt64(bitPattern: try c.decodeIfPresent(Int64.self, forKey: .seed) ?? 0),
            fastvLayer: try c.decodeIfPresent(Int.self, forKey: .fastvLayer) ?? defaults.fastvLayer,
            importantRatio: try c.decodeIfPresent(Double.self, forKey: .importantRatio) ?? defaults.importantRatio)
        metric = try c.decodeIfPresent(MergeMetric.self, forKey: .metric) ?? .hidden
        proportionalAttention = try c.decodeIfPresent(Bool.self, forKey: .propAttn) ?? false
    }
}

/// The question side of a question-aware reducer: text and per-token image embeddings in one
/// joint space (CLIP's text tower and projections, read from a CLIP folder).
public protocol QuestionEncoder: AnyObject {
    /// The question's embeddings, one row per text segment.
    func textEmbeddings(_ text: String) throws -> Matrix
    /// Per-token image embeddings of the tower's selected patch features [N, C].
    func imageEmbeddings(features: Matrix) throws -> Matrix
}

extension VisionMergeSettings {
    /// The text a question-aware reducer embeds: the question without the short-answer
    /// instruction the LLaVA-1.5 question files append (as CDPruner's evaluation script strips it).
    public static func relevanceText(_ question: String) -> String {
        question.replacingOccurrences(of: "\nAnswer the question using a single word or phrase.", with: "")
    }

    /// The question an image's encoding depends on under these settings: `question` for a
    /// question-aware reducer, nil otherwise (so caches share entries across questions).
    public func questionKey(_ question: String?) -> String? {
        readsQuestion ? question.map(Self.relevanceText) : nil
    }

    /// Whether the image's encoding depends on the question (a question-aware reducer is active).
    public var readsQuestion: Bool { isActive && options.method.needs.contains(.question) }
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

    /// A reducer that cuts once at the feature layer (VisionZip, VisPruner) always acts on that
    /// layer's output, VisionZip by the layer's keys (`--merge-metric` does not apply to them).
    var placement: MergePlacement {
        settings.metric == .keys && !merger.cutsOnce && !settings.options.method.needs.contains(.keys) ? .betweenAttentionAndMLP : .afterLayer
    }
    func needsKeys(layer: Int) -> Bool { merger.needsKeys(layer: layer) }
    var needsCLSAttention: Bool { merger.needsCLSAttention }
    var attentionKeyBias: [Float]? { settings.proportionalAttention ? merger.logSizes : nil }

    func needsReceivedAttention(layer: Int) -> Bool { merger.needsReceivedAttention(layer: layer) }

    func merge(layer: Int, tokens: Matrix, metric: Matrix, clsAttention: [Float]?, receivedAttention: [Float]?) -> Matrix {
        merger.merge(layer: layer, tokens: tokens, metric: metric, clsAttention: clsAttention, receivedAttention: receivedAttention)
    }
}

extension LlavaConfiguration {
    /// Visual tokens that reach the language model under `settings`, computed by the same
    /// schedule the tower's merger runs (merges after each of the `visionLayersToRun` layers;
    /// margins and stage switches use the full tower depth).
    /// For FastV, the visual tokens left after its cut inside the language model; nil for
    /// PruMerge+'s adaptive count, which each image decides.
    public func plannedVisualTokens(_ settings: VisionMergeSettings) throws -> Int? {
        let schedule = try MergeSchedule(options: settings.options, towerDepth: vision.numHiddenLayers,
                                         mergeLayers: visionLayersToRun, initialTokens: vision.numPatches + 1)
        if let cut = try languageModelCut(settings) { return cut.keep }
        if settings.options.method.site == .probeLayer {
            if visionLayersToRun >= vision.numHiddenLayers {
                throw MergeError.invalidGeometry("prumerge-plus reads the attention of the layer after the feature layer, but the feature layer is the tower's last")
            }
            if visionFeatureSelectStrategy.droppedTokens != 1 {
                throw MergeError.invalidGeometry("prumerge-plus needs the CLS token dropped from the features (vision_feature_select_strategy default)")
            }
            return schedule.featureKeep
        }
        return schedule.projectorKeep ?? schedule.tokenCounts.last! - visionFeatureSelectStrategy.droppedTokens
    }

    /// FastV's cut for `settings` (nil for every other method), checked against the language
    /// model's depth and the image tokens the tower gives.
    public func languageModelCut(_ settings: VisionMergeSettings) throws -> LanguageModelCut? {
        guard settings.options.method.site == .decoder else { return nil }
        let visual = vision.numPatches + 1 - visionFeatureSelectStrategy.droppedTokens
        if let keep = settings.options.keep, keep > visual { throw MergeError.invalidKeep(keep: keep, patchTokens: visual) }
        let cut = LanguageModelCut(layer: settings.options.fastvLayer,
                                   keep: FastV.keptCount(visualTokens: visual, options: settings.options))
        try check(cut)
        return cut
    }

    /// A FastV cut checked against the language model: a layer after the first and before the
    /// end (the ranking reads the layer before it), at least one token kept. Every way into the
    /// decoder (settings, or a cut given to `generate`) goes through this check.
    func check(_ cut: LanguageModelCut) throws {
        let layers = text.numHiddenLayers
        guard cut.layer >= 1 && cut.layer < layers else {
            throw MergeError.invalidFastVLayer(layer: cut.layer, textLayers: layers)
        }
        guard cut.keep >= 1 else { throw MergeError.invalidBudget(cut.keep) }
    }

    /// Tokens (CLS included) entering the first layer and after each merge layer.
    public func plannedTokenCounts(_ settings: VisionMergeSettings) throws -> [Int] {
        try TokenMerger.plannedTokenCounts(options: settings.options, towerDepth: vision.numHiddenLayers,
                                           mergeLayers: visionLayersToRun, initialTokens: vision.numPatches + 1)
    }
}

extension LlavaForConditionalGeneration {
    public func plannedVisualTokens(_ settings: VisionMergeSettings) throws -> Int? {
        try config.plannedVisualTokens(settings)
    }

    /// A merger for one image under `settings`, or nil when nothing merges.
    /// FastV cuts inside the language model: its tower runs unreduced.
    func makeMerger(_ settings: VisionMergeSettings) throws -> TowerMerger? {
        guard (settings.isActive && settings.options.method.site != .decoder) || settings.options.trackSources else { return nil }
        if config.visionFeatureLayers.count > 1 {
            throw LlavaError.mergeWithSeveralFeatureLayers(config.visionFeatureLayers)
        }
        return try TowerMerger(settings: settings, towerDepth: config.vision.numHiddenLayers,
                               mergeLayers: config.visionLayersToRun, initialTokens: config.vision.numPatches + 1)
    }

    /// Image embeddings under a merge setting; also returns the source map when tracked.
    /// `question` is what a question-aware reducer (CDPruner) chooses tokens by; other reducers
    /// ignore it.
    public func encodeImage(pixels: [Float], merge settings: VisionMergeSettings,
                            question: String? = nil) throws -> (embeddings: Matrix, sources: [[Int]]?) {
        let method = settings.options.method
        var textEmbeds: Matrix?
        if settings.readsQuestion {
            guard let encoder = questionEncoder else { throw LlavaError.questionEncoderMissing(method) }
            guard let question else { throw LlavaError.questionMissing(method) }
            textEmbeds = try stage("merge.text") { try encoder.textEmbeddings(VisionMergeSettings.relevanceText(question)) }
        }
        let merger = try makeMerger(settings)
        if let merger, method.site == .probeLayer {
            return (projector(try pruMergePlusFeatures(pixels: pixels, merger: merger)), merger.merger.sources)
        }
        let features = try imageFeatures(pixels: pixels, merger: merger)
        var embeddings = projector(features)
        if let merger {
            embeddings = try stage("merge") {
                var inputs = ProjectorInputs(textEmbeds: textEmbeds)
                if let encoder = questionEncoder, textEmbeds != nil {
                    inputs.imageEmbeds = try encoder.imageEmbeddings(features: features)
                }
                return merger.merger.reduceProjected(embeddings, droppedTokens: config.visionFeatureSelectStrategy.droppedTokens,
                                                     inputs: inputs)
            }
        }
        return (embeddings, merger?.merger.sources)
    }

    /// PruMerge+ on the feature layer's patch tokens, with the CLS attention and keys of the layer after it.
    func pruMergePlusFeatures(pixels: [Float], merger: TowerMerger) throws -> Matrix {
        _ = try config.plannedVisualTokens(merger.settings)
        let layer = config.visionLayersToRun
        guard let probe = visionTower.nextLayerProbe else { throw LlavaError.missingProbeLayer(layer, directory: directory) }
        try checkPixelCount(pixels)
        let hidden = visionTower(pixels: pixels, hiddenStates: [layer], merger: merger)[layer]!
        return stage("merge") {
            let (attention, keys) = probe.clsAttentionAndKeys(hidden)
            let patches = Array(1..<hidden.rows)
            return merger.merger.reducePatchFeatures(hidden.gatherRows(patches), keys: keys.gatherRows(patches),
                                                     clsAttention: Array(attention[1...]), droppedTokens: 1)
        }
    }
}
