import Tokenizer

/// The answer text as it is generated, with one rule for the streamed pieces and the final
/// text, so that the pieces joined are exactly the final text: leading and trailing white space
/// is left out (white space is held back until more text follows it), and a UTF-8 sequence still
/// incomplete when generation ends comes out as U+FFFD, once, at the end.
public struct AnswerStream {
    private var decoder: StreamingDecoder
    /// Everything the decoder has released so far.
    private var decoded = ""
    /// White space not yet passed on (it may turn out to be trailing).
    private var held = ""
    /// The text passed on so far.
    public private(set) var text = ""

    public init(tokenizer: SentencePieceTokenizer) {
        decoder = StreamingDecoder(tokenizer: tokenizer)
    }

    /// Adds a generated token; returns the text to show now (often empty).
    public mutating func append(_ id: Int) -> String {
        let piece = decoder.append(id)
        decoded += piece
        return pass(piece)
    }

    /// Ends the answer; returns the last text to show: what the decoder still held back (an
    /// incomplete UTF-8 sequence decodes as U+FFFD), without trailing white space.
    public mutating func finish() -> String {
        let full = decoder.text
        let rest = full.hasPrefix(decoded) ? String(full.dropFirst(decoded.count)) : ""
        decoded = full
        let out = pass(rest)
        held = ""
        return out
    }

    private mutating func pass(_ piece: String) -> String {
        var pending = held + piece
        if text.isEmpty { pending = String(pending.drop(while: \.isWhitespace)) }
        var cut = pending.endIndex
        while cut > pending.startIndex, pending[pending.index(before: cut)].isWhitespace {
            cut = pending.index(before: cut)
        }
        held = String(pending[cut...])
        let out = String(pending[..<cut])
        text += out
        return out
    }
}
