import Foundation
import Kernels

/// Chooses the next token: greedy at temperature 0, otherwise temperature + top-p (nucleus)
/// sampling from a seeded generator, so a given seed always gives the same answer.
public struct Sampler {
    public var temperature: Float
    public var topP: Float
    private var rng: SplitMix64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        rng = SplitMix64(state: seed)
    }

    /// Index of the largest logit (the first one on ties).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }

    public mutating func sample(_ logits: [Float]) -> Int {
        if temperature <= 0 { return Self.argmax(logits) }
        let maxLogit = logits.max() ?? 0
        var probs = logits.map { exp(Double(($0 - maxLogit) / temperature)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var order = Array(probs.indices)
        order.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
        var kept: [Int] = []
        var mass = 0.0
        for i in order {
            kept.append(i)
            mass += probs[i]
            if mass >= Double(topP) { break }
        }
        var u = rng.nextUnit() * mass
        for i in kept {
            u -= probs[i]
            if u <= 0 { return i }
        }
        return kept.last!
    }
}
