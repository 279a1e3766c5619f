import FixtureLocations
import Foundation
import XCTest

/// `--merge fastv` through the commands: the budget is reported, bench times it, and the commands
/// that cannot show or keep its cut say so in one line.
final class FastVCommandTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    static let model = CLI.referenceFixtures + "/llava-small/model"
    static let image = CLI.referenceFixtures + "/llava-small/shapes.png"

    func testAskReportsTheKeptVisualTokens() throws {
        let promptLength = try CLI.smallReferenceUnmerged().int("prompt_len")
        for flags in [["--keep", "12"], ["--ratio", "0.1875", "--fastv-layer", "3"]] {
            let r = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--merge", "fastv"] + flags
                                + ["-n", "2", "--json", "What color is the square?"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try r.lastJSONObject()
            XCTAssertEqual(json["visual_tokens"] as? Int, 12, "\(flags)")
            XCTAssertEqual((json["prompt_ids"] as? [Int])?.count, promptLength, "the prompt holds every image token")
        }
    }

    func testBenchTimesFastV() throws {
        let dir = NSTemporaryDirectory() + "llava-fastv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "fastv", "--ratios", "1",
                             "--keep", "16", "--repeat", "1", "--warmup", "0", "-n", "2", "--out", dir + "/b"], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: dir + "/b.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        guard let first = lines.first else { throw FixtureError("the bench table is empty") }
        let header = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let rows = lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init))) }
        XCTAssertEqual(rows.map { $0["method"]! }, ["none", "fastv"])
        XCTAssertEqual(rows.map { $0["visual_tokens"]! }, ["64", "16"])
    }

    func testBadFlagsAndCommandsWithoutACutAreRefused() throws {
        let cases: [([String], String)] = [
            (["ask", "--model", Self.model, "--image", Self.image, "--merge", "fastv", "--keep", "8", "--fastv-layer", "4", "hi"],
             "between 1 and 3"),
            (["ask", "--model", Self.model, "--image", Self.image, "--merge", "fastv", "--keep", "8", "--fastv-layer", "0", "hi"],
             "--fastv-layer must be at least 1"),
            (["ask", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--ratio", "0.9", "--fastv-layer", "3", "hi"],
             "--fastv-layer only applies to --merge fastv"),
            (["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "fastv", "--keep", "8", "--out", "/tmp/x.png"],
             "inside the language model"),
            (["chat", "--model", Self.model, "--merge", "fastv", "--keep", "8"], "not available in chat"),
        ]
        for (arguments, message) in cases {
            let r = try CLI.run(arguments, stdin: "")
            XCTAssertNotEqual(r.status, 0, "\(arguments)")
            XCTAssertTrue(r.stderr.contains(message), "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("rror") }.count, 1, r.stderr)
        }
    }
}
