import Foundation

// config.json of a LlavaForConditionalGeneration checkpoint, decoded with the transformers
// class defaults applied to every field the file leaves out (llava-hf's files are minimal).

/// `vision_config` (CLIPVisionConfig).
public struct CLIPVisionConfiguration: Sendable, Equatable {
    public var modelType = "clip_vision_model"
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var numChannels = 3
    public var imageSize = 224
    public var patchSize = 32
    public var hiddenAct = "quick_gelu"
    public var layerNormEps: Float = 1e-5

    public init() {}

    /// The default tower LlavaConfig uses when `vision_config` is absent: CLIP ViT-L/14 at 336 px.
    public static var llavaDefault: CLIPVisionConfiguration {
        var c = CLIPVisionConfiguration()
        c.hiddenSize = 1024
        c.intermediateSize = 4096
        c.numHiddenLayers = 24
        c.numAttentionHeads = 16
        c.imageSize = 336
        c.patchSize = 14
        return c
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
    public var patchesPerSide: Int { imageSize / patchSize }
    public var numPatches: Int { patchesPerSide * patchesPerSide }
}

/// `text_config` (LlamaConfig).
public struct LlamaConfiguration: Sendable, Equatable {
    public var modelType = "llama"
    public var vocabSize = 32000
    public var hiddenSize = 4096
    public var intermediateSize = 11008
    public var numHiddenLayers = 32
    public var numAttentionHeads = 32
    public var numKeyValueHeads = 32
    public var headDim = 128
    public var hiddenAct = "silu"
    public var maxPositionEmbeddings = 2048
    public var rmsNormEps: Float = 1e-6
    public var ropeTheta: Double = 10000
    public var attentionBias = false
    public var mlpBias = false
    public var tieWordEmbeddings = false
    public var bosTokenId = 1
    public var eosTokenIds = [2]

    public init() {}
}

/// Which tokens of the selected vision layer reach the projector (`vision_feature_select_strategy`).
public enum FeatureSelectStrategy: String, Sendable {
    /// The patch tokens: the CLS token is dropped.
    case `default`
    /// Every token, CLS included.
    case full

    /// Leading tokens (the CLS token) that do not reach the projector.
    public var droppedTokens: Int { self == .default ? 1 : 0 }
}

/// The whole LlavaConfig.
public struct LlavaConfiguration: Sendable, Equatable {
    /// The family config.json's `model_type` names (LLaVA-1.5 when the file names none).
    public var family = CheckpointFamily.llava
    public var vision = CLIPVisionConfiguration.llavaDefault
    public var text = LlamaConfiguration()
    public var imageTokenIndex = 32000
    public var projectorHiddenAct = "gelu"
    /// Hidden-state indices whose features feed the projector (negative counts from the end).
    public var visionFeatureLayers = [-2]
    public var visionFeatureSelectStrategy = FeatureSelectStrategy.default
    public var multimodalProjectorBias = true

    public init() {}

    /// Number of vision encoder layers that must run to produce the selected hidden state(s):
    /// hidden_states[0] is the embedding output, hidden_states[i] the output of layer i.
    public var visionLayersToRun: Int {
        visionFeatureLayers.map { resolvedFeatureIndex($0) }.max() ?? vision.numHiddenLayers
    }

    public func resolvedFeatureIndex(_ layer: Int) -> Int {
        layer < 0 ? vision.numHiddenLayers + 1 + layer : layer
    }

    /// Loads and validates `config.json`.
    public static func load(path: String) throws -> LlavaConfiguration {
        let data = try readConfigFile(path)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError.invalidConfig(path, "not a JSON object")
        }
        do {
            let config = try LlavaConfiguration(json: JSONObject(object))
            try config.validate()
            return config
        } catch let error as ConfigIssue {
            throw CheckpointError.invalidConfig(path, error.message)
        }
    }

    init(json: JSONObject) throws {
        if let modelType = try json.string("model_type") {
            guard let known = CheckpointFamily.named(modelType) else {
                throw ConfigIssue("model_type is \"\(modelType)\"; the known model types are \(CheckpointFamily.knownList)")
            }
            family = known
        }
        if let v = try json.object("vision_config") { vision = try CLIPVisionConfiguration(json: v) }
        if let t = try json.object("text_config") { text = try LlamaConfiguration(json: t) }
        imageTokenIndex = try json.int("image_token_index") ?? json.int("image_token_id") ?? imageTokenIndex
        projectorHiddenAct = try json.string("projector_hidden_act") ?? projectorHiddenAct
        if let layers = try json.intOrIntList("vision_feature_layer") { visionFeatureLayers = layers }
        if let strategy = try json.string("vision_feature_select_strategy") {
            guard let known = FeatureSelectStrategy(rawValue: strategy) else {
                throw ConfigIssue("vision_feature_select_strategy must be \"default\" or \"full\", found \"\(strategy)\"")
            }
            visionFeatureSelectStrategy = known
        }
        multimodalProjectorBias = try json.bool("multimodal_projector_bias") ?? multimodalProjectorBias
        if try json.bool("tie_word_embeddings") == true { text.tieWordEmbeddings = true }
        // Old files keep the (padded) vocabulary size at the top level as well.
        if try json.object("text_config")?.int("vocab_size") == nil, let v = try json.int("vocab_size") {
            text.vocabSize = v
        }
    }

    func validate() throws {
        func require(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw ConfigIssue(message()) }
        }
        let v = vision, t = text
        try require(v.modelType == "clip_vision_model" || v.modelType == "clip",
                    "vision_config.model_type \"\(v.modelType)\" is not supported (CLIP only)")
        try require(t.modelType == "llama", "text_config.model_type \"\(t.modelType)\" is not supported (Llama only)")
        for (name, value) in [("vision_config.hidden_size", v.hiddenSize), ("vision_config.intermediate_size", v.intermediateSize),
                              ("vision_config.num_hidden_layers", v.numHiddenLayers), ("vision_config.num_attention_heads", v.numAttentionHeads),
                              ("vision_config.image_size", v.imageSize), ("vision_config.patch_size", v.patchSize),
                              ("text_config.vocab_size", t.vocabSize), ("text_config.hidden_size", t.hiddenSize),
                              ("text_config.intermediate_size", t.intermediateSize), ("text_config.num_hidden_layers", t.numHiddenLayers),
                              ("text_config.num_attention_heads", t.numAttentionHeads), ("text_config.num_key_value_heads", t.numKeyValueHeads),
                              ("text_config.head_dim", t.headDim), ("text_config.max_position_embeddings", t.maxPositionEmbeddings)] {
            try require(value > 0, "\(name) must be positive, found \(value)")
        }
        for (name, value, limit) in Self.sizeLimits(v, t) {
            try require(value <= limit, "\(name) is \(value), more than the limit of \(limit)")
        }
        try require(v.patchSize <= v.imageSize, "vision_config.patch_size \(v.patchSize) is larger than image_size \(v.imageSize)")
        for (name, factors) in [("text_config.num_attention_heads × head_dim", [t.numAttentionHeads, t.headDim]),
                                ("text_config.num_key_value_heads × head_dim", [t.numKeyValueHeads, t.headDim]),
                                ("vision_config tokens × intermediate_size", [v.numPatches + 1, v.intermediateSize]),
                                ("vision_config tokens × hidden_size", [v.numPatches + 1, v.hiddenSize]),
                                ("text_config.max_position_embeddings × intermediate_size", [t.maxPositionEmbeddings, t.intermediateSize]),
                                ("text_config.vocab_size × hidden_size", [t.vocabSize, t.hiddenSize])] {
            try require(Self.product(factors) != nil, "\(name) overflows")
        }
        try require(v.numChannels == 3, "vision_config.num_channels must be 3, found \(v.numChannels)")
        try require(v.hiddenSize % v.numAttentionHeads == 0, "vision_config.hidden_size \(v.hiddenSize) is not divisible by num_attention_heads \(v.numAttentionHeads)")
        try require(v.imageSize % v.patchSize == 0, "vision_config.image_size \(v.imageSize) is not a multiple of patch_size \(v.patchSize)")
        try require(t.numAttentionHeads % t.numKeyValueHeads == 0, "text_config.num_attention_heads \(t.numAttentionHeads) is not a multiple of num_key_value_heads \(t.numKeyValueHeads)")
        try require(t.headDim % 2 == 0, "text_config.head_dim must be even for rotary embeddings, found \(t.headDim)")
        try require(["quick_gelu", "gelu", "gelu_python"].contains(v.hiddenAct), "vision_config.hidden_act \"\(v.hiddenAct)\" is not supported")
        try require(["silu", "swish"].contains(t.hiddenAct), "text_config.hidden_act \"\(t.hiddenAct)\" is not supported")
        try require(["gelu", "gelu_python", "quick_gelu", "silu"].contains(projectorHiddenAct), "projector_hidden_act \"\(projectorHiddenAct)\" is not supported")
        try require(!visionFeatureLayers.isEmpty, "vision_feature_layer is empty")
        for layer in visionFeatureLayers {
            let index = resolvedFeatureIndex(layer)
            try require(index >= 1 && index <= v.numHiddenLayers,
                        "vision_feature_layer \(layer) is outside the \(v.numHiddenLayers)-layer vision tower")
        }
        try require(imageTokenIndex >= 0, "image_token_index must be non-negative, found \(imageTokenIndex)")
        try require(imageTokenIndex <= Int(Int32.max), "image_token_index \(imageTokenIndex) is larger than a token id can be")
    }

    /// Largest accepted sizes. They are far above every released LLaVA/CLIP/Llama model and stop
    /// a lying config.json before anything is allocated from it; the weights' shapes are then
    /// checked against the config tensor by tensor.
    static func sizeLimits(_ v: CLIPVisionConfiguration, _ t: LlamaConfiguration) -> [(String, Int, Int)] {
        [("vision_config.hidden_size", v.hiddenSize, 1 << 16), ("vision_config.intermediate_size", v.intermediateSize, 1 << 18),
         ("vision_config.num_hidden_layers", v.numHiddenLayers, 1 << 10), ("vision_config.num_attention_heads", v.numAttentionHeads, 1 << 10),
         ("vision_config.image_size", v.imageSize, 1 << 12),
         ("text_config.vocab_size", t.vocabSize, 1 << 22), ("text_config.hidden_size", t.hiddenSize, 1 << 16),
         ("text_config.intermediate_size", t.intermediateSize, 1 << 18), ("text_config.num_hidden_layers", t.numHiddenLayers, 1 << 10),
         ("text_config.num_attention_heads", t.numAttentionHeads, 1 << 10), ("text_config.num_key_value_heads", t.numKeyValueHeads, 1 << 10),
         ("text_config.head_dim", t.headDim, 1 << 12), ("text_config.max_position_embeddings", t.maxPositionEmbeddings, 1 << 22)]
    }

    /// The product of positive factors, or nil if it overflows.
    static func product(_ factors: [Int]) -> Int? {
        var result = 1
        for f in factors {
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            if overflow { return nil }
            result = p
        }
        return result
    }
}

extension CLIPVisionConfiguration {
    init(json: JSONObject) throws {
        var c = CLIPVisionConfiguration()
        c.modelType = try json.string("model_type") ?? c.modelType
        c.hiddenSize = try json.int("hidden_size") ?? c.hiddenSize
        c.intermediateSize = try json.int("intermediate_size") ?? c.intermediateSize
        c.numHiddenLayers = try json.int("num_hidden_layers") ?? c.numHiddenLayers
        c.numAttentionHeads = try json.int("num_attention_heads") ?? c.numAttentionHeads
        c.numChannels = try json.int("num_channels") ?? c.numChannels
        c.imageSize = try json.int("image_size") ?? c.imageSize
        c.patchSize = try json.int("patch_size") ?? c.patchSize
        c.hiddenAct = try json.string("hidden_act") ?? c.hiddenAct
        c.layerNormEps = try json.double("layer_norm_eps").map(Float.init) ?? c.layerNormEps
        self = c
    }
}

extension LlamaConfiguration {
    init(json: JSONObject) throws {
        var c = LlamaConfiguration()
        c.modelType = try json.string("model_type") ?? c.modelType
        c.vocabSize = try json.int("vocab_size") ?? c.vocabSize
        c.hiddenSize = try json.int("hidden_size") ?? c.hiddenSize
        c.intermediateSize = try json.int("intermediate_size") ?? c.intermediateSize
        c.numHiddenLayers = try json.int("num_hidden_layers") ?? c.numHiddenLayers
        c.numAttentionHeads = try json.int("num_attention_heads") ?? c.numAttentionHeads
        c.numKeyValueHeads = try json.int("num_key_value_heads") ?? c.numAttentionHeads
        c.headDim = try json.int("head_dim") ?? (c.numAttentionHeads > 0 ? c.hiddenSize / c.numAttentionHeads : 0)
        c.hiddenAct = try json.string("hidden_act") ?? c.hiddenAct
        c.maxPositionEmbeddings = try json.int("max_position_embeddings") ?? c.maxPositionEmbeddings
        c.rmsNormEps = try json.double("rms_norm_eps").map(Float.init) ?? c.rmsNormEps
        c.attentionBias = try json.bool("attention_bias") ?? c.attentionBias
        c.mlpBias = try json.bool("mlp_bias") ?? c.mlpBias
        c.tieWordEmbeddings = try json.bool("tie_word_embeddings") ?? c.tieWordEmbeddings
        c.bosTokenId = try json.int("bos_token_id") ?? c.bosTokenId
        if let eos = try json.intOrIntList("eos_token_id") { c.eosTokenIds = eos }
        // Rotary settings: transformers 5 writes rope_parameters, older files rope_theta/rope_scaling.
        var ropeType = "default"
        if let rope = try json.object("rope_parameters") {
            c.ropeTheta = try rope.double("rope_theta") ?? c.ropeTheta
            ropeType = try rope.string("rope_type") ?? rope.string("type") ?? ropeType
        }
        c.ropeTheta = try json.double("rope_theta") ?? c.ropeTheta
        if let scaling = try json.object("rope_scaling") {
            ropeType = try scaling.string("rope_type") ?? scaling.string("type") ?? ropeType
        }
        if ropeType != "default" {
            throw ConfigIssue("text_config rope type \"\(ropeType)\" is not supported (only unscaled rotary embeddings)")
        }
        if c.attentionBias { throw ConfigIssue("text_config.attention_bias = true is not supported") }
        if c.mlpBias { throw ConfigIssue("text_config.mlp_bias = true is not supported") }
        self = c
    }
}

/// A problem found while reading config.json (wrapped with the file name by the caller).
struct ConfigIssue: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Typed look-ups in a decoded JSON object; `null` counts as absent, a wrong type is an error.
struct JSONObject {
    let storage: [String: Any]
    init(_ storage: [String: Any]) { self.storage = storage }

    private func value(_ key: String) -> Any? {
        guard let v = storage[key], !(v is NSNull) else { return nil }
        return v
    }

    private func number(_ key: String) throws -> NSNumber? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber else { throw ConfigIssue("\(key) should be a number") }
        return n
    }

    func int(_ key: String) throws -> Int? {
        guard let n = try number(key) else { return nil }
        guard Double(n.int64Value) == n.doubleValue else { throw ConfigIssue("\(key) should be an integer, found \(n)") }
        return n.intValue
    }

    func double(_ key: String) throws -> Double? { try number(key)?.doubleValue }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v as? Bool else { throw ConfigIssue("\(key) should be true or false") }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw ConfigIssue("\(key) should be a string") }
        return s
    }

    func object(_ key: String) throws -> JSONObject? {
        guard let v = value(key) else { return nil }
        guard let d = v as? [String: Any] else { throw ConfigIssue("\(key) should be an object") }
        return JSONObject(d)
    }

    func intOrIntList(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        if let list = v as? [Any] {
            return try list.map { item in
                guard let n = item as? NSNumber, Double(n.int64Value) == n.doubleValue else {
                    throw ConfigIssue("\(key) should be an integer or a list of integers")
                }
                return n.intValue
            }
        }
        guard let n = try int(key) else { return nil }
        return [n]
    }
}
