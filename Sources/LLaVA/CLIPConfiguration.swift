import Checkpoint
import FileAccess
import Foundation

// config.json of a CLIPModel folder (openai/clip-vit-large-patch14-336 and the like), the parts
// CDPruner reads: `text_config` for CLIPTextModelWithProjection and three fields of
// `vision_config` for CLIPVisionModelWithProjection's head. A field the file leaves out takes
// the transformers class default (configuration_clip.py), as `from_pretrained` does.

/// `text_config` (CLIPTextConfig). `CLIPTextModelWithProjection.from_pretrained` on a CLIPModel
/// folder reads `text_config` alone; the `text_config_dict` of old openai files is applied only
/// by CLIPConfig, so it is ignored here as well.
public struct CLIPTextConfiguration: Codable, Sendable, Equatable, CLIPEncoderConfiguration {
    public var vocabSize = 49408
    public var hiddenSize = 512
    public var intermediateSize = 2048
    public var projectionDim = 512
    public var numHiddenLayers = 12
    public var numAttentionHeads = 8
    public var maxPositionEmbeddings = 77
    public var hiddenAct = "quick_gelu"
    public var layerNormEps: Float = 1e-5
    /// 2 in openai's legacy configs: then the pooled row is the argmax of the ids (see
    /// `CLIPTextTransformer.pooledPosition`).
    public var eosTokenId = 49407

    public var headDim: Int { hiddenSize / numAttentionHeads }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case projectionDim = "projection_dim", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps", eosTokenId = "eos_token_id"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = Self()
        d.vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        d.hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        d.intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        d.projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? d.projectionDim
        d.numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        d.numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        d.maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        d.hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        d.layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps).map(Float.init) ?? d.layerNormEps
        d.eosTokenId = try c.decodeIfPresent(Int.self, forKey: .eosTokenId) ?? d.eosTokenId
        self = d
    }
}

/// The fields of `vision_config` (CLIPVisionConfig) that `post_layernorm` and
/// `visual_projection` need.
public struct CLIPVisionProjectionConfiguration: Codable, Sendable, Equatable {
    public var hiddenSize = 768
    public var projectionDim = 512
    public var layerNormEps: Float = 1e-5

    public init() {}

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", projectionDim = "projection_dim", layerNormEps = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = Self()
        d.hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        d.projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? d.projectionDim
        d.layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps).map(Float.init) ?? d.layerNormEps
        self = d
    }
}

/// config.json of a CLIPModel folder (CLIPConfig).
public struct CLIPConfiguration: Codable, Sendable, Equatable {
    public var modelType = "clip"
    public var textConfig = CLIPTextConfiguration()
    public var visionConfig = CLIPVisionProjectionConfiguration()

    public init() {}

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", textConfig = "text_config", visionConfig = "vision_config"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = Self()
        d.modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        d.textConfig = try c.decodeIfPresent(CLIPTextConfiguration.self, forKey: .textConfig) ?? d.textConfig
        d.visionConfig = try c.decodeIfPresent(CLIPVisionProjectionConfiguration.self, forKey: .visionConfig) ?? d.visionConfig
        self = d
    }

    /// Reads and checks `path`; every problem is one `CheckpointError.invalidConfig` naming it.
    public static func load(path: String) throws -> CLIPConfiguration {
        let data: [UInt8]
        do { data = try FileAccess.read(path, limit: FileAccess.configByteLimit) } catch let error as FileAccessError {
            throw CheckpointError(error)
        }
        let config: CLIPConfiguration
        do { config = try JSONDecoder().decode(CLIPConfiguration.self, from: Data(data)) } catch let error as DecodingError {
            throw CheckpointError.invalidConfig(path, Self.describe(error))
        }
        if let problem = config.problem { throw CheckpointError.invalidConfig(path, problem) }
        return config
    }

    /// What is wrong with the values, or nil. Sizes are bounded far above every released CLIP
    /// model, so a damaged file stops here instead of in an allocation.
    public var problem: String? {
        let t = textConfig, v = visionConfig
        if modelType != "clip" {
            return "model_type is \"\(modelType)\"; expected \"clip\" (a CLIPModel folder such as openai/clip-vit-large-patch14-336)"
        }
        let sizes = [("text_config.vocab_size", t.vocabSize, 1 << 22), ("text_config.hidden_size", t.hiddenSize, 1 << 16),
                     ("text_config.intermediate_size", t.intermediateSize, 1 << 18),
                     ("text_config.projection_dim", t.projectionDim, 1 << 16),
                     ("text_config.num_hidden_layers", t.numHiddenLayers, 1 << 10),
                     ("text_config.num_attention_heads", t.numAttentionHeads, 1 << 10),
                     ("text_config.max_position_embeddings", t.maxPositionEmbeddings, 1 << 16),
                     ("vision_config.hidden_size", v.hiddenSize, 1 << 16), ("vision_config.projection_dim", v.projectionDim, 1 << 16)]
        for (name, value, limit) in sizes where value <= 0 || value > limit {
            return "\(name) is \(value); expected 1 to \(limit)"
        }
        if t.hiddenSize % t.numAttentionHeads != 0 {
            return "text_config.hidden_size \(t.hiddenSize) is not divisible by num_attention_heads \(t.numAttentionHeads)"
        }
        if !["quick_gelu", "gelu", "gelu_python"].contains(t.hiddenAct) {
            return "text_config.hidden_act \"\(t.hiddenAct)\" is not supported (quick_gelu or gelu)"
        }
        return nil
    }

    /// A decoding error as "text_config.eos_token_id: expected Int" and the like.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "expected a JSON object"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(type == Int.self ? "an integer" : type == String.self ? "a string" : type == Double.self ? "a number" : "an object")"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is missing"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "cannot be decoded"
        }
    }
}
