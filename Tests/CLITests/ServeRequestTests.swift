import Foundation
@testable import LlavaCLI
import XCTest

/// Decoding OpenAI chat-completions requests and cutting answers at stop strings.
final class ServeRequestTests: XCTestCase {
    func decode(_ json: String) throws -> ChatCompletionRequest {
        try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(json.utf8))
    }

    func testContentAsStringOrParts() throws {
        let r = try decode("""
        {"model": "m", "messages": [
          {"role": "system", "content": "Be brief."},
          {"role": "user", "content": [{"type": "text", "text": "What color"}, {"type": "text", "text": "is it?"},
                                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
          {"role": "assistant", "content": null}],
         "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "seed": 3, "stop": "\\n", "stream": true,
         "merge": "tome", "keep": 16}
        """)
        XCTAssertEqual(r.messages.map(\.role), ["system", "user", "assistant"])
        XCTAssertEqual(r.messages[0].text, "Be brief.")
        XCTAssertEqual(r.messages[1].text, "What color\nis it?")
        XCTAssertEqual(r.messages[1].imageURLs, ["data:image/png;base64,AAAA"])
        XCTAssertEqual(r.messages[2].parts, [])
        XCTAssertEqual(r.maxTokens, 7)
        XCTAssertEqual(r.temperature, 0.5)
        XCTAssertEqual(r.topP, 0.9)
        XCTAssertEqual(r.seed, 3)
        XCTAssertEqual(r.stop, ["\n"])
        XCTAssertTrue(r.stream)
        XCTAssertEqual(r.merge, "tome")
        XCTAssertEqual(r.keep, 16)
        XCTAssertNil(r.ratio)
    }

    func testDefaultsAndStopList() throws {
        let r = try decode(#"{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"], "max_completion_tokens": 5}"#)
        XCTAssertEqual(r.stop, ["a", "b"])
        XCTAssertFalse(r.stream)
        XCTAssertEqual(r.maxTokens, 5)
        XCTAssertNil(r.model)
    }

    func testWrongTypesNameTheField() throws {
        for (json, field) in [
            (#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}"#, "max_tokens"),
            (#"{"messages": [{"role": "user", "content": 3}]}"#, "messages[0].content"),
            (#"{"messages": [{"role": "user", "content": [{"type": "audio"}]}]}"#, "messages[0].content[0].type"),
            (#"{"model": "m"}"#, "messages"),
        ] {
            XCTAssertThrowsError(try decode(json), json) { error in
                let failure = ServeError(decoding: error)
                XCTAssertEqual(failure.status, 400)
                XCTAssertTrue(failure.message.hasPrefix(field), "\(failure.message) names \(field)")
            }
        }
        XCTAssertThrowsError(try decode("{not json")) { error in
            XCTAssertEqual(ServeError(decoding: error, body: Data("{not json".utf8)).message, "the body is not valid JSON")
        }
        XCTAssertThrowsError(try decode("[]")) { error in
            XCTAssertEqual(ServeError(decoding: error).message, "the body must be a JSON object")
        }
        let negativeSeed = #"{"messages": [], "seed": -1}"#
        XCTAssertThrowsError(try decode(negativeSeed)) { error in
            XCTAssertTrue(ServeError(decoding: error, body: Data(negativeSeed.utf8)).message.hasPrefix("a number in the body does not fit"))
        }
    }

    func testTurnsPairQuestionsWithAnswers() throws {
        let r = try decode("""
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one"},
          {"role": "assistant", "content": "1"}, {"role": "user", "content": "two"}, {"role": "user", "content": "three"},
          {"role": "assistant", "content": "prefilled"}]}
        """)
        XCTAssertEqual(ServeEngine.turns(r.messages), [.init(question: "one", answer: "1"), .init(question: "two\nthree")])
        XCTAssertEqual(ServeEngine.turns(try decode(#"{"messages": [{"role": "system", "content": "x"}]}"#).messages), [])
    }

    func testStopFilterCutsAcrossPieces() {
        let filter = StopFilter(["STOP"])
        let out = ["The an", "swer ST", "O", "P and more"].map { filter.feed($0) }
        XCTAssertEqual(out, ["The an", "swer ", "", ""])
        XCTAssertEqual(filter.finish(), "")
        XCTAssertEqual(filter.text, "The answer ")
        XCTAssertTrue(filter.stopped)
    }

    func testStopFilterReleasesAFalseStart() {
        let filter = StopFilter(["</s>", "\n\n"])
        XCTAssertEqual(filter.feed("a <"), "a ")
        XCTAssertEqual(filter.feed("b>\n"), "<b>")
        XCTAssertEqual(filter.finish(), "\n")
        XCTAssertEqual(filter.text, "a <b>\n")
        XCTAssertFalse(filter.stopped)
    }
}
