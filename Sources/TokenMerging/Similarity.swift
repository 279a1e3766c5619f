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
