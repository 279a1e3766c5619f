import Checkpoint
import Foundation
import Kernels
import Tokenizer
import TokenMerging

public enum LlavaError: Error, CustomStringConvertible {
    case imageTokenMismatch(placeholders: Int, features: Int)
    case tokenizerTooLarge(path: String, pieces: Int, vocab: Int)
    case pixelShape(expected: Int, found: Int)
    case mergeWithSeveralFeatureLayers([Int])
    case tokenOutOfRange(id: Int, vocab: Int)
    case contextTooLarge(requested: Int, context: Int, configPath: String)
    case imageTokenLast
    case fastvInChat
    case missingProbeLayer(Int, directory: String)
    case questionEncoderMissing(MergeMethod)
    case questionMissing(MergeMethod)

    public var description: String {
        switch self {
        case .imageTokenMismatch(let p, let f):
            "the prompt has \(p) image-token positions but the image gives \(f) features"
        case .tokenizerTooLarge(let path, let pieces, let vocab):
            "\(path): the tokenizer has \(pieces) pieces but the model's vocabulary is only \(vocab)"
        case .pixelShape(let expected, let found):
            "pixel values have \(found) elements, the vision tower expects \(expected)"
        case .tokenOutOfRange(let id, let vocab):
            "token id \(id) is outside the model's vocabulary of \(vocab)"
        case .mergeWithSeveralFeatureLayers(let layers):
            "token merging needs a single vision feature layer, the config selects \(layers)"
        case .contextTooLarge(let requested, let context, let configPath):
            "a context of \(requested) tokens was asked for but the model's context is \(context) (max_position_embeddings in \(configPath))"
        case .imageTokenLast:
            "FastV ranks visual tokens by the attention of the last prompt token, but the prompt ends with an image token"
        case .fastvInChat:
            "--merge fastv is not available in chat: it cuts the first prompt pass inside the language model, and a chat rolls its cache back to that prompt's start (use ask or eval)"
        case .questionEncoderMissing(let method):
            "--merge \(method) chooses visual tokens by the question's CLIP text embedding: give --clip DIR, the CLIP folder with the text tower (openai/clip-vit-large-patch14-336: config.json, model.safetensors, vocab.json, merges.txt)"
        case .questionMissing(let method):
            "--merge \(method) chooses visual tokens by the question, but no question was given for this image"
        case .missingProbeLayer(let layer, let directory):
            "\(directory): prumerge-plus reads the attention of vision layer \(layer), which the weights do not hold (vision_tower.vision_model.encoder.layers.\(layer).*)"
        }
    }
}

public struct GenerationOptions: Sendable, Equatable, Codable {
    public var maxTokens = 256
    public var sampling = SamplingSettings()
    public var seed: UInt64 = 0
    /// Stop when an end-of-sequence token is produced (it is kept in `generatedIds`).
    public var stopAtEOS = true
    /// Positions the conversation may use (nil: the model's whole context). Larger than the
    /// model's context is an error.
    public var contextSize: Int?

    enum CodingKeys: String, CodingKey {
        case maxTokens = "max_tokens", sampling, seed, stopAtEOS = "stop_at_eos", contextSize = "context_size"
    }

    public var temperature: Float {
        get { sampling.temperature }
        set { sampling.temperature = newValue }
    }

    public var topP: Float {
        get { sampling.topP }
        set { sampling.topP = newValue }
    }

    public init(maxTokens: Int = 256, temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0, stopAtEOS: Bool = true) {
        self.init(maxTokens: maxTokens, sampling: SamplingSettings(temperature: temperature, topP: topP), seed: seed,
                  stopAtEOS: stopAtEOS)
    }

    public init(maxTokens: Int = 256, sampling: SamplingSettings, seed: UInt64 = 0, stopAtEOS: Bool = true,
                contextSize: Int? = nil) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.seed = seed
        self.stopAtEOS = stopAtEOS
        self.contextSize = contextSize
    }
}

public enum StopReason: String, Sendable, Codable {
    case eos, maxTokens = "max_tokens", contextFull = "context_full"
}

/// The result of one generation call.
public struct Generation: Sendable {
    public var text: String
    public var generatedIds: [Int]
    public var stopReason: StopReason
    /// Logits of the first generated position (after the whole prompt).
    public var firstLogits: [Float]
    public var prefillMs: Double
    /// With a FastV cut: the visual tokens kept (indices among the prompt's image tokens, increasing).
    public var keptVisualTokens: [Int]?
    /// From the start of the call to the first token being chosen.
    public var firstTokenMs: Double
    /// Of `firstTokenMs`, the time the calling thread ran alone (see `OneThreadClock`).
    public var firstTokenAloneMs: Double = 0
    public var decodeMs: Double
    /// Tokens per second after the first token.
    public var decodeTokensPerSecond: Double {
        let n = generatedIds.count - 1
        return n > 0 && decodeMs > 0 ? Double(n) / (decodeMs / 1000) : 0
    }
}

/// LlavaForConditionalGeneration: CLIP vision tower → projector → Llama, loaded from a Hugging
/// Face checkpoint folder.
public final class LlavaForConditionalGeneration: @unchecked Sendable {
    public let directory: String
    public let config: LlavaConfiguration
    public let checkpoint: CheckpointFolder
    public let tokenizer: SentencePieceTokenizer
    public let visionTower: CLIPVisionModel
    public let projector: LlavaMultiModalProjector
    public let languageModel: LlamaForCausalLM
    public let eosTokenIds: Set<Int>
    /// How the language model's matrices are kept (`--quantize`).
    public let quantization: WeightQuantization
    /// How the vision tower's and projector's matrices are kept (`--quantize-vision`).
    public let visionQuantization: WeightQuantization
    /// The question side of question-aware reducers (CDPruner): set once after loading
    /// (`--clip DIR`), before any image is encoded.
    public var questionEncoder: QuestionEncoder?

    /// Loads a checkpoint folder. `progress` is called with (layers done, layers) while the
    /// language model's weights are prepared (only slow when quantizing).
    public init(directory: String, quantization: WeightQuantization = .none,
                visionQuantization: WeightQuantization = .none,
                progress: ((Int, Int) -> Void)? = nil) throws {
        self.directory = directory
        checkpoint = try CheckpointFolder(directory: directory)
        (self.quantization, self.visionQuantization) = try QuantizedCheckpoint.resolve(
            checkpoint, language: quantization, vision: visionQuantization)
        config = checkpoint.config
        let tokenizerPath = (directory as NSString).appendingPathComponent("tokenizer.model")
        tokenizer = try SentencePieceTokenizer(modelPath: tokenizerPath)
        if tokenizer.vocabularySize > config.text.vocabSize {
            throw LlavaError.tokenizerTooLarge(path: tokenizerPath, pieces: tokenizer.vocabularySize, vocab: config.text.vocabSize)
        }
        try Self.checkAgainstFiles(config, checkpoint: checkpoint, tokenizer: tokenizer,
                                   configPath: (directory as NSString).appendingPathComponent("config.json"))
        visionTower = try CLIPVisionModel(checkpoint, config: config.vision, layerCount: config.visionLayersToRun,
                                          quantization: visionQuantization)
        projector = try LlavaMultiModalProjector(checkpoint, config: config, quantization: visionQuantization)
        languageModel = try LlamaForCausalLM(checkpoint, config: config.text, quantization: quantization,
                                             progress: progress)
        eosTokenIds = Set(config.text.eosTokenIds + [tokenizer.eosId].filter { $0 >= 0 })
    }

    /// The config's layer counts against the layers the weights hold, and the image token
    /// against the tokenizer's pieces (an image token that is also a text token would swallow it).
    static func checkAgainstFiles(_ config: LlavaConfiguration, checkpoint: CheckpointFolder,
                                  tokenizer: SentencePieceTokenizer, configPath: String) throws {
        let names = checkpoint.weightNames
        let counts = [("text_config.num_hidden_layers", config.text.numHiddenLayers, names.languageModel + "layers."),
                      ("vision_config.num_hidden_layers with vision_feature_layer", config.visionLayersToRun, names.visionTower + "encoder.layers.")]
        for (field, needed, prefix) in counts {
            let present = checkpoint.layerCount(prefix: prefix)
            if present < needed {
                throw CheckpointError.invalidConfig(configPath, "\(field) asks for \(needed) layers but the weights hold \(present) (\(prefix)*)")
            }
        }
        if tokenizer.bosId < 0 || tokenizer.bosId >= config.text.vocabSize {
            throw TokenizerError.invalidModel(tokenizer.path, "its BOS id \(tokenizer.bosId) is not a token of the model's vocabulary of \(config.text.vocabSize)")
        }
        if config.imageTokenIndex < tokenizer.vocabularySize {
            let piece = tokenizer.piece(config.imageTokenIndex) ?? "?"
            throw CheckpointError.invalidConfig(configPath, "image_token_index \(config.imageTokenIndex) is also the text token \(piece.debugDescription) of tokenizer.model (it must be at least \(tokenizer.vocabularySize))")
        }
    }

    /// "none", "q8" or "q8, vision q8": how the weights are kept in memory.
    public var quantizationLabel: String {
        visionQuantization == .none ? quantization.rawValue : "\(quantization.rawValue), vision \(visionQuantization.rawValue)"
    }

    /// Number of image tokens the tower gives without merging.
    public var fullImageTokens: Int {
        config.vision.numPatches + visionTower.leadingTokens - config.visionFeatureSelectStrategy.droppedTokens
    }

    public var configPath: String { (directory as NSString).appendingPathComponent("config.json") }

    /// Throws unless `pixels` is one CHW image at the tower's resolution.
    func checkPixelCount(_ pixels: [Float]) throws {
        let expected = 3 * visionTower.tileSide * visionTower.tileSide
        guard pixels.count == expected else { throw LlavaError.pixelShape(expected: expected, found: pixels.count) }
    }

    /// Vision features for one preprocessed image (CHW pixels at the tower's resolution):
    /// the selected hidden state(s), CLS dropped for the "default" strategy.
    public func imageFeatures(pixels: [Float], merger: VisionMergeHook? = nil) throws -> Matrix {
        try checkPixelCount(pixels)
        let indices = config.visionFeatureLayers.map { config.resolvedFeatureIndex($0) }
        let states = visionTower(pixels: pixels, hiddenStates: indices, merger: merger)
        let selected = indices.map { states[$0]! }
        let skip = config.visionFeatureSelectStrategy.droppedTokens
        let rows = selected[0].rows - skip
        let c = config.vision.hiddenSize
        let out = Matrix(rows: rows, cols: c * selected.count)
        for r in 0..<rows {
            for (j, m) in selected.enumerated() {
                (out.row(r) + j * c).update(from: m.row(r + skip), count: c)
            }
        }
        return out
    }

    /// Image embeddings in the language model's space: projector(imageFeatures).
    public func encodeImage(pixels: [Float], merger: VisionMergeHook? = nil) throws -> Matrix {
        projector(try imageFeatures(pixels: pixels, merger: merger))
    }

    /// Token ids of a first prompt: template + question, image placeholder expanded.
    public func promptIds(template: ConversationTemplate, question: String, imageTokens: Int) throws -> [Int] {
        try tokenizePrompt(template.firstPrompt(question: question), tokenizer: tokenizer,
                           imageTokenId: config.imageTokenIndex, imageTokens: imageTokens)
    }

    /// Input embeddings: token embeddings, with image-token positions taking the rows of
    /// `imageEmbeddings` in order.
    public func inputEmbeddings(_ ids: [Int], imageEmbeddings: Matrix?) throws -> Matrix {
        let placeholders = ids.filter { $0 == config.imageTokenIndex }.count
        let features = imageEmbeddings?.rows ?? 0
        guard placeholders == features else {
            throw LlavaError.imageTokenMismatch(placeholders: placeholders, features: features)
        }
        let vocab = config.text.vocabSize
        if let bad = ids.first(where: { $0 != config.imageTokenIndex && ($0 < 0 || $0 >= vocab) }) {
            throw LlavaError.tokenOutOfRange(id: bad, vocab: vocab)
        }
        let e = Matrix(rows: ids.count, cols: config.text.hiddenSize)
        var next = 0
        for (r, id) in ids.enumerated() {
            if id == config.imageTokenIndex {
                e.row(r).update(from: imageEmbeddings!.row(next), count: e.cols)
                next += 1
            } else {
                languageModel.embedTokens.widenRows(id, count: 1, into: e.row(r))
            }
        }
        return e
    }

    /// A KV cache sized for a prompt and its answer (grown on demand later).
    public func makeCache(promptTokens: Int, maxTokens: Int) -> KVCache {
        languageModel.makeCache(capacity: min(config.text.maxPositionEmbeddings, promptTokens + maxTokens + 1))
    }

    /// The positions a generation may use: `options.contextSize`, or the model's whole context.
    /// Throws `contextTooLarge` when more than the model's context is asked for.
    public func contextSize(_ options: GenerationOptions) throws -> Int {
        let model = config.text.maxPositionEmbeddings
        guard let asked = options.contextSize else { return model }
        guard asked <= model else { throw LlavaError.contextTooLarge(requested: asked, context: model, configPath: configPath) }
        return asked
    }

    /// Prefills `ids` (appending to `cache`) in one batched pass and generates an answer.
    /// With a FastV `cut`, the prompt pass keeps only `cut.keep` of the image tokens from
    /// decoder layer `cut.layer` on (`Generation.keptVisualTokens` says which).
    /// `onText` receives the answer text as it is produced; the pieces joined are exactly
    /// `Generation.text` (see `AnswerStream`). `earlierIds` are the tokens already in `cache`,
    /// for the repeat penalty's window (the prompt text and the answer count, image positions
    /// do not).
    public func generate(ids: [Int], imageEmbeddings: Matrix?, cache: KVCache? = nil, earlierIds: [Int] = [],
                         options: GenerationOptions = GenerationOptions(), cut: LanguageModelCut? = nil,
                         onText: ((String) -> Void)? = nil) throws -> Generation {
        let context = try contextSize(options)
        let cache = cache ?? makeCache(promptTokens: ids.count, maxTokens: options.maxTokens)
        guard cache.length + ids.count <= context else {
            throw PromptError.tooLong(tokens: cache.length + ids.count, context: context, configPath: configPath)
        }
        let clock = OneThreadClock()
        let embeddings = try inputEmbeddings(ids, imageEmbeddings: imageEmbeddings)
        let prefill = languageModel.run(embeddings, cache: cache, cut: try prefillCut(cut, ids: ids))
        var logits = prefill.logits
        let prefillMs = clock.readMilliseconds().elapsed
        let firstLogits = logits
        var sampler = Sampler(settings: options.sampling, seed: options.seed)
        sampler.accept((earlierIds + ids).filter { $0 != config.imageTokenIndex }.suffix(options.sampling.repeatLastN))
        var stream = AnswerStream(tokenizer: tokenizer)
        var generated: [Int] = []
        var stop = StopReason.maxTokens
        var firstTokenMs = 0.0, firstTokenAloneMs = 0.0
        var decodeStart = DispatchTime.now()
        while generated.count < options.maxTokens {
            let next = stage("sampling") { sampler.sample(logits) }
            sampler.accept(next)
            generated.append(next)
            if generated.count == 1 {
                (firstTokenMs, firstTokenAloneMs) = clock.readMilliseconds()
                decodeStart = DispatchTime.now()
            }
            if options.stopAtEOS && eosTokenIds.contains(next) {
                stop = .eos
                break
            }
            let piece = stream.append(next)
            if !piece.isEmpty { onText?(piece) }
            if generated.count == options.maxTokens { break }
            if cache.length >= context {
                stop = .contextFull
                break
            }
            logits = languageModel.forward(languageModel.embed([next]), cache: cache)
        }
        let decodeMs = generated.count > 1 ? elapsedMs(since: decodeStart) : 0
        let tail = stream.finish()
        if !tail.isEmpty { onText?(tail) }
        return Generation(text: stream.text, generatedIds: generated, stopReason: stop, firstLogits: firstLogits,
                          prefillMs: prefillMs, keptVisualTokens: prefill.kept, firstTokenMs: firstTokenMs,
                          firstTokenAloneMs: firstTokenAloneMs, decodeMs: decodeMs)
    }
}

/// FastV's setting for a prompt: from decoder layer `layer` on (≥ 1), only `keep` of the
/// prompt's image tokens go on.
public struct LanguageModelCut: Sendable, Hashable {
    public var layer: Int
    public var keep: Int

    public init(layer: Int, keep: Int) {
        self.layer = layer
        self.keep = keep
    }
}

extension LlavaForConditionalGeneration {
    /// The cut of one prompt pass: the image-token positions of `ids` are the candidates.
    func prefillCut(_ cut: LanguageModelCut?, ids: [Int]) throws -> PrefillCut? {
        guard let cut else { return nil }
        try config.check(cut)
        if ids.last == config.imageTokenIndex { throw LlavaError.imageTokenLast }
        return PrefillCut(cut, candidates: ids.indices.filter { ids[$0] == config.imageTokenIndex })
    }
}

func elapsedMs(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
}
