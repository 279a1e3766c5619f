import Foundation
import Imaging

/// How questions are answered: the model folder and its weight formats, the conversation
/// template, the image preprocessing, the visual-token reducer and the decoding settings.
///
/// Every front end makes one of these from its own inputs (the command line from its flag
/// groups) and checks it with `validate()` before any work; `QuestionAnswerer` answers with it.
/// Its JSON form uses snake_case names (`model_directory`, `image_mode`, `generation.max_tokens`, …).
public struct RunSettings: Codable, Sendable, Equatable {
    /// The checkpoint folder (Hugging Face layout, or one written by `llava quantize`).
    public var modelDirectory: String
    /// A template name from Prompts/templates (llava-hf, llava-v1) or a .json path.
    public var template: String
    public var imageMode: ImageMode
    /// New tokens, sampling, seed, end of sequence and context size.
    public var generation: GenerationOptions
    public var merge: VisionMergeSettings
    /// Language-model weights.
    public var quantization: WeightQuantization
    /// Vision tower and projector weights (none or q8).
    public var visionQuantization: WeightQuantization

    public init(modelDirectory: String, template: String = "llava-hf", imageMode: ImageMode = .crop,
                generation: GenerationOptions = GenerationOptions(), merge: VisionMergeSettings = .none,
                quantization: WeightQuantization = .none, visionQuantization: WeightQuantization = .none) {
        self.modelDirectory = modelDirectory
        self.template = template
        self.imageMode = imageMode
        self.generation = generation
        self.merge = merge
        self.quantization = quantization
        self.visionQuantization = visionQuantization
    }

    enum CodingKeys: String, CodingKey {
        case modelDirectory = "model_directory", template, imageMode = "image_mode", generation, merge, quantization
        case visionQuantization = "vision_quantization"
    }

    /// The model's name in answer files: the model folder's last component.
    public var modelID: String { URL(fileURLWithPath: modelDirectory).standardizedFileURL.lastPathComponent }

    /// Throws the first rule the settings break, as one line: an empty model folder or
    /// template, a vision quantization other than none or q8, then the rules of
    /// `GenerationOptions.validate` and `VisionMergeSettings.validate`. The limits of a
    /// particular model (its context, its tower's tokens) are checked when it is loaded.
    public func validate() throws {
        if modelDirectory.isEmpty { throw RunSettingsError.empty(.modelDirectory) }
        if template.isEmpty { throw RunSettingsError.empty(.template) }
        if visionQuantization == .q4 {
            throw RunSettingsError.outOfRange(.visionQuantization, rule: "none or q8", value: visionQuantization.rawValue)
        }
        try generation.validate()
        try merge.validate()
    }
}

extension LlavaPipeline {
    /// Loads the settings' model folder with their weight formats; `progress` sees each
    /// language-model layer quantized at load time (done, total).
    public convenience init(settings: RunSettings, progress: ((Int, Int) -> Void)? = nil) throws {
        try self.init(directory: settings.modelDirectory, quantization: settings.quantization,
                      visionQuantization: settings.visionQuantization, progress: progress)
    }
}

/// A run setting that breaks its rule, named by its field so that each front end can say it in
/// its own words (the command line names its flags).
public enum RunSettingsError: Error, Equatable, CustomStringConvertible {
    /// The fields of `RunSettings` that have rules, by their JSON names.
    public enum Field: String, Sendable {
        case modelDirectory = "model_directory", template, visionQuantization = "vision_quantization"
        case maxTokens = "max_tokens", temperature, topK = "top_k", topP = "top_p", minP = "min_p"
        case repeatPenalty = "repeat_penalty", repeatLastN = "repeat_last_n", contextSize = "context_size"
    }

    case empty(Field)
    /// `value` as the number's description ("-1.0", "nan").
    case outOfRange(Field, rule: String, value: String)

    public var field: Field {
        switch self {
        case .empty(let field), .outOfRange(let field, _, _): field
        }
    }

    public var description: String {
        switch self {
        case .empty(let field): "\(field.rawValue) is empty"
        case .outOfRange(let field, let rule, let value): "\(field.rawValue) must be \(rule), got \(value)"
        }
    }
}

extension GenerationOptions {
    /// Throws the first decoding setting outside its range: max tokens at least 1, a finite
    /// temperature >= 0, top-k >= 0, top-p in (0, 1], min-p in [0, 1], a finite repeat penalty
    /// > 0, a repeat window >= 0, a context size >= 0.
    public func validate() throws {
        func check(_ ok: Bool, _ field: RunSettingsError.Field, _ rule: String, _ value: some CustomStringConvertible) throws {
            if !ok { throw RunSettingsError.outOfRange(field, rule: rule, value: value.description) }
        }
        let s = sampling
        try check(maxTokens >= 1, .maxTokens, "at least 1", maxTokens)
        try check(s.temperature >= 0 && s.temperature.isFinite, .temperature, "a finite number >= 0", s.temperature)
        try check(s.topK >= 0, .topK, ">= 0", s.topK)
        try check(s.topP > 0 && s.topP <= 1, .topP, "in (0, 1]", s.topP)
        try check(s.minP >= 0 && s.minP <= 1, .minP, "in [0, 1]", s.minP)
        try check(s.repeatPenalty > 0 && s.repeatPenalty.isFinite, .repeatPenalty, "a finite number > 0", s.repeatPenalty)
        try check(s.repeatLastN >= 0, .repeatLastN, ">= 0", s.repeatLastN)
        try check((contextSize ?? 0) >= 0, .contextSize, ">= 0", contextSize ?? 0)
    }
}
