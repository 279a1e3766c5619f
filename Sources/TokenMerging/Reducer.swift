import Kernels

// The seam every token reducer plugs into. A reducer is one type conforming to `TokenReducer`
// (in its own file, next to its algorithm) plus one line in `Reducers.all`; the schedule, the
// merger, the model wiring and the command line ask the reducer what it does instead of
// switching on its name.

/// Where a reducer acts on an image's tokens.
public enum ReducerSite: String, Sendable {
    /// Nowhere: the tower's tokens pass unchanged (method none).
    case nowhere
    /// After tower layers that feed the feature layer, per the reducer's `layerStage(layer:…)`.
    case towerLayers
    /// Once on the feature layer's patch tokens, with the attention and keys of the layer after
    /// it (a probe layer the feature layer would otherwise skip).
    case probeLayer
    /// Once on the projector's output.
    case projector
    /// Inside the language model, on the visual tokens' hidden states.
    case decoder
}

/// What a reducer reads besides the tokens themselves.
public struct ReducerNeeds: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The CLS row of a layer's attention probabilities, averaged over heads.
    public static let clsAttention = ReducerNeeds(rawValue: 1 << 0)
    /// A layer's keys averaged over heads.
    public static let keys = ReducerNeeds(rawValue: 1 << 1)
    /// The question's text (the kept tokens depend on what is asked).
    public static let question = ReducerNeeds(rawValue: 1 << 2)
    /// The attention each token received at a layer (averaged over heads and queries).
    public static let receivedAttention = ReducerNeeds(rawValue: 1 << 3)
    /// The language model's attention from the last prompt token.
    public static let decoderAttention = ReducerNeeds(rawValue: 1 << 4)
}

/// How a reducer takes its amount (`MergeOptions.ratio` / `keep`).
public enum ReducerAmount: Sendable {
    /// Neither (method none).
    case none
    /// Exactly one of a ratio and a budget.
    case required
    /// At most one; with neither, the reducer decides per image (PruMerge+'s adaptive count).
    case optional
    /// A fixed reduction: no ratio; a budget only if it equals the fixed count (2×2 pooling).
    case fixed
}

/// A setting of `MergeOptions` that belongs to one reducer (given to another, it is an error).
public enum ReducerParameter: String, Sendable, CaseIterable {
    case everyLayer = "every-layer"
    case fastvLayer = "fastv-layer"
    case importantRatio = "important-ratio"
}

/// One token-reduction method: where it acts, what it needs, which settings it owns, and, for the
/// methods that act in the tower, which stage runs after each layer. The plans its stages make
/// are executed by `MergePlan`/`apply` and `TokenMerger`.
public protocol TokenReducer {
    /// The name on the command line, in labels, cache keys and answer files.
    static var name: String { get }
    /// One line for `--merge` help.
    static var summary: String { get }
    static var site: ReducerSite { get }
    static var needs: ReducerNeeds { get }
    static var amount: ReducerAmount { get }
    /// The `MergeOptions` settings only this reducer reads.
    static var parameters: Set<ReducerParameter> { get }
    /// Whether each output token comes from known patches (false for transforms that mix all).
    static var tracksSources: Bool { get }
    /// The stage after tower layer `layer` (`towerLayers` reducers; `.none` elsewhere).
    static func layerStage(layer: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage
    /// Rules that need the tower's geometry, beyond `MergeOptions.validate`.
    static func check(_ options: MergeOptions, patchTokens: Int, mergeLayers: Int) throws
    /// The rows of the projector's output to keep (`projector` reducers): `keep` of them.
    static func projectorPlan(_ embeddings: Matrix, keep: Int, inputs: ProjectorInputs) -> MergePlan
}

/// What a projector-site reducer may read besides the projector's output, one row per image
/// token in the same order.
public struct ProjectorInputs {
    /// Per-token image embeddings in a joint image–text space (CLIP's `visual_projection` of the
    /// feature layer's patch tokens after `post_layernorm`).
    public var imageEmbeds: Matrix?
    /// Embeddings of the question's text in the same space, one row per text segment.
    public var textEmbeds: Matrix?

    public init(imageEmbeds: Matrix? = nil, textEmbeds: Matrix? = nil) {
        self.imageEmbeds = imageEmbeds
        self.textEmbeds = textEmbeds
    }
}

extension TokenReducer {
    public static var needs: ReducerNeeds { [] }
    public static var amount: ReducerAmount { .required }
    public static var parameters: Set<ReducerParameter> { [] }
    public static var tracksSources: Bool { true }
    public static func layerStage(layer: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage { .none }
    public static func check(_ options: MergeOptions, patchTokens: Int, mergeLayers: Int) throws {}
    public static func projectorPlan(_ embeddings: Matrix, keep: Int, inputs: ProjectorInputs) -> MergePlan {
        preconditionFailure("\(name) does not act on the projector's output")
    }
}

/// Every reducer by name, in the order help and listings show them. Adding a reducer: its file
/// and one line here.
public enum Reducers {
    public static let all: [any TokenReducer.Type] = [
        NoReduction.self,
        PiToMe.self,
        ToMe.self,
        ToFu.self,
        DCT.self,
        DiffRate.self,
        RandomDrop.self,
        GridPooling.self,
        DivPrune.self,
        VisionZip.self,
        PruMergePlus.self,
        CrossGET.self,
        MCTF.self,
        FastV.self,
        VisPruner.self,
        CDPruner.self,
    ]

    private static let byName: [String: any TokenReducer.Type] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    public static func named(_ name: String) -> (any TokenReducer.Type)? { byName[name] }

    /// "name: summary" lines, for help.
    public static var help: String { all.map { "\($0.name): \($0.summary)" }.joined(separator: "\n") }
    /// The names, comma-separated.
    public static var names: String { all.map { $0.name }.joined(separator: ", ") }
}

/// No reduction: every layer returns its tokens unchanged.
public enum NoReduction: TokenReducer {
    public static let name = "none"
    public static let summary = "no reduction (the unmerged baseline)"
    public static let site = ReducerSite.nowhere
    public static let amount = ReducerAmount.none
}

/// Which token-reduction method runs: a reducer of the registry, by name. Its string form is
/// the name (command line, JSON, labels).
public struct MergeMethod: Hashable, Sendable, RawRepresentable, CaseIterable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) {
        guard Reducers.named(rawValue) != nil else { return nil }
        self.rawValue = rawValue
    }

    public init(_ reducer: any TokenReducer.Type) { rawValue = reducer.name }

    public static var allCases: [MergeMethod] { Reducers.all.map { MergeMethod($0) } }

    /// The reducer this method names.
    public var reducer: any TokenReducer.Type { Reducers.named(rawValue)! }
    public var site: ReducerSite { reducer.site }
    public var needs: ReducerNeeds { reducer.needs }
    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let method = MergeMethod(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown merge method \"\(name)\" (known: \(Reducers.names))"))
        }
        self = method
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public static let none = MergeMethod(NoReduction.self)
}
