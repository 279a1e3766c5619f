import Kernels

/// PruMerge+ (Shang et al., LLaVA-PruMerge, ICCV 2025), training-free, once on the tower's patch
/// features before the projector: the patches whose CLS attention is an outlier by the
/// interquartile-range rule, plus spatially uniform samples, are kept; each kept token absorbs its
/// most key-similar neighbours weighted by their CLS attention; one extra token sums the pruned ones.
///
/// What the official code does (`llava/model/multimodal_encoder/clip_encoder.py`,
/// `CLIPVisionTower.token_prune_merge_advanced_plus`, adaptive, as `forward` calls it):
/// 1. a, the CLS attention: q and k of the encoder layer after the feature layer (layer 23 of
///    CLIP-L, whose input is the feature layer −2), one head over the full width:
///    softmax(q kᵀ · C^-½) over all tokens, row 0, patch columns (N values);
/// 2. o = the count of a > Q3 + 1.5·(Q3 − Q1) (numpy's linear percentiles, in Float32); ratio = o / N;
/// 3. kept = the top int(N·ratio) patches by a, most attended first, then the patches
///    0, s, 2s, … < N − 1 that are not among them, s = int(int(1/ratio) / 3), in order;
/// 4. each kept token x_i becomes x_i + Σ a_j·x_j over the 32 other patches (kept or not) whose
///    normalised keys are most similar to its own; the weights are not normalised, so a row is
///    not a convex combination: the kept row has weight 1 and the others sum to less than 1;
/// 5. output: the kept tokens in that order, then Σ a_j·x_j over the patches not kept.
/// The visual-token count is therefore decided per image (kept + 1).
///
/// Where we differ: the official sample range ends at 575 (N − 1 for 576 patches); we use N − 1
/// for any N. With no outlier the official code divides by zero; we keep the most attended patch
/// (o = 1). s is at least 1. Fewer than 33 patches: every other patch is a neighbour. Ties in a
/// keep index order; ties in the similarities keep the official candidate order (the other kept
/// patches, then the pruned ones). Keys are normalised by max(‖k‖, 1e-12) in Double.
/// A token budget K (the official code has none) keeps K − 1 tokens plus the extra one: the
/// outliers by decreasing a, at most K − 1 of them, then, when they are fewer, m evenly spaced
/// patches from the remaining ones in raster order (the j-th of the r remaining at ⌊j·r / m⌋).
public enum PruMergePlus {
    /// Neighbours each kept token absorbs.
    public static let neighbours = 32

    /// The kept patches and the reduced features.
    public struct Result {
        /// Kept patch indices, in output order.
        public let kept: [Int]
        /// For each kept patch, the patches merged into it.
        public let neighbours: [[Int]]
        /// The patches not kept, ascending: the extra token sums them.
        public let pruned: [Int]
        /// [kept + 1, C]: the merged kept tokens, then the extra token.
        public let features: Matrix
    }

    /// The q-th percentile (0…100) of ascending `s`, linear between neighbours, in Float32 as
    /// numpy computes it for a Float32 array.
    static func percentile(sorted s: [Float], _ q: Double) -> Float {
        let position = q / 100 * Double(s.count - 1)
        let i = Int(position.rounded(.down))
        let t = Float(position - Double(i))
        let lo = s[i], hi = s[Swift.min(i + 1, s.count - 1)]
        let d = hi - lo
        return t >= 0.5 ? hi - d * (1 - t) : lo + d * t
    }

    /// How many values lie above Q3 + 1.5·IQR.
    public static func outlierCount(_ a: [Float]) -> Int {
        let s = a.sorted()
        let q1 = percentile(sorted: s, 25), q3 = percentile(sorted: s, 75)
        let upper = q3 + 1.5 * (q3 - q1)
        return a.filter { $0 > upper }.count
    }

    /// The official adaptive selection for the CLS attention of N patches.
    public static func adaptiveSelection(clsAttention a: [Float]) -> [Int] {
        let n = a.count
        precondition(n >= 1, "PruMerge+ needs at least one patch")
        let ratio = Double(Swift.max(1, outlierCount(a))) / Double(n)
        let top = Array(descendingOrder(a).prefix(Int(Double(n) * ratio)))
        let step = Swift.max(1, Int(1 / ratio) / 3)
        let isTop = Set(top)
        return top + stride(from: 0, to: n - 1, by: step).filter { !isTop.contains($0) }
    }

    /// The selection for a budget of K output tokens (K − 1 kept patches and the extra token).
    public static func budgetSelection(clsAttention a: [Float], keep k: Int) -> [Int] {
        let n = a.count
        precondition(k >= 1 && k <= n, "PruMerge+ cannot keep \(k) of \(n) patch tokens")
        let outliers = Array(descendingOrder(a).prefix(Swift.min(k - 1, outlierCount(a))))
        let isOutlier = Set(outliers)
        let remaining = (0..<n).filter { !isOutlier.contains($0) }
        let m = k - 1 - outliers.count
        return outliers + (0..<m).map { remaining[$0 * remaining.count / m] }
    }

    /// Merges `features` [N, C] (patch tokens) into the `kept` ones by `keys` [N, D] (the same
    /// patches' keys) and the CLS attention `a` (N values).
    public static func merge(features x: Matrix, keys: Matrix, clsAttention a: [Float], kept: [Int]) -> Result {
        let n = x.rows, c = x.cols
        precondition(keys.rows == n && a.count == n, "PruMerge+ needs \(n) keys and CLS attention values")
        var isKept = [Bool](repeating: false, count: n)
        for i in kept {
            precondition(!isKept[i], "PruMerge+ keeps patch \(i) twice")
            isKept[i] = true
        }
        let pruned = (0..<n).filter { !isKept[$0] }
        let candidates = kept + pruned
        let sim = matmulTransposed(normalizedRows(keys, kept), normalizedRows(keys, candidates))
        let count = Swift.min(neighbours, n - 1)
        var groups: [[Int]] = []
        let out = Matrix(rows: kept.count + 1, cols: c)
        for (i, own) in kept.enumerated() {
            let s = sim.row(i)
            let nearest = (0..<n).filter { $0 != i }
                .sorted { s[$0] > s[$1] || (s[$0] == s[$1] && $0 < $1) }
                .prefix(count).map { candidates[$0] }
            groups.append(nearest)
            accumulate(x, nearest, a, into: out.row(i))
            let o = out.row(i), src = x.row(own)
            for j in 0..<c { o[j] += src[j] }
        }
        accumulate(x, pruned, a, into: out.row(kept.count))
        return Result(kept: kept, neighbours: groups, pruned: pruned, features: out)
    }

    /// out += Σ a_j·x_j over `rows`.
    private static func accumulate(_ x: Matrix, _ rows: [Int], _ a: [Float], into o: UnsafeMutablePointer<Float>) {
        for r in rows {
            let src = x.row(r), w = a[r]
            for j in 0..<x.cols { o[j] += src[j] * w }
        }
    }
}

extension PruMergePlus: TokenReducer {
    public static let name = "prumerge-plus"
    public static let summary = "PruMerge+: CLS-attention outliers plus uniform samples absorbing their key-nearest neighbours, once, on the feature layer's patches (no ratio or keep: the adaptive count)"
    public static let site = ReducerSite.probeLayer
    public static let needs: ReducerNeeds = [.clsAttention, .keys]
    public static let amount = ReducerAmount.optional
}

extension MergeMethod {
    public static let pruMergePlus = MergeMethod(PruMergePlus.self)
}
