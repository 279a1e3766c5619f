import Checkpoint
import Foundation
import Kernels
import TokenMerging

// Llama decoder as in transformers' modeling_llama.py: embed_tokens → LlamaDecoderLayer × N
// → norm → lm_head. RMSNorm, rotary embeddings in the half-split (rotate_half) layout,
// SiLU-gated MLP, grouped-query attention, a KV cache. Activations are Float32.

/// Keys and values of every layer for the positions seen so far.
public final class KVCache {
    public private(set) var keys: [Matrix]
    public private(set) var values: [Matrix]
    /// Number of positions seen (the next token's position).
    public var length = 0
    /// Per layer, the positions whose keys and values were cut out (FastV); layer l stores
    /// `length - dropped[l]` rows.
    public private(set) var dropped: [Int]
    /// The length when a prompt pass last cut positions out (0 when none was cut).
    private var cutEnd = 0
    let width: Int

    init(layers: Int, width: Int, capacity: Int) {
        self.width = width
        keys = (0..<layers).map { _ in Matrix(rows: capacity, cols: width) }
        values = (0..<layers).map { _ in Matrix(rows: capacity, cols: width) }
        dropped = Array(repeating: 0, count: layers)
    }

    /// Rows of keys and values stored for `layer`.
    public func storedRows(layer: Int) -> Int { length - dropped[layer] }

    /// Records that a pass of `passLength` positions stored only `keptRows` of them in the layers from `firstLayer` on.
    func recordCut(firstLayer: Int, passLength: Int, keptRows: Int) {
        for l in firstLayer..<dropped.count { dropped[l] += passLength - keptRows }
        cutEnd = length + passLength
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

    /// Forgets positions from `length` on (used to roll back to a shared prefix). A cache whose
    /// positions were cut can only be emptied or rolled back to the end of the pass that cut them.
    public func truncate(to length: Int) {
        let n = min(self.length, max(0, length))
        if n == 0 {
            dropped = dropped.map { _ in 0 }
            cutEnd = 0
        }
        precondition(n >= cutEnd, "cannot roll a KV cache back into the prompt pass that cut positions out")
        self.length = n
    }
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

    /// Rotates every head of rows `0..<x.rows` of x, row r sitting at position
    /// `positions[r]` when given, start + r otherwise.
    func apply(_ x: Matrix, heads: Int, start: Int, positions: [Int]? = nil) {
        ensure(positions.map { ($0.max() ?? 0) + 1 } ?? start + x.rows)
        let half = headDim / 2
        cosTable.withUnsafeBufferPointer { cosT in
            sinTable.withUnsafeBufferPointer { sinT in
                parallelFor(x.rows, minPerThread: 16, workPerItem: heads * headDim) { range in
                    for r in range {
                        let p = positions?[r] ?? start + r
                        let c = cosT.baseAddress! + p * half
                        let s = sinT.baseAddress! + p * half
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

    /// Rows of x sit at positions cache.length + r, or at `positions` (FastV's kept tokens); their
    /// keys and values go after the rows the cache holds for this layer.
    func callAsFunction(_ x: Matrix, layer: Int, cache: KVCache, rope: LlamaRotaryEmbedding, state: LlamaRunState,
                        positions: [Int]?) -> Matrix {
        let m = x.rows, start = cache.storedRows(layer: layer)
        linear(x, [qProj, kProj, vProj], into: [state.q, state.k, state.v])
        rope.apply(state.q, heads: shape.heads, start: cache.length, positions: positions)
        rope.apply(state.k, heads: shape.kvHeads, start: cache.length, positions: positions)
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

    /// The attention probabilities of the last query of the previous call (still in `state.q`)
    /// over the `keys` rows the cache holds for `layer`, averaged over heads.
    func lastQueryAttention(layer: Int, keys n: Int, cache: KVCache, state: LlamaRunState) -> [Float] {
        let d = shape.headDim, group = shape.heads / shape.kvHeads, w = cache.width
        let q = state.q.row(state.q.rows - 1), keys = cache.keys[layer].data
        let probabilities = Matrix(rows: shape.heads, cols: n)
        for h in 0..<shape.heads {
            let qh = q + h * d, kh = keys + (h / group) * d, scores = probabilities.row(h)
            for j in 0..<n {
                var dot: Float = 0
                for i in 0..<d { dot += qh[i] * kh[j * w + i] }
                scores[j] = dot * shape.scale
            }
        }
        softmaxRows(probabilities)
        var mean = [Float](repeating: 0, count: n)
        for h in 0..<shape.heads {
            let p = probabilities.row(h)
            for j in 0..<n { mean[j] += p[j] }
        }
        return mean.map { $0 / Float(shape.heads) }
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
        linear(x, [gateProj, upProj], into: [state.gate, state.up])
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

    func callAsFunction(_ h: Matrix, layer: Int, cache: KVCache, rope: LlamaRotaryEmbedding, state: LlamaRunState,
                        positions: [Int]?) {
        rmsNorm(h, weight: inputLayernorm, eps: eps, into: state.normed)
        addInPlace(h, selfAttn(state.normed, layer: layer, cache: cache, rope: rope, state: state, positions: positions))
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
        let p = ckpt.weightNames.languageModel, head = ckpt.weightNames.lmHead + "weight"
        let v = config.vocabSize, hd = config.hiddenSize
        embedTokens = try ckpt.weight(p + "embed_tokens.weight", shape: [v, hd])
        layers = try (0..<config.numHiddenLayers).map {
            let layer = try LlamaDecoderLayer(ckpt, load, prefix: p + "layers.\($0).", config: config)
            progress?($0 + 1, config.numHiddenLayers)
            return layer
        }
        norm = try ckpt.floats(p + "norm.weight", shape: [hd])
        if ckpt.contains(head) || !config.tieWordEmbeddings {
            lmHead = try load(head, shape: [v, hd])
        } else {
            lmHead = embedTokens
        }
        rope = LlamaRotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta)
    }

    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: config.numHiddenLayers, width: config.numKeyValueHeads * config.headDim, capacity: capacity)
    }

    /// FastV's choice before layer `cut.layer`: the candidates the last row attended to most in
    /// the layer before (`kept`, indices into `cut.candidates`) and the rows of the pass that
    /// go on (`rows`: every other row and the kept candidates, in order).
    private func cutRows(_ cut: PrefillCut, passLength m: Int, cache: KVCache, state: LlamaRunState) -> (kept: [Int], rows: [Int]) {
        let previous = cut.layer - 1
        let before = cache.storedRows(layer: previous)
        let attention = layers[previous].selfAttn.lastQueryAttention(layer: previous, keys: before + m, cache: cache, state: state)
        let kept = FastV.select(scores: cut.candidates.map { attention[before + $0] }, keep: cut.keep)
        var keep = [Bool](repeating: true, count: m)
        for c in cut.candidates { keep[c] = false }
        for k in kept { keep[cut.candidates[k]] = true }
        return (kept, (0..<m).filter { keep[$0] })
    }

    /// The embedding rows of `ids` ([ids.count, hidden]).
    public func embed(_ ids: [Int]) -> Matrix {
        let out = Matrix(rows: ids.count, cols: config.hiddenSize)
        for (r, id) in ids.enumerated() { embedTokens.widenRows(id, count: 1, into: out.row(r)) }
        return out
    }

    /// Runs `embeddings` ([M, hidden]) at positions cache.length ..< cache.length + M, appends
    /// their keys/values to the cache and returns the logits of the last position. With a `cut`
    /// (FastV), layers from `cut.layer` on run only the kept rows; `kept` receives the kept
    /// candidates (indices into `cut.candidates`).
    public func forward(_ embeddings: Matrix, cache: KVCache, cut: PrefillCut? = nil) -> [Float] {
        run(embeddings, cache: cache, cut: cut).logits
    }

    /// `forward`, also returning the kept candidates of a cut (indices into `cut.candidates`).
    public func run(_ embeddings: Matrix, cache: KVCache, cut: PrefillCut?) -> (logits: [Float], kept: [Int]?) {
        let m = embeddings.rows
        precondition(m > 0)
        if let cut {
            precondition(cut.layer >= 1 && cut.layer < layers.count, "the cut layer must be between 1 and the last layer")
            precondition(!cut.candidates.contains(m - 1), "the last prompt position must not be a cut candidate")
        }
        if state == nil || state!.capacity < m { state = LlamaRunState(capacity: m, config: config) }
        let state = state!
        cache.reserve(cache.length + m)
        let h = state.h
        h.rows = m
        h.data.update(from: embeddings.data, count: m * config.hiddenSize)
        var positions: [Int]? = nil
        var kept: [Int]? = nil
        stage(m > 1 ? "prefill" : "decode") {
            for (i, layer) in layers.enumerated() {
                if let cut, i == cut.layer {
                    let rows = self.cutRows(cut, passLength: m, cache: cache, state: state)
                    kept = rows.kept
                    // Compact in place: rows are increasing, so row j is filled from row rows[j] ≥ j.
                    for (j, r) in rows.rows.enumerated() where j != r {
                        h.row(j).update(from: h.row(r), count: config.hiddenSize)
                    }
                    h.rows = rows.rows.count
                    positions = rows.rows.map { cache.length + $0 }
                }
                layer(h, layer: i, cache: cache, rope: rope, state: state, positions: positions)
            }
        }
        if let cut { cache.recordCut(firstLayer: cut.layer, passLength: m, keptRows: h.rows) }
        cache.length += m
        // Only the last position's logits are needed.
        let last = Matrix(rows: 1, cols: config.hiddenSize)
        last.data.update(from: h.row(h.rows - 1), count: config.hiddenSize)
        rmsNorm(last, weight: norm, eps: config.rmsNormEps, into: last)
        var logits = [Float](repeating: 0, count: config.vocabSize)
        stage("lm_head") { logits.withUnsafeMutableBufferPointer { gemv(lmHead, last.data, $0.baseAddress!) } }
        return (logits, kept)
    }
}

/// FastV's cut applied to one prompt pass: the setting (before decoder layer `layer` ≥ 1, keep
/// `keep` candidates) and the candidates, the row indices of the pass that are visual tokens;
/// every other row goes on.
public struct PrefillCut: Sendable, Hashable {
    public var setting: LanguageModelCut
    public var candidates: [Int]

    public init(_ setting: LanguageModelCut, candidates: [Int]) {
        self.setting = setting
        self.candidates = candidates
    }

    public var layer: Int { setting.layer }
    public var keep: Int { setting.keep }
}
