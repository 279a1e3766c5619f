import FixtureLocations
import Foundation
import XCTest

/// VisPruner and CDPruner from the command line: CDPruner's --clip folder (checked before any
/// work, each problem one line naming the file), the budget reported, --important-ratio only with
/// VisPruner, and eval's image cache keyed by the question under CDPruner.
final class QuestionAwareReducerTests: XCTestCase {
    override func setUpWithError() throws {
        try FixtureLocations.requireReference("llava-small")
        try FixtureLocations.requireReference("clip-small")
    }

    static let model = CLI.referenceFixtures + "/llava-small/model"
    static let image = CLI.referenceFixtures + "/llava-small/shapes.png"
    static let clip = CLI.referenceFixtures + "/clip-small/model"
    static let question = "What color is the square?"

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "llava-question-aware-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func assertOneLineFailure(_ r: CLI.Result, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr, file: file, line: line)
        for part in parts { XCTAssertTrue(r.stderr.contains(part), "\(part) not in: \(r.stderr)", file: file, line: line) }
        XCTAssertEqual(r.stdout, "", file: file, line: line)
    }

    /// Without --clip CDPruner is refused before anything is read: the model folder and image
    /// given here do not exist, and the message is about --clip.
    func testCDPrunerWithoutCLIPFailsFirst() throws {
        let missing = try scratch() + "/nothing-here"
        let r = try CLI.run(["ask", "--model", missing, "--image", missing + ".png", "--merge", "cdpruner", "--keep", "8", Self.question])
        assertOneLineFailure(r, contains: ["--clip", "cdpruner"])
        XCTAssertFalse(r.stderr.contains(missing), r.stderr)

        let r2 = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--merge", "cdpruner", "--keep", "8", Self.question])
        assertOneLineFailure(r2, contains: ["--clip"])

        // eval: no answer file is started, no progress line is printed.
        let dir = try scratch()
        try FileManager.default.copyItem(atPath: Self.image, toPath: dir + "/shapes.png")
        try #"{"question_id": 1, "image": "shapes.png", "text": "What color is the square?"}"#.write(toFile: dir + "/q.jsonl", atomically: true, encoding: .utf8)
        let e = try CLI.run(["eval", "--model", Self.model, "--questions", dir + "/q.jsonl", "--answers", dir + "/a.jsonl",
                             "--merge", "cdpruner", "--keep", "8"])
        assertOneLineFailure(e, contains: ["--clip"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/a.jsonl"))

        let b = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "vispruner,cdpruner", "--keep", "8",
                             "--repeat", "1", "--warmup", "0", "-n", "2", "--out", dir + "/bench"])
        assertOneLineFailure(b, contains: ["--clip", "cdpruner"])
    }

    /// A missing folder, an empty one, one without a file, and a CLIP tower of another width than
    /// the model's (the shipped model's tower is 128 wide, clip-small's 96): one line naming the path.
    func testBadCLIPFolderIsOneLineNamingTheFile() throws {
        let dir = try scratch()
        func ask(_ clip: String, model: String? = Self.model) throws -> CLI.Result {
            var arguments = ["ask", "--image", Self.image, "--clip", clip, "--merge", "cdpruner", "--keep", "8", "-n", "2", Self.question]
            if let model { arguments += ["--model", model] }
            return try CLI.run(arguments)
        }
        assertOneLineFailure(try ask(dir + "/no-such-folder"), contains: [dir + "/no-such-folder", "no such folder"])

        let empty = dir + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        assertOneLineFailure(try ask(empty), contains: [empty + "/config.json", "no such file"])

        let partial = dir + "/partial"
        try FileManager.default.copyItem(atPath: Self.clip, toPath: partial)
        try FileManager.default.removeItem(atPath: partial + "/merges.txt")
        assertOneLineFailure(try ask(partial), contains: [partial + "/merges.txt", "no such file"])

        assertOneLineFailure(try ask(Self.clip, model: nil), contains: [Self.clip + "/config.json", "hidden_size is 96", "128"])

        let r = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--clip", "", "--merge", "cdpruner", "--keep", "8", Self.question])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--clip is empty"), r.stderr)
    }

    func testAskReportsTheBudget() throws {
        let r = try CLI.run(["ask", "--model", Self.model, "--clip", Self.clip, "--image", Self.image, "--merge", "cdpruner",
                             "--keep", "8", "-n", "2", "--json", Self.question])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try r.lastJSONObject()["visual_tokens"] as? Int, 8)

        for ratio in ["0.5", "0.25"] {
            // The shipped model (no --model).
            let v = try CLI.run(["ask", "--image", CLI.packageRoot.path + "/Prompts/shapes/images/shapes_0000.png", "--merge", "vispruner",
                                 "--keep", "8", "--important-ratio", ratio, "-n", "2", "--json", Self.question])
            XCTAssertEqual(v.status, 0, v.stderr)
            XCTAssertEqual(try v.lastJSONObject()["visual_tokens"] as? Int, 8, ratio)
        }
    }

    func testImportantRatioIsVisPrunersAlone() throws {
        for method in ["tome", "cdpruner"] {
            let r = try CLI.run(["ask", "--model", Self.model, "--clip", Self.clip, "--image", Self.image, "--merge", method,
                                 "--keep", "8", "--important-ratio", "0.25", Self.question])
            assertOneLineFailure(r, contains: ["important-ratio", "vispruner"])
        }
        let out = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--merge", "vispruner", "--keep", "8",
                               "--important-ratio", "1.5", Self.question])
        assertOneLineFailure(out, contains: ["1.5"])
    }

    /// Three questions on one image: two different questions and the first again with the
    /// short-answer instruction (which the text tower does not read). Under CDPruner the image is
    /// encoded once per distinct question; under VisPruner once.
    func testEvalCachesTheImagePerQuestionUnderCDPruner() throws {
        let dir = try scratch()
        try FileManager.default.copyItem(atPath: Self.image, toPath: dir + "/shapes.png")
        let texts = [Self.question, "Is there a green disc in the picture?",
                     Self.question + "\nAnswer the question using a single word or phrase."]
        let lines = try texts.enumerated().map { i, text -> String in
            let object: [String: Any] = ["question_id": i + 1, "image": "shapes.png", "text": text, "category": "c"]
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        let questions = dir + "/q.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: questions, atomically: true, encoding: .utf8)

        for (method, hits, extra) in [("cdpruner", [false, false, true], ["--clip", Self.clip]), ("vispruner", [false, true, true], [])] {
            let answers = dir + "/\(method).jsonl"
            let r = try CLI.run(["eval", "--model", Self.model, "--questions", questions, "--answers", answers, "--merge", method,
                                 "--keep", "8", "-n", "2", "--quiet"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let records = try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
            XCTAssertEqual(records.count, 3, method)
            let metadata = try records.map { try XCTUnwrap($0["metadata"] as? [String: Any]) }
            XCTAssertEqual(metadata.map { $0["image_cache_hit"] as? Bool }, hits, method)
            XCTAssertEqual(metadata.map { $0["visual_tokens"] as? Int }, [8, 8, 8], method)
            let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/\(method).summary.json"))) as? [String: Any])
            let cache = try XCTUnwrap((summary["run"] as? [String: Any])?["image_cache"] as? [String: Any])
            XCTAssertEqual(cache["hits"] as? Int, hits.filter { $0 }.count, method)
            XCTAssertEqual(cache["tower_runs"] as? Int, hits.filter { !$0 }.count, method)
        }
    }
}
