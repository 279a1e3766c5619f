import CKernels
import COpenBLAS
import Dispatch
import Foundation

/// The number of threads every stage uses: BLAS calls and the hand-written loops alike.
public enum Threads {
    nonisolated(unsafe) private static var _count = defaultCount()

    public static var count: Int { _count }

    /// Sets the thread count for BLAS and for `parallelFor`.
    public static func set(_ n: Int) {
        _count = max(1, n)
        BLASEnvironment.prepare()
        blas_set_num_threads(Int32(_count))
    }

    /// Runs `body` with BLAS limited to one thread, for code that calls BLAS from several of its
    /// own threads at once (nested thread pools are slower than either alone). Calls may nest;
    /// the outermost one restores the thread count.
    public static func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
        BLASEnvironment.prepare()
        singleThreadedDepth.withLock { depth in
            if depth == 0 && _count > 1 { blas_set_num_threads(1) }
            depth += 1
        }
        defer {
            singleThreadedDepth.withLock { depth in
                depth -= 1
                if depth == 0 && _count > 1 { blas_set_num_threads(Int32(_count)) }
            }
        }
        return try body()
    }

    private static let singleThreadedDepth = LockedCounter()

    /// Whether a BLAS call made now may run on OpenBLAS's threads (more than one thread, and not
    /// inside `withSingleThreadedBLAS`).
    static var blasRunsThreads: Bool { _count > 1 && singleThreadedDepth.withLock { $0 } == 0 }

    /// Runs a BLAS call. When it may run on OpenBLAS's threads, our spinning workers are sent to
    /// sleep first (they would hold the cores) and the call counts as a parallel region.
    @inline(__always)
    static func onBLASThreads(_ call: () -> Void) {
        guard blasRunsThreads else { return call() }
        k_pool_park()
        k_region_begin()
        call()
        k_region_end()
    }

    /// Nanoseconds the calling thread has spent in parallel regions so far: pool jobs it ran and
    /// BLAS calls that may use OpenBLAS's threads (the region it is in included). Over a span of
    /// wall time, the rest ran on this thread alone (see `OneThreadClock`).
    public static var parallelNanoseconds: UInt64 { k_region_ns() }

    static func defaultCount() -> Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// The kernel path in use and the kernels each kind of product runs on it, e.g. "avx2: f16
    /// in registers up to 16 rows, int8 avx2, q4 avx2" or "amx: f16 in registers up to 128 rows,
    /// int8 amx+avx512-vnni, q4 vnni" (int8: prompts, then decoding where they differ). Products
    /// not named run on OpenBLAS (`blasCoreName`), F16/BF16 weights widened for it.
    public static var kernelInstructionSet: String {
        let path = KernelPath.current
        let prompt = Int8Kernel.best(rows: 16), decode = Int8Kernel.best(rows: 1)
        let int8 = [prompt, decode].compactMap { $0?.name }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let half = smallProductRows > 0 ? "f16 in registers up to \(smallProductRows) rows" : "f16 widened"
        let q4 = k_q4_available() == 0 ? "widened" : path >= .vnni ? "vnni" : "avx2"
        return "\(path): \(half), int8 \(int8.isEmpty ? "widened" : int8.joined(separator: "+")), q4 \(q4)"
    }

    /// The kernel family OpenBLAS runs (e.g. "Cooperlake", "Haswell"; see `BLASEnvironment`).
    public static var blasCoreName: String {
        BLASEnvironment.prepare()
        return String(cString: blas_corename())
    }
}

/// Wall time since it was made, and how much of it the making thread ran alone: outside pool jobs
/// and BLAS calls that may use OpenBLAS's threads. With perfect scaling of the rest, the time
/// alone bounds how much faster more threads could make the span (Amdahl's law).
public struct OneThreadClock: Sendable {
    private let wall = DispatchTime.now().uptimeNanoseconds
    private let parallel = Threads.parallelNanoseconds

    public init() {}

    /// Wall nanoseconds since `init`, and of those the ones outside parallel regions (read on the
    /// making thread), from one reading of each clock.
    public func read() -> (elapsed: UInt64, alone: UInt64) {
        let elapsed = DispatchTime.now().uptimeNanoseconds - wall, inRegions = Threads.parallelNanoseconds - parallel
        return (elapsed, elapsed > inRegions ? elapsed - inRegions : 0)
    }

    /// `read()` in milliseconds.
    public func readMilliseconds() -> (elapsed: Double, alone: Double) {
        let (elapsed, alone) = read()
        return (Double(elapsed) / 1e6, Double(alone) / 1e6)
    }
}

/// A count behind a lock.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func withLock<T>(_ body: (inout Int) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// The least work worth handing to another thread, in units of about one value read or written
/// (or one multiply-add): 32K units, some microseconds on one core. Handing a chunk to a worker
/// that spins costs around a microsecond, to one that sleeps tens of microseconds, and the chunk's
/// data then crosses between caches; below this, the calling thread alone is as fast.
public let minWorkPerThread = 1 << 15

/// Runs `body` over `0..<n` split into contiguous chunks, one per thread.
/// Small problems run on the calling thread: fewer than `minPerThread` items per thread, or, when
/// the caller gives `workPerItem` (an item's work in the units of `minWorkPerThread`), less than
/// `minWorkPerThread` of work per thread.
/// The chunks go to the worker pool of `k_pool_run` (workers that spin briefly between jobs, so
/// the many short steps of decoding do not each pay a thread wake-up). The pool runs the chunks
/// on the calling thread, one after the other, when the call site's last job took under 100 µs on
/// one thread, and while other processes hold the cores; the chunks, and so the results, stay the
/// same. A loop inside a loop runs
/// on its calling thread (the outer loop already keeps every thread busy); a second caller while
/// the pool is taken gets Dispatch's threads.
@inline(__always)
public func parallelFor(_ n: Int, minPerThread: Int = 1, workPerItem: Int = 0, file: StaticString = #fileID,
                        line: UInt = #line, _ body: (Range<Int>) -> Void) {
    var perThread = max(1, minPerThread)
    if workPerItem > 0 { perThread = max(perThread, (minWorkPerThread + workPerItem - 1) / workPerItem) }
    let threads = min(Threads.count, max(1, n / perThread))
    if threads <= 1 || n <= 1 {
        if n > 0 { body(0..<n) }
        return
    }
    let chunk = (n + threads - 1) / threads
    let chunks = (n + chunk - 1) / chunk
    // The call site, for the pool's record of how long its jobs take.
    let site = UInt32(truncatingIfNeeded: UInt(bitPattern: file.utf8Start) &* 31 &+ line)
    let outcome = withoutActuallyEscaping(body) { body -> Int32 in
        var job = PoolJob(n: n, chunk: chunk, body: body)
        return withUnsafeMutablePointer(to: &job) { k_pool_run(threads, chunks, poolTrampoline, $0, site) }
    }
    if outcome == 1 { return }
    if outcome < 0 {
        body(0..<n)
        return
    }
    k_region_begin()
    DispatchQueue.concurrentPerform(iterations: chunks) { t in
        let start = t * chunk
        let end = min(n, start + chunk)
        if start < end { body(start..<end) }
    }
    k_region_end()
}

/// One `parallelFor` call as the pool sees it: chunk `i` is `i·chunk ..< min(n, (i+1)·chunk)`.
struct PoolJob {
    let n: Int
    let chunk: Int
    let body: (Range<Int>) -> Void
}

private let poolTrampoline: k_pool_fn = { context, index in
    let job = context!.assumingMemoryBound(to: PoolJob.self).pointee
    let start = Int(index) * job.chunk
    let end = min(job.n, start + job.chunk)
    if start < end { job.body(start..<end) }
}
