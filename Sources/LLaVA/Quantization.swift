import Checkpoint
import Foundation
import Kernels

/// How a part of the model keeps its matrices in memory.
public enum WeightQuantization: String, Sendable, CaseIterable, Codable {
    /// As stored in the checkpoint (F32, F16 or BF16), widened to Float32 on use: exact.
    case none
    /// Symmetric int8 with one scale per row and block of columns, made at load time; products
    /// run on int8 (activations quantized per row and block on the fly: AMX, AVX-512 VNNI or AVX2).
    case q8
    /// 4-bit: blocks of 32 columns with an F16 scale (4.5 bits per weight), products on int8
    /// activations with AVX-512 VNNI (elsewhere the weights are widened to Float32 on use).
    /// `lm_head` is kept in q8: it alone decides the next token, and it is a small part of the model.
    case q4
}

/// Where a layer gets the matrices of its linear maps.
protocol LinearLoading {
    func callAsFunction(_ name: String, shape: [Int]) throws -> Weight
}

/// The matrices as stored, from any tensor source (the CLIP text tower, which is never quantized).
struct StoredLinearLoader: LinearLoading {
    let source: any TensorSource

    func callAsFunction(_ name: String, shape: [Int]) throws -> Weight { try source.weight(name, shape: shape) }
}

/// Loads the matrices of linear layers, quantizing them when asked and releasing the checkpoint
/// pages they came from, so only the quantized copy stays resident. Rows whose length is not a
/// multiple of 32 (CLIP's patch embedding) stay as stored.
/// A matrix stored already quantized (a folder written by `QuantizedCheckpoint.write`) is used as
/// stored, straight from the mapping.
struct LinearLoader: LinearLoading {
    let checkpoint: CheckpointFolder
    let quantization: WeightQuantization

    /// While set, receives every matrix the loader quantized (`QuantizedCheckpoint.write`).
    nonisolated(unsafe) static var recorder: ((String, Weight) -> Void)?

    func callAsFunction(_ name: String, shape: [Int]) throws -> Weight {
        if let stored = try QuantizedCheckpoint.storedWeight(name, shape: shape, in: checkpoint) { return stored }
        let w = try checkpoint.weight(name, shape: shape)
        guard quantization != .none, w.canQuantizeQ8, !w.isQuantized else { return w }
        let q = quantization == .q4 && !name.hasSuffix("lm_head.weight") ? w.quantizedQ4() : w.quantizedQ8()
        checkpoint.releasePages(of: name)
        Self.recorder?(name, q)
        return q
    }
}

/// A checkpoint folder whose matrices are stored quantized, so loading maps them with no work.
///
/// Layout of its `model.safetensors` (tensor names are the canonical names of `CheckpointFolder`):
/// for each quantized matrix NAME of shape [rows, cols],
/// - `NAME.shape`: I64 [2], the matrix's rows and cols;
/// - q8: `NAME.q8_values` I8 [⌈rows/16⌉, cols/4, 16, 4], `NAME.q8_scales` F32 and `NAME.q8_sums`
///   I32 [⌈rows/16⌉, cols/block, 16] (block: the largest of 128, 64, 32 dividing cols) — the
///   packed int8 layout of `gemm_q8.c`;
/// - q4: `NAME.q4_values` U8 [⌈rows/16⌉, cols/32, 256] and `NAME.q4_scales` F16
///   [⌈rows/16⌉, cols/32, 16] — the packed 4-bit layout of `gemm_q4.c`.
/// Every other tensor is copied as stored. The header's metadata names the formats
/// (`llava_quantization`, `llava_vision_quantization`); the data starts on a 64-byte boundary and
/// the large value arrays come first, each a multiple of 64 bytes long.
public enum QuantizedCheckpoint {
    static let quantizationKey = "llava_quantization"
    static let visionQuantizationKey = "llava_vision_quantization"

    /// The formats a folder was written with (nil for an ordinary checkpoint).
    public static func storedQuantization(of checkpoint: CheckpointFolder) -> (language: WeightQuantization, vision: WeightQuantization)? {
        guard let meta = checkpoint.files.first?.metadata, let language = meta[quantizationKey].flatMap(WeightQuantization.init) else {
            return nil
        }
        return (language, meta[visionQuantizationKey].flatMap(WeightQuantization.init) ?? .none)
    }

    /// The formats to report for a folder: a quantized folder's own, which a request can only repeat.
    static func resolve(_ checkpoint: CheckpointFolder, language: WeightQuantization, vision: WeightQuantization) throws
        -> (WeightQuantization, WeightQuantization) {
        guard let stored = storedQuantization(of: checkpoint) else { return (language, vision) }
        for (asked, have, option) in [(language, stored.language, "--quantize"), (vision, stored.vision, "--quantize-vision")]
        where asked != .none && asked != have {
            throw QuantizationError.conflict(path: checkpoint.fileName(of: ""), stored: have, option: option, asked: asked)
        }
        return (stored.language, stored.vision)
    }

    /// A stored quantized matrix, or nil when `name` is stored as an ordinary tensor.
    static func storedWeight(_ name: String, shape: [Int], in checkpoint: CheckpointFolder) throws -> Weight? {
        guard let file = checkpoint.files.first(where: { $0.tensors[name + ".shape"] != nil }) else { return nil }
        func tensor(_ suffix: String, _ dtype: String, bytes: Int) throws -> UnsafeRawPointer {
            guard let info = file.tensors[name + suffix] else {
                throw CheckpointError.missingTensor(file: file.path, tensor: name + suffix)
            }
            guard info.dtype == dtype, info.end - info.begin == bytes else {
                throw CheckpointError.invalidHeader(file.path, "tensor \(name + suffix) is \(info.dtype) of \(info.end - info.begin) bytes, expected \(dtype) of \(bytes)")
            }
            return file.bytes(of: file.tensors[name + suffix]!).baseAddress!
        }
        let dims = try tensor(".shape", "I64", bytes: 16)
        let stored = [Int(dims.loadUnaligned(as: Int64.self)), Int(dims.loadUnaligned(fromByteOffset: 8, as: Int64.self))]
        guard stored == shape, shape.count == 2, shape[1] % 32 == 0, shape[0] > 0 else {
            throw CheckpointError.shapeMismatch(file: file.path, tensor: name, found: stored, expected: shape)
        }
        let rows = shape[0], cols = shape[1]
        if file.tensors[name + ".q4_values"] != nil {
            let size = PackedQ4.sizes(rows: rows, cols: cols)
            let p = PackedQ4(rows: rows, cols: cols,
                             values: try tensor(".q4_values", "U8", bytes: size.values),
                             scales: try tensor(".q4_scales", "F16", bytes: size.scales * 2), mapping: file)
            return Weight(rows: rows, cols: cols, storage: .q4(p), owner: p)
        }
        let size = PackedQ8.sizes(rows: rows, cols: cols)
        let p = PackedQ8(rows: rows, cols: cols,
                         values: try tensor(".q8_values", "I8", bytes: size.values),
                         scales: try tensor(".q8_scales", "F32", bytes: size.scales * 4),
                         sums: try tensor(".q8_sums", "I32", bytes: size.scales * 4), mapping: file)
        return Weight(rows: rows, cols: cols, storage: .q8(p), owner: p)
    }

    /// Loads `directory` quantized as asked (exactly as `--quantize` would) and writes a folder
    /// holding the quantized matrices and every other tensor as stored, with the config,
    /// tokenizer and preprocessor files (.json, .model, .txt, .jinja) copied. `output` must not
    /// exist or be empty.
    public static func write(from directory: String, to output: String, language: WeightQuantization,
                             vision: WeightQuantization, progress: ((Int, Int) -> Void)? = nil) throws {
        let fm = FileManager.default
        let source = URL(fileURLWithPath: directory).standardizedFileURL.path
        let target = URL(fileURLWithPath: output).standardizedFileURL.path
        guard source != target else { throw QuantizationError.sameFolder(output) }
        if fm.fileExists(atPath: target), !(try fm.contentsOfDirectory(atPath: target)).isEmpty {
            throw QuantizationError.outputNotEmpty(output)
        }
        if storedQuantization(of: try CheckpointFolder(directory: directory)) != nil {
            throw QuantizationError.alreadyQuantized(directory)
        }
        var quantized: [(String, Weight)] = []
        LinearLoader.recorder = { quantized.append(($0, $1)) }
        defer { LinearLoader.recorder = nil }
        let model = try LlavaForConditionalGeneration(directory: directory, quantization: language,
                                                      visionQuantization: vision, progress: progress)
        LinearLoader.recorder = nil
        try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
        let metadata = ["format": "pt", quantizationKey: language.rawValue, visionQuantizationKey: vision.rawValue]
        // Each quantized matrix's [rows, cols]: the bytes of its `.shape` tensor.
        let shapes = quantized.flatMap { [Int64($0.1.rows).littleEndian, Int64($0.1.cols).littleEndian] }
        try shapes.withUnsafeBytes { shapeBytes in
            let sources = try tensorSources(model.checkpoint, quantized: quantized, shapes: shapeBytes)
            try SafeTensorsWriter.write(sources, metadata: metadata, to: target + "/model.safetensors")
        }
        for name in try fm.contentsOfDirectory(atPath: source).sorted() {
            let path = source + "/" + name
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  copiedExtensions.contains((name as NSString).pathExtension),
                  name != "model.safetensors.index.json" else { continue }
            try fm.copyItem(atPath: path, toPath: target + "/" + name)
        }
        withExtendedLifetime(model) {}
    }

    /// The files copied beside the weights: config, tokenizer, preprocessor, chat template.
    static let copiedExtensions: Set<String> = ["json", "model", "txt", "jinja"]

    /// The quantized arrays first (64-byte multiples, so each stays aligned), then the other
    /// tensors as stored, widest element first.
    static func tensorSources(_ checkpoint: CheckpointFolder, quantized: [(String, Weight)],
                              shapes: UnsafeRawBufferPointer) throws -> [SafeTensorsWriter.Source] {
        var large: [SafeTensorsWriter.Source] = [], small: [SafeTensorsWriter.Source] = []
        for (i, (name, w)) in quantized.enumerated() {
            let groups = (w.rows + 15) / 16
            switch w.storage {
            case .q8(let p):
                large.append(.init(name: name + ".q8_values", dtype: "I8", shape: [groups, w.cols / 4, 16, 4], bytes: p.valueBytes))
                small.append(.init(name: name + ".q8_scales", dtype: "F32", shape: [groups, w.cols / p.block, 16], bytes: p.scaleBytes))
                small.append(.init(name: name + ".q8_sums", dtype: "I32", shape: [groups, w.cols / p.block, 16], bytes: p.sumBytes))
            case .q4(let p):
                large.append(.init(name: name + ".q4_values", dtype: "U8", shape: [groups, w.cols / 32, 256], bytes: p.valueBytes))
                small.append(.init(name: name + ".q4_scales", dtype: "F16", shape: [groups, w.cols / 32, 16], bytes: p.scaleBytes))
            default:
                continue
            }
            small.append(.init(name: name + ".shape", dtype: "I64", shape: [2],
                               bytes: UnsafeRawBufferPointer(rebasing: shapes[(i * 16)..<(i * 16 + 16)])))
        }
        let replaced = Set(quantized.map(\.0))
        var rest: [SafeTensorsWriter.Source] = []
        for file in checkpoint.files {
            for info in file.tensors.values {
                let name = checkpoint.weightNames.canonical(info.name)
                guard !replaced.contains(name) else { continue }
                rest.append(.init(name: name, dtype: info.dtype, shape: info.shape, bytes: file.bytes(of: info)))
            }
        }
        let width = { (s: SafeTensorsWriter.Source) in SafeTensorsFile.dtypeSizes[s.dtype] ?? 1 }
        // The scales (multiples of 32 bytes) go after the values; I64 shapes (16 bytes) after them.
        small.sort { (width($0), $0.name) > (width($1), $1.name) }
        rest.sort { (width($0), $0.name) > (width($1), $1.name) }
        return large + small + rest
    }
}

public enum QuantizationError: Error, CustomStringConvertible {
    case conflict(path: String, stored: WeightQuantization, option: String, asked: WeightQuantization)
    case sameFolder(String)
    case outputNotEmpty(String)
    case alreadyQuantized(String)

    public var description: String {
        switch self {
        case .conflict(let path, let stored, let option, let asked):
            "\(path): the weights are stored quantized (\(stored.rawValue)); \(option) \(asked.rawValue) cannot change that (quantize the original checkpoint instead)"
        case .sameFolder(let path): "\(path): the output folder must differ from the model folder"
        case .outputNotEmpty(let path): "\(path): the output folder exists and is not empty"
        case .alreadyQuantized(let path): "\(path): already a quantized folder; quantize the original checkpoint instead"
        }
    }
}
