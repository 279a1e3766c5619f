import Kernels

/// Indices of `values` from largest to smallest value; equal values keep ascending index order.
/// (PyTorch's `argsort` is not stable, so its tie order is unspecified; ours is deterministic.)
func descendingOrder<T: Comparable>(_ values: [T]) -> [Int] {
    values.indices.sorted { a, b in
        values[a] > values[b] || (values[a] == values[b] && a < b)
    }
}

/// ‖row‖, accumulated in Double.
func rowNorm(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    Float(doubleDot(p, p, count).squareRoot())
}

/// Σ a[k]·b[k] accumulated in Double (each Float product is exact in Double), four running sums.
func doubleDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Double {
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    var k = 0
    while k + 4 <= count {
        s0 += Double(a[k]) * Double(b[k])
        s1 += Double(a[k + 1]) * Double(b[k + 1])
        s2 += Double(a[k + 2]) * Double(b[k + 2])
        s3 += Double(a[k + 3]) * Double(b[k + 3])
        k += 4
    }
    while k < count {
        s0 += Double(a[k]) * Double(b[k])
        k += 1
    }
    return (s0 + s1) + (s2 + s3)
}

// Float32 in the order of the official PyTorch code -------------------------------------------
// The official VisPruner and CDPruner rank tokens by Float32 values that often tie or nearly tie
// (mutual nearest neighbours, duplicated patches), so the helpers below round as PyTorch 2.13 on
// an AVX2 CPU does (measured against it: bit for bit on the shapes noted), not in Double.

/// Indices from largest to smallest value as PyTorch's descending sort orders them: NaN first,
/// then the values; equal values keep ascending index order (a stable sort; PyTorch's default
/// sort is not stable, so its order of ties is unspecified).
func torchDescendingOrder(_ values: [Float]) -> [Int] {
    values.indices.sorted { a, b in
        let x = values[a], y = values[b]
        if x.isNaN || y.isNaN { return x.isNaN && (!y.isNaN || a < b) }
        return x > y || (x == y && a < b)
    }
}

/// The first index of the largest value, a NaN counting as largest (PyTorch's `argmax`), among
/// the indices for which `allowed` is true; nil when there is none.
func torchArgmax(_ values: [Float], allowed: (Int) -> Bool) -> Int? {
    var best: Int?
    for i in values.indices where allowed(i) {
        guard let b = best else { best = i; continue }
        if values[b].isNaN { break }
        if values[i].isNaN || values[i] > values[b] { best = i }
    }
    return best
}

/// Each row divided by its norm as `x / x.norm(dim=-1, keepdim=True)` computes it: the squares
/// summed in eight lanes (lane l takes the columns ≡ l mod 8 of the whole groups of eight, a
/// product and an add each, no FMA), the lanes added in order, the leftover columns added one by
/// one, then the Float32 square root and one division per value. Bit for bit when the width is a
/// multiple of 8. A zero row stays zero (the official code divides it by zero: NaN).
func torchNormalizedRows(_ x: Matrix) -> Matrix {
    let out = Matrix(uninitializedRows: x.rows, cols: x.cols)
    let c = x.cols, whole = c / 8 * 8
    for r in 0..<x.rows {
        let p = x.row(r), o = out.row(r)
        var lanes = SIMD8<Float>(repeating: 0)
        var k = 0
        while k < whole {
            let v = SIMD8<Float>(UnsafeBufferPointer(start: p + k, count: 8))
            lanes = lanes + v * v
            k += 8
        }
        var sum = lanes[0]
        for l in 1..<8 { sum = sum + lanes[l] }
        while k < c {
            sum = sum + p[k] * p[k]
            k += 1
        }
        let norm = sum.squareRoot()
        if norm == 0 {
            o.update(repeating: 0, count: c)
        } else {
            for j in 0..<c { o[j] = p[j] / norm }
        }
    }
    return out
}

/// The block of the inner dimension over which MKL's single-precision product (PyTorch 2.13's
/// products of Float32 matrices of at least 12 rows and columns) sums one chain of fused
/// multiply-adds: all of k up to 192, two halves up to 384, then 192 at a time.
func mklProductBlock(_ k: Int) -> Int {
    k <= 192 ? Swift.max(k, 1) : k <= 384 ? k / 2 : 192
}

/// A · Bᵀ rounded as PyTorch 2.13 (MKL) computes `a @ b.T` for Float32 matrices of at least 12
/// rows and columns.
func torchProducts(_ a: Matrix, _ b: Matrix) -> Matrix {
    fmaChainProducts(a, b, block: mklProductBlock(a.cols))
}

/// a · b summed as PyTorch 2.13 (MKL) sums each element of a Float32 product with two to a few
/// columns (a matrix times a narrow matrix): eight lanes (lane l takes the columns ≡ l mod 8 of
/// the whole groups of eight, a product and an add each, no FMA), halved as a tree (l + 4, then
/// l + 2, then l + 1), then the leftover columns added one by one.
func torchNarrowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: 0)
    var k = 0
    while k + 8 <= count {
        lanes = lanes + SIMD8<Float>(UnsafeBufferPointer(start: a + k, count: 8)) * SIMD8<Float>(UnsafeBufferPointer(start: b + k, count: 8))
        k += 8
    }
    let four = lanes.lowHalf + lanes.highHalf
    let two = four.lowHalf + four.highHalf
    var sum = two[0] + two[1]
    while k < count {
        sum = sum + a[k] * b[k]
        k += 1
    }
    return sum
}
