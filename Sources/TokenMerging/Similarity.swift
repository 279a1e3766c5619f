import Kernels

/// The listed rows of `m`, each divided by max(‖row‖, 1e-12) (PyTorch's `F.normalize`).
/// Official ToMe divides without the epsilon; we use it everywhere so a zero row gives zeros, not NaN.
/// The norm and the division are done in Double and rounded once, so every row has unit norm to
/// Float32 precision (a Float32 norm would scale whole rows of similarities by its rounding error).
func normalizedRows(_ m: Matrix, _ indices: [Int]) -> Matrix {
    let out = m.gatherRows(indices)
    let c = out.cols
    parallelFor(out.rows, minPerThread: 32) { range in
        for i in range {
            let row = out.row(i)
            let norm = Swift.max(doubleDot(row, row, c).squareRoot(), 1e-12)
            for j in 0..<c { row[j] = Float(Double(row[j]) / norm) }
        }
    }
    return out
}

/// Indices of `values` from largest to smallest value; equal values keep ascending index order.
/// (PyTorch's `argsort` is not stable, so its tie order is unspecified; ours is deterministic.)
func descendingOrder<T: Comparable>(_ values: [T]) -> [Int] {
    values.indices.sorted { a, b in
        values[a] > values[b] || (values[a] == values[b] && a < b)
    }
}

/// The first index holding the largest of `count` values, and that value.
func firstArgmax(_ p: UnsafePointer<Float>, _ count: Int) -> (index: Int, value: Float) {
    precondition(count > 0, "argmax of no values")
    var best = 0
    for j in 1..<count where p[j] > p[best] { best = j }
    return (best, p[best])
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
