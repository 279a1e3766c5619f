import CKernels
import Foundation
import Kernels
import TokenMerging

// Throughput of the engine's numeric kernels on this machine, side by side with OpenBLAS's
// sgemm peak. Usage: kernel-bench [--threads N] [--only gemm,int8,short,gemv,decode,stream,q4,attention,merge,rows]
// [--rows-csv FILE] (LLAVA_KERNELS=base|avx2|... runs a narrower kernel path)
// ("stream-detail" with "stream" also times each kind of matrix of the stream alone)

func time(_ repeats: Int, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    for _ in 0..<repeats {
        let t = DispatchTime.now()
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9)
    }
    return best
}

func randomMatrix(_ rows: Int, _ cols: Int) -> Matrix {
    let m = Matrix(rows: rows, cols: cols)
    var s: UInt32 = 12345
    for i in 0..<(rows * cols) {
        s = s &* 1664525 &+ 1013904223
        m.data[i] = Float(Int32(bitPattern: s) >> 8) / Float(1 << 23) * 0.1
    }
    return m
}

func halfWeight(_ m: Matrix) -> Weight {
    let n = m.rows * m.cols
    let p = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
    for i in 0..<n { p[i] = Float16(m.data[i]).bitPattern }
    let owner = Matrix(rows: 1, cols: 1)
    return Weight(rows: m.rows, cols: m.cols, storage: .f16(UnsafePointer(p)), owner: owner)
}

BLASEnvironment.prepare()
var threads = ProcessInfo.processInfo.activeProcessorCount
var only: Set<String> = []
var rowsCSV: String?
var args = CommandLine.arguments.dropFirst()
while let a = args.first {
    args = args.dropFirst()
    if a == "--threads", let v = args.first, let n = Int(v) { threads = n; args = args.dropFirst() }
    if a == "--only", let v = args.first { only = Set(v.split(separator: ",").map(String.init)); args = args.dropFirst() }
    if a == "--rows-csv", let v = args.first { rowsCSV = v; args = args.dropFirst() }
}
/// Whether a section runs (all of them without --only).
func section(_ name: String) -> Bool { only.isEmpty || only.contains(name) }
Threads.set(threads)
print("threads \(threads), OpenBLAS core \(Threads.blasCoreName), kernels \(Threads.kernelInstructionSet)"
      + " (chosen by \(BLASEnvironment.choice.source))"
      + (BLASEnvironment.overriddenCoreType.map { ", OPENBLAS_CORETYPE=\($0) in the environment not followed" } ?? ""))

if section("gemm") {
    for (m, n, k) in [(577, 4096, 1024), (577, 1024, 4096), (600, 5632, 2048), (600, 2048, 2048)] {
        let x = randomMatrix(m, k)
        let w = randomMatrix(n, k)
        let y = Matrix(rows: m, cols: n)
        let flops = 2.0 * Double(m * n * k)
        let tBlas = time(3) {
            sgemm(.none, .transposed, m, n, k, 1, x.data, k, w.data, k, 0, y.data, n)
        }
        let wh = halfWeight(w)
        let tHalf = time(3) { linear(x, wh, into: y) }
        let wq = wh.quantizedQ8()
        let tQ8 = time(3) { linear(x, wq, into: y) }
        print(String(format: "gemm %4dx%4dx%4d  sgemm f32 %6.1f GFLOP/s   linear f16 %6.1f GFLOP/s   linear q8 %6.1f GOP/s",
                     m, n, k, flops / tBlas / 1e9, flops / tHalf / 1e9, flops / tQ8 / 1e9))
    }
}

// The int8 product's kernels side by side (AMX only where the CPU has it and Linux grants it).
if section("int8") {
    for (m, n, k) in [(577, 4096, 1024), (600, 5632, 2048), (1, 5632, 2048)] {
        let x = randomMatrix(m, k), wq = halfWeight(randomMatrix(n, k)).quantizedQ8()
        let y = Matrix(rows: m, cols: n)
        let flops = 2.0 * Double(m * n * k)
        var line = String(format: "int8 %4dx%4dx%4d ", m, n, k)
        for kernel in Int8Kernel.allCases {
            guard kernel.isAvailable else { line += "  \(kernel.name) n/a"; continue }
            Int8Kernel.forced = kernel
            let t = time(3) { linear(x, wq, into: y) }
            line += String(format: "  %@ %7.1f GOP/s", kernel.name, flops / t / 1e9)
        }
        Int8Kernel.forced = nil
        print(line)
    }
}

// Short prompts: F16 weights widened in registers against widening into scratch for sgemm.
if section("short") {
    for (m, n, k) in [(80, 5632, 2048), (80, 2048, 5632), (24, 2048, 2048)] {
        let x = randomMatrix(m, k), wh = halfWeight(randomMatrix(n, k))
        let y = Matrix(rows: m, cols: n)
        let flops = 2.0 * Double(m * n * k)
        let tDirect = time(3) { linear(x, wh, into: y) }
        let saved = smallProductRows
        smallProductRows = 0
        let tTiles = time(3) { linear(x, wh, into: y) }
        smallProductRows = saved
        print(String(format: "short %3dx%4dx%4d  f16 in registers %6.1f GFLOP/s (%6.2f ms)   f16 tiles + sgemm %6.1f GFLOP/s (%6.2f ms)",
                     m, n, k, flops / tDirect / 1e9, tDirect * 1e3, flops / tTiles / 1e9, tTiles * 1e3))
    }
}

if section("gemv") {
    for (n, k) in [(5632, 2048), (2048, 5632), (32064, 2048)] {
        let w = randomMatrix(n, k)
        let wh = halfWeight(w)
        let x = randomMatrix(1, k)
        let y = Matrix(rows: 1, cols: n)
        let tF32 = time(5) { linear(x, Weight(rows: n, cols: k, storage: .f32(UnsafePointer(w.data)), owner: w), into: y) }
        let tBlas = time(5) { sgemv(n, k, w.data, k, x.data, y.data) }
        let tF16 = time(5) { linear(x, wh, into: y) }
        let wq = wh.quantizedQ8()
        let tQ8 = time(5) { linear(x, wq, into: y) }
        let b32 = Double(n * k * 4), b16 = Double(n * k * 2), b8 = Double(wq.byteCount)
        print(String(format: "gemv %5dx%4d  f32 ours %5.1f GB/s  sgemv %5.1f GB/s  f16 %5.1f GB/s (%5.2f ms)  q8 %5.1f GB/s (%5.2f ms)",
                     n, k, b32 / tF32 / 1e9, b32 / tBlas / 1e9, b16 / tF16 / 1e9, tF16 * 1e3, b8 / tQ8 / 1e9, tQ8 * 1e3))
    }
}

// Decoding reads every weight once per token, so the matrix-vector product should run at the
// memory's speed: F16 weights through `linear` as it is now (rows longer than 4096 columns stream
// 8 rows at a time with prefetch) against the one-row kernel alone (how every row ran before),
// side by side on the 7B shape's MLP matrices and a 32000-row lm_head, on 1 thread and on all.
if section("decode") {
    for (n, k) in [(4096, 11008), (11008, 4096), (32000, 4096)] {
        let wh = halfWeight(randomMatrix(n, k))
        let x = randomMatrix(1, k)
        let y = Matrix(rows: 1, cols: n), yOld = Matrix(rows: 1, cols: n)
        guard case .f16(let p) = wh.storage else { continue }
        let bytes = Double(n * k * 2)
        var line = String(format: "decode f16 %5dx%5d (%.0f MB)", n, k, bytes / 1e6)
        for t in Set([1, threads]).sorted() {
            Threads.set(t)
            let tOld = time(10) { parallelFor(n, minPerThread: 64) { r in k_gemv_f16(p, k, x.data, yOld.data, k, r.lowerBound, r.upperBound) } }
            let tNew = time(10) { linear(x, wh, into: y) }
            line += String(format: "  %d thr: one-row %5.1f GB/s, linear %5.1f GB/s (%.2fx)", t, bytes / tOld / 1e9, bytes / tNew / 1e9, tOld / tNew)
        }
        Threads.set(threads)
        var diff: Float = 0
        for i in 0..<n { diff = max(diff, abs(y.data[i] - yOld.data[i])) }
        print(line + String(format: "  max |diff| %.2g", diff))
    }
}

// Decoding streams every weight of the model once per token, far more than the caches hold: the
// seven matrix-vector products of each of 22 TinyLlama-shaped layers (2048 wide, MLP 5632, 4 KV
// heads of 64) and the lm_head, back to back, in F16, q8 and q4. Only the products are timed (no
// attention or norms), so the rate is what the weight streams reach.
if section("stream") {
    let (layers, hidden, inter, kv, vocab) = (22, 2048, 5632, 256, 32064)
    let shapes = [(hidden, hidden), (kv, hidden), (kv, hidden), (hidden, hidden), (inter, hidden), (inter, hidden), (hidden, inter)]
    var f16: [Weight] = []
    for l in 0..<layers {
        for (i, (n, k)) in shapes.enumerated() {
            let m = randomMatrix(n, k)
            m.data[0] = Float(l * 7 + i)  // distinct matrices
            f16.append(halfWeight(m))
        }
    }
    f16.append(halfWeight(randomMatrix(vocab, hidden)))
    let xs = f16.map { randomMatrix(1, $0.cols) }, ys = f16.map { Matrix(rows: 1, cols: $0.rows) }
    // The ceiling: the same F16 bytes read and summed, nothing else, split over the threads alike.
    do {
        let bytes = Double(f16.reduce(0) { $0 + $1.byteCount })
        let t = time(5) {
            for w in f16 {
                guard case .f16(let p) = w.storage else { continue }
                let words = UnsafeRawPointer(p).assumingMemoryBound(to: UInt64.self), count = w.byteCount / 8
                var partial = [UInt64](repeating: 0, count: 64)
                partial.withUnsafeMutableBufferPointer { out in
                    parallelFor(count, minPerThread: 1 << 14) { range in
                        var sum: UInt64 = 0
                        for i in range { sum &+= words[i] }
                        out[range.lowerBound * 64 / count] &+= sum
                    }
                }
                if partial.reduce(0, &+) == 42 { print("") }
            }
        }
        print(String(format: "stream read only  %.2f GB: %6.2f ms, %5.1f GB/s", bytes / 1e9, t * 1e3, bytes / t / 1e9))
    }
    for (name, weights) in [("f16", f16), ("q8", f16.map { $0.quantizedQ8() }), ("q4", f16.map { $0.quantizedQ4() })] {
        let bytes = Double(weights.reduce(0) { $0 + $1.byteCount })
        let t = time(5) {
            for (i, w) in weights.enumerated() { linear(xs[i], w, into: ys[i]) }
        }
        if only.contains("stream-detail") {
            for kind in 0...shapes.count {
                let idx = kind == shapes.count ? [weights.count - 1] : (0..<layers).map { $0 * shapes.count + kind }
                let b = Double(idx.reduce(0) { $0 + weights[$1].byteCount })
                let tk = time(5) { for i in idx { linear(xs[i], weights[i], into: ys[i]) } }
                print(String(format: "  %@ %5dx%5d  %6.2f ms  %5.1f GB/s", name, weights[idx[0]].rows, weights[idx[0]].cols, tk * 1e3, b / tk / 1e9))
            }
        }
        print(String(format: "stream %@  %.2f GB per token: %6.2f ms, %5.1f GB/s, %5.1f tokens/s", name, bytes / 1e9, t * 1e3,
                     bytes / t / 1e9, 1 / t))
    }
}

// Decoding a 7B-shaped model: matrix-vector products on the MLP's matrices, int8 against 4-bit;
// and a prompt-sized product.
if section("q4") {
    do {
        let (m, n, k) = (600, 5632, 2048)
        let x = randomMatrix(m, k), wh = halfWeight(randomMatrix(n, k))
        let y = Matrix(rows: m, cols: n)
        let q8 = wh.quantizedQ8(), q4 = wh.quantizedQ4()
        let flops = 2.0 * Double(m * n * k)
        let t8 = time(3) { linear(x, q8, into: y) }, t4 = time(3) { linear(x, q4, into: y) }
        print(String(format: "gemm %dx%dx%d  q8 %6.1f GOP/s  q4 %6.1f GOP/s", m, n, k, flops / t8 / 1e9, flops / t4 / 1e9))
    }
    for (n, k) in [(11008, 4096), (4096, 11008)] {
        let wh = halfWeight(randomMatrix(n, k))
        let x = randomMatrix(1, k)
        let y = Matrix(rows: 1, cols: n)
        let q8 = wh.quantizedQ8(), q4 = wh.quantizedQ4()
        let t8 = time(10) { linear(x, q8, into: y) }
        let t4 = time(10) { linear(x, q4, into: y) }
        print(String(format: "gemv 7B %5dx%5d  q8 %5.1f GB/s (%5.2f ms)  q4 %5.1f GB/s (%5.2f ms)  q4 is %.2fx faster",
                     n, k, Double(q8.byteCount) / t8 / 1e9, t8 * 1e3, Double(q4.byteCount) / t4 / 1e9, t4 * 1e3, t8 / t4))
    }
}

// Attention as the CLIP-L tower runs it (577 tokens, 16 heads of 64) and as the decoder's prefill
// runs it (600 causal tokens, 32 heads of 64, 4 KV heads).
if section("attention") {
    for (t, heads, kvHeads, causal) in [(577, 16, 16, false), (600, 32, 4, true)] {
        let d = 64
        let q = randomMatrix(t, heads * d), k = randomMatrix(t, kvHeads * d), v = randomMatrix(t, kvHeads * d)
        let out = Matrix(rows: t, cols: heads * d)
        let shape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: d)
        let seconds = time(3) {
            attention(q: q.data, ldq: q.cols, k: k.data, ldk: k.cols, v: v.data, ldv: v.cols, out: out.data, ldo: out.cols,
                      queries: t, keys: t, shape: shape, causalOffset: causal ? 0 : nil)
        }
        let flops = 4.0 * Double(t * t * heads * d) / (causal ? 2 : 1)
        print(String(format: "attention %d tokens, %d heads (%d kv)%@: %6.2f ms, %6.1f GFLOP/s", t, heads, kvHeads,
                     causal ? ", causal" : "", seconds * 1e3, flops / seconds / 1e9))
    }
}

// One merge step of the LLaVA CLIP tower (577 tokens of 1024, PiToMe and ToMe at ρ = 0.9), by
// part, on 1 thread and on all of them, side by side.
if section("merge") {
    let tokens = randomMatrix(577, 1024)
    let p = tokens.rows - 1
    let remove = PiToMe.removal(patchTokens: p, ratio: 0.9)
    let patches = Matrix(rows: p, cols: tokens.cols)
    patches.data.update(from: tokens.row(1), count: p * tokens.cols)
    let plan = PiToMe.plan(metric: tokens, remove: remove, margin: 0.9)
    var columns: [[Double]] = []
    for n in [1, threads] {
        Threads.set(n)
        let w = matmulTransposed(patches, patches)
        columns.append([
            time(5) { _ = matmulTransposed(patches, patches) },
            time(5) { _ = PiToMe.energy(similarity: w, margin: 0.9, alpha: 1) },
            time(5) { _ = PiToMe.energyOrder(patches: patches, similarity: w, margin: 0.9, alpha: 1) },
            time(5) { _ = apply(plan, to: tokens, .mean) },
            time(5) { _ = PiToMe.plan(metric: tokens, remove: remove, margin: 0.9) },
            time(5) { _ = ToMe.plan(metric: tokens, remove: ToMe.removal(tokens: 577, ratio: 0.9)) },
        ])
    }
    Threads.set(threads)
    let names = ["similarity (sgemm)", "energy", "energy order", "apply (mean)", "PiToMe plan, all", "ToMe plan, all"]
    print("merge step, 577 tokens x 1024: ms on 1 thread | \(threads) threads | speed-up")
    for (i, name) in names.enumerated() {
        print(String(format: "  %-20@ %8.3f | %8.3f | %5.2fx", name, columns[0][i] * 1e3, columns[1][i] * 1e3,
                     columns[0][i] / columns[1][i]))
    }
}

// Time per input row of `linear` against the row count, for each kind of weight, on the CLIP-L
// tower's 1024 × 1024 and 4096 × 1024 layers: every row count a prompt or a merged tower gives
// (the tower's merged sizes under PiToMe and ToMe included) should cost no more per row than a
// longer input, so no size falls off a cliff where the product changes kernel.
if section("rows") {
    let counts = [1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 55, 64, 80, 96, 112, 128, 129, 144, 160, 192, 224, 256, 289, 320,
                  384, 448, 512, 577, 640, 768, 896, 1024]
    var csv = "path,family,n,k,rows,ms,us_per_row\n"
    for (n, k) in [(1024, 1024), (4096, 1024)] {
        let source = randomMatrix(n, k)
        let f32 = Weight(rows: n, cols: k, storage: .f32(UnsafePointer(source.data)), owner: source)
        let f16 = halfWeight(source)
        let families: [(String, Weight)] = [("f32", f32), ("f16", f16), ("q8", f16.quantizedQ8()), ("q4", f16.quantizedQ4())]
        let input = randomMatrix(counts.last!, k)
        print("rows sweep \(n)x\(k), \(KernelPath.current): microseconds per input row")
        print("  rows " + families.map { String(repeating: " ", count: max(0, 9 - $0.0.count)) + $0.0 }.joined()
              + "  f16 sgemm  f16 regs   q8 sgemm  q8 avx2")
        for m in counts {
            let x = Matrix(rows: m, cols: k)
            x.data.update(from: input.data, count: m * k)
            let y = Matrix(rows: m, cols: n)
            var line = String(format: "  %4d ", m)
            for (name, w) in families {
                let seconds = time(m < 64 ? 5 : 2) { linear(x, w, into: y) }
                line += String(format: "%9.2f", seconds * 1e6 / Double(m))
                csv += "\(KernelPath.current),\(name),\(n),\(k),\(m),\(seconds * 1e3),\(seconds * 1e6 / Double(m))\n"
            }
            // The two ways an F16 product can run, whichever `linear` picks at this size.
            let saved = smallProductRows
            for limit in [0, Int.max] {
                smallProductRows = limit
                line += String(format: "%11.2f", time(m < 64 ? 5 : 2) { linear(x, f16, into: y) } * 1e6 / Double(m))
            }
            smallProductRows = saved
            // The two ways an int8 product can run without VNNI.
            if !Int8Kernel.vnni.isAvailable && Int8Kernel.avx2.isAvailable {
                let savedRows = Int8Kernel.avx2MaxRows
                for limit in [0, Int.max] {
                    Int8Kernel.avx2MaxRows = limit
                    line += String(format: "%11.2f", time(m < 64 ? 5 : 2) { linear(x, families[2].1, into: y) } * 1e6 / Double(m))
                }
                Int8Kernel.avx2MaxRows = savedRows
            }
            print(line)
        }
    }
    if let rowsCSV { try? csv.write(toFile: rowsCSV, atomically: true, encoding: .utf8) }
}
