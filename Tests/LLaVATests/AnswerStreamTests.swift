import Tokenizer
import XCTest

@testable import LLaVA

/// The streamed pieces of an answer, joined, are its final text byte for byte.
final class AnswerStreamTests: XCTestCase {
    func stream(_ ids: [Int], tokenizer: SentencePieceTokenizer) -> (pieces: [String], text: String) {
        var stream = AnswerStream(tokenizer: tokenizer)
        var pieces = ids.map { stream.append($0) }
        pieces.append(stream.finish())
        return (pieces, stream.text)
    }

    func testPiecesJoinedAreTheTextWithIncompleteUTF8AndWhiteSpace() throws {
        let tokenizer = try SentencePieceTokenizer(modelPath: Fixtures.llava + "/tokenizer.model")
        let bytes = ["<0xE2>", "<0x9C>", "<0x93>"].map { tokenizer.id(forPiece: $0)! }
        let no = try tokenizer.encode(" no")
        let space = try tokenizer.encode(" ")

        // An answer cut inside a UTF-8 sequence: the sequence comes out once, at the end, the
        // same way in both.
        let cut = stream(no + bytes.prefix(2), tokenizer: tokenizer)
        XCTAssertEqual(cut.pieces.joined(), cut.text)
        XCTAssertTrue(cut.text.hasPrefix("no"), cut.text)
        XCTAssertTrue(cut.text.hasSuffix("\u{FFFD}"), cut.text)
        XCTAssertEqual(cut.pieces.last?.hasSuffix("\u{FFFD}"), true)

        // A complete sequence, leading white space dropped, trailing white space held back.
        let whole = stream(no + bytes + space, tokenizer: tokenizer)
        XCTAssertEqual(whole.text, "no✓")
        XCTAssertEqual(whole.pieces.joined(), whole.text)

        // The final text is the trimmed decoding of the ids.
        let words = try tokenizer.encode(" yes, two red   shapes ")
        let plain = stream(words, tokenizer: tokenizer)
        XCTAssertEqual(plain.text, tokenizer.decode(words).trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(plain.pieces.joined(), plain.text)
    }
}
