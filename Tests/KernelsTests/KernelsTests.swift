import FixtureLocations
import Foundation
import XCTest

@testable import Kernels

/// Plain reference implementations, written for clarity.
enum Reference {
    static func matmulT(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for t in 0..<k { acc += Double(x[i * k + t]) * Double(w[j * k + t]) }
                y[i * n + j] = Float(acc)
            }
        }
        return y
    }
}

struct LCG {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 - 1
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}


final class KernelsTests: XCTestCase {
    func halfWeight(_ values: [Float], rows: Int, cols: Int) -> (Weight, [Float]) {
        let bits = values.map { Float16($0).bitPattern }
        let m = Matrix(rows: 1, cols: (bits.count + 1) / 2)
        bits.withUnsafeBytes { UnsafeMutableRawPointer(m.data).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let w = Weight(rows: rows, cols: cols, storage: .f16(UnsafeRawPointer(m.data).assumingMemoryBound(to: UInt16.self)), owner: m)
        return (w, values.map { Float(Float16($0)) })
    }

    func bf16Weight(_ values: [Float], rows: Int, cols: Int) -> (Weight, [Float]) {
        let bits = values.map { UInt16($0.bitPattern >> 16) }
        let m = Matrix(rows: 1, cols: (bits.count + 1) / 2)
        bits.withUnsafeBytes { UnsafeMutableRawPointer(m.data).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let w = Weight(rows: rows, cols: cols, storage: .bf16(UnsafeRawPointer(m.data).assumingMemoryBound(to: UInt16.self)), owner: m)
        return (w, bits.map { Float(bitPattern: UInt32($0) << 16) })
    }

    func testLinearMatchesReferenceForEveryStorageAndShape() {
        var rng = LCG(state: 7)
        for (m, n, k) in [(1, 37, 19), (1, 1030, 4099), (5, 64, 33), (17, 300, 70), (3, 2000, 600), (7, 9, 5), (150, 70, 40)] {
            let x = rng.array(m * k), wv = rng.array(n * k), bias = rng.array(n)
            let input = Matrix(rows: m, cols: k, values: x)
            let variants: [(String, Weight, [Float])] = [
                ("f32", Weight(rows: n, cols: k, values: wv), wv),
                ("f16", halfWeight(wv, rows: n, cols: k).0, halfWeight(wv, rows: n, cols: k).1),
                ("bf16", bf16Weight(wv, rows: n, cols: k).0, bf16Weight(wv, rows: n, cols: k).1),
            ]
            for (name, w, exact) in variants {
                var expected = Reference.matmulT(x, exact, m: m, n: n, k: k)
                for i in 0..<m { for j in 0..<n { expected[i * n + j] += bias[j] } }
                let y = linear(input, w, bias: bias)
                XCTAssertLessThan(maxAbsDiff(y.toArray(), expected), 2e-4 * Float(k).squareRoot(), "\(name) \(m)x\(n)x\(k)")
            }
        }
    }

    /// Several weights on one input in one pass (decoding's q, k, v and gate, up) give exactly what
    /// one product per weight gives, for every storage, on one and on several threads.
    func testFusedProductsEqualOneProductPerWeight() {
        var rng = LCG(state: 19)
        let k = 256
        let before = Threads.count
        defer { Threads.set(before) }
        for m in [1, 3] {
            let input = Matrix(rows: m, cols: k, values: rng.array(m * k))
            let shapes = [2048, 256, 40]
            let f32 = shapes.map { Weight(rows: $0, cols: k, values: rng.array($0 * k)) }
            let f16 = shapes.map { halfWeight(rng.array($0 * k), rows: $0, cols: k).0 }
            for (name, weights) in [("f32", f32), ("f16", f16), ("q8", f16.map { $0.quantizedQ8() }),
                                    ("q4", f16.map { $0.quantizedQ4() }), ("mixed", [f16[0], f32[1], f16[2].quantizedQ8()])] {
                for threads in [1, 2, 3] {
                    Threads.set(threads)
                    let separate = weights.map { linear(input, $0).toArray() }
                    let outputs = weights.map { Matrix(rows: m, cols: $0.rows) }
                    linear(input, weights, into: outputs)
                    XCTAssertEqual(outputs.map { $0.toArray() }, separate, "\(name), \(m) rows, \(threads) threads")
                }
            }
        }
    }

    /// Weight tiles come from the shape alone (so the thread count changes no value), cover every
    /// row once, and give up to 16 threads work on the wide layers.
    func testWeightTilesCoverEveryRowFromTheShapeAlone() {
        for (n, k) in [(5632, 2048), (4096, 1024), (1024, 1024), (32064, 2048), (70, 40), (1, 5), (1000, 100_000)] {
            let (rows, count) = weightTiles(n: n, k: k)
            XCTAssertGreaterThanOrEqual(rows * count, n, "\(n)x\(k)")
            XCTAssertLessThan((count - 1) * rows, n, "\(n)x\(k): an empty tile")
            XCTAssertTrue(rows % 16 == 0, "\(n)x\(k): \(rows) rows")
            XCTAssertLessThanOrEqual(rows * k, max(16 * k, 1 << 20), "\(n)x\(k): a tile over 4 MB")
            if n >= 2048 && k <= 4096 { XCTAssertGreaterThanOrEqual(count, 16, "\(n)x\(k): \(count) tiles") }
        }
    }

    /// Prompt products in int8 and 4 bits are cut into (column groups, row block) units; with many
    /// threads the rows are cut too. Every output is computed once, and the units share out well.
    func testProductSplitCoversEveryOutputOnceAndSharesOut() {
        for (m, rowGroups) in [(577, 64), (577, 256), (60, 64), (17, 4), (16, 64), (3, 64), (1, 128), (1000, 2)] {
            for threads in [1, 2, 3, 16, 64] {
                let split = ProductSplit(rows: m, rowGroups: rowGroups, threads: threads)
                var covered = [Int](repeating: 0, count: m * rowGroups)
                // Contiguous shares, as parallelFor hands them out.
                let chunk = max(1, (split.units + threads - 1) / threads)
                for start in stride(from: 0, to: split.units, by: chunk) {
                    split.forEachCall(start..<min(split.units, start + chunk)) { r0, r1, nb0, nb1 in
                        XCTAssertTrue(r0 < r1 && nb0 < nb1)
                        for r in r0..<r1 { for g in nb0..<nb1 { covered[r * rowGroups + g] += 1 } }
                    }
                }
                XCTAssertEqual(Set(covered), [1], "\(m) rows, \(rowGroups) groups, \(threads) threads")
                XCTAssertTrue(split.blockRows == m || split.blockRows % 16 == 0, "\(m) rows: blocks of \(split.blockRows)")
                if m > 16 * threads { XCTAssertGreaterThanOrEqual(split.units, min(2 * threads, split.columnUnits * m / 16)) }
                if split.columnUnits >= 2 * threads { XCTAssertEqual(split.blocks, 1, "enough column units keep the rows whole") }
            }
        }
        // A 1024-wide layer over 577 tokens on 16 threads: 22 column units alone would keep 5
        // threads waiting; with the rows in two blocks there are 44.
        XCTAssertEqual(ProductSplit(rows: 577, rowGroups: 64, threads: 16).units, 44)
    }

    /// int8 and 4-bit prompt products give the same bits on any thread count (the row split of
    /// many threads included).
    func testQuantizedProductsAreTheSameOnAnyThreadCount() {
        var rng = LCG(state: 29)
        let (m, n, k) = (100, 1024, 256)
        let input = Matrix(rows: m, cols: k, values: rng.array(m * k))
        let w = Weight(rows: n, cols: k, values: rng.array(n * k))
        let before = Threads.count
        defer { Threads.set(before) }
        KernelPath.forEachAvailable { path in
            for (name, weight) in [("q8", w.quantizedQ8()), ("q4", w.quantizedQ4())] {
                for rows in [m, 1] {
                    let x = Matrix(rows: rows, cols: k, values: Array(input.toArray()[0..<(rows * k)]))
                    Threads.set(1)
                    let one = linear(x, weight).toArray()
                    for threads in [2, 3, 4, 16] {
                        Threads.set(threads)
                        XCTAssertBitwiseEqual(linear(x, weight).toArray(), one, "\(path) \(name), \(rows) rows, \(threads) threads")
                    }
                }
            }
        }
    }

    /// Inputs of any length with F16 and F32 weights (in-register products for short inputs, tiles
    /// widened for sgemm for long ones) give the same values on any thread count.
    func testWidenedProductsAreTheSameOnAnyThreadCount() {
        var rng = LCG(state: 23)
        let (m, n, k) = (200, 3000, 1500)
        let input = Matrix(rows: m, cols: k, values: rng.array(m * k))
        let (w, exact) = halfWeight(rng.array(n * k), rows: n, cols: k)
        let f32 = Weight(rows: n, cols: k, values: exact)
        let before = Threads.count
        defer { Threads.set(before) }
        KernelPath.forEachAvailable { path in
            for rows in [m, 37, 2, 1] {
                let x = Matrix(rows: rows, cols: k, values: Array(input.toArray()[0..<(rows * k)]))
                for (name, weight) in [("f16", w), ("f32", f32)] {
                    Threads.set(1)
                    let one = linear(x, weight).toArray()
                    let check = min(rows, 3)
                    let expected = Reference.matmulT(Array(x.toArray()[0..<(check * k)]), exact, m: check, n: n, k: k)
                    XCTAssertLessThan(maxAbsDiff(Array(one[0..<(check * n)]), expected), 1e-3, "\(path) \(name), \(rows) rows")
                    for threads in [2, 3, 4, 16] {
                        Threads.set(threads)
                        XCTAssertBitwiseEqual(linear(x, weight).toArray(), one, "\(path) \(name), \(rows) rows, \(threads) threads")
                    }
                }
            }
        }
    }

    func testHalfWideningIsExact() {
        let values: [Float] = [0, -0.0, 1, 65504, -65504, 6.1035156e-05, 5.9604645e-08, 0.33325195, .infinity]
        let (w, exact) = halfWeight(values, rows: 1, cols: values.count)
        XCTAssertEqual(w.rowArray(0), exact)
    }

    func testNormsAndActivations() {
        var rng = LCG(state: 3)
        let c = 37
        let x = rng.array(2 * c), w = rng.array(c), b = rng.array(c)
        let m = Matrix(rows: 2, cols: c, values: x)
        let ln = Matrix(rows: 2, cols: c)
        layerNorm(m, weight: w, bias: b, eps: 1e-5, into: ln)
        let rms = Matrix(rows: 2, cols: c)
        rmsNorm(m, weight: w, eps: 1e-6, into: rms)
        for r in 0..<2 {
            let row = Array(x[r * c..<(r + 1) * c]).map(Double.init)
            let mean = row.reduce(0, +) / Double(c)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
            let ms = row.map { $0 * $0 }.reduce(0, +) / Double(c)
            for j in 0..<c {
                XCTAssertEqual(ln[r, j], Float((row[j] - mean) / (variance + 1e-5).squareRoot() * Double(w[j]) + Double(b[j])), accuracy: 1e-5)
                XCTAssertEqual(rms[r, j], Float(row[j] / (ms + 1e-6).squareRoot() * Double(w[j])), accuracy: 1e-5)
            }
        }
        let inputs: [Float] = [-9, -3, -1, -0.25, 0, 0.25, 1, 3, 9, 80, -80]
        let q = Matrix(rows: 1, cols: inputs.count, values: inputs)
        activate(q, .quickGelu)
        let g = Matrix(rows: 1, cols: inputs.count, values: inputs)
        activate(g, .gelu)
        let s = Matrix(rows: 1, cols: inputs.count, values: inputs)
        activate(s, .silu)
        for (i, v) in inputs.enumerated() {
            let d = Double(v)
            XCTAssertEqual(q[0, i], Float(d / (1 + exp(-1.702 * d))), accuracy: 1e-6 * max(1, abs(v)))
            XCTAssertEqual(g[0, i], Float(0.5 * d * (1 + erf(d / 2.0.squareRoot()))), accuracy: 1e-6 * max(1, abs(v)))
            XCTAssertEqual(s[0, i], Float(d / (1 + exp(-d))), accuracy: 1e-6 * max(1, abs(v)))
        }
    }

    func testSoftmaxIsAccurateAcrossRanges() {
        let row: [Float] = [-100, -20, -3.5, 0, 1e-3, 2.25, 10, 30]
        let m = Matrix(rows: 1, cols: row.count, values: row)
        softmaxRows(m)
        let mx = Double(row.max()!)
        let e = row.map { exp(Double($0) - mx) }
        let sum = e.reduce(0, +)
        for i in row.indices {
            XCTAssertEqual(Double(m[0, i]), e[i] / sum, accuracy: 1e-7 + 2e-6 * e[i] / sum)
        }
    }

    /// Attention against a direct loop, with GQA, causal offsets, key bias and the CLS row.
    func testAttentionMatchesDirectComputation() {
        checkAttention(m: 5, past: 3)
        // More queries than one block of 128, so causal blocks see different key ranges.
        checkAttention(m: 300, past: 40)
        // Without a key bias or CLS read-out: up to `rowByRowQueries` rows go row by row (decoding),
        // more go through products; both against the same direct computation.
        for m in 1...(rowByRowQueries + 1) {
            checkAttention(m: m, past: 37, biasAndCLS: false)
        }
        checkAttention(m: 1, past: 0, biasAndCLS: false)
        // The head sizes with a vectorised row-by-row kernel (64, 128), groups of 1 to 8 heads.
        for (d, heads, kvHeads) in [(64, 32, 4), (64, 6, 2), (128, 5, 5), (128, 8, 1), (48, 4, 2)] {
            checkAttention(m: 1, past: 70, biasAndCLS: false, heads: heads, kvHeads: kvHeads, d: d)
            checkAttention(m: 3, past: 5, biasAndCLS: false, heads: heads, kvHeads: kvHeads, d: d)
        }
    }

    func checkAttention(m: Int, past: Int, biasAndCLS: Bool = true, heads: Int = 4, kvHeads: Int = 2, d: Int = 8) {
        var rng = LCG(state: 11)
        let n = past + m
        let q = rng.array(m * heads * d), k = rng.array(n * kvHeads * d), v = rng.array(n * kvHeads * d)
        let bias = rng.array(n)
        for causal in [false, true] {
            var out = [Float](repeating: 0, count: m * heads * d)
            var cls = [Float](repeating: 0, count: n)
            let shape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: d)
            q.withUnsafeBufferPointer { qp in
                k.withUnsafeBufferPointer { kp in
                    v.withUnsafeBufferPointer { vp in
                        bias.withUnsafeBufferPointer { bp in
                            cls.withUnsafeMutableBufferPointer { cp in
                                attention(q: qp.baseAddress!, ldq: heads * d, k: kp.baseAddress!, ldk: kvHeads * d,
                                          v: vp.baseAddress!, ldv: kvHeads * d, out: &out, ldo: heads * d,
                                          queries: m, keys: n, shape: shape, causalOffset: causal ? past : nil,
                                          keyBias: biasAndCLS ? bp.baseAddress! : nil,
                                          clsAttention: biasAndCLS ? cp.baseAddress! : nil)
                            }
                        }
                    }
                }
            }
            var expectedCLS = [Double](repeating: 0, count: n)
            for h in 0..<heads {
                let g = h / (heads / kvHeads)
                for i in 0..<m {
                    let visible = causal ? past + i + 1 : n
                    var logits = (0..<visible).map { j -> Double in
                        var s = 0.0
                        for t in 0..<d { s += Double(q[i * heads * d + h * d + t]) * Double(k[j * kvHeads * d + g * d + t]) }
                        return s / Double(d).squareRoot() + (biasAndCLS ? Double(bias[j]) : 0)
                    }
                    let mx = logits.max()!
                    logits = logits.map { exp($0 - mx) }
                    let sum = logits.reduce(0, +)
                    if i == 0 { for j in 0..<visible { expectedCLS[j] += logits[j] / sum / Double(heads) } }
                    for t in 0..<d {
                        var acc = 0.0
                        for j in 0..<visible { acc += logits[j] / sum * Double(v[j * kvHeads * d + g * d + t]) }
                        XCTAssertEqual(out[i * heads * d + h * d + t], Float(acc), accuracy: 1e-5,
                                       "head \(h) of \(heads) (\(kvHeads) kv), d \(d), row \(i) of \(m)")
                    }
                }
            }
            if biasAndCLS { for j in 0..<n { XCTAssertEqual(cls[j], Float(expectedCLS[j]), accuracy: 1e-6) } }
        }
    }

    func testThreadCountReachesBLAS() {
        let before = Threads.count
        Threads.set(1)
        XCTAssertEqual(Threads.count, 1)
        var hits = [Int](repeating: 0, count: 100)
        hits.withUnsafeMutableBufferPointer { p in
            parallelFor(100) { range in for i in range { p[i] += 1 } }
        }
        XCTAssertEqual(hits, Array(repeating: 1, count: 100))
        Threads.set(before)
    }
}

final class DoubleDotTests: XCTestCase {
    /// The plain loop `doubleDots` replaces (four running sums, leftovers to the first).
    func plainDot(_ a: [Float], _ b: ArraySlice<Float>) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var k = 0
        let b = Array(b)
        while k + 4 <= a.count {
            s0 += Double(a[k]) * Double(b[k])
            s1 += Double(a[k + 1]) * Double(b[k + 1])
            s2 += Double(a[k + 2]) * Double(b[k + 2])
            s3 += Double(a[k + 3]) * Double(b[k + 3])
            k += 4
        }
        while k < a.count {
            s0 += Double(a[k]) * Double(b[k])
            k += 1
        }
        return (s0 + s1) + (s2 + s3)
    }

    func testBatchedDoubleDotsEqualThePlainLoopBitForBit() {
        var rng = LCG(state: 31)
        for (count, length) in [(1, 3), (5, 8), (7, 1024), (9, 1027), (16, 130)] {
            let a = rng.array(length).map { $0 * 1e3 }
            let rows = rng.array(count * (length + 2)).map { $0 * 1e-2 }
            var out = [Double](repeating: .nan, count: count)
            rows.withUnsafeBufferPointer { r in
                doubleDots(a, rows: r.baseAddress!, ld: length + 2, count: count, length: length, into: &out)
            }
            for j in 0..<count {
                let expected = plainDot(a, rows[(j * (length + 2))..<(j * (length + 2) + length)])
                XCTAssertEqual(out[j].bitPattern, expected.bitPattern, "row \(j) of \(count), length \(length)")
            }
        }
    }
}

final class TokenProductTests: XCTestCase {
    /// The loop `firstArgmax` replaces.
    func plainArgmax(_ x: [Float]) -> Int {
        var best = 0
        for j in 1..<x.count where x[j] > x[best] { best = j }
        return best
    }

    func testFirstArgmaxFindsTheFirstLargestLikeThePlainLoop() {
        var rng = LCG(state: 7)
        for n in [1, 2, 15, 16, 17, 31, 32, 33, 288, 577] {
            var cases = [rng.array(n), [Float](repeating: 0.5, count: n)]
            // Ties with the maximum in several places, and NaNs (never the winner unless first).
            var ties = rng.array(n).map { ($0 * 4).rounded() }
            if n > 3 { ties[n / 2] = .nan }
            cases.append(ties)
            var nanFirst = rng.array(n)
            nanFirst[0] = .nan
            cases.append(nanFirst)
            for x in cases {
                let (index, value) = x.withUnsafeBufferPointer { firstArgmax($0.baseAddress!, n) }
                XCTAssertEqual(index, plainArgmax(x), "n = \(n), values \(x.prefix(8))")
                XCTAssertEqual(value.bitPattern, x[index].bitPattern)
            }
        }
    }

    func testNormalizedRowsHaveUnitNormAndZeroRowsStayZero() {
        var rng = LCG(state: 11)
        let m = Matrix(rows: 40, cols: 1027, values: rng.array(40 * 1027).map { $0 * 1e3 })
        m.row(5).update(repeating: 0, count: m.cols)
        let picked = [5, 0, 39, 17, 17]
        let out = normalizedRows(m, picked)
        XCTAssertEqual(out.rows, picked.count)
        for (i, r) in picked.enumerated() {
            let src = m.rowArray(r), got = out.rowArray(i)
            let norm = src.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            for j in 0..<m.cols {
                let expected = norm == 0 ? 0 : Float(Double(src[j]) / norm)
                XCTAssertEqual(got[j], expected, accuracy: 1e-7 * max(1, abs(expected)), "row \(r) column \(j)")
            }
        }
    }

    func testTokenProductsAreTheSameOnAnyThreadCount() {
        var rng = LCG(state: 3)
        let a = Matrix(rows: 289, cols: 1024, values: rng.array(289 * 1024))
        let b = Matrix(rows: 288, cols: 1024, values: rng.array(288 * 1024))
        let before = Threads.count
        defer { Threads.set(before) }
        Threads.set(1)
        let one = matmulTransposed(a, b)
        let expected = Reference.matmulT(a.toArray(), b.toArray(), m: 289, n: 288, k: 1024)
        XCTAssertLessThan(maxAbsDiff(one.toArray(), expected), 1e-3)
        for threads in [2, 3, 4, 16] {
            Threads.set(threads)
            XCTAssertBitwiseEqual(matmulTransposed(a, b).toArray(), one.toArray(), "\(threads) threads")
        }
    }
}
