import Checkpoint
import Foundation
import Imaging
import Kernels
import Tokenizer

// A model family is the set of parts one `model_type` in config.json loads as: an input
// processor (text + pictures → chunks), a vision encoder with the sites a reducer may act at, a
// projector, a language model (embed, forward with a KV cache, FastV's decoder-side cut) and a
// tokenizer. Each part is a final class or struct named after its Hugging Face module and
// meets its contract below; prompts are built as the processor's chunks (`tokenizePrompt` is
// LLaVA's chunks written out as ids). A family's model class holds its concrete parts, so the
// per-token and per-layer loops dispatch statically, never through an existential.
//
// LLaVA-1.5 (`llava`) is `LlavaFamily`: LlavaProcessor, CLIPVisionModel,
// LlavaMultiModalProjector, LlamaForCausalLM and SentencePieceTokenizer, put together by
// LlavaForConditionalGeneration.
//
// What a second family adds — LLaVA-NeXT (`llava_next`, LlavaNextForConditionalGeneration):
//   - Sources/Checkpoint/CheckpointFamily.swift: its line in `CheckpointFamily.known` (its weight
//     names are LLaVA's plus the top-level `image_newline`);
//   - Sources/Checkpoint/Configuration.swift: `image_grid_pinpoints`, and `mistral` accepted
//     as text_config.model_type;
//   - one file, Sources/LLaVA/LlavaNextForConditionalGeneration.swift: the family enum, the
//     processor (AnyResProcessor and AnyResGeometry in Imaging give the tiles, their grid and
//     the position count with one `image_newline` row per feature row), the model class
//     (CLIPVisionModel run once per tile, the shared projector, `image_newline` placed as
//     AnyResFeatureLayout says, the Llama decoder serving Mistral's architecture);
//   - its line in `ModelFamilies.registered` below.
//   - the front ends that hold LlavaForConditionalGeneration itself (LlavaPipeline, ChatSession,
//     ImageCache, the CLI's loader): they take the model the registry picks, through a model
//     contract over these parts (encode a picture, generate from chunks).
// A third, such as Qwen2-VL (`qwen2_vl`), adds the same plus its own parts: a vision encoder
// file (a ViT over 14-px patches with 2-D rotary positions and a 2×2 patch merger as its
// projector), a decoder file (Qwen2 with multimodal rotary positions, so `LanguageModel` takes
// its positions from the processor's chunks) and a tokenizer file (byte-level BPE).

/// One family: the `model_type` it loads and the types of its parts.
public protocol ModelFamily {
    associatedtype Processor: InputProcessor
    associatedtype VisionTower: VisionEncoder
    associatedtype Projector: MultiModalProjector
    associatedtype Decoder: LanguageModel
    associatedtype TextTokenizer: PromptTokenizer
    /// The checkpoint side: `model_type`, the transformers class, the weight names.
    static var checkpoint: CheckpointFamily { get }
}

/// The families that load, one line each, keyed by config.json's `model_type`.
public enum ModelFamilies {
    public static let registered: [any ModelFamily.Type] = [LlavaFamily.self]

    /// The family of a `model_type`, or nil when none is registered for it.
    public static func named(_ modelType: String) -> (any ModelFamily.Type)? {
        registered.first { $0.checkpoint.modelType == modelType }
    }
}

/// LLaVA-1.5: CLIP ViT-L/14 at 336 px → two-layer MLP projector → Llama.
public enum LlavaFamily: ModelFamily {
    public typealias Processor = LlavaProcessor
    public typealias VisionTower = CLIPVisionModel
    public typealias Projector = LlavaMultiModalProjector
    public typealias Decoder = LlamaForCausalLM
    public typealias TextTokenizer = SentencePieceTokenizer
    public static let checkpoint = CheckpointFamily.llava
}

// MARK: - Input processing

/// How a picture's tiles are laid out: `rows` × `columns` tiles (1 × 1 for one whole-image tile).
public struct TileGrid: Sendable, Hashable {
    public var rows: Int
    public var columns: Int

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }

    public static let single = TileGrid(rows: 1, columns: 1)
}

/// One picture ready for the vision encoder: each tile CHW pixels at the encoder's resolution.
public struct ImageTiles: Sendable {
    public var tiles: [[Float]]
    public var grid: TileGrid

    public init(tiles: [[Float]], grid: TileGrid) {
        self.tiles = tiles
        self.grid = grid
    }
}

/// A piece of a prompt as the language model sees it.
public enum InputChunk: Sendable, Hashable {
    /// Text token ids.
    case text([Int])
    /// The slot of picture `index` (in prompt order): `positions` decoder positions its embeddings fill.
    case image(index: Int, positions: Int)
}

extension Array where Element == InputChunk {
    /// The token ids of the chunks, each image slot written as `positions` copies of `imageTokenId`.
    public func ids(imageTokenId: Int) -> [Int] {
        var ids: [Int] = []
        for chunk in self {
            switch chunk {
            case .text(let t): ids += t
            case .image(_, let positions): ids += [Int](repeating: imageTokenId, count: positions)
            }
        }
        return ids
    }
}

/// Text and pictures → the language model's input (llama.cpp's mtmd chunks, transformers' processors).
public protocol InputProcessor {
    /// A decoded picture → its tiles and grid; `name` is the file named in errors.
    func tiles(_ image: RGBImage, mode: ImageMode, name: String) throws -> ImageTiles
    /// A prompt with `ConversationTemplate.imagePlaceholder` where pictures go → chunks; picture i
    /// takes `imagePositions[i]` positions.
    func chunks(_ text: String, imagePositions: [Int], addBOS: Bool) throws -> [InputChunk]
}

/// The text side every family's tokenizer offers.
public protocol PromptTokenizer: AnyObject {
    var vocabularySize: Int { get }
    var bosId: Int { get }
    var eosId: Int { get }
    func encode(_ text: String) throws -> [Int]
    func decode(_ ids: [Int]) -> String
    /// The piece of a token id, nil when out of range.
    func piece(_ id: Int) -> String?
}

extension SentencePieceTokenizer: PromptTokenizer {}

/// LlavaProcessor: one tile per picture (resize and centre crop, or pad, to the tower's side),
/// and the prompt split at each placeholder as the original LLaVA code does.
public struct LlavaProcessor: InputProcessor {
    public let imageConfig: ImageProcessorConfig
    public let tokenizer: SentencePieceTokenizer

    public init(imageConfig: ImageProcessorConfig, tokenizer: SentencePieceTokenizer) {
        self.imageConfig = imageConfig
        self.tokenizer = tokenizer
    }

    public func tiles(_ image: RGBImage, mode: ImageMode, name: String) throws -> ImageTiles {
        ImageTiles(tiles: [try ImageProcessor(config: imageConfig, mode: mode).process(image, name: name).data], grid: .single)
    }

    public func chunks(_ text: String, imagePositions: [Int], addBOS: Bool) throws -> [InputChunk] {
        try promptChunks(text, tokenizer: tokenizer, imagePositions: imagePositions, addBOS: addBOS)
    }
}

/// Splits `text` at each `<image>`: BOS (when asked) as its own text chunk, every non-empty
/// piece encoded on its own (so each gets SentencePiece's dummy-prefix space), picture i's slot
/// between pieces i and i + 1.
func promptChunks(_ text: String, tokenizer: some PromptTokenizer, imagePositions: [Int], addBOS: Bool) throws -> [InputChunk] {
    let pieces = text.components(separatedBy: ConversationTemplate.imagePlaceholder)
    precondition(imagePositions.count == pieces.count - 1,
                 "the prompt has \(pieces.count - 1) image placeholders but \(imagePositions.count) position counts were given")
    var chunks: [InputChunk] = addBOS ? [.text([tokenizer.bosId])] : []
    for (i, piece) in pieces.enumerated() {
        if i > 0 { chunks.append(.image(index: i - 1, positions: imagePositions[i - 1])) }
        if !piece.isEmpty { chunks.append(.text(try tokenizer.encode(piece))) }
    }
    return chunks
}

// MARK: - Vision encoder and projector

/// Pixels of one tile → hidden states, with a reducer's hook called at the sites it declares.
public protocol VisionEncoder: AnyObject {
    /// The side of one tile, in pixels.
    var tileSide: Int { get }
    /// Leading rows of every hidden state that are not patches (CLIP's class token): reducers keep them.
    var leadingTokens: Int { get }
    /// Where a reducer's hook may act inside an encoder layer.
    var reducerSites: Set<MergePlacement> { get }
    /// Hidden states `wanted` (0 = embeddings, i = after layer i and its merge) of one CHW tile.
    func callAsFunction(pixels: [Float], hiddenStates wanted: [Int], merger: VisionMergeHook?) -> [Int: Matrix]
}

extension CLIPVisionModel: VisionEncoder {
    public var tileSide: Int { config.imageSize }
    public var leadingTokens: Int { 1 }
    public var reducerSites: Set<MergePlacement> { [.afterLayer, .betweenAttentionAndMLP] }
}

/// Vision features → rows in the language model's embedding space.
public protocol MultiModalProjector: AnyObject {
    func callAsFunction(_ features: Matrix) -> Matrix
}

extension LlavaMultiModalProjector: MultiModalProjector {}

// MARK: - Language model

/// A decoder that sees only embeddings and positions: ids are embedded first, image rows come
/// from the projector, and FastV's cut is an option of the prompt pass.
public protocol LanguageModel: AnyObject {
    /// The embedding rows of `ids` ([ids.count, hidden]).
    func embed(_ ids: [Int]) -> Matrix
    func makeCache(capacity: Int) -> KVCache
    /// Runs `embeddings` at the cache's next positions and returns the last position's logits;
    /// with a cut, the layers from `cut.layer` on see only the kept candidates (`kept`, indices
    /// into `cut.candidates`) and the other rows.
    func run(_ embeddings: Matrix, cache: KVCache, cut: PrefillCut?) -> (logits: [Float], kept: [Int]?)
}

extension LlamaForCausalLM: LanguageModel {}
