import FixtureLocations
import Foundation
import XCTest

@testable import Kernels

final class QuantizationTests: XCTestCase {
    func packed(_ w: Weight) throws -> PackedQ8 {
        guard case .q8(let p) = w.storage else { throw XCTSkip("not quantized") }
        return p
    }

    func testQ8RoundTripErrorIsBoundedPerBlock() throws {
        var rng = LCG(state: 5)
        let rows = 21, cols = 192
        var values = rng.array(rows * cols)
        values[5] = 40 // an outlier only coarsens its own row block
        let w = Weight(rows: rows, cols: cols, values: values).quantizedQ8()
        let p = try packed(w)
        XCTAssertEqual(p.block, 64)
        let back = w.toArray()
        for r in 0..<rows {
            for b in 0..<(cols / p.block) {
                let range = (r * cols + b * p.block)..<(r * cols + (b + 1) * p.block)
                let amax = range.map { abs(values[$0]) }.max()!
                for i in range {
                    XCTAssertLessThanOrEqual(abs(back[i] - values[i]), amax / 127 / 2 * 1.0001, "row \(r) block \(b)")
                }
            }
        }
        XCTAssertLessThan(abs(back[100] - values[100]), 0.005)
        XCTAssertEqualArrays(Weight(rows: 2, cols: 384, values: Array(repeating: 1, count: 768)).quantizedQ8().toArray(), Array(repeating: 1, count: 768))
    }

    /// The int8 product against the exact product of the dequantized weights: the only extra
    /// error is the activations' per-block rounding (|Δx| ≤ max|x| / 254 per block).
    func testQ8LinearMatchesItsDequantizedWeights() throws {
        var rng = LCG(state: 9)
        for (m, n, k) in [(1, 70, 64), (1, 513, 256), (6, 130, 96), (13, 47, 128), (101, 200, 640)] {
            let x = rng.array(m * k)
            let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ8()
            let exact = q.toArray()
            let y = linear(Matrix(rows: m, cols: k, values: x), q)
            let expected = Reference.matmulT(x, exact, m: m, n: n, k: k)
            // Bound: Σ|w| · max|x| / 254 per output, here ≤ k · 1 · 1 / 254.
            let integer = Int8Kernel.best(rows: m) != nil
            let bound: Float = integer ? Float(k) / 254 : 1e-4
            XCTAssertLessThan(maxAbsDiff(y.toArray(), expected), bound, "\(m)x\(n)x\(k)")
            // And it is far better than the bound on average (errors cancel).
            let mean = zip(y.toArray(), expected).map { abs($0 - $1) }.reduce(0, +) / Float(m * n)
            XCTAssertLessThan(mean, integer ? 0.02 * Float(k).squareRoot() / 16 : 1e-5, "\(m)x\(n)x\(k)")
        }
    }

    func testRowsThatAreNotWholeBlocksStayUnquantized() {
        let w = Weight(rows: 2, cols: 33, values: Array(repeating: 0.5, count: 66))
        XCTAssertFalse(w.canQuantizeQ8)
        guard case .f32 = w.quantizedQ8().storage else { return XCTFail("should stay f32") }
    }
}
