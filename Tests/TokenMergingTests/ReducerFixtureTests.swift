import Checkpoint
import FixtureLocations
import Foundation
import Kernels
import TokenMerging
import XCTest

/// The reducers against fixtures made by running their official code
/// (Scripts/reference/make_reducer_fixtures.py, Tests/Fixtures/reducers).
final class ReducerFixtureTests: XCTestCase {
    static let directory = URL(fileURLWithPath: FixtureLocations.project).appendingPathComponent("reducers")

    func fixtures(_ prefix: String) throws -> [(name: String, file: SafeTensorsFile)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path)
            .filter { $0.hasPrefix(prefix + "_") && $0.hasSuffix(".safetensors") }
            .sorted()
        return try names.map { ($0, try SafeTensorsFile(path: Self.directory.appendingPathComponent($0).path)) }
    }

    func testDivPruneMatchesTheOfficialSelection() throws {
        let cases = try fixtures("divprune")
        XCTAssertEqual(cases.count, 7, "expected the 7 DivPrune fixtures in \(Self.directory.path)")
        for (name, file) in cases {
            let x = try file.matrix("x")
            let keep = try XCTUnwrap(Int(file.metadata["keep"] ?? ""), name)
            let order = try indices(file, "order")
            XCTAssertEqual(DivPrune.selectionOrder(features: x, keep: keep), order, "pick order of \(name)")
            let plan = DivPrune.plan(features: x, keep: keep)
            XCTAssertEqual(plan.outputRows, keep, name)
            XCTAssertRowsClose(apply(plan, to: x), try file.matrix("expected"), accuracy: 1e-5, name)
            let ratio = try XCTUnwrap(Double(file.metadata["ratio"] ?? ""), name)
            XCTAssertEqual(DivPrune.keptCount(tokens: x.rows, ratio: ratio), keep, "count at ratio \(ratio) for \(name)")
        }
    }

    func testVisionZipMatchesTheOfficialDominantAndContextualTokens() throws {
        let cases = try fixtures("visionzip")
        XCTAssertEqual(cases.count, 6, "expected the 6 VisionZip fixtures in \(Self.directory.path)")
        for (name, file) in cases {
            let hidden = try file.matrix("hidden"), keys = try file.matrix("keys")
            let dominant = try XCTUnwrap(Int(file.metadata["dominant"] ?? ""), name)
            let contextual = try XCTUnwrap(Int(file.metadata["contextual"] ?? ""), name)
            // Mean over heads, as the tower's attention kernel gives it (the official code sums).
            let perHead = try file.matrix("cls_attention")
            let cls = (0..<perHead.cols).map { j in (0..<perHead.rows).reduce(Float(0)) { $0 + perHead[$1, j] } / Float(perHead.rows) }
            let plan = VisionZip.plan(metric: keys, clsAttention: cls, dominant: dominant, contextual: contextual)
            XCTAssertEqual(plan.groups.prefix(dominant + 1).map { $0[0] }, [0] + (try indices(file, "dominant")), "dominant rows of \(name)")
            XCTAssertEqual(plan.outputRows, 1 + dominant + contextual, name)
            XCTAssertRowsClose(apply(plan, to: hidden, .destinationPlusMean), try file.matrix("expected"), accuracy: 1e-5, name)
            // The budget split reproduces the official pairs (CLS aside: the official counts include it).
            if dominant + contextual == 64 || dominant + contextual == 128 {
                XCTAssertEqual(VisionZip.split(keep: dominant + contextual).contextual, contextual, name)
            }
        }
    }

    func testCrossGETMatchesTheOfficialMerge() throws {
        let cases = try fixtures("crossget")
        XCTAssertEqual(cases.count, 6, "expected the 6 CrossGET fixtures in \(Self.directory.path)")
        for (name, file) in cases {
            let x = try file.matrix("x")
            let ratio = try XCTUnwrap(Double(file.metadata["ratio"] ?? ""), name)
            let remove = MergeSchedule.removal(stage: .crossGet, patchTokens: x.rows - 1, ratio: ratio)
            let step = LayerStep(layer: 1, stage: .crossGet, remove: remove, margin: 0)
            XCTAssertRowsClose(apply(step.plan(metric: x), to: x, .mean), try file.matrix("expected"), accuracy: 1e-5, name)
        }
    }

    func testMCTFMatchesTheOfficialMerge() throws {
        let cases = try fixtures("mctf")
        XCTAssertEqual(cases.count, 6, "expected the 6 MCTF fixtures in \(Self.directory.path)")
        for (name, file) in cases {
            let x = try file.matrix("x")
            let received = try file.matrix("received").toArray(), size = try file.matrix("size")
            let ratio = try XCTUnwrap(Double(file.metadata["ratio"] ?? ""), name)
            let remove = MergeSchedule.removal(stage: .mctf, patchTokens: x.rows - 1, ratio: ratio)
            let plan = LayerStep(layer: 1, stage: .mctf, remove: remove, margin: 0).plan(metric: x)
            let weights = MCTF.weights(receivedAttention: received, sizes: size.toArray())
            XCTAssertRowsClose(apply(plan, to: x, .weightedMean(sizes: weights)), try file.matrix("expected"), accuracy: 1e-5, name)
            XCTAssertRowsClose(apply(plan, to: size, .sum), try file.matrix("expected_size"), accuracy: 0, name)
        }
    }

    /// The official adaptive PruMerge+ on the same CLS attention, hidden states and keys: the same
    /// kept patches in the same order, the same merged tokens and the extra one, the same count.
    func testPruMergePlusMatchesTheOfficialAdaptiveSelectionAndMerge() throws {
        let cases = try fixtures("prumerge_plus").filter { $0.name.hasPrefix("prumerge_plus_T") }
        XCTAssertEqual(cases.count, 4, "expected the 4 PruMerge+ fixtures in \(Self.directory.path)")
        for (name, file) in cases {
            let hidden = try file.matrix("hidden"), keys = try file.matrix("k")
            let patches = Array(1..<hidden.rows)
            let cls = try file.matrix("cls_attention").toArray()
            let kept = PruMergePlus.adaptiveSelection(clsAttention: cls)
            XCTAssertEqual(kept, try indices(file, "kept"), "kept patches of \(name)")
            let result = PruMergePlus.merge(features: hidden.gatherRows(patches), keys: keys.gatherRows(patches),
                                            clsAttention: cls, kept: kept)
            let expected = try file.matrix("expected")
            XCTAssertEqual(result.features.rows, expected.rows, "visual tokens of \(name)")
            XCTAssertRowsClose(result.features, expected, accuracy: 1e-5, name)
        }
    }

    /// The official VisPruner (its sorts made stable) on the same patch features and CLS attention
    /// (averaged over heads as the official code does): the same kept patches for every budget and
    /// ratio the official code runs, the same kept rows.
    func testVisPrunerMatchesTheOfficialSelection() throws {
        try KernelPath.forEachAvailable { _ in try visPrunerMatchesTheOfficialSelection() }
    }

    func visPrunerMatchesTheOfficialSelection() throws {
        let cases = try fixtures("vispruner")
        XCTAssertEqual(cases.count, 5, "expected the 5 VisPruner fixtures in \(Self.directory.path)")
        var compared = 0
        for (name, file) in cases {
            let x = try file.matrix("features")
            let attention = try file.matrix("cls_attention").toArray()
            for key in file.tensors.keys.filter({ $0.hasPrefix("kept_") }).sorted() {
                let tag = String(key.dropFirst("kept_".count))  // T{budget}_r{ratio}
                let parts = tag.dropFirst().split(separator: "_r")
                let budget = try XCTUnwrap(Int(parts[0]), tag), ratio = try XCTUnwrap(Double(parts[1]), tag)
                let plan = VisPruner.plan(features: x, clsAttention: attention, keep: budget, importantRatio: ratio)
                XCTAssertEqual(plan.members, try indices(file, key), "kept patches of \(name) \(tag)")
                XCTAssertRowsClose(apply(plan, to: x), try file.matrix("expected_" + tag), accuracy: 1e-5, "\(name) \(tag)")
                compared += 1
            }
        }
        XCTAssertEqual(compared, 42, "VisPruner cases")
    }

    /// The official CDPruner on the same projector outputs and CLIP embeddings: the same picks in
    /// the same order up to the first step that rounding decides (the pick's d², or its lead over
    /// the next smaller d², at most one Float32 ulp of 1, the kernel's scale: there a last-bit
    /// difference, such as PyTorch's square root, can reorder them), and where no step is, the same
    /// kept tokens and rows.
    func testCDPrunerMatchesTheOfficialSelection() throws {
        try KernelPath.forEachAvailable { _ in try cdPrunerMatchesTheOfficialSelection() }
    }

    func cdPrunerMatchesTheOfficialSelection() throws {
        let cases = try fixtures("cdpruner")
        XCTAssertEqual(cases.count, 4, "expected the 4 CDPruner fixtures in \(Self.directory.path)")
        let noise = Float.ulpOfOne
        var compared = 0, complete = 0, picks = 0
        for (name, file) in cases {
            let x = try file.matrix("features"), image = try file.matrix("image_embeds")
            for key in file.tensors.keys.filter({ $0.hasPrefix("order_") }).sorted() {
                let tag = String(key.dropFirst("order_".count))  // K{budget}_M{segments}
                let parts = tag.dropFirst().split(separator: "_M")
                let budget = try XCTUnwrap(Int(parts[0]), tag)
                let text = try file.matrix("text_embeds_M\(parts[1])")
                let order = CDPruner.selectionOrder(features: x, imageEmbeds: image, textEmbeds: text, keep: budget)
                let official = try indices(file, key)
                let d2 = try file.matrix("d2_" + tag).toArray(), lead = try file.matrix("lead_" + tag).toArray()
                let decided = (0..<budget).first { !(d2[$0] > noise) || !(lead[$0] > noise) } ?? budget
                XCTAssertEqual(order.count, budget, "\(name) \(tag)")
                XCTAssertEqual(Array(order.prefix(decided)), Array(official.prefix(decided)), "picks of \(name) \(tag)")
                compared += 1
                picks += decided
                guard decided == budget else { continue }
                complete += 1
                let plan = MergePlan(inputRows: x.rows, groups: order.sorted().map { [$0] })
                XCTAssertEqual(plan, CDPruner.plan(features: x, imageEmbeds: image, textEmbeds: text, keep: budget), tag)
                XCTAssertEqual(plan.members, try indices(file, "kept_" + tag), "kept tokens of \(name) \(tag)")
                XCTAssertRowsClose(apply(plan, to: x), try file.matrix("expected_" + tag), accuracy: 1e-5, "\(name) \(tag)")
            }
        }
        XCTAssertEqual(compared, 40, "CDPruner cases")
        XCTAssertEqual(complete, 27, "CDPruner cases with no step decided by rounding")
        XCTAssertEqual(picks, 1263, "CDPruner picks before a step decided by rounding")
    }

    /// Exactly T patches, ascending, distinct, in range, for every budget (those the official code
    /// raises an error on included) and ratio; the most attended int(T·r) among them; T = N keeps all.
    func testVisPrunerKeepsExactlyTSortedPatches() {
        var random = TestRandom(seed: 31)
        for n in [1, 2, 3, 17, 64, 150] {
            let x = random.matrix(rows: n, cols: 12)
            let attention = (0..<n).map { _ in random.float() }
            for t in Set([1, 2, 3, 5, 8, n / 2, n - 1, n]) where t >= 1 && t <= n {
                for r in [0, 0.25, 0.5, 1] {
                    let kept = VisPruner.select(features: x, clsAttention: attention, keep: t, importantRatio: r)
                    XCTAssertEqual(kept.count, t, "n \(n) t \(t) r \(r)")
                    XCTAssertEqual(kept, Array(Set(kept)).sorted(), "ascending and distinct, n \(n) t \(t) r \(r)")
                    XCTAssertTrue(kept.allSatisfy { $0 >= 0 && $0 < n }, "in range, n \(n) t \(t) r \(r)")
                    let important = attention.indices.sorted { attention[$0] > attention[$1] }.prefix(Int(Double(t) * r))
                    XCTAssertTrue(Set(important).isSubset(of: kept), "important patches kept, n \(n) t \(t) r \(r)")
                    if t == n { XCTAssertEqual(kept, Array(0..<n)) }
                }
            }
        }
        XCTAssertEqual(VisPruner.split(keep: 64, importantRatio: 0.5).important, 32)
        XCTAssertEqual(VisPruner.split(keep: 5, importantRatio: 0.25).important, 1)
    }

    /// Ties keep index order: equal attention ranks lower indices first; of identical patches the
    /// duplicate removal drops the later even positions first.
    func testVisPrunerTiesKeepIndexOrder() {
        let x = Matrix(rows: 6, cols: 2, values: [1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1])
        XCTAssertEqual(VisPruner.select(features: x, clsAttention: [Float](repeating: 1, count: 6), keep: 3, importantRatio: 1),
                       [0, 1, 2])
        // Residual list 0…5: evens 0, 2, 4 score 1, 1, 1 against odd 1 and 3 (identical to 0 and 2);
        // the stable order removes 0 first.
        XCTAssertEqual(VisPruner.select(features: x, clsAttention: [Float](repeating: 1, count: 6), keep: 5, importantRatio: 0),
                       [1, 2, 3, 4, 5])
    }

    /// Exactly K tokens, distinct, ascending from `select`, for every budget, also beyond the
    /// kernel's rank (duplicated tokens, fewer dimensions than tokens), with equal relevance
    /// everywhere and with zero rows; K = N keeps all.
    func testCDPrunerKeepsExactlyKTokens() {
        var random = TestRandom(seed: 32)
        func check(_ x: Matrix, _ image: Matrix, _ text: Matrix, _ label: String) {
            let n = x.rows
            for k in Set([1, 2, n / 3, n / 2, n - 1, n]) where k >= 1 && k <= n {
                let order = CDPruner.selectionOrder(features: x, imageEmbeds: image, textEmbeds: text, keep: k)
                XCTAssertEqual(order.count, k, "\(label) k \(k)")
                XCTAssertEqual(Set(order).count, k, "distinct, \(label) k \(k)")
                XCTAssertTrue(order.allSatisfy { $0 >= 0 && $0 < n }, "in range, \(label) k \(k)")
                XCTAssertEqual(CDPruner.select(features: x, imageEmbeds: image, textEmbeds: text, keep: k), order.sorted())
                if k == n { XCTAssertEqual(order.sorted(), Array(0..<n), label) }
            }
        }
        for (n, d) in [(1, 4), (2, 4), (17, 16), (40, 8), (100, 24)] {
            check(random.matrix(rows: n, cols: d), random.matrix(rows: n, cols: 8), random.matrix(rows: 2, cols: 8), "n \(n) d \(d)")
        }
        // Every token one of 5, in 3 dimensions: rank 3.
        let originals = random.matrix(rows: 5, cols: 3), embeds = random.matrix(rows: 5, cols: 8)
        let labels = (0..<30).map { $0 % 5 }
        check(originals.gatherRows(labels), embeds.gatherRows(labels), random.matrix(rows: 1, cols: 8), "duplicates")
        // One image embedding for every token: equal relevance.
        check(random.matrix(rows: 20, cols: 6), Matrix(rows: 20, cols: 8, values: (0..<160).map { Float($0 % 8) }),
              random.matrix(rows: 1, cols: 8), "equal relevance")
        let zeros = random.matrix(rows: 20, cols: 6)
        for j in 0..<6 { zeros[3, j] = 0; zeros[11, j] = 0 }
        check(zeros, random.matrix(rows: 20, cols: 8), random.matrix(rows: 1, cols: 8), "zero rows")
    }

    /// A relevance of 1e-6 / range for the least relevant token, 1 + 1e-6 / range for the most.
    func testCDPrunerRelevanceIsMinMaxNormalised() {
        var random = TestRandom(seed: 33)
        let q = CDPruner.relevance(imageEmbeds: random.matrix(rows: 30, cols: 8), textEmbeds: random.matrix(rows: 2, cols: 8))
        XCTAssertEqual(q.count, 30)
        XCTAssertLessThan(q.min()!, 1e-4)
        XCTAssertGreaterThan(q.min()!, 0)
        XCTAssertEqual(q.max()!, 1, accuracy: 1e-4)
    }

    /// The products the two pruners rank by: every element one chain of fused multiply-adds per
    /// block of the inner dimension, the block sums added in order, whatever the shape (columns
    /// beyond the last group of eight, rows beyond the last group of four).
    func testFMAChainProductsSumInTheDocumentedOrder() {
        KernelPath.forEachAvailable { path in fmaChainProductsSumInTheDocumentedOrder(path) }
    }

    func fmaChainProductsSumInTheDocumentedOrder(_ path: KernelPath) {
        var random = TestRandom(seed: 34)
        for (m, n, k, block) in [(1, 1, 5, 5), (5, 13, 40, 40), (9, 17, 200, 100), (7, 8, 401, 192), (4, 24, 33, 7)] {
            let a = random.matrix(rows: m, cols: k), b = random.matrix(rows: n, cols: k)
            let c = fmaChainProducts(a, b, block: block)
            for i in 0..<m {
                for j in 0..<n {
                    var total: Float = 0
                    for k0 in stride(from: 0, to: k, by: block) {
                        var partial: Float = 0
                        for p in k0..<Swift.min(k, k0 + block) { partial = partial.addingProduct(a[i, p], b[j, p]) }
                        total = total + partial
                    }
                    XCTAssertEqual(c[i, j].bitPattern, total.bitPattern, "\(path): m \(m) n \(n) k \(k) block \(block) at \(i), \(j)")
                }
            }
        }
    }

    /// A stored column of indices (float32, exact for these sizes).
    func indices(_ file: SafeTensorsFile, _ name: String) throws -> [Int] {
        try file.matrix(name).toArray().map { Int($0) }
    }
}
