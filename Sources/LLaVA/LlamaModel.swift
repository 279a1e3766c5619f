import Checkpoint
import Foundation
import Kernels

// Llama decoder as in transformers' modeling_llama.py: embed_tokens → LlamaDecoderLayer × N
// → norm → lm_head. RMSNorm, rotary embeddings in the half-split (rotate_half) layout,
// SiLU-gated MLP, grouped-query attention, a KV cache. Activations are Float32.

/// Keys and values of every layer for the positions seen so far.
public final class KVCache {
    public private(set) var keys: [Matrix]
    public private(set) var values: [Matrix]
    /// Number of positions stored.
    public var length = 0
    let width: Int

    init(layers: Int, width: Int, capacity: Int) {
        self.width = width
        keys = (0..<layers).map { _ in Matrix(rows: capacity, cols: width) }
        values = (0..<layers).map { _ in Matrix(rows: capacity, cols: width) }
    }

    public var capacity: Int { keys.first?.capacityRows ?? 0 }

    /// Makes room for `needed` positions, keeping what is stored.
    func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        let newCapacity = max(needed, capacity * 2)
        func grow(_ m: Matrix) -> Matrix {
            let n = Matrix(rows: newCapacity, cols: width)
            n.data.update(from: m.data, count: length * width)
            return n
        }
        keys = keys.map(grow)
        values = values.map(grow)
    }

    /// Forgets positions from `length` on (used to roll back to a shared prefix).
    public func truncate(to length: Int) { self.length = min(self.length, max(0, length)) }
}

/// Rotary position embeddings: cos/sin tables built on demand, applied head by head with
/// dimension j paired with j + d/2.
final class LlamaRotaryEmbedding {
    let headDim: Int
    let invFreq: [Float]
    private var cosTable: [Float] = []
    private var sinTable: [Float] = []
    private var positions = 0

    init(headDim: Int, theta: Double) {
        self.headDim = headDim
        invFreq = (0..<headDim / 2).map { i in
            1 / Float(pow(theta, Double(Float(2 * i) / Float(headDim))))
        }
    }

    private func ensure(_ count: Int) {
        guard count > positions else { return }
        let half = headDim / 2
        let newCount = max(count, positions * 2, 64)
        cosTable.reserveCapacity(newCount * half)
        for p in positions..<newCount {
            for i in 0..<half {
                let angle = Float(p) * invFreq[i]
                cosTable.append(Float(cos(Double(angle))))
                sinTable.append(Float(sin(Double(angle))))
            }
        }
        positions = newCount
    }

    /// Rotates every head of rows `0..<x.rows` of x, row r sitting at position start + r.
    func apply(_ x: Matrix, heads: Int, start: Int) {
        ensure(start + x.rows)
        let half = headDim / 2
        cosTable.withUnsafeBufferPointer { cosT in
            sinTable.withUnsafeBufferPointer { sinT in
                parallelFor(x.rows, minPerThread: 16) { range in
                    for r in range {
                        let c = cosT.baseAddress! + (start + r) * half
                        let s = sinT.baseAddress! + (start + r) * half
                        let row = x.row(r)
                        for h in 0..<heads {
                            let v = row + h * headDim
                            for i in 0..<half {
                                let a = v[i], b = v[i + half]
                                v[i] = a * c[i] - b * s[i]
                                v[i + half] = b * c[i] + a * s[i]
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Scratch buffers for a forward pass of up to `capacity` tokens.
final class LlamaRunState {
    let capacity: Int
    let h, normed, q, k, v, context, attnOut, gate, up, down: Matrix

    init(capacity m: Int, config: LlamaConfiguration) {
        capacity = m
        let hd = config.hiddenSize, qd = config.numAttentionHeads * config.headDim
        let kvd = config.numKeyValueHeads * config.headDim
        h = Matrix(rows: m, cols: hd)
        normed = Matrix(rows: m, cols: hd)
        q = Matrix(rows: m, cols: qd)
        k = Matrix(rows: m, cols: kvd)
        v = Matrix(rows: m, cols: kvd)
        context = Matrix(rows: m, cols: qd)
        attnOut = Matrix(rows: m, cols: hd)
        gate = Matrix(rows: m, cols: config.intermediateSize)
        up = Matrix(rows: m, cols: config.intermediateSize)
        down = Matrix(rows: m, cols: hd)
    }
}

final class LlamaAttention {
    let qProj: Weight, kProj: Weight, vProj: Weight, oProj: Weight
    let shape: AttentionShape

    init(_ load: LinearLoader, prefix: String, config: LlamaConfiguration) throws {
        let hd = config.hiddenSize, qd = config.numAttentionHeads * config.headDim
        let kvd = config.numKeyValueHeads * config.headDim
        qProj = try load(prefix + "q_proj.weight", shape: [qd, hd])
        kProj = try load(prefix + "k_proj.weight", shape: [kvd, hd])
        vProj = try load(prefix + "v_proj.weight", shape: [kvd, hd])
        oProj = try load(prefix + "o_proj.weight", shape: [hd, qd])
        shape = AttentionShape(heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim)
    }

    func callAsFunction(_ x: Matrix, layer: Int, cache: KVCache, rope: LlamaRotaryEmbedding, state: LlamaRunState) -> Matrix {
        let m = x.rows, start = cache.length
        linear(x, qProj, into: state.q)
        linear(x, kProj, into: state.k)
        linear(x, vProj, into: state.v)
        rope.apply(state.q, heads: shape.heads, start: start)
        rope.apply(state.k, heads: shape.kvHeads, start: start)
        let keys = cache.keys[layer], values = cache.values[layer]
        let w = cache.width
        (keys.data + start * w).update(from: state.k.data, count: m * w)
        (values.data + start * w).update(from: state.v.data, count: m * w)
        state.context.rows = m
        attention(q: state.q.data, ldq: state.q.cols, k: keys.data, ldk: w, v: values.data, ldv: w,
                  out: state.context.data, ldo: state.context.cols, queries: m, keys: start + m,
                  shape: shape, causalOffset: start)
        linear(state.context, oProj, into: state.attnOut)
        return state.attnOut
    }
}

final class LlamaMLP {
    let gateProj: Weight, upProj: Weight, downProj: Weight

    init(_ load: LinearLoader, prefix: String, config: LlamaConfiguration) throws {
        let hd = config.hiddenSize, i = config.intermediateSize
        gateProj = try load(prefix + "gate_proj.weight", shape: [i, hd])
        upProj = try load(prefix + "up_proj.weight", shape: [i, hd])
        downProj = try load(prefix + "down_proj.weight", shape: [hd, i])
    }

    func callAsFunction(_ x: Matrix, state: LlamaRunState) -> Matrix {
        linear(x, gateProj, into: state.gate)
        linear(x, upProj, into: state.up)
        siluMul(state.gate, state.up)
        linear(state.gate, downProj, into: state.down)
        return state.down
    }
}

final class LlamaDecoderLayer {
    let inputLayernorm: [Float], postAttentionLayernorm: [Float]
    let selfAttn: LlamaAttention
    let mlp: LlamaMLP
    let eps: Float

    init(_ ckpt: CheckpointFolder, _ load: LinearLoader, prefix: String, config: LlamaConfiguration) throws {
        let hd = config.hiddenSize
        inputLayernorm = try ckpt.floats(prefix + "input_layernorm.weight", shape: [hd])
        postAttentionLayernorm = try ckpt.floats(prefix + "post_attention_layernorm.weight", shape: [hd])
        selfAttn = try LlamaAttention(load, prefix: prefix + "self_attn.", config: config)
        mlp = try LlamaMLP(load, prefix: prefix + "mlp.", config: config)
        eps = config.rmsNormEps
    }

    func callAsFunction(_ h: Matrix, layer: Int, cache: KVCache, rope: LlamaRotaryEmbedding, state: LlamaRunState) {
        rmsNorm(h, weight: inputLayernorm, eps: eps, into: state.normed)
        addInPlace(h, selfAttn(state.normed, layer: layer, cache: cache, rope: rope, state: state))
        rmsNorm(h, weight: postAttentionLayernorm, eps: eps, into: state.normed)
        addInPlace(h, mlp(state.normed, state: state))
    }
}

/// `language_model`: the decoder plus `lm_head`.
public final class LlamaForCausalLM {
    public let config: LlamaConfiguration
    let embedTokens: Weight
    let layers: [LlamaDecoderLayer]
    let norm: [Float]
    let lmHead: Weight
    let rope: LlamaRotaryEmbedding
    private var state: LlamaRunState?

    init(_ ckpt: CheckpointFolder, config: LlamaConfiguration, quantization: WeightQuantization = .none,
         progress: ((Int, Int) -> Void)? = nil) throws {
        self.config = config
        let load = LinearLoader(checkpoint: ckpt, quantization: quantization)
        let p = "language_model.model."
        let v = config.vocabSize, hd = config.hiddenSize
        embedTokens = try ckpt.weight(p + "embed_tokens.weight", shape: [v, hd])
        layers = try (0..<config.numHiddenLayers).map {
            let layer = try LlamaDecoderLayer(ckpt, load, prefix: p + "layers.\($0).", config: config)
            progress?($0 + 1, config.numHiddenLayers)
            return layer
        }
        norm = try ckpt.floats(p + "norm.weight", shape: [hd])
        if ckpt.contains("language_model.lm_head.weight") || !config.tieWordEmbeddings {
            lmHead = try load("language_model.lm_head.weight", shape: [v, hd])
        } else {
            lmHead = embedTokens
        }
        rope = LlamaRotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta)
    }

    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: config.numHiddenLayers, width: config.numKeyValueHeads * config.headDim, capacity: capacity)
    }

    /// The embedding rows of `ids` ([ids.count, hidden]).
    public func embed(_ ids: [Int]) -> Matrix {
        let out = Matrix(rows: ids.count, cols: config.hiddenSize)
        for (r, id) in ids.enumerated() { embedTokens.widenRows(id, count: 1, into: out.row(r)) }
        return out
    }

    /// Runs `embeddings` ([M, hidden]) at positions cache.length ..< cache.length + M, appends
    /// their keys/values to the cache and returns the logits of the last position.
    public func forward(_ embeddings: Matrix, cache: KVCache) -> [Float] {
        let m = embeddings.rows
        precondition(m > 0)
        if state == nil || state!.capacity < m { state = LlamaRunState(capacity: m, config: config) }
        let state = state!
        cache.reserve(cache.length + m)
        let h = state.h
        h.rows = m
        h.data.update(from: embeddings.data, count: m * config.hiddenSize)
        stage(m > 1 ? "prefill" : "decode") {
            for (i, layer) in layers.enumerated() {
                layer(h, layer: i, cache: cache, rope: rope, state: state)
            }
        }
        cache.length += m
        // Only the last position's logits are needed.
        let last = Matrix(rows: 1, cols: config.hiddenSize)
        last.data.update(from: h.row(m - 1), count: config.hiddenSize)
        rmsNorm(last, weight: norm, eps: config.rmsNormEps, into: last)
        var logits = [Float](repeating: 0, count: config.vocabSize)
        stage("lm_head") { logits.withUnsafeMutableBufferPointer { gemv(lmHead, last.data, $0.baseAddress!) } }
        return logits
    }
}
