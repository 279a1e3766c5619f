import Foundation
import VQAEval
import XCTest

final class AnswerFileTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "vqaeval-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    let settings = RecordedSettings([("model_id", .string("tiny")), ("metadata.template", .string("llava-v1"))])
    let questions: [QuestionID] = [.int(1), .string("two"), .int(3), .int(4), .int(5), .int(6), .int(7)]

    func answer(_ id: QuestionID, model: String = "tiny", error: String? = nil) -> JSONObject {
        var metadata: JSONObject = ["template": .string("llava-v1")]
        if let error { metadata["error"] = .string(error) }
        return ["question_id": id.json, "prompt": .string("Q \(id.key)?"), "text": .string(error == nil ? "answer \(id.key)" : ""),
                "answer_id": .string(AnswerID.make()), "model_id": .string(model), "metadata": .object(metadata)]
    }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func write(_ path: String, _ ids: ArraySlice<QuestionID>) throws {
        let w = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))
        for id in ids { try w.append(answer(id)) }
        w.closeFile()
    }

    func withoutAnswerIDs(_ data: [UInt8]) throws -> [String] {
        try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            guard case .object(var o) = try JSONValue.parse(String(line)) else { throw LineReason("not an object") }
            XCTAssertEqual(o["answer_id"]?.stringValue?.count, 22)
            o["answer_id"] = nil
            return JSONValue.object(o).description
        }
    }

    func testLinesAreCompleteAndInLLaVAFieldOrder() throws {
        let path = dir + "/a.jsonl"
        try write(path, questions[0..<2])
        let text = String(decoding: try bytes(path), as: UTF8.self)
        XCTAssertTrue(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix(#"{"question_id":1,"prompt":"Q 1?","text":"answer 1","answer_id":""#), String(lines[0]))
        XCTAssertTrue(lines[1].hasPrefix(#"{"question_id":"two","#), String(lines[1]))
    }

    func testResumeCutsOffATornLastLineAndKeepsTheRest() throws {
        let path = dir + "/a.jsonl"
        try write(path, questions[0..<3])
        let intact = try bytes(path)
        // A run killed in the middle of a line leaves a fragment without a newline.
        let fragment = Array(#"{"question_id":4,"prompt":"Q 4?","te"#.utf8)
        try Data(intact + fragment).write(to: URL(fileURLWithPath: path))
        let w = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))
        XCTAssertEqual(w.repairedBytes, fragment.count)
        XCTAssertEqual(w.existing.map(\.id), Array(questions[0..<3]))
        XCTAssertEqual(try bytes(path), intact)
        try w.append(answer(.int(4)))
        w.closeFile()
        let repaired = try AnswerFileContents.read(path)
        XCTAssertEqual(repaired.records.map(\.id), Array(questions[0..<4]))
        XCTAssertEqual(repaired.tornBytes, 0)
    }

    func testAnUnreadableLastLineIsRepairedButOneInTheMiddleIsRefused() throws {
        let path = dir + "/a.jsonl"
        try write(path, questions[0..<2])
        let intact = try bytes(path)
        // A crash can leave a zero-filled block ending in a newline.
        try Data(intact + [0, 0, 0, 0, 0x0A]).write(to: URL(fileURLWithPath: path))
        let w = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))
        XCTAssertEqual(w.repairedBytes, 5)
        w.closeFile()
        XCTAssertEqual(try bytes(path), intact)

        let broken = Array("{\"question_id\": 9, \"text\": \n".utf8)
        let second = intact.split(separator: 0x0A).map(Array.init)
        try Data(second[0] + [0x0A] + broken + second[1] + [0x0A]).write(to: URL(fileURLWithPath: path))
        let before = try bytes(path)
        XCTAssertThrowsError(try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))) { error in
            XCTAssertTrue("\(error)".hasPrefix(path + ":2: invalid JSON"), "\(error)")
        }
        XCTAssertEqual(try bytes(path), before, "a refused file is left untouched")
    }

    func testOtherSettingsOrOtherQuestionsAreRefusedWithoutTouchingTheFile() throws {
        let path = dir + "/a.jsonl"
        try write(path, questions[0..<2])
        try Data(try bytes(path) + Array("{\"quest".utf8)).write(to: URL(fileURLWithPath: path))
        let before = try bytes(path)
        let other = RecordedSettings([("model_id", .string("tiny")), ("metadata.template", .string("llava-hf"))])
        XCTAssertThrowsError(try AnswerWriter(path: path, settings: other, questionIDs: Set(questions))) { error in
            XCTAssertEqual("\(error)", "\(path) was produced with other settings: line 1 has metadata.template = \"llava-v1\", this run has \"llava-hf\"; use another --answers file or the same settings")
        }
        XCTAssertThrowsError(try AnswerWriter(path: path, settings: settings, questionIDs: [.int(1)])) { error in
            XCTAssertEqual("\(error)", "\(path):2: question_id \"two\" is not among this run's questions (the file was written for another question file or shard)")
        }
        XCTAssertEqual(try bytes(path), before)
    }

    func testASecondWriterIsLockedOut() throws {
        let path = dir + "/a.jsonl"
        let w = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))
        XCTAssertThrowsError(try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))) { error in
            XCTAssertEqual(error as? EvalFileError, .locked(path: path))
        }
        w.closeFile()
        XCTAssertNoThrow(try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions)))
    }

    func testRetryFailedTakesFailedLinesOut() throws {
        let path = dir + "/a.jsonl"
        let w = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))
        try w.append(answer(.int(1)))
        try w.append(answer(.string("two"), error: "x.png: no such file"))
        try w.append(answer(.int(3)))
        w.closeFile()
        let keep = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions))
        XCTAssertEqual(keep.existing.count, 3)
        XCTAssertEqual(keep.existing.filter { $0.error != nil }.map(\.id), [.string("two")])
        keep.closeFile()
        let retry = try AnswerWriter(path: path, settings: settings, questionIDs: Set(questions), retryFailed: true)
        XCTAssertEqual(retry.removedFailed, 1)
        XCTAssertEqual(retry.existing.map(\.id), [.int(1), .int(3)])
        try retry.append(answer(.string("two")))
        retry.closeFile()
        XCTAssertEqual(try AnswerFileContents.read(path).records.map(\.id), [.int(1), .int(3), .string("two")])
    }

    func testShardsMergedEqualAnUnshardedRun() throws {
        let whole = dir + "/whole.jsonl"
        try write(whole, questions[...])
        for n in [1, 2, 3, 5, 9] {
            var paths: [String] = []
            for i in 1...n {
                let shard = try Shard(index: i, count: n)
                let path = dir + "/shard-\(n)-\(i).jsonl"
                let mine = shard.slice(questions)
                let w = try AnswerWriter(path: path, settings: settings, questionIDs: Set(mine))
                for id in mine { try w.append(answer(id)) }
                w.closeFile()
                paths.append(path)
            }
            let merged = dir + "/merged-\(n).jsonl"
            XCTAssertEqual(try AnswerMerger.merge(shards: paths, into: merged, settingsFields: ["model_id", "metadata.template"]), questions.count)
            XCTAssertEqual(try withoutAnswerIDs(bytes(merged)), try withoutAnswerIDs(bytes(whole)), "\(n) shards")
        }
    }

    func testMergeRefusesRepeatsTornShardsMixedSettingsAndOverwritingAnInput() throws {
        let a = dir + "/a.jsonl", b = dir + "/b.jsonl", out = dir + "/out.jsonl"
        try write(a, questions[0..<3])
        try write(b, questions[2..<4])
        XCTAssertThrowsError(try AnswerMerger.merge(shards: [a, b], into: out, settingsFields: [])) { error in
            XCTAssertEqual("\(error)", "question_id 3 is answered twice: \(a):3 and \(b):1")
        }
        try Data().write(to: URL(fileURLWithPath: b))
        try write(b, questions[3..<5])
        try Data(try bytes(b) + Array("{\"qu".utf8)).write(to: URL(fileURLWithPath: b))
        XCTAssertThrowsError(try AnswerMerger.merge(shards: [a, b], into: out, settingsFields: [])) { error in
            XCTAssertEqual(error as? EvalFileError, .incompleteShard(path: b))
        }
        let c = dir + "/c.jsonl"
        let w = try AnswerWriter(path: c, settings: RecordedSettings([]), questionIDs: Set(questions))
        try w.append(answer(.int(7), model: "other"))
        w.closeFile()
        XCTAssertThrowsError(try AnswerMerger.merge(shards: [a, c], into: out, settingsFields: ["model_id"])) { error in
            XCTAssertEqual("\(error)", "the shard files were produced with different settings: \(a):1 has model_id = \"tiny\", \(c):1 has \"other\"")
        }
        XCTAssertThrowsError(try AnswerMerger.merge(shards: [a, c], into: a, settingsFields: [])) { error in
            XCTAssertEqual(error as? EvalFileError, .sameInputAndOutput(path: a))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is written when the merge is refused")
        // Empty shards are fine.
        let empty = dir + "/empty.jsonl"
        try Data().write(to: URL(fileURLWithPath: empty))
        XCTAssertEqual(try AnswerMerger.merge(shards: [empty, a], into: out, settingsFields: ["model_id"]), 3)
        // The same file twice is named as such, even when empty.
        XCTAssertThrowsError(try AnswerMerger.merge(shards: [empty, a, empty], into: out, settingsFields: [])) { error in
            XCTAssertEqual(error as? AnswerFileError, .givenTwice(path: empty, again: empty))
        }
    }

    func testAnswerIDsLookLikeShortUUIDs() {
        let ids = (0..<2000).map { _ in AnswerID.make() }
        XCTAssertEqual(Set(ids).count, ids.count)
        let alphabet = Set(AnswerID.alphabet)
        XCTAssertEqual(alphabet.count, 57)
        for id in ids.prefix(50) {
            XCTAssertEqual(id.count, 22)
            XCTAssertTrue(id.allSatisfy(alphabet.contains), id)
        }
    }

    func testJSONRoundTripKeepsTypesAndText() throws {
        let text = #"{"question_id":262144000123,"s":"tab\t \"q\" \\ é 😀 \u0001","f":0.5,"neg":-3,"e":1e-05,"n":null,"b":[true,false],"o":{}}"#
        let v = try JSONValue.parse(text)
        XCTAssertEqual(v["question_id"], .int(262144000123))
        XCTAssertEqual(v["s"]?.stringValue, "tab\t \"q\" \\ é 😀 \u{01}")
        XCTAssertEqual(v["e"], .double(1e-5))
        XCTAssertEqual(try JSONValue.parse(v.description), v)
        XCTAssertEqual(try JSONValue.parse(#""\ud83d\ude00""#), .string("😀"))
        XCTAssertEqual(JSONValue.object(["b": .int(1), "a": .int(2)]).description, #"{"b":1,"a":2}"#)
        XCTAssertEqual(JSONValue.object(["b": .int(1), "a": .int(2)]), JSONValue.object(["a": .int(2), "b": .int(1)]))
        for bad in ["", "{", "{\"a\":1,}", "[1 2]", "01", "1.", "\"\\x\"", "\"\\ud800\"", "nul", "{} x", "\"a\nb\"", "NaN"] {
            XCTAssertThrowsError(try JSONValue.parse(bad), bad)
        }
        XCTAssertThrowsError(try JSONValue.parse(Array(repeating: UInt8(ascii: "["), count: 10000)))
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xFF, 0x22]), "invalid UTF-8")
    }
}
