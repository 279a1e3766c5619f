import Kernels

/// What one merge step does to the rows of a token matrix, decided once from the metric and
/// then applied alike to the features, the token sizes and the source map.
///
/// Output row `k` combines the input rows `groups[k]`. The first entry of a group is the row
/// that survives (ToMe's "destination"); the others are merged into it. Input rows that appear
/// in no group are dropped (pruning). Each input row appears at most once.
public struct MergePlan: Equatable, Sendable {
    public let inputRows: Int
    public let groups: [[Int]]

    public init(inputRows: Int, groups: [[Int]]) {
        var seen = [Bool](repeating: false, count: inputRows)
        for group in groups {
            precondition(!group.isEmpty, "merge plan has an empty group")
            for r in group {
                precondition(r >= 0 && r < inputRows, "merge plan row \(r) is outside 0..<\(inputRows)")
                precondition(!seen[r], "merge plan uses row \(r) twice")
                seen[r] = true
            }
        }
        self.inputRows = inputRows
        self.groups = groups
    }

    /// Every row kept, in place.
    public static func identity(rows: Int) -> MergePlan {
        MergePlan(inputRows: rows, groups: (0..<rows).map { [$0] })
    }

    public var outputRows: Int { groups.count }

    public var isIdentity: Bool {
        groups.count == inputRows && groups.enumerated().allSatisfy { $0.element == [$0.offset] }
    }

    /// The pruning variant of this plan: every destination row survives unchanged and the rows
    /// that would have merged into it are dropped.
    public func droppingMergedRows() -> MergePlan {
        MergePlan(inputRows: inputRows, groups: groups.map { [$0[0]] })
    }
}

/// How the rows of a group are combined.
public enum Reduction: Sendable {
    /// Plain mean, (dst + Σ src) / (1 + n), as PyTorch's `scatter_reduce(mean)` with the
    /// destination included.
    case mean
    /// Σ x·s / Σ s, with `sizes` holding one weight per input row.
    case weightedMean(sizes: [Float])
    /// Σ x (token sizes).
    case sum
    /// Element-wise maximum (0/1 source maps).
    case max
    /// dst + (Σ src) / n: the destination plus the mean of the n rows merged into it (VisionZip's
    /// contextual tokens; not a convex combination).
    case destinationPlusMean
}

/// Applies a merge plan to any matrix whose rows follow the tokens.
/// Groups of one row are copied unchanged whatever the reduction.
public func apply(_ plan: MergePlan, to x: Matrix, _ reduction: Reduction = .mean) -> Matrix {
    precondition(x.rows == plan.inputRows, "merge plan expects \(plan.inputRows) rows, the matrix has \(x.rows)")
    // Every output row is written below (its group's first row copied, then combined), so the
    // threads first touch their own rows instead of rows zeroed by this one.
    let out = Matrix(uninitializedRows: plan.outputRows, cols: x.cols)
    let c = x.cols
    var weights: [Float] = []
    if case .weightedMean(let sizes) = reduction {
        precondition(sizes.count == x.rows, "weighted merge needs \(x.rows) sizes, got \(sizes.count)")
        weights = sizes
    }
    plan.groups.withUnsafeBufferPointer { groups in
        weights.withUnsafeBufferPointer { w in
            parallelFor(groups.count, minPerThread: 32) { range in
                for k in range {
                    let group = groups[k]
                    let o = out.row(k)
                    o.update(from: x.row(group[0]), count: c)
                    if group.count == 1 { continue }
                    switch reduction {
                    case .mean, .sum:
                        for r in group.dropFirst() {
                            let src = x.row(r)
                            for j in 0..<c { o[j] += src[j] }
                        }
                        if case .mean = reduction {
                            let n = Float(group.count)
                            for j in 0..<c { o[j] /= n }
                        }
                    case .weightedMean:
                        var total = w[group[0]]
                        for j in 0..<c { o[j] *= total }
                        for r in group.dropFirst() {
                            let src = x.row(r), s = w[r]
                            for j in 0..<c { o[j] += src[j] * s }
                            total += s
                        }
                        for j in 0..<c { o[j] /= total }
                    case .max:
                        for r in group.dropFirst() {
                            let src = x.row(r)
                            for j in 0..<c { o[j] = Swift.max(o[j], src[j]) }
                        }
                    case .destinationPlusMean:
                        let n = Float(group.count - 1)
                        let sum = [Float](unsafeUninitializedCapacity: c) { buffer, count in
                            buffer.initialize(repeating: 0)
                            for r in group.dropFirst() {
                                let src = x.row(r)
                                for j in 0..<c { buffer[j] += src[j] }
                            }
                            count = c
                        }
                        for j in 0..<c { o[j] += sum[j] / n }
                    }
                }
            }
        }
    }
    return out
}
