import Checkpoint
import FixtureLocations
import Foundation
import Kernels
import TokenMerging
import XCTest

/// The 80 merge units produced by the official PiToMe code (Tests/Fixtures/reference/pitome,
/// made by Scripts/reference/make_pitome_fixtures.py).
final class OfficialFixtureTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("pitome") }

    /// On every kernel path this CPU runs.
    func testEveryOfficialMergeUnitMatchesWithin1e5() throws {
        try KernelPath.forEachAvailable { path in try everyOfficialMergeUnitMatches(path) }
    }

    func everyOfficialMergeUnitMatches(_ path: KernelPath) throws {
        let dir = fixturesDirectory.appendingPathComponent("pitome")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasSuffix(".safetensors") }
            .sorted()
        XCTAssertEqual(names.count, 80, "expected the 80 official merge units in \(dir.path)")
        var merged = 0, unchanged = 0
        for name in names {
            let file = try SafeTensorsFile(path: dir.appendingPathComponent(name).path)
            let meta = file.metadata
            let x = try file.matrix("x")
            let expected = try file.matrix("expected")
            let ratio = try XCTUnwrap(Double(meta["ratio"] ?? ""), name)
            let layer = try XCTUnwrap(Int(meta["layer"] ?? ""), name)
            let depth = try XCTUnwrap(Int(meta["num_layers"] ?? ""), name)
            let margin = try XCTUnwrap(Double(meta["margin"] ?? ""), name)
            let alpha = try XCTUnwrap(Float(meta["alpha"] ?? ""), name)
            let algo = try XCTUnwrap(meta["algo"], name)
            XCTAssertEqual(meta["merge"], "mean", name)
            XCTAssertEqual(meta["class_token"], "true", name)
            let method = try XCTUnwrap(MergeMethod(rawValue: meta["mode"] ?? ""), name)

            let stage = MergeSchedule.stage(method: method, layer: layer, towerDepth: depth, mergeLayers: depth)
            XCTAssertEqual(algo.hasPrefix("tome") ? LayerStep.Stage.tome : .pitome, stage, "stage of \(name) (algo \(algo))")
            XCTAssertEqual(PiToMe.margin(layer: layer, depth: depth), margin, "margin of \(name)")

            let remove = MergeSchedule.removal(stage: stage, patchTokens: x.rows - 1, ratio: ratio)
            let step = LayerStep(layer: layer, stage: stage, remove: remove, margin: margin)
            let out = apply(step.plan(metric: x, alpha: alpha), to: x, .mean)
            XCTAssertRowsClose(out, expected, accuracy: 1e-5, "\(path): \(name)")
            if remove == 0 { unchanged += 1 } else { merged += 1 }
        }
        XCTAssertGreaterThan(merged, 60, "most units merge something")
        XCTAssertGreaterThan(unchanged, 0, "some units have r = 0")
    }
}
