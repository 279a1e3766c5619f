import Kernels

/// CDPruner (Zhang et al., NeurIPS 2025), training-free, once on the projector's output: the
/// visual tokens kept are a greedy maximum a posteriori set of a determinantal point process
/// whose kernel couples their similarity with their relevance to the prompt (conditional DPP).
/// Nothing merges; the kept tokens keep their original order.
///
/// What the official code does (`llava/model/llava_arch.py`, `encode_images`; the tower returns
/// the patch features, CLIP's projected embedding of every patch and CLIP's text embedding of
/// each of M text segments of the prompt):
/// 1. s_ij = cos(x_i, x_j) over the projector outputs x (divided by their norm, Float32);
/// 2. q_i = mean over the segments of −cos(e_i, t_m) (CLIP image and text embeddings divided by
///    their norm), then q ← (q − min q + 1e-6) / (max q − min q);
/// 3. L_ij = q_i·s_ij·q_j;
/// 4. fast greedy MAP inference, K steps: d² starts as diag L; step i picks j = argmax d² (first
///    on ties), e_n = (L_jn − Σ_{t<i} c_tj·c_tn) / √d²_j, c_i = e, d² −= e², d²_j = −∞;
/// 5. kept: the picked tokens, as a mask over the tokens (original order).
///
/// Where we differ: once the largest d² left is not positive (zero, negative or NaN: K beyond
/// the numerical rank of L, such as duplicated tokens), the official √ and division give NaN or
/// infinities, after which its argmax picks NaN entries (the first one, so low indices, some
/// twice) and fewer than K tokens may be kept. We pick that step's j as the official code does
/// and fill the remaining picks with the tokens not picked of highest relevance q (index order
/// on ties): always exactly K tokens. When every q is equal (the official division by zero gives
/// infinities) every q is taken as 1, the kernel then being the similarity. A zero row stays zero
/// (the official division gives NaN). The argmax only looks at tokens not yet picked (the
/// official one sees their −∞, which differs only once NaN appeared).
/// Rounding: as the official steps compute in Float32 with PyTorch 2.13 and MKL on an AVX2 CPU:
/// norms in eight lanes, the similarity as MKL's product (chains of fused multiply-adds,
/// `torchProducts`), the relevance as its narrow product (eight lanes, a tree), Σ c_tj·c_tn in
/// order t = 0, 1, … without fusing, the element-wise steps in the official order. Two steps are
/// not reproduced bit for bit: PyTorch's square root (MKL's vector math) is one ulp off the
/// correctly rounded root, which we use, for about one value in seven; and with one text segment
/// (M = 1) PyTorch computes the relevance as a matrix–vector product whose order of summation we
/// do not reproduce (about two values in three differ in the last bit). Picks differ only where
/// such a last-bit difference decides them: two d² within about one ulp of each other, or d² at
/// the level of rounding noise (beyond the kernel's numerical rank).
public enum CDPruner {
    /// The normalised relevance q of each of the N tokens (N values), from CLIP's image embedding
    /// of each token [N, E] and CLIP's text embedding of each of M prompt segments [M, E].
    public static func relevance(imageEmbeds: Matrix, textEmbeds: Matrix) -> [Float] {
        let n = imageEmbeds.rows, m = textEmbeds.rows
        precondition(n >= 1 && m >= 1, "CDPruner needs at least one token and one text segment")
        precondition(imageEmbeds.cols == textEmbeds.cols,
                     "CDPruner: image embeddings of width \(imageEmbeds.cols), text embeddings of width \(textEmbeds.cols)")
        let image = torchNormalizedRows(imageEmbeds), text = torchNormalizedRows(textEmbeds)
        var q = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var sum = -torchNarrowDot(image.row(i), text.row(0), image.cols)
            for t in 1..<m { sum = sum + -torchNarrowDot(image.row(i), text.row(t), image.cols) }
            q[i] = sum / Float(m)
        }
        let low = q.min()!, high = q.max()!
        let range = high - low
        guard range > 0 && range.isFinite else { return [Float](repeating: 1, count: n) }
        let epsilon: Float = 1e-6
        return q.map { ($0 - low + epsilon) / range }
    }

    /// The picked token indices in the order picked: exactly `keep` of the N rows of `features`
    /// [N, D] (the projector's outputs), given CLIP's image embedding of each token [N, E] and
    /// CLIP's text embedding of each prompt segment [M, E].
    public static func selectionOrder(features: Matrix, imageEmbeds: Matrix, textEmbeds: Matrix, keep k: Int) -> [Int] {
        let n = features.rows
        precondition(imageEmbeds.rows == n, "CDPruner needs \(n) image embeddings, got \(imageEmbeds.rows)")
        precondition(k >= 1 && k <= n, "CDPruner cannot keep \(k) of \(n) visual tokens")
        let q = relevance(imageEmbeds: imageEmbeds, textEmbeds: textEmbeds)
        let unit = torchNormalizedRows(features)
        let kernel = torchProducts(unit, unit)
        for i in 0..<n {
            let row = kernel.row(i)
            for j in 0..<n { row[j] = q[i] * row[j] * q[j] }
        }

        var d2 = (0..<n).map { kernel[$0, $0] }
        var picked = [Bool](repeating: false, count: n)
        var order: [Int] = []
        order.reserveCapacity(k)
        // c_t for the steps so far, one row of N per step; `projection` holds Σ_t c_tj·c_tn.
        var c = [Float](repeating: 0, count: k * n)
        var projection = [Float](repeating: 0, count: n)
        while order.count < k {
            guard let j = torchArgmax(d2, allowed: { !picked[$0] }) else { break }
            order.append(j)
            picked[j] = true
            let dj = d2[j]
            guard dj > 0 else { break }
            let steps = order.count - 1
            for n0 in 0..<n { projection[n0] = 0 }
            c.withUnsafeMutableBufferPointer { c in
                for t in 0..<steps {
                    let ct = c.baseAddress! + t * n, ctj = ct[j]
                    for m in 0..<n { projection[m] = projection[m] + ctj * ct[m] }
                }
                let root = dj.squareRoot(), lj = kernel.row(j), ci = c.baseAddress! + steps * n
                for m in 0..<n {
                    let e = (lj[m] - projection[m]) / root
                    ci[m] = e
                    d2[m] = d2[m] - e * e
                }
            }
            d2[j] = -.infinity
        }
        if order.count < k {
            // Beyond the kernel's numerical rank: the most relevant tokens not picked.
            let rest = torchDescendingOrder(q.map { $0.isNaN ? -.infinity : $0 }).filter { !picked[$0] }
            order += rest.prefix(k - order.count)
        }
        return order
    }

    /// The kept token indices, ascending.
    public static func select(features: Matrix, imageEmbeds: Matrix, textEmbeds: Matrix, keep k: Int) -> [Int] {
        selectionOrder(features: features, imageEmbeds: imageEmbeds, textEmbeds: textEmbeds, keep: k).sorted()
    }

    /// The plan keeping the selected rows of the projector's output, in their original order.
    public static func plan(features: Matrix, imageEmbeds: Matrix, textEmbeds: Matrix, keep k: Int) -> MergePlan {
        .keeping(select(features: features, imageEmbeds: imageEmbeds, textEmbeds: textEmbeds, keep: k), of: features.rows)
    }
}

extension CDPruner: TokenReducer {
    public static let name = "cdpruner"
    public static let summary = "CDPruner: a conditional DPP keeps K diverse tokens weighted by their CLIP relevance to the question, once, on the projector's output (needs --clip DIR)"
    public static let site = ReducerSite.projector
    public static let needs: ReducerNeeds = [.question]
    public static func projectorPlan(_ embeddings: Matrix, keep: Int, inputs: ProjectorInputs) -> MergePlan {
        guard let imageEmbeds = inputs.imageEmbeds, let textEmbeds = inputs.textEmbeds else {
            preconditionFailure("CDPruner needs the image and question embeddings")
        }
        return plan(features: embeddings, imageEmbeds: imageEmbeds, textEmbeds: textEmbeds, keep: keep)
    }
}

extension MergeMethod {
    public static let cdPruner = MergeMethod(CDPruner.self)
}
