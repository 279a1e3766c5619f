import Checkpoint
import Foundation
import Kernels

// CLIP text tower as in transformers' modeling_clip.py (CLIPTextModelWithProjection):
// CLIPTextEmbeddings → CLIPEncoder (the vision tower's CLIPEncoderLayer with the causal mask and
// the attention_mask's padding mask) → final_layer_norm → the pooled row → text_projection.
// Tensor names are CLIPModel's (`text_model.*`, `text_projection.weight`). Activations are Float32.

/// `text_model.embeddings`: token_embedding[id] + position_embedding[position].
final class CLIPTextEmbeddings {
    let tokenEmbedding: Weight     // [vocab_size, C]
    let positionEmbedding: Weight  // [max_position_embeddings, C]

    init(_ source: any TensorSource, prefix: String, config: CLIPTextConfiguration) throws {
        let c = config.hiddenSize
        tokenEmbedding = try source.weight(prefix + "token_embedding.weight", shape: [config.vocabSize, c])
        positionEmbedding = try source.weight(prefix + "position_embedding.weight", shape: [config.maxPositionEmbeddings, c])
    }

    /// [T, C] for `ids` at positions 0..<T.
    func callAsFunction(_ ids: [Int]) -> Matrix {
        let h = Matrix(uninitializedRows: ids.count, cols: tokenEmbedding.cols)
        let positions = Matrix(uninitializedRows: ids.count, cols: tokenEmbedding.cols)
        for (t, id) in ids.enumerated() { tokenEmbedding.widenRows(id, count: 1, into: h.row(t)) }
        positionEmbedding.widenRows(0, count: ids.count, into: positions.data)
        addInPlace(h, positions)
        return h
    }
}

/// `text_model` (CLIPTextModel's transformer): embeddings, encoder layers, final_layer_norm and
/// the pooled row.
final class CLIPTextTransformer {
    let config: CLIPTextConfiguration
    let embeddings: CLIPTextEmbeddings
    let layers: [CLIPEncoderLayer]
    let finalLayerNorm: (weight: [Float], bias: [Float])

    init(_ source: any TensorSource, config: CLIPTextConfiguration) throws {
        self.config = config
        let p = "text_model.", c = config.hiddenSize
        let load = StoredLinearLoader(source: source)
        embeddings = try CLIPTextEmbeddings(source, prefix: p + "embeddings.", config: config)
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(source, load, prefix: p + "encoder.layers.\($0).", config: config)
        }
        finalLayerNorm = (try source.floats(p + "final_layer_norm.weight", shape: [c]),
                          try source.floats(p + "final_layer_norm.bias", shape: [c]))
    }

    /// The encoder's output for one sequence, [T, C] (before final_layer_norm). Every token
    /// attends to itself and the tokens before it whose `attentionMask` is not 0 (masked keys get
    /// the lowest Float32, as transformers' eager mask adds it).
    func encoderOutput(inputIds: [Int], attentionMask: [Int]) -> Matrix {
        var h = embeddings(inputIds)
        let state = CLIPRunState(tokens: h.rows, config: config)
        let keyBias = attentionMask.contains(0) ? attentionMask.map { $0 == 0 ? -Float.greatestFiniteMagnitude : 0 } : nil
        for layer in layers {
            h = layer(h, state: state, causal: true, keyBias: keyBias)
        }
        return h
    }

    /// `pooler_output`: final_layer_norm of the row `pooledPosition` picks, [1, C].
    func pooledOutput(inputIds: [Int], attentionMask: [Int]) -> Matrix {
        let h = encoderOutput(inputIds: inputIds, attentionMask: attentionMask)
        let row = h.gatherRows([Self.pooledPosition(inputIds, eosTokenId: config.eosTokenId)])
        layerNorm(row, weight: finalLayerNorm.weight, bias: finalLayerNorm.bias, eps: config.layerNormEps, into: row)
        return row
    }

    /// transformers' pooling rule (CLIPTextModel.forward). With `eos_token_id` 2, the value in
    /// configs made before transformers PR #24773 (openai's among them), the row of the largest
    /// id: the EOS token is the largest id of CLIP's vocabulary, but in a CDPruner segment
    /// without one it is simply the largest token. Otherwise the first row holding
    /// `eos_token_id`, or row 0 when there is none. Ties go to the first row (torch.argmax).
    static func pooledPosition(_ ids: [Int], eosTokenId: Int) -> Int {
        if eosTokenId == 2 {
            var best = 0
            for (i, id) in ids.enumerated() where id > ids[best] { best = i }
            return best
        }
        return ids.firstIndex(of: eosTokenId) ?? 0
    }
}

/// `CLIPTextModelWithProjection`: `text_embeds` = text_projection(pooled output), no bias.
public final class CLIPTextModelWithProjection {
    public let config: CLIPTextConfiguration
    let textModel: CLIPTextTransformer
    let textProjection: Weight  // [projection_dim, C]

    /// Maps the tensors of `source` (CLIPModel names); throws the first one missing or of the
    /// wrong shape.
    public init(_ source: any TensorSource, config: CLIPTextConfiguration) throws {
        self.config = config
        textModel = try CLIPTextTransformer(source, config: config)
        textProjection = try source.weight("text_projection.weight", shape: [config.projectionDim, config.hiddenSize])
    }

    /// `text_embeds` [projection_dim] of one sequence of 1 to max_position_embeddings ids, each
    /// below vocab_size. `attentionMask`: 1 for a token, 0 for padding (nil: all tokens).
    public func textEmbeds(inputIds: [Int], attentionMask: [Int]? = nil) -> [Float] {
        precondition(!inputIds.isEmpty && inputIds.count <= config.maxPositionEmbeddings,
                     "CLIP text: \(inputIds.count) tokens, expected 1 to \(config.maxPositionEmbeddings)")
        precondition(inputIds.allSatisfy { $0 >= 0 && $0 < config.vocabSize }, "CLIP text: a token id outside the vocabulary")
        precondition(attentionMask.map { $0.count == inputIds.count } ?? true, "CLIP text: attention mask and ids differ in length")
        let mask = attentionMask ?? [Int](repeating: 1, count: inputIds.count)
        let pooled = textModel.pooledOutput(inputIds: inputIds, attentionMask: mask)
        return linear(pooled, textProjection).rowArray(0)
    }

    /// CDPruner's text embedding (`CLIPVisionTower.forward` in the official
    /// `llava/model/multimodal_encoder/clip_encoder.py`): the ids of the whole question, padded
    /// with id 0 and mask 0 to a multiple of max_position_embeddings and cut into segments of that
    /// length, each through the tower. Returns [segments, projection_dim].
    public func segmentedTextEmbeds(inputIds: [Int]) -> Matrix {
        let segments = Self.segments(inputIds, length: config.maxPositionEmbeddings)
        let out = Matrix(rows: segments.count, cols: config.projectionDim)
        for (s, segment) in segments.enumerated() {
            let embeds = textEmbeds(inputIds: segment.ids, attentionMask: segment.mask)
            out.row(s).update(from: embeds, count: embeds.count)
        }
        return out
    }

    /// The segments of `ids` as CDPruner makes them: ⌊(n − 1) / length⌋ + 1 of `length` ids each,
    /// the last padded with id 0 and mask 0.
    public static func segments(_ ids: [Int], length: Int) -> [(ids: [Int], mask: [Int])] {
        precondition(!ids.isEmpty && length > 0)
        let count = (ids.count - 1) / length + 1
        let padding = count * length - ids.count
        let padded = ids + [Int](repeating: 0, count: padding)
        let mask = [Int](repeating: 1, count: ids.count) + [Int](repeating: 0, count: padding)
        return (0..<count).map { s in
            (Array(padded[s * length..<(s + 1) * length]), Array(mask[s * length..<(s + 1) * length]))
        }
    }
}
