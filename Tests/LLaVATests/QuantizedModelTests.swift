import Foundation
import TokenMerging
import XCTest

@testable import LLaVA

/// The int8 decoder against the exact one on the fixture checkpoints. Stated tolerance: first-step
/// logits within 3% of their spread (max |Δ| ≤ 0.03 · (max − min)), the same top-1 token, and
/// the greedy answer's first 4 tokens identical.
final class QuantizedModelTests: XCTestCase {
    func testQ8DecoderStaysCloseToTheExactOne() throws {
        let cases = try Fixtures.json(Fixtures.llava + "/expected.json") as! [[String: Any]]
        for name in ["mha-f32-legacy", "gqa-f16-v5"] {
            let dir = Fixtures.llava + "/" + name
            let exact = try Fixtures.pipeline(dir)
            let quantized = try LlavaPipeline(directory: dir, quantization: .q8)
            XCTAssertEqual(quantized.model.quantization, .q8)
            let c = cases.first { ($0["model"] as! String) == name }!
            let ids = (c["prompt_ids"] as! [Any]).ints
            let px = try exact.pixels(imagePath: Fixtures.llava + "/" + (c["image"] as! String), mode: .crop)
            let image = try exact.model.encodeImage(pixels: px)
            let options = GenerationOptions(maxTokens: 4, stopAtEOS: false)
            let a = try exact.model.generate(ids: ids, imageEmbeddings: image, options: options)
            let b = try quantized.model.generate(ids: ids, imageEmbeddings: try quantized.model.encodeImage(pixels: px), options: options)
            let spread = a.firstLogits.max()! - a.firstLogits.min()!
            let diff = zip(a.firstLogits, b.firstLogits).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(diff, 0, "\(name): quantization should change something")
            XCTAssertLessThanOrEqual(diff, 0.03 * spread, name)
            XCTAssertEqual(a.generatedIds, b.generatedIds, name)
        }
    }

    /// The int8 vision tower and projector against the exact ones (shared llava-small: 12 CLIP
    /// layers): every image embedding keeps a cosine similarity ≥ 0.99 with the exact one, with
    /// and without merging, and merging gives the same token count.
    func testQ8VisionTowerStaysCloseToTheExactOne() throws {
        let dir = Fixtures.shared + "/llava-small"
        let exact = try Fixtures.pipeline(dir + "/model")
        let quantized = try LlavaPipeline(directory: dir + "/model", visionQuantization: .q8)
        XCTAssertEqual(quantized.model.quantizationLabel, "none, vision q8")
        let px = try exact.pixels(imagePath: dir + "/shapes.png", mode: .crop)
        for settings in [VisionMergeSettings.none, VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.95))] {
            let a = try exact.model.encodeImage(pixels: px, merge: settings).embeddings
            let b = try quantized.model.encodeImage(pixels: px, merge: settings).embeddings
            XCTAssertEqual(a.rows, b.rows)
            XCTAssertNotEqual(a.toArray(), b.toArray())
            for r in 0..<a.rows {
                let x = a.rowArray(r), y = b.rowArray(r)
                let dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
                let cos = dot / (x.reduce(0) { $0 + $1 * $1 }.squareRoot() * y.reduce(0) { $0 + $1 * $1 }.squareRoot())
                XCTAssertGreaterThan(cos, 0.99, "row \(r)")
            }
        }
    }
}
