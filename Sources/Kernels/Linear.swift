import CKernels
import Foundation

/// y = x · Wᵀ (+ bias): x [M, K], W [N, K] (PyTorch Linear layout), y [M, N].
///
/// - M = 1 (decoding): a GEMV that reads the weight in its stored type, split over threads.
/// - f32 weights: `sgemm` straight on the (mapped) weight, in blocks of output columns.
/// - f16/bf16/int8 weights: the weight is widened in tiles of rows into a scratch buffer and each
///   tile goes through `sgemm`, so no second Float32 copy of the checkpoint exists.
/// Long products run on the worker pool with single-threaded BLAS calls. The blocks each call
/// computes depend on the product's shape only, never on the thread count: OpenBLAS's kernels
/// round an element differently depending on where it falls in the block they are given (its
/// AVX2 kernels do), so blocks cut per thread would change results with the thread count.
public func linear(_ x: Matrix, _ w: Weight, bias: [Float]? = nil, into y: Matrix) {
    precondition(x.cols == w.cols, "linear: input has \(x.cols) features, weight expects \(w.cols)")
    precondition(y.cols == w.rows, "linear: output has \(y.cols) features, weight gives \(w.rows)")
    y.rows = x.rows
    let m = x.rows, n = w.rows, k = w.cols
    if m == 0 { return }
    if case .q8(let p) = w.storage, let kernel = Int8Kernel.best(rows: m) {
        int8Product(x.data, rows: m, ldx: x.cols, p, into: y.data, ldy: y.cols, kernel: kernel)
    } else if case .q4(let p) = w.storage, k_q4_available() != 0 {
        q4Product(x.data, rows: m, ldx: x.cols, p, into: y.data, ldy: y.cols)
    } else if m == 1 {
        gemv(w, x.data, y.data)
    } else if m == 2, case .f32 = w.storage {
        // Two rows of Float32 weights: sgemm cost 1.6x per row what one matrix-vector product
        // does (kernel-bench rows, AVX2), so each row reads the weights on its own.
        for r in 0..<m { gemv(w, x.row(r), y.row(r)) }
    } else if m <= smallProductRows, let (p, bf16) = w.halfStorage {
        parallelFor((n + 3) / 4, minPerThread: blocksPerThread(m * 4 * k)) { groups in
            k_gemm_half(x.data, m, k, p, k, k, groups.lowerBound * 4, min(n, groups.upperBound * 4), y.data, n, bf16 ? 1 : 0)
        }
    } else if case .f32(let p) = w.storage {
        // Blocks of output columns over the pool, each one single-threaded sgemm (as below).
        let (block, blocks) = weightTiles(n: n, k: k)
        Threads.withSingleThreadedBLAS {
            parallelFor(blocks, minPerThread: blocksPerThread(m * block * k)) { range in
                for t in range {
                    let c0 = t * block, c1 = min(n, c0 + block)
                    sgemm(.none, .transposed, m, c1 - c0, k, 1, x.data, k, p + c0 * k, k, 0, y.data + c0, n)
                }
            }
        }
    } else {
        // Each thread takes its own tiles of weight rows, widens them into its own scratch and
        // multiplies them on single-threaded BLAS: the threads never wait for one another inside
        // a product, and OpenBLAS's threads never take turns with ours.
        let (tile, tiles) = weightTiles(n: n, k: k)
        Threads.withSingleThreadedBLAS {
            parallelFor(tiles, minPerThread: blocksPerThread(m * tile * k)) { range in
                Scratch.shared.withBuffer(tile * k) { scratch in
                    for t in range {
                        let r0 = t * tile, rows = min(tile, n - r0)
                        w.widenRows(r0, count: rows, into: scratch)
                        sgemm(.none, .transposed, m, rows, k, 1, x.data, k, scratch, k, 0, y.data + r0, n)
                    }
                }
            }
        }
    }
    if let bias { addBias(y, bias) }
}

/// Up to this many rows, F16/BF16 products widen the weights in registers (`k_gemm_half`)
/// instead of into scratch for sgemm: below it the widening, not the arithmetic, dominates. The
/// crossing point depends on the kernel path (kernel-bench rows, 1024 × 1024 on one thread):
/// 128 rows with AVX-512, 16 with AVX2 (the in-register kernel runs 47-50 µs per row at every
/// count, sgemm on widened tiles 44 µs at 16 rows and 26-34 µs from 48 rows, 2-core AMD EPYC);
/// none on the baseline path, whose in-register loop is scalar. Setting it overrides the choice.
public var smallProductRows: Int {
    get {
        if let smallProductRowsOverride { return smallProductRowsOverride }
        let path = KernelPath.current
        return path >= .avx512 ? 128 : path >= .avx2 ? 16 : 0
    }
    set { smallProductRowsOverride = newValue }
}

nonisolated(unsafe) private var smallProductRowsOverride: Int?

/// Convenience: allocates the output.
public func linear(_ x: Matrix, _ w: Weight, bias: [Float]? = nil) -> Matrix {
    let y = Matrix(uninitializedRows: x.rows, cols: w.rows)  // every path writes every value
    linear(x, w, bias: bias, into: y)
    return y
}

/// y[i] = W[i, :] · x for every row of W.
public func gemv(_ w: Weight, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    readyGEMV(w, x, y).runOnThreads()
}

/// y_i = x · W_iᵀ for several weights that read the same input (q, k and v; gate and up). With
/// one input row (decoding) all the products run in one parallel pass, so the threads meet once
/// instead of once per weight; longer inputs run one product after the other.
public func linear(_ x: Matrix, _ weights: [Weight], into outputs: [Matrix]) {
    precondition(weights.count == outputs.count, "linear: \(weights.count) weights for \(outputs.count) outputs")
    guard x.rows == 1 && weights.count > 1 else {
        for (w, y) in zip(weights, outputs) { linear(x, w, into: y) }
        return
    }
    let products = zip(weights, outputs).map { w, y -> ReadyProduct in
        precondition(x.cols == w.cols && y.cols == w.rows, "linear: shapes do not match")
        y.rows = 1
        return readyGEMV(w, x.data, y.data)
    }
    defer { for p in products { p.release() } }
    let total = products.reduce(0) { $0 + $1.units }
    parallelFor(total, minPerThread: products.map(\.minUnitsPerThread).min()!) { range in
        var start = 0
        for p in products {
            let mine = range.clamped(to: start..<(start + p.units))
            if !mine.isEmpty { p.run((mine.lowerBound - start)..<(mine.upperBound - start)) }
            start += p.units
        }
    }
}

/// A product y = x · Wᵀ made ready to run on threads: the input quantized when the weight's
/// kernel needs it, and the outputs cut into `units` that `run` computes, any contiguous range
/// of them on any thread. `release` frees what the preparation allocated.
struct ReadyProduct {
    let units: Int
    let minUnitsPerThread: Int
    let run: (Range<Int>) -> Void
    let release: () -> Void

    func runOnThreads() {
        parallelFor(units, minPerThread: minUnitsPerThread, run)
        release()
    }
}

/// The matrix-vector product y = W · x in the weight's stored type.
func readyGEMV(_ w: Weight, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) -> ReadyProduct {
    let k = w.cols, n = w.rows
    if case .q8(let p) = w.storage, let kernel = Int8Kernel.best(rows: 1) {
        return readyInt8Product(x, rows: 1, ldx: k, p, into: y, ldy: n, kernel: kernel)
    }
    if case .q4(let p) = w.storage, k_q4_available() != 0 {
        return readyQ4Product(x, rows: 1, ldx: k, p, into: y, ldy: n)
    }
    if let (p, bf16) = w.halfStorage {
        // Groups of 8 rows (the kernel's register block), at least 64 rows per thread.
        return ReadyProduct(units: (n + 7) / 8, minUnitsPerThread: max(8, blocksPerThread(8 * k)), run: { range in
            k_gemv_half(p, k, x, y, k, range.lowerBound * 8, min(n, range.upperBound * 8), bf16 ? 1 : 0)
        }, release: {})
    }
    return ReadyProduct(units: n, minUnitsPerThread: max(64, blocksPerThread(k)), run: { range in
        let r0 = range.lowerBound, r1 = range.upperBound
        switch w.storage {
        case .f32(let p): k_gemv_f32(p, k, x, y, k, r0, r1)
        case .f16(let p): k_gemv_f16(p, k, x, y, k, r0, r1)
        case .bf16(let p): k_gemv_bf16(p, k, x, y, k, r0, r1)
        case .q8, .q4:
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: k)
            defer { tmp.deallocate() }
            for r in r0..<r1 {
                w.widenRows(r, count: 1, into: tmp)
                k_gemv_f32(tmp, k, x, y + r, k, 0, 1)
            }
        }
    }, release: {})
}

/// y = x · Wᵀ with int8 weights: the rows of x are quantized per block to u8 and the product
/// runs in integer dot products (`kernel`), split over threads by groups of output columns.
func int8Product(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, _ p: PackedQ8,
                 into y: UnsafeMutablePointer<Float>, ldy: Int, kernel: Int8Kernel) {
    readyInt8Product(x, rows: m, ldx: ldx, p, into: y, ldy: ldy, kernel: kernel).runOnThreads()
}

func readyInt8Product(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, _ p: PackedQ8,
                      into y: UnsafeMutablePointer<Float>, ldy: Int, kernel: Int8Kernel) -> ReadyProduct {
    let k = p.cols
    let blocks = k / p.block
    let q = UnsafeMutablePointer<UInt8>.allocate(capacity: m * k)
    let scales = UnsafeMutablePointer<Float>.allocate(capacity: m * blocks)
    parallelFor(m, minPerThread: 8) { range in
        k_quantize_rows_u8(x + range.lowerBound * ldx, range.count, k, ldx, p.block,
                           q + range.lowerBound * k, scales + range.lowerBound * blocks)
    }
    let split = ProductSplit(rows: m, rowGroups: p.rowGroups, threads: Threads.count)
    return ReadyProduct(units: split.units, minUnitsPerThread: blocksPerThread(48 * k * split.blockRows), run: { range in
        split.forEachCall(range) { r0, r1, nb0, nb1 in
            k_gemm_q8p(kernel.rawValue, q + r0 * k, scales + r0 * blocks, r1 - r0, k, p.block, p.values, p.scales,
                       p.sums, p.rows, nb0, nb1, y + r0 * ldy, ldy)
        }
    }, release: {
        q.deallocate()
        scales.deallocate()
    })
}

/// y = x · Wᵀ with 4-bit weights: the rows of x are quantized per block of 32 to s8 and the
/// product runs in integer dot products (VNNI or AVX2, identical results), split over threads by
/// groups of output columns.
func q4Product(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, _ p: PackedQ4,
               into y: UnsafeMutablePointer<Float>, ldy: Int) {
    readyQ4Product(x, rows: m, ldx: ldx, p, into: y, ldy: ldy).runOnThreads()
}

func readyQ4Product(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, _ p: PackedQ4,
                    into y: UnsafeMutablePointer<Float>, ldy: Int) -> ReadyProduct {
    let k = p.cols
    let blocks = k / 32
    let q = UnsafeMutablePointer<Int8>.allocate(capacity: m * k)
    let scales = UnsafeMutablePointer<Float>.allocate(capacity: m * blocks)
    let sums = UnsafeMutablePointer<Int32>.allocate(capacity: m * blocks)
    parallelFor(m, minPerThread: 8) { range in
        k_quantize_rows_s8(x + range.lowerBound * ldx, range.count, k, ldx, q + range.lowerBound * k,
                           scales + range.lowerBound * blocks, sums + range.lowerBound * blocks)
    }
    let split = ProductSplit(rows: m, rowGroups: p.rowGroups, threads: Threads.count)
    return ReadyProduct(units: split.units, minUnitsPerThread: blocksPerThread(48 * k * split.blockRows), run: { range in
        split.forEachCall(range) { r0, r1, nb0, nb1 in
            k_gemm_q4p(q + r0 * k, scales + r0 * blocks, sums + r0 * blocks, r1 - r0, k, p.values, p.scales, p.rows,
                       nb0, nb1, y + r0 * ldy, ldy)
        }
    }, release: {
        q.deallocate()
        scales.deallocate()
        sums.deallocate()
    })
}

/// How an int8 or 4-bit product is cut into units of work for the threads. A unit is 3 groups of
/// 16 output columns (the width of the register tile) for a block of input rows. The rows stay
/// whole unless the columns alone would give the threads fewer than two units each (a prompt
/// through a 1024-wide layer on 16 threads: 22 column units, so 11 threads would work and 5
/// would wait); then they are cut into as many blocks (of multiples of 16 rows) as it takes. A
/// unit's outputs are computed exactly as in one whole product, so the split changes no value.
struct ProductSplit {
    let rows: Int
    let rowGroups: Int
    let columnUnits: Int
    /// Input rows per block (the last block may be shorter), and the number of blocks.
    let blockRows: Int
    let blocks: Int

    init(rows m: Int, rowGroups: Int, threads: Int) {
        rows = m
        self.rowGroups = rowGroups
        columnUnits = (rowGroups + 2) / 3
        let wanted = 2 * threads
        if m > 16 && columnUnits < wanted {
            let cuts = (wanted + columnUnits - 1) / columnUnits
            blockRows = min(m, max(16, ((m + cuts - 1) / cuts + 15) / 16 * 16))
        } else {
            blockRows = max(m, 1)
        }
        blocks = (m + blockRows - 1) / blockRows
    }

    /// Units, numbered column unit by column unit with the row blocks inside, so that a thread's
    /// consecutive units reuse the same weight columns.
    var units: Int { columnUnits * blocks }

    /// Calls `body(r0, r1, nb0, nb1)` for input rows r0..<r1 and column groups nb0..<nb1 covering
    /// the units of `range` (one call for a range of whole column units).
    func forEachCall(_ range: Range<Int>, _ body: (Int, Int, Int, Int) -> Void) {
        if blocks == 1 {
            body(0, rows, range.lowerBound * 3, min(rowGroups, range.upperBound * 3))
            return
        }
        var u = range.lowerBound
        while u < range.upperBound {
            let column = u / blocks, first = u % blocks
            let last = min(blocks, first + (range.upperBound - u))
            body(first * blockRows, min(rows, last * blockRows), column * 3, min(rowGroups, column * 3 + 3))
            u += last - first
        }
    }
}

/// Adds `bias` to every row of `y`.
public func addBias(_ y: Matrix, _ bias: [Float]) {
    precondition(bias.count == y.cols)
    bias.withUnsafeBufferPointer { b in
        let bp = b.baseAddress!
        parallelFor(y.rows, minPerThread: 16) { range in
            for r in range { k_add(y.row(r), bp, y.cols) }
        }
    }
}

/// C = A · Bᵀ for plain matrices: A [M, K], B [N, K], C [M, N]. These are the token-sized
/// products (similarities of a few hundred tokens, attention read-outs), too short for OpenBLAS's
/// threads, whose hand-offs cost more than they save there: the rows of A are cut into blocks
/// that depend on M alone (about an eighth of the rows, a multiple of 16, at least 32), the
/// blocks are shared out over the worker pool and each is one single-threaded sgemm, so every
/// element is computed by the same call whatever the thread count.
public func matmulTransposed(_ a: Matrix, _ b: Matrix, into c: Matrix) {
    precondition(a.cols == b.cols && c.cols == b.rows)
    c.rows = a.rows
    if a.rows == 0 || b.rows == 0 { return }
    let m = a.rows
    let block = max(32, ((m + 7) / 8 + 15) / 16 * 16)
    let blocks = (m + block - 1) / block
    Threads.withSingleThreadedBLAS {
        parallelFor(blocks, minPerThread: blocksPerThread(block * b.rows * a.cols)) { range in
            for t in range {
                let r0 = t * block, rows = min(block, m - r0)
                sgemm(.none, .transposed, rows, b.rows, a.cols, 1, a.row(r0), a.cols, b.data, b.cols, 0, c.row(r0), c.cols)
            }
        }
    }
}

public func matmulTransposed(_ a: Matrix, _ b: Matrix) -> Matrix {
    let c = Matrix(uninitializedRows: a.rows, cols: b.rows)
    matmulTransposed(a, b, into: c)
    return c
}

/// Tiles of weight rows (for widening, or blocks of output columns), from the shape alone so the
/// thread count changes no value: a multiple of 16 rows, about a sixteenth of the rows so up to 16
/// threads share the product, but at least 128 rows (OpenBLAS re-packs the activations for every
/// tile, so tiles should not be small) and at most about 4 MB of Float32. Returns the rows per
/// tile and the number of tiles.
func weightTiles(n: Int, k: Int) -> (rows: Int, count: Int) {
    let cap = max(16, (1 << 20) / max(k, 1) / 16 * 16)
    let sixteenth = ((n + 15) / 16 + 15) / 16 * 16
    let rows = min((n + 15) / 16 * 16, min(cap, max(128, sixteenth)))
    return (rows, (n + rows - 1) / rows)
}

/// The least number of blocks of `work` multiply-adds each that a thread should take, so that
/// small products and attention run on the calling thread. Products run 8 multiply-adds to a
/// vector instruction, so 8 of them count as one unit of `minWorkPerThread` (2^18 multiply-adds
/// per thread).
@inline(__always)
func blocksPerThread(_ work: Int) -> Int { max(1, 8 * minWorkPerThread / max(work, 1)) }

/// Scratch buffers for weight tiles, one per thread using one at a time; they grow on demand and
/// are kept for the next product.
final class Scratch: @unchecked Sendable {
    static let shared = Scratch()
    private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
    private let lock = NSLock()

    /// Runs `body` with a buffer of at least `count` floats that no one else uses meanwhile.
    func withBuffer<T>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> T) rethrows -> T {
        lock.lock()
        var buffer = free.popLast()
        lock.unlock()
        if let b = buffer, b.capacity < count {
            b.pointer.deallocate()
            buffer = nil
        }
        let held = buffer ?? (UnsafeMutablePointer<Float>.allocate(capacity: count), count)
        defer {
            lock.lock()
            free.append(held)
            lock.unlock()
        }
        return try body(held.pointer)
    }
}
