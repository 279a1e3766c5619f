import Foundation

/// Where a model family keeps its parts' tensors, in the one (legacy llava-hf) naming scheme
/// every loader reads, and how other schemes map onto it.
public struct WeightNames: Sendable {
    /// The decoder (`embed_tokens`, `layers.N.`, `norm`).
    public var languageModel: String
    /// The output projection.
    public var lmHead: String
    /// The vision encoder (`embeddings`, `pre_layrnorm`, `encoder.layers.N.`).
    public var visionTower: String
    /// The projector from vision features to the decoder's embeddings.
    public var projector: String
    /// Prefix rewrites from other schemes to these names, tried in order; the first match wins.
    public var rewrites: [(from: String, to: String)]
    /// The vision encoder's level that some schemes drop (`vision_tower.` + `vision_model.`):
    /// a name under `visionTowerRoot` but not under `visionTower` gets it back.
    public var visionTowerRoot: String

    public init(languageModel: String, lmHead: String, visionTower: String, projector: String,
                rewrites: [(from: String, to: String)], visionTowerRoot: String) {
        self.languageModel = languageModel
        self.lmHead = lmHead
        self.visionTower = visionTower
        self.projector = projector
        self.rewrites = rewrites
        self.visionTowerRoot = visionTowerRoot
    }

    /// LlavaForConditionalGeneration's names: transformers 4 writes them as they are;
    /// transformers 5 writes `model.language_model.*`, `model.vision_tower.*`,
    /// `model.multi_modal_projector.*` and `lm_head.*`, and may drop `vision_model.` under the tower.
    public static let llava = WeightNames(
        languageModel: "language_model.model.",
        lmHead: "language_model.lm_head.",
        visionTower: "vision_tower.vision_model.",
        projector: "multi_modal_projector.",
        rewrites: [
            ("model.language_model.", "language_model.model."),
            ("model.vision_tower.", "vision_tower."),
            ("model.multi_modal_projector.", "multi_modal_projector."),
            ("lm_head.", "language_model.lm_head."),
        ],
        visionTowerRoot: "vision_tower.")

    /// A stored tensor name in this scheme.
    public func canonical(_ name: String) -> String {
        var out = name
        for (from, to) in rewrites where name.hasPrefix(from) {
            out = to + name.dropFirst(from.count)
            break
        }
        if out.hasPrefix(visionTowerRoot) && !out.hasPrefix(visionTower) {
            out = visionTower + out.dropFirst(visionTowerRoot.count)
        }
        return out
    }
}

/// What loading a checkpoint needs to know about one model family: the `model_type` its
/// config.json names, the transformers class it is, and its weight names.
public struct CheckpointFamily: Sendable, Equatable {
    public let modelType: String
    public let architecture: String
    public let weightNames: WeightNames

    public init(modelType: String, architecture: String, weightNames: WeightNames) {
        self.modelType = modelType
        self.architecture = architecture
        self.weightNames = weightNames
    }

    public static func == (a: CheckpointFamily, b: CheckpointFamily) -> Bool { a.modelType == b.modelType }

    /// LLaVA-1.5 (llava-hf/llava-1.5-*-hf and checkpoints laid out like it).
    public static let llava = CheckpointFamily(modelType: "llava", architecture: "LlavaForConditionalGeneration",
                                               weightNames: .llava)

    /// Every family whose checkpoints load, one line each (`ModelFamilies` pairs each with its model).
    public static let known: [CheckpointFamily] = [.llava]

    /// The family of a config.json `model_type`.
    public static func named(_ modelType: String) -> CheckpointFamily? {
        known.first { $0.modelType == modelType }
    }

    /// "\"llava\" (LlavaForConditionalGeneration), …": the model types that load.
    public static var knownList: String {
        known.map { "\"\($0.modelType)\" (\($0.architecture))" }.joined(separator: ", ")
    }
}
