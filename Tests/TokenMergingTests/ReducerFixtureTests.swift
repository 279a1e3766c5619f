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

    /// A stored column of indices (float32, exact for these sizes).
    func indices(_ file: SafeTensorsFile, _ name: String) throws -> [Int] {
        try file.matrix(name).toArray().map { Int($0) }
    }
}
