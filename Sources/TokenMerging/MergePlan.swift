import Kernels

/// What one merge step does to the rows of a token matrix, decided once from the metric and
/// then applied alike to the features, the token sizes and the source map.
///
/// Output row `k` combines the input rows of group `k`. The first entry of a group is the row
/// that survives (ToMe's "destination"); the others are merged into it. Input rows that appear
/// in no group are dropped (pruning). Each input row appears at most once.
///
/// The groups are stored one after another in `members` (group `k` is
/// `members[starts[k] ..< starts[k + 1]]`), so that a plan over hundreds of tokens costs a few
/// arrays rather than one per group.
public struct MergePlan: Equatable, Sendable {
    public let inputRows: Int
    /// The rows of every group, group after group.
    public let members: [Int]
    /// Where each group begins in `members`, and `members.count` last: `outputRows + 1` entries.
    public let starts: [Int]

    public init(inputRows: Int, groups: [[Int]]) {
        var starts = [0]
        starts.reserveCapacity(groups.count + 1)
        for group in groups {
            precondition(!group.isEmpty, "merge plan has an empty group")
            starts.append(starts.last! + group.count)
        }
        self.init(checking: inputRows, members: groups.flatMap { $0 }, starts: starts)
    }

    /// Output row `k` starts from input row `heads[k]`; each `(row, into)` of `merges` joins
    /// output `into`, after the head and the merges listed before it.
    public init(inputRows: Int, heads: [Int], merges: [(row: Int, into: Int)]) {
        var sizes = [Int](repeating: 1, count: heads.count)
        for m in merges {
            precondition(m.into >= 0 && m.into < heads.count, "merge plan output \(m.into) is outside 0..<\(heads.count)")
            sizes[m.into] += 1
        }
        var starts = [Int](repeating: 0, count: heads.count + 1)
        for k in heads.indices { starts[k + 1] = starts[k] + sizes[k] }
        var members = [Int](repeating: 0, count: starts[heads.count])
        var next = starts
        for (k, head) in heads.enumerated() {
            members[next[k]] = head
            next[k] += 1
        }
        for m in merges {
            members[next[m.into]] = m.row
            next[m.into] += 1
        }
        self.init(checking: inputRows, members: members, starts: starts)
    }

    private init(checking inputRows: Int, members: [Int], starts: [Int]) {
        var seen = [Bool](repeating: false, count: inputRows)
        for r in members {
            precondition(r >= 0 && r < inputRows, "merge plan row \(r) is outside 0..<\(inputRows)")
            precondition(!seen[r], "merge plan uses row \(r) twice")
            seen[r] = true
        }
        self.inputRows = inputRows
        self.members = members
        self.starts = starts
    }

    /// Every row kept, in place.
    public static func identity(rows: Int) -> MergePlan {
        MergePlan(checking: rows, members: Array(0..<rows), starts: Array(0...rows))
    }

    /// Only `kept` of `rows` rows, each on its own, in the order given (pruning).
    public static func keeping(_ kept: [Int], of rows: Int) -> MergePlan {
        MergePlan(inputRows: rows, groups: kept.map { [$0] })
    }

    public var outputRows: Int { starts.count - 1 }

    /// The input rows of output row `k`, its surviving row first.
    public func group(_ k: Int) -> ArraySlice<Int> { members[starts[k]..<starts[k + 1]] }

    /// Every group as an array of its own (for reading; the algorithms use `members` and `starts`).
    public var groups: [[Int]] { (0..<outputRows).map { Array(group($0)) } }

    public var isIdentity: Bool {
        outputRows == inputRows && members.elementsEqual(0..<inputRows)
    }

    /// The pruning variant of this plan: every destination row survives unchanged and the rows
    /// that would have merged into it are dropped.
    public func droppingMergedRows() -> MergePlan {
        MergePlan(checking: inputRows, members: starts.dropLast().map { members[$0] }, starts: Array(0...outputRows))
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
    var weights: [Float] = []
    if case .weightedMean(let sizes) = reduction {
        precondition(sizes.count == x.rows, "weighted merge needs \(x.rows) sizes, got \(sizes.count)")
        weights = sizes
    }
    plan.members.withUnsafeBufferPointer { members in
        plan.starts.withUnsafeBufferPointer { starts in
            weights.withUnsafeBufferPointer { w in
                parallelFor(plan.outputRows, minPerThread: 32, workPerItem: (plan.inputRows / max(1, plan.outputRows)) * x.cols) { range in
                    for k in range {
                        combine(members[starts[k]..<starts[k + 1]], of: x, reduction, weights: w, into: out.row(k))
                    }
                }
            }
        }
    }
    return out
}

/// One output row: the rows of `group` (its surviving row first) combined by `reduction`.
@inline(__always)
private func combine(_ group: Slice<UnsafeBufferPointer<Int>>, of x: Matrix, _ reduction: Reduction,
                     weights w: UnsafeBufferPointer<Float>, into o: UnsafeMutablePointer<Float>) {
    let c = x.cols
    let head = group.first!
    o.update(from: x.row(head), count: c)
    if group.count == 1 { return }
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
        var total = w[head]
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
