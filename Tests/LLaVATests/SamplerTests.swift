import Kernels
import XCTest

@testable import LLaVA

final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, -2.0, 2.5, 0.5, -0.5, 3.0, 0.0]

    func draws(_ settings: SamplingSettings, seed: UInt64 = 7, count: Int = 400) -> [Int] {
        var sampler = Sampler(settings: settings, seed: seed)
        return (0..<count).map { _ in sampler.sample(logits) }
    }

    func testGreedyAtTemperatureZeroIsTheFirstLargestLogit() {
        var sampler = Sampler(settings: SamplingSettings(temperature: 0, topK: 3, topP: 0.5, minP: 0.2), seed: 1)
        XCTAssertEqual(sampler.sample(logits), 1, "ties go to the lower index; top-k/top-p/min-p do not change greedy")
        XCTAssertEqual(Sampler.argmax(logits), 1)
    }

    func testTheSameSeedGivesTheSameDrawsAndAnotherSeedOthers() {
        let settings = SamplingSettings(temperature: 1.3, topK: 5, topP: 0.95, minP: 0.02, repeatPenalty: 1.2)
        XCTAssertEqual(draws(settings, seed: 3), draws(settings, seed: 3))
        XCTAssertNotEqual(draws(settings, seed: 3), draws(settings, seed: 4))
    }

    func testTopKKeepsTheKMostLikelyTokens() {
        XCTAssertEqual(Set(draws(SamplingSettings(temperature: 5, topK: 3))), [1, 6, 3])
        XCTAssertEqual(Set(draws(SamplingSettings(temperature: 5, topK: 1))), [1])
        // Probabilities are renormalized over the K tokens.
        let sampler = Sampler(settings: SamplingSettings(temperature: 1, topK: 2))
        let kept = sampler.candidates(logits)
        XCTAssertEqual(kept.map(\.id), [1, 6])
        XCTAssertEqual(kept[0].p, 0.5, accuracy: 1e-12)
    }

    func testTopPThenMinP() {
        // softmax(logits / 1): 3.0 (x2), 2.5 are most of the mass.
        let sampler = Sampler(settings: SamplingSettings(temperature: 1, topP: 0.6))
        XCTAssertEqual(sampler.candidates(logits).map(\.id), [1, 6])
        // min-p 0.7: tokens under 0.7 × the best are dropped (2.5 is e^-0.5 ≈ 0.61 of 3.0).
        let minP = Sampler(settings: SamplingSettings(temperature: 1, minP: 0.7))
        XCTAssertEqual(minP.candidates(logits).map(\.id), [1, 6])
        let loose = Sampler(settings: SamplingSettings(temperature: 1, minP: 0.5))
        XCTAssertEqual(loose.candidates(logits).map(\.id), [1, 6, 3])
        XCTAssertEqual(Set(draws(SamplingSettings(temperature: 1, minP: 0.5))), [1, 6, 3])
    }

    func testRepeatPenaltyDividesPositiveAndMultipliesNegativeLogitsOfRecentTokens() {
        var sampler = Sampler(settings: SamplingSettings(repeatPenalty: 2, repeatLastN: 3), seed: 0)
        sampler.accept([1, 2, 1, 5])  // the window keeps the last three: 2, 1, 5
        XCTAssertEqual(sampler.recent, [2, 1, 5])
        let p = sampler.penalized(logits)
        XCTAssertEqual(p[1], 1.5)   // 3.0 / 2, once although 1 appears twice
        XCTAssertEqual(p[2], -4.0)  // -2.0 * 2
        XCTAssertEqual(p[5], -1.0)  // -0.5 * 2
        XCTAssertEqual(p[6], 3.0)   // not recent
        XCTAssertEqual(p[0], 1.0)
        // Greedy follows the penalized logits: 6 (3.0) instead of 1.
        XCTAssertEqual(sampler.sample(logits), 6)
        sampler.accept(6)
        XCTAssertEqual(sampler.recent, [1, 5, 6])
        XCTAssertEqual(sampler.sample(logits), 3)
    }

    func testNoPenaltyMeansNoWindow() {
        var sampler = Sampler(settings: SamplingSettings(repeatPenalty: 1), seed: 0)
        sampler.accept([1, 2, 3])
        XCTAssertEqual(sampler.recent, [])
        XCTAssertEqual(sampler.penalized(logits), logits)
    }

    func testDefaultSettingsSampleAsTemperatureAndTopPAlone() {
        // Top-k 0, min-p 0 and penalty 1 leave plain temperature + top-p sampling: the same
        // draws as this reference (softmax in Double, tokens by probability, then a walk).
        func reference(_ logits: [Float], temperature: Float, topP: Float, rng: inout SplitMix64) -> Int {
            let m = logits.max()!
            var probs = logits.map { exp(Double(($0 - m) / temperature)) }
            let total = probs.reduce(0, +)
            for i in probs.indices { probs[i] /= total }
            let order = probs.indices.sorted { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
            var kept: [Int] = [], mass = 0.0
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
        var rng = SplitMix64(state: 11)
        var sampler = Sampler(temperature: 0.8, topP: 0.9, seed: 11)
        var seen = Set<Int>()
        for _ in 0..<300 {
            let id = sampler.sample(logits)
            XCTAssertEqual(id, reference(logits, temperature: 0.8, topP: 0.9, rng: &rng))
            seen.insert(id)
        }
        XCTAssertGreaterThan(seen.count, 1)
    }
}
