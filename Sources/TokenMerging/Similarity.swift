import Kernels

/// The listed rows of `m`, each divided by max(‖row‖, 1e-12) (PyTorch's `F.normalize`).
/// Official ToMe divides without the epsilon; we use it everywhere so a zero row gives zeros, not NaN.
func normalizedRows(_ m: Matrix, _ indices: [Int]) -> Matrix {
    let out = m.gatherRows(indices)
    let c = out.cols
    parallelFor(out.rows, minPerThread: 32) { range in
        for i in range {
            let row = out.row(i)
            var sumSquares: Float = 0
            for j in 0..<c { sumSquares += row[j] * row[j] }
            let norm = Swift.max(sumSquares.squareRoot(), 1e-12)
            for j in 0..<c { row[j] /= norm }
        }
    }
    return out
}

/// Indices of `values` from largest to smallest value; equal values keep ascending index order.
/// (PyTorch's `argsort` is not stable, so its tie order is unspecified; ours is deterministic.)
func descendingOrder(_ values: [Float]) -> [Int] {
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

/// ‖row‖ in Float32.
func rowNorm(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var s: Float = 0
    for j in 0..<count { s += p[j] * p[j] }
    return s.squareRoot()
}
