import Checkpoint
import FixtureLocations
import Foundation
import Kernels
import XCTest

@testable import LLaVA

/// CDPruner's CLIP side against transformers on the small CLIP folder of
/// Tests/Fixtures/reference/clip-small (made by Scripts/reference/make_clip_text_fixtures.py):
/// CLIPTokenizerFast's ids, the segmented text_embeds of the official forward with both pooling
/// rules, the image embeds, and the one-line errors of a bad folder.
final class CLIPTextTests: XCTestCase {
    static let root = FixtureLocations.reference + "/clip-small"
    static let model = root + "/model"

    override func setUpWithError() throws {
        try FixtureLocations.requireReference("clip-small")
    }

    private static var loaded: CLIPTextFolder?
    static func folder() throws -> CLIPTextFolder {
        if let loaded { return loaded }
        let folder = try CLIPTextFolder(directory: model)
        loaded = folder
        return folder
    }

    // MARK: Tokenizer

    func testTokenizerMatchesCLIPTokenizerFastOnEveryString() throws {
        let tokenizer = try Self.folder().tokenizer
        let cases = try FixtureJSON.objects(Self.root + "/tokenizer_cases.json")
        XCTAssertGreaterThan(cases.count, 400)
        XCTAssertEqual(tokenizer.bosId, 3512)
        XCTAssertEqual(tokenizer.eosId, 3513)
        XCTAssertEqual(tokenizer.vocabularySize, 3514)
        var differing: [String] = []
        var longest = 0
        for c in cases {
            let text = try c.string("text"), expected = try c.ints("ids")
            longest = max(longest, expected.count)
            let ids = tokenizer.encode(text)
            if ids != expected {
                differing.append("\(text.debugDescription.prefix(60)): \(arrayDifferences(ids, expected, same: ==) ?? "")")
            }
        }
        XCTAssertGreaterThan(longest, 2 * 77, "the cases include texts of several segments")
        XCTAssertEqual(differing.count, 0, "\(differing.count) of \(cases.count) strings differ, first: \(differing.prefix(3))")
    }

    /// Letters, numbers and spaces as the regex engine of the tokenizers library (Oniguruma,
    /// Unicode 16.0) sees them, on every code point.
    func testScalarClassesMatchTheRegexEngineOnEveryCodePoint() throws {
        let classes = try FixtureJSON.object(Self.root + "/unicode_classes.json")
        var expected = [CLIPTokenizer.ScalarClass](repeating: .other, count: 0x110000)
        for (name, kind) in [("letter", CLIPTokenizer.ScalarClass.letter), ("number", .number), ("space", .space)] {
            guard let ranges = classes[name] as? [[Int]] else { throw FixtureError("unicode_classes.json: no \(name) ranges") }
            for r in ranges { for c in r[0]...r[1] { expected[c] = kind } }
        }
        var differing: [String] = []
        for c in 0..<0x110000 {
            guard let scalar = Unicode.Scalar(c) else { continue }
            let kind = CLIPTokenizer.scalarClass(scalar)
            if kind != expected[c] { differing.append("U+\(String(c, radix: 16, uppercase: true)) \(kind) vs \(expected[c])") }
        }
        XCTAssertEqual(differing.count, 0, "first: \(differing.prefix(5))")
    }

    func testPiecesFollowCLIPsExpression() {
        func pieces(_ text: String) -> [String] {
            let normalized = CLIPTokenizer.normalized(ArraySlice(text.unicodeScalars))
            return CLIPTokenizer.pieces(normalized).map { range in
                var view = String.UnicodeScalarView()
                view.append(contentsOf: normalized[range])
                return String(view)
            }
        }
        XCTAssertEqual(pieces("It's  DON'T\t12ab!'s"), ["it", "'s", "don", "'t", "1", "2", "ab", "!'", "s"])
        XCTAssertEqual(pieces("?<|ENDOFTEXT|>x"), ["?<|", "endoftext", "|>", "x"])
        XCTAssertEqual(pieces("<|EndOfText|>"), ["<|", "endoftext", "|>"])
        XCTAssertEqual(pieces("a<|EndOfText|>!"), ["a", "<|", "endoftext", "|>", "!"])
        XCTAssertEqual(pieces("a<|Endoftext!"), ["a", "<|", "endoftext", "!"])
        XCTAssertEqual(pieces("ΟΔΟΣ cafe\u{301}"), ["οδοσ", "café"])
    }

    // MARK: Text tower

    /// On every kernel path this CPU runs.
    func testSegmentedTextEmbedsMatchTheOfficialForward() throws {
        try KernelPath.forEachAvailable { path in
            try checkTextEmbeds(try Self.folder(), expected: "legacy_eos", eosTokenId: 2, path: path)
        }
    }

    /// The same weights with eos_token_id = the vocabulary's EOS (first-EOS pooling) and exact GELU.
    func testFirstEOSPoolingAndGELUMatchTransformers() throws {
        let dir = try temporaryFolder(config: Self.root + "/config_first_eos.json")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folder = try CLIPTextFolder(directory: dir)
        XCTAssertEqual(folder.config.textConfig.eosTokenId, 3513)
        XCTAssertEqual(folder.config.textConfig.hiddenAct, "gelu")
        try KernelPath.forEachAvailable { path in
            try checkTextEmbeds(folder, expected: "first_eos", eosTokenId: 3513, path: path)
        }
    }

    func checkTextEmbeds(_ folder: CLIPTextFolder, expected name: String, eosTokenId: Int, path: KernelPath) throws {
        let all = try FixtureJSON.object(Self.root + "/text_embeds.json")
        let cases = try all.objects(name)
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        var worst: Float = 0
        var segmentCounts: Set<Int> = []
        for c in cases {
            let text = try c.string("text")
            let ids = try c.ints("ids")
            XCTAssertEqual(folder.tokenizer.encode(text), ids, "\(path): \(text)")
            let segments = CLIPTextModelWithProjection.segments(ids, length: 77)
            XCTAssertEqual(segments.count, try c.int("segments"), text)
            XCTAssertEqual(segments.map { CLIPTextTransformer.pooledPosition($0.ids, eosTokenId: eosTokenId) },
                           try c.ints("pooled_positions"), text)
            segmentCounts.insert(segments.count)
            let embeds = folder.textEmbeds(question: text)
            guard let rows = c["text_embeds"] as? [[Any]] else { throw FixtureError("text_embeds of \(text) is not a matrix") }
            XCTAssertEqual(embeds.rows, rows.count, text)
            XCTAssertEqual(embeds.cols, 32, text)
            let expected = rows.flatMap { $0.compactMap { ($0 as? NSNumber)?.floatValue } }
            XCTAssertArraysClose(embeds.toArray(), expected, accuracy: 1e-5, "\(path): \(text)")
            worst = max(worst, zip(embeds.toArray(), expected).map { abs($0 - $1) }.max() ?? 0)
        }
        XCTAssertEqual(segmentCounts, [1, 2, 3, 6])
        print("CLIP text_embeds (\(name), \(path)): \(cases.count) questions, largest difference from transformers \(worst)")
    }

    func testSegmentsPadIdsAndMaskWithZerosLikeCDPruner() {
        for (n, count) in [(1, 1), (2, 1), (77, 1), (78, 2), (154, 2), (155, 3)] {
            let ids = Array(1...n)
            let segments = CLIPTextModelWithProjection.segments(ids, length: 77)
            XCTAssertEqual(segments.count, count, "\(n) ids")
            XCTAssertTrue(segments.allSatisfy { $0.ids.count == 77 && $0.mask.count == 77 })
            XCTAssertEqual(Array(segments.flatMap(\.ids).prefix(n)), ids)
            XCTAssertEqual(segments.flatMap(\.ids).dropFirst(n).filter { $0 != 0 }, [])
            XCTAssertEqual(segments.flatMap(\.mask), [Int](repeating: 1, count: n) + [Int](repeating: 0, count: 77 * count - n))
        }
    }

    func testPoolingRules() {
        // Legacy (eos_token_id 2): the first largest id; otherwise the first EOS, or row 0.
        XCTAssertEqual(CLIPTextTransformer.pooledPosition([3512, 5, 3513, 0, 3513], eosTokenId: 2), 2)
        XCTAssertEqual(CLIPTextTransformer.pooledPosition([7, 900, 12, 900], eosTokenId: 2), 1)
        XCTAssertEqual(CLIPTextTransformer.pooledPosition([3512, 5, 3513, 0, 3513], eosTokenId: 3513), 2)
        XCTAssertEqual(CLIPTextTransformer.pooledPosition([7, 900, 12, 0], eosTokenId: 3513), 0)
    }

    // MARK: Image side

    /// On every kernel path this CPU runs.
    func testImageEmbedsMatchPostLayernormAndVisualProjection() throws {
        let file = try SafeTensorsFile(path: Self.root + "/image_embeds.safetensors")
        let features = try file.matrix("features"), expected = try file.matrix("image_embeds")
        XCTAssertEqual(features.cols, 96)
        try KernelPath.forEachAvailable { path in
            let embeds = try Self.folder().imageEmbeds(features: features)
            XCTAssertEqual([embeds.rows, embeds.cols], [expected.rows, expected.cols])
            XCTAssertArraysClose(embeds.toArray(), expected.toArray(), accuracy: 1e-5, "\(path)")
            let worst = zip(embeds.toArray(), expected.toArray()).map { abs($0 - $1) }.max() ?? 0
            print("CLIP image_embeds (\(path)): \(embeds.rows) rows, largest difference from transformers \(worst)")
        }
    }

    /// The fixture's CLIP tower is as wide as the llava-small tower it stands beside.
    func testVisionWidthIsCheckedAgainstTheLLaVATower() throws {
        try FixtureLocations.requireReference("llava-small")
        let llava = try LlavaConfiguration.load(path: FixtureLocations.reference + "/llava-small/model/config.json")
        XCTAssertNoThrow(try Self.folder().checkVisionHiddenSize(llava.vision.hiddenSize))
        XCTAssertNoThrow(try CLIPTextFolder(directory: Self.model, llavaVisionHiddenSize: llava.vision.hiddenSize))
        assertOneLine(try Self.folder().checkVisionHiddenSize(1024),
                      contains: [Self.model + "/config.json", "vision_config.hidden_size is 96", "1024"])
        assertOneLine(try CLIPTextFolder(directory: Self.model, llavaVisionHiddenSize: 1024),
                      contains: [Self.model + "/config.json", "1024"])
    }

    // MARK: Bad folders

    func testAMissingFolderOrFileIsOneLine() throws {
        assertOneLine(try CLIPTextFolder(directory: Self.root + "/no-such-folder"),
                      contains: [Self.root + "/no-such-folder", "no such folder"])
        for missing in CLIPTextFolder.requiredFiles {
            let dir = try temporaryFolder(leaving: missing)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            assertOneLine(try CLIPTextFolder(directory: dir), contains: [dir + "/" + missing, "no such file"])
        }
    }

    func testBadContentIsOneLineNamingTheFile() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/config.json", original = try String(contentsOfFile: config, encoding: .utf8)

        try original.replacingOccurrences(of: "\"model_type\": \"clip\"", with: "\"model_type\": \"llava\"")
            .write(toFile: config, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [config, "model_type is \"llava\""])
        try original.replacingOccurrences(of: "\"eos_token_id\": 2", with: "\"eos_token_id\": [2]")
            .write(toFile: config, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [config, "text_config.eos_token_id: expected an integer"])
        try original.replacingOccurrences(of: "\"hidden_act\": \"quick_gelu\"", with: "\"hidden_act\": \"relu\"")
            .write(toFile: config, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [config, "hidden_act \"relu\""])
        try "[1, 2]".write(toFile: config, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [config, "expected a JSON object"])
        try original.write(toFile: config, atomically: true, encoding: .utf8)

        let merges = dir + "/merges.txt"
        try "#version: 0.2\ni n\nt h e x\n".write(toFile: merges, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [merges, "line 3"])
        try "#version: 0.2\ni n\nq\u{00FF} zz\n".write(toFile: merges, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [merges, "merge 2", "not in vocab.json"])
        try FileManager.default.removeItem(atPath: merges)
        try FileManager.default.copyItem(atPath: Self.model + "/merges.txt", toPath: merges)

        let vocab = dir + "/vocab.json"
        try "{\"a\": 0}".write(toFile: vocab, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [vocab, "<|startoftext|>"])
        try "[\"a\"]".write(toFile: vocab, atomically: true, encoding: .utf8)
        assertOneLine(try CLIPTextFolder(directory: dir), contains: [vocab, "not a JSON object"])
    }

    func testAMissingOrMisshapenTensorIsOneLine() throws {
        let source = try SafeTensorsFile(path: Self.model + "/model.safetensors")
        for (dropped, reshaped) in [("text_projection.weight", false), ("text_model.encoder.layers.1.mlp.fc2.bias", false),
                                    ("visual_projection.weight", false), ("text_model.final_layer_norm.weight", true)] {
            let dir = try temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var writer = SafeTensorsWriter()
            for name in source.tensors.keys.sorted() where reshaped || name != dropped {
                let info = try source.info(name)
                let shape = reshaped && name == dropped ? [info.elementCount / 2, 2] : info.shape
                writer.entries.append(.init(name: name, dtype: info.dtype, shape: shape, bytes: Array(source.bytes(of: info))))
            }
            try writer.write(to: dir + "/model.safetensors")
            assertOneLine(try CLIPTextFolder(directory: dir),
                          contains: [dir + "/model.safetensors", dropped, reshaped ? "shape" : "missing"])
        }
    }

    // MARK: Helpers

    /// A copy of the fixture folder in a new temporary folder, without `leaving`, with `config`
    /// as its config.json when given.
    func temporaryFolder(leaving: String? = nil, config: String? = nil) throws -> String {
        let dir = NSTemporaryDirectory() + "clip-folder-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in CLIPTextFolder.requiredFiles where name != leaving {
            let from = name == "config.json" && config != nil ? config! : Self.model + "/" + name
            try FileManager.default.copyItem(atPath: from, toPath: dir + "/" + name)
        }
        return dir
    }

    func assertOneLine<T>(_ expression: @autoclosure () throws -> T, contains parts: [String],
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
            for part in parts { XCTAssertTrue(text.contains(part), "\"\(text)\" does not name \(part)", file: file, line: line) }
        }
    }
}
