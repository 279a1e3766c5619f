import Kernels

/// ToFu baseline as wired in hchautran/PiToMe (`algo/tofu`): ToMe's bipartite matching, then either
/// prune or a norm-preserving merge.
///
/// What the official code does: layers with i ≤ L/2 "prune": the r matched sources are dropped and
/// every destination stays unchanged. Later layers "tofu": plain mean merge, then each destination
/// is multiplied by max(‖dst‖, max ‖src‖) / ‖dst‖, where all norms are those of the rows before
/// merging. The LLaVA encoder merges on odd layers only, with ToMe's r = floor(N − N·ρ).
///
/// Where we differ: the division uses max(‖dst‖, 1e-12); the ToMe clamp and tie rules apply.
public enum ToFu {
    /// The pruning plan: ToMe's matching with the sources dropped.
    public static func prunePlan(metric: Matrix, remove r: Int) -> MergePlan {
        ToMe.plan(metric: metric, remove: r).droppingMergedRows()
    }

    /// Rescales, in place, every merged row of `merged` (the plan applied to `input`) by
    /// max(‖dst‖, max ‖src‖) / ‖dst‖ with the norms of the rows of `input`.
    public static func preserveNorms(merged: Matrix, input: Matrix, plan: MergePlan) {
        precondition(merged.rows == plan.outputRows && input.rows == plan.inputRows && merged.cols == input.cols)
        let c = input.cols
        plan.members.withUnsafeBufferPointer { members in
            parallelFor(plan.outputRows, minPerThread: 32, workPerItem: c) { range in
                for k in range where plan.starts[k + 1] - plan.starts[k] > 1 {
                    let group = members[plan.starts[k]..<plan.starts[k + 1]]
                    let dstNorm = rowNorm(input.row(group.first!), c)
                    var largest = dstNorm
                    for r in group.dropFirst() { largest = max(largest, rowNorm(input.row(r), c)) }
                    let divisor = max(dstNorm, 1e-12)
                    let o = merged.row(k)
                    for j in 0..<c { o[j] = o[j] / divisor * largest }
                }
            }
        }
    }
}

extension ToFu: TokenReducer {
    public static let name = "tofu"
    public static let summary = "ToFu: pruning while 2·i <= L, norm-preserving merging after; odd layers only"
    public static let site = ReducerSite.towerLayers
    public static func layerStage(layer i: Int, towerDepth l: Int, mergeLayers: Int, options: MergeOptions) -> LayerStep.Stage {
        i % 2 == 0 ? .none : (2 * i <= l ? .tofuPrune : .tofuMerge)
    }
}

extension LayerStep.Stage {
    public static let tofuPrune = halving(name: "tofuPrune", removal: { p, ratio in ToMe.removal(tokens: p + 1, ratio: ratio) },
                                          plan: { step, input in ToFu.prunePlan(metric: input.metric, remove: step.remove) })
    public static let tofuMerge = halving(name: "tofuMerge", removal: { p, ratio in ToMe.removal(tokens: p + 1, ratio: ratio) },
                                          plan: { step, input in ToMe.plan(metric: input.metric, remove: step.remove) },
                                          finish: { merged, input, plan in ToFu.preserveNorms(merged: merged, input: input, plan: plan) })
}

extension MergeMethod {
    public static let tofu = MergeMethod(ToFu.self)
}
