import CKernels
import Foundation

/// A dense row-major matrix of Float32 in 64-byte-aligned memory.
///
/// It has reference semantics (like a buffer, not like an Array): kernels write into
/// matrices that are allocated once and reused. `rows` can shrink and grow again up to the
/// capacity given at creation, which lets token merging reuse the same buffers.
public final class Matrix: @unchecked Sendable, CustomStringConvertible {
    public let cols: Int
    public let capacityRows: Int
    public let data: UnsafeMutablePointer<Float>
    public var rows: Int {
        didSet { precondition(rows >= 0 && rows <= capacityRows, "Matrix rows \(rows) exceed capacity \(capacityRows)") }
    }

    /// A zero-filled matrix.
    public convenience init(rows: Int, cols: Int, capacityRows: Int? = nil) {
        self.init(uninitializedRows: rows, cols: cols, capacityRows: capacityRows)
        memset(data, 0, max(self.capacityRows * cols, 1) * MemoryLayout<Float>.stride)
    }

    /// A matrix whose values are left as the allocator gives them, for results that overwrite
    /// every value (a gather, a product with β = 0, a merge): zeroing them first would be a
    /// serial pass over memory that the parallel work then writes again.
    public init(uninitializedRows rows: Int, cols: Int, capacityRows: Int? = nil) {
        precondition(rows >= 0 && cols >= 0)
        let capacity = max(capacityRows ?? rows, rows)
        self.rows = rows
        self.cols = cols
        self.capacityRows = capacity
        let bytes = max(capacity * cols, 1) * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating a \(capacity)x\(cols) matrix")
        }
        data = raw.bindMemory(to: Float.self, capacity: max(capacity * cols, 1))
    }

    /// A matrix holding `values` (row-major, count == rows * cols).
    public convenience init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols, "expected \(rows * cols) values, got \(values.count)")
        self.init(rows: rows, cols: cols)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { free(data) }

    /// Asks the allocator to keep freed matrices for reuse instead of returning them to the system
    /// (`k_keep_freed_memory`): the tower frees and allocates matrices of a few megabytes at every
    /// layer, and returned pages fault in again one by one. For programs, not for a library's
    /// callers to decide: it changes the whole process's allocator.
    public static func keepFreedMemoryForReuse() { k_keep_freed_memory() }

    public var count: Int { rows * cols }

    @inline(__always) public subscript(row: Int, col: Int) -> Float {
        get { data[row * cols + col] }
        set { data[row * cols + col] = newValue }
    }

    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<Float> { data + r * cols }

    public func rowArray(_ r: Int) -> [Float] { Array(UnsafeBufferPointer(start: row(r), count: cols)) }

    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    public func copy() -> Matrix {
        let m = Matrix(rows: rows, cols: cols)
        m.data.update(from: data, count: count)
        return m
    }

    /// A new matrix holding the listed rows, in the listed order.
    public func gatherRows(_ indices: [Int]) -> Matrix {
        let m = Matrix(uninitializedRows: indices.count, cols: cols)
        indices.withUnsafeBufferPointer { rows in
            parallelFor(rows.count, minPerThread: 64, workPerItem: cols) { range in
                for i in range { m.row(i).update(from: row(rows[i]), count: cols) }
            }
        }
        return m
    }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    public var description: String { "Matrix(\(rows)x\(cols))" }
}
