import Foundation
import Kernels
import XCTest

@testable import TokenMerging

/// The merge steps split their loops over threads; the plans and merged features must not depend
/// on how many threads run them.
final class ThreadCountTests: XCTestCase {
    override func tearDown() {
        Threads.set(ProcessInfo.processInfo.activeProcessorCount)
    }

    func results(threads: Int, metric: Matrix, tokens: Matrix, cls: [Float]) -> [(MergePlan, [Float])] {
        Threads.set(threads)
        let n = metric.rows
        var out: [(MergePlan, [Float])] = []
        for plan in [
            PiToMe.plan(metric: metric, remove: PiToMe.removal(patchTokens: n - 1, ratio: 0.9), margin: 0.9),
            ToMe.plan(metric: metric, remove: ToMe.removal(tokens: n, ratio: 0.9)),
            ToFu.prunePlan(metric: metric, remove: 100),
            DiffRate.plan(metric: metric, clsAttention: cls, keep: 300),
        ] {
            let merged = apply(plan, to: tokens, .weightedMean(sizes: (0..<n).map { Float($0 % 3 + 1) }))
            ToFu.preserveNorms(merged: merged, input: tokens, plan: plan)
            out.append((plan, merged.toArray()))
        }
        return out
    }

    /// On every kernel path this CPU runs, 2, 3, 4 and 16 threads give what one thread gives.
    func testPlansAndMergedTokensAreTheSameOnAnyThreadCount() {
        var random = TestRandom(seed: 7)
        let metric = random.matrix(rows: 577, cols: 256)
        // Near-duplicate rows give near-tied PiToMe energies, so the Double re-scoring runs too.
        for r in stride(from: 2, to: 577, by: 5) {
            for j in 0..<256 { metric[r, j] = metric[r - 1, j] * (1 + 1e-7 * Float(j % 3)) }
        }
        let tokens = random.matrix(rows: 577, cols: 64)
        let cls = (0..<577).map { _ in random.float() }
        KernelPath.forEachAvailable { path in
            let one = results(threads: 1, metric: metric, tokens: tokens, cls: cls)
            for threads in [2, 3, 4, 16] {
                let other = results(threads: threads, metric: metric, tokens: tokens, cls: cls)
                for (step, (a, b)) in zip(one, other).enumerated() {
                    XCTAssertTrue(a.0 == b.0, "\(path), \(threads) threads, step \(step): the plans differ")
                    let differ = zip(a.1, b.1).filter { $0.bitPattern != $1.bitPattern }.count
                    XCTAssertEqual(differ, 0, "\(path), \(threads) threads, step \(step): merged values differ")
                }
            }
        }
    }
}
