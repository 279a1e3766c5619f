import Foundation

/// Caption metrics as pycocoevalcap computes them: PTB-style tokenisation, corpus BLEU-1..4
/// ("closest" reference length), ROUGE-L (β = 1.2, best precision and recall over the
/// references) and CIDEr-D (n-grams up to 4, document frequencies from the evaluated set's own
/// references, Gaussian length penalty σ = 6, clipped counts, ×10).
public enum CaptionMetrics {
    /// Tokens the tokenizer step drops.
    static let punctuation: Set<String> = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":",
                                           "-", "--", "...", ";"]

    /// PTBTokenizer with `-lowerCase`, then the punctuation tokens removed, joined by spaces.
    /// Tokenised on the original case, then lowercased: words keep inner hyphens, periods,
    /// slashes and digit groups; clitics ('s, n't, 're, 've, 'll, 'd, 'm) split off; known
    /// abbreviations and acronyms keep their period ("mr.", "u.s."); brackets become -lrb-,
    /// -rrb-, … (lowercased, so the filter keeps them, as in pycocoevalcap); runs of ! and ?
    /// are one token ("!!" survives the filter).
    public static func tokenize(_ caption: String) -> String {
        let text = caption.pythonReplacing("\n", with: " ")
        var tokens: [String] = []
        for chunk in text.pythonSplit() { tokens += PTBChunk(Array(chunk.unicodeScalars)).tokens() }
        return PTBChunk.joinFractions(tokens).map { $0.pythonLowercased() }.filter { !punctuation.contains($0) }.joined(separator: " ")
    }

    /// n-gram counts (n = 1…4) of a whitespace-split sentence, keyed by the n-gram joined by U+0001.
    static func ngrams(_ words: [String], upTo n: Int = 4) -> [PyText: Int] {
        var counts: [PyText: Int] = [:]
        for k in 1...n where words.count >= k {
            for i in 0...(words.count - k) { counts[PyText(words[i..<i + k].joined(separator: "\u{1}")), default: 0] += 1 }
        }
        return counts
    }

    static func order(_ key: PyText) -> Int { key.scalars.filter { $0 == "\u{1}" }.count + 1 }

    /// Corpus BLEU-1..4 over (hypothesis, references) pairs of tokenised text.
    public static func bleu(_ pairs: [(hypothesis: String, references: [String])]) -> [Double] {
        let n = 4
        var guess = [Double](repeating: 0, count: n), correct = [Double](repeating: 0, count: n)
        var testTotal = 0.0, refTotal = 0.0
        for (hyp, refs) in pairs {
            let words = hyp.pythonSplit()
            let counts = ngrams(words)
            var maxRef: [PyText: Int] = [:]
            var refLengths: [Int] = []
            for r in refs {
                let rw = r.pythonSplit()
                refLengths.append(rw.count)
                for (g, c) in ngrams(rw) { maxRef[g] = max(maxRef[g] ?? 0, c) }
            }
            let testLength = words.count
            // "closest": the reference length nearest the hypothesis, the shorter on a tie.
            let reflen = refLengths.min { (abs($0 - testLength), $0) < (abs($1 - testLength), $1) } ?? 0
            testTotal += Double(testLength)
            refTotal += Double(reflen)
            for k in 0..<n { guess[k] += Double(max(0, testLength - k)) }
            for (g, c) in counts { correct[order(g) - 1] += Double(min(maxRef[g] ?? 0, c)) }
        }
        let small = 1e-9, tiny = 1e-15
        var out: [Double] = []
        var product = 1.0
        for k in 0..<n {
            product *= (correct[k] + tiny) / (guess[k] + small)
            out.append(pow(product, 1.0 / Double(k + 1)))
        }
        let ratio = (testTotal + tiny) / (refTotal + small)
        if ratio < 1 { out = out.map { $0 * exp(1 - 1 / ratio) } }
        return out
    }

    /// ROUGE-L of one hypothesis against its references (tokens split on single spaces).
    public static func rougeL(hypothesis: String, references: [String]) -> Double {
        let beta = 1.2
        let c = hypothesis.pythonSplit(" ")
        var precisions: [Double] = [], recalls: [Double] = []
        for r in references {
            let t = r.pythonSplit(" ")
            let l = Double(lcs(t, c))
            precisions.append(l / Double(c.count))
            recalls.append(l / Double(t.count))
        }
        let p = precisions.max() ?? 0, r = recalls.max() ?? 0
        guard p != 0 && r != 0 else { return 0 }
        return ((1 + beta * beta) * p * r) / (r + beta * beta * p)
    }

    static func lcs(_ a: [String], _ b: [String]) -> Int {
        var previous = [Int](repeating: 0, count: b.count + 1)
        for x in a {
            var current = [Int](repeating: 0, count: b.count + 1)
            for (j, y) in b.enumerated() {
                current[j + 1] = x.pyEquals(y) ? previous[j] + 1 : max(previous[j + 1], current[j])
            }
            previous = current
        }
        return previous[b.count]
    }

    /// CIDEr-D per image; the corpus score is their mean.
    public static func cider(_ pairs: [(hypothesis: String, references: [String])]) -> [Double] {
        let n = 4, sigma = 6.0
        let refCounts = pairs.map { $0.references.map { ngrams($0.pythonSplit()) } }
        var documentFrequency: [PyText: Double] = [:]
        for refs in refCounts {
            var seen = Set<PyText>()
            for r in refs { seen.formUnion(r.keys) }
            for g in seen { documentFrequency[g, default: 0] += 1 }
        }
        let refLength = log(Double(pairs.count))
        func vector(_ counts: [PyText: Int]) -> (vec: [[PyText: Double]], norm: [Double], length: Int) {
            var vec = [[PyText: Double]](repeating: [:], count: n)
            var norm = [Double](repeating: 0, count: n)
            var length = 0
            for (g, tf) in counts {
                let df = log(max(1.0, documentFrequency[g] ?? 0))
                let k = order(g) - 1
                let v = Double(tf) * (refLength - df)
                vec[k][g] = v
                norm[k] += v * v
                if k == 1 { length += tf }
            }
            return (vec, norm.map { $0.squareRoot() }, length)
        }
        var scores: [Double] = []
        for (pair, refs) in zip(pairs, refCounts) {
            let hyp = vector(ngrams(pair.hypothesis.pythonSplit()))
            var score = [Double](repeating: 0, count: n)
            for r in refs {
                let ref = vector(r)
                let delta = Double(hyp.length - ref.length)
                for k in 0..<n {
                    var val = 0.0
                    for (g, v) in hyp.vec[k] {
                        let rv = ref.vec[k][g] ?? 0
                        val += min(v, rv) * rv
                    }
                    if hyp.norm[k] != 0 && ref.norm[k] != 0 { val /= hyp.norm[k] * ref.norm[k] }
                    val *= pow(M_E, -(delta * delta) / (2 * sigma * sigma))
                    score[k] += val
                }
            }
            var average = score.reduce(0, +) / Double(n)
            average /= Double(refs.count)
            average *= 10
            scores.append(average)
        }
        return scores
    }
}
