import Checkpoint
import Foundation
import TokenMerging
import XCTest

@testable import LLaVA

/// The merge module wired into the CLIP tower: counts, variants and budgets, through the same
/// code path `llava ask` uses.
final class MergeWiringTests: XCTestCase {
    /// Spec §3.3: LLaVA-1.5's tower (CLIP-L/336, 577 tokens, 24 layers, feature layer −2,
    /// so 23 merge steps), computed from the default LlavaConfig by the tower's own schedule.
    func testTokenCountTableOnCLIPLarge336() throws {
        let config = LlavaConfiguration()
        XCTAssertEqual(config.vision.numPatches + 1, 577)
        XCTAssertEqual(config.visionLayersToRun, 23)
        let ratios = [0.85, 0.875, 0.9, 0.925, 0.95, 0.975]
        let expected: [MergeMethod: [Int]] = [
            .pitome: [17, 30, 54, 101, 183, 330],
            .tome: [16, 29, 53, 100, 183, 329],
            .tofu: [98, 134, 183, 246, 331, 440],
            .dct: [85, 119, 166, 229, 315, 429],
            .diffRate: [84, 118, 165, 228, 315, 429],
        ]
        for (method, counts) in expected {
            for (ratio, count) in zip(ratios, counts) {
                let s = VisionMergeSettings(options: MergeOptions(method: method, ratio: ratio))
                XCTAssertEqual(try config.plannedVisualTokens(s), count, "\(method) ρ=\(ratio)")
            }
        }
        let pitome = try config.plannedTokenCounts(VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.9)))
        XCTAssertEqual(pitome, [577, 520, 468, 422, 380, 342, 308, 278, 251, 226, 204, 184, 166, 150, 136, 123, 111, 100, 91, 82, 74, 67, 61, 55])
        let tome = try config.plannedTokenCounts(VisionMergeSettings(options: MergeOptions(method: .tome, ratio: 0.9)))
        XCTAssertEqual(Array(tome.suffix(10)), [135, 122, 110, 99, 90, 81, 73, 66, 60, 54])
        XCTAssertEqual(try config.plannedVisualTokens(.none), 576)
        for keep in [576, 256, 128, 64, 1] {
            for method in [MergeMethod.pitome, .tome] {
                XCTAssertEqual(try config.plannedVisualTokens(VisionMergeSettings(options: MergeOptions(method: method, keep: keep))), keep)
            }
        }
    }

    /// Operation counts behind the benchmark's GFLOP/s column, on LLaVA-1.5's tower.
    func testVisionFLOPsOfCLIPLarge336() throws {
        let config = LlavaConfiguration()
        let perLayer = 2.0 * 577 * 4 * 1024 * 1024 + 4.0 * 577 * 577 * 1024 + 2.0 * 577 * 2 * 1024 * 4096
        let expected = 2.0 * 576 * 588 * 1024 + 23 * perLayer + 2.0 * 576 * (1024 * 4096 + 4096 * 4096)
        XCTAssertEqual(try config.visionFLOPs(.none), expected, accuracy: 1)
        XCTAssertEqual(expected / 1e9, 390.19, accuracy: 0.01)
        // Merging shrinks the work layer by layer: ρ = 0.9 leaves about 40% of it.
        let merged = try config.visionFLOPs(VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.9)))
        XCTAssertEqual(merged / expected, 0.39, accuracy: 0.03)
    }

    func model() throws -> LlavaForConditionalGeneration {
        try Fixtures.pipeline(Fixtures.reference + "/llava-small/model").model
    }

    func pixels() throws -> [Float] {
        try Fixtures.pipeline(Fixtures.reference + "/llava-small/model").pixels(imagePath: Fixtures.reference + "/llava-small/shapes.png", mode: .crop)
    }

    func testEveryMethodAndVariantRunsToItsPlannedCount() throws {
        let m = try model(), px = try pixels()
        var settings: [VisionMergeSettings] = []
        for method in [MergeMethod.pitome, .tome, .tofu, .dct, .diffRate, .randomDrop] {
            settings.append(VisionMergeSettings(options: MergeOptions(method: method, ratio: 0.9)))
        }
        settings.append(VisionMergeSettings(options: MergeOptions(method: .pool2x2)))
        settings.append(VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.9, pitomeEveryLayer: true)))
        settings.append(VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.9, weighting: .size), metric: .keys, proportionalAttention: true))
        settings.append(VisionMergeSettings(options: MergeOptions(method: .tome, ratio: 0.85, weighting: .size), metric: .keys, proportionalAttention: true))
        settings.append(VisionMergeSettings(options: MergeOptions(method: .tome, keep: 10), metric: .keys))
        for s in settings {
            let (e, _) = try m.encodeImage(pixels: px, merge: s)
            XCTAssertEqual(e.rows, try m.plannedVisualTokens(s), s.label)
            XCTAssertLessThan(e.rows, 64, s.label)
            XCTAssertTrue(e.toArray().allSatisfy { $0.isFinite }, s.label)
        }
    }

    func testVariantsChangeTheResultOnlyWhenTheyShould() throws {
        let m = try model(), px = try pixels()
        let full = try m.encodeImage(pixels: px, merge: .none).embeddings.toArray()
        // Ratio 1 merges nothing: bit-identical to no merging.
        let identity = try m.encodeImage(pixels: px, merge: VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 1))).embeddings.toArray()
        XCTAssertEqual(identity, full)
        // Proportional attention and the keys metric are real changes.
        let base = VisionMergeSettings(options: MergeOptions(method: .tome, ratio: 0.9))
        var prop = base
        prop.proportionalAttention = true
        var keys = base
        keys.metric = .keys
        let a = try m.encodeImage(pixels: px, merge: base).embeddings.toArray()
        XCTAssertNotEqual(a, try m.encodeImage(pixels: px, merge: prop).embeddings.toArray())
        XCTAssertNotEqual(a, try m.encodeImage(pixels: px, merge: keys).embeddings.toArray())
    }

    func testKeepGivesExactBudgets() throws {
        let m = try model(), px = try pixels()
        for keep in [64, 40, 17, 8, 3, 1] {
            for method in [MergeMethod.pitome, .tome] {
                let s = VisionMergeSettings(options: MergeOptions(method: method, keep: keep))
                XCTAssertEqual(try m.encodeImage(pixels: px, merge: s).embeddings.rows, keep, "\(method) keep \(keep)")
            }
        }
        XCTAssertThrowsError(try m.plannedVisualTokens(VisionMergeSettings(options: MergeOptions(method: .pitome, keep: 65))))
    }

    func testSourceMapCoversEveryPatchOnce() throws {
        let m = try model(), px = try pixels()
        for method in [MergeMethod.pitome, .tome, .tofu, .diffRate, .randomDrop, .pool2x2] {
            let ratio: Double? = method == .pool2x2 ? nil : 0.8
            let s = VisionMergeSettings(options: MergeOptions(method: method, ratio: ratio, trackSources: true))
            let (e, sources) = try m.encodeImage(pixels: px, merge: s)
            let patches = try XCTUnwrap(sources, "\(method)")
            // Row 0 of the tower is CLS, which LLaVA drops; the rest are the visual tokens.
            XCTAssertEqual(patches.count, e.rows + 1, "\(method)")
            XCTAssertEqual(patches[0], [], "\(method)")
            let all = patches.flatMap { $0 }
            if method == .tofu || method == .randomDrop || method == .diffRate {
                XCTAssertEqual(Set(all).count, all.count, "\(method): a patch in two tokens")
            } else {
                XCTAssertEqual(all.sorted(), Array(0..<64), "\(method)")
            }
        }
    }
}
