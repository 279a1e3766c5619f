import Foundation
import Imaging
import XCTest

/// Files made to hurt: special files, lying headers, sizes that would need terabytes. Each gives
/// one line on stderr naming the file and exit status 1, quickly and without a crash.
final class HostileFileTests: XCTestCase {
    let image = CLI.fixtures + "/images/square-56.png"
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "llava-hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func ask(model: String = CLI.fixtures + "/mha-f32-legacy", image: String? = nil, _ extra: [String] = []) throws -> CLI.Result {
        try CLI.run(["ask", "--model", model, "--image", image ?? self.image, "-n", "2"] + extra + ["What is this?"], timeout: 60)
    }

    func expectOneLineError(_ r: CLI.Result, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "expected one line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("llava: error: "), r.stderr, file: file, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "\(r.stderr) should mention \(f)", file: file, line: line) }
    }

    func replace(_ path: String, with make: (String) throws -> Void) throws {
        try FileManager.default.removeItem(atPath: path)
        try make(path)
    }

    func testSpecialFilesInTheModelFolder() throws {
        let model = try CLI.copyOfModel("mha-f32-legacy")
        defer { try? FileManager.default.removeItem(atPath: model) }
        let weights = model + "/model.safetensors"
        let saved = try Data(contentsOf: URL(fileURLWithPath: weights))
        // A FIFO with no writer used to block forever.
        try replace(weights) { XCTAssertEqual(mkfifo($0, 0o600), 0) }
        expectOneLineError(try ask(model: model), mentions: [weights, "is a FIFO, not a regular file"])
        try replace(weights) { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "/dev/zero") }
        expectOneLineError(try ask(model: model), mentions: [weights, "is a device, not a regular file"])
        try replace(weights) { try saved.write(to: URL(fileURLWithPath: $0)) }

        let tokenizer = model + "/tokenizer.model"
        try replace(tokenizer) { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "/dev/zero") }
        expectOneLineError(try ask(model: model), mentions: [tokenizer, "is a device, not a regular file"])
        try replace(tokenizer) { try FileManager.default.createDirectory(atPath: $0, withIntermediateDirectories: false) }
        expectOneLineError(try ask(model: model), mentions: [tokenizer, "is a directory, not a regular file"])
    }

    func testHeaderLengthOneOrTwoBytesShortIsRefused() throws {
        let model = try CLI.copyOfModel("mha-f32-legacy")
        defer { try? FileManager.default.removeItem(atPath: model) }
        let weights = model + "/model.safetensors"
        let saved = try Data(contentsOf: URL(fileURLWithPath: weights))
        let length = saved.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        for short in [UInt64(1), 2] {
            var data = saved
            withUnsafeBytes(of: (length - short).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
            try data.write(to: URL(fileURLWithPath: weights))
            expectOneLineError(try ask(model: model), mentions: [weights, "wrong header length or trailing bytes"])
        }
    }

    func testConfigSizesAndImageToken() throws {
        let model = try CLI.copyOfModel("mha-f32-legacy")
        defer { try? FileManager.default.removeItem(atPath: model) }
        let configPath = model + "/config.json"
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        func write(_ change: (inout [String: Any]) -> Void) throws {
            var config = original
            change(&config)
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        }
        for part in ["text_config", "vision_config"] {
            try write { c in
                var sub = c[part] as! [String: Any]
                sub["num_hidden_layers"] = 1_000_000_000_000
                c[part] = sub
            }
            expectOneLineError(try ask(model: model), mentions: [configPath, "\(part).num_hidden_layers is 1000000000000, more than the limit"])
        }
        // More layers than the weights hold.
        try write { c in
            var sub = c["text_config"] as! [String: Any]
            sub["num_hidden_layers"] = 40
            c["text_config"] = sub
        }
        expectOneLineError(try ask(model: model), mentions: [configPath, "text_config.num_hidden_layers asks for 40 layers but the weights hold"])
        try write { c in
            var sub = c["vision_config"] as! [String: Any]
            sub["num_hidden_layers"] = 40
            c["vision_config"] = sub
            c["vision_feature_layer"] = -2
        }
        expectOneLineError(try ask(model: model), mentions: [configPath, "vision_config.num_hidden_layers with vision_feature_layer asks for 39 layers"])
        // An image token that is also a text token.
        try write { $0["image_token_index"] = 5 }
        expectOneLineError(try ask(model: model), mentions: [configPath, "image_token_index 5 is also the text token"])
    }

    func testImagesThatWouldNeedHugeBuffers() throws {
        let thin = dir + "/thin.png"
        try writePNG(RGBImage(width: 1, height: 100_000, fill: RGB(200, 200, 200)), to: thin)
        for mode in ["pad", "crop"] {
            expectOneLineError(try ask(image: thin, ["--image-mode", mode]), mentions: [thin, "more than the limit of 89478485 pixels"])
        }
        var jpeg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: CLI.fixtures + "/images/tall-70x97.jpg")))
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && (0xC0...0xC2).contains(jpeg[$0 + 1]) })
        jpeg[sof + 5] = 0x00; jpeg[sof + 6] = 0x01  // height 1
        jpeg[sof + 7] = 0xFF; jpeg[sof + 8] = 0xDC  // width 65500
        let wide = dir + "/wide.jpg"
        try Data(jpeg).write(to: URL(fileURLWithPath: wide))
        expectOneLineError(try ask(image: wide), mentions: [wide, "a 65500x1 image needs a"])

        var png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: image)))
        png[png.count / 2] ^= 0x10
        let flipped = dir + "/flipped.png"
        try Data(png).write(to: URL(fileURLWithPath: flipped))
        expectOneLineError(try ask(image: flipped), mentions: [flipped, "CRC error in chunk"])
        expectOneLineError(try ask(image: "/dev/zero"), mentions: ["/dev/zero", "is a device, not a regular file"])
    }

    func testPixelLimitFromTheEnvironment() throws {
        defer { unsetenv(RGBImage.pixelLimitVariable) }
        setenv(RGBImage.pixelLimitVariable, "1000", 1)
        expectOneLineError(try ask(), mentions: [image, "image is 56x56 pixels, more than the limit of 1000"])
        setenv(RGBImage.pixelLimitVariable, "lots", 1)
        expectOneLineError(try ask(), mentions: ["LLAVA_MAX_IMAGE_PIXELS must be a positive integer, got \"lots\""])
        setenv(RGBImage.pixelLimitVariable, "5000", 1)
        XCTAssertEqual(try ask().status, 0)
    }

    func testQuestionFilesMustBeRegular() throws {
        let answers = dir + "/answers.jsonl"
        let fifo = dir + "/questions.jsonl"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        for questions in ["/dev/zero", fifo, dir] {
            let r = try CLI.run(["eval", "--model", CLI.fixtures + "/mha-f32-legacy", "--questions", questions,
                                 "--image-folder", CLI.fixtures + "/images", "--answers", answers, "--quiet"], timeout: 60)
            expectOneLineError(r, mentions: [questions, "not a regular file"])
        }
    }
}
