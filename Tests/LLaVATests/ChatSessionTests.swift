import FixtureLocations
import Foundation
import TokenMerging
import XCTest

@testable import LLaVA

/// A conversation reuses the KV cache of everything before the new turn; the tests check the
/// reuse against from-scratch runs over the same token sequence.
final class ChatSessionTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    let modelDir = Fixtures.reference + "/llava-small/model"
    let shapes = Fixtures.reference + "/llava-small/shapes.png"
    let wide = Fixtures.llava + "/images/wide-83x61.png"

    func session(template: String = "llava-v1", merge: VisionMergeSettings = .none, maxTokens: Int = 6) throws -> ChatSession {
        let pipeline = try Fixtures.pipeline(modelDir)
        return try ChatSession(pipeline: pipeline, template: try ConversationTemplate.load(template), merge: merge,
                               options: GenerationOptions(maxTokens: maxTokens))
    }

    func testFirstTurnIsTheAskPromptAndItsAnswer() throws {
        let chat = try session(merge: VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.9)))
        let info = try chat.load(imagePath: shapes)
        let model = chat.pipeline.model
        XCTAssertEqual(info.visualTokens, try model.plannedVisualTokens(chat.merge))
        XCTAssertEqual(chat.cache.length, info.prefixTokens)
        let turn = try chat.ask("What color is the square?")
        let ask = try chat.pipeline.ask(image: chat.image!, question: "What color is the square?", template: chat.template,
                                        options: GenerationOptions(maxTokens: 6))
        XCTAssertEqual(Array(chat.history.prefix(ask.promptIds.count)), ask.promptIds)
        XCTAssertEqual(turn.generation.generatedIds, ask.generatedIds)
        XCTAssertEqual(turn.generation.text, ask.text)
    }

    /// CDPruner chooses the tokens by the question: the image waits for the first question, whose
    /// turn is then what `ask` with that question gives; later turns and /clear keep its tokens.
    func testAQuestionAwareReducerEncodesWithTheFirstQuestion() throws {
        try FixtureLocations.requireReference("clip-small")
        let pipeline = try LlavaPipeline(directory: modelDir)
        pipeline.model.questionEncoder = try CLIPTextFolder(directory: Fixtures.reference + "/clip-small/model")
        let merge = VisionMergeSettings(options: MergeOptions(method: .cdPruner, keep: 8))
        let chat = try ChatSession(pipeline: pipeline, template: try ConversationTemplate.load("llava-v1"), merge: merge,
                                   options: GenerationOptions(maxTokens: 6))
        let info = try chat.load(imagePath: shapes)
        XCTAssertTrue(info.waitsForQuestion)
        XCTAssertEqual(info.visualTokens, 8)
        XCTAssertNil(chat.image)
        XCTAssertEqual(chat.cache.length, 0)
        let question = "Where is the green circle?"
        let turn = try chat.ask(question)
        let encoded = try XCTUnwrap(chat.image)
        XCTAssertEqual(encoded.visualTokens, 8)
        let ask = try pipeline.ask(imagePath: shapes, question: question, template: chat.template, merge: merge,
                                   options: GenerationOptions(maxTokens: 6))
        XCTAssertEqual(Array(chat.history.prefix(ask.promptIds.count)), ask.promptIds)
        XCTAssertEqual(turn.generation.generatedIds, ask.generatedIds)
        // Another question would choose other tokens; the conversation keeps the first one's.
        let other = try pipeline.encode(imagePath: shapes, merge: merge, question: "Is there a yellow triangle?")
        XCTAssertNotEqual(other.embeddings.toArray(), encoded.embeddings.toArray())
        _ = try chat.ask("Is there a yellow triangle?")
        chat.clear()
        XCTAssertEqual(chat.image?.embeddings.toArray(), encoded.embeddings.toArray())
        XCTAssertEqual(chat.cache.length, chat.prefixLength)
    }

    func testSecondTurnEqualsFromScratchRunOverTheWholeConversation() throws {
        let chat = try session()
        try chat.load(imagePath: shapes)
        let model = chat.pipeline.model
        let q1 = "What color is the square?", q2 = "And what shape is next to it?"
        let first = try chat.ask(q1)
        let second = try chat.ask(q2)

        // The conversation, built independently: ask's prompt, the first answer, EOS (llava-v1
        // closes answers with </s>), the next_turn text encoded on its own.
        let answer1 = first.generation.stopReason == .eos ? Array(first.generation.generatedIds.dropLast()) : first.generation.generatedIds
        let full = try model.promptIds(template: chat.template, question: q1, imageTokens: chat.image!.visualTokens)
            + answer1 + [model.tokenizer.eosId] + model.tokenizer.encode("USER: \(q2) ASSISTANT:")
        XCTAssertEqual(Array(chat.history.prefix(full.count)), full)

        let scratch = try model.generate(ids: full, imageEmbeddings: chat.image!.embeddings, options: GenerationOptions(maxTokens: 6))
        XCTAssertEqual(second.generation.generatedIds, scratch.generatedIds)
        XCTAssertEqual(second.generation.firstLogits.count, scratch.firstLogits.count)
        let drift = zip(second.generation.firstLogits, scratch.firstLogits).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(drift, 1e-4, "the cached conversation and the from-scratch run see different inputs")
        XCTAssertEqual(second.generation.text, scratch.text)
        XCTAssertEqual(second.promptTokens, full.count - chat.prefixLength - first.promptTokens - (first.generation.generatedIds.count - 1))
    }

    func testClearReturnsToThePrefixWithoutEncodingAgain() throws {
        let chat = try session()
        try chat.load(imagePath: shapes)
        let prefix = chat.prefixLength
        let image = chat.image!
        let first = try chat.ask("What color is the square?")
        _ = try chat.ask("Is there a circle?")
        XCTAssertGreaterThan(chat.cache.length, prefix)
        chat.clear()
        XCTAssertEqual(chat.cache.length, prefix)
        XCTAssertEqual(chat.history.count, prefix)
        XCTAssertEqual(chat.turns, 0)
        XCTAssertEqualArrays(try XCTUnwrap(chat.image).embeddings.toArray(), image.embeddings.toArray())
        XCTAssertEqual(chat.image!.visionMs, image.visionMs, "the image was encoded again")
        let again = try chat.ask("What color is the square?")
        XCTAssertEqual(again.generation.generatedIds, first.generation.generatedIds)
    }

    func testNewImageIsEncodedAndStartsOver() throws {
        let chat = try session(template: "llava-hf")
        try chat.load(imagePath: shapes)
        let before = chat.image!.embeddings.toArray()
        _ = try chat.ask("What color is the square?")
        try chat.load(imagePath: wide)
        XCTAssertEqual(chat.imagePath, wide)
        XCTAssertNotEqual(chat.image!.embeddings.toArray(), before)
        XCTAssertEqual(chat.cache.length, chat.prefixLength)
        XCTAssertEqual(chat.turns, 0)
        let turn = try chat.ask("Describe it.")
        let fresh = try chat.pipeline.ask(imagePath: wide, question: "Describe it.", template: chat.template,
                                          options: GenerationOptions(maxTokens: 6))
        XCTAssertEqual(turn.generation.generatedIds, fresh.generatedIds)
    }

    func testFullContextIsReportedAndClearRecovers() throws {
        // 256 positions; answers run to the end of the context.
        let pipeline = try Fixtures.pipeline(Fixtures.llava + "/mha-f32-legacy")
        let chat = try ChatSession(pipeline: pipeline, template: try ConversationTemplate.load("llava-hf"),
                                   options: GenerationOptions(maxTokens: 400, stopAtEOS: false))
        try chat.load(imagePath: Fixtures.llava + "/images/square-56.png")
        let turn = try chat.ask("Describe it.")
        XCTAssertEqual(turn.generation.stopReason, .contextFull)
        XCTAssertEqual(chat.cache.length, chat.context)
        XCTAssertThrowsError(try chat.ask("More?")) { error in
            guard case ChatError.contextFull = error else { return XCTFail("\(error)") }
        }
        chat.clear()
        chat.options.maxTokens = 4
        XCTAssertEqual(try chat.ask("More?").generation.generatedIds.count, 4)
    }

    func testTemplateWithTheQuestionBeforeTheImageIsRejected() throws {
        let path = NSTemporaryDirectory() + "chat-template-\(UUID().uuidString).json"
        try #"{"name": "question-first", "first_turn": "USER: {question}\n<image> ASSISTANT:"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try ChatSession(pipeline: try Fixtures.pipeline(modelDir), template: try ConversationTemplate.load(path))) { error in
            XCTAssertEqual(error as? ChatError, .templateOrder(template: "question-first"))
        }
    }

    func testAskingWithoutAnImageFails() throws {
        let chat = try session()
        XCTAssertThrowsError(try chat.ask("Hello?")) { XCTAssertEqual($0 as? ChatError, .noImage) }
    }
}
