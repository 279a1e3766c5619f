/// GQA testdev-balanced, scored as LLaVA's converter and GQA's `eval.py` do: the answer loses
/// its trailing periods and is lowercased, then must equal the gold answer exactly (no article,
/// number or punctuation normalisation). Accuracy is over balanced questions, with binary/open
/// accuracy, accuracy per structural and semantic type, reasoning steps and question length, and
/// the chi-square answer-distribution score. Validity and plausibility need the choices file the
/// testdev release lacks; they are reported as 0, as the script does.
public struct GQABenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.gqa
    public let folder: String
    public static let questionFile = "llava_gqa_testdev_balanced.jsonl"
    public static let imageFolder = "data/images"
    public static let releaseQuestions = "data/testdev_balanced_questions.json"

    public init(folder: String) { self.folder = folder }

    public func questions() throws -> [BenchmarkItem] {
        try llavaQuestions(Self.questionFile, imageFolder: Self.imageFolder)
    }

    struct Release: Decodable {
        struct Operation: Decodable {
            let operation: String
            let argument: String
        }
        struct Types: Decodable {
            let structural: String
            let semantic: String
        }
        struct Groups: Decodable {
            let global: String?
        }
        let question: String
        let answer: String
        let isBalanced: Bool
        let types: Types
        let groups: Groups
        let semantic: [Operation]
    }

    /// `convert_gqa_for_eval.py`: `text.rstrip('.').lower()`.
    public static func prediction(_ text: String) -> String {
        text.pythonRightStripped(".").pythonLowercased()
    }

    /// Reasoning steps: operations other than exist / query: name / choose name.
    static func steps(_ q: Release) -> Int {
        q.semantic.filter { op in
            let text = op.operation + ": " + op.argument
            return !["exist", "query: name", "choose name"].contains { text.pythonContains($0) }
        }.count
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let release = try ReleaseFile.decode([String: Release].self, path(Self.releaseQuestions))
        // The converted predictions file, in answer-file order.
        var submission: [JSONValue] = []
        var predictions: [String: String] = [:]
        for a in answers.answers where !a.failed {
            submission.append(.object(["questionId": a.id.json, "prediction": .string(Self.prediction(a.text))]))
            predictions[a.id.key] = Self.prediction(a.text)
        }
        var all = Tally(), binary = Tally(), open = Tally()
        var structural: [String: Tally] = [:], semantic: [String: Tally] = [:]
        var steps: [Int: Tally] = [:], words: [Int: Tally] = [:]
        var gold: [String: [PyText: Int]] = [:], predicted: [String: [PyText: Int]] = [:]
        var unanswered: [QuestionID] = []
        for qid in release.keys.sorted(by: { PyText($0) < PyText($1) }) {
            let q = release[qid]!
            guard q.isBalanced else { continue }
            let p = predictions[qid]
            if p == nil { unanswered.append(.string(qid)) }
            let right = p.map { $0.pyEquals(q.answer) } ?? false
            all.add(right)
            if q.types.structural == "query" { open.add(right) } else { binary.add(right) }
            structural[q.types.structural, default: Tally()].add(right)
            semantic[q.types.semantic, default: Tally()].add(right)
            steps[Self.steps(q), default: Tally()].add(right)
            words[q.question.pythonSplit().count, default: Tally()].add(right)
            if let group = q.groups.global {
                gold[group, default: [:]][PyText(q.answer), default: 0] += 1
                if let p { predicted[group, default: [:]][PyText(p), default: 0] += 1 }
            }
        }
        func table<K>(_ t: [K: Tally], _ key: (K) -> String) -> JSONValue {
            .object(JSONObject(t.map { (key($0.key), JSONValue.object(["accuracy": .double($0.value.percent), "count": .int(Int64($0.value.count))])) }
                .sorted { PyText($0.0) < PyText($1.0) }))
        }
        let metrics: JSONObject = [
            "accuracy": .double(all.percent),
            "binary": .double(binary.percent),
            "open": .double(open.percent),
            "validity": .double(0),
            "plausibility": .double(0),
            "distribution": .double(Self.chiSquare(gold: gold, predicted: predicted) / 100),
            "accuracy_per_structural_type": table(structural) { $0 },
            "accuracy_per_semantic_type": table(semantic) { $0 },
            "accuracy_per_steps": table(steps) { String($0) },
            "accuracy_per_words": table(words) { String($0) },
        ]
        return BenchmarkScore(benchmark: name, headline: ["accuracy": .double(all.percent)], metrics: metrics,
                              questions: all.count, unanswered: unanswered, submission: .array(submission))
    }

    /// GQA's distribution score: per global group, Σ (predicted − gold)² / gold over the gold
    /// answers, weighted by the group's size.
    static func chiSquare(gold: [String: [PyText: Int]], predicted: [String: [PyText: Int]]) -> Double {
        var sumScore = 0.0, sumOverall = 0.0
        for group in gold.keys.sorted() {
            var score = 0.0, overall = 0.0
            for (answer, e) in gold[group]!.sorted(by: { $0.key < $1.key }) {
                let o = predicted[group]?[answer] ?? 0
                score += Double((o - e) * (o - e)) / Double(e)
                overall += Double(e)
            }
            sumScore += score * overall
            sumOverall += overall
        }
        return sumOverall > 0 ? sumScore / sumOverall : 0
    }
}

/// Right answers out of a count; `percent` is 0 for an empty tally (the scripts' `avg`).
struct Tally: Sendable {
    var right = 0
    var count = 0
    mutating func add(_ isRight: Bool) {
        count += 1
        if isRight { right += 1 }
    }
    var fraction: Double { count > 0 ? Double(right) / Double(count) : 0 }
    var percent: Double { fraction * 100 }
}
