import FileAccess
import Foundation

/// CLIP's byte-level BPE tokenizer, as transformers' `CLIPTokenizerFast` runs it (the tokenizers
/// library, with the pipeline `tokenization_clip.py` builds from `vocab.json` and `merges.txt`):
///
/// 1. `<|startoftext|>` and `<|endoftext|>` written in the text are found first, on the raw text
///    (special added tokens, not normalized), and become their ids; the text between them goes
///    through the remaining steps piece by piece.
/// 2. Normalizer: NFC, every run of White_Space characters → one space, then each scalar
///    lower-cased on its own (Unicode's full mapping without context: "Σ" → "σ" even at the end
///    of a word, "İ" → "i" + U+0307; Python's `str.lower`, used by OpenAI's original tokenizer,
///    differs there).
/// 3. Pre-tokenizer: the pieces are the matches of CLIP's expression
///    `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
///    (everything else, the spaces, is dropped). The engine that runs it (Oniguruma) has the
///    Unicode 16.0 tables, so a scalar assigned later counts as neither letter nor number here.
///    The byte-level pre-tokenizer that follows splits the pieces again with GPT-2's expression,
///    which changes only the two literal pieces: "<|endoftext|>" (written in another case, so
///    not taken as the special token in step 1) becomes "<|", "endoftext", "|>"; the literal
///    still decides where the pieces around it end.
/// 4. Each piece's UTF-8 bytes become the printable symbols of `bytes_to_unicode`, the last one
///    with `</w>` appended; a symbol missing from the vocabulary becomes `<|endoftext|>` (the
///    unknown token, one per symbol). Then the merges of `merges.txt` apply, lowest rank first,
///    every occurrence left to right.
/// 5. `<|startoftext|>` in front, `<|endoftext|>` at the end. No truncation: a text of more than
///    77 tokens keeps them all (CDPruner cuts them into segments itself).
public final class CLIPTokenizer: Sendable {
    public static let startOfText = "<|startoftext|>"
    public static let endOfText = "<|endoftext|>"
    static let endOfWord = "</w>"

    /// Ids of `<|startoftext|>` (BOS) and `<|endoftext|>` (EOS, also the unknown token).
    public let bosId: Int
    public let eosId: Int
    /// One more than the largest id in the vocabulary.
    public let vocabularySize: Int
    /// Merge rank and result for a pair of symbol ids (key: left << 32 | right).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Ids of each byte's symbol inside a word and at its end (with `</w>`); -1 when absent.
    private let byteIds: [Int32]
    private let finalByteIds: [Int32]
    private let specialTokens: [(scalars: [Unicode.Scalar], id: Int)]

    /// A tokenizer from the vocabulary and the merges in rank order. Throws a description of the
    /// first problem (`vocab.json` or `merges.txt` named by the caller).
    public init(vocabulary: [String: Int], merges pairs: [(String, String)]) throws {
        guard let bos = vocabulary[Self.startOfText], let eos = vocabulary[Self.endOfText] else {
            throw CLIPTokenizerError(path: "vocab.json", problem: "has no \(Self.startOfText) or \(Self.endOfText) entry")
        }
        guard let largest = vocabulary.values.max(), largest < Int(Int32.max), vocabulary.values.allSatisfy({ $0 >= 0 }) else {
            throw CLIPTokenizerError(path: "vocab.json", problem: "ids must be between 0 and \(Int32.max - 1)")
        }
        bosId = bos
        eosId = eos
        vocabularySize = largest + 1
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(pairs.count)
        for (rank, (a, b)) in pairs.enumerated() {
            guard let left = vocabulary[a], let right = vocabulary[b], let merged = vocabulary[a + b] else {
                throw CLIPTokenizerError(path: "merges.txt", problem: "merge \(rank + 1) \"\(a) \(b)\" uses a token that is not in vocab.json")
            }
            // A repeated pair keeps its last rank, as the tokenizers library's map does.
            table[Self.key(Int32(left), Int32(right))] = (Int32(rank), Int32(merged))
        }
        merges = table
        let symbols = Self.byteSymbols.map { String(Character($0)) }
        byteIds = symbols.map { Int32(vocabulary[$0] ?? -1) }
        finalByteIds = symbols.map { Int32(vocabulary[$0 + Self.endOfWord] ?? -1) }
        specialTokens = [(Array(Self.startOfText.unicodeScalars), bos), (Array(Self.endOfText.unicodeScalars), eos)]
    }

    /// Reads `vocab.json` (a JSON object token → id) and `merges.txt` (one "left right" pair per
    /// line in rank order; lines starting with `#version` and empty lines are skipped).
    public static func load(vocabularyPath: String, mergesPath: String) throws -> CLIPTokenizer {
        let vocabulary: [String: Int]
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: Data(try Self.read(vocabularyPath)))
        } catch let error as CLIPTokenizerError {
            throw error
        } catch {
            throw CLIPTokenizerError(path: vocabularyPath, problem: "is not a JSON object of tokens and integer ids")
        }
        guard let text = String(bytes: try Self.read(mergesPath), encoding: .utf8) else {
            throw CLIPTokenizerError(path: mergesPath, problem: "is not UTF-8 text")
        }
        var pairs: [(String, String)] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.isEmpty || line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw CLIPTokenizerError(path: mergesPath, problem: "line \(number + 1) is not two tokens separated by one space")
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        do { return try CLIPTokenizer(vocabulary: vocabulary, merges: pairs) } catch let error as CLIPTokenizerError {
            throw CLIPTokenizerError(path: error.path == "merges.txt" ? mergesPath : vocabularyPath, problem: error.problem)
        }
    }

    private static func read(_ path: String) throws -> [UInt8] {
        do { return try FileAccess.read(path, limit: FileAccess.configByteLimit) } catch let error as FileAccessError {
            throw CLIPTokenizerError(path: error.path, problem: error.reason)
        }
    }

    /// The ids of `text`: BOS, the text's tokens, EOS (`input_ids` of the fast tokenizer).
    public func encode(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var ids = [bosId]
        var start = 0, i = 0
        while i < scalars.count {
            if scalars[i] == "<", let special = specialTokens.first(where: { matches($0.scalars, in: scalars, at: i) }) {
                encodeText(scalars[start..<i], into: &ids)
                ids.append(special.id)
                i += special.scalars.count
                start = i
            } else {
                i += 1
            }
        }
        encodeText(scalars[start...], into: &ids)
        ids.append(eosId)
        return ids
    }

    private func matches(_ token: [Unicode.Scalar], in scalars: [Unicode.Scalar], at i: Int) -> Bool {
        token.count <= scalars.count - i && zip(token, scalars[i...]).allSatisfy { $0 == $1 }
    }

    /// Steps 2 to 4 for text without special tokens.
    private func encodeText(_ raw: ArraySlice<Unicode.Scalar>, into ids: inout [Int]) {
        if raw.isEmpty { return }
        let text = Self.normalized(raw)
        for piece in Self.pieces(text) {
            encodePiece(text[piece], into: &ids)
        }
    }

    /// NFC, White_Space runs → " ", each scalar lower-cased.
    static func normalized(_ raw: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: raw)
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(raw.count)
        var inSpace = false
        for s in String(view).precomposedStringWithCanonicalMapping.unicodeScalars {
            if s.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if s.isASCII {
                out.append(s.value >= 65 && s.value <= 90 ? Unicode.Scalar(s.value + 32)! : s)
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// How the pre-tokenizer's expression sees a scalar.
    enum ScalarClass: Equatable { case space, letter, number, other }

    /// The newest Unicode version the pre-tokenizer's `\p{L}` and `\p{N}` know.
    static let regexUnicodeVersion = (major: 16, minor: 0)

    static func scalarClass(_ s: Unicode.Scalar) -> ScalarClass {
        if s.isASCII {
            switch s.value {
            case 9...13, 32: return .space
            case 48...57: return .number
            case 65...90, 97...122: return .letter
            default: return .other
            }
        }
        let p = s.properties
        if p.isWhitespace { return .space }
        guard let age = p.age, (age.major, age.minor) <= regexUnicodeVersion else { return .other }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private static let contractions: [[Unicode.Scalar]] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].map { Array($0.unicodeScalars) }
    private static let literalTokens: [[Unicode.Scalar]] = [startOfText, endOfText].map { Array($0.unicodeScalars) }

    /// The ranges of the pre-tokenizer's pieces in normalized text (step 3): at each position the
    /// first alternative of CLIP's expression that matches, spaces skipped; a literal
    /// `<|startoftext|>` or `<|endoftext|>` in three pieces, as GPT-2's expression cuts it.
    static func pieces(_ text: [Unicode.Scalar]) -> [Range<Int>] {
        let classes = text.map(scalarClass)
        var out: [Range<Int>] = []
        var i = 0
        func run(_ kind: ScalarClass, from start: Int) -> Int {
            var end = start + 1
            while end < text.count && classes[end] == kind { end += 1 }
            return end
        }
        func literal(_ options: [[Unicode.Scalar]]) -> Int? {
            options.first { $0.count <= text.count - i && zip($0, text[i...]).allSatisfy { $0 == $1 } }.map { i + $0.count }
        }
        while i < text.count {
            let end: Int
            switch classes[i] {
            case .space: i += 1; continue
            case .letter: end = run(.letter, from: i)
            case .number: end = i + 1
            case .other:
                if let literalEnd = literal(literalTokens) {
                    out += [i..<(i + 2), (i + 2)..<(literalEnd - 2), (literalEnd - 2)..<literalEnd]
                    i = literalEnd
                    continue
                }
                end = literal(contractions) ?? run(.other, from: i)
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    /// Step 4: one piece's bytes as symbols, then the merges.
    private func encodePiece(_ piece: ArraySlice<Unicode.Scalar>, into ids: inout [Int]) {
        var bytes: [UInt8] = []
        for s in piece { UTF8.encode(s) { bytes.append($0) } }
        var symbols: [Int32] = bytes.indices.map { k in
            let id = (k == bytes.count - 1 ? finalByteIds : byteIds)[Int(bytes[k])]
            return id >= 0 ? id : Int32(eosId)
        }
        while symbols.count > 1 {
            var best: (rank: Int32, id: Int32)? = nil
            var at = -1
            for j in 0..<(symbols.count - 1) {
                if let m = merges[Self.key(symbols[j], symbols[j + 1])], best == nil || m.rank < best!.rank {
                    best = m
                    at = j
                }
            }
            guard let best else { break }
            let left = symbols[at], right = symbols[at + 1]
            var merged: [Int32] = Array(symbols[..<at])
            merged.reserveCapacity(symbols.count - 1)
            var j = at
            while j < symbols.count {
                if j + 1 < symbols.count && symbols[j] == left && symbols[j + 1] == right {
                    merged.append(best.id)
                    j += 2
                } else {
                    merged.append(symbols[j])
                    j += 1
                }
            }
            symbols = merged
        }
        ids.append(contentsOf: symbols.lazy.map { Int($0) })
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// CLIP's (GPT-2's) `bytes_to_unicode`: printable bytes stand for themselves, the other 68
    /// take the scalars from U+0100 on, in byte order.
    static let byteSymbols: [Unicode.Scalar] = {
        let printable = Set(Array(33...126) + Array(161...172) + Array(174...255))
        var next: UInt32 = 256
        return (0..<256).map { b in
            if printable.contains(b) { return Unicode.Scalar(UInt8(b)) }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()
}

/// A problem with `vocab.json` or `merges.txt`, in one line naming the file.
public struct CLIPTokenizerError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}
