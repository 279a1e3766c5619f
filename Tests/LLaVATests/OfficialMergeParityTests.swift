import Foundation
import TokenMerging
import Kernels
import XCTest

@testable import LLaVA

/// End to end with merging against the official PiToMe code: ../shared/fixtures/llava-small
/// (12-layer CLIP at 112 px, 4-layer Llama, merges after each layer feeding feature layer −2).
final class OfficialMergeParityTests: XCTestCase {
    /// On every kernel path this CPU runs.
    func testEveryLineOfExpectedMatches() throws {
        try KernelPath.forEachAvailable { path in try everyLineOfExpectedMatches(path) }
    }

    func everyLineOfExpectedMatches(_ path: KernelPath) throws {
        let dir = Fixtures.shared + "/llava-small"
        let lines = try Fixtures.jsonLines(dir + "/expected.jsonl")
        XCTAssertGreaterThanOrEqual(lines.count, 8)
        let pipeline = try Fixtures.pipeline(dir + "/model")
        let model = pipeline.model
        let pixels = try pipeline.pixels(imagePath: dir + "/shapes.png", mode: .crop)
        let template = try ConversationTemplate.load("llava-hf")
        for line in lines {
            let algo = line["algo"] as! String
            let ratio = (line["ratio"] as! NSNumber).doubleValue
            let result = line["result"] as! [String: Any]
            let name = "\(path): \(algo) ρ=\(ratio)"
            let method = MergeMethod(rawValue: algo)!
            let settings = VisionMergeSettings(options: MergeOptions(method: ratio < 1 ? method : .none, ratio: ratio < 1 ? ratio : nil))
            let (embeddings, _) = try model.encodeImage(pixels: pixels, merge: settings)
            let visual = (result["visual_tokens"] as! NSNumber).intValue
            XCTAssertEqual(embeddings.rows, visual, name)
            XCTAssertEqual(try model.plannedVisualTokens(settings), visual, name)
            let featureSum = embeddings.toArray().reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(featureSum, (result["feature_sum"] as! NSNumber).doubleValue, accuracy: 2e-3, name)

            let ids = (result["prompt_ids"] as! [Any]).ints
            XCTAssertEqual(try model.promptIds(template: template, question: line["question"] as! String, imageTokens: visual), ids, name)
            let g = try model.generate(ids: ids, imageEmbeddings: embeddings, options: GenerationOptions(maxTokens: 12, stopAtEOS: false))
            XCTAssertEqual(g.generatedIds, (result["generated_ids"] as! [Any]).ints, name)
            let topIds = (result["top5_ids"] as! [Any]).ints
            let topLogits = (result["top5_logits"] as! [Any]).floats
            for (id, value) in zip(topIds, topLogits) {
                // The reference rounds to 5 decimals (±5e-6).
                XCTAssertEqual(g.firstLogits[id], value, accuracy: 1e-4, name)
            }
            let order = g.firstLogits.indices.sorted { g.firstLogits[$0] > g.firstLogits[$1] }
            XCTAssertEqual(Array(order.prefix(5)), topIds, name)
        }
    }
}
