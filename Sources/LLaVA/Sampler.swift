import Foundation
import Kernels

/// How the next token is chosen from the logits (llama.cpp's sampler flags).
public struct SamplingSettings: Sendable, Equatable, Codable {
    /// 0 is greedy (the largest logit, after the repeat penalty).
    public var temperature: Float = 0
    /// Keep only the K most likely tokens (0: all).
    public var topK = 0
    /// Nucleus: keep the smallest set of most likely tokens whose probability reaches P (1: all).
    public var topP: Float = 1
    /// Drop tokens less likely than P times the most likely one (0: none).
    public var minP: Float = 0
    /// Penalty for tokens already in the recent window: positive logits are divided by it,
    /// negative ones multiplied (1: none).
    public var repeatPenalty: Float = 1
    /// How many of the most recent tokens (prompt text and answer) the penalty looks at.
    public var repeatLastN = 64

    enum CodingKeys: String, CodingKey {
        case temperature, topK = "top_k", topP = "top_p", minP = "min_p", repeatPenalty = "repeat_penalty"
        case repeatLastN = "repeat_last_n"
    }

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                repeatPenalty: Float = 1, repeatLastN: Int = 64) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repeatPenalty = repeatPenalty
        self.repeatLastN = repeatLastN
    }
}

/// Chooses the next token. In order: the repeat penalty on the logits of tokens seen in the
/// last `repeatLastN` accepted tokens; then greedy at temperature 0; otherwise softmax at the
/// temperature, top-k, top-p (renormalized after top-k), min-p, and a draw from a seeded
/// generator, so a given seed always gives the same answer.
public struct Sampler {
    public var settings: SamplingSettings
    private var rng: SplitMix64
    /// The most recent accepted tokens, oldest first (at most `repeatLastN`).
    public private(set) var recent: [Int] = []

    public var temperature: Float { settings.temperature }
    public var topP: Float { settings.topP }

    public init(settings: SamplingSettings, seed: UInt64 = 0) {
        self.settings = settings
        rng = SplitMix64(state: seed)
    }

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.init(settings: SamplingSettings(temperature: temperature, topP: topP), seed: seed)
    }

    /// Records tokens of the context (prompt text or chosen tokens) for the repeat penalty.
    public mutating func accept<S: Sequence>(_ ids: S) where S.Element == Int {
        guard settings.repeatPenalty != 1, settings.repeatLastN > 0 else { return }
        recent.append(contentsOf: ids)
        if recent.count > settings.repeatLastN { recent.removeFirst(recent.count - settings.repeatLastN) }
    }

    public mutating func accept(_ id: Int) { accept(CollectionOfOne(id)) }

    /// Index of the largest logit (the first one on ties).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }

    /// `logits` with the repeat penalty applied to every token in `recent` (once per token).
    public func penalized(_ logits: [Float]) -> [Float] {
        let penalty = settings.repeatPenalty
        guard penalty != 1, !recent.isEmpty else { return logits }
        var out = logits
        for id in Set(recent) where id >= 0 && id < out.count {
            out[id] = out[id] > 0 ? out[id] / penalty : out[id] * penalty
        }
        return out
    }

    /// The tokens a draw can pick and their probabilities (not renormalized after top-p and
    /// min-p: the draw scales by their total), most likely first, lower index first on ties.
    public func candidates(_ logits: [Float]) -> [(id: Int, p: Double)] {
        let logits = penalized(logits)
        let t = settings.temperature
        let maxLogit = logits.max() ?? 0
        var probs = logits.map { exp(Double(($0 - maxLogit) / t)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var order = Array(probs.indices)
        order.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
        if settings.topK > 0 && settings.topK < order.count {
            order = Array(order.prefix(settings.topK))
            let kept = order.reduce(0) { $0 + probs[$1] }
            for i in order { probs[i] /= kept }
        }
        var out: [(id: Int, p: Double)] = []
        var mass = 0.0
        for i in order {
            out.append((i, probs[i]))
            mass += probs[i]
            if mass >= Double(settings.topP) { break }
        }
        if settings.minP > 0 {
            let floor = Double(settings.minP) * out[0].p
            out = out.filter { $0.p >= floor }
        }
        return out
    }

    /// Chooses the next token (it is not accepted into the window: call `accept`).
    public mutating func sample(_ logits: [Float]) -> Int {
        if settings.temperature <= 0 { return Self.argmax(penalized(logits)) }
        let kept = candidates(logits)
        let mass = kept.reduce(0) { $0 + $1.p }
        var u = rng.nextUnit() * mass
        for c in kept {
            u -= c.p
            if u <= 0 { return c.id }
        }
        return kept.last!.id
    }
}
