import Foundation

/// Answers questions under one `RunSettings`: an image (a file, encoded bytes, or none) through
/// the image cache and the vision tower, then the question in the conversation template.
///
/// Every front end answers through it: `llava eval` over a question file, the benchmark runs,
/// the accuracy pass of `llava bench`, and any later front end such as a server. It belongs to
/// this module because it needs only the pipeline and the image cache; how an answer is
/// written down (LLaVA's answer-file lines, a server's response) is the front end's, made from
/// the Codable `Answer` it returns.
public final class QuestionAnswerer: @unchecked Sendable {
    /// The image a question is about.
    public enum Image: Sendable, Equatable {
        /// An image file (named pipes are read to their end).
        case file(String)
        /// Encoded image bytes (PNG, JPEG, …); `name` stands for the image in errors.
        case bytes([UInt8], name: String)
    }

    /// One answered question.
    public struct Answer: Codable, Sendable, Equatable {
        public var text: String
        /// Visual tokens the language model received (0 without an image).
        public var visualTokens: Int
        public var generatedTokens: Int
        public var stopReason: StopReason
        /// SHA-256 of the image's bytes, lowercase hex (nil without an image).
        public var imageDigest: String?
        /// True when the image's embeddings came from the cache (the vision tower did not run).
        public var cacheHit: Bool
        public var timings: AskTimings

        enum CodingKeys: String, CodingKey {
            case text, visualTokens = "visual_tokens", generatedTokens = "generated_tokens", stopReason = "stop_reason"
            case imageDigest = "image_sha256", cacheHit = "image_cache_hit", timings
        }
    }

    public let pipeline: LlavaPipeline
    public let settings: RunSettings
    /// `settings.template`, loaded.
    public let template: ConversationTemplate
    public let cache: ImageCache

    /// `template` is `settings.template` as the caller loaded it.
    public init(pipeline: LlavaPipeline, settings: RunSettings, template: ConversationTemplate, cache: ImageCache) {
        self.pipeline = pipeline
        self.settings = settings
        self.template = template
        self.cache = cache
    }

    /// Loads `settings.template`.
    public convenience init(pipeline: LlavaPipeline, settings: RunSettings, cache: ImageCache) throws {
        try self.init(pipeline: pipeline, settings: settings, template: ConversationTemplate.load(settings.template),
                      cache: cache)
    }

    /// Answers `question` about `image` (nil: a text-only question).
    public func answer(_ question: String, image: Image?) throws -> Answer {
        try answer(question, encoded: image.map { try encode($0, question: question) })
    }

    /// The image's embeddings under these settings, from the cache when it holds them.
    /// `question` is what a question-aware reducer chooses the visual tokens by.
    public func encode(_ image: Image, question: String) throws -> CachedImage {
        switch image {
        case .file(let path):
            return try pipeline.encode(imagePath: path, mode: settings.imageMode, merge: settings.merge,
                                       question: question, cache: cache)
        case .bytes(let bytes, let name):
            return try pipeline.encode(imageBytes: bytes, name: name, mode: settings.imageMode, merge: settings.merge,
                                       question: question, cache: cache)
        }
    }

    /// Answers `question` about an image `encode` gave (nil: a text-only question).
    public func answer(_ question: String, encoded: CachedImage?) throws -> Answer {
        let result = try encoded.map {
            try pipeline.ask(image: $0.image, question: question, template: template, options: settings.generation)
        } ?? pipeline.ask(question: question, template: template, options: settings.generation)
        return Answer(text: result.text, visualTokens: result.visualTokens, generatedTokens: result.generatedIds.count,
                      stopReason: result.stopReason, imageDigest: encoded?.digest, cacheHit: encoded?.hit ?? false,
                      timings: result.timings)
    }
}
