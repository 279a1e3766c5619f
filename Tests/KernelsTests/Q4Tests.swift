import FixtureLocations
import Foundation
import CKernels
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

    /// On every kernel path: the integer product (AVX2, VNNI) or the widened weights (base).
    func testQ4ProductMatchesItsDequantizedWeights() throws {
        KernelPath.forEachAvailable { path in
            var rng = LCG(state: 11)
            for (m, n, k) in [(1, 70, 64), (1, 513, 256), (5, 33, 32), (13, 47, 128), (40, 200, 640)] {
                let x = rng.array(m * k)
                let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ4()
                let y = linear(Matrix(rows: m, cols: k, values: x), q).toArray()
                let expected = Reference.matmulT(x, q.toArray(), m: m, n: n, k: k)
                // Activations round to max|x| / 254 per block: ≤ Σ|w| · 1 / 254 ≤ k / 254.
                XCTAssertLessThan(maxAbsDiff(y, expected), Float(k) / 254, "\(path): \(m)x\(n)x\(k)")
                let mean = zip(y, expected).map { abs($0 - $1) }.reduce(0, +) / Float(m * n)
                XCTAssertLessThan(mean, 0.02 * Float(k).squareRoot() / 16, "\(path): \(m)x\(n)x\(k)")
            }
        }
    }

    /// The AVX2 and VNNI 4-bit products sum the same integers and scale them identically: equal
    /// bit for bit (every row tile and partial column group).
    func testQ4AVX2MatchesVNNI() throws {
        guard KernelPath.best >= .vnni else { throw XCTSkip("this CPU has no AVX-512 VNNI (best path \(KernelPath.best))") }
        var rng = LCG(state: 5)
        for (m, n, k) in [(1, 70, 64), (3, 33, 32), (7, 47, 128), (40, 200, 640)] {
            let x = Matrix(rows: m, cols: k, values: rng.array(m * k))
            let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ4()
            let vnni = KernelPath.with(.vnni) { linear(x, q).toArray().map(\.bitPattern) }
            let avx2 = KernelPath.with(.avx2) { linear(x, q).toArray().map(\.bitPattern) }
            XCTAssertTrue(avx2 == vnni, "\(m)x\(n)x\(k): \(zip(avx2, vnni).filter { $0 != $1 }.count) outputs differ")
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
        KernelPath.forEachAvailable { _ in gemvAgreesWithTheProduct() }
    }

    func gemvAgreesWithTheProduct() {
        var rng = LCG(state: 23)
        let n = 50, k = 128
        let q = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ4()
        let x = rng.array(k)
        var y = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { gemv(q, xp.baseAddress!, $0.baseAddress!) } }
        XCTAssertEqualArrays(y, linear(Matrix(rows: 1, cols: k, values: x), q).toArray())
        let expected = Reference.matmulT(x, q.toArray(), m: 1, n: n, k: k)
        XCTAssertLessThan(maxAbsDiff(y, expected), Float(k) / 254)
    }
}

/// The integer products against a scalar reference that does what the kernels state: exact integer
/// block sums, then per block `acc = fma(Float(sum), weightScale · activationScale, acc)`. Every
/// kernel path with an integer product must equal it bit for bit, so the AVX2, VNNI and AMX
/// kernels equal one another on any CPU that runs them.
final class IntegerProductReferenceTests: XCTestCase {
    /// Activations as the kernels quantize them: per row and block, q = round(x / s), s = max|x| / 127.
    func quantize(_ x: [Float], block: Int) -> (q: [Int32], s: [Float]) {
        var q = [Int32](repeating: 0, count: x.count), s = [Float]()
        for b in stride(from: 0, to: x.count, by: block) {
            let amax = x[b..<(b + block)].map { abs($0) }.max()!
            let scale = amax / 127, inv = scale > 0 ? 1 / scale : 0
            s.append(scale)
            for c in b..<(b + block) { q[c] = Int32((x[c] * inv).rounded(.toNearestOrEven)) }
        }
        return (q, s)
    }

    /// y[j] for one activation row: `weights(j, c)` is the integer weight, `scale(j, b)` its block's scale.
    func reference(_ x: [Float], n: Int, block: Int, weights: (Int, Int) -> Int32, scale: (Int, Int) -> Float) -> [Float] {
        let (q, s) = quantize(x, block: block)
        return (0..<n).map { j in
            var acc: Float = 0
            for b in 0..<(x.count / block) {
                var sum: Int32 = 0
                for c in (b * block)..<((b + 1) * block) { sum += q[c] * weights(j, c) }
                acc = acc.addingProduct(Float(sum), scale(j, b) * s[b])
            }
            return acc
        }
    }

    func testQ4AndInt8ProductsEqualTheScalarReferenceOnEveryPath() throws {
        var rng = LCG(state: 41)
        let (m, n, k) = (6, 37, 256)
        let x = rng.array(m * k), values = rng.array(n * k)
        let q4 = Weight(rows: n, cols: k, values: values).quantizedQ4()
        guard case .q4(let p4) = q4.storage else { throw XCTSkip("not quantized") }
        let dq4 = q4.toArray()
        let d4 = { (j: Int, b: Int) -> Float in Float(Float16(bitPattern: p4.scales[((j / 16) * (k / 32) + b) * 16 + j % 16])) }
        let w4 = { (j: Int, c: Int) -> Int32 in let d = d4(j, c / 32); return d == 0 ? 0 : Int32(dq4[j * k + c] / d) }
        let q8 = Weight(rows: n, cols: k, values: values).quantizedQ8()
        guard case .q8(let p8) = q8.storage else { throw XCTSkip("not quantized") }
        let block8 = p8.block
        let s8 = { (j: Int, b: Int) -> Float in p8.scales[((j / 16) * (k / block8) + b) * 16 + j % 16] }
        let w8 = { (j: Int, c: Int) -> Int32 in
            Int32(p8.values[(j / 16) * 16 * k + (c / 4) * 64 + (j % 16) * 4 + c % 4])
        }
        var expected4 = [Float](), expected8 = [Float]()
        for i in 0..<m {
            let row = Array(x[(i * k)..<((i + 1) * k)])
            expected4 += reference(row, n: n, block: 32, weights: w4, scale: d4)
            expected8 += reference(row, n: n, block: block8, weights: w8, scale: s8)
        }
        var ran: [String] = []
        try KernelPath.forEachAvailable { path in
            let input = Matrix(rows: m, cols: k, values: x)
            if k_q4_available() != 0 {
                XCTAssertBitwiseEqual(linear(input, q4).toArray(), expected4, "\(path): q4")
                ran.append("\(path) q4")
            }
            for kernel in Int8Kernel.allCases where kernel.isAvailable {
                guard case .q8(let p) = q8.storage else { throw XCTSkip("not quantized") }
                var y = [Float](repeating: .nan, count: m * n)
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        int8Product(xp.baseAddress!, rows: m, ldx: k, p, into: yp.baseAddress!, ldy: n, kernel: kernel)
                    }
                }
                XCTAssertBitwiseEqual(y, expected8, "\(path): int8 \(kernel.name)")
                ran.append("\(path) int8 \(kernel.name)")
            }
        }
        XCTAssertFalse(ran.isEmpty || KernelPath.best >= .avx2 && !ran.contains("avx2 q4"), "ran: \(ran)")
    }
}
