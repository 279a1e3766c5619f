import CKernels
import Foundation

/// Element types of stored tensors that the engine computes with.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"

    public var byteSize: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        }
    }
}

/// A read-only 2-D weight [rows, cols] (PyTorch Linear layout: [out, in]) that stays in its
/// storage type (usually memory-mapped from a checkpoint) and is widened to Float32 on use.
public struct Weight: @unchecked Sendable {
    public enum Storage {
        case f32(UnsafePointer<Float>)
        case f16(UnsafePointer<UInt16>)
        case bf16(UnsafePointer<UInt16>)
        /// Symmetric int8 with one Float32 scale per block of `blockSize` values in a row.
        case q8(UnsafePointer<Int8>, scales: UnsafePointer<Float>, blockSize: Int)
    }

    public let rows: Int
    public let cols: Int
    public let storage: Storage
    /// Keeps the memory behind `storage` alive (a mapped file or an owned buffer).
    public let owner: AnyObject?

    public init(rows: Int, cols: Int, storage: Storage, owner: AnyObject?) {
        self.rows = rows
        self.cols = cols
        self.storage = storage
        self.owner = owner
    }

    /// A weight that owns a Float32 copy of `values` (used for small tensors and tests).
    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols)
        let m = Matrix(rows: rows, cols: cols, values: values)
        self.init(rows: rows, cols: cols, storage: .f32(UnsafePointer(m.data)), owner: m)
    }

    public var dtypeName: String {
        switch storage {
        case .f32: "f32"
        case .f16: "f16"
        case .bf16: "bf16"
        case .q8: "q8"
        }
    }

    /// Bytes held by the weight's storage.
    public var byteCount: Int {
        switch storage {
        case .f32: rows * cols * 4
        case .f16, .bf16: rows * cols * 2
        case .q8(_, _, let block): rows * cols + rows * ((cols + block - 1) / block) * 4
        }
    }

    /// Widens rows `r0 ..< r0+n` into `dst` (row-major, `cols` per row). Exact for f32/f16/bf16.
    public func widenRows(_ r0: Int, count n: Int, into dst: UnsafeMutablePointer<Float>) {
        let offset = r0 * cols
        let total = n * cols
        switch storage {
        case .f32(let p): dst.update(from: p + offset, count: total)
        case .f16(let p): k_f16_to_f32(p + offset, dst, total)
        case .bf16(let p): k_bf16_to_f32(p + offset, dst, total)
        case .q8(let q, let scales, let block):
            let blocksPerRow = (cols + block - 1) / block
            for r in 0..<n {
                let row = q + (r0 + r) * cols
                let s = scales + (r0 + r) * blocksPerRow
                let out = dst + r * cols
                for c in 0..<cols { out[c] = Float(row[c]) * s[c / block] }
            }
        }
    }

    /// One row widened to a new array.
    public func rowArray(_ r: Int) -> [Float] {
        var out = [Float](repeating: 0, count: cols)
        out.withUnsafeMutableBufferPointer { widenRows(r, count: 1, into: $0.baseAddress!) }
        return out
    }

    /// The whole weight widened to Float32.
    public func toArray() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer { widenRows(0, count: rows, into: $0.baseAddress!) }
        return out
    }
}
