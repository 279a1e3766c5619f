import Foundation
import Kernels

/// A Hugging Face LLaVA checkpoint folder: `config.json` plus either `model.safetensors` or
/// shards listed in `model.safetensors.index.json`. Every shard is memory-mapped.
///
/// Tensor names are normalised to one scheme, the family's `WeightNames` (for LLaVA-1.5 the
/// legacy llava-hf names `language_model.model.*`, `vision_tower.vision_model.*`,
/// `multi_modal_projector.*`, `language_model.lm_head.*`), so checkpoints written by
/// transformers 5 (`model.language_model.*`, `model.vision_tower.*`,
/// `model.multi_modal_projector.*`, `lm_head.*`) load through the same code.
public final class CheckpointFolder: @unchecked Sendable {
    public let directory: String
    public let config: LlavaConfiguration
    /// Canonical tensor name → the file holding it.
    private var locations: [String: (file: SafeTensorsFile, info: TensorInfo)] = [:]
    public private(set) var files: [SafeTensorsFile] = []

    public init(directory: String) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw CheckpointError.missingFile(directory)
        }
        guard isDirectory.boolValue else { throw CheckpointError.unreadable(directory, "not a directory") }
        config = try LlavaConfiguration.load(path: Self.join(directory, "config.json"))

        let indexPath = Self.join(directory, "model.safetensors.index.json")
        let singlePath = Self.join(directory, "model.safetensors")
        if FileManager.default.fileExists(atPath: indexPath) {
            let weightMap = try Self.readIndex(indexPath)
            var opened: [String: SafeTensorsFile] = [:]
            for shard in Set(weightMap.values).sorted() {
                opened[shard] = try SafeTensorsFile(path: Self.join(directory, shard))
            }
            files = opened.keys.sorted().map { opened[$0]! }
            for (name, shard) in weightMap {
                let file = opened[shard]!
                guard let info = file.tensors[name] else {
                    throw CheckpointError.invalidHeader(file.path, "tensor \(name) is listed in model.safetensors.index.json but not stored here")
                }
                try add(name, file, info)
            }
        } else if FileManager.default.fileExists(atPath: singlePath) {
            let file = try SafeTensorsFile(path: singlePath)
            files = [file]
            for (name, info) in file.tensors { try add(name, file, info) }
        } else {
            throw CheckpointError.missingFile(Self.join(directory, "model.safetensors (or model.safetensors.index.json)"))
        }
    }

    private func add(_ name: String, _ file: SafeTensorsFile, _ info: TensorInfo) throws {
        let canonical = weightNames.canonical(name)
        if let existing = locations[canonical] {
            throw CheckpointError.invalidHeader(file.path, "tensor \(name) duplicates \(existing.info.name) in \(existing.file.path)")
        }
        locations[canonical] = (file, info)
    }

    private static func readIndex(_ path: String) throws -> [String: String] {
        let data = try readConfigFile(path)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let map = object["weight_map"] as? [String: Any] else {
            throw CheckpointError.invalidConfig(path, "expected a JSON object with a \"weight_map\" object")
        }
        var out: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String, !shard.contains("/"), !shard.isEmpty else {
                throw CheckpointError.invalidConfig(path, "weight_map entry for \(name) is not a file name")
            }
            out[name] = shard
        }
        if out.isEmpty { throw CheckpointError.invalidConfig(path, "weight_map is empty") }
        return out
    }

    static func join(_ dir: String, _ name: String) -> String {
        (dir as NSString).appendingPathComponent(name)
    }

    /// The family's weight names: the scheme `tensorNames` are in.
    public var weightNames: WeightNames { config.family.weightNames }

    public var tensorNames: [String] { locations.keys.sorted() }

    public func contains(_ name: String) -> Bool { locations[name] != nil }

    /// How many numbered layers `prefix + "0."`, `prefix + "1."`, … have tensors, counted from 0
    /// up to the first number with none.
    public func layerCount(prefix: String) -> Int {
        var present = Set<Int>()
        for name in locations.keys where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]), n >= 0 { present.insert(n) }
        }
        var count = 0
        while present.contains(count) { count += 1 }
        return count
    }

    /// Where a tensor is stored (for error messages).
    public func fileName(of name: String) -> String { locations[name]?.file.path ?? directory }

    private func locate(_ name: String, shape: [Int]) throws -> (SafeTensorsFile, TensorInfo) {
        guard let (file, info) = locations[name] else {
            throw CheckpointError.missingTensor(file: directory, tensor: name)
        }
        guard info.shape == shape else {
            throw CheckpointError.shapeMismatch(file: file.path, tensor: info.name, found: info.shape, expected: shape)
        }
        return (file, info)
    }

    /// A weight of the given shape, kept in the file's memory (2-D view: [shape[0], rest]).
    public func weight(_ name: String, shape: [Int]) throws -> Weight {
        let (file, info) = try locate(name, shape: shape)
        return try file.weight(info)
    }

    /// A small tensor (norm weights, biases, embeddings of the class token) widened to Float32.
    public func floats(_ name: String, shape: [Int]) throws -> [Float] {
        let (file, info) = try locate(name, shape: shape)
        return try file.floats(info)
    }

    /// Drops the file pages holding a tensor from this process's memory (they are re-read from
    /// disk if touched again). Used after a tensor has been converted, e.g. quantized.
    public func releasePages(of name: String) {
        guard let (file, info) = locations[name] else { return }
        file.releasePages(info)
    }

    /// The dtype string of a stored tensor ("F16", …).
    public func dtype(of name: String) -> String? { locations[name]?.info.dtype }

    /// Total bytes of tensor data across all shards.
    public var byteCount: Int { locations.values.reduce(0) { $0 + $1.info.end - $1.info.begin } }
}
