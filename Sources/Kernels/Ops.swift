import CKernels
import Foundation

/// LayerNorm over the last dimension, row by row: y = (x − mean) / sqrt(var + eps) · w + b.
public func layerNorm(_ x: Matrix, weight: [Float], bias: [Float], eps: Float, into y: Matrix) {
    precondition(weight.count == x.cols && bias.count == x.cols && y.cols == x.cols)
    y.rows = x.rows
    weight.withUnsafeBufferPointer { w in
        bias.withUnsafeBufferPointer { b in
            let wp = w.baseAddress!, bp = b.baseAddress!
            parallelFor(x.rows, minPerThread: 16, workPerItem: x.cols) { range in
                for r in range { k_layer_norm(x.row(r), y.row(r), wp, bp, x.cols, eps) }
            }
        }
    }
}

/// RMSNorm (Llama): y = w · x / sqrt(mean(x²) + eps), in Float32.
public func rmsNorm(_ x: Matrix, weight: [Float], eps: Float, into y: Matrix) {
    precondition(weight.count == x.cols && y.cols == x.cols)
    y.rows = x.rows
    weight.withUnsafeBufferPointer { w in
        let wp = w.baseAddress!
        parallelFor(x.rows, minPerThread: 16, workPerItem: x.cols) { range in
            for r in range { k_rms_norm(x.row(r), y.row(r), wp, x.cols, eps) }
        }
    }
}

/// The listed rows of `m`, each divided by max(‖row‖, 1e-12) (PyTorch's `F.normalize`; official
/// ToMe divides without the epsilon, which gives NaN for a zero row). The norm, its inverse and
/// the products are computed in Double and rounded once, so every row has unit norm to Float32
/// precision (a Float32 norm would scale whole rows of similarities by its rounding error). One
/// pass: each thread copies its rows and normalises them while they are in cache.
public func normalizedRows(_ m: Matrix, _ indices: [Int]) -> Matrix {
    let out = Matrix(uninitializedRows: indices.count, cols: m.cols)
    let c = m.cols
    indices.withUnsafeBufferPointer { rows in
        parallelFor(rows.count, minPerThread: 16, workPerItem: c) { range in
            for i in range { out.row(i).update(from: m.row(rows[i]), count: c) }
            k_normalize_rows(out.row(range.lowerBound), range.count, c, c)
        }
    }
    return out
}

/// The first index holding the largest of `count` values (a NaN never wins, unless it comes first).
public func firstArgmax(_ p: UnsafePointer<Float>, _ count: Int) -> (index: Int, value: Float) {
    precondition(count > 0, "argmax of no values")
    let i = k_argmax(p, count)
    return (i, p[i])
}

/// Activation functions, applied in place.
public enum Activation: String, Sendable {
    case quickGelu = "quick_gelu"
    case gelu = "gelu"
    case silu = "silu"

    /// Accepts the names used in Hugging Face configs.
    public init?(huggingFaceName name: String) {
        switch name {
        case "quick_gelu": self = .quickGelu
        case "gelu", "gelu_python": self = .gelu
        case "silu", "swish": self = .silu
        default: return nil
        }
    }
}

public func activate(_ x: Matrix, _ act: Activation) {
    parallelFor(x.rows, minPerThread: 8, workPerItem: x.cols) { range in
        let p = x.row(range.lowerBound)
        let n = range.count * x.cols
        switch act {
        case .quickGelu: k_quick_gelu(p, n)
        case .gelu: k_gelu_erf(p, n)
        case .silu: k_silu(p, n)
        }
    }
}

/// gate = silu(gate) · up (the Llama MLP), in place on `gate`.
public func siluMul(_ gate: Matrix, _ up: Matrix) {
    precondition(gate.rows == up.rows && gate.cols == up.cols)
    parallelFor(gate.rows, minPerThread: 8, workPerItem: 2 * gate.cols) { range in
        k_silu_mul(gate.row(range.lowerBound), up.row(range.lowerBound), range.count * gate.cols)
    }
}

/// y += x (same shape).
public func addInPlace(_ y: Matrix, _ x: Matrix) {
    precondition(y.rows == x.rows && y.cols == x.cols)
    parallelFor(y.rows, minPerThread: 16, workPerItem: 2 * y.cols) { range in
        k_add(y.row(range.lowerBound), x.row(range.lowerBound), range.count * y.cols)
    }
}

/// Softmax of each row, in place.
public func softmaxRows(_ x: Matrix) {
    parallelFor(x.rows, minPerThread: 4, workPerItem: x.cols) { range in
        for r in range { k_softmax(x.row(r), x.cols) }
    }
}

/// out[j] = a · rows[j] (each row `ld` apart, `length` values) for j < count, accumulated in
/// Double with four running sums (sum l takes the products k ≡ l mod 4, leftovers go to sum 0,
/// the result is (s0 + s1) + (s2 + s3)), several rows at a time.
public func doubleDots(_ a: UnsafePointer<Float>, rows: UnsafePointer<Float>, ld: Int, count: Int, length: Int,
                       into out: UnsafeMutablePointer<Double>) {
    k_dots_double(a, rows, ld, count, length, out)
}
