import FixtureLocations
import Foundation
import Kernels
import XCTest

@testable import LLaVA
import Tokenizer

/// Compares the engine with Hugging Face transformers on the small random-weight checkpoints in
/// Tests/Fixtures/llava (made by Scripts/reference/make_llava_fixtures.py): F32/F16/BF16,
/// both tensor naming schemes, a sharded folder with a minimal config, GQA, "full" features.
final class TransformersParityTests: XCTestCase {
    func cases() throws -> [[String: Any]] {
        try FixtureJSON.objects(Fixtures.llava + "/expected.json")
    }

    /// On every kernel path this CPU runs.
    func testEveryCaseMatchesTransformers() throws {
        try KernelPath.forEachAvailable { path in try everyCaseMatchesTransformers(path) }
    }

    func everyCaseMatchesTransformers(_ path: KernelPath) throws {
        let all = try cases()
        XCTAssertGreaterThanOrEqual(all.count, 12)
        var models = Set<String>()
        for c in all {
            let name = "\(path): \(try c.string("model")) \(try c.string("image")) \(try c.string("template"))"
            let pipeline = try Fixtures.pipeline(Fixtures.llava + "/" + (try c.string("model")))
            models.insert(try c.string("model"))
            let model = pipeline.model

            // Preprocessing (CLIPImageProcessor, crop mode).
            let pixels = try pipeline.pixels(imagePath: Fixtures.llava + "/" + (try c.string("image")), mode: .crop)
            let first8 = (try c.floats("pixel_values_first8"))
            for (a, b) in zip(pixels.prefix(8), first8) { XCTAssertEqual(a, b, accuracy: 1e-5, name) }
            let pixelSum = pixels.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(pixelSum, (try c.double("pixel_values_sum")), accuracy: 1e-3, name)

            // Prompt tokenization.
            let template = try ConversationTemplate.load(try c.string("template"))
            let expectedIds = (try c.ints("prompt_ids"))
            let visual = (try c.int("visual_tokens"))
            XCTAssertEqual(try model.promptIds(template: template, question: try c.string("question"), imageTokens: visual),
                           expectedIds, name)
            XCTAssertEqual(template.firstPrompt(question: try c.string("question")), try c.string("prompt"), name)

            // Vision features, first-step logits and 16 greedy tokens.
            let features = try model.imageFeatures(pixels: pixels)
            XCTAssertEqual(features.rows, visual, name)
            let embeddings = model.projector(features)
            let featureSum = embeddings.toArray().reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(featureSum, (try c.double("feature_sum")), accuracy: 1e-3, name)
            let g = try model.generate(ids: expectedIds, imageEmbeddings: embeddings,
                                       options: GenerationOptions(maxTokens: 16, stopAtEOS: false))
            XCTAssertArraysClose(g.firstLogits, try c.floats("logits"), accuracy: 1e-4, name)
            XCTAssertEqual(g.generatedIds, (try c.ints("greedy_ids")), name)
        }
        XCTAssertEqual(models, ["mha-f32-legacy", "gqa-f16-v5", "gqa-bf16-sharded", "full-layer-last"])
    }

    func testTokenizerMatchesSentencePiecePython() throws {
        let tokenizer = try Fixtures.pipeline(Fixtures.llava + "/mha-f32-legacy").model.tokenizer
        let cases = try FixtureJSON.objects(Fixtures.llava + "/tokenizer_cases.json")
        XCTAssertGreaterThan(cases.count, 10)
        for c in cases {
            let text = try c.string("text")
            let ids = (try c.ints("ids"))
            XCTAssertEqual(try tokenizer.encode(text), ids, text.debugDescription)
            XCTAssertEqual(tokenizer.decode(ids), try c.string("decoded"), text.debugDescription)
            XCTAssertEqual(ids.map { tokenizer.piece($0) ?? "<no piece \($0)>" }, try c.strings("pieces"), text.debugDescription)
        }
        XCTAssertEqual(tokenizer.bosId, 1)
        XCTAssertEqual(tokenizer.eosId, 2)
        XCTAssertEqual(tokenizer.id(forPiece: "</s>"), 2)
        XCTAssertNil(tokenizer.id(forPiece: "no-such-piece-here"))
    }

    func testStreamingDecoderReassemblesTheText() throws {
        let tokenizer = try Fixtures.pipeline(Fixtures.llava + "/mha-f32-legacy").model.tokenizer
        for text in ["café naïve 12 apples", "multi\nline  text", "emoji 🙂 and 漢字"] {
            let ids = try tokenizer.encode(text)
            var decoder = StreamingDecoder(tokenizer: tokenizer)
            let streamed = ids.map { decoder.append($0) }.joined()
            XCTAssertEqual(streamed, tokenizer.decode(ids), text)
        }
    }
}
