import Foundation
import Imaging
import Kernels
import TokenMerging

public typealias ImageMode = ImageProcessor.Mode

/// Timings of one question, in milliseconds (llama.cpp-style split).
public struct AskTimings: Codable, Sendable, Equatable {
    /// Decoding and preprocessing the image file.
    public var imageMs: Double = 0
    /// Vision tower (with merging) and projector.
    public var visionMs: Double = 0
    /// The batched prompt pass (text and image tokens).
    public var prefillMs: Double = 0
    /// From the request to the first generated token (image + vision + prefill + sampling).
    public var ttftMs: Double = 0
    /// Of `ttftMs`, the time the calling thread ran alone, outside pool jobs and BLAS calls that
    /// may use OpenBLAS's threads: what more threads cannot shorten (see `OneThreadClock`).
    public var ttftAloneMs: Double = 0
    /// Generating the remaining tokens.
    public var decodeMs: Double = 0
    public var decodeTokensPerS: Double = 0
    public var totalMs: Double = 0

    enum CodingKeys: String, CodingKey {
        case imageMs = "image_ms", visionMs = "vision_ms", prefillMs = "prefill_ms", ttftMs = "ttft_ms"
        case ttftAloneMs = "ttft_one_thread_ms"
        case decodeMs = "decode_ms", decodeTokensPerS = "decode_tokens_per_s", totalMs = "total_ms"
    }

    public init() {}
}

/// The answer to one question about one image, with everything needed to reproduce it.
public struct AskResult: Codable, Sendable {
    public var text: String
    public var promptIds: [Int]
    public var generatedIds: [Int]
    public var visualTokens: Int
    public var stopReason: StopReason
    public var timings: AskTimings

    enum CodingKeys: String, CodingKey {
        case text, promptIds = "prompt_ids", generatedIds = "generated_ids", visualTokens = "visual_tokens"
        case stopReason = "stop_reason", timings
    }
}

/// An image turned into language-model embeddings.
public struct EncodedImage: @unchecked Sendable {
    public let embeddings: Matrix
    /// Original patch indices held by each visual token (when source tracking was asked for).
    public let sources: [[Int]]?
    public let imageMs: Double
    public let visionMs: Double
    /// FastV's cut inside the language model, when the merge settings ask for it.
    public var cut: LanguageModelCut? = nil
    /// Of `imageMs + visionMs`, the time spent on the calling thread alone (see `OneThreadClock`).
    public var aloneMs: Double = 0
    public var visualTokens: Int { embeddings.rows }
    /// Visual tokens the language model's later layers see: FastV's budget, or every one.
    public var keptVisualTokens: Int { cut.map { min($0.keep, visualTokens) } ?? visualTokens }
}

/// The model plus its image preprocessing: image file + question → answer.
public final class LlavaPipeline: @unchecked Sendable {
    public let model: LlavaForConditionalGeneration
    public let imageConfig: ImageProcessorConfig

    public init(model: LlavaForConditionalGeneration) throws {
        self.model = model
        let path = (model.directory as NSString).appendingPathComponent("preprocessor_config.json")
        let side = model.config.vision.imageSize
        if FileManager.default.fileExists(atPath: path) {
            imageConfig = try ImageProcessorConfig(contentsOfFile: path)
        } else {
            imageConfig = ImageProcessorConfig(size: .shortestEdge(side), cropHeight: side, cropWidth: side)
        }
        let probe = ImageProcessor(config: imageConfig).outputSize(width: side + 3, height: side + 1)
        guard probe.height == side && probe.width == side else {
            throw PipelineError.processorSize(path: path, height: probe.height, width: probe.width, tower: side)
        }
    }

    public convenience init(directory: String, quantization: WeightQuantization = .none,
                            visionQuantization: WeightQuantization = .none,
                            progress: ((Int, Int) -> Void)? = nil) throws {
        try self.init(model: LlavaForConditionalGeneration(directory: directory, quantization: quantization,
                                                           visionQuantization: visionQuantization, progress: progress))
    }

    /// Decodes and preprocesses an image file into CHW pixels at the tower's resolution.
    public func pixels(imagePath: String, mode: ImageMode) throws -> [Float] {
        try pixels(decoding: RGBImage.readFile(imagePath), mode: mode, name: imagePath)
    }

    /// Decodes (after checking the image's declared size) and preprocesses an encoded image.
    public func pixels(decoding bytes: [UInt8], mode: ImageMode, name: String) throws -> [Float] {
        let image = try ImageProcessor(config: imageConfig, mode: mode).decode(bytes, name: name)
        return try pixels(image, mode: mode, name: name)
    }

    /// Preprocesses a decoded image; `name` is the file named in errors.
    public func pixels(_ image: RGBImage, mode: ImageMode, name: String = "<image>") throws -> [Float] {
        try processor.tiles(image, mode: mode, name: name).tiles[0]
    }

    /// The family's input processor: one tile per picture, prompts split at `<image>`.
    public var processor: LlavaProcessor { LlavaProcessor(imageConfig: imageConfig, tokenizer: model.tokenizer) }

    /// Image file → embeddings for the language model, merged as `merge` says.
    public func encode(imagePath: String, mode: ImageMode = .crop, merge: VisionMergeSettings = .none,
                       question: String? = nil) throws -> EncodedImage {
        let clock = OneThreadClock()
        let px = try pixels(imagePath: imagePath, mode: mode)
        let imageMs = clock.readMilliseconds().elapsed
        let t1 = DispatchTime.now()
        let (embeddings, sources) = try model.encodeImage(pixels: px, merge: merge, question: question)
        return EncodedImage(embeddings: embeddings, sources: sources, imageMs: imageMs, visionMs: elapsedMs(since: t1),
                            cut: try model.config.languageModelCut(merge), aloneMs: clock.readMilliseconds().alone)
    }

    /// Answers `question` about an encoded image.
    public func ask(image: EncodedImage, question: String, template: ConversationTemplate,
                    options: GenerationOptions, onText: ((String) -> Void)? = nil) throws -> AskResult {
        let ids = try model.promptIds(template: template, question: question, imageTokens: image.visualTokens)
        let g = try model.generate(ids: ids, imageEmbeddings: image.embeddings, options: options, cut: image.cut,
                                   onText: onText)
        var t = AskTimings()
        t.imageMs = image.imageMs
        t.visionMs = image.visionMs
        t.prefillMs = g.prefillMs
        t.ttftMs = image.imageMs + image.visionMs + g.firstTokenMs
        t.ttftAloneMs = image.aloneMs + g.firstTokenAloneMs
        t.decodeMs = g.decodeMs
        t.decodeTokensPerS = g.decodeTokensPerSecond
        t.totalMs = image.imageMs + image.visionMs + g.firstTokenMs + g.decodeMs
        return AskResult(text: g.text, promptIds: ids, generatedIds: g.generatedIds, visualTokens: image.keptVisualTokens,
                         stopReason: g.stopReason, timings: t)
    }

    /// Answers a question without an image (ScienceQA's questions without a picture): the
    /// template's first turn without its image slot.
    public func ask(question: String, template: ConversationTemplate, options: GenerationOptions,
                    onText: ((String) -> Void)? = nil) throws -> AskResult {
        var textOnly = template
        textOnly.firstTurn = textOnly.firstTurn.replacingOccurrences(of: ConversationTemplate.imagePlaceholder + "\n", with: "")
            .replacingOccurrences(of: ConversationTemplate.imagePlaceholder, with: "")
        let ids = try tokenizePrompt(textOnly.firstPrompt(question: question), tokenizer: model.tokenizer,
                                     imageTokenId: model.config.imageTokenIndex, imageTokens: 0)
        let g = try model.generate(ids: ids, imageEmbeddings: nil, options: options, cut: nil, onText: onText)
        var t = AskTimings()
        t.prefillMs = g.prefillMs
        t.ttftMs = g.firstTokenMs
        t.ttftAloneMs = g.firstTokenAloneMs
        t.decodeMs = g.decodeMs
        t.decodeTokensPerS = g.decodeTokensPerSecond
        t.totalMs = g.firstTokenMs + g.decodeMs
        return AskResult(text: g.text, promptIds: ids, generatedIds: g.generatedIds, visualTokens: 0,
                         stopReason: g.stopReason, timings: t)
    }

    /// Image file + question → answer.
    public func ask(imagePath: String, question: String, template: ConversationTemplate, mode: ImageMode = .crop,
                    merge: VisionMergeSettings = .none, options: GenerationOptions = GenerationOptions(),
                    onText: ((String) -> Void)? = nil) throws -> AskResult {
        let image = try encode(imagePath: imagePath, mode: mode, merge: merge, question: question)
        return try ask(image: image, question: question, template: template, options: options, onText: onText)
    }
}

public enum PipelineError: Error, CustomStringConvertible {
    case processorSize(path: String, height: Int, width: Int, tower: Int)

    public var description: String {
        switch self {
        case .processorSize(let path, let h, let w, let tower):
            "\(path): preprocessing gives \(w)x\(h) images but the vision tower takes \(tower)x\(tower)"
        }
    }
}
