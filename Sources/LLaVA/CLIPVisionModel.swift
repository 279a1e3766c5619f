import Checkpoint
import Foundation
import Kernels

// CLIP vision tower as in transformers' modeling_clip.py:
// CLIPVisionEmbeddings → pre_layrnorm → CLIPEncoder (CLIPEncoderLayer × N). post_layernorm
// is never used by LLaVA and is not loaded. Activations are Float32.
// CLIPAttention, CLIPMLP and CLIPEncoderLayer also make up the text tower (CLIPTextModel.swift).

/// What a CLIP encoder layer reads from its tower's config (CLIPVisionConfig, CLIPTextConfig).
protocol CLIPEncoderConfiguration {
    var hiddenSize: Int { get }
    var intermediateSize: Int { get }
    var numAttentionHeads: Int { get }
    var headDim: Int { get }
    var hiddenAct: String { get }
    var layerNormEps: Float { get }
}

extension CLIPVisionConfiguration: CLIPEncoderConfiguration {}

/// `self_attn` of a CLIPEncoderLayer: q/k/v/out projections, all with biases.
final class CLIPAttention {
    let qProj: Weight, kProj: Weight, vProj: Weight, outProj: Weight
    let qBias: [Float], kBias: [Float], vBias: [Float], outBias: [Float]
    let shape: AttentionShape

    init(_ ckpt: any TensorSource, _ load: any LinearLoading, prefix: String, config: some CLIPEncoderConfiguration) throws {
        let c = config.hiddenSize
        qProj = try load(prefix + "q_proj.weight", shape: [c, c])
        kProj = try load(prefix + "k_proj.weight", shape: [c, c])
        vProj = try load(prefix + "v_proj.weight", shape: [c, c])
        outProj = try load(prefix + "out_proj.weight", shape: [c, c])
        qBias = try ckpt.floats(prefix + "q_proj.bias", shape: [c])
        kBias = try ckpt.floats(prefix + "k_proj.bias", shape: [c])
        vBias = try ckpt.floats(prefix + "v_proj.bias", shape: [c])
        outBias = try ckpt.floats(prefix + "out_proj.bias", shape: [c])
        shape = AttentionShape(heads: config.numAttentionHeads, kvHeads: config.numAttentionHeads, headDim: config.headDim)
    }

    /// out = out_proj(softmax(q kᵀ · d^-½ + keyBias) v). Leaves the keys in `state.k`. `causal`:
    /// token i attends to tokens 0...i only (the text tower's causal mask).
    func callAsFunction(_ x: Matrix, state: CLIPRunState, keyBias: [Float]?, clsAttention: UnsafeMutablePointer<Float>?,
                        causal: Bool = false) -> Matrix {
        linear(x, qProj, bias: qBias, into: state.q)
        linear(x, kProj, bias: kBias, into: state.k)
        linear(x, vProj, bias: vBias, into: state.v)
        let t = x.rows, c = x.cols
        state.context.rows = t
        func run(_ bias: UnsafePointer<Float>?) {
            attention(q: state.q.data, ldq: c, k: state.k.data, ldk: c, v: state.v.data, ldv: c,
                      out: state.context.data, ldo: c, queries: t, keys: t, shape: shape,
                      causalOffset: causal ? 0 : nil, keyBias: bias, clsAttention: clsAttention)
        }
        if let keyBias { keyBias.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
        linear(state.context, outProj, bias: outBias, into: state.attnOut)
        return state.attnOut
    }
}

/// `mlp` of a CLIPEncoderLayer: fc1 → activation → fc2.
final class CLIPMLP {
    let fc1: Weight, fc2: Weight
    let fc1Bias: [Float], fc2Bias: [Float]
    let activation: Activation

    init(_ ckpt: any TensorSource, _ load: any LinearLoading, prefix: String, config: some CLIPEncoderConfiguration) throws {
        let c = config.hiddenSize, i = config.intermediateSize
        fc1 = try load(prefix + "fc1.weight", shape: [i, c])
        fc2 = try load(prefix + "fc2.weight", shape: [c, i])
        fc1Bias = try ckpt.floats(prefix + "fc1.bias", shape: [i])
        fc2Bias = try ckpt.floats(prefix + "fc2.bias", shape: [c])
        activation = Activation(huggingFaceName: config.hiddenAct) ?? .quickGelu
    }

    func callAsFunction(_ x: Matrix, state: CLIPRunState) -> Matrix {
        linear(x, fc1, bias: fc1Bias, into: state.hidden)
        activate(state.hidden, activation)
        linear(state.hidden, fc2, bias: fc2Bias, into: state.mlpOut)
        return state.mlpOut
    }
}

/// What a vision-token merger needs from the tower at one layer, and what it may change.
/// The tower calls the hook either after the whole layer or between attention and MLP.
public protocol VisionMergeHook: AnyObject {
    /// Where the merge sits and which metric it uses.
    var placement: MergePlacement { get }
    /// Whether the hook wants row 0 (CLS) of the attention map, averaged over heads.
    var needsCLSAttention: Bool { get }
    /// Additive per-key attention bias for the next layer (log token sizes), or nil.
    var attentionKeyBias: [Float]? { get }
    /// Merges `tokens` after layer `layer`; returns the (possibly shorter) token matrix.
    /// `receivedAttention` is given when `needsReceivedAttention(layer:)`.
    func merge(layer: Int, tokens: Matrix, metric: Matrix, clsAttention: [Float]?, receivedAttention: [Float]?) -> Matrix
    /// Whether the merge after the whole layer `layer` takes that layer's keys averaged over heads
    /// as its metric instead of the layer output.
    func needsKeys(layer: Int) -> Bool
    /// Whether the merge after layer `layer` wants the attention each token received there
    /// (probabilities averaged over heads and queries).
    func needsReceivedAttention(layer: Int) -> Bool
}

extension VisionMergeHook {
    public func needsKeys(layer: Int) -> Bool { false }
    public func needsReceivedAttention(layer: Int) -> Bool { false }
}

public enum MergePlacement: Sendable {
    /// After the whole encoder layer, metric = the layer output (the official LLaVA wiring).
    case afterLayer
    /// Between attention and MLP, metric = the keys averaged over heads (the paper's Fig. 2, ToMe).
    case betweenAttentionAndMLP
}

/// One pre-LN transformer block.
final class CLIPEncoderLayer {
    let layerNorm1: (weight: [Float], bias: [Float])
    let layerNorm2: (weight: [Float], bias: [Float])
    let selfAttn: CLIPAttention
    let mlp: CLIPMLP
    let eps: Float
    let heads: Int

    init(_ ckpt: any TensorSource, _ load: any LinearLoading, prefix: String, config: some CLIPEncoderConfiguration) throws {
        let c = config.hiddenSize
        layerNorm1 = (try ckpt.floats(prefix + "layer_norm1.weight", shape: [c]), try ckpt.floats(prefix + "layer_norm1.bias", shape: [c]))
        layerNorm2 = (try ckpt.floats(prefix + "layer_norm2.weight", shape: [c]), try ckpt.floats(prefix + "layer_norm2.bias", shape: [c]))
        selfAttn = try CLIPAttention(ckpt, load, prefix: prefix + "self_attn.", config: config)
        mlp = try CLIPMLP(ckpt, load, prefix: prefix + "mlp.", config: config)
        eps = config.layerNormEps
        heads = config.numAttentionHeads
    }

    /// h ← h + attn(LN1(h)); [merge]; h ← h + mlp(LN2(h)); [merge]. Returns the new hidden states
    /// (a different matrix if a merge shortened them).
    func callAsFunction(_ h: Matrix, index: Int, state: CLIPRunState, merger: VisionMergeHook?) -> Matrix {
        var h = h
        StageTimer.setLayer(index)
        layerNorm(h, weight: layerNorm1.weight, bias: layerNorm1.bias, eps: eps, into: state.normed)
        var cls: [Float]? = nil
        if merger?.needsCLSAttention == true {
            cls = [Float](repeating: 0, count: h.rows)
        }
        let attnOut: Matrix = stage("attention") {
            if cls != nil {
                return cls!.withUnsafeMutableBufferPointer {
                    selfAttn(state.normed, state: state, keyBias: merger?.attentionKeyBias, clsAttention: $0.baseAddress)
                }
            }
            return selfAttn(state.normed, state: state, keyBias: merger?.attentionKeyBias, clsAttention: nil)
        }
        addInPlace(h, attnOut)
        var keys: Matrix? = nil
        if let merger, merger.placement == .afterLayer, merger.needsKeys(layer: index) {
            keys = stage("merge") { meanOverHeads(state.k, heads: heads) }
        }
        var received: [Float]? = nil
        if let merger, merger.needsReceivedAttention(layer: index) {
            received = stage("merge") {
                meanReceivedAttention(q: state.q, k: state.k, shape: selfAttn.shape, keyBias: merger.attentionKeyBias)
            }
        }
        if let merger, merger.placement == .betweenAttentionAndMLP {
            h = stage("merge") {
                merger.merge(layer: index, tokens: h, metric: meanOverHeads(state.k, heads: heads), clsAttention: cls,
                             receivedAttention: received)
            }
        }
        layerNorm(h, weight: layerNorm2.weight, bias: layerNorm2.bias, eps: eps, into: state.normed)
        addInPlace(h, stage("mlp") { mlp(state.normed, state: state) })
        if let merger, merger.placement == .afterLayer {
            h = stage("merge") { merger.merge(layer: index, tokens: h, metric: keys ?? h, clsAttention: cls, receivedAttention: received) }
        }
        return h
    }

    /// The text tower's layer: h ← h + attn(LN1(h)) with the causal mask and the additive per-key
    /// `keyBias` (the padding mask), then h ← h + mlp(LN2(h)). Updates and returns `h`.
    func callAsFunction(_ h: Matrix, state: CLIPRunState, causal: Bool, keyBias: [Float]?) -> Matrix {
        layerNorm(h, weight: layerNorm1.weight, bias: layerNorm1.bias, eps: eps, into: state.normed)
        addInPlace(h, selfAttn(state.normed, state: state, keyBias: keyBias, clsAttention: nil, causal: causal))
        layerNorm(h, weight: layerNorm2.weight, bias: layerNorm2.bias, eps: eps, into: state.normed)
        addInPlace(h, mlp(state.normed, state: state))
        return h
    }
}

/// Keys [T, heads·d] → their mean over heads [T, d] (ToMe's metric).
func meanOverHeads(_ k: Matrix, heads: Int) -> Matrix {
    let d = k.cols / heads
    let out = Matrix(rows: k.rows, cols: d)
    let inv = 1 / Float(heads)
    parallelFor(k.rows, minPerThread: 32, workPerItem: k.cols) { range in
        for t in range {
            let src = k.row(t), dst = out.row(t)
            for h in 0..<heads {
                for j in 0..<d { dst[j] += src[h * d + j] }
            }
            for j in 0..<d { dst[j] *= inv }
        }
    }
    return out
}

/// The attention each token receives, [T]: softmax(q kᵀ · scale + keyBias) per head, averaged
/// over heads and query rows (recomputed from the layer's q and k; only merges that ask for it pay).
func meanReceivedAttention(q: Matrix, k: Matrix, shape: AttentionShape, keyBias: [Float]?) -> [Float] {
    let t = q.rows, d = shape.headDim
    var total = [Float](repeating: 0, count: t)
    func head(_ m: Matrix, _ h: Int) -> Matrix {
        let out = Matrix(rows: t, cols: d)
        for r in 0..<t { out.row(r).update(from: m.row(r) + h * d, count: d) }
        return out
    }
    for h in 0..<shape.heads {
        let scores = matmulTransposed(head(q, h), head(k, h))
        for i in 0..<scores.count { scores.data[i] *= shape.scale }
        if let keyBias {
            for r in 0..<t { for j in 0..<t { scores[r, j] += keyBias[j] } }
        }
        softmaxRows(scores)
        for r in 0..<t { for j in 0..<t { total[j] += scores[r, j] } }
    }
    let inv = 1 / Float(shape.heads * t)
    return total.map { $0 * inv }
}

/// Buffers for one pass of the tower, allocated once per image for the initial token count.
final class CLIPRunState {
    let normed, q, k, v, context, attnOut, hidden, mlpOut: Matrix

    init(tokens t: Int, config: some CLIPEncoderConfiguration) {
        let c = config.hiddenSize
        normed = Matrix(rows: t, cols: c)
        q = Matrix(rows: t, cols: c)
        k = Matrix(rows: t, cols: c)
        v = Matrix(rows: t, cols: c)
        context = Matrix(rows: t, cols: c)
        attnOut = Matrix(rows: t, cols: c)
        hidden = Matrix(rows: t, cols: config.intermediateSize)
        mlpOut = Matrix(rows: t, cols: c)
    }
}

/// `vision_tower.vision_model`: embeddings, pre-LN and the encoder layers that LLaVA needs.
public final class CLIPVisionModel {
    public let config: CLIPVisionConfiguration
    let classEmbedding: [Float]
    let patchEmbedding: Weight      // [C, 3·P·P], the conv kernel flattened (channel, ky, kx)
    let positionEmbedding: Weight   // [patches + 1, C]
    let preLayrnorm: (weight: [Float], bias: [Float])
    let layers: [CLIPEncoderLayer]
    /// The q/k half of layer `layerCount` (PruMerge+), when the tower and the weights have it.
    let nextLayerProbe: CLIPAttentionProbe?

    /// Loads the first `layerCount` encoder layers (layers past the feature layer are never run).
    init(_ ckpt: CheckpointFolder, config: CLIPVisionConfiguration, layerCount: Int,
         quantization: WeightQuantization = .none) throws {
        self.config = config
        let load = LinearLoader(checkpoint: ckpt, quantization: quantization)
        let p = ckpt.weightNames.visionTower
        let c = config.hiddenSize, ps = config.patchSize
        classEmbedding = try ckpt.floats(p + "embeddings.class_embedding", shape: [c])
        patchEmbedding = try ckpt.weight(p + "embeddings.patch_embedding.weight", shape: [c, config.numChannels, ps, ps])
        positionEmbedding = try ckpt.weight(p + "embeddings.position_embedding.weight", shape: [config.numPatches + 1, c])
        preLayrnorm = (try ckpt.floats(p + "pre_layrnorm.weight", shape: [c]), try ckpt.floats(p + "pre_layrnorm.bias", shape: [c]))
        layers = try (0..<layerCount).map { try CLIPEncoderLayer(ckpt, load, prefix: p + "encoder.layers.\($0).", config: config) }
        nextLayerProbe = layerCount < config.numHiddenLayers && ckpt.layerCount(prefix: p + "encoder.layers.") > layerCount
            ? try CLIPAttentionProbe(ckpt, load, prefix: p + "encoder.layers.\(layerCount).", config: config) : nil
    }

    /// CLIPVisionEmbeddings + pre_layrnorm: [CLS; patches] + positions, normalised. `pixels` is CHW.
    func embeddings(_ pixels: [Float]) -> Matrix {
        let c = config.hiddenSize, ps = config.patchSize, side = config.imageSize, g = config.patchesPerSide
        let patchDim = 3 * ps * ps
        let patches = Matrix(uninitializedRows: g * g, cols: patchDim)  // every value written below
        pixels.withUnsafeBufferPointer { px in
            parallelFor(g, workPerItem: g * patchDim) { patchRows in
                for py in patchRows {
                    for pxi in 0..<g {
                        let row = patches.row(py * g + pxi)
                        for ch in 0..<3 {
                            for ky in 0..<ps {
                                let src = px.baseAddress! + ch * side * side + (py * ps + ky) * side + pxi * ps
                                (row + ch * ps * ps + ky * ps).update(from: src, count: ps)
                            }
                        }
                    }
                }
            }
        }
        let projected = linear(patches, patchEmbedding)
        // Row 0 is CLS, row r the projection of patch r − 1; each plus its position embedding.
        let h = Matrix(uninitializedRows: g * g + 1, cols: c)
        classEmbedding.withUnsafeBufferPointer { cls in
            parallelFor(g * g + 1, minPerThread: 16, workPerItem: 2 * c) { rows in
                positionEmbedding.widenRows(rows.lowerBound, count: rows.count, into: h.row(rows.lowerBound))
                for r in rows {
                    let dst = h.row(r), src = r == 0 ? cls.baseAddress! : UnsafePointer(projected.row(r - 1))
                    for j in 0..<c { dst[j] += src[j] }
                }
            }
        }
        layerNorm(h, weight: preLayrnorm.weight, bias: preLayrnorm.bias, eps: config.layerNormEps, into: h)
        return h
    }

    /// Runs the tower and returns the requested hidden states (index 0 = embeddings output,
    /// i = output of layer i, after that layer's merge).
    public func callAsFunction(pixels: [Float], hiddenStates wanted: [Int], merger: VisionMergeHook? = nil) -> [Int: Matrix] {
        precondition(pixels.count == 3 * config.imageSize * config.imageSize)
        var h = stage("embeddings") { embeddings(pixels) }
        let state = CLIPRunState(tokens: h.rows, config: config)
        var out: [Int: Matrix] = [:]
        if wanted.contains(0) { out[0] = h.copy() }
        let last = wanted.max() ?? 0
        for i in 0..<min(last, layers.count) {
            h = layers[i](h, index: i, state: state, merger: merger)
            if wanted.contains(i + 1) { out[i + 1] = i + 1 == last ? h : h.copy() }
        }
        StageTimer.setLayer(nil)
        return out
    }
}
