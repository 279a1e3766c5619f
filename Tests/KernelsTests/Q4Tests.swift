import Foundation
import XCTest

@testable import Kernels

/// 4-bit weights. Stated tolerances: each weight within |d| of its value (d = the block's scale;
/// values of the sign opposite to the block's extreme may clamp at +7), and the product within
/// the activations' rounding of the product of the dequantized weights.
final class Q4Tests: XCTestCase {
    func testQ4RoundTripErrorIsBoundedByTheBlockScale() {
        var rng = LCG(state: 3)
        let rows = 19, cols = 96
        var values = rng.array(rows * cols)
        values[7] = -25 // an outlier only coarsens its own block
        let w = Weight(rows: rows, cols: cols, values: values).quantizedQ4()
        XCTAssertEqual(w.dtypeName, "q4")
        XCTAssertEqual(w.byteCount, 32 * cols / 2 + 32 * (cols / 32) * 2) // 2 row groups of 16
        let back = w.toArray()
        var sumError: Float = 0
        for r in 0..<rows {
            for b in 0..<(cols / 32) {
                let range = (r * cols + b * 32)..<(r * cols + b * 32 + 32)
                let amax = range.map { abs(values[$0]) }.max()!
                let d = amax / 8
                for i in range {
                    XCTAssertLessThanOrEqual(abs(back[i] - values[i]), d * 1.002, "row \(r) block \(b)")
                    sumError += abs(back[i] - values[i]) / d
                }
                // The extreme value is exact up to the F16 rounding of the scale.
                let extreme = range.max { abs(values[$0]) < abs(values[$1]) }!
                XCTAssertEqual(back[extreme], values[extreme], accuracy: amax * 1e-3)
            }
        }
        // Most values round to the nearest step (mean error ≈ d / 4).
        XCTAssertLessThan(sumError / Float(rows * cols), 0.35)
        XCTAssertGreaterThan(abs(back[7] - values[7]) + abs(back[8] - values[8]), 0)
    }

    func testQ4ProductMatchesItsDequantizedWeights() throws {
        guard CPU.hasVNNI else { throw XCTSkip("the q4 product needs AVX-512 VNNI; elsewhere q4 weights are widened") }
        var rng = LCG(state: 11)
        for (m, n, k) in [(1, 70, 64), (1, 513, 256), (5, 33, 32), (13, 47, 128), (40, 200, 640)] {
            let x = rng.array(m * k)
            let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ4()
            let y = linear(Matrix(rows: m, cols: k, values: x), q).toArray()
            let expected = Reference.matmulT(x, q.toArray(), m: m, n: n, k: k)
            // Activations round to max|x| / 254 per block: ≤ Σ|w| · 1 / 254 ≤ k / 254.
            XCTAssertLessThan(maxAbsDiff(y, expected), Float(k) / 254, "\(m)x\(n)x\(k)")
            let mean = zip(y, expected).map { abs($0 - $1) }.reduce(0, +) / Float(m * n)
            XCTAssertLessThan(mean, 0.02 * Float(k).squareRoot() / 16, "\(m)x\(n)x\(k)")
        }
    }

    /// Against the Float32 weights: relative error of the outputs (‖Δy‖ / ‖y‖) below 12% on
    /// uniform random weights, the worst case for a 4-bit grid (real weights are bell-shaped).
    func testQ4ProductAgainstFloat32() {
        var rng = LCG(state: 17)
        let m = 3, n = 96, k = 512
        let x = rng.array(m * k), values = rng.array(n * k)
        let y = linear(Matrix(rows: m, cols: k, values: x), Weight(rows: n, cols: k, values: values).quantizedQ4()).toArray()
        let exact = Reference.matmulT(x, values, m: m, n: n, k: k)
        let err = zip(y, exact).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let norm = exact.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertLessThan(err / norm, 0.12)
        XCTAssertGreaterThan(err, 0)
    }

    func testGemvAndWidenedPathAgreeWithTheProduct() {
        var rng = LCG(state: 23)
        let n = 50, k = 128
        let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ4()
        let x = rng.array(k)
        var y = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { gemv(q, xp.baseAddress!, $0.baseAddress!) } }
        XCTAssertEqual(y, linear(Matrix(rows: 1, cols: k, values: x), q).toArray())
        let expected = Reference.matmulT(x, q.toArray(), m: 1, n: n, k: k)
        XCTAssertLessThan(maxAbsDiff(y, expected), Float(k) / 254)
    }
}
