import CKernels
import Dispatch
import Foundation
import Kernels
import XCTest

/// `parallelFor` on the worker pool: every index once, whatever the size and thread count, also
/// for a loop inside a loop (run whole by the inner caller), for several callers at once (one
/// gets the pool, the others fall back to Dispatch), for jobs whose helpers sleep, stall or are
/// parked between jobs, and for loops too small to split.
final class ParallelForTests: XCTestCase {
    var before = 1

    override func setUp() { before = Threads.count }
    override func tearDown() { Threads.set(before) }

    func visits(_ n: Int, minPerThread: Int = 1) -> [Int] {
        var hits = [Int](repeating: 0, count: n)
        hits.withUnsafeMutableBufferPointer { p in
            parallelFor(n, minPerThread: minPerThread) { range in for i in range { p[i] += 1 } }
        }
        return hits
    }

    func testEveryIndexOnceForManySizesAndThreadCounts() {
        for threads in [1, 2, 3, 8] {
            Threads.set(threads)
            for n in [0, 1, 2, 3, 7, 64, 1000, 4097] {
                XCTAssertEqual(visits(n), Array(repeating: 1, count: n), "n \(n), threads \(threads)")
                XCTAssertEqual(visits(n, minPerThread: 100), Array(repeating: 1, count: n), "n \(n), threads \(threads)")
            }
        }
    }

    /// Many short jobs in a row (the decoding pattern) reuse the spinning workers.
    func testManyShortJobsInARow() {
        Threads.set(4)
        var total = 0
        for round in 0..<2000 {
            let n = 3 + round % 50
            total += visits(n).reduce(0, +) == n ? 1 : 0
        }
        XCTAssertEqual(total, 2000)
    }

    func testNestedLoopsCoverEverything() {
        Threads.set(4)
        let outer = 16, inner = 100
        var hits = [Int](repeating: 0, count: outer * inner)
        var innerCalls = [Int](repeating: 0, count: outer)
        hits.withUnsafeMutableBufferPointer { p in
            innerCalls.withUnsafeMutableBufferPointer { calls in
                parallelFor(outer) { rows in
                    for r in rows {
                        parallelFor(inner) { cols in
                            calls[r] += 1
                            for c in cols { p[r * inner + c] += 1 }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(hits, Array(repeating: 1, count: outer * inner))
        // The outer loop holds the threads: each inner loop runs whole on its calling thread.
        XCTAssertEqual(innerCalls, Array(repeating: 1, count: outer))
    }

    func testSeveralCallersAtOnce() {
        Threads.set(4)
        let callers = 6, n = 5000
        var results = [[Int]](repeating: [], count: callers)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: callers) { c in
            var mine: [Int] = []
            for _ in 0..<20 { mine = visits(n) }
            lock.lock()
            results[c] = mine
            lock.unlock()
        }
        for c in 0..<callers { XCTAssertEqual(results[c], Array(repeating: 1, count: n), "caller \(c)") }
    }

    /// Jobs with pauses between them (the workers go to sleep and are woken), and jobs where one
    /// item stalls (the caller then sleeps until the helper running it leaves, and the jobs after
    /// may run on the calling thread alone): every index once throughout.
    func testJobsAcrossSleepsAndStalls() {
        Threads.set(3)
        for round in 0..<60 {
            if round % 10 == 0 { usleep(2000) }
            let n = 2 + round % 7
            var hits = [Int](repeating: 0, count: n)
            hits.withUnsafeMutableBufferPointer { p in
                parallelFor(n) { range in
                    for i in range {
                        if round % 3 == 0 && i == n - 1 { usleep(3000) }
                        p[i] += 1
                    }
                }
            }
            XCTAssertEqual(hits, Array(repeating: 1, count: n), "round \(round)")
        }
    }

    /// Parking the workers (before an OpenBLAS product) between and during jobs loses nothing.
    func testParkingBetweenJobs() {
        Threads.set(2)
        for round in 0..<500 {
            if round % 2 == 0 { k_pool_park() }
            let n = 1 + round % 9
            XCTAssertEqual(visits(n), Array(repeating: 1, count: n))
        }
    }

    /// Nested loops and several outer callers at once, with short jobs: each caller's inner
    /// loops run whole on their own thread or on the pool, never twice.
    func testNestedLoopsFromSeveralCallers() {
        Threads.set(2)
        let callers = 4, outer = 8, inner = 40
        var ok = [Bool](repeating: false, count: callers)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: callers) { c in
            var hits = [Int](repeating: 0, count: outer * inner)
            for _ in 0..<50 {
                hits.withUnsafeMutableBufferPointer { p in
                    parallelFor(outer) { rows in
                        for r in rows { parallelFor(inner) { cols in for i in cols { p[r * inner + i] += 1 } } }
                    }
                }
            }
            lock.lock()
            ok[c] = hits == Array(repeating: 50, count: outer * inner)
            lock.unlock()
        }
        XCTAssertEqual(ok, Array(repeating: true, count: callers))
    }

    /// Less than `minWorkPerThread` of work per thread runs in one call on the calling thread.
    func testSmallWorkIsNotSplit() {
        Threads.set(4)
        var calls: [Range<Int>] = []
        let lock = NSLock()
        parallelFor(64, workPerItem: minWorkPerThread / 64 - 1) { range in
            lock.lock()
            calls.append(range)
            lock.unlock()
        }
        XCTAssertEqual(calls, [0..<64])
        calls = []
        // Enough work for two threads of four: at most two chunks, covering everything.
        parallelFor(64, workPerItem: minWorkPerThread / 32) { range in
            lock.lock()
            calls.append(range)
            lock.unlock()
        }
        XCTAssertLessThanOrEqual(calls.count, 2)
        XCTAssertEqual(calls.map(\.count).reduce(0, +), 64)
    }
}
