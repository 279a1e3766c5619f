/// The leave-one-out VQA accuracy several official evaluators share: for each of the human
/// answers, min(1, matches among the other answers / 3), averaged. Strings are compared by code
/// points.
public enum VQAAccuracy {
    public static func leaveOneOut(prediction: String, humans: [String]) -> Double {
        guard !humans.isEmpty else { return 0 }
        let p = PyText(prediction)
        let h = humans.map { PyText($0) }
        let matches = h.filter { $0 == p }.count
        var total = 0.0
        for answer in h {
            let others = matches - (answer == p ? 1 : 0)
            total += min(1, Double(others) / 3)
        }
        return total / Double(h.count)
    }

    /// The official VQA evaluator (`vqaEval.py`) on one question: newlines and tabs become spaces
    /// and both sides are stripped; only when the human answers are not all identical are both
    /// sides normalised (punctuation with the `\d,\d` comma rule, then number words, articles and
    /// contractions).
    public static func official(prediction: String, humans: [String]) -> Double {
        func clean(_ s: String) -> String {
            s.pythonReplacing("\n", with: " ").pythonReplacing("\t", with: " ").pythonStripped()
        }
        var p = clean(prediction)
        var h = humans.map(clean)
        if Set(h.map { PyText($0) }).count > 1 {
            h = h.map { AnswerNormalizer.processDigitsAndArticles(AnswerNormalizer.processPunctuation($0, commaRun: false)) }
            p = AnswerNormalizer.processDigitsAndArticles(AnswerNormalizer.processPunctuation(p, commaRun: false))
        }
        return leaveOneOut(prediction: p, humans: h)
    }

    /// lmms-eval's `vqav2_process_results`: like the official evaluator, but the EvalAI
    /// punctuation and article steps are always applied.
    public static func lmmsEval(prediction: String, humans: [String]) -> Double {
        func clean(_ s: String) -> String {
            let t = s.pythonReplacing("\n", with: " ").pythonReplacing("\t", with: " ").pythonStripped()
            return AnswerNormalizer.processDigitsAndArticles(AnswerNormalizer.processPunctuation(t))
        }
        return leaveOneOut(prediction: clean(prediction), humans: humans.map(clean))
    }

    /// TextVQA's evaluator (`m4c_evaluator.py`): both sides through the EvalAI processor.
    public static func textVQA(prediction: String, humans: [String]) -> Double {
        leaveOneOut(prediction: AnswerNormalizer.normalize(prediction), humans: humans.map(AnswerNormalizer.normalize))
    }
}
