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
        try Fixtures.json(Fixtures.llava + "/expected.json") as! [[String: Any]]
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
            let name = "\(path): \(c["model"]!) \(c["image"]!) \(c["template"]!)"
            let pipeline = try Fixtures.pipeline(Fixtures.llava + "/" + (c["model"] as! String))
            models.insert(c["model"] as! String)
            let model = pipeline.model

            // Preprocessing (CLIPImageProcessor, crop mode).
            let pixels = try pipeline.pixels(imagePath: Fixtures.llava + "/" + (c["image"] as! String), mode: .crop)
            let first8 = (c["pixel_values_first8"] as! [Any]).floats
            for (a, b) in zip(pixels.prefix(8), first8) { XCTAssertEqual(a, b, accuracy: 1e-5, name) }
            let pixelSum = pixels.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(pixelSum, (c["pixel_values_sum"] as! NSNumber).doubleValue, accuracy: 1e-3, name)

            // Prompt tokenization.
            let template = try ConversationTemplate.load(c["template"] as! String)
            let expectedIds = (c["prompt_ids"] as! [Any]).ints
            let visual = (c["visual_tokens"] as! NSNumber).intValue
            XCTAssertEqual(try model.promptIds(template: template, question: c["question"] as! String, imageTokens: visual),
                           expectedIds, name)
            XCTAssertEqual(template.firstPrompt(question: c["question"] as! String), c["prompt"] as! String, name)

            // Vision features, first-step logits and 16 greedy tokens.
            let features = try model.imageFeatures(pixels: pixels)
            XCTAssertEqual(features.rows, visual, name)
            let embeddings = model.projector(features)
            let featureSum = embeddings.toArray().reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(featureSum, (c["feature_sum"] as! NSNumber).doubleValue, accuracy: 1e-3, name)
            let g = try model.generate(ids: expectedIds, imageEmbeddings: embeddings,
                                       options: GenerationOptions(maxTokens: 16, stopAtEOS: false))
            let logits = (c["logits"] as! [Any]).floats
            XCTAssertEqual(g.firstLogits.count, logits.count, name)
            let diff = zip(g.firstLogits, logits).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(diff, 1e-4, name)
            XCTAssertEqual(g.generatedIds, (c["greedy_ids"] as! [Any]).ints, name)
        }
        XCTAssertEqual(models, ["mha-f32-legacy", "gqa-f16-v5", "gqa-bf16-sharded", "full-layer-last"])
    }

    func testTokenizerMatchesSentencePiecePython() throws {
        let tokenizer = try Fixtures.pipeline(Fixtures.llava + "/mha-f32-legacy").model.tokenizer
        let cases = try Fixtures.json(Fixtures.llava + "/tokenizer_cases.json") as! [[String: Any]]
        XCTAssertGreaterThan(cases.count, 10)
        for c in cases {
            let text = c["text"] as! String
            let ids = (c["ids"] as! [Any]).ints
            XCTAssertEqual(try tokenizer.encode(text), ids, text.debugDescription)
            XCTAssertEqual(tokenizer.decode(ids), c["decoded"] as! String, text.debugDescription)
            XCTAssertEqual(ids.map { tokenizer.piece($0)! }, c["pieces"] as! [String], text.debugDescription)
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
