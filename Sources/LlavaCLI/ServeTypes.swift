import Foundation

// The JSON of `llava serve`: OpenAI's chat-completions request, response, stream chunk and
// error object, plus the server's own fields (`merge`, `ratio`, `keep` in the request,
// `timings` in the response).

/// A `POST /v1/chat/completions` body.
struct ChatCompletionRequest: Decodable {
    var model: String?
    var messages: [ChatMessage]
    var maxTokens: Int?
    var temperature: Float?
    var topP: Float?
    var seed: UInt64?
    var stop: [String]
    var stream: Bool
    /// Per-request visual-token reduction (the command line's --merge, --ratio, --keep).
    var merge: String?
    var ratio: Double?
    var keep: Int?

    enum CodingKeys: String, CodingKey {
        case model, messages, maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
        case temperature, topP = "top_p", seed, stop, stream, merge, ratio, keep
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        messages = try c.decode([ChatMessage].self, forKey: .messages)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
            ?? c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        temperature = try c.decodeIfPresent(Float.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Float.self, forKey: .topP)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        if let one = try? c.decodeIfPresent(String.self, forKey: .stop) {
            stop = [one]
        } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop) ?? []
        }
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
        merge = try c.decodeIfPresent(String.self, forKey: .merge)
        ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
        keep = try c.decodeIfPresent(Int.self, forKey: .keep)
    }
}

/// One message: `content` is a string or a list of parts.
struct ChatMessage: Decodable {
    var role: String
    var parts: [ContentPart]

    enum CodingKeys: String, CodingKey { case role, content }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        if try !c.contains(.content) || c.decodeNil(forKey: .content) {
            parts = []
        } else if let text = try? c.decode(String.self, forKey: .content) {
            parts = [.text(text)]
        } else {
            parts = try c.decode([ContentPart].self, forKey: .content)
        }
    }

    /// The text parts, joined by newlines.
    var text: String {
        parts.compactMap { if case .text(let t) = $0 { t } else { nil } }.joined(separator: "\n")
    }

    var imageURLs: [String] {
        parts.compactMap { if case .imageURL(let url) = $0 { url } else { nil } }
    }
}

/// A content part: `{"type": "text", "text": …}` or `{"type": "image_url", "image_url": {"url": …}}`.
enum ContentPart: Decodable, Equatable {
    case text(String)
    case imageURL(String)

    enum CodingKeys: String, CodingKey { case type, text, imageURL = "image_url" }
    struct ImageURL: Decodable { var url: String }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "text":
            self = .text(try c.decode(String.self, forKey: .text))
        case "image_url":
            if let url = try? c.decode(String.self, forKey: .imageURL) {
                self = .imageURL(url)
            } else {
                self = .imageURL(try c.decode(ImageURL.self, forKey: .imageURL).url)
            }
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c,
                                                   debugDescription: "unknown content part type \"\(type)\" (text or image_url)")
        }
    }
}

/// The `usage` object; prompt tokens count the image's positions.
struct Usage: Encodable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int { promptTokens + completionTokens }

    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
    }
}

/// The server's `timings` object (llama.cpp's server names where it has them).
struct ServeTimings: Encodable {
    var promptMs: Double
    var firstTokenMs: Double
    var predictedMs: Double
    var predictedPerSecond: Double
    var visualTokens: Int
    var imageCacheHit: Bool

    enum CodingKeys: String, CodingKey {
        case promptMs = "prompt_ms", firstTokenMs = "first_token_ms", predictedMs = "predicted_ms"
        case predictedPerSecond = "predicted_per_second", visualTokens = "visual_tokens", imageCacheHit = "image_cache_hit"
    }
}

struct AssistantMessage: Encodable {
    var role = "assistant"
    var content: String
}

/// A `chat.completion` response.
struct ChatCompletionResponse: Encodable {
    struct Choice: Encodable {
        var index = 0
        var message: AssistantMessage
        var finishReason: String
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
    var timings: ServeTimings
}

/// A `chat.completion.chunk` of a streamed response.
struct ChatCompletionChunk: Encodable {
    struct Delta: Encodable {
        var role: String?
        var content: String?
    }
    struct Choice: Encodable {
        var index = 0
        var delta: Delta
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason) // null until the last chunk
        }
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    var timings: ServeTimings?
}

/// OpenAI's error object: `{"error": {"message", "type", "code"}}`.
struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var message: String
        var type: String
        var code: String?
        var param: String?
    }
    var error: Detail
}

/// `GET /v1/models`.
struct ModelList: Encodable {
    struct Model: Encodable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "llava"
        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
    }
    var object = "list"
    var data: [Model]
}

/// A request the server refuses, with its HTTP status and OpenAI error type.
struct ServeError: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var type: String
    var code: String?

    static func invalid(_ message: String, code: String? = nil) -> ServeError {
        ServeError(status: 400, message: message, type: "invalid_request_error", code: code)
    }

    var description: String { message }

    var body: ErrorBody { ErrorBody(error: .init(message: message, type: type, code: code)) }
}

extension ServeError {
    /// A decoding failure in a sentence that names the field: "max_tokens: expected Int: …".
    /// `body` tells JSON that does not parse from a number that does not fit its field.
    init(decoding error: Error, body: Data? = nil) {
        func path(_ keys: [CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        let message: String
        switch error as? DecodingError {
        case .typeMismatch(_, let context)? where context.codingPath.isEmpty:
            message = "the body must be a JSON object"
        case .typeMismatch(let type, let context)?:
            message = "\(path(context.codingPath)): expected \(type == Any.self ? "another type" : "\(type)"): \(context.debugDescription)"
        case .valueNotFound(_, let context)?:
            message = "\(path(context.codingPath)): missing value"
        case .keyNotFound(let key, let context)?:
            message = "\(path(context.codingPath + [key])): required field missing"
        case .dataCorrupted(let context)?:
            let at = path(context.codingPath)
            if !at.isEmpty {
                message = "\(at): \(context.debugDescription)"
            } else if let body, (try? JSONSerialization.jsonObject(with: body)) != nil {
                message = "a number in the body does not fit its field (a fraction, a negative or a too large number where a count or seed goes)"
            } else {
                message = "the body is not valid JSON"
            }
        default:
            message = "the body is not valid JSON"
        }
        self = .invalid(message, code: "invalid_json")
    }
}
