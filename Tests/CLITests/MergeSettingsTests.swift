import Foundation
import XCTest

/// The merge settings as the commands record them: one set of keys in answer files, bench and
/// ask reports, and one set of rules for every command's flags.
final class MergeSettingsTests: XCTestCase {
    let model = CLI.fixtures + "/gqa-f16-v5"
    static let allKeys: Set<String> = ["method", "ratio", "keep", "metric", "weighting", "prop_attn", "pitome_every_layer", "seed"]

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "llava-merge-settings-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: CLI.fixtures + "/images/square-42.png", toPath: dir + "/a.png")
        return dir
    }

    func writeQuestions(_ count: Int, in dir: String) throws -> String {
        let lines = (1...count).map { #"{"question_id": \#($0), "image": "a.png", "text": "What is it?"}"# }
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/q.jsonl", atomically: true, encoding: .utf8)
        return dir + "/q.jsonl"
    }

    func testAnswerFilesRecordEveryMergeSettingUnderStableKeys() throws {
        let dir = try scratch()
        let questions = try writeQuestions(1, in: dir)
        let r = try CLI.run(["eval", "--model", model, "--questions", questions, "--answers", dir + "/a.jsonl", "-n", "2",
                             "--quiet", "--merge", "random", "--ratio", "1", "--merge-seed", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try String(contentsOfFile: dir + "/a.jsonl", encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let merge = (object["metadata"] as! [String: Any])["merge"] as! [String: Any]
        XCTAssertEqual(Set(merge.keys), Self.allKeys)
        XCTAssertEqual(merge["method"] as? String, "random")
        XCTAssertEqual((merge["seed"] as? NSNumber)?.intValue, 5)
        XCTAssertTrue(merge["keep"] is NSNull)
        // A ratio is written with a fraction, as earlier versions wrote it.
        XCTAssertTrue(line.contains(#""ratio":1.0"#), line)
    }

    /// An answer line whose merge object was written field by field by the earlier version is
    /// taken as made with the same settings, and the file is resumed.
    func testAnAnswerFileOfTheEarlierVersionIsResumed() throws {
        let dir = try scratch()
        let answers = dir + "/a.jsonl"
        let arguments = ["eval", "--model", model, "--questions", "", "--answers", answers, "-n", "2", "--merge", "tome",
                         "--ratio", "1"]
        var first = arguments
        first[4] = try writeQuestions(1, in: dir)
        XCTAssertEqual(try CLI.run(first).status, 0)
        var line = try String(contentsOfFile: answers, encoding: .utf8)
        let start = try XCTUnwrap(line.range(of: #""merge":{"#))
        let end = try XCTUnwrap(line[start.upperBound...].firstIndex(of: "}"))
        line.replaceSubrange(start.lowerBound...end, with: #""merge":{"method":"tome","ratio":1.0,"keep":null,"metric":"hidden","weighting":"mean","prop_attn":false,"pitome_every_layer":false,"seed":0}"#)
        try line.write(toFile: answers, atomically: true, encoding: .utf8)

        var second = arguments
        second[4] = try writeQuestions(2, in: dir)
        let resumed = try CLI.run(second)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("2 questions, 1 already answered"), resumed.stderr)
        XCTAssertEqual(try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n").count, 2)
    }

    func testBenchAndAskReportsCarryTheWholeSettings() throws {
        let dir = try scratch()
        let image = CLI.referenceFixtures + "/llava-small/shapes.png"
        let small = CLI.referenceFixtures + "/llava-small/model"
        let bench = try CLI.run(["bench", "--model", small, "--image", image, "--merge", "random", "--ratios", "1,0.9",
                                 "--repeat", "1", "--warmup", "0", "-n", "1", "--out", dir + "/b"], timeout: 300)
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/b.json"))) as! [String: Any]
        let rows = report["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.count, 2)
        for row in rows { XCTAssertEqual(Set((row["merge"] as! [String: Any]).keys), Self.allKeys) }
        XCTAssertEqual((rows[1]["merge"] as! [String: Any])["ratio"] as? Double, 0.9)

        let ask = try CLI.run(["ask", "--model", small, "--image", image, "-n", "1", "--json", "--merge", "random",
                               "--ratio", "0.9", "--merge-seed", "7", "What is it?"])
        XCTAssertEqual(ask.status, 0, ask.stderr)
        let merge = try ask.lastJSONObject()["merge"] as! [String: Any]
        XCTAssertEqual(Set(merge.keys), Self.allKeys)
        XCTAssertEqual((merge["seed"] as? NSNumber)?.intValue, 7)
    }

    /// Every command checks its merge flags by the same rules, before any work.
    func testEveryCommandRejectsTheSameBadSettingsTheSameWay() throws {
        let image = CLI.fixtures + "/images/square-42.png"
        let cases: [([String], String)] = [
            (["ask", "--model", "/nonexistent", "--image", image, "--merge", "pitome", "--ratio", "1.5", "Q?"], "--ratio must be in (0, 1], got 1.5"),
            (["merge-map", "--model", "/nonexistent", "--image", image, "--merge", "pitome", "--ratio", "1.5", "--out", "/tmp/x.png"], "--ratio must be in (0, 1], got 1.5"),
            (["bench", "--model", "/nonexistent", "--image", image, "--merge", "pitome", "--ratios", "1,1.5"], "--ratios must be in (0, 1], got 1.5"),
            (["ask", "--model", "/nonexistent", "--image", image, "--merge", "tome", "--keep", "0", "Q?"], "--keep must be at least 1, got 0"),
            (["bench", "--model", "/nonexistent", "--image", image, "--merge", "tome", "--keep", "0"], "--keep must be at least 1, got 0"),
            (["ask", "--model", "/nonexistent", "--image", image, "--merge", "tome", "--pitome-every-layer", "--ratio", "0.9", "Q?"],
             "--pitome-every-layer only applies to --merge pitome"),
        ]
        for (arguments, message) in cases {
            let r = try CLI.run(arguments)
            XCTAssertNotEqual(r.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(message), "\(arguments.joined(separator: " ")): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("/nonexistent"), "checked before the model is read: \(r.stderr)")
        }
    }
}
