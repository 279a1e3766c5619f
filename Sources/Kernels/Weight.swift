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
        /// Symmetric int8 with one Float32 scale per row and block of columns, in the layout of
        /// the VNNI int8 matrix product (see `PackedQ8`).
        case q8(PackedQ8)
        /// 4-bit values in blocks of 32 columns with an F16 scale (see `PackedQ4`).
        case q4(PackedQ4)
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
        case .q4: "q4"
        }
    }

    /// The 16-bit storage and whether it is BF16, for F16/BF16 weights.
    var halfStorage: (UnsafePointer<UInt16>, Bool)? {
        switch storage {
        case .f16(let p): (p, false)
        case .bf16(let p): (p, true)
        default: nil
        }
    }

    /// Bytes held by the weight's storage.
    public var byteCount: Int {
        switch storage {
        case .f32: rows * cols * 4
        case .f16, .bf16: rows * cols * 2
        case .q8(let p): p.byteCount
        case .q4(let p): p.byteCount
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
        case .q8(let p):
            k_q8p_unpack_rows(p.values, p.scales, cols, p.block, r0, n, dst)
        case .q4(let p):
            k_q4p_unpack_rows(p.values, p.scales, cols, r0, n, dst)
        }
    }

    /// Whether `quantizedQ8` can quantize this weight (rows split into blocks of 32 or more).
    public var canQuantizeQ8: Bool { cols % 32 == 0 && cols > 0 }

    /// An int8 copy (`PackedQ8`). The original storage is only read. Returns self when already
    /// quantized or when the row length is not a multiple of 32.
    public func quantizedQ8() -> Weight {
        if case .q8 = storage { return self }
        guard canQuantizeQ8, !isQuantized else { return self }
        let packed = PackedQ8(rows: rows, cols: cols)
        forEachWidenedChunk { tmp, r0, n in
            k_q8p_pack(tmp, cols, rows, cols, packed.block, r0, r0 + n, packed.values, packed.scales, packed.sums)
        }
        return Weight(rows: rows, cols: cols, storage: .q8(packed), owner: packed)
    }

    /// Whether the weight is already int8 or 4-bit.
    public var isQuantized: Bool {
        switch storage {
        case .q8, .q4: true
        default: false
        }
    }

    /// A 4-bit copy (`PackedQ4`). Returns self when already quantized or when the row length is
    /// not a multiple of 32.
    public func quantizedQ4() -> Weight {
        guard canQuantizeQ8, !isQuantized else { return self }
        let packed = PackedQ4(rows: rows, cols: cols)
        forEachWidenedChunk { tmp, r0, n in
            k_q4p_pack(tmp, cols, rows, cols, r0, r0 + n, packed.values, packed.scales)
        }
        return Weight(rows: rows, cols: cols, storage: .q4(packed), owner: packed)
    }

    /// Runs `body(rows, firstRow, count)` on blocks of up to 64 rows widened to Float32, the
    /// blocks spread over the threads (what the quantizers pack from).
    private func forEachWidenedChunk(_ body: (UnsafeMutablePointer<Float>, Int, Int) -> Void) {
        let chunk = 64
        parallelFor((rows + chunk - 1) / chunk, workPerItem: chunk * cols) { range in
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: chunk * cols)
            defer { tmp.deallocate() }
            for c in range {
                let r0 = c * chunk, n = min(chunk, rows - r0)
                widenRows(r0, count: n, into: tmp)
                body(tmp, r0, n)
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

/// An int8 weight in the layout of the VNNI matrix product (`gemm_q8.c`): groups of 16 rows,
/// 4 columns side by side; one scale per row and block of `block` columns (the largest of 128,
/// 64, 32 dividing the row length), and 128 × the block sums that undo the activations' offset.
public final class PackedQ8: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let block: Int
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Int32>
    /// The memory the arrays live in when they are not owned (a mapped quantized checkpoint).
    private let mapping: AnyObject?

    init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        block = Self.block(cols: cols)
        let count = k_q8p_values_size(rows, cols)
        values = Self.zeroed(count, of: Int8.self)
        let n = k_q8p_scales_count(rows, cols, block)
        scales = Self.zeroed(n, of: Float.self)
        sums = Self.zeroed(n, of: Int32.self)
        mapping = nil
    }

    /// A view of arrays already in this layout (`valuesCount`, `scalesCount` long), kept alive by
    /// `mapping`; they are only read.
    public init(rows: Int, cols: Int, values: UnsafeRawPointer, scales: UnsafeRawPointer, sums: UnsafeRawPointer,
                mapping: AnyObject) {
        self.rows = rows
        self.cols = cols
        block = Self.block(cols: cols)
        self.values = UnsafeMutablePointer(mutating: values.assumingMemoryBound(to: Int8.self))
        self.scales = UnsafeMutablePointer(mutating: scales.assumingMemoryBound(to: Float.self))
        self.sums = UnsafeMutablePointer(mutating: sums.assumingMemoryBound(to: Int32.self))
        self.mapping = mapping
    }

    /// The block length for rows of `cols` values: the largest of 128, 64, 32 dividing it.
    public static func block(cols: Int) -> Int { [128, 64, 32].first { cols % $0 == 0 } ?? 32 }

    /// Bytes of `values` and elements of `scales` (and of `sums`) for a matrix shape.
    public static func sizes(rows: Int, cols: Int) -> (values: Int, scales: Int) {
        (k_q8p_values_size(rows, cols), k_q8p_scales_count(rows, cols, block(cols: cols)))
    }

    /// Whether the arrays are a view of a mapped file rather than owned memory.
    public var isMapped: Bool { mapping != nil }

    /// Bytes of `values`, and elements of `scales` and of `sums`.
    public var valuesCount: Int { k_q8p_values_size(rows, cols) }
    public var scalesCount: Int { k_q8p_scales_count(rows, cols, block) }
    public var valueBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: values, count: valuesCount) }
    public var scaleBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: scales, count: scalesCount * 4) }
    public var sumBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: sums, count: scalesCount * 4) }

    /// Zero-filled memory on a 64-byte boundary: every vector load of the product reads one cache
    /// line (a plain allocation of this size starts 16 bytes past one, and each load would read two).
    static func zeroed<T>(_ count: Int, of type: T.Type) -> UnsafeMutablePointer<T> {
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    deinit {
        guard mapping == nil else { return }
        UnsafeMutableRawPointer(values).deallocate()
        UnsafeMutableRawPointer(scales).deallocate()
        UnsafeMutableRawPointer(sums).deallocate()
    }

    /// Row groups of 16.
    var rowGroups: Int { (rows + 15) / 16 }

    public var byteCount: Int { k_q8p_values_size(rows, cols) + k_q8p_scales_count(rows, cols, block) * 8 }
}

/// A 4-bit weight in the layout of the VNNI q4 product (`gemm_q4.c`): for each group of 16 rows
/// and block of 32 columns, 256 bytes of nibbles (value + 8) and 16 F16 scales. 4.5 bits per
/// weight.
public final class PackedQ4: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    let values: UnsafeMutablePointer<UInt8>
    let scales: UnsafeMutablePointer<UInt16>
    /// The memory the arrays live in when they are not owned (a mapped quantized checkpoint).
    private let mapping: AnyObject?

    init(rows: Int, cols: Int) {
        precondition(cols % 32 == 0 && cols > 0)
        self.rows = rows
        self.cols = cols
        values = PackedQ8.zeroed(k_q4p_values_size(rows, cols), of: UInt8.self)
        scales = PackedQ8.zeroed(k_q4p_scales_count(rows, cols), of: UInt16.self)
        mapping = nil
    }

    /// A view of arrays already in this layout, kept alive by `mapping`; they are only read.
    public init(rows: Int, cols: Int, values: UnsafeRawPointer, scales: UnsafeRawPointer, mapping: AnyObject) {
        precondition(cols % 32 == 0 && cols > 0)
        self.rows = rows
        self.cols = cols
        self.values = UnsafeMutablePointer(mutating: values.assumingMemoryBound(to: UInt8.self))
        self.scales = UnsafeMutablePointer(mutating: scales.assumingMemoryBound(to: UInt16.self))
        self.mapping = mapping
    }

    deinit {
        guard mapping == nil else { return }
        UnsafeMutableRawPointer(values).deallocate()
        UnsafeMutableRawPointer(scales).deallocate()
    }

    /// Bytes of `values` and elements (F16) of `scales` for a matrix shape.
    public static func sizes(rows: Int, cols: Int) -> (values: Int, scales: Int) {
        (k_q4p_values_size(rows, cols), k_q4p_scales_count(rows, cols))
    }

    /// Whether the arrays are a view of a mapped file rather than owned memory.
    public var isMapped: Bool { mapping != nil }

    /// Bytes of `values`, and elements (F16) of `scales`.
    public var valuesCount: Int { k_q4p_values_size(rows, cols) }
    public var scalesCount: Int { k_q4p_scales_count(rows, cols) }
    public var valueBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: values, count: valuesCount) }
    public var scaleBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: scales, count: scalesCount * 2) }

    /// Row groups of 16.
    var rowGroups: Int { (rows + 15) / 16 }

    public var byteCount: Int { k_q4p_values_size(rows, cols) + k_q4p_scales_count(rows, cols) * 2 }
}
