import Foundation

/// OpenBLAS's Float32 matrix-product speed on this machine right now, in GFLOP/s: the best of a
/// few `sgemm` calls of shape [m, k] · [n, k]ᵀ on the current thread count.
public func measureSGEMMPeak(m: Int = 577, n: Int = 4096, k: Int = 1024, repeats: Int = 5) -> Double {
    let a = Matrix(rows: m, cols: k), b = Matrix(rows: n, cols: k), c = Matrix(rows: m, cols: n)
    for i in 0..<a.count { a.data[i] = Float(i % 7) * 0.01 }
    for i in 0..<b.count { b.data[i] = Float(i % 5) * 0.01 }
    var best = Double.infinity
    for _ in 0...repeats {
        let start = DispatchTime.now()
        sgemm(.none, .transposed, m, n, k, 1, a.data, k, b.data, k, 0, c.data, n)
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }
    return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
}
