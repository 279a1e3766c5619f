import Checkpoint
import Foundation
@testable import LLaVA
import XCTest

final class ModelFamilyTests: XCTestCase {
    /// Every registered family has its checkpoint line and every checkpoint line its family.
    func testRegistryAgreesWithCheckpointFamilies() {
        XCTAssertEqual(ModelFamilies.registered.map { $0.checkpoint.modelType }, CheckpointFamily.known.map(\.modelType))
        XCTAssertTrue(ModelFamilies.named("llava") == LlavaFamily.self)
        XCTAssertNil(ModelFamilies.named("qwen2_vl"))
        XCTAssertEqual(CheckpointFamily.knownList, "\"llava\" (LlavaForConditionalGeneration)")
    }

    /// An unknown model_type is refused in one line naming config.json and listing the known types.
    func testUnknownModelTypeNamesTheKnownOnes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("model-family-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/config.json"
        try Data("{\"model_type\": \"llava_next\"}".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LlavaConfiguration.load(path: path)) { error in
            XCTAssertEqual("\(error)", path + ": model_type is \"llava_next\"; the known model types are \"llava\" (LlavaForConditionalGeneration)")
        }
        try Data("{\"model_type\": \"llava\"}".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try LlavaConfiguration.load(path: path).family, .llava)
    }

    /// Both naming schemes map onto LLaVA's weight names.
    func testWeightNames() {
        let names = WeightNames.llava
        for (stored, canonical) in [
            ("model.language_model.layers.0.mlp.up_proj.weight", "language_model.model.layers.0.mlp.up_proj.weight"),
            ("model.vision_tower.encoder.layers.3.mlp.fc1.bias", "vision_tower.vision_model.encoder.layers.3.mlp.fc1.bias"),
            ("model.vision_tower.vision_model.pre_layrnorm.weight", "vision_tower.vision_model.pre_layrnorm.weight"),
            ("model.multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_1.weight"),
            ("lm_head.weight", "language_model.lm_head.weight"),
            ("language_model.model.norm.weight", "language_model.model.norm.weight"),
            ("vision_tower.vision_model.embeddings.class_embedding", "vision_tower.vision_model.embeddings.class_embedding"),
        ] {
            XCTAssertEqual(names.canonical(stored), canonical)
        }
    }

    /// The prompt's chunks: BOS, the text pieces encoded one by one, each picture's slot in order.
    func testPromptChunks() throws {
        let tokenizer = CharacterTokenizer()
        let chunks = try promptChunks("ab<image>c<image>", tokenizer: tokenizer, imagePositions: [3, 2], addBOS: true)
        XCTAssertEqual(chunks, [.text([1]), .text([97, 98]), .image(index: 0, positions: 3), .text([99]),
                                .image(index: 1, positions: 2)])
        XCTAssertEqual(chunks.ids(imageTokenId: 9), [1, 97, 98, 9, 9, 9, 99, 9, 9])
        XCTAssertEqual(try tokenizePrompt("ab<image>c<image>", tokenizer: tokenizer, imageTokenId: 9, imageTokens: 2),
                       [1, 97, 98, 9, 9, 99, 9, 9])
        XCTAssertEqual(try promptChunks("x", tokenizer: tokenizer, imagePositions: [], addBOS: false), [.text([120])])
    }

    /// LLaVA-1.5's parts as the contracts see them, on both naming schemes.
    func testLlavaPartsThroughTheContracts() throws {
        for folder in ["mha-f32-legacy", "gqa-f16-v5"] {
            let pipeline = try Fixtures.pipeline(Fixtures.llava + "/" + folder)
            let model = pipeline.model
            XCTAssertEqual(model.config.family, .llava)
            let tower: any VisionEncoder = model.visionTower
            XCTAssertEqual(tower.tileSide, model.config.vision.imageSize)
            XCTAssertEqual(tower.leadingTokens, 1)
            XCTAssertEqual(tower.reducerSites, [.afterLayer, .betweenAttentionAndMLP])
            let decoder: any LanguageModel = model.languageModel
            let ids = [model.tokenizer.bosId, 5, 7]
            let cache = decoder.makeCache(capacity: 8)
            let logits = decoder.run(decoder.embed(ids), cache: cache, cut: nil).logits
            XCTAssertEqual(logits, model.languageModel.forward(model.languageModel.embed(ids),
                                                               cache: model.languageModel.makeCache(capacity: 8)))
            XCTAssertEqual(cache.length, ids.count)
        }
    }
}

/// One token per character (its code point), BOS 1, EOS 2.
private final class CharacterTokenizer: PromptTokenizer {
    var vocabularySize: Int { 256 }
    var bosId: Int { 1 }
    var eosId: Int { 2 }
    func encode(_ text: String) throws -> [Int] { text.unicodeScalars.map { Int($0.value) } }
    func decode(_ ids: [Int]) -> String { String(String.UnicodeScalarView(ids.compactMap { Unicode.Scalar(UInt32($0)) })) }
    func piece(_ id: Int) -> String? { id < 256 ? decode([id]) : nil }
}
