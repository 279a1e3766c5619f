import CKernels

/// C = A · Bᵀ (A [M, K], B [N, K], C [M, N]) where every element is one fixed chain of fused
/// multiply-adds: the K products are cut into blocks of `block` values from the start, each block
/// is summed by FMAs from zero in column order, and the block sums are added in order.
///
/// The value of an element depends on its two rows and `block` alone, never on the shape, the
/// thread count or the instruction set, so that a reduction can reproduce the rounding of a
/// reference implementation that sums in this order. Rows of A are shared out over the pool in
/// groups of four.
public func fmaChainProducts(_ a: Matrix, _ b: Matrix, block: Int) -> Matrix {
    precondition(a.cols == b.cols, "fmaChainProducts: \(a.cols) and \(b.cols) columns")
    precondition(block >= 1, "fmaChainProducts: block \(block) must be at least 1")
    let m = a.rows, n = b.rows, k = a.cols
    let c = Matrix(uninitializedRows: m, cols: n)
    if m == 0 || n == 0 { return c }
    // Bᵀ, so that eight output columns are one load at each step of the chains.
    let bt = Matrix(uninitializedRows: k, cols: n)
    for j in 0..<n {
        let src = b.row(j)
        for p in 0..<k { bt.data[p * n + j] = src[p] }
    }
    parallelFor((m + 3) / 4, minPerThread: 1, workPerItem: 4 * n * k / 8) { groups in
        let i0 = groups.lowerBound * 4, i1 = Swift.min(m, groups.upperBound * 4)
        k_fma_chain_products(a.row(i0), k, i1 - i0, bt.data, n, n, k, block, c.row(i0), n)
    }
    return c
}
