import Checkpoint
import FixtureLocations
import Foundation
import Kernels
import TokenMerging
import XCTest

@testable import LLaVA

/// VisPruner and CDPruner on the small random LLaVA against transformers plus the official
/// `encode_images` of each method (Tests/Fixtures/reducers/llava_small_vispruner and
/// llava_small_cdpruner, made by Scripts/reference/make_reducer_fixtures.py): the kept patches,
/// their image embeddings, the first-step logits and the greedy tokens of the language model on
/// a prompt holding them; then the properties every one-cut reducer has.
final class PrunerEndToEndTests: XCTestCase {
    override func setUpWithError() throws {
        try FixtureLocations.requireReference("llava-small")
        try FixtureLocations.requireReference("clip-small")
    }

    static let modelDir = Fixtures.reference + "/llava-small/model"
    static let image = Fixtures.reference + "/llava-small/shapes.png"
    static let clipDir = Fixtures.reference + "/clip-small/model"

    /// A model of its own (the shared one stays without a question encoder), with the CLIP folder.
    static let withCLIP: LlavaForConditionalGeneration = {
        let pipeline = try! LlavaPipeline(directory: modelDir)
        pipeline.model.questionEncoder = try! CLIPTextFolder(directory: clipDir, llavaVisionHiddenSize: pipeline.model.config.vision.hiddenSize)
        return pipeline.model
    }()

    func pixels() throws -> [Float] {
        try Fixtures.pipeline(Self.modelDir).pixels(imagePath: Self.image, mode: .crop)
    }

    func file(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: FixtureLocations.project + "/reducers/\(name).safetensors")
    }

    func column(_ file: SafeTensorsFile, _ name: String) throws -> [Int] {
        try file.matrix(name).toArray().map { Int($0) }
    }

    func cases(_ file: SafeTensorsFile) throws -> [String] {
        guard let cases = file.metadata["cases"]?.split(separator: " ").map(String.init), !cases.isEmpty else {
            throw FixtureError("the fixture lists no cases")
        }
        return cases
    }

    /// Largest differences seen, reported at the end of each test.
    struct Worst {
        var embeddings: Float = 0
        var logits: Float = 0
    }

    /// One case: the kept patches (from the source map), the embeddings, the prompt, the first
    /// step's logits and the greedy tokens.
    func check(_ model: LlavaForConditionalGeneration, _ file: SafeTensorsFile, case name: String, settings: VisionMergeSettings,
               question: String, pixels: [Float], worst: inout Worst, label: String) throws {
        let (embeddings, sources) = try model.encodeImage(pixels: pixels, merge: settings, question: question)
        let kept = try column(file, "\(name)_kept")
        XCTAssertEqual(embeddings.rows, kept.count, label)
        XCTAssertEqual(try XCTUnwrap(sources, label).dropFirst().map { $0 }, kept.map { [$0] }, "\(label): kept patches")
        let official = try file.matrix("\(name)_embeddings")
        let de = maxDifference(embeddings, official)
        XCTAssertLessThanOrEqual(de, 1e-5, "\(label): embeddings")
        worst.embeddings = max(worst.embeddings, de)

        let ids = try column(file, "\(name)_prompt_ids")
        let template = try ConversationTemplate.load("llava-hf")
        XCTAssertEqual(try model.promptIds(template: template, question: question, imageTokens: embeddings.rows), ids, "\(label): prompt")
        let greedy = try column(file, "\(name)_greedy")
        let g = try model.generate(ids: ids, imageEmbeddings: embeddings,
                                   options: GenerationOptions(maxTokens: greedy.count, stopAtEOS: false))
        let logits = try file.matrix("\(name)_logits").toArray()
        XCTAssertEqual(g.firstLogits.count, logits.count, label)
        let dl = zip(g.firstLogits, logits).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        XCTAssertLessThanOrEqual(dl, 1e-4, "\(label): first-step logits")
        worst.logits = max(worst.logits, dl)
        XCTAssertEqual(g.generatedIds, greedy, "\(label): greedy tokens")
    }

    /// On every kernel path this CPU runs.
    func testVisPrunerMatchesTheOfficialCodeOnTheSmallModel() throws {
        let model = try Fixtures.pipeline(Self.modelDir).model
        let px = try pixels()
        let file = try file("llava_small_vispruner")
        let question = try XCTUnwrap(file.metadata["question"])
        let all = try cases(file)
        XCTAssertGreaterThanOrEqual(all.count, 4)
        try KernelPath.forEachAvailable { path in
            var worst = Worst()
            for name in all {
                // T{budget}_r{ratio}
                let parts = name.dropFirst().split(separator: "_r")
                let keep = try XCTUnwrap(Int(parts[0])), ratio = try XCTUnwrap(Double(parts[1]))
                let settings = VisionMergeSettings(options: MergeOptions(method: .visPruner, keep: keep, trackSources: true,
                                                                         importantRatio: ratio))
                try check(model, file, case: name, settings: settings, question: question, pixels: px, worst: &worst,
                          label: "\(path): vispruner \(name)")
            }
            print("vispruner on \(path): \(all.count) cases, largest differences: embeddings \(worst.embeddings), logits \(worst.logits)")
        }
    }

    /// With the CLIP folder's text tower and projections; questions of one and two 77-token
    /// segments, one carrying the short-answer instruction (stripped before the text tower).
    func testCDPrunerMatchesTheOfficialCodeOnTheSmallModel() throws {
        let model = Self.withCLIP
        let px = try pixels()
        let file = try file("llava_small_cdpruner")
        let questions = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(file.metadata["questions"]).utf8)) as? [String])
        XCTAssertEqual(questions.count, 3)
        XCTAssertTrue(questions.contains { $0.hasSuffix("\nAnswer the question using a single word or phrase.") })
        let encoder = try XCTUnwrap(model.questionEncoder)
        for (q, question) in questions.enumerated() {
            let text = try encoder.textEmbeddings(VisionMergeSettings.relevanceText(question))
            XCTAssertLessThanOrEqual(maxDifference(text, try file.matrix("text_embeds_q\(q)")), 1e-5, "text embeddings of question \(q)")
        }
        XCTAssertEqual(try file.matrix("text_embeds_q2").rows, 2, "the long question takes two segments")
        let all = try cases(file)
        XCTAssertEqual(all.count, 9)
        try KernelPath.forEachAvailable { path in
            var worst = Worst()
            for name in all {
                // K{budget}_q{question}
                let parts = name.dropFirst().split(separator: "_q")
                let keep = try XCTUnwrap(Int(parts[0])), q = try XCTUnwrap(Int(parts[1]))
                let settings = VisionMergeSettings(options: MergeOptions(method: .cdPruner, keep: keep, trackSources: true))
                try check(model, file, case: name, settings: settings, question: questions[q], pixels: px, worst: &worst,
                          label: "\(path): cdpruner \(name)")
            }
            print("cdpruner on \(path): \(all.count) cases, largest differences: embeddings \(worst.embeddings), logits \(worst.logits)")
        }
    }

    /// Exactly K rows, the planned count, a source map with one distinct patch per token (CLS
    /// first, holding none), every kept row the unreduced projector row of its patch; budgets the
    /// official VisPruner raises an error on (K = 1, 8) included.
    func testVisPrunerAndCDPrunerGiveTheirBudgetExactly() throws {
        let model = Self.withCLIP
        let px = try pixels()
        let full = try model.encodeImage(pixels: px, merge: .none).embeddings
        for method in [MergeMethod.visPruner, .cdPruner] {
            let amounts: [(Int?, Double?, Double)] = [(48, nil, 0.5), (16, nil, 0.25), (8, nil, 0.5), (1, nil, 0.5), (64, nil, 0.5),
                                                      (nil, 0.25, 0.5)]
            for (keep, ratio, important) in amounts {
                let options = MergeOptions(method: method, ratio: ratio, keep: keep, trackSources: true,
                                           importantRatio: method == .visPruner ? important : MergeOptions().importantRatio)
                let s = VisionMergeSettings(options: options)
                let (e, sources) = try model.encodeImage(pixels: px, merge: s, question: "What color is the square?")
                let expected = keep ?? 16
                XCTAssertEqual(e.rows, expected, s.label)
                XCTAssertEqual(try model.plannedVisualTokens(s), expected, s.label)
                XCTAssertTrue(e.toArray().allSatisfy { $0.isFinite }, s.label)
                let patches = try XCTUnwrap(sources, s.label)
                XCTAssertEqual(patches.count, expected + 1, s.label)
                XCTAssertEqual(patches[0], [], s.label)
                let held = patches.dropFirst().map { $0 }
                XCTAssertTrue(held.allSatisfy { $0.count == 1 }, s.label)
                XCTAssertEqual(held.map { $0[0] }, held.map { $0[0] }.sorted(), "\(s.label): patches in their original order")
                XCTAssertEqual(Set(held.map { $0[0] }).count, held.count, "\(s.label): a patch in two tokens")
                for (row, patch) in held.enumerated() {
                    // Pruning after the projector (CDPruner) or after the last layer run (VisPruner):
                    // every kept row is the unreduced row of its patch (VisPruner's projector runs on
                    // fewer rows, which may round otherwise).
                    let d = zip(e.rowArray(row), full.rowArray(patch[0])).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                    XCTAssertLessThanOrEqual(d, method == .cdPruner ? 0 : 1e-5, "\(s.label): row \(row)")
                }
            }
        }
    }

    /// CDPruner's choice follows the question; without one, or without the CLIP folder, it is refused.
    func testCDPrunerNeedsTheQuestionAndTheCLIPFolder() throws {
        let px = try pixels()
        let s = VisionMergeSettings(options: MergeOptions(method: .cdPruner, keep: 8, trackSources: true))
        let a = try Self.withCLIP.encodeImage(pixels: px, merge: s, question: "What color is the square?").sources
        let b = try Self.withCLIP.encodeImage(pixels: px, merge: s, question: "Is there a green disc in the picture?").sources
        XCTAssertNotEqual(a, b, "two questions, the same tokens")
        let c = try Self.withCLIP.encodeImage(pixels: px, merge: s,
                                              question: "Is there a green disc in the picture?\nAnswer the question using a single word or phrase.").sources
        XCTAssertEqual(b, c, "the short-answer instruction changed the choice")
        XCTAssertThrowsError(try Self.withCLIP.encodeImage(pixels: px, merge: s))
        XCTAssertThrowsError(try Fixtures.pipeline(Self.modelDir).model.encodeImage(pixels: px, merge: s, question: "What?"))
    }

    func maxDifference(_ a: Matrix, _ b: Matrix) -> Float {
        guard a.rows == b.rows && a.cols == b.cols else { return .infinity }
        return zip(a.toArray(), b.toArray()).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}
