import Foundation
import XCTest

/// The model in `Models/shapes-llava` and the question file in `Prompts/shapes`, through the CLI
/// with no `--model` (the shipped model is the default).
final class ShippedModelTests: XCTestCase {
    static let prompts = CLI.packageRoot.path + "/Prompts/shapes"
    static let model = CLI.packageRoot.path + "/Models/shapes-llava"

    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "llava-shipped-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func jsonLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    /// The README's first command, as written there.
    func testReadmeQuestionIsAnsweredCorrectly() throws {
        let r = try CLI.run(["ask", "--image", Self.prompts + "/images/shapes_0000.png", "--json", "What color is the cross?"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try r.lastJSONObject()
        XCTAssertEqual((object["text"] as! String).trimmingCharacters(in: .whitespaces), "red")
        XCTAssertEqual(object["visual_tokens"] as? Int, 64)
    }

    /// The first 100 held-out questions (20 images): the engine gives the same answer as the PyTorch
    /// model (Models/recipe/evaluate.py) on every question, and so the same score (100 of 100).
    func testFirstFifthOfTheQuestionFileMatchesPyTorch() throws {
        let answers = dir + "/answers.jsonl"
        let r = try CLI.run(["eval", "--questions", Self.prompts + "/questions.jsonl", "--image-folder", Self.prompts + "/images",
                             "--answers", answers, "--annotations", Self.prompts + "/answers.jsonl", "--shard", "1/5", "--quiet"],
                            timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let ours = try Self.jsonLines(answers)
        XCTAssertEqual(ours.count, 100)
        let key = Dictionary(uniqueKeysWithValues: try Self.jsonLines(Self.prompts + "/answers.jsonl").map { ($0["question_id"] as! Int, $0["answer"] as! String) })
        let pytorch = Dictionary(uniqueKeysWithValues: try Self.jsonLines(Self.model + "/pytorch_answers.jsonl").map { ($0["question_id"] as! Int, $0["text"] as! String) })
        var correct = 0
        for answer in ours {
            let id = answer["question_id"] as! Int
            let text = (answer["text"] as! String).trimmingCharacters(in: .whitespaces)
            XCTAssertEqual(text, pytorch[id], "question \(id)")
            if text == key[id] { correct += 1 }
        }
        XCTAssertEqual(correct, 100, "exact matches out of 100")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/answers.summary.json"))) as! [String: Any]
        XCTAssertEqual(summary["model_id"] as? String, "shapes-llava")
    }

    /// The first tenth of the other two held-out files: held-out phrasings on 416-512 px pictures in a
    /// style the model never saw (Prompts/shapes-wild, 50 questions), and caption requests
    /// (Prompts/shapes-captions, 20). Whatever the model answers, the engine gives transformers'
    /// answer (Models/recipe/evaluate.py) to every question, resizing included; the exact-match counts
    /// are those of the PyTorch answers (48 of 50 questions; 16 of 20 captions word for word).
    func testWildAndCaptionFilesMatchPyTorch() throws {
        for (name, expected) in [("shapes-wild", 48), ("shapes-captions", 16)] {
            let prompts = CLI.packageRoot.path + "/Prompts/" + name
            let answers = dir + "/\(name).jsonl"
            let r = try CLI.run(["eval", "--questions", prompts + "/questions.jsonl", "--image-folder", prompts + "/images",
                                 "--answers", answers, "--shard", "1/10", "-n", "32", "--quiet"], timeout: 600)
            XCTAssertEqual(r.status, 0, r.stderr)
            let key = Dictionary(uniqueKeysWithValues: try Self.jsonLines(prompts + "/answers.jsonl").map { ($0["question_id"] as! Int, $0["answer"] as! String) })
            let pytorch = Dictionary(uniqueKeysWithValues: try Self.jsonLines(Self.model + "/pytorch_answers.\(name).jsonl").map { ($0["question_id"] as! Int, $0["text"] as! String) })
            let ours = try Self.jsonLines(answers)
            XCTAssertEqual(ours.count, key.count / 10, name)
            var correct = 0
            for answer in ours {
                let id = answer["question_id"] as! Int
                let text = (answer["text"] as! String).trimmingCharacters(in: .whitespaces)
                XCTAssertEqual(text, pytorch[id], "\(name) question \(id)")
                if text == key[id] { correct += 1 }
            }
            XCTAssertEqual(correct, expected, "\(name): exact matches")
        }
    }

    /// Merging on the shipped model: the visual-token counts the tower reports are the planned ones.
    func testMergedAnswersReportTheirVisualTokens() throws {
        for (flags, tokens) in [(["--merge", "pitome", "--ratio", "0.9"], 30), (["--merge", "tome", "--keep", "16"], 16)] {
            let r = try CLI.run(["ask", "--image", Self.prompts + "/images/shapes_0001.png", "--json"] + flags + ["How many shapes are there?"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let object = try r.lastJSONObject()
            XCTAssertEqual(object["visual_tokens"] as? Int, tokens, flags.joined(separator: " "))
        }
    }
}
