import Foundation
import Kernels

/// DCT baseline (Fourier-Transformer style, `algo/dct/merge.py` in hchautran/PiToMe).
///
/// What the official code does: strip CLS; orthonormal DCT-II of the T' patch tokens along the
/// token axis (per channel); keep the first ceil(T'·ρ) (lowest-frequency) coefficients; inverse
/// orthonormal DCT at that shorter length; re-attach CLS; cast the result to fp16. The LLaVA encoder
/// applies it on even layers only.
///
/// Where we differ: no fp16 cast (the tower stays in Float32); the transform is one K×T' matrix
/// (cosines evaluated in Double, products through BLAS) instead of an FFT, equal up to rounding.
public enum DCT {
    /// Patch tokens kept at one layer with ratio ρ: ceil(T'·ρ) in Double, at least 1.
    public static func keptCount(patchTokens p: Int, ratio: Double) -> Int {
        max(1, min(p, Int((Double(p) * ratio).rounded(.up))))
    }

    /// The K×T' matrix that maps T' tokens to K: inverse DCT (length K) of the first K DCT-II
    /// coefficients (length T'), both orthonormal.
    public static func lowPassMatrix(patchTokens p: Int, keep k: Int) -> Matrix {
        // Orthonormal DCT-II basis: b_f(t) = s_f·cos(π(2t + 1)f / 2n), s_0 = √(1/n), s_f = √(2/n).
        func basis(length n: Int, frequencies: Int) -> Matrix {  // [position, frequency]
            let m = Matrix(rows: n, cols: frequencies)
            for t in 0..<n {
                for f in 0..<frequencies {
                    let scale = (Double(f == 0 ? 1 : 2) / Double(n)).squareRoot()
                    m[t, f] = Float(scale * cos(Double.pi * Double(2 * t + 1) * Double(f) / Double(2 * n)))
                }
            }
            return m
        }
        // M[n, t] = Σ_f b^K_f(n) · b^T'_f(t): forward over T' positions, inverse over K positions.
        return matmulTransposed(basis(length: k, frequencies: k), basis(length: p, frequencies: k))
    }

    /// Row 0 (CLS) unchanged, then the T' patch rows low-passed to `keep` rows.
    public static func compress(_ x: Matrix, keep k: Int) -> Matrix {
        compress(x, lowPass: lowPassMatrix(patchTokens: x.rows - 1, keep: k))
    }

    /// Same, with the K×T' matrix from `lowPassMatrix` (it depends only on the counts, so a caller
    /// can reuse it across images).
    public static func compress(_ x: Matrix, lowPass: Matrix) -> Matrix {
        let p = x.rows - 1, k = lowPass.rows
        precondition(lowPass.cols == p && k >= 1 && k <= p, "DCT low-pass matrix \(lowPass) does not fit \(p) patch tokens")
        let c = x.cols
        let patchesT = Matrix(rows: c, cols: p)  // patch tokens, transposed
        for t in 0..<p {
            let src = x.row(t + 1)
            for j in 0..<c { patchesT[j, t] = src[j] }
        }
        let low = matmulTransposed(lowPass, patchesT)  // k×c
        let out = Matrix(rows: k + 1, cols: c)
        out.row(0).update(from: x.row(0), count: c)
        (out.data + c).update(from: low.data, count: k * c)
        return out
    }
}

extension DCT: TokenReducer {
    public static let name = "dct"
    public static let summary = "low-pass DCT along the token axis; even layers only (no merge map: every output token mixes every patch)"
    public static let site = ReducerSite.towerLayers
    public static let tracksSources = false
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i % 2 == 0 ? .dct : .none
    }
}

extension LayerStep.Stage {
    public static let dct = LayerStep.Stage(
        name: "dct", removal: { p, ratio in p - DCT.keptCount(patchTokens: p, ratio: ratio) },
        maxRemoval: { max(0, $0 - 1) }, largestInput: { _ in Int.max }, plan: nil,
        transform: { tokens, remove in
            let p = tokens.rows - 1
            return DCT.compress(tokens, lowPass: DCT.lowPassMatrix(patchTokens: p, keep: p - remove))
        })
}

extension MergeMethod {
    public static let dct = MergeMethod(DCT.self)
}
