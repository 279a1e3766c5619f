import Foundation
import Imaging
import Kernels
import TokenMerging

// A conversation about one image. The image is encoded once and the prompt prefix (BOS,
// system text, the first turn up to and including the image tokens) is prefilled once; every
// question appends its turn to the KV cache and reuses everything before it.
//
// Token sequence after n turns (what a from-scratch run would be fed):
//   prefix | rest of first_turn(q1) | a1 | end_of_answer | next_turn(q2) | a2 | end_of_answer | …
// where `end_of_answer` "</s>" is the EOS token. Each chunk of text is encoded on its own, as
// `tokenizePrompt` does for the single-question prompt, so the first turn is token for token the
// prompt `llava ask` builds.
//
// A question-aware reducer (CDPruner) chooses the visual tokens by the question: loading an
// image then only reads and preprocesses it, and the first question after it selects the tokens
// (the image is encoded and the prefix prefilled with that turn). Later turns and `clear()` keep
// those tokens; a new image starts over.

public enum ChatError: Error, CustomStringConvertible, Equatable {
    case noImage
    case templateOrder(template: String)
    case contextFull(needed: Int, context: Int)

    public var description: String {
        switch self {
        case .noImage:
            return "no image loaded (load one with /image PATH)"
        case .templateOrder(let name):
            return "template \(name): first_turn must place <image> before {question} for a chat (the image prefix is reused across turns)"
        case .contextFull(let needed, let context):
            return "the context is full: the conversation needs \(needed) positions but the model has \(context); /clear starts over from the image"
        }
    }
}

/// What loading an image cost.
public struct ChatImageInfo: Sendable {
    public var imageMs: Double
    public var visionMs: Double
    public var visualTokens: Int
    /// Tokens of the prompt prefix (BOS, system, first turn up to the image, image tokens).
    public var prefixTokens: Int
    public var prefixMs: Double
    /// The image waits for the first question to choose its visual tokens (question-aware
    /// reducers): nothing was encoded or prefilled yet, and `visualTokens` is the planned count.
    public var waitsForQuestion = false
}

/// One answered question: the generation (its first logits are those after the whole
/// conversation so far) and where the conversation stands.
public struct ChatTurn: Sendable {
    public var generation: Generation
    /// Tokens fed before generating: what was still missing from the cache (the end of the
    /// previous answer) plus this turn's question.
    public var promptTokens: Int
    /// Length of the conversation in tokens after this turn, and the model's context.
    public var contextUsed: Int
    public var context: Int
}

public final class ChatSession {
    public let pipeline: LlavaPipeline
    public let template: ConversationTemplate
    public let imageMode: ImageMode
    public let merge: VisionMergeSettings
    public var options: GenerationOptions

    public private(set) var image: EncodedImage?
    public private(set) var imagePath: String?
    /// The preprocessed image a question-aware reducer is waiting to encode with the first question.
    private var pendingPixels: [Float]?
    /// The conversation as token ids: the prefix, then question, answer and end of answer per turn.
    public private(set) var history: [Int] = []
    /// Tokens of the image prefix at the start of `history`.
    public private(set) var prefixLength = 0
    /// Questions answered since the image was loaded or the conversation cleared.
    public private(set) var turns = 0
    public let cache: KVCache

    /// The first turn's text before the image placeholder (with it) and after it.
    let headText: String
    let firstTurnTail: String
    /// Token ids closing each answer (`end_of_answer`, "</s>" being EOS).
    let endOfAnswerIds: [Int]

    var model: LlavaForConditionalGeneration { pipeline.model }
    /// Positions the conversation may use (`options.contextSize`, or the model's context).
    public let context: Int

    public init(pipeline: LlavaPipeline, template: ConversationTemplate, imageMode: ImageMode = .crop,
                merge: VisionMergeSettings = .none, options: GenerationOptions = GenerationOptions()) throws {
        if merge.options.method.site == .decoder { throw LlavaError.fastvInChat }
        self.pipeline = pipeline
        self.template = template
        self.imageMode = imageMode
        self.merge = merge
        self.options = options
        context = try pipeline.model.contextSize(options)
        let parts = template.firstTurn.components(separatedBy: ConversationTemplate.imagePlaceholder)
        guard parts.count == 2, !parts[0].contains("{question}"), !template.system.contains("{question}"),
              !template.system.contains(ConversationTemplate.imagePlaceholder) else {
            throw ChatError.templateOrder(template: template.name)
        }
        headText = template.system + parts[0] + ConversationTemplate.imagePlaceholder
        firstTurnTail = parts[1]
        endOfAnswerIds = try template.endOfAnswerIds(pipeline.model.tokenizer)
        let model = pipeline.model
        cache = model.languageModel.makeCache(capacity: min(context, model.fullImageTokens + 512))
    }

    /// Decodes, preprocesses and encodes an image file, then starts a new conversation about it.
    @discardableResult
    public func load(imagePath path: String) throws -> ChatImageInfo {
        if merge.readsQuestion {
            let start = DispatchTime.now()
            let pixels = try pipeline.pixels(imagePath: path, mode: imageMode)
            let planned = try model.plannedVisualTokens(merge) ?? model.fullImageTokens
            reset()
            pendingPixels = pixels
            imagePath = path
            return ChatImageInfo(imageMs: elapsedMs(since: start), visionMs: 0, visualTokens: planned, prefixTokens: 0,
                                 prefixMs: 0, waitsForQuestion: true)
        }
        let encoded = try pipeline.encode(imagePath: path, mode: imageMode, merge: merge)
        return try load(encoded, path: path)
    }

    private func reset() {
        cache.truncate(to: 0)
        image = nil
        imagePath = nil
        pendingPixels = nil
        history = []
        prefixLength = 0
        turns = 0
    }

    /// Starts a new conversation about an already encoded image: prefills the prefix.
    @discardableResult
    public func load(_ encoded: EncodedImage, path: String) throws -> ChatImageInfo {
        let ids = try tokenizePrompt(headText, tokenizer: model.tokenizer, imageTokenId: model.config.imageTokenIndex,
                                     imageTokens: encoded.visualTokens)
        guard ids.count < context else { throw ChatError.contextFull(needed: ids.count + 1, context: context) }
        let start = DispatchTime.now()
        reset()
        _ = model.languageModel.forward(try model.inputEmbeddings(ids, imageEmbeddings: encoded.embeddings), cache: cache)
        image = encoded
        imagePath = path
        history = ids
        prefixLength = ids.count
        return ChatImageInfo(imageMs: encoded.imageMs, visionMs: encoded.visionMs, visualTokens: encoded.visualTokens,
                             prefixTokens: ids.count, prefixMs: elapsedMs(since: start))
    }

    /// Back to the image prefix: the cache is truncated, the image is not encoded again.
    public func clear() {
        cache.truncate(to: prefixLength)
        history = Array(history.prefix(prefixLength))
        turns = 0
    }

    /// The token ids of the next question's turn (without what the cache still lacks).
    public func turnIds(question: String) throws -> [Int] {
        let text = turns == 0
            ? firstTurnTail.replacingOccurrences(of: "{question}", with: ConversationTemplate.clean(question))
            : template.followUp(question: question)
        return text.isEmpty ? [] : try model.tokenizer.encode(text)
    }

    /// Answers `question`, appending its turn to the conversation. `onText` receives the answer
    /// as it is generated. Throws `ChatError.contextFull` (leaving the conversation unchanged)
    /// when the question does not fit.
    public func ask(_ question: String, onText: ((String) -> Void)? = nil) throws -> ChatTurn {
        if let pixels = pendingPixels, let path = imagePath {
            // The first question chooses the visual tokens: encode and prefill now.
            let start = DispatchTime.now()
            let (embeddings, sources) = try model.encodeImage(pixels: pixels, merge: merge, question: question)
            let encoded = EncodedImage(embeddings: embeddings, sources: sources, imageMs: 0, visionMs: elapsedMs(since: start),
                                       cut: nil, aloneMs: 0)
            try load(encoded, path: path)
        }
        guard image != nil else { throw ChatError.noImage }
        let turn = try turnIds(question: question)
        precondition(cache.length <= history.count, "the KV cache holds more positions than the conversation")
        let pending = Array(history[cache.length...]) + turn
        let needed = cache.length + pending.count + 1
        guard needed <= context else { throw ChatError.contextFull(needed: needed, context: context) }
        var turnOptions = options
        turnOptions.seed = options.seed &+ UInt64(turns)
        let g = try model.generate(ids: pending, imageEmbeddings: nil, cache: cache, earlierIds: Array(history[..<cache.length]),
                                   options: turnOptions, onText: onText)
        let answer = g.stopReason == .eos ? Array(g.generatedIds.dropLast()) : g.generatedIds
        history += turn + answer + endOfAnswerIds
        // An answer cut by the context leaves no room for what closes it: the conversation is
        // full (the next question is refused) and counts no more positions than the context.
        if history.count > context { history = Array(history.prefix(context)) }
        turns += 1
        return ChatTurn(generation: g, promptTokens: pending.count, contextUsed: history.count, context: context)
    }
}
