import Foundation
import LLaVA
import TokenMerging

/// The model behind `llava serve`: turns a chat-completions request into run settings, an image
/// and a question, and answers on one serial queue, so requests run one at a time in arrival
/// order. The image cache is shared by every request.
final class ServeEngine: @unchecked Sendable {
    /// What the command line set: the defaults of every request.
    struct Defaults {
        var runSettings: RunSettings
        var mergeFlags: MergeFlags
        var generationFlags: GenerationFlags
        /// Folder (symlinks resolved) that file:// image URLs must lie in; nil refuses them.
        var allowedMediaPath: String?
    }

    /// One question of the conversation, with the answer it got (nil for the question to answer).
    struct Turn: Equatable {
        var question: String
        var answer: String?
    }

    /// A checked request, ready to answer.
    struct Job {
        var turns: [Turn]
        /// The last turn's question: the one to answer.
        var question: String { turns.last?.question ?? "" }
        var image: QuestionAnswerer.Image?
        var settings: RunSettings
        var stop: [String]
    }

    struct Completion {
        var text: String
        var finishReason: String
        var usage: Usage
        var timings: ServeTimings
    }

    enum Event {
        case text(String)
        case done(Completion)
        case failed(Error)
    }

    let pipeline: LlavaPipeline
    let template: ConversationTemplate
    let defaults: Defaults
    let modelID: String
    let cache = ImageCache()
    let metrics: ServeMetrics
    private let queue = DispatchQueue(label: "llava.serve.engine")
    /// Token ids closing each earlier answer (`end_of_answer`, "</s>" being EOS).
    private let endOfAnswerIds: [Int]

    init(pipeline: LlavaPipeline, template: ConversationTemplate, defaults: Defaults, metrics: ServeMetrics) throws {
        self.pipeline = pipeline
        self.template = template
        self.defaults = defaults
        self.modelID = defaults.runSettings.modelID
        self.metrics = metrics
        endOfAnswerIds = try template.endOfAnswerIds(pipeline.model.tokenizer)
    }

    // MARK: Checking a request

    /// The request's settings, image and question, or the 400 it earns.
    func prepare(_ request: ChatCompletionRequest) throws -> Job {
        let turns = Self.turns(request.messages)
        guard let last = turns.last else {
            throw ServeError.invalid("messages: no user message (the last one is the question)")
        }
        if last.question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ServeError.invalid("messages: the last user message has no text")
        }
        let urls = request.messages.filter { $0.role == "user" }.flatMap(\.imageURLs)
        if urls.count > 1 {
            throw ServeError.invalid("messages: \(urls.count) images; this server takes at most one image per request")
        }
        var settings = defaults.runSettings
        settings.merge = try mergeSettings(request)
        settings.generation = try generationOptions(request)
        return Job(turns: turns, image: try urls.first.map(image(from:)), settings: settings,
                   stop: request.stop.filter { !$0.isEmpty })
    }

    /// The conversation as turns: a user message opens one (consecutive ones are joined by a
    /// newline), an assistant message answers it; system and other roles are not part of the
    /// template's prompt, and whatever follows the last user message is left out.
    static func turns(_ messages: [ChatMessage]) -> [Turn] {
        var turns: [Turn] = []
        for message in messages {
            switch message.role {
            case "user":
                if let last = turns.last, last.answer == nil {
                    turns[turns.count - 1].question = last.question + "\n" + message.text
                } else {
                    turns.append(Turn(question: message.text))
                }
            case "assistant" where !turns.isEmpty:
                turns[turns.count - 1].answer = turns[turns.count - 1].answer.map { $0 + "\n" + message.text } ?? message.text
            default:
                continue
            }
        }
        if !turns.isEmpty { turns[turns.count - 1].answer = nil }
        return turns
    }

    /// The conversation in the template's multi-turn format: the first turn (with the image slot
    /// when there is an image) exactly as `llava ask` builds it, then per earlier answer its text,
    /// `end_of_answer` and the next question in `next_turn`. Each piece of text is encoded on its
    /// own, as `llava chat` does.
    func promptIds(_ turns: [Turn], imageTokens: Int?) throws -> [Int] {
        let model = pipeline.model
        var first = template
        if imageTokens == nil {
            first.firstTurn = first.firstTurn.replacingOccurrences(of: ConversationTemplate.imagePlaceholder + "\n", with: "")
                .replacingOccurrences(of: ConversationTemplate.imagePlaceholder, with: "")
        }
        var ids = try tokenizePrompt(first.firstPrompt(question: turns[0].question), tokenizer: model.tokenizer,
                                     imageTokenId: model.config.imageTokenIndex, imageTokens: imageTokens ?? 0)
        for (earlier, next) in zip(turns, turns.dropFirst()) {
            if let answer = earlier.answer, !answer.isEmpty { ids += try model.tokenizer.encode(answer) }
            ids += endOfAnswerIds
            ids += try model.tokenizer.encode(template.followUp(question: next.question))
        }
        return ids
    }

    /// The command line's merge settings, with the request's `merge`, `ratio` and `keep` in place of
    /// --merge, --ratio and --keep when it gives any of them (checked by the rules of those flags).
    func mergeSettings(_ request: ChatCompletionRequest) throws -> VisionMergeSettings {
        var flags = defaults.mergeFlags
        if request.merge != nil || request.ratio != nil || request.keep != nil {
            if let name = request.merge {
                guard let method = MergeMethod(rawValue: name) else {
                    throw ServeError.invalid("merge must be one of \(Reducers.names), got \"\(name)\"", code: "invalid_merge")
                }
                flags.merge = method
            }
            flags.ratio = request.ratio
            flags.keep = request.keep
        }
        let settings = flags.settings
        do {
            try settings.validate()
        } catch {
            throw ServeError.invalid(mergeFlagError(error, ratioFlag: "ratio", keepFlag: "keep").message, code: "invalid_merge")
        }
        do {
            _ = try pipeline.model.plannedVisualTokens(settings)
        } catch {
            throw ServeError.invalid("merge settings: \(error)", code: "invalid_merge")
        }
        let method = settings.options.method
        if method.needs.contains(.question), pipeline.model.questionEncoder == nil {
            throw ServeError.invalid(LlavaError.questionEncoderMissing(method).description, code: "invalid_merge")
        }
        return settings
    }

    /// The command line's decoding settings with the request's `max_tokens`, `temperature`,
    /// `top_p` and `seed`; without a seed anywhere, a random one.
    func generationOptions(_ request: ChatCompletionRequest) throws -> GenerationOptions {
        var options = defaults.generationFlags.options(seed: request.seed)
        if let n = request.maxTokens { options.maxTokens = n }
        if let t = request.temperature { options.sampling.temperature = t }
        if let p = request.topP { options.sampling.topP = p }
        do {
            try options.validate()
            _ = try pipeline.model.contextSize(options)
        } catch {
            throw ServeError.invalid("\(error)")
        }
        return options
    }

    /// A `data:image/…;base64,` URI or a file:// URL inside --allowed-media-path.
    func image(from url: String) throws -> QuestionAnswerer.Image {
        let lower = url.lowercased()
        if lower.hasPrefix("data:") {
            guard let comma = url.firstIndex(of: ","), lower.hasPrefix("data:image/"),
                  url[..<comma].lowercased().hasSuffix(";base64") else {
                throw ServeError.invalid("image_url: a data URI must be data:image/<type>;base64,<data>", code: "invalid_image")
            }
            guard let data = Data(base64Encoded: String(url[url.index(after: comma)...])) else {
                throw ServeError.invalid("image_url: the data URI's base64 is not valid", code: "invalid_image")
            }
            return .bytes([UInt8](data), name: "image_url")
        }
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            throw ServeError.invalid("image_url: the server fetches no URLs; send the picture as a data:image/…;base64, URI",
                                     code: "invalid_image")
        }
        if lower.hasPrefix("file:") {
            guard let root = defaults.allowedMediaPath else {
                throw ServeError.invalid("image_url: file URLs are refused (start the server with --allowed-media-path DIR)",
                                         code: "invalid_image")
            }
            guard let fileURL = URL(string: url), fileURL.isFileURL else {
                throw ServeError.invalid("image_url: not a file URL: \(url)", code: "invalid_image")
            }
            let path = fileURL.standardizedFileURL.resolvingSymlinksInPath().path
            guard path.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
                throw ServeError.invalid("image_url: \(fileURL.path) is outside the allowed media folder", code: "invalid_image")
            }
            return .file(path)
        }
        throw ServeError.invalid("image_url must be a data:image/…;base64, URI or a file:// URL", code: "invalid_image")
    }

    // MARK: Answering

    /// Queues the job; the stream gives its text as generated (cut at the first stop string),
    /// then `done` or `failed`.
    func submit(_ job: Job) -> AsyncStream<Event> {
        AsyncStream { continuation in
            queue.async {
                do {
                    let completion = try self.answer(job) { continuation.yield(.text($0)) }
                    continuation.yield(.done(completion))
                } catch {
                    continuation.yield(.failed(error))
                }
                continuation.finish()
            }
        }
    }

    private func answer(_ job: Job, onText: @escaping (String) -> Void) throws -> Completion {
        let answerer = QuestionAnswerer(pipeline: pipeline, settings: job.settings, template: template, cache: cache)
        let filter = StopFilter(job.stop)
        let emit: (String) -> Void = { piece in
            let out = filter.feed(piece)
            if !out.isEmpty { onText(out) }
        }
        let encoded = try job.image.map { try answerer.encode($0, question: job.question) }
        let image = encoded?.image
        let ids = try promptIds(job.turns, imageTokens: image?.visualTokens)
        let g: Generation
        do {
            g = try pipeline.model.generate(ids: ids, imageEmbeddings: image?.embeddings, options: job.settings.generation,
                                            cut: image?.cut, onText: emit)
        } catch PromptError.tooLong(let tokens, let context, _) {
            throw ServeError.invalid("the prompt is \(tokens) tokens but the model's context is \(context)",
                                     code: "context_length_exceeded")
        }
        let rest = filter.finish()
        if !rest.isEmpty { onText(rest) }
        let imageMs = (image?.imageMs ?? 0) + (image?.visionMs ?? 0)
        let completion = Completion(
            text: filter.text,
            finishReason: filter.stopped || g.stopReason == .eos ? "stop" : "length",
            usage: Usage(promptTokens: ids.count, completionTokens: g.generatedIds.count),
            timings: ServeTimings(promptMs: imageMs + g.prefillMs, firstTokenMs: imageMs + g.firstTokenMs,
                                  predictedMs: g.decodeMs, predictedPerSecond: g.decodeTokensPerSecond,
                                  visualTokens: image?.keptVisualTokens ?? 0, imageCacheHit: encoded?.hit ?? false))
        metrics.record(completion)
        return completion
    }
}

/// Cuts streamed text at the first of the stop strings: text that could still be the start of one
/// is held back until the next piece tells.
final class StopFilter {
    let stops: [String]
    /// Everything let through so far.
    private(set) var text = ""
    private var pending = ""
    private(set) var stopped = false

    init(_ stops: [String]) { self.stops = stops }

    /// The part of `piece` (with what was held back) that is certainly before any stop string.
    func feed(_ piece: String) -> String {
        guard !stopped else { return "" }
        pending += piece
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            stopped = true
            return release(String(pending[..<cut]), keeping: "")
        }
        var held = 0
        for stop in stops {
            for n in stride(from: min(stop.count - 1, pending.count), to: held, by: -1)
            where pending.hasSuffix(String(stop.prefix(n))) {
                held = n
                break
            }
        }
        return release(String(pending.dropLast(held)), keeping: String(pending.suffix(held)))
    }

    /// What was held back, at the end of the answer.
    func finish() -> String {
        stopped ? "" : release(pending, keeping: "")
    }

    private func release(_ out: String, keeping: String) -> String {
        pending = keeping
        text += out
        return out
    }
}
