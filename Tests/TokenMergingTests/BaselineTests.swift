import Foundation
import Kernels
import TokenMerging
import XCTest

final class BaselineTests: XCTestCase {
    // MARK: ToFu

    func testToFuPruneDropsTheSourcesAndMergeRescalesNorms() {
        let m = Matrix(rows: 5, cols: 2, values: [0, 9, 1, 0, 0.5, 1, 0, 1.1, 3, 0.1])
        // A = 0, 2, 4; B = 1, 3. Row 4 ≈ row 1 is the best edge.
        let merge = ToMe.plan(metric: m, remove: 1)
        XCTAssertEqual(merge.groups, [[0], [2], [1, 4], [3]])
        XCTAssertEqual(ToFu.prunePlan(metric: m, remove: 1).groups, [[0], [2], [1], [3]])
        let out = apply(merge, to: m, .mean)
        ToFu.preserveNorms(merged: out, input: m, plan: merge)
        // Mean of (1, 0) and (3, 0.1) is (2, 0.05); scaled by max(‖(1,0)‖, ‖(3,0.1)‖) / ‖(1,0)‖.
        let scale = (Float(9.01)).squareRoot()
        XCTAssertEqual(out[2, 0], 2 * scale, accuracy: 1e-5)
        XCTAssertEqual(out[2, 1], 0.05 * scale, accuracy: 1e-6)
        XCTAssertEqual(out.rowArray(1), [0.5, 1], "unmerged rows are not rescaled")
    }

    // MARK: DCT

    /// Straight from the definitions: DCT-II (orthonormal) of length T', keep K, DCT-III at length K.
    func referenceDCT(_ x: Matrix, keep k: Int) -> [[Double]] {
        let p = x.rows - 1
        func s(_ f: Int, _ n: Int) -> Double { (Double(f == 0 ? 1 : 2) / Double(n)).squareRoot() }
        var out: [[Double]] = [x.rowArray(0).map(Double.init)]
        for n in 0..<k {
            var row = [Double](repeating: 0, count: x.cols)
            for c in 0..<x.cols {
                var y = 0.0
                for f in 0..<k {
                    var coefficient = 0.0
                    for t in 0..<p {
                        coefficient += Double(x[t + 1, c]) * cos(Double.pi * Double(2 * t + 1) * Double(f) / Double(2 * p))
                    }
                    y += s(f, k) * cos(Double.pi * Double(2 * n + 1) * Double(f) / Double(2 * k)) * s(f, p) * coefficient
                }
                row[c] = y
            }
            out.append(row)
        }
        return out
    }

    func testDCTMatchesTheDefinition() {
        var random = TestRandom(seed: 1)
        let x = random.matrix(rows: 21, cols: 5)
        for k in [1, 7, 18, 20] {
            let out = DCT.compress(x, keep: k)
            let expected = referenceDCT(x, keep: k)
            XCTAssertEqual(out.rows, k + 1)
            for r in 0...k {
                for c in 0..<5 { XCTAssertEqual(Double(out[r, c]), expected[r][c], accuracy: 1e-5, "k \(k) row \(r)") }
            }
        }
        // Keeping every coefficient gives the input back; a constant keeps its energy.
        XCTAssertLessThan(maxAbsDifference(DCT.compress(x, keep: 20), x), 1e-5)
        let constant = Matrix(rows: 17, cols: 1, values: [Float](repeating: 2, count: 17))
        let low = DCT.compress(constant, keep: 4)
        for r in 1...4 { XCTAssertEqual(low[r, 0], 2 * (16.0 / 4.0 as Float).squareRoot(), accuracy: 1e-5) }
    }

    func testDCTInTheMergerSpreadsSizes() throws {
        var random = TestRandom(seed: 3)
        let merger = try TokenMerger(options: MergeOptions(method: .dct, ratio: 0.5), towerDepth: 4, mergeLayers: 3,
                                     initialTokens: 65)
        XCTAssertEqual(merger.plannedTokenCounts, [65, 33, 33, 17])
        let image = random.matrix(rows: 65, cols: 4)
        func run() -> Matrix {
            var tokens = image
            for layer in 0..<3 { tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil) }
            return tokens
        }
        let tokens = run()
        XCTAssertEqual(tokens.rows, 17)
        XCTAssertEqual(merger.sizes, [1] + [Float](repeating: 4, count: 16))
        XCTAssertNil(merger.sources)
        // Layers 0 and 2 are the two DCT steps.
        let direct = DCT.compress(DCT.compress(image, keep: 32), keep: 16)
        XCTAssertLessThan(maxAbsDifference(tokens, direct), 1e-5)
    }

    // MARK: DiffRate

    func testDiffRateRanksByCLSAttentionAndMergesIntoImportantTokens() {
        // Patches 1–4 with 2-D metrics; CLS attention ranks 3 > 1 > 4 > 2.
        let m = Matrix(rows: 5, cols: 2, values: [1, 1, 1, 0, 0, 1, 0, 2, 2, 0.1])
        let attention: [Float] = [0.9, 0.3, 0.1, 0.4, 0.2]
        let plan = DiffRate.plan(metric: m, clsAttention: attention, keep: 3)
        // Important: CLS, 3, 1. Row 4 ≈ row 1; row 2 ≈ row 3. CLS never absorbs a token.
        XCTAssertEqual(plan.groups, [[0], [3, 2], [1, 4]])
        // Keeping everything only reorders.
        XCTAssertEqual(DiffRate.plan(metric: m, clsAttention: attention, keep: 5).groups, [[0], [3], [1], [4], [2]])
    }

    // MARK: Random drop

    func testRandomDropIsSeededAndKeepsOrder() {
        let a = RandomDrop.plan(tokens: 50, remove: 20, seed: 42, layer: 3)
        XCTAssertEqual(a, RandomDrop.plan(tokens: 50, remove: 20, seed: 42, layer: 3))
        XCTAssertNotEqual(a, RandomDrop.plan(tokens: 50, remove: 20, seed: 43, layer: 3))
        XCTAssertNotEqual(a, RandomDrop.plan(tokens: 50, remove: 20, seed: 42, layer: 4))
        XCTAssertEqual(a.outputRows, 30)
        let kept = a.groups.map { $0[0] }
        XCTAssertEqual(kept, kept.sorted())
        XCTAssertEqual(kept[0], 0)
    }

    // MARK: Pooling

    func testPoolingAveragesTwoByTwoCells() throws {
        let x = Matrix(rows: 17, cols: 1, values: (0..<17).map(Float.init))
        let plan = GridPooling.plan(tokens: 17)  // 4×4 grid
        XCTAssertEqual(plan.groups, [[0], [1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]])
        XCTAssertEqual(apply(plan, to: x, .mean).toArray(), [0, 3.5, 5.5, 11.5, 13.5])
        XCTAssertEqual(GridPooling.side(patchTokens: 576), 24)
        XCTAssertNil(GridPooling.side(patchTokens: 49))
        XCTAssertNil(GridPooling.side(patchTokens: 50))
        let merger = try TokenMerger(options: MergeOptions(method: .pool2x2, keep: 4, trackSources: true), towerDepth: 3,
                                     mergeLayers: 2, initialTokens: 17)
        XCTAssertTrue(merger.merge(layer: 0, tokens: x, metric: x, clsAttention: nil) === x)
        let out = merger.merge(layer: 1, tokens: x, metric: x, clsAttention: nil)
        XCTAssertEqual(out.toArray(), [0, 3.5, 5.5, 11.5, 13.5])
        XCTAssertEqual(merger.sizes, [1, 4, 4, 4, 4])
        XCTAssertEqual(merger.sources, [[], [0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
    }
}
