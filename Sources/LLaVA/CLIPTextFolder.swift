import Checkpoint
import Foundation
import Kernels

/// The original CLIP folder CDPruner reads besides the LLaVA checkpoint (for LLaVA-1.5:
/// `openai/clip-vit-large-patch14-336`): `config.json` (CLIPConfig), `model.safetensors`
/// (CLIPModel tensor names), `vocab.json` and `merges.txt`. Of the weights only the text tower,
/// `text_projection`, `vision_model.post_layernorm` and `visual_projection` are mapped; the image
/// features come from the LLaVA tower. Every problem is found while loading, before any work, and
/// thrown as one line naming the file: `CLIPFolderError`, `CheckpointError` (config.json,
/// model.safetensors, tensors) or `CLIPTokenizerError` (vocab.json, merges.txt).
public final class CLIPTextFolder {
    public static let requiredFiles = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]

    public let directory: String
    public let config: CLIPConfiguration
    public let tokenizer: CLIPTokenizer
    public let textModel: CLIPTextModelWithProjection
    public let visionProjection: CLIPVisionProjection

    /// Loads the folder. With `llavaVisionHiddenSize`, the width of the LLaVA vision tower whose
    /// features `imageEmbeds` will receive, a CLIP tower of another width is refused first.
    public init(directory: String, llavaVisionHiddenSize: Int? = nil) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIPFolderError.notAFolder(directory)
        }
        for name in Self.requiredFiles where !FileManager.default.fileExists(atPath: Self.join(directory, name)) {
            throw CLIPFolderError.missingFile(folder: directory, file: name)
        }
        let configPath = Self.join(directory, "config.json")
        config = try CLIPConfiguration.load(path: configPath)
        if let llavaVisionHiddenSize {
            try Self.checkVisionHiddenSize(config, configPath: configPath, llavaVisionHiddenSize: llavaVisionHiddenSize)
        }
        tokenizer = try CLIPTokenizer.load(vocabularyPath: Self.join(directory, "vocab.json"),
                                           mergesPath: Self.join(directory, "merges.txt"))
        if tokenizer.vocabularySize > config.textConfig.vocabSize {
            throw CLIPFolderError.vocabularyTooLarge(folder: directory, tokenizer: tokenizer.vocabularySize,
                                                     model: config.textConfig.vocabSize)
        }
        let weights = try SafeTensorsFile(path: Self.join(directory, "model.safetensors"))
        textModel = try CLIPTextModelWithProjection(weights, config: config.textConfig)
        visionProjection = try CLIPVisionProjection(weights, config: config.visionConfig)
    }

    /// Throws unless the CLIP vision tower is as wide as the LLaVA tower (`vision_config.hidden_size`).
    public func checkVisionHiddenSize(_ llavaVisionHiddenSize: Int) throws {
        try Self.checkVisionHiddenSize(config, configPath: Self.join(directory, "config.json"),
                                       llavaVisionHiddenSize: llavaVisionHiddenSize)
    }

    static func checkVisionHiddenSize(_ config: CLIPConfiguration, configPath: String, llavaVisionHiddenSize: Int) throws {
        if config.visionConfig.hiddenSize != llavaVisionHiddenSize {
            throw CLIPFolderError.visionWidthMismatch(config: configPath, clip: config.visionConfig.hiddenSize,
                                                      llava: llavaVisionHiddenSize)
        }
    }

    /// CDPruner's text embeddings of a question, [segments, projection_dim]: the question
    /// tokenized whole (BOS and EOS, no truncation), cut into segments of max_position_embeddings
    /// tokens (`CLIPTextModelWithProjection.segmentedTextEmbeds`).
    public func textEmbeds(question: String) -> Matrix {
        textModel.segmentedTextEmbeds(inputIds: tokenizer.encode(question))
    }

    /// CDPruner's image embeddings, [N, projection_dim], of the LLaVA tower's patch features [N, C]:
    /// the hidden state of the feature layer with the CLS row dropped, before the projector.
    public func imageEmbeds(features: Matrix) -> Matrix {
        visionProjection(features)
    }

    static func join(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }
}

/// What is wrong with a CLIP folder as a whole, in one line.
public enum CLIPFolderError: Error, CustomStringConvertible, Equatable {
    case notAFolder(String)
    case missingFile(folder: String, file: String)
    case visionWidthMismatch(config: String, clip: Int, llava: Int)
    case vocabularyTooLarge(folder: String, tokenizer: Int, model: Int)

    public var description: String {
        switch self {
        case .notAFolder(let path):
            "\(path): no such folder (expected the CLIP folder, e.g. openai/clip-vit-large-patch14-336, with "
                + CLIPTextFolder.requiredFiles.joined(separator: ", ") + ")"
        case .missingFile(let folder, let file):
            "\(CLIPTextFolder.join(folder, file)): no such file (a CLIP folder for CDPruner holds "
                + CLIPTextFolder.requiredFiles.joined(separator: ", ") + ")"
        case .visionWidthMismatch(let config, let clip, let llava):
            "\(config): vision_config.hidden_size is \(clip), but the LLaVA vision tower is \(llava) wide; "
                + "use the CLIP model the LLaVA tower came from"
        case .vocabularyTooLarge(let folder, let tokenizer, let model):
            "\(CLIPTextFolder.join(folder, "vocab.json")): ids go up to \(tokenizer - 1), but text_config.vocab_size is \(model)"
        }
    }
}

extension CLIPTextFolder: QuestionEncoder {
    public func textEmbeddings(_ text: String) throws -> Matrix { textEmbeds(question: text) }

    public func imageEmbeddings(features: Matrix) throws -> Matrix {
        guard features.cols == config.visionConfig.hiddenSize else {
            throw CLIPFolderError.visionWidthMismatch(config: Self.join(directory, "config.json"), clip: config.visionConfig.hiddenSize, llava: features.cols)
        }
        return imageEmbeds(features: features)
    }
}
