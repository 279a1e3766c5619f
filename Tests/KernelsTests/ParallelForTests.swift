import Dispatch
import Foundation
import Kernels
import XCTest

/// `parallelFor` on the worker pool: every index once, whatever the size and thread count, also
/// for a loop inside a loop (run whole by the inner caller) and for several callers at once (one
/// gets the pool, the others fall back to Dispatch).
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
}
