import Checkpoint
import FixtureLocations
import Foundation
import XCTest

/// The reducers are picked up by every command through the shared merge settings.
final class ReducerCommandTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    static let model = CLI.referenceFixtures + "/llava-small/model"
    static let image = CLI.referenceFixtures + "/llava-small/shapes.png"
    static let methods = ["divprune", "visionzip", "prumerge-plus", "crossget", "mctf"]

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "llava-reducers-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testAskReportsTheBudget() throws {
        for method in Self.methods {
            let r = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--merge", method, "--keep", "12",
                                 "-n", "2", "--json", "What color is the square?"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try r.lastJSONObject()["visual_tokens"] as? Int, 12, method)
        }
    }

    /// Without --keep or --ratio PruMerge+ keeps its adaptive count: what the official code keeps
    /// on this image, the kept patches plus the extra token (the rows of `embeddings` in
    /// Tests/Fixtures/reducers/prumerge_plus_llava_small).
    func testAskWithAdaptivePruMergePlus() throws {
        let file = try SafeTensorsFile(path: FixtureLocations.project + "/reducers/prumerge_plus_llava_small.safetensors")
        guard let official = file.tensors["embeddings"]?.shape.first else {
            throw FixtureError("prumerge_plus_llava_small.safetensors has no embeddings tensor")
        }
        let r = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--merge", "prumerge-plus",
                             "-n", "2", "--json", "What color is the square?"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try r.lastJSONObject()["visual_tokens"] as? Int, official)
    }

    /// PruMerge+ reads the layer after the feature layer; weights that stop at the feature layer
    /// give one line naming the model folder.
    func testPruMergePlusWithoutTheNextLayerIsOneLineError() throws {
        let model = try scratch() + "/model"
        try FileManager.default.copyItem(atPath: Self.model, toPath: model)
        let configPath = model + "/config.json"
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        var vision = try XCTUnwrap(config["vision_config"] as? [String: Any])
        vision["num_hidden_layers"] = 13  // feature layer -2 is now layer 12, the last the weights hold
        config["vision_config"] = vision
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let r = try CLI.run(["ask", "--model", model, "--image", Self.image, "--merge", "prumerge-plus", "--keep", "8",
                             "-n", "2", "What color is the square?"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(model) && r.stderr.contains("vision layer 12"), r.stderr)
    }

    func testBenchRunsEveryReducerAtEachBudget() throws {
        let prefix = try scratch() + "/reducers"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", Self.methods.joined(separator: ","),
                             "--ratios", "1", "--keep", "32,8", "--repeat", "1", "--warmup", "0", "-n", "2", "--out", prefix],
                            timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: prefix + ".csv", encoding: .utf8).split(separator: "\n").map(String.init)
        guard let first = lines.first else { throw FixtureError("the bench table is empty") }
        let header = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let rows = lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init))) }
        XCTAssertEqual(rows.map { $0["method"]! }, ["none"] + Self.methods.flatMap { [$0, $0] })
        XCTAssertEqual(rows.map { $0["visual_tokens"]! }, ["64"] + Self.methods.flatMap { _ in ["32", "8"] })
    }

    func testMergeMapDrawsTheReducers() throws {
        for (method, dropped) in [("divprune", 52), ("visionzip", 0), ("prumerge-plus", 0), ("crossget", 0), ("mctf", 0)] {
            let out = try scratch() + "/map.png"
            let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", method, "--keep", "12", "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("12 visual tokens"), r.stdout)
            XCTAssertTrue(r.stdout.contains("\(dropped) patches dropped"), "\(method): \(r.stdout)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        }
    }
}
