import Foundation
import Kernels
import TokenMerging
import XCTest

/// Properties of the reducers that cut once, at the tower's or the projector's output, on random
/// inputs: exactly K tokens, kept indices unique and in range, merged rows as documented.
final class ReducerPropertyTests: XCTestCase {
    func testDivPruneKeepsExactlyKDistinctRowsUnchanged() throws {
        var random = TestRandom(seed: 21)
        for (n, keeps) in [(64, [1, 2, 7, 32, 63, 64]), (200, [5, 100])] {
            let x = random.matrix(rows: n, cols: 10)
            for k in keeps {
                let order = DivPrune.selectionOrder(features: x, keep: k)
                XCTAssertEqual(order.count, k, "n \(n) keep \(k)")
                XCTAssertEqual(Set(order).count, k, "unique, n \(n) keep \(k)")
                XCTAssertTrue(order.allSatisfy { $0 >= 0 && $0 < n }, "in range, n \(n) keep \(k)")
                let out = apply(DivPrune.plan(features: x, keep: k), to: x)
                XCTAssertEqual(out.rows, k)
                for (row, index) in order.sorted().enumerated() {
                    XCTAssertEqual(out.rowArray(row), x.rowArray(index), "rows kept in order, unchanged")
                }
            }
        }
    }

    func testDivPruneOnDuplicatesStillPicksDistinctRows() {
        let x = Matrix(rows: 6, cols: 3, values: [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0])
        let order = DivPrune.selectionOrder(features: x, keep: 5)
        XCTAssertEqual(Set(order).count, 5)
    }

    /// The merger cuts after the projector: the tower's counts are untouched, the projector's rows
    /// come down to K, and the source map follows the kept rows (CLS, dropped before, holds none).
    func testDivPruneThroughTheMergerTracksSources() throws {
        var random = TestRandom(seed: 4)
        for options in [MergeOptions(method: .divPrune, keep: 9, trackSources: true),
                        MergeOptions(method: .divPrune, ratio: 0.25, trackSources: true)] {
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
            XCTAssertEqual(merger.plannedTokenCounts, Array(repeating: 65, count: 12))
            XCTAssertEqual(merger.schedule.projectorKeep, options.keep ?? 16)
            var tokens = random.matrix(rows: 65, cols: 6)
            for layer in 0..<11 {
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil)
            }
            let projected = random.matrix(rows: 64, cols: 5)
            let out = merger.reduceProjected(projected, droppedTokens: 1)
            let keep = merger.schedule.projectorKeep!
            XCTAssertEqual(out.rows, keep)
            let sources = try XCTUnwrap(merger.sources)
            XCTAssertEqual(sources.count, keep + 1)
            XCTAssertEqual(sources[0], [])
            XCTAssertTrue(sources.dropFirst().allSatisfy { $0.count == 1 }, "each kept token holds one patch")
            let kept = sources.dropFirst().map { $0.first ?? -1 }
            XCTAssertEqual(kept, DivPrune.selectionOrder(features: projected, keep: keep).sorted())
            for (row, patch) in kept.enumerated() { XCTAssertEqual(out.rowArray(row), projected.rowArray(patch)) }
        }
    }

    /// VisionZip through the merger: only the last merge layer cuts, to exactly K patch tokens; the
    /// dominant tokens are input rows unchanged, each contextual token is its target plus the mean
    /// of the rows assigned to it, and every patch is held exactly once.
    func testVisionZipThroughTheMerger() throws {
        for keep in [1, 5, 16, 32, 63] {
            var random = TestRandom(seed: UInt64(keep))
            let options = MergeOptions(method: .visionZip, keep: keep, trackSources: true)
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
            XCTAssertEqual(merger.plannedTokenCounts, Array(repeating: 65, count: 11) + [keep + 1])
            XCTAssertTrue(merger.needsCLSAttention)
            var tokens = random.matrix(rows: 65, cols: 6)
            for layer in 0..<10 {
                XCTAssertFalse(merger.needsKeys(layer: layer))
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: [Float](repeating: 0, count: 65))
            }
            XCTAssertTrue(merger.needsKeys(layer: 10))
            let keys = random.matrix(rows: 65, cols: 4)
            let attention = (0..<65).map { _ in abs(random.float()) }
            let out = merger.merge(layer: 10, tokens: tokens, metric: keys, clsAttention: attention)
            XCTAssertEqual(out.rows, keep + 1, "keep \(keep)")
            let sources = try XCTUnwrap(merger.sources)
            let all = sources.flatMap { $0 }
            let (dominant, contextual) = VisionZip.split(keep: keep)
            if contextual > 0 {
                XCTAssertEqual(all.sorted(), Array(0..<64), "every patch once, keep \(keep)")
            } else {
                XCTAssertEqual(all.count, keep, "the rest dropped, keep \(keep)")
            }
            XCTAssertEqual(dominant + contextual, keep)
            let topAttention = Set((1..<65).sorted { attention[$0] > attention[$1] }.prefix(dominant))
            for k in 1...dominant {
                XCTAssertEqual(sources[k].count, 1)
                XCTAssertTrue(topAttention.contains(sources[k][0] + 1), "dominant by CLS attention")
                XCTAssertEqual(out.rowArray(k), tokens.rowArray(sources[k][0] + 1))
            }
            for k in (dominant + 1)..<out.rows {
                let members = sources[k].map { $0 + 1 }
                // The contextual row equals some member plus the mean of the others.
                let matches = members.contains { t in
                    let others = members.filter { $0 != t }
                    return (0..<6).allSatisfy { c in
                        let mean = others.isEmpty ? 0 : others.reduce(Float(0)) { $0 + tokens[$1, c] } / Float(others.count)
                        return abs(out[k, c] - (tokens[t, c] + mean)) <= 1e-5
                    }
                }
                XCTAssertTrue(matches, "contextual token \(k) = target + mean of the rest, keep \(keep)")
            }
        }
    }

    /// MCTF through the merger, ratio and budget: the odd layers merge, the budget is met exactly,
    /// every patch is held once, and each token is the mean of the rows it absorbed weighted by
    /// attention received × size (so a convex combination of them).
    func testMCTFMergesAreAttentionAndSizeWeightedMeans() throws {
        for options in [MergeOptions(method: .mctf, ratio: 0.8, trackSources: true),
                        MergeOptions(method: .mctf, keep: 7, trackSources: true)] {
            var random = TestRandom(seed: 99)
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
            var tokens = random.matrix(rows: 65, cols: 5)
            for layer in 0..<11 {
                let needs = merger.needsReceivedAttention(layer: layer)
                XCTAssertFalse(needs && layer % 2 == 0, "only odd layers merge")
                var received = (0..<tokens.rows).map { _ in abs(random.float()) + 0.01 }
                let total = received.reduce(0, +)
                received = received.map { $0 / total }
                let sourcesIn = try XCTUnwrap(merger.sources).map(Set.init), sizesIn = merger.sizes
                let out = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil,
                                       receivedAttention: needs ? received : nil)
                XCTAssertEqual(out.rows, merger.plannedTokenCounts[layer + 1])
                let sourcesOut = try XCTUnwrap(merger.sources).map(Set.init)
                XCTAssertEqual(sourcesOut.flatMap { $0 }.sorted(), Array(0..<64))
                XCTAssertEqual(out.rowArray(0), tokens.rowArray(0), "CLS first and unchanged")
                for k in 1..<out.rows {
                    let members = (1..<tokens.rows).filter { sourcesIn[$0].isSubset(of: sourcesOut[k]) }
                    let weights = members.map { received[$0] * sizesIn[$0] }
                    for c in 0..<5 {
                        let mean = zip(members, weights).reduce(Float(0)) { $0 + tokens[$1.0, c] * $1.1 } / weights.reduce(0, +)
                        XCTAssertEqual(out[k, c], mean, accuracy: 1e-5, "\(options.method) layer \(layer) row \(k)")
                        let values = members.map { tokens[$0, c] }
                        XCTAssertTrue(out[k, c] >= values.min()! - 1e-5 && out[k, c] <= values.max()! + 1e-5, "convex")
                    }
                }
                tokens = out
            }
            if let keep = options.keep { XCTAssertEqual(tokens.rows, keep + 1) }
        }
    }

    /// CLS attention as PruMerge+ sees it: a softmax row (here over the patches only), with a few
    /// patches attended to far more than the rest.
    func pruMergeAttention(_ random: inout TestRandom, patches n: Int) -> [Float] {
        var logits = (0..<n).map { _ in random.float() }
        for _ in 0..<3 { logits[Int(random.next() % UInt64(n))] += 4 }
        let e = logits.map { expf($0) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }

    func testPruMergePlusKeepsExactlyKDistinctPatches() {
        var random = TestRandom(seed: 31)
        for n in [64, 200] {
            let a = pruMergeAttention(&random, patches: n)
            let x = random.matrix(rows: n, cols: 6), keys = random.matrix(rows: n, cols: 5)
            let outliers = PruMergePlus.outlierCount(a)
            XCTAssertGreaterThan(outliers, 0)
            for k in [1, 2, 3, outliers, outliers + 1, n / 2, n - 1, n] {
                let kept = PruMergePlus.budgetSelection(clsAttention: a, keep: k)
                XCTAssertEqual(kept.count, k - 1, "n \(n) keep \(k)")
                XCTAssertEqual(Set(kept).count, kept.count, "unique, n \(n) keep \(k)")
                XCTAssertTrue(kept.allSatisfy { $0 >= 0 && $0 < n }, "in range, n \(n) keep \(k)")
                // The outliers come first, most attended first.
                let ranked = a.indices.sorted { a[$0] > a[$1] }
                XCTAssertEqual(Array(kept.prefix(min(outliers, k - 1))), Array(ranked.prefix(min(outliers, k - 1))))
                XCTAssertEqual(PruMergePlus.merge(features: x, keys: keys, clsAttention: a, kept: kept).features.rows, k)
            }
            let adaptive = PruMergePlus.adaptiveSelection(clsAttention: a)
            XCTAssertEqual(Set(adaptive).count, adaptive.count)
            XCTAssertTrue(adaptive.allSatisfy { $0 >= 0 && $0 < n })
            XCTAssertGreaterThan(adaptive.count, outliers, "outliers plus samples")
        }
    }

    /// With one-hot features every output row shows its coefficients: a kept row is its own patch
    /// with weight 1 plus its 32 key-nearest other patches weighted by their CLS attention (not a
    /// convex combination: the official weights are not normalised); the extra row is the pruned
    /// patches weighted the same way.
    func testPruMergePlusRowsAreTheDocumentedCombinations() {
        var random = TestRandom(seed: 32)
        let n = 64
        let a = pruMergeAttention(&random, patches: n)
        let x = Matrix(rows: n, cols: n)
        for i in 0..<n { x[i, i] = 1 }
        let keys = random.matrix(rows: n, cols: 8)
        for kept in [PruMergePlus.adaptiveSelection(clsAttention: a), PruMergePlus.budgetSelection(clsAttention: a, keep: 12)] {
            let r = PruMergePlus.merge(features: x, keys: keys, clsAttention: a, kept: kept)
            XCTAssertEqual(r.features.rows, kept.count + 1)
            for (row, own) in kept.enumerated() {
                let neighbours = r.neighbours[row]
                XCTAssertEqual(neighbours.count, PruMergePlus.neighbours)
                XCTAssertFalse(neighbours.contains(own))
                XCTAssertEqual(Set(neighbours).count, neighbours.count)
                for j in 0..<n {
                    let expected: Float = j == own ? 1 : (neighbours.contains(j) ? a[j] : 0)
                    XCTAssertEqual(r.features[row, j], expected, accuracy: 1e-7, "row \(row), patch \(j)")
                }
                let others = (0..<n).filter { $0 != own }.reduce(Float(0)) { $0 + r.features[row, $1] }
                XCTAssertLessThan(others, 1, "the absorbed weights sum to less than 1")
                // The neighbours are the most similar keys among the other patches.
                let unit = (0..<n).map { i -> [Float] in
                    let v = keys.rowArray(i), norm = sqrtf(v.reduce(0) { $0 + $1 * $1 })
                    return v.map { $0 / norm }
                }
                let sim = (0..<n).map { j in zip(unit[own], unit[j]).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
                let weakestIn = neighbours.map { sim[$0] }.min()!
                let strongestOut = (0..<n).filter { $0 != own && !neighbours.contains($0) }.map { sim[$0] }.max()!
                XCTAssertGreaterThanOrEqual(weakestIn, strongestOut - 1e-6)
            }
            let pruned = Set(r.pruned)
            XCTAssertEqual(pruned.count + kept.count, n)
            for j in 0..<n {
                XCTAssertEqual(r.features[kept.count, j], pruned.contains(j) ? a[j] : 0, accuracy: 1e-7, "extra token, patch \(j)")
            }
        }
    }

    /// Through the merger: the tower runs unreduced, the patch features come down to K tokens (or
    /// the adaptive count), and each kept token holds its own patch and its neighbours.
    func testPruMergePlusThroughTheMergerTracksSources() throws {
        var random = TestRandom(seed: 33)
        let a = pruMergeAttention(&random, patches: 64)
        let features = random.matrix(rows: 64, cols: 6), keys = random.matrix(rows: 64, cols: 5)
        for options in [MergeOptions(method: .pruMergePlus, keep: 9, trackSources: true),
                        MergeOptions(method: .pruMergePlus, ratio: 0.25, trackSources: true),
                        MergeOptions(method: .pruMergePlus, trackSources: true)] {
            XCTAssertNoThrow(try options.validate())
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
            XCTAssertEqual(merger.plannedTokenCounts, Array(repeating: 65, count: 12))
            XCTAssertEqual(merger.schedule.featureKeep, options.keep ?? options.ratio.map { _ in 16 })
            var tokens = random.matrix(rows: 65, cols: 6)
            for layer in 0..<11 {
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil)
            }
            let out = merger.reducePatchFeatures(features, keys: keys, clsAttention: a, droppedTokens: 1)
            let kept = merger.schedule.featureKeep.map { PruMergePlus.budgetSelection(clsAttention: a, keep: $0) }
                ?? PruMergePlus.adaptiveSelection(clsAttention: a)
            XCTAssertEqual(out.rows, kept.count + 1)
            if let k = merger.schedule.featureKeep { XCTAssertEqual(out.rows, k) }
            let sources = try XCTUnwrap(merger.sources)
            XCTAssertEqual(sources.count, out.rows + 1)
            XCTAssertEqual(sources[0], [])
            for (row, patch) in kept.enumerated() {
                XCTAssertTrue(sources[row + 1].contains(patch))
                XCTAssertEqual(sources[row + 1].count, 1 + PruMergePlus.neighbours)
            }
            XCTAssertEqual(Set(sources.last!), Set((0..<64).filter { !kept.contains($0) }))
        }
    }
}
