import FixtureLocations
import Foundation
import XCTest

@testable import LLaVA

/// The question answerer gives the pipeline's own answer, whichever way the image comes.
final class QuestionAnswererTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    let modelDir = Fixtures.reference + "/llava-small/model"
    let shapes = Fixtures.reference + "/llava-small/shapes.png"

    func answerer() throws -> QuestionAnswerer {
        let settings = RunSettings(modelDirectory: modelDir, template: "llava-v1", generation: GenerationOptions(maxTokens: 5))
        return try QuestionAnswerer(pipeline: Fixtures.pipeline(modelDir), settings: settings, cache: ImageCache())
    }

    func testAFileAndItsBytesGiveThePipelinesAnswerAndShareTheCache() throws {
        let answerer = try answerer()
        let question = "What color is the square?"
        let first = try answerer.answer(question, image: .file(shapes))
        let direct = try answerer.pipeline.ask(imagePath: shapes, question: question, template: answerer.template,
                                               options: answerer.settings.generation)
        XCTAssertEqual(first.text, direct.text)
        XCTAssertEqual(first.generatedTokens, direct.generatedIds.count)
        XCTAssertEqual(first.visualTokens, direct.visualTokens)
        XCTAssertFalse(first.cacheHit)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: shapes)))
        let again = try answerer.answer(question, image: .bytes(bytes, name: "shapes"))
        XCTAssertTrue(again.cacheHit)
        XCTAssertEqual(again.text, first.text)
        XCTAssertEqual(again.imageDigest, first.imageDigest)
        XCTAssertEqual(first.imageDigest?.count, 64)
    }

    func testATextOnlyQuestionHasNoVisualTokens() throws {
        let answer = try answerer().answer("What is two plus two?", image: nil)
        XCTAssertEqual(answer.visualTokens, 0)
        XCTAssertNil(answer.imageDigest)
        XCTAssertFalse(answer.cacheHit)
        XCTAssertGreaterThan(answer.generatedTokens, 0)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(answer)) as? [String: Any]
        XCTAssertEqual(json?["visual_tokens"] as? Int, 0)
        XCTAssertNotNil(json?["stop_reason"])
    }
}
