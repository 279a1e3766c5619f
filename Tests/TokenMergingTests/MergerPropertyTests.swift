import FixtureLocations
import Kernels
import TokenMerging
import XCTest

/// Properties of `TokenMerger` on random inputs: merged rows are the (weighted) means of the rows
/// they absorb, sources partition the original patches, CLS stays first and untouched, ratio 1 is
/// the identity, and token budgets are met exactly.
final class MergerPropertyTests: XCTestCase {
    /// The merging methods whose outputs are means of input rows.
    let meanMethods: [(String, MergeOptions)] = [
        ("tome", MergeOptions(method: .tome, ratio: 0.8)),
        ("pitome", MergeOptions(method: .pitome, ratio: 0.8)),
        ("pitome every layer", MergeOptions(method: .pitome, ratio: 0.8, pitomeEveryLayer: true)),
        ("diffrate", MergeOptions(method: .diffRate, ratio: 0.7)),
        ("pool", MergeOptions(method: .pool2x2)),
        ("pitome keep 7", MergeOptions(method: .pitome, keep: 7)),
        ("tome keep 3", MergeOptions(method: .tome, keep: 3)),
        ("crossget", MergeOptions(method: .crossGet, ratio: 0.8)),
        ("crossget keep 5", MergeOptions(method: .crossGet, keep: 5)),
    ]

    /// Runs a 12-layer tower stand-in (65 tokens = CLS + 8×8) whose "layers" add noise, and checks
    /// every merge against the source map.
    func testMergedRowsAreMeansOfTheRowsTheyHold() throws {
        for weighting in MergeWeighting.allCases {
            for (name, base) in meanMethods {
                for keysMetric in [false, true] {
                    var options = base
                    options.weighting = weighting
                    options.trackSources = true
                    let label = "\(name), \(weighting), \(keysMetric ? "separate metric" : "tokens as metric")"
                    try checkMeans(options: options, keysMetric: keysMetric, label: label)
                }
            }
        }
    }

    func checkMeans(options: MergeOptions, keysMetric: Bool, label: String) throws {
        var random = TestRandom(seed: 7)
        let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
        var tokens = random.matrix(rows: 65, cols: 12)
        for layer in 0..<11 {
            for i in 0..<tokens.count { tokens.data[i] += 0.1 * random.float() }  // the "layer"
            let metric = keysMetric ? random.matrix(rows: tokens.rows, cols: 8) : tokens
            let attention = (0..<tokens.rows).map { _ in abs(random.float()) }
            let sourcesIn = try XCTUnwrap(merger.sources).map(Set.init)
            let sizesIn = merger.sizes
            let out = merger.merge(layer: layer, tokens: tokens, metric: metric,
                                   clsAttention: merger.needsCLSAttention ? attention : nil)
            let sourcesOut = try XCTUnwrap(merger.sources).map(Set.init)
            let sizesOut = merger.sizes
            XCTAssertEqual(out.rows, merger.plannedTokenCounts[layer + 1], label)
            XCTAssertEqual(sourcesOut.count, out.rows, label)
            XCTAssertEqual(sizesOut.count, out.rows, label)
            // CLS: row 0, unchanged, holding no patch.
            XCTAssertEqual(out.rowArray(0), tokens.rowArray(0), "CLS row, \(label), layer \(layer)")
            XCTAssertEqual(sourcesOut[0], [], label)
            XCTAssertEqual(sizesOut[0], 1, label)
            // Every original patch in exactly one token.
            XCTAssertEqual(sourcesOut.map(\.count).reduce(0, +), 64, label)
            XCTAssertEqual(sourcesOut.reduce(Set<Int>()) { $0.union($1) }, Set(0..<64), label)
            for k in 1..<out.rows {
                let members = (1..<tokens.rows).filter { sourcesIn[$0].isSubset(of: sourcesOut[k]) }
                XCTAssertFalse(members.isEmpty, label)
                XCTAssertEqual(members.reduce(Set<Int>()) { $0.union(sourcesIn[$1]) }, sourcesOut[k], label)
                let weights = members.map { options.weighting == .size ? sizesIn[$0] : 1 }
                XCTAssertEqual(sizesOut[k], members.reduce(0) { $0 + sizesIn[$1] }, label)
                XCTAssertEqual(sizesOut[k], Float(sourcesOut[k].count), label)
                let total = weights.reduce(0, +)
                for c in 0..<tokens.cols {
                    var mean: Float = 0
                    for (j, w) in zip(members, weights) { mean += tokens[j, c] * w }
                    mean /= total
                    XCTAssertEqual(out[k, c], mean, accuracy: 1e-5, "\(label), layer \(layer), row \(k)")
                    // Convex: within the range of the absorbed rows.
                    let values = members.map { tokens[$0, c] }
                    XCTAssertGreaterThanOrEqual(out[k, c], values.min()! - 1e-5, label)
                    XCTAssertLessThanOrEqual(out[k, c], values.max()! + 1e-5, label)
                }
            }
            tokens = out
        }
    }

    /// With size weighting and layers that change nothing, each final token is the plain average of
    /// the original patches it holds.
    func testSizeWeightedMergingAveragesOriginalPatches() throws {
        for method in [MergeMethod.tome, .pitome, .diffRate, .pool2x2] {
            var random = TestRandom(seed: 11)
            let options = MergeOptions(method: method, ratio: method == .pool2x2 ? nil : 0.75, weighting: .size,
                                       trackSources: true)
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 11, initialTokens: 65)
            let original = random.matrix(rows: 65, cols: 6)
            var tokens = original
            for layer in 0..<11 {
                let attention = (0..<tokens.rows).map { _ in abs(random.float()) }
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: attention)
            }
            let sources = try XCTUnwrap(merger.sources)
            XCTAssertLessThan(tokens.rows, 65, "\(method) merged")
            for k in 1..<tokens.rows {
                for c in 0..<6 {
                    let mean = sources[k].reduce(Float(0)) { $0 + original[$1 + 1, c] } / Float(sources[k].count)
                    XCTAssertEqual(tokens[k, c], mean, accuracy: 1e-5, "\(method) row \(k)")
                }
            }
        }
    }

    /// Pruning methods: every output row is one input row, each original patch at most once.
    func testPruningMethodsKeepRowsUnchanged() throws {
        for options in [MergeOptions(method: .randomDrop, ratio: 0.8, seed: 3, trackSources: true),
                        MergeOptions(method: .tofu, ratio: 0.8, trackSources: true)] {
            var random = TestRandom(seed: 5)
            let merger = try TokenMerger(options: options, towerDepth: 12, mergeLayers: 5, initialTokens: 65)
            var tokens = random.matrix(rows: 65, cols: 8)
            for layer in 0..<5 {
                let before = tokens
                tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil)
                XCTAssertEqual(tokens.rows, merger.plannedTokenCounts[layer + 1])
                let rowsBefore = (0..<before.rows).map(before.rowArray)
                for k in 0..<tokens.rows { XCTAssertTrue(rowsBefore.contains(tokens.rowArray(k)), "\(options.method)") }
                XCTAssertEqual(tokens.rowArray(0), before.rowArray(0))
            }
            let sources = try XCTUnwrap(merger.sources)
            let all = sources.flatMap { $0 }
            XCTAssertEqual(all.count, Set(all).count, "\(options.method): each patch at most once")
            XCTAssertEqual(all.count, tokens.rows - 1)
            XCTAssertLessThan(all.count, 64)
        }
    }

    func testRatioOneIsTheIdentity() throws {
        for method in MergeMethod.allCases where method != .none && method != .pool2x2 {
            var random = TestRandom(seed: 2)
            let merger = try TokenMerger(options: MergeOptions(method: method, ratio: 1, trackSources: method != .dct),
                                         towerDepth: 24, mergeLayers: 23, initialTokens: 577)
            XCTAssertEqual(merger.plannedTokenCounts, Array(repeating: 577, count: 24), "\(method)")
            let tokens = random.matrix(rows: 577, cols: 4)
            let copy = tokens.copy()
            for layer in 0..<23 {
                let out = merger.merge(layer: layer, tokens: tokens, metric: tokens,
                                       clsAttention: [Float](repeating: 0.5, count: 577))
                XCTAssertTrue(out === tokens, "\(method) layer \(layer)")
            }
            XCTAssertEqualArrays(tokens.toArray(), copy.toArray())
            XCTAssertEqual(merger.sizes, [Float](repeating: 1, count: 577))
            if method != .dct { XCTAssertEqual(try XCTUnwrap(merger.sources), [[]] + (0..<576).map { [$0] }) }
        }
        // Method none with no amount is the identity as well.
        let none = try TokenMerger(options: MergeOptions(), towerDepth: 24, mergeLayers: 23, initialTokens: 577)
        XCTAssertEqual(none.plannedTokenCounts, Array(repeating: 577, count: 24))
    }

    /// The budget is met exactly for every K that any schedule can reach, on several geometries;
    /// unreachable budgets are reported with the true minimum.
    func testKeepKGivesExactlyKPatchTokens() throws {
        let geometries = [(17, 6, 5), (50, 12, 11), (65, 12, 11), (65, 4, 1), (197, 12, 12), (577, 24, 23), (577, 24, 3)]
        let methods: [(MergeMethod, Bool)] = [(.tome, false), (.pitome, false), (.pitome, true), (.tofu, false),
                                              (.dct, false), (.diffRate, false), (.randomDrop, false), (.crossGet, false), (.mctf, false)]
        for (tokens, depth, layers) in geometries {
            let patches = tokens - 1
            for (method, every) in methods {
                let stages = (0..<layers).map {
                    MergeSchedule.stage(method: method, layer: $0, towerDepth: depth, mergeLayers: layers, pitomeEveryLayer: every)
                }
                var minimum = patches
                for stage in stages { minimum -= MergeSchedule.maxRemoval(stage: stage, patchTokens: minimum) }
                for keep in 1...patches {
                    let options = MergeOptions(method: method, keep: keep, pitomeEveryLayer: every)
                    let label = "\(method)\(every ? " every layer" : ""), \(tokens) tokens, \(layers)/\(depth) layers, keep \(keep)"
                    if keep < minimum {
                        XCTAssertThrowsError(try MergeSchedule(options: options, towerDepth: depth, mergeLayers: layers,
                                                               initialTokens: tokens), label) { error in
                            XCTAssertEqual(error as? MergeError,
                                           .keepUnreachable(keep: keep, minimum: minimum, method: method, layers: layers), label)
                        }
                        continue
                    }
                    let schedule = try MergeSchedule(options: options, towerDepth: depth, mergeLayers: layers, initialTokens: tokens)
                    XCTAssertEqual(schedule.tokenCounts.last, keep + 1, label)
                    for step in schedule.steps {
                        let p = schedule.tokenCounts[step.layer] - 1
                        XCTAssertGreaterThanOrEqual(step.remove, 0, label)
                        XCTAssertLessThanOrEqual(step.remove, MergeSchedule.maxRemoval(stage: step.stage, patchTokens: p), label)
                        XCTAssertEqual(schedule.tokenCounts[step.layer + 1], p + 1 - step.remove, label)
                    }
                }
            }
        }
    }

    /// Keep K through the real merger: the rows that come out are the budget.
    func testKeepKThroughTheMerger() throws {
        for method in [MergeMethod.tome, .pitome, .tofu, .dct, .diffRate, .randomDrop, .crossGet] {
            for keep in [1, 5, 10, 33, 64] {
                var random = TestRandom(seed: UInt64(keep))
                let merger: TokenMerger
                do {
                    merger = try TokenMerger(options: MergeOptions(method: method, keep: keep),
                                             towerDepth: 12, mergeLayers: 11, initialTokens: 65)
                } catch MergeError.keepUnreachable(_, let minimum, _, _) {
                    XCTAssertGreaterThan(minimum, keep)
                    XCTAssertEqual(method, .tofu, "only ToFu (5 odd layers) cannot reach \(keep)")
                    continue
                }
                var tokens = random.matrix(rows: 65, cols: 8)
                for layer in 0..<11 {
                    let attention = (0..<tokens.rows).map { _ in abs(random.float()) }
                    tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: attention)
                }
                XCTAssertEqual(tokens.rows, keep + 1, "\(method) keep \(keep)")
                XCTAssertEqual(merger.sizes.count, keep + 1)
                let total = merger.sizes.reduce(0, +)
                switch method {
                case .randomDrop: XCTAssertEqual(total, Float(keep + 1), "\(method) keep \(keep): sizes")
                case .tofu: XCTAssertTrue(total >= Float(keep + 1) && total <= 65, "\(method) keep \(keep): sizes")
                default: XCTAssertEqual(total, 65, accuracy: 1e-3, "\(method) keep \(keep): sizes")
                }
            }
        }
    }

    /// The keep-K rule compounds like a constant ratio and trims the rest on the last layers.
    func testKeepKScheduleShape() throws {
        func counts(_ options: MergeOptions) throws -> [Int] {
            try MergeSchedule(options: options, towerDepth: 24, mergeLayers: 23, initialTokens: 577).tokenCounts
        }
        // Ratios 0.875 and 0.9 leave 30 and 54 patch tokens; a budget in between follows a constant
        // ratio between them, so its counts lie between theirs at every layer.
        for keep in [31, 40, 54] {
            let budget = try counts(MergeOptions(method: .pitome, keep: keep))
            let gentler = try counts(MergeOptions(method: .pitome, ratio: 0.9))
            let harsher = try counts(MergeOptions(method: .pitome, ratio: 0.875))
            XCTAssertEqual(budget.last, keep + 1)
            for i in 0..<budget.count {
                XCTAssertLessThanOrEqual(budget[i], gentler[i], "keep \(keep), layer \(i)")
                XCTAssertGreaterThanOrEqual(budget[i], harsher[i], "keep \(keep), layer \(i)")
            }
        }
        // The smallest reachable budget halves at every layer; a slightly larger one starts gentler.
        XCTAssertEqual(try counts(MergeOptions(method: .tome, keep: 1)).prefix(3), [577, 289, 145])
        let five = try counts(MergeOptions(method: .tome, keep: 5))
        XCTAssertEqual(five.last, 6)
        XCTAssertGreaterThan(five[1], 289)
        // A surplus left by the constant ratio is trimmed on the last layers only.
        let fortyOne = try counts(MergeOptions(method: .tome, keep: 41))
        XCTAssertEqual(fortyOne.last, 42)
    }

    func testANewMergerStartsFromOneTokenPerPatch() throws {
        var random = TestRandom(seed: 9)
        let options = MergeOptions(method: .pitome, ratio: 0.8, weighting: .size, trackSources: true)
        let image = random.matrix(rows: 65, cols: 8)
        func run(_ merger: TokenMerger) -> Matrix {
            var tokens = image
            for layer in 0..<5 { tokens = merger.merge(layer: layer, tokens: tokens, metric: tokens, clsAttention: nil) }
            return tokens
        }
        let first = try TokenMerger(options: options, towerDepth: 6, mergeLayers: 5, initialTokens: 65)
        XCTAssertEqual(first.sizes, [Float](repeating: 1, count: 65))
        XCTAssertEqual(first.logSizes, [Float](repeating: 0, count: 65))
        XCTAssertEqual(try XCTUnwrap(first.sources), [[]] + (0..<64).map { [$0] })
        let merged = run(first)
        XCTAssertNotEqual(first.sizes, [Float](repeating: 1, count: first.sizes.count))
        let second = try TokenMerger(options: options, towerDepth: 6, mergeLayers: 5, initialTokens: 65)
        XCTAssertEqualArrays(run(second).toArray(), merged.toArray())
    }
}
