/// FastV (Chen et al., ECCV 2024): visual tokens are cut once, inside the language model, during
/// the prompt pass. The first K decoder layers see every token; before layer K (0-based), the
/// visual tokens that received the least attention from the last prompt token in layer K − 1
/// (attention probabilities averaged over heads) are dropped, keeping R of them. Every later
/// layer, and its KV cache, holds only the kept tokens, which keep their original positions.
///
/// What the official code does (`LlamaModel.fastv_forward` of its transformers fork, the KV-cache
/// path): the ranking is the mean over heads of layer K − 1's attention weights, row of the last
/// prompt token, restricted to the image tokens; `topk` picks round(N·(1 − fastv_r)) of them;
/// the kept positions (text and kept image tokens) are sorted, the hidden states gathered, and
/// the position ids become the kept positions. Tokens generated afterwards continue at the full
/// prompt length and attend to every cached token of each layer.
///
/// Where we differ: `fastv_r` is the fraction dropped; our ratio ρ is the fraction kept (as for
/// every other method), so ρ = 1 − fastv_r, and a budget R can be given directly. Ties in the
/// ranking go to the earlier token (`topk`'s order among ties is unspecified).
public enum FastV {
    /// Visual tokens kept out of `n`: the budget, or int(round(ρ·n)) (half to even) at least 1.
    public static func keptCount(visualTokens n: Int, options: MergeOptions) -> Int {
        options.keep ?? DivPrune.keptCount(tokens: n, ratio: options.ratio ?? 1)
    }

    /// The indices of the `keep` highest `scores` (clamped to 0 ... scores.count), in increasing
    /// index order; ties go to the lower index.
    public static func select(scores: [Float], keep: Int) -> [Int] {
        descendingOrder(scores).prefix(max(0, keep)).sorted()
    }
}

extension FastV: TokenReducer {
    public static let name = "fastv"
    public static let summary = "FastV: visual tokens cut once inside the language model, after layer --fastv-layer, by the attention the last prompt token pays them"
    public static let site = ReducerSite.decoder
    public static let needs: ReducerNeeds = [.decoderAttention]
    public static let parameters: Set<ReducerParameter> = [.fastvLayer]
}

extension MergeMethod {
    public static let fastV = MergeMethod(FastV.self)
}
