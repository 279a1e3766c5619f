import Kernels
import TokenMerging
import XCTest

/// Properties of the reducers that cut once, at the tower's or the projector's output, on random
/// inputs: exactly K tokens, kept indices unique and in range, merged rows as documented.
final class ReducerPropertyTests: XCTestCase {
    func testDivPruneKeepsExactlyKDistinctRowsUnchanged() throws {
        var random = TestRandom(seed: 21)
        for (n, keeps) in [(64, [1, 2, 7, 32, 63, 64]), (200, [5, 100])] {
            let x = random.matrix(rows: n, cols: 10)
            for k in keeps {
                let order = DivPrune.selectionOrder(features: x, keep: k)
                XCTAssertEqual(order.count, k, "n \(n) keep \(k)")
                XCTAssertEqual(Set(order).count, k, "unique, n \(n) keep \(k)")
                XCTAssertTrue(order.allSatisfy { $0 >= 0 && $0 < n }, "in range, n \(n) keep \(k)")
                let out = apply(DivPrune.plan(features: x, keep: k), to: x)
                XCTAssertEqual(out.rows, k)
                for (row, index) in order.sorted().enumerated() {
                    XCTAssertEqual(out.rowArray(row), x.rowArray(index), "rows kept in order, unchanged")
                }
            }
        }
    }

    func testDivPruneOnDuplicatesStillPicksDistinctRows() {
        let x = Matrix(rows: 6, cols: 3, values: [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0])
        let order = DivPrune.selectionOrder(features: x, keep: 5)
        XCTAssertEqual(Set(order).count, 5)
    }

    /// The merger cuts after the projector: the tower's counts are untouched, the projector's rows
    /// come down to K, and the source map follows the kept rows (CLS, dropped before, holds none).
    func testDivPruneThroughTheMergerTracksSources() throws {
        var random = TestRandom(seed: 4)
        for options in [MergeOptions(method: .divPrune, keep: 9, trackSources: true),
                        MergeOptions(method: .divPrune, ratio: 0.25, trackSources: true)] {
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
            XCTAssertEqual(merger.plannedTokenCounts, Array(repeating: 65, count: 12))
            XCTAssertEqual(merger.schedule.projectorKeep, options.keep ?? 16)
            var tokens = random.matrix(rows: 65, cols: 6)
            for layer in 0..<11 {
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil)
            }
            let projected = random.matrix(rows: 64, cols: 5)
            let out = merger.reduceProjected(projected, droppedTokens: 1)
            let keep = merger.schedule.projectorKeep!
            XCTAssertEqual(out.rows, keep)
            let sources = try XCTUnwrap(merger.sources)
            XCTAssertEqual(sources.count, keep + 1)
            XCTAssertEqual(sources[0], [])
            XCTAssertTrue(sources.dropFirst().allSatisfy { $0.count == 1 }, "each kept token holds one patch")
            let kept = sources.dropFirst().map { $0.first ?? -1 }
            XCTAssertEqual(kept, DivPrune.selectionOrder(features: projected, keep: keep).sorted())
            for (row, patch) in kept.enumerated() { XCTAssertEqual(out.rowArray(row), projected.rowArray(patch)) }
        }
    }
}
