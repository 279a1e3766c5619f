import Checkpoint
import FixtureLocations
import Kernels
import TokenMerging
import XCTest

@testable import LLaVA

/// The reducers that cut once (at the feature layer or after the projector) on the small random
/// LLaVA: the image gives exactly the planned visual tokens, the source map follows them.
final class ReducerWiringTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    func testOneCutReducersGiveTheirBudgetExactly() throws {
        let pipeline = try Fixtures.pipeline(Fixtures.reference + "/llava-small/model")
        let m = pipeline.model
        let px = try pipeline.pixels(imagePath: Fixtures.reference + "/llava-small/shapes.png", mode: .crop)
        let full = try m.encodeImage(pixels: px, merge: .none).embeddings
        for method in [MergeMethod.divPrune, .visionZip] {
            for (keep, ratio) in [(48, nil), (16, nil), (8, nil), (1, nil), (nil, 0.25 as Double?)] as [(Int?, Double?)] {
                let s = VisionMergeSettings(options: MergeOptions(method: method, ratio: ratio, keep: keep, trackSources: true))
                let (e, sources) = try m.encodeImage(pixels: px, merge: s)
                let expected = keep ?? 16
                XCTAssertEqual(e.rows, expected, s.label)
                XCTAssertEqual(try m.plannedVisualTokens(s), expected, s.label)
                XCTAssertTrue(e.toArray().allSatisfy { $0.isFinite }, s.label)
                let patches = try XCTUnwrap(sources, s.label)
                XCTAssertEqual(patches.count, expected + 1, s.label)
                XCTAssertEqual(patches[0], [], s.label)
                let all = patches.flatMap { $0 }
                XCTAssertEqual(Set(all).count, all.count, "\(s.label): a patch in two tokens")
                if method == .divPrune {
                    // Pruning after the projector: every kept row is the unreduced row of its patch.
                    for (row, held) in patches.dropFirst().enumerated() {
                        XCTAssertEqual(held.count, 1, s.label)
                        XCTAssertEqualArrays(e.rowArray(row), full.rowArray(held[0]), s.label)
                    }
                }
            }
        }
    }

    func testPerLayerBaselinesRunToTheirPlannedCounts() throws {
        let pipeline = try Fixtures.pipeline(Fixtures.reference + "/llava-small/model")
        let m = pipeline.model
        let px = try pipeline.pixels(imagePath: Fixtures.reference + "/llava-small/shapes.png", mode: .crop)
        for options in [MergeOptions(method: .crossGet, ratio: 0.9), MergeOptions(method: .crossGet, keep: 16),
                        MergeOptions(method: .mctf, ratio: 0.9), MergeOptions(method: .mctf, keep: 16)] {
            let s = VisionMergeSettings(options: options)
            let e = try m.encodeImage(pixels: px, merge: s).embeddings
            XCTAssertEqual(e.rows, try m.plannedVisualTokens(s), s.label)
            XCTAssertLessThan(e.rows, 64, s.label)
            XCTAssertTrue(e.toArray().allSatisfy { $0.isFinite }, s.label)
        }
    }

    /// The attention each token receives: per head softmax rows averaged over heads and queries,
    /// so it sums to 1 over the tokens; a large key bias draws attention to its token.
    func testReceivedAttentionIsAnAverageOfAttentionRows() {
        var generator = SplitMix64(state: 5)
        func matrix(_ rows: Int, _ cols: Int) -> Matrix {
            Matrix(rows: rows, cols: cols, values: (0..<rows * cols).map { _ in Float(generator.next() >> 40) / Float(1 << 24) - 0.5 })
        }
        let q = matrix(9, 8), k = matrix(9, 8)
        let shape = AttentionShape(heads: 2, kvHeads: 2, headDim: 4)
        let received = meanReceivedAttention(q: q, k: k, shape: shape, keyBias: nil)
        XCTAssertEqual(received.reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertTrue(received.allSatisfy { $0 > 0 })
        var bias = [Float](repeating: 0, count: 9)
        bias[4] = 20
        XCTAssertGreaterThan(meanReceivedAttention(q: q, k: k, shape: shape, keyBias: bias)[4], 0.99)
    }

    /// The whole path against transformers plus the official selection code on the same image
    /// (Tests/Fixtures/reducers/llava_small_end_to_end): VisionZip on the feature layer's output,
    /// keys and CLS attention as the tower passes them, DivPrune on the projector output.
    func testVisionZipAndDivPruneMatchTheOfficialCodeOnTheSmallModel() throws {
        let pipeline = try Fixtures.pipeline(Fixtures.reference + "/llava-small/model")
        let m = pipeline.model
        let px = try pipeline.pixels(imagePath: Fixtures.reference + "/llava-small/shapes.png", mode: .crop)
        let file = try SafeTensorsFile(path: FixtureLocations.project + "/reducers/llava_small_end_to_end.safetensors")
        for keep in [48, 16, 8] {
            let zip = VisionMergeSettings(options: MergeOptions(method: .visionZip, keep: keep))
            let features = try m.imageFeatures(pixels: px, merger: try m.makeMerger(zip))
            let official = try file.matrix("visionzip_k\(keep)")
            XCTAssertEqual(official.rows, keep + 1, "the official output carries CLS first")
            XCTAssertEqual(features.rows, keep)
            let withoutCLS = official.gatherRows(Array(1..<official.rows))
            XCTAssertLessThanOrEqual(maxDifference(features, withoutCLS), 1e-4, "visionzip keep \(keep)")

            let prune = VisionMergeSettings(options: MergeOptions(method: .divPrune, keep: keep))
            let embeddings = try m.encodeImage(pixels: px, merge: prune).embeddings
            let pruned = try file.matrix("divprune_k\(keep)")
            if keep <= 16 {
                XCTAssertLessThanOrEqual(maxDifference(embeddings, pruned), 1e-4, "divprune keep \(keep)")
            } else {
                // Late picks choose among background tokens whose projector outputs differ by
                // about 1e-3; which one wins depends on the last bits of the products (the BLAS
                // kernel family), in the official code as here. Every official row must have a
                // twin among ours, and the count must be exact.
                XCTAssertEqual(embeddings.rows, pruned.rows)
                let worst = (0..<pruned.rows).map { r in
                    (0..<embeddings.rows).map { e in (0..<pruned.cols).reduce(Float(0)) { max($0, abs(pruned[r, $1] - embeddings[e, $1])) } }.min()!
                }.max()!
                XCTAssertLessThanOrEqual(worst, 5e-3, "divprune keep \(keep)")
            }
        }
    }

    /// PruMerge+ against the official function run on transformers' tower of the same model and
    /// image (Tests/Fixtures/reducers/prumerge_plus_llava_small), hooked on the layer after the
    /// feature layer: the adaptive count, the merged features and their projection; then a budget.
    func testPruMergePlusMatchesTheOfficialCodeOnTheSmallModel() throws {
        let pipeline = try Fixtures.pipeline(Fixtures.reference + "/llava-small/model")
        let m = pipeline.model
        let px = try pipeline.pixels(imagePath: Fixtures.reference + "/llava-small/shapes.png", mode: .crop)
        let file = try SafeTensorsFile(path: FixtureLocations.project + "/reducers/prumerge_plus_llava_small.safetensors")
        let adaptive = VisionMergeSettings(options: MergeOptions(method: .pruMergePlus, trackSources: true))
        XCTAssertNil(try m.plannedVisualTokens(adaptive), "the adaptive count is the image's")
        let features = try m.pruMergePlusFeatures(pixels: px, merger: try XCTUnwrap(try m.makeMerger(adaptive)))
        XCTAssertLessThanOrEqual(maxDifference(features, try file.matrix("features")), 1e-4)
        let (embeddings, sources) = try m.encodeImage(pixels: px, merge: adaptive)
        XCTAssertLessThanOrEqual(maxDifference(embeddings, try file.matrix("embeddings")), 1e-4)
        let kept = try file.matrix("kept").toArray().map { Int($0) }
        let held = try XCTUnwrap(sources)
        XCTAssertEqual(held.count, kept.count + 2, "CLS, the kept tokens, the extra one")
        for (row, patch) in kept.enumerated() where row + 1 < held.count {
            XCTAssertTrue(held[row + 1].contains(patch), "token \(row) holds patch \(patch)")
        }

        for keep in [16, 1] {
            let s = VisionMergeSettings(options: MergeOptions(method: .pruMergePlus, keep: keep))
            XCTAssertEqual(try m.plannedVisualTokens(s), keep)
            let e = try m.encodeImage(pixels: px, merge: s).embeddings
            XCTAssertEqual(e.rows, keep)
            XCTAssertTrue(e.toArray().allSatisfy { $0.isFinite })
        }
    }

    /// PruMerge+ on LLaVA-1.5's tower: its counts, the towers it cannot read, and its operations
    /// (the full tower, the next layer's keys and CLS query, the projector on the kept tokens).
    func testPruMergePlusPlanOnCLIPLarge336() throws {
        var config = LlavaConfiguration()
        func settings(ratio: Double? = nil, keep: Int? = nil) -> VisionMergeSettings {
            VisionMergeSettings(options: MergeOptions(method: .pruMergePlus, ratio: ratio, keep: keep))
        }
        XCTAssertEqual(try config.plannedVisualTokens(settings(keep: 64)), 64)
        XCTAssertEqual(try config.plannedVisualTokens(settings(ratio: 0.25)), 144)
        XCTAssertNil(try config.plannedVisualTokens(settings()))
        XCTAssertThrowsError(try config.plannedVisualTokens(settings(keep: 577)))
        let full = try config.visionFLOPs(.none)
        let probe = 2.0 * 577 * 1024 * 1024 + 2.0 * 1024 * 1024 + 2.0 * 577 * 1024
        let projector = 2.0 * (1024 * 4096 + 4096 * 4096)
        XCTAssertEqual(try config.visionFLOPs(settings(keep: 64)), full + probe - (576 - 64) * projector, accuracy: 1)
        XCTAssertEqual(try config.visionFLOPs(settings()), full + probe, accuracy: 1)

        config.visionFeatureLayers = [-1]
        XCTAssertThrowsError(try config.plannedVisualTokens(settings(keep: 64))) {
            XCTAssertTrue("\($0)".contains("the feature layer is the tower's last"), "\($0)")
        }
        config.visionFeatureLayers = [-2]
        config.visionFeatureSelectStrategy = .full
        XCTAssertThrowsError(try config.plannedVisualTokens(settings(keep: 64))) {
            XCTAssertTrue("\($0)".contains("CLS token dropped"), "\($0)")
        }
    }

    func maxDifference(_ a: Matrix, _ b: Matrix) -> Float {
        guard a.rows == b.rows && a.cols == b.cols else { return .infinity }
        return zip(a.toArray(), b.toArray()).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}
