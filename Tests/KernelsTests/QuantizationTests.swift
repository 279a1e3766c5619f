import Foundation
import XCTest

@testable import Kernels

final class QuantizationTests: XCTestCase {
    func testQ8RoundTripErrorIsBoundedPerBlock() {
        var rng = LCG(state: 5)
        let rows = 7, cols = 96
        var values = rng.array(rows * cols)
        values[5] = 40 // an outlier only affects its own block of 32
        let w = Weight(rows: rows, cols: cols, values: values).quantizedQ8()
        guard case .q8(_, _, let block) = w.storage else { return XCTFail("not quantized") }
        XCTAssertEqual(block, 32)
        XCTAssertEqual(w.byteCount, rows * cols + rows * cols / 32 * 4)
        let back = w.toArray()
        for b in 0..<(rows * cols / 32) {
            let range = (b * 32)..<((b + 1) * 32)
            let amax = range.map { abs(values[$0]) }.max()!
            for i in range {
                XCTAssertLessThanOrEqual(abs(back[i] - values[i]), amax / 127 / 2 * 1.0001, "block \(b)")
            }
        }
        // The outlier's block is coarse; the next block keeps its own fine scale.
        XCTAssertLessThan(abs(back[40] - values[40]), 0.005)
    }

    func testQ8LinearMatchesItsDequantizedWeights() {
        var rng = LCG(state: 9)
        for (m, n, k) in [(1, 70, 64), (1, 513, 256), (6, 130, 96)] {
            let x = rng.array(m * k)
            let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ8()
            let exact = q.toArray()
            let y = linear(Matrix(rows: m, cols: k, values: x), q)
            let expected = Reference.matmulT(x, exact, m: m, n: n, k: k)
            XCTAssertLessThan(maxAbsDiff(y.toArray(), expected), 1e-4, "\(m)x\(n)x\(k)")
        }
    }

    func testRowsThatAreNotWholeBlocksStayUnquantized() {
        let w = Weight(rows: 2, cols: 33, values: Array(repeating: 0.5, count: 66))
        XCTAssertFalse(w.canQuantizeQ8)
        guard case .f32 = w.quantizedQ8().storage else { return XCTFail("should stay f32") }
    }
}
