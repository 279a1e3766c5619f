import Checkpoint
import Foundation
import XCTest

/// Every class of bad input gives one line on stderr naming the file and the problem, and exit
/// status 1 — never a crash.
final class BadInputTests: XCTestCase {
    let image = CLI.fixtures + "/images/square-56.png"

    func ask(model: String, image: String? = nil, _ extra: [String] = []) throws -> CLI.Result {
        try CLI.run(["ask", "--model", model, "--image", image ?? self.image, "-n", "4"] + extra + ["What is this?"])
    }

    func expectOneLineError(_ r: CLI.Result, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "expected one line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("llava: error: "), r.stderr, file: file, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "\(r.stderr) should mention \(f)", file: file, line: line) }
        XCTAssertEqual(r.stdout, "", file: file, line: line)
    }

    func testMissingModelFolder() throws {
        expectOneLineError(try ask(model: "/nonexistent/model"), mentions: ["/nonexistent/model", "no such file"])
    }

    func testMissingConfigAndTokenizer() throws {
        let dir = try CLI.copyOfModel("mha-f32-legacy")
        try FileManager.default.removeItem(atPath: dir + "/tokenizer.model")
        expectOneLineError(try ask(model: dir), mentions: [dir + "/tokenizer.model", "no such file"])
        try "garbage".write(toFile: dir + "/tokenizer.model", atomically: true, encoding: .utf8)
        expectOneLineError(try ask(model: dir), mentions: [dir + "/tokenizer.model", "not a SentencePiece model"])
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        expectOneLineError(try ask(model: dir), mentions: [dir + "/config.json", "no such file"])
    }

    func testTruncatedSafetensors() throws {
        let dir = try CLI.copyOfModel("mha-f32-legacy")
        let path = dir + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        expectOneLineError(try ask(model: dir), mentions: [path, "outside the"])
        try data.prefix(100).write(to: URL(fileURLWithPath: path))
        expectOneLineError(try ask(model: dir), mentions: [path, "runs past the end"])
    }

    func testLyingHeaders() throws {
        let dir = try CLI.copyOfModel("mha-f32-legacy")
        let path = dir + "/model.safetensors"
        // Header length over the limit.
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        withUnsafeBytes(of: UInt64(200_000_000).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
        try data.write(to: URL(fileURLWithPath: path))
        expectOneLineError(try ask(model: dir), mentions: [path, "100 MB"])
        // Size that does not match dtype × shape, and overlapping tensors.
        try SafeTensorsWriter(entries: [.init(name: "a", dtype: "F32", shape: [3], bytes: [UInt8](repeating: 0, count: 8))]).write(to: path)
        expectOneLineError(try ask(model: dir), mentions: [path, "needs 12"])
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init) + Array(header.utf8)
        bytes += [UInt8](repeating: 0, count: 12)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expectOneLineError(try ask(model: dir), mentions: [path, "overlap"])
    }

    func testMissingTensorAndShapeMismatch() throws {
        let dir = try CLI.copyOfModel("mha-f32-legacy")
        let path = dir + "/model.safetensors"
        let file = try SafeTensorsFile(path: path)
        var writer = SafeTensorsWriter()
        for name in file.tensors.keys.sorted() where name != "language_model.model.norm.weight" {
            let info = file.tensors[name]!
            writer.entries.append(.init(name: name, dtype: info.dtype, shape: info.shape, bytes: Array(file.bytes(of: info))))
        }
        try writer.write(to: dir + "/stripped.safetensors")
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: dir + "/stripped.safetensors", toPath: path)
        expectOneLineError(try ask(model: dir), mentions: [dir, "language_model.model.norm.weight is missing"])

        let other = try CLI.copyOfModel("mha-f32-legacy")
        let configPath = other + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        var text = config["text_config"] as! [String: Any]
        text["intermediate_size"] = (text["intermediate_size"] as! Int) + 8
        config["text_config"] = text
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        expectOneLineError(try ask(model: other), mentions: [other + "/model.safetensors", "gate_proj.weight has shape", "the config implies"])
    }

    func testUnreadableImages() throws {
        let model = CLI.fixtures + "/mha-f32-legacy"
        expectOneLineError(try ask(model: model, image: "/nonexistent/cat.jpg"), mentions: ["/nonexistent/cat.jpg"])
        let fake = NSTemporaryDirectory() + "not-an-image-\(UUID().uuidString).png"
        try "hello, I am text".write(toFile: fake, atomically: true, encoding: .utf8)
        expectOneLineError(try ask(model: model, image: fake), mentions: [fake])
        let png = try Data(contentsOf: URL(fileURLWithPath: image))
        let cut = NSTemporaryDirectory() + "truncated-\(UUID().uuidString).png"
        try png.prefix(png.count / 3).write(to: URL(fileURLWithPath: cut))
        expectOneLineError(try ask(model: model, image: cut), mentions: [cut])
    }

    func testPromptLongerThanContext() throws {
        let dir = try CLI.copyOfModel("mha-f32-legacy")
        let configPath = dir + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        var text = config["text_config"] as! [String: Any]
        text["max_position_embeddings"] = 24
        config["text_config"] = text
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        expectOneLineError(try ask(model: dir), mentions: ["context is 24", configPath])
    }

    func testInvalidMergeSettings() throws {
        let model = CLI.fixtures + "/mha-f32-legacy"
        for flags in [["--merge", "pitome", "--ratio", "1.5"], ["--merge", "pitome", "--ratio", "0"],
                      ["--merge", "tome", "--ratio", "0.9", "--keep", "4"], ["--merge", "pitome"],
                      ["--ratio", "0.9"], ["--merge", "tome", "--keep", "0"]] {
            let r = try ask(model: model, flags)
            XCTAssertNotEqual(r.status, 0, flags.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains("Error") || r.stderr.contains("error"), r.stderr)
            XCTAssertEqual(r.stdout, "")
        }
        // Out of range for this tower (16 patch tokens): reported by the merge module.
        expectOneLineError(try ask(model: model, ["--merge", "pitome", "--keep", "17"]), mentions: ["keep 17", "16 patch tokens"])
    }
}
