import Kernels

/// CrossGET as the official PiToMe repository implements it for the vision tower
/// (`algo/crossget/merge.py`, `crossget`; wiring in `algo/crossget/patch/clip_hf.py`), without the
/// cross-modal guidance of the original paper.
///
/// What the official code does, on the patch tokens (CLS set aside), r = floor(T − T·ρ):
/// 1. D = cos(m_i, m_j) − I (the diagonal becomes about 0, not masked);
/// 2. the rows are reordered by their maximum and the columns by theirs (both descending), and
///    everything on or below the diagonal of the reordered matrix is pushed down by 10⁹;
/// 3. A = the reordered rows sorted by their new maximum, descending; its first r entries are the
///    sources and the rest the kept tokens, and these positions are used directly as token
///    indices (the reordering is not undone);
/// 4. the "best destination" of each source is the argmax of a row that `gather` fills with one
///    repeated value, so it is always the first kept token: all r sources are averaged (plain
///    mean, destination included) into the first kept token;
/// 5. output: CLS, then the kept tokens in the order of A.
/// Steps 3 and 4 are what the code does, not what the paper describes; we follow the code.
/// Layers: the official encoder pops its per-layer ratios from the end of [ρ, 1, ρ, 1, …], so
/// the odd layers merge.
///
/// Where we differ: sorting ties keep index order. Ties are common here (the similarity is
/// symmetric, so mutual nearest neighbours share their maximum) and PyTorch's default sort leaves
/// their order unspecified; the fixtures are made with the official code's sorts made stable. Rows are
/// normalised in Double with max(‖m‖, 1e-12); r is clamped to T − 1.
public enum CrossGET {
    /// Patch tokens removed from `p` at ratio ρ: floor(p − p·ρ) in Double, clamped to p − 1.
    public static func removal(patchTokens p: Int, ratio: Double) -> Int {
        max(0, min(Int((Double(p) - Double(p) * ratio).rounded(.down)), p - 1))
    }

    /// The plan removing `r` patch tokens from `metric` (N rows, row 0 = CLS).
    public static func plan(metric: Matrix, remove r: Int) -> MergePlan {
        let n = metric.rows, t = n - 1
        let r = min(r, t - 1)
        if r <= 0 { return .identity(rows: n) }
        let unit = normalizedRows(metric, Array(1..<n))
        let d = matmulTransposed(unit, unit)
        // Exactly symmetric, so that mutual nearest neighbours tie as they do in the official run.
        for i in 0..<t {
            d[i, i] -= 1
            for j in (i + 1)..<Swift.max(i + 1, t) { d[j, i] = d[i, j] }
        }
        var rowMax = [Float](repeating: -.infinity, count: t), colMax = rowMax
        for i in 0..<t {
            for j in 0..<t {
                rowMax[i] = Swift.max(rowMax[i], d[i, j])
                colMax[j] = Swift.max(colMax[j], d[i, j])
            }
        }
        let rowOrder = descendingOrder(rowMax), colOrder = descendingOrder(colMax)
        // Maximum of each reordered row strictly above the diagonal (the last row has none).
        var upperMax = [Float](repeating: -.infinity, count: t)
        for a in 0..<t {
            let row = d.row(rowOrder[a])
            for b in (a + 1)..<Swift.max(a + 1, t) { upperMax[a] = Swift.max(upperMax[a], row[colOrder[b]]) }
        }
        let ranked = descendingOrder(upperMax)  // positions, used as patch indices as the official code does
        let sources = ranked[..<r].map { $0 + 1 }
        var groups = ranked[r...].map { [$0 + 1] }
        groups[0] += sources
        return MergePlan(inputRows: n, groups: [[0]] + groups)
    }
}

extension CrossGET: TokenReducer {
    public static let name = "crossget"
    public static let summary = "CrossGET as in the official PiToMe code (vision only); odd layers only"
    public static let site = ReducerSite.towerLayers
    public static func layerStage(layer i: Int, towerDepth: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i % 2 == 1 ? .crossGet : .none
    }
}

extension LayerStep.Stage {
    public static let crossGet = LayerStep.Stage(
        name: "crossGet", removal: { p, ratio in CrossGET.removal(patchTokens: p, ratio: ratio) },
        maxRemoval: { max(0, $0 - 1) }, largestInput: { _ in Int.max },  // down to a single patch token
        plan: { step, input in CrossGET.plan(metric: input.metric, remove: step.remove) })
}

extension MergeMethod {
    public static let crossGet = MergeMethod(CrossGET.self)
}
