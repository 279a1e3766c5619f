import FixtureLocations
import Foundation
import XCTest

@testable import LLaVA
import TokenMerging

/// FastV against the official selection run inside transformers' Llama on the small random-weight
/// checkpoints (Tests/Fixtures/fastv/cases.json, made by Scripts/reference/make_fastv_fixtures.py).
final class FastVTests: XCTestCase {
    func cases() throws -> [[String: Any]] {
        try FixtureJSON.objects(FixtureLocations.project + "/fastv/cases.json")
    }

    /// Model and image paths in cases.json are relative to Tests/Fixtures.
    func path(_ name: String) -> String { FixtureLocations.project + "/" + name }

    func testMatchesTheOfficialFastV() throws {
        let all = try cases()
        XCTAssertGreaterThanOrEqual(all.count, 7)
        for c in all {
            let layer = try c.int("layer"), keep = try c.int("keep")
            let name = "\(try c.string("model")) K=\(layer) keep=\(keep)"
            let pipeline = try Fixtures.pipeline(path(try c.string("model")))
            let model = pipeline.model
            let ids = try c.ints("prompt_ids")
            let embeddings = try model.encodeImage(pixels: pipeline.pixels(imagePath: path(try c.string("image")), mode: .crop))
            let visual = embeddings.rows

            // The official count round(N·(1 − fastv_r)) is our ratio 1 − fastv_r.
            let ratio = 1 - (try c.double("fastv_r"))
            XCTAssertEqual(FastV.keptCount(visualTokens: visual, options: MergeOptions(method: .fastV, ratio: ratio)), keep, name)
            // The selection on the official scores.
            let kept = try c.ints("kept")
            XCTAssertEqual(FastV.select(scores: try c.floats("scores"), keep: keep), kept, name)

            // The prompt pass alone: kept tokens and the KV length of every layer.
            let cut = LanguageModelCut(layer: layer, keep: keep)
            let cache = model.makeCache(promptTokens: ids.count, maxTokens: 8)
            let prefill = model.languageModel.run(try model.inputEmbeddings(ids, imageEmbeddings: embeddings), cache: cache,
                                                  cut: try model.prefillCut(cut, ids: ids))
            XCTAssertEqual(prefill.kept, kept, name)
            XCTAssertEqual((0..<model.config.text.numHiddenLayers).map { cache.storedRows(layer: $0) },
                           try c.ints("kv_lengths"), name)
            XCTAssertEqual(cache.length, ids.count, name)

            // First-token logits and the greedy continuation.
            let g = try model.generate(ids: ids, imageEmbeddings: embeddings,
                                       options: GenerationOptions(maxTokens: 8, stopAtEOS: false), cut: cut)
            XCTAssertEqual(g.keptVisualTokens, kept, name)
            XCTAssertArraysClose(g.firstLogits, try c.floats("logits"), accuracy: 1e-4, name)
            XCTAssertEqual(g.generatedIds, try c.ints("greedy_ids"), name)
        }
    }

    func testKeepingEveryVisualTokenIsTheUnreducedModel() throws {
        for c in try cases() {
            let pipeline = try Fixtures.pipeline(path(try c.string("model")))
            let model = pipeline.model
            let ids = try c.ints("prompt_ids")
            let embeddings = try model.encodeImage(pixels: pipeline.pixels(imagePath: path(try c.string("image")), mode: .crop))
            let options = GenerationOptions(maxTokens: 6, stopAtEOS: false)
            let plain = try model.generate(ids: ids, imageEmbeddings: embeddings, options: options)
            let all = try model.generate(ids: ids, imageEmbeddings: embeddings, options: options,
                                         cut: LanguageModelCut(layer: try c.int("layer"), keep: embeddings.rows))
            XCTAssertEqual(all.keptVisualTokens, Array(0..<embeddings.rows))
            let name = try c.string("model")
            XCTAssertEqualArrays(all.firstLogits, plain.firstLogits, name)
            XCTAssertEqual(all.generatedIds, plain.generatedIds, name)
        }
    }

    func testThePipelineReportsTheBudgetAndRunsTheTowerUnreduced() throws {
        guard let c = try cases().first(where: { ($0["model"] as? String)?.hasPrefix("reference/llava-small") == true }) else {
            throw FixtureError("fastv/cases.json has no case on reference/llava-small")
        }
        let pipeline = try Fixtures.pipeline(path(try c.string("model")))
        let settings = VisionMergeSettings(options: MergeOptions(method: .fastV, keep: 16))
        XCTAssertEqual(try pipeline.model.plannedVisualTokens(settings), 16)
        let image = try pipeline.encode(imagePath: path(try c.string("image")), merge: settings)
        XCTAssertEqual(image.visualTokens, pipeline.model.fullImageTokens)
        XCTAssertEqual(image.cut, LanguageModelCut(layer: 2, keep: 16))
        let result = try pipeline.ask(image: image, question: "What color is the square?", template: try .load("llava-hf"),
                                      options: GenerationOptions(maxTokens: 2, stopAtEOS: false))
        XCTAssertEqual(result.visualTokens, 16)
        XCTAssertEqual(result.promptIds.filter { $0 == pipeline.model.config.imageTokenIndex }.count, pipeline.model.fullImageTokens)
    }

    func testBadSettingsAreRefused() throws {
        let config = try Fixtures.pipeline(Fixtures.llava + "/mha-f32-legacy").model.config
        func error(_ options: MergeOptions) -> String {
            do {
                _ = try config.plannedVisualTokens(VisionMergeSettings(options: options))
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(error(MergeOptions(method: .fastV, keep: 4, fastvLayer: 2)).contains("between 1 and 1"))
        XCTAssertTrue(error(MergeOptions(method: .fastV, keep: 4, fastvLayer: 0)).contains("at least 1"))
        XCTAssertTrue(error(MergeOptions(method: .fastV, keep: 17, fastvLayer: 1)).contains("keep 17 is out of range"))
        XCTAssertTrue(error(MergeOptions(method: .tome, ratio: 0.9, fastvLayer: 3)).contains("only applies to method fastv"))
        XCTAssertEqual(error(MergeOptions(method: .fastV, ratio: 0.5, fastvLayer: 1)), "no error")
        let pipeline = try Fixtures.pipeline(Fixtures.llava + "/mha-f32-legacy")
        XCTAssertThrowsError(try ChatSession(pipeline: pipeline, template: try .load("llava-hf"),
                                             merge: VisionMergeSettings(options: MergeOptions(method: .fastV, keep: 4))))
    }

    func testSettingsKeepTheLayerInTheirLabelAndJSON() throws {
        let s = VisionMergeSettings(options: MergeOptions(method: .fastV, keep: 64, fastvLayer: 3))
        XCTAssertEqual(s.label, "fastv keep=64 fastv-layer=3")
        let decoded = try JSONDecoder().decode(VisionMergeSettings.self, from: JSONEncoder().encode(s))
        XCTAssertEqual(decoded, s)
        let plain = String(decoding: try JSONEncoder().encode(VisionMergeSettings(options: MergeOptions(method: .fastV, keep: 64))), as: UTF8.self)
        XCTAssertFalse(plain.contains("fastv_layer"), plain)
    }
}
