/// The reference answers of one question: the human answers (10 for VQAv2), a single answer
/// (GQA), or a POPE label.
public struct Reference: Sendable, Equatable {
    public let answers: [String]
    /// `answers` through `AnswerNormalizer.normalize`.
    public let normalized: [String]
    /// The most frequent normalized answers (several when tied).
    public let majority: Set<String>

    public init(answers: [String]) {
        self.answers = answers
        normalized = answers.map(AnswerNormalizer.normalize)
        var counts: [PyText: Int] = [:]
        for a in normalized { counts[PyText(a), default: 0] += 1 }
        let top = counts.values.max() ?? 0
        majority = Set(counts.filter { $0.value == top }.keys.map(\.string))
    }

    /// "yes" or "no" when the (majority) reference answer is one of them: the question then
    /// also counts in the yes/no (POPE) metrics.
    public var yesNoLabel: Bool? {
        if majority.count == 1, majority.first!.pyEquals("yes") { return true }
        if majority.count == 1, majority.first!.pyEquals("no") { return false }
        return nil
    }
}

/// VQA accuracy and exact match, on normalized answers.
public enum VQAScoring {
    /// VQA soft accuracy: for each reference answer, min(1, matches among the others / 3),
    /// averaged over the references (the official leave-one-out average). Prediction and
    /// references are normalized with the EvalAI processor. With a single reference this is
    /// exact match after normalization.
    public static func softAccuracy(prediction: String, reference: Reference) -> Double {
        softAccuracy(normalizedPrediction: AnswerNormalizer.normalize(prediction), normalizedReferences: reference.normalized)
    }

    public static func softAccuracy(prediction: String, references: [String]) -> Double {
        softAccuracy(prediction: prediction, reference: Reference(answers: references))
    }

    static func softAccuracy(normalizedPrediction p: String, normalizedReferences refs: [String]) -> Double {
        if refs.isEmpty { return 0 }
        if refs.count == 1 { return refs[0].pyEquals(p) ? 1 : 0 }
        return VQAAccuracy.leaveOneOut(prediction: p, humans: refs)
    }

    /// Normalized prediction equals the reference answer (for several, one of the most frequent).
    public static func exactMatch(prediction: String, reference: Reference) -> Bool {
        let normalized = AnswerNormalizer.normalize(prediction)
        return reference.majority.contains { $0.pyEquals(normalized) }
    }
}

/// POPE's reading of an answer (`eval_pope.py`): keep the text before the first ".", drop
/// commas, split on spaces; "No", "not" or "no" among the words means no, anything else yes.
public enum POPE {
    public static func saysYes(_ answer: String) -> Bool { POPEBenchmark.saysYes(answer) }
}

/// Yes/no confusion counts, "yes" being the positive class.
public struct YesNoCounts: Sendable, Equatable {
    public var tp = 0, fp = 0, tn = 0, fn = 0

    public init(tp: Int = 0, fp: Int = 0, tn: Int = 0, fn: Int = 0) {
        self.tp = tp
        self.fp = fp
        self.tn = tn
        self.fn = fn
    }

    public mutating func add(predictedYes: Bool, labelYes: Bool) {
        switch (predictedYes, labelYes) {
        case (true, true): tp += 1
        case (true, false): fp += 1
        case (false, false): tn += 1
        case (false, true): fn += 1
        }
    }

    public var total: Int { tp + fp + tn + fn }
    public var accuracy: Double { ratio(tp + tn, total) }
    public var precision: Double { ratio(tp, tp + fp) }
    public var recall: Double { ratio(tp, tp + fn) }
    public var f1: Double {
        let p = precision, r = recall
        return p + r > 0 ? 2 * p * r / (p + r) : 0
    }
    public var yesRatio: Double { ratio(tp + fp, total) }

    public var json: JSONValue {
        .object([
            "n": .int(Int64(total)), "tp": .int(Int64(tp)), "fp": .int(Int64(fp)), "tn": .int(Int64(tn)),
            "fn": .int(Int64(fn)), "accuracy": .double(accuracy), "precision": .double(precision),
            "recall": .double(recall), "f1": .double(f1), "yes_ratio": .double(yesRatio),
        ])
    }
}

/// 0 when the denominator is 0.
func ratio(_ a: Int, _ b: Int) -> Double { b > 0 ? Double(a) / Double(b) : 0 }

/// Scores of one category (or of everything).
public struct CategoryScore: Sendable, Equatable {
    public let name: String
    public var count = 0
    public var exactMatches = 0
    public var vqaSum = 0.0
    public var yesNo = YesNoCounts()

    public init(name: String) { self.name = name }

    public var exact: Double { ratio(exactMatches, count) }
    public var vqaAccuracy: Double { count > 0 ? vqaSum / Double(count) : 0 }

    public var json: JSONValue {
        .object([
            "category": .string(name), "n": .int(Int64(count)), "exact": .double(exact),
            "vqa_accuracy": .double(vqaAccuracy), "yes_no": yesNo.total > 0 ? yesNo.json : .null,
        ])
    }
}

/// Adds up exact match, VQA accuracy and yes/no metrics per category and overall.
public struct ScoreAccumulator: Sendable {
    public private(set) var overall = CategoryScore(name: "overall")
    private var byName: [String: CategoryScore] = [:]
    /// The name used for questions without a category.
    public static let uncategorized = "-"

    public init() {}

    /// Categories sorted by name.
    public var categories: [CategoryScore] { byName.keys.sorted().map { byName[$0]! } }

    /// A `failed` answer (none, or an error) is wrong and never a yes or a no.
    public mutating func add(category: String?, prediction: String, reference: Reference, failed: Bool = false) {
        let name = category ?? ScoreAccumulator.uncategorized
        var c = byName[name] ?? CategoryScore(name: name)
        let normalized = AnswerNormalizer.normalize(prediction)
        let exact = !failed && reference.majority.contains { $0.pyEquals(normalized) }
        let vqa = failed ? 0 : VQAScoring.softAccuracy(normalizedPrediction: normalized, normalizedReferences: reference.normalized)
        for i in 0..<2 {
            var s = i == 0 ? c : overall
            s.count += 1
            if exact { s.exactMatches += 1 }
            s.vqaSum += vqa
            if let label = reference.yesNoLabel, !failed { s.yesNo.add(predictedYes: POPE.saysYes(prediction), labelYes: label) }
            if i == 0 { c = s } else { overall = s }
        }
        byName[name] = c
    }

    /// The per-category table: category, n, exact, vqa-acc (percent), and pope-f1 when some
    /// questions have yes/no references; then, for those, a yes/no (POPE) table.
    public func table() -> String {
        let rows = categories + [overall]
        let hasYesNo = overall.yesNo.total > 0
        func pct(_ x: Double) -> String { formatFixed(100 * x, decimals: 2) }
        var cells: [[String]] = [["category", "n", "exact", "vqa-acc"] + (hasYesNo ? ["pope-f1"] : [])]
        for r in rows {
            cells.append([r.name, String(r.count), pct(r.exact), pct(r.vqaAccuracy)]
                         + (hasYesNo ? [r.yesNo.total > 0 ? pct(r.yesNo.f1) : "-"] : []))
        }
        var out = alignedTable(cells)
        if hasYesNo {
            var pope: [[String]] = [["yes/no", "n", "acc", "precision", "recall", "f1", "yes-ratio", "TP", "FP", "TN", "FN"]]
            for r in rows where r.yesNo.total > 0 {
                let y = r.yesNo
                pope.append([r.name, String(y.total), pct(y.accuracy), pct(y.precision), pct(y.recall), pct(y.f1),
                             pct(y.yesRatio), String(y.tp), String(y.fp), String(y.tn), String(y.fn)])
            }
            out += "\n" + alignedTable(pope)
        }
        return out
    }

    public var json: JSONValue {
        .object(["overall": overall.json, "categories": .array(categories.map(\.json))])
    }
}

/// Columns separated by two spaces; the first left-aligned, the others right-aligned.
public func alignedTable(_ cells: [[String]]) -> String {
    let columns = cells.map(\.count).max() ?? 0
    var widths = [Int](repeating: 0, count: columns)
    for row in cells { for (j, c) in row.enumerated() { widths[j] = max(widths[j], c.count) } }
    var out = ""
    for row in cells {
        var line = ""
        for (j, c) in row.enumerated() {
            let pad = String(repeating: " ", count: widths[j] - c.count)
            if j == 0 { line += c + pad } else { line += "  " + pad + c }
        }
        while line.hasSuffix(" ") { line.removeLast() }
        out += line + "\n"
    }
    return out
}

/// `x` with exactly `decimals` digits after the point (no Foundation needed).
public func formatFixed(_ x: Double, decimals: Int) -> String {
    guard x.isFinite else { return "nan" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = x < 0
    let scaled = (abs(x) * scale).rounded()
    guard scaled < 9e18 else { return String(x) }
    let n = Int64(scaled)
    let whole = n / Int64(scale)
    var frac = String(n % Int64(scale))
    while frac.count < decimals { frac = "0" + frac }
    return (negative && n != 0 ? "-" : "") + String(whole) + (decimals > 0 ? "." + frac : "")
}

/// An annotation ("key") file: JSON lines (or one JSON array) of objects with `question_id`
/// and one of `answers` (a list of strings, or of objects with an `answer` string, as in the
/// VQA annotation files), `answer` (a string) or `label` (POPE's "yes"/"no").
public struct Annotations: Sendable {
    public let path: String
    private let references: [String: Reference]

    public var count: Int { references.count }

    public init(path: String) throws {
        try self.init(path: path, contents: FileBytes.contents(path))
    }

    /// Throws `malformed` for the first unusable entry (a bad key file is not scored around).
    public init(path: String, contents: [UInt8]) throws {
        self.path = path
        var entries: [(line: Int, value: JSONValue)] = []
        let first = contents.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 || $0 == 0xEF || $0 == 0xBB || $0 == 0xBF) }
        if first == UInt8(ascii: "[") {
            let body = contents.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(contents.dropFirst(3)) : contents
            do {
                guard let array = try JSONValue.parse(body).arrayValue else { throw LineReason("expected a JSON array") }
                entries = array.enumerated().map { (-($0.offset + 1), $0.element) }
            } catch let e as JSONParseError {
                throw EvalFileError.malformed(LineIssue(path: path, line: 1, reason: "invalid JSON: \(e)"))
            }
        } else if first == UInt8(ascii: "{"), let map = Self.idMap(contents) {
            // One JSON object mapping question ids to answers: {"7": ["red"], "q8": "two"}.
            entries = map.enumerated().map { (-($0.offset + 1), .object(["question_id": .string($0.element.key), "answers": $0.element.value])) }
        } else {
            for (number, bytes) in JSONLines.lines(contents) {
                do {
                    entries.append((number, .object(try JSONLines.object(bytes))))
                } catch {
                    throw EvalFileError.malformed(LineIssue(path: path, line: number, reason: "\(error)"))
                }
            }
        }
        var references: [String: Reference] = [:]
        for (line, value) in entries {
            func issue(_ reason: String) -> EvalFileError {
                // Entries of a JSON array are numbered -1, -2, … and reported as "entry N".
                line > 0 ? .malformed(LineIssue(path: path, line: line, reason: reason))
                    : .malformed(LineIssue(path: path, line: 1, reason: "entry \(-line): " + reason))
            }
            guard let o = value.objectValue else { throw issue("expected a JSON object") }
            guard let raw = o["question_id"], let id = QuestionID(raw) else {
                throw issue("\"question_id\" missing or not an integer or string")
            }
            var answers: [String] = []
            if let list = o["answers"] {
                guard let items = list.arrayValue, !items.isEmpty else { throw issue("\"answers\" must be a non-empty list") }
                for item in items {
                    if let s = item.stringValue {
                        answers.append(s)
                    } else if let s = item["answer"]?.stringValue {
                        answers.append(s)
                    } else {
                        throw issue("\"answers\" entries must be strings or objects with an \"answer\" string")
                    }
                }
            } else if let a = o["answer"] {
                guard let s = a.stringValue else { throw issue("\"answer\" must be a string") }
                answers = [s]
            } else if let l = o["label"] {
                guard let s = l.stringValue else { throw issue("\"label\" must be a string") }
                answers = [s]
            } else {
                throw issue("no \"answers\", \"answer\" or \"label\"")
            }
            if references[id.key] != nil { throw issue("question_id \(id) repeats") }
            references[id.key] = Reference(answers: answers)
        }
        self.references = references
    }

    public func reference(for id: QuestionID) -> Reference? { references[id.key] }

    /// The entries of a file that is one JSON object keyed by question id (not a JSON-lines
    /// file, whose first object has a "question_id"), in file order.
    static func idMap(_ contents: [UInt8]) -> [(key: String, value: JSONValue)]? {
        let body = contents.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(contents.dropFirst(3)) : contents
        guard let object = (try? JSONValue.parse(body))?.objectValue, object["question_id"] == nil else { return nil }
        return object.pairs.map { (key: $0.0, value: $0.1.stringValue.map { .array([.string($0)]) } ?? $0.1) }
    }
}

/// Scores answer records against annotations.
public struct ScoreReport: Sendable {
    public var scores = ScoreAccumulator()
    /// Answers whose question has no reference.
    public var unannotated = 0
    /// Answers recording an error (scored as wrong: their text is empty).
    public var failed = 0

    public init() {}

    /// `categoryOf` gives a question's category (from the question file); when it returns nil
    /// the category recorded in the answer's metadata is used.
    public init(records: [AnswerRecord], annotations: Annotations, categoryOf: (QuestionID) -> String? = { _ in nil }) {
        for r in records { add(r, annotations: annotations, category: categoryOf(r.id)) }
    }

    public mutating func add(_ record: AnswerRecord, annotations: Annotations, category: String?) {
        guard let reference = annotations.reference(for: record.id) else {
            unannotated += 1
            return
        }
        if record.error != nil { failed += 1 }
        scores.add(category: category ?? record.category, prediction: record.text, reference: reference)
    }

    public var json: JSONValue {
        guard case .object(var o) = scores.json else { return .null }
        o["unannotated"] = .int(Int64(unannotated))
        o["failed"] = .int(Int64(failed))
        return .object(o)
    }
}
