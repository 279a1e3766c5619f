import FileAccess
import Foundation
import Tokenizer

public enum PromptError: Error, CustomStringConvertible {
    case unknownTemplate(String, available: [String])
    case invalidTemplate(String, String)
    case tooLong(tokens: Int, context: Int, configPath: String)

    public var description: String {
        switch self {
        case .unknownTemplate(let name, let available):
            "unknown template \"\(name)\" (available: \(available.joined(separator: ", ")); or give a path to a template .json)"
        case .invalidTemplate(let path, let why): "\(path): \(why)"
        case .tooLong(let tokens, let context, let configPath):
            "the prompt is \(tokens) tokens but the model's context is \(context) (max_position_embeddings in \(configPath))"
        }
    }
}

/// A conversation template from `Prompts/templates/*.json`.
///
/// The first prompt is `system + first_turn` with `{question}` filled in; `<image>` marks where
/// the image tokens go. Later turns of a chat append `next_turn`. `end_of_answer` is "</s>"
/// when the conversation closes each answer with the end-of-sequence token.
public struct ConversationTemplate: Decodable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var system: String
    public var firstTurn: String
    public var nextTurn: String
    public var endOfAnswer: String

    public static let imagePlaceholder = "<image>"

    enum CodingKeys: String, CodingKey {
        case name, description, system
        case firstTurn = "first_turn", nextTurn = "next_turn", endOfAnswer = "end_of_answer"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        system = try c.decodeIfPresent(String.self, forKey: .system) ?? ""
        firstTurn = try c.decode(String.self, forKey: .firstTurn)
        nextTurn = try c.decodeIfPresent(String.self, forKey: .nextTurn) ?? "USER: {question} ASSISTANT:"
        endOfAnswer = try c.decodeIfPresent(String.self, forKey: .endOfAnswer) ?? ""
    }

    /// Loads a template by name (from Prompts/templates) or by file path.
    public static func load(_ nameOrPath: String) throws -> ConversationTemplate {
        let fm = FileManager.default
        let path: String
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".json") {
            guard fm.fileExists(atPath: nameOrPath) else { throw PromptError.invalidTemplate(nameOrPath, "no such file") }
            path = nameOrPath
        } else {
            let dir = PackageResources.path("Prompts/templates") ?? ""
            path = (dir as NSString).appendingPathComponent(nameOrPath + ".json")
            guard !dir.isEmpty, fm.fileExists(atPath: path) else {
                throw PromptError.unknownTemplate(nameOrPath, available: availableNames())
            }
        }
        let data: Data
        do { data = Data(try FileAccess.read(path, limit: FileAccess.configByteLimit)) } catch let error as FileAccessError {
            throw PromptError.invalidTemplate(path, error.reason)
        }
        let template: ConversationTemplate
        do { template = try JSONDecoder().decode(ConversationTemplate.self, from: data) } catch {
            throw PromptError.invalidTemplate(path, "not a template (expected JSON with name, first_turn, …)")
        }
        guard template.firstTurn.contains("{question}") else {
            throw PromptError.invalidTemplate(path, "first_turn has no {question}")
        }
        guard template.firstTurn.components(separatedBy: imagePlaceholder).count == 2 else {
            throw PromptError.invalidTemplate(path, "first_turn must contain <image> exactly once")
        }
        return template
    }

    public static func availableNames() -> [String] {
        guard let dir = PackageResources.path("Prompts/templates"),
              let files = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The text of the first prompt (with the `<image>` placeholder still in it).
    public func firstPrompt(question: String) -> String {
        system + firstTurn.replacingOccurrences(of: "{question}", with: Self.clean(question))
    }

    public func followUp(question: String) -> String {
        nextTurn.replacingOccurrences(of: "{question}", with: Self.clean(question))
    }

    /// A user's question cannot place extra image slots.
    static func clean(_ question: String) -> String {
        question.replacingOccurrences(of: imagePlaceholder, with: "")
    }
}

/// Tokenises a prompt as the original LLaVA code does: the text is split at `<image>`, each
/// chunk is encoded on its own with SentencePiece defaults (so each gets the dummy-prefix
/// space), BOS goes once at the start, and the placeholder becomes `imageTokens` copies of
/// `imageTokenId`.
public func tokenizePrompt(_ text: String, tokenizer: some PromptTokenizer, imageTokenId: Int, imageTokens: Int, addBOS: Bool = true) throws -> [Int] {
    let placeholders = text.components(separatedBy: ConversationTemplate.imagePlaceholder).count - 1
    return try promptChunks(text, tokenizer: tokenizer, imagePositions: Array(repeating: imageTokens, count: placeholders),
                            addBOS: addBOS).ids(imageTokenId: imageTokenId)
}

extension ConversationTemplate {
    /// The token ids that close an answer in a conversation: `end_of_answer` encoded piece by
    /// piece, with each "</s>" as the EOS id.
    public func endOfAnswerIds(_ tokenizer: SentencePieceTokenizer) throws -> [Int] {
        var closing: [Int] = []
        for (i, piece) in endOfAnswer.components(separatedBy: "</s>").enumerated() {
            if i > 0 { closing.append(tokenizer.eosId) }
            if !piece.isEmpty { closing += try tokenizer.encode(piece) }
        }
        return closing
    }
}
