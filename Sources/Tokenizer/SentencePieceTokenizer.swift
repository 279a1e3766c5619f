import CSentencePiece
import FileAccess
import Foundation

public enum TokenizerError: Error, CustomStringConvertible {
    case missingFile(String)
    case invalidModel(String, String)
    case encodingFailed(String)
    case file(FileAccessError)

    public var description: String {
        switch self {
        case .missingFile(let path): "\(path): no such file"
        case .invalidModel(let path, let why): "\(path): not a SentencePiece model: \(why)"
        case .encodingFailed(let text): "SentencePiece could not encode \(text.debugDescription.prefix(60))"
        case .file(let error): error.description
        }
    }
}

/// Text ↔ token ids through libsentencepiece (the `tokenizer.model` of a Llama checkpoint).
public final class SentencePieceTokenizer: @unchecked Sendable {
    private let handle: OpaquePointer
    public let path: String

    public init(modelPath path: String) throws {
        self.path = path
        let bytes: [UInt8]
        do { bytes = try FileAccess.read(path, limit: FileAccess.configByteLimit) } catch let error as FileAccessError {
            if case .notFound = error { throw TokenizerError.missingFile(path) }
            throw TokenizerError.file(error)
        }
        var err = [CChar](repeating: 0, count: 512)
        let loaded = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { spm_load($0.baseAddress, $0.count, &err, err.count) }
        }
        guard let h = loaded else {
            let message = String(cString: err).trimmingCharacters(in: .whitespacesAndNewlines)
            throw TokenizerError.invalidModel(path, message.isEmpty ? "unknown error" : message)
        }
        handle = h
    }

    deinit { spm_free(handle) }

    /// Number of pieces in the SentencePiece model (ids 0 ..< vocabularySize).
    public var vocabularySize: Int { Int(spm_vocab_size(handle)) }
    public var bosId: Int { Int(spm_bos_id(handle)) }
    public var eosId: Int { Int(spm_eos_id(handle)) }
    public var unknownId: Int { Int(spm_unk_id(handle)) }

    /// Encodes with the model's own settings (dummy prefix, byte fallback); no BOS/EOS added.
    public func encode(_ text: String) throws -> [Int] {
        var utf8 = Array(text.utf8)
        let length = utf8.count
        utf8.append(0)
        var capacity = max(16, length + 8)
        while true {
            var out = [Int32](repeating: 0, count: capacity)
            let n = utf8.withUnsafeBufferPointer { bytes in
                bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    spm_encode(handle, $0, length, &out, Int32(capacity))
                }
            }
            if n < 0 { throw TokenizerError.encodingFailed(text) }
            if Int(n) <= capacity { return out.prefix(Int(n)).map(Int.init) }
            capacity = Int(n)
        }
    }

    /// Decodes ids to text. Ids outside the SentencePiece vocabulary (added tokens such as
    /// `<image>`) are skipped; control symbols decode to nothing.
    public func decode(_ ids: [Int]) -> String {
        let ids32 = ids.map { Int32(truncatingIfNeeded: $0) }
        var capacity = max(64, ids.count * 8)
        while true {
            var out = [CChar](repeating: 0, count: capacity)
            let n = spm_decode(handle, ids32, Int32(ids32.count), &out, Int32(capacity))
            if n < 0 { return "" }
            if Int(n) <= capacity {
                let bytes = out.prefix(Int(n)).map { UInt8(bitPattern: $0) }
                return String(decoding: bytes, as: UTF8.self)
            }
            capacity = Int(n)
        }
    }

    /// The piece string of an id ("▁the", "<0x0A>", "<s>"), or nil if out of range.
    public func piece(_ id: Int) -> String? {
        var out = [CChar](repeating: 0, count: 256)
        let n = spm_id_to_piece(handle, Int32(id), &out, Int32(out.count))
        if n < 0 { return nil }
        if Int(n) > out.count {
            out = [CChar](repeating: 0, count: Int(n))
            _ = spm_id_to_piece(handle, Int32(id), &out, Int32(out.count))
        }
        return String(decoding: out.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The id of a piece, or nil if the piece is not in the vocabulary.
    public func id(forPiece piece: String) -> Int? {
        let id = Int(spm_piece_to_id(handle, piece))
        return id == unknownId && piece != self.piece(unknownId) ? nil : id
    }

    public func isControl(_ id: Int) -> Bool { spm_is_control(handle, Int32(id)) != 0 }
    public func isByte(_ id: Int) -> Bool { spm_is_byte(handle, Int32(id)) != 0 }
}

/// Turns a growing list of generated ids into text increments for streaming.
///
/// SentencePiece drops the leading space of a decoded sequence and byte-fallback pieces can
/// split a UTF-8 character across tokens, so each step decodes the whole answer and emits
/// what is new, holding back an incomplete trailing character.
public struct StreamingDecoder {
    private let tokenizer: SentencePieceTokenizer
    private var ids: [Int] = []
    private var emitted = ""

    public init(tokenizer: SentencePieceTokenizer) { self.tokenizer = tokenizer }

    /// Adds a token and returns the text that became final.
    public mutating func append(_ id: Int) -> String {
        ids.append(id)
        let text = tokenizer.decode(ids)
        if text.hasSuffix("\u{FFFD}") { return "" }
        guard text.hasPrefix(emitted) else {
            emitted = text
            return ""
        }
        let delta = String(text.dropFirst(emitted.count))
        emitted = text
        return delta
    }

    /// The full text decoded so far.
    public var text: String { tokenizer.decode(ids) }
}
