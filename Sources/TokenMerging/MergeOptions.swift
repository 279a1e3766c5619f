/// How merged token features are combined.
public enum MergeWeighting: String, CaseIterable, Sendable, Codable {
    /// (dst + Σ src) / (1 + n): the official LLaVA wiring of PiToMe and ToMe.
    case mean
    /// Σ x·s / Σ s with the token sizes: official ToMe and the PiToMe ViT paths.
    case size
}

/// Configuration of the token merger. Exactly one of `ratio` and `keep` is set for every
/// method except `none` (neither), `pool2x2` (at most `keep`, which must equal the pooled count)
/// and `pruMergePlus` (at most one; neither is its adaptive count).
/// `validate()` holds the rules; a schedule checks them again with the tower's geometry.
public struct MergeOptions: Hashable, Sendable {
    public var method: MergeMethod
    /// ρ in (0, 1]: the fraction of tokens each merging layer keeps (compounded over layers); for the
    /// methods that cut once (DivPrune, VisionZip, PruMerge+), the fraction of patch tokens kept, int(round(ρ·P)).
    public var ratio: Double?
    /// Token budget: exactly this many patch tokens remain after the last merge layer. The
    /// per-layer schedule follows the rule documented on `MergeSchedule` (a deviation from the
    /// official code, which only has per-layer ratios).
    public var keep: Int?
    public var weighting: MergeWeighting
    /// Use the PiToMe energy stage at every layer instead of ToMe while 2·i ≤ L.
    public var pitomeEveryLayer: Bool
    /// α of the ELU in the PiToMe energy.
    public var alpha: Float
    /// m₀ in the layer margin m_i = m₀ − m₀·i/L.
    public var marginBase: Double
    /// Seed of the random-drop baseline.
    public var seed: UInt64
    /// Track which original patches every current token holds.
    public var trackSources: Bool
    /// FastV's K: the language-model layers that see every visual token (at least 1).
    public var fastvLayer: Int
    /// VisPruner's share of the budget chosen by CLS attention (the rest by diversity), 0 … 1.
    public var importantRatio: Double

    public init(
        method: MergeMethod = .none,
        ratio: Double? = nil,
        keep: Int? = nil,
        weighting: MergeWeighting = .mean,
        pitomeEveryLayer: Bool = false,
        alpha: Float = 1,
        marginBase: Double = 0.9,
        seed: UInt64 = 0,
        trackSources: Bool = false,
        fastvLayer: Int = 2,
        importantRatio: Double = 0.5
    ) {
        self.method = method
        self.ratio = ratio
        self.keep = keep
        self.weighting = weighting
        self.pitomeEveryLayer = pitomeEveryLayer
        self.alpha = alpha
        self.marginBase = marginBase
        self.seed = seed
        self.trackSources = trackSources
        self.fastvLayer = fastvLayer
        self.importantRatio = importantRatio
    }

    /// Throws the first rule these options break, as far as it can be told without a tower
    /// (a budget larger than the tower's tokens, an odd pooling grid, … are the schedule's).
    public func validate() throws {
        guard alpha.isFinite && alpha >= 0 else { throw MergeError.invalidAlpha(alpha) }
        guard marginBase.isFinite else { throw MergeError.invalidMarginBase(marginBase) }
        if ratio != nil && keep != nil { throw MergeError.ratioAndKeep }
        if let ratio, !(ratio > 0 && ratio <= 1) { throw MergeError.invalidRatio(ratio) }
        if let keep, keep < 1 { throw MergeError.invalidBudget(keep) }
        guard importantRatio.isFinite && importantRatio >= 0 && importantRatio <= 1 else {
            throw MergeError.invalidImportantRatio(importantRatio)
        }
        let reducer = method.reducer, defaults = MergeOptions()
        if pitomeEveryLayer && !reducer.parameters.contains(.everyLayer) { throw MergeError.everyLayerWithoutPiToMe(method) }
        if !reducer.tracksSources && trackSources { throw MergeError.sourcesUnavailable(method) }
        if fastvLayer < 1 { throw MergeError.invalidFastVLayer(layer: fastvLayer, textLayers: nil) }
        if fastvLayer != defaults.fastvLayer && !reducer.parameters.contains(.fastvLayer) {
            throw MergeError.fastvLayerWithoutFastV(method)
        }
        if importantRatio != defaults.importantRatio && !reducer.parameters.contains(.importantRatio) {
            throw MergeError.parameterWithoutMethod(.importantRatio, method)
        }
        switch reducer.amount {
        case .none:
            if ratio != nil || keep != nil { throw MergeError.amountWithoutMethod }
        case .fixed:
            if ratio != nil { throw MergeError.poolRatio }
        case .optional:
            break
        case .required:
            if ratio == nil && keep == nil { throw MergeError.missingAmount(method) }
        }
    }

    /// These options with every reducer-specific setting the method does not own put back to its
    /// default (so one set of flags can serve a grid of methods).
    public func keepingOnlyParameters(of method: MergeMethod) -> MergeOptions {
        var o = self, defaults = MergeOptions()
        o.method = method
        let owned = method.reducer.parameters
        if !owned.contains(.everyLayer) { o.pitomeEveryLayer = defaults.pitomeEveryLayer }
        if !owned.contains(.fastvLayer) { o.fastvLayer = defaults.fastvLayer }
        if !owned.contains(.importantRatio) { o.importantRatio = defaults.importantRatio }
        return o
    }
}

/// A token-merging configuration that cannot run.
public enum MergeError: Error, CustomStringConvertible, Equatable {
    case invalidGeometry(String)
    case ratioAndKeep
    case invalidRatio(Double)
    case invalidKeep(keep: Int, patchTokens: Int)
    case invalidBudget(Int)
    case missingAmount(MergeMethod)
    case amountWithoutMethod
    case everyLayerWithoutPiToMe(MergeMethod)
    case invalidAlpha(Float)
    case invalidMarginBase(Double)
    case keepUnreachable(keep: Int, minimum: Int, method: MergeMethod, layers: Int)
    case poolGrid(patchTokens: Int)
    case poolRatio
    case poolKeep(keep: Int, pooled: Int)
    case poolWithoutLayers
    case sourcesUnavailable(MergeMethod)
    case invalidFastVLayer(layer: Int, textLayers: Int?)
    case fastvLayerWithoutFastV(MergeMethod)
    case parameterWithoutMethod(ReducerParameter, MergeMethod)
    case invalidImportantRatio(Double)

    public var description: String {
        switch self {
        case .invalidGeometry(let why):
            return "invalid tower geometry for token merging: \(why)"
        case .ratioAndKeep:
            return "give either a merge ratio or a token budget (keep), not both"
        case .invalidRatio(let r):
            return "merge ratio \(r) is out of range: it must satisfy 0 < ratio <= 1"
        case .invalidKeep(let k, let p):
            return "keep \(k) is out of range: it must be between 1 and the \(p) patch tokens"
        case .invalidBudget(let k):
            return "keep \(k) is out of range: a token budget must be at least 1"
        case .missingAmount(let m):
            return "method \(m.rawValue) needs a merge ratio or a token budget (keep)"
        case .amountWithoutMethod:
            return "a merge ratio or token budget was given but the merge method is none"
        case .everyLayerWithoutPiToMe(let m):
            return "PiToMe at every layer only applies to method pitome, not \(m.rawValue)"
        case .invalidAlpha(let a):
            return "PiToMe alpha \(a) must be a finite number >= 0"
        case .invalidMarginBase(let m):
            return "PiToMe margin base \(m) must be a finite number"
        case .keepUnreachable(let k, let minimum, let m, let layers):
            return "keep \(k) is unreachable: \(m.rawValue) over \(layers) merge layers leaves at least \(minimum) patch tokens"
        case .poolGrid(let p):
            return "2x2 pooling needs a square patch grid with an even side, but there are \(p) patch tokens"
        case .poolRatio:
            return "2x2 pooling has a fixed 4x reduction and takes no merge ratio"
        case .poolKeep(let k, let pooled):
            return "2x2 pooling leaves \(pooled) patch tokens, so keep \(k) is impossible"
        case .poolWithoutLayers:
            return "2x2 pooling needs at least one merge layer"
        case .sourcesUnavailable(let m):
            return "source tracking is not available for method \(m.rawValue): its output tokens mix every patch"
        case .invalidFastVLayer(let k, let layers?):
            return "FastV layer \(k) is out of range: it must be between 1 and \(layers - 1) (the language model has \(layers) layers)"
        case .invalidFastVLayer(let k, nil):
            return "FastV layer \(k) is out of range: it must be at least 1"
        case .fastvLayerWithoutFastV(let m):
            return "a FastV layer only applies to method fastv, not \(m.rawValue)"
        case .parameterWithoutMethod(let p, let m):
            let owners = Reducers.all.filter { $0.parameters.contains(p) }.map { $0.name }.joined(separator: ", ")
            return "\(p.rawValue) only applies to method \(owners), not \(m.rawValue)"
        case .invalidImportantRatio(let r):
            return "important ratio \(r) is out of range: it must satisfy 0 <= ratio <= 1"
        }
    }
}
