import FixtureLocations
import Foundation
import TokenMerging
import Kernels
import XCTest

@testable import LLaVA

/// End to end with merging against the official PiToMe code: Tests/Fixtures/reference/llava-small
/// (made by Scripts/reference/make_llava_small_fixture.py)
/// (12-layer CLIP at 112 px, 4-layer Llama, merges after each layer feeding feature layer −2).
final class OfficialMergeParityTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    /// On every kernel path this CPU runs.
    func testEveryLineOfExpectedMatches() throws {
        try KernelPath.forEachAvailable { path in try everyLineOfExpectedMatches(path) }
    }

    func everyLineOfExpectedMatches(_ path: KernelPath) throws {
        let dir = Fixtures.reference + "/llava-small"
        let lines = try Fixtures.jsonLines(dir + "/expected.jsonl")
        XCTAssertGreaterThanOrEqual(lines.count, 8)
        let pipeline = try Fixtures.pipeline(dir + "/model")
        let model = pipeline.model
        let pixels = try pipeline.pixels(imagePath: dir + "/shapes.png", mode: .crop)
        let template = try ConversationTemplate.load("llava-hf")
        for line in lines {
            let algo = try line.string("algo")
            let ratio = try line.double("ratio")
            let result = try line.object("result")
            let name = "\(path): \(algo) ρ=\(ratio)"
            guard let method = MergeMethod(rawValue: algo) else { throw FixtureError("expected.jsonl: unknown algo \(algo)") }
            let settings = VisionMergeSettings(options: MergeOptions(method: ratio < 1 ? method : .none, ratio: ratio < 1 ? ratio : nil))
            let (embeddings, _) = try model.encodeImage(pixels: pixels, merge: settings)
            let visual = try result.int("visual_tokens")
            XCTAssertEqual(embeddings.rows, visual, name)
            XCTAssertEqual(try model.plannedVisualTokens(settings), visual, name)
            let featureSum = embeddings.toArray().reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(featureSum, try result.double("feature_sum"), accuracy: 2e-3, name)

            let ids = try result.ints("prompt_ids")
            XCTAssertEqualArrays(try model.promptIds(template: template, question: try line.string("question"), imageTokens: visual), ids, name)
            let g = try model.generate(ids: ids, imageEmbeddings: embeddings, options: GenerationOptions(maxTokens: 12, stopAtEOS: false))
            XCTAssertEqual(g.generatedIds, try result.ints("generated_ids"), name)
            let topIds = try result.ints("top5_ids")
            let topLogits = try result.floats("top5_logits")
            XCTAssertEqual(topIds.count, 5, name)
            XCTAssertEqual(topLogits.count, topIds.count, name)
            for (id, value) in zip(topIds, topLogits) {
                guard g.firstLogits.indices.contains(id) else { XCTFail("\(name): top-5 id \(id) is outside the vocabulary"); continue }
                // The reference rounds to 5 decimals (±5e-6).
                XCTAssertEqual(g.firstLogits[id], value, accuracy: 1e-4, name)
            }
            let order = g.firstLogits.indices.sorted { g.firstLogits[$0] > g.firstLogits[$1] }
            XCTAssertEqual(Array(order.prefix(5)), topIds, name)
        }
    }
}
