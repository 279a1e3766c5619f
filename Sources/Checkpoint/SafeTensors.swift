import Foundation
import Kernels

/// One tensor entry of a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: String
    public let shape: [Int]
    /// Byte range relative to the start of the data buffer (end exclusive).
    public let begin: Int
    public let end: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped `.safetensors` file with a fully validated header.
///
/// Layout: u64 little-endian header length N, N bytes of JSON, then the data buffer.
/// Validated as the reference reader does: the header is at most 100 MB, lies inside the file
/// and is a JSON object (starting with `{`) with unique names; every tensor has a known dtype,
/// a shape whose byte size prod(shape) × sizeof(dtype) fits in memory and equals its byte
/// range; the ranges, sorted, start at 0 and follow each other with no gap or overlap, and the
/// last one ends exactly at the end of the file.
public final class SafeTensorsFile: @unchecked Sendable {
    public static let maxHeaderBytes = 100_000_000
    public static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
        "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    public let path: String
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    let file: MappedFile
    let dataStart: Int

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        func bad(_ why: String) -> CheckpointError { .invalidHeader(path, why) }
        guard file.size >= 8 else { throw bad("file is \(file.size) bytes, shorter than the 8-byte length prefix") }
        let headerLength = UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw bad("header length \(headerLength) exceeds the 100 MB limit")
        }
        let n = Int(headerLength)
        guard 8 + n <= file.size else {
            throw bad("header length \(n) runs past the end of the \(file.size)-byte file (truncated?)")
        }
        dataStart = 8 + n
        let header = UnsafeRawBufferPointer(start: file.base + 8, count: n)
        guard header.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(header))
        } catch {
            throw bad("header is not valid JSON")
        }
        guard let object = json as? [String: Any] else { throw bad("header is not a JSON object") }
        guard Self.topLevelKeyCount(header) == object.count else { throw bad("header names a tensor twice") }
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in dict {
                    guard let s = v as? String else { throw bad("__metadata__ value for \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            tensors[name] = try Self.tensorInfo(name, value, bad)
        }
        try Self.checkLayout(tensors.values, dataSize: file.size - dataStart, bad)
        self.tensors = tensors
        self.metadata = metadata
    }

    /// One header entry, with its byte size checked against dtype and shape.
    private static func tensorInfo(_ name: String, _ value: Any, _ bad: (String) -> CheckpointError) throws -> TensorInfo {
        guard let entry = value as? [String: Any] else { throw bad("entry \(name) is not an object") }
        guard let dtype = entry["dtype"] as? String, let size = dtypeSizes[dtype] else {
            throw bad("tensor \(name) has an unknown dtype \(String(describing: entry["dtype"] ?? "nil"))")
        }
        guard let shapeAny = entry["shape"] as? [Any], let shape = intArray(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
            throw bad("tensor \(name) has an invalid shape")
        }
        guard let offsetsAny = entry["data_offsets"] as? [Any], let offsets = intArray(offsetsAny), offsets.count == 2,
              offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw bad("tensor \(name) has invalid data_offsets")
        }
        // Every partial product must fit too (a zero dimension must not hide an overflow in
        // the others: a [0, a, b] tensor is viewed as [0, a·b]).
        var bytes = size
        for d in shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: max(d, 1))
            guard !overflow else { throw bad("tensor \(name) has an impossibly large shape \(shape)") }
            bytes = product
        }
        if shape.contains(0) { bytes = 0 }
        let (begin, end) = (offsets[0], offsets[1])
        guard bytes == end - begin else {
            throw bad("tensor \(name) is \(end - begin) bytes but \(dtype) × \(shape) needs \(bytes)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// The byte ranges, sorted, must tile the data buffer exactly: from 0, no gaps, no overlaps,
    /// ending at the end of the file.
    private static func checkLayout(_ infos: some Collection<TensorInfo>, dataSize: Int, _ bad: (String) -> CheckpointError) throws {
        var position = 0
        var previous: String?
        for info in infos.sorted(by: { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }) {
            if info.begin < position {
                throw bad("tensors \(previous ?? "?") and \(info.name) overlap")
            }
            if info.begin > position {
                throw bad("a gap of \(info.begin - position) bytes lies before tensor \(info.name) at offset \(position)")
            }
            guard info.end <= dataSize else {
                throw bad("tensor \(info.name) has offsets [\(info.begin), \(info.end)] outside the \(dataSize)-byte data buffer")
            }
            position = info.end
            previous = info.name
        }
        guard position == dataSize else {
            throw bad("the tensors end at byte \(position) of the data buffer but the file holds \(dataSize) (a wrong header length or trailing bytes)")
        }
    }

    /// Number of keys written in the top-level JSON object, duplicates included (the JSON
    /// decoder keeps only one of two equal keys).
    static func topLevelKeyCount(_ bytes: UnsafeRawBufferPointer) -> Int {
        var depth = 0, count = 0
        var inString = false, escaped = false, expectKey = false
        for b in bytes {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && expectKey { count += 1 }
                expectKey = false
            case UInt8(ascii: "{"):
                depth += 1
                expectKey = depth == 1
            case UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectKey = depth == 1
            default:
                break
            }
        }
        return count
    }

    private static func intArray(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber else { return nil }
            let i = n.int64Value
            guard Double(i) == n.doubleValue else { return nil }
            out.append(Int(i))
        }
        return out
    }

    /// The raw bytes of a tensor, inside the mapping.
    public func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: file.base + dataStart + info.begin, count: info.end - info.begin)
    }

    /// A tensor as a [rows, cols] weight that stays in the file's memory: shape [a, b, c, ...]
    /// is viewed as [a, b·c·...]; a 1-D tensor as [1, n]. Misaligned data is copied once.
    public func weight(_ info: TensorInfo) throws -> Weight {
        let rows = info.shape.count >= 2 ? info.shape[0] : 1
        let cols = info.shape.count >= 2 ? info.shape.dropFirst().reduce(1, *) : info.elementCount
        let raw = bytes(of: info)
        let aligned = Int(bitPattern: raw.baseAddress) % 4 == 0
        switch info.dtype {
        case "F32":
            if aligned {
                return Weight(rows: rows, cols: cols, storage: .f32(raw.baseAddress!.assumingMemoryBound(to: Float.self)), owner: file)
            }
            return Weight(rows: rows, cols: cols, values: try floats(info))
        case "F16", "BF16":
            var owner: AnyObject = file
            var pointer = raw.baseAddress!
            if Int(bitPattern: pointer) % 2 != 0 {
                let copy = Matrix(rows: 1, cols: (raw.count + 3) / 4)
                UnsafeMutableRawPointer(copy.data).copyMemory(from: pointer, byteCount: raw.count)
                owner = copy
                pointer = UnsafeRawPointer(copy.data)
            }
            let p = pointer.assumingMemoryBound(to: UInt16.self)
            return Weight(rows: rows, cols: cols, storage: info.dtype == "F16" ? .f16(p) : .bf16(p), owner: owner)
        default:
            throw CheckpointError.unsupportedDType(file: path, tensor: info.name, dtype: info.dtype)
        }
    }

    /// Advises the kernel that the pages fully inside a tensor's bytes are no longer needed.
    public func releasePages(_ info: TensorInfo) {
        file.releasePages(offset: dataStart + info.begin, count: info.end - info.begin)
    }

    /// A floating-point tensor widened to Float32 (F32, F16, BF16 and F64 are accepted).
    public func floats(_ info: TensorInfo) throws -> [Float] {
        let raw = bytes(of: info)
        let n = info.elementCount
        var out = [Float](repeating: 0, count: n)
        switch info.dtype {
        case "F32":
            out.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
        case "F64":
            for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case "F16", "BF16":
            let w = try weight(info)
            return w.toArray()
        default:
            throw CheckpointError.unsupportedDType(file: path, tensor: info.name, dtype: info.dtype)
        }
        return out
    }

    /// Looks a tensor up by name.
    public func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw CheckpointError.missingTensor(file: path, tensor: name) }
        return t
    }

    /// Convenience: a named floating-point tensor as a matrix [shape[0], rest].
    public func matrix(_ name: String) throws -> Matrix {
        let t = try info(name)
        let rows = t.shape.count >= 2 ? t.shape[0] : 1
        return Matrix(rows: rows, cols: rows == 0 ? 0 : t.elementCount / rows, values: try floats(t))
    }
}
