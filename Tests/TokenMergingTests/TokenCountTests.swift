import TokenMerging
import XCTest

/// Token counts on the CLIP-L/336 geometry of LLaVA-1.5 (577 tokens, 24 layers, 23 merge layers),
/// against the table derived from the official formulas (pitome-spec §3.3). All counts come from
/// `TokenMerger.plannedTokenCounts`, the schedule the merger itself runs.
final class TokenCountTests: XCTestCase {
    let ratios = [0.85, 0.875, 0.9, 0.925, 0.95, 0.975]

    func visualTokens(_ method: MergeMethod, _ ratio: Double) throws -> Int {
        let counts = try TokenMerger.plannedTokenCounts(
            options: MergeOptions(method: method, ratio: ratio), towerDepth: 24, mergeLayers: 23, initialTokens: 577)
        XCTAssertEqual(counts.count, 24)
        return counts.last! - 1  // LLaVA drops CLS
    }

    func testPiToMeAndToMeVisualTokensPerRatio() throws {
        XCTAssertEqual(try ratios.map { try visualTokens(.pitome, $0) }, [17, 30, 54, 101, 183, 330])
        XCTAssertEqual(try ratios.map { try visualTokens(.tome, $0) }, [16, 29, 53, 100, 183, 329])
    }

    func testBaselineVisualTokensPerRatio() throws {
        XCTAssertEqual(try ratios.map { try visualTokens(.tofu, $0) }, [98, 134, 183, 246, 331, 440])
        XCTAssertEqual(try ratios.map { try visualTokens(.dct, $0) }, [85, 119, 166, 229, 315, 429])
        XCTAssertEqual(try ratios.map { try visualTokens(.diffRate, $0) }, [84, 118, 165, 228, 315, 429])
        XCTAssertEqual(try ratios.map { try visualTokens(.randomDrop, $0) }, [16, 29, 53, 100, 183, 329])
    }

    func testPerLayerCountsAtRatio0_9() throws {
        let pitome = [577, 520, 468, 422, 380, 342, 308, 278, 251, 226, 204, 184, 166, 150,
                      136, 123, 111, 100, 91, 82, 74, 67, 61, 55, 50]
        let tome = Array(pitome[...13]) + [135, 122, 110, 99, 90, 81, 73, 66, 60, 54, 49]
        for (method, expected) in [(MergeMethod.pitome, pitome), (.tome, tome)] {
            let options = MergeOptions(method: method, ratio: 0.9)
            // All 24 layers (the last one's output is unused by LLaVA) and the 23 that feed it.
            XCTAssertEqual(try TokenMerger.plannedTokenCounts(options: options, towerDepth: 24, mergeLayers: 24,
                                                              initialTokens: 577), expected, "\(method)")
            XCTAssertEqual(try TokenMerger.plannedTokenCounts(options: options, towerDepth: 24, mergeLayers: 23,
                                                              initialTokens: 577), Array(expected.dropLast()), "\(method)")
        }
    }

    func testPerLayerCountsAtRatio0_95() throws {
        let expected = [577, 549, 522, 496, 472, 449, 427, 406, 386, 367, 349, 332, 316, 301, 286, 272,
                        259, 247, 235, 224, 213, 203, 193, 184, 175]
        for method in [MergeMethod.pitome, .tome] {
            XCTAssertEqual(try TokenMerger.plannedTokenCounts(options: MergeOptions(method: method, ratio: 0.95),
                                                              towerDepth: 24, mergeLayers: 24, initialTokens: 577),
                           expected, "\(method)")
        }
    }

    /// The merger produces exactly the planned counts at every layer (random tokens, CLIP-L geometry).
    func testMergerFollowsThePlannedCounts() throws {
        for method in MergeMethod.allCases {
            var random = TestRandom(seed: 21)
            let ratio: Double? = method == .none || method == .pool2x2 ? nil : 0.9
            let merger = try TokenMerger(options: MergeOptions(method: method, ratio: ratio), towerDepth: 24,
                                         mergeLayers: 23, initialTokens: 577)
            var tokens = random.matrix(rows: 577, cols: 8)
            var seen = [tokens.rows]
            for layer in 0..<23 {
                let attention = (0..<tokens.rows).map { _ in abs(random.float()) }
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens,
                                      clsAttention: merger.needsCLSAttention ? attention : nil,
                                      receivedAttention: merger.needsReceivedAttention(layer: layer) ? attention : nil)
                seen.append(tokens.rows)
            }
            XCTAssertEqual(seen, merger.plannedTokenCounts, "\(method)")
        }
    }

    func testStagesOfTheLLaVAWiring() {
        let stages = { (m: MergeMethod, every: Bool) in
            (0..<23).map { MergeSchedule.stage(method: m, layer: $0, towerDepth: 24, mergeLayers: 23, pitomeEveryLayer: every) }
        }
        XCTAssertEqual(stages(.pitome, false), Array(repeating: .tome, count: 13) + Array(repeating: .pitome, count: 10))
        XCTAssertEqual(stages(.pitome, true), Array(repeating: .pitome, count: 23))
        XCTAssertEqual(stages(.tofu, false).enumerated().filter { $0.element != .none }.map(\.offset),
                       Array(stride(from: 1, to: 23, by: 2)))
        XCTAssertEqual(stages(.tofu, false)[11], .tofuPrune)
        XCTAssertEqual(stages(.tofu, false)[13], .tofuMerge)
        XCTAssertEqual(stages(.dct, false).enumerated().filter { $0.element == .dct }.map(\.offset),
                       Array(stride(from: 0, to: 23, by: 2)))
        XCTAssertEqual(stages(.diffRate, false).enumerated().filter { $0.element == .diffRate }.map(\.offset),
                       Array(stride(from: 0, to: 23, by: 2)))
        XCTAssertEqual(stages(.pool2x2, false).lastIndex { $0 != .none }, 22)
        XCTAssertEqual(stages(.pool2x2, false).filter { $0 != .none }.count, 1)
        // A 6-layer tower switches to the energy stage after layer 3 (2·i ≤ L).
        XCTAssertEqual(MergeSchedule.stage(method: .pitome, layer: 3, towerDepth: 6, mergeLayers: 5), .tome)
        XCTAssertEqual(MergeSchedule.stage(method: .pitome, layer: 4, towerDepth: 6, mergeLayers: 5), .pitome)
    }

    func testRatioArithmeticIsDoubleLikePython() {
        // 577·0.9 = 519.3000000000001 in IEEE double, so r = floor(57.69999…) = 57.
        XCTAssertEqual(ToMe.removal(tokens: 577, ratio: 0.9), 57)
        XCTAssertEqual(PiToMe.removal(patchTokens: 576, ratio: 0.9), 57)
        // Clamps: ToMe (N − 1) / 2, PiToMe T' / 2.
        XCTAssertEqual(ToMe.removal(tokens: 577, ratio: 0.1), 288)
        XCTAssertEqual(PiToMe.removal(patchTokens: 577, ratio: 0.1), 288)
        XCTAssertEqual(ToMe.removal(tokens: 10, ratio: 1), 0)
        XCTAssertEqual(DCT.keptCount(patchTokens: 576, ratio: 0.9), 519)
        XCTAssertEqual(DiffRate.removal(tokens: 577, ratio: 0.01), 571)
        XCTAssertEqual(DiffRate.removal(tokens: 10, ratio: 0.01), 8)  // clamp N − 2
    }

    func testPoolingCounts() throws {
        let counts = try TokenMerger.plannedTokenCounts(options: MergeOptions(method: .pool2x2), towerDepth: 24,
                                                        mergeLayers: 23, initialTokens: 577)
        XCTAssertEqual(counts, Array(repeating: 577, count: 23) + [145])
    }
}
