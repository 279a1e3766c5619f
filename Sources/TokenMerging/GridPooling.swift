/// 2×2 average pooling of the square patch grid (CLS kept apart): a fixed 4× reduction, applied
/// once, after the last merge layer, so the whole tower runs at full resolution and the projector
/// sees (s/2)² patch tokens, e.g. 24×24 → 12×12 = 144. Not in the official code; a baseline.
///
/// Requires the patch tokens in their original row-major grid order (no earlier merging) and an
/// even grid side. Output order: CLS, then the pooled cells row-major.
public enum GridPooling {
    /// The grid side s when `p` = s² with s even, else nil.
    public static func side(patchTokens p: Int) -> Int? {
        var s = 0
        while (s + 1) * (s + 1) <= p { s += 1 }
        return s * s == p && s > 0 && s % 2 == 0 ? s : nil
    }

    public static func plan(tokens n: Int) -> MergePlan {
        guard let s = side(patchTokens: n - 1) else {
            preconditionFailure("2x2 pooling needs a square, even patch grid; got \(n - 1) patch tokens")
        }
        var groups: [[Int]] = [[0]]
        for y in stride(from: 0, to: s, by: 2) {
            for x in stride(from: 0, to: s, by: 2) {
                let top = 1 + y * s + x
                groups.append([top, top + 1, top + s, top + s + 1])
            }
        }
        return MergePlan(inputRows: n, groups: groups)
    }
}
