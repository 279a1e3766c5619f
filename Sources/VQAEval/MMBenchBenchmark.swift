import Foundation

/// MMBench dev with circular evaluation. Every TSV row (circular copies are rows whose index is
/// k·1 000 000 + the question's) is asked once, prompted as LLaVA's `model_vqa_mmbench.py
/// --single-pred-prompt`, its image decoded from the row's base64 column in memory. A question
/// scores 1 only when every copy's answer reads as that copy's answer letter. The headline reads
/// answers with VLMEvalKit's exact matching (option letter, else option text); lmms-eval's
/// static reading is given beside it. Accuracy per `category` and `l2-category` as well.
public struct MMBenchBenchmark: BenchmarkAdapter {
    public let name = BenchmarkName.mmbench
    public let folder: String
    public static let table = "mmbench_dev_20230712.tsv"
    public static let suffix = "Answer with the option's letter from the given choices directly."
    static let optionLetters = ["A", "B", "C", "D"]
    static let l2Abbreviations = ["coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
                                  "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR",
                                  "relation_reasoning": "RR", "attribute_reasoning": "AR"]

    public init(folder: String) { self.folder = folder }

    /// One TSV row.
    public struct Row: Sendable {
        public let index: Int64
        public let question: String
        public let hint: String?
        /// Options up to the first empty one, as LLaVA reads them.
        public let options: [String]
        /// Every non-empty option column with its letter (what the answer readers see).
        public let choices: ChoiceReader.Choices
        public let answer: String
        public let category: String
        public let l2Category: String
        public let split: String
        public let imageBase64: String
        public var group: Int64 { index % 1_000_000 }
    }

    /// pandas' default missing-value spellings, which `read_table` turns into NaN.
    static let missing: Set<String> = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                                       "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]

    /// LLaVA's `is_none` on a pandas cell.
    static func isNone(_ s: String) -> Bool {
        missing.contains { $0.pyEquals(s) } || ["nan", "none"].contains { $0.pyEquals(s.pythonLowercased()) }
    }

    public func rows() throws -> [Row] {
        let file = path(Self.table)
        let table = try TSV.read(file)
        func column(_ name: String) throws -> Int {
            guard let k = table.header.firstIndex(where: { $0.pyEquals(name) }) else {
                throw BenchmarkFileError(file, "no \"\(name)\" column")
            }
            return k
        }
        let ci = try column("index"), cq = try column("question"), ch = try column("hint"), ca = try column("answer")
        let cc = try column("category"), cimg = try column("image")
        let cl2 = table.header.firstIndex { $0.pyEquals("l2-category") }
        let cs = table.header.firstIndex { $0.pyEquals("split") }
        let letters = try Self.optionLetters.map { try column($0) }
        return try table.rows.enumerated().map { (k, cells) in
            func cell(_ c: Int) -> String { c < cells.count ? cells[c] : "" }
            guard let index = Int64(cell(ci)) else { throw BenchmarkFileError("\(file):\(k + 2)", "index \"\(cell(ci))\" is not an integer") }
            var options: [String] = []
            for c in letters {
                if Self.isNone(cell(c)) { break }
                options.append(cell(c))
            }
            let choices = zip(Self.optionLetters, letters).compactMap { (l, c) in Self.isNone(cell(c)) ? nil : (l, cell(c)) }
            return Row(index: index, question: cell(cq), hint: Self.isNone(cell(ch)) ? nil : cell(ch), options: options,
                       choices: choices, answer: cell(ca), category: cell(cc), l2Category: cl2.map(cell) ?? "",
                       split: cs.map(cell) ?? "", imageBase64: cell(cimg))
        }
    }

    /// LLaVA's prompt without the suffix: `[hint\n]question\nA. …\nB. …`.
    public static func prompt(_ row: Row) -> String {
        var q = row.question
        if let hint = row.hint { q = hint + "\n" + q }
        for (letter, option) in zip(optionLetters, row.options) { q += "\n" + letter + ". " + option }
        return q
    }

    public func questions() throws -> [BenchmarkItem] {
        try rows().map { row in
            let p = Self.prompt(row)
            let letters = Array(Self.optionLetters.prefix(row.options.count))
            return BenchmarkItem(
                id: .int(row.index), image: .base64(row.imageBase64), text: p + "\n" + Self.suffix, recordedPrompt: p,
                extra: [("round_id", .int(0)), ("options", .array(row.options.map { .string($0) })),
                        ("option_char", .array(letters.map { .string($0) }))])
        }
    }

    public func score(_ answers: AnswerSet) throws -> BenchmarkScore {
        let rows = try rows()
        var unanswered: [QuestionID] = []
        var groups: [Int64: [Row]] = [:]
        for row in rows.sorted(by: { $0.index < $1.index }) { groups[row.group, default: []].append(row) }
        let mains = rows.filter { $0.index < 1_000_000 }.sorted { $0.index < $1.index }
        var vlm: [(Row, Bool)] = [], lmms: [(Row, Bool)] = []
        for row in rows where answers.usable(.int(row.index)) == nil { unanswered.append(.int(row.index)) }
        for main in mains {
            let copies = groups[main.index] ?? [main]
            let texts = copies.map { answers.usable(.int($0.index))?.text }
            vlm.append((main, Self.vlmEvalKitHit(copies, texts)))
            lmms.append((main, Self.lmmsHit(copies, texts)))
        }
        let vlmJSON = Self.vlmEvalKitReport(vlm)
        let lmmsJSON = Self.lmmsReport(lmms)
        return BenchmarkScore(
            benchmark: name,
            headline: ["circular_accuracy_vlmevalkit": vlmJSON["Overall"] ?? .double(0),
                       "circular_accuracy_lmms_eval_static": lmmsJSON["overall"] ?? .double(0)],
            metrics: ["vlmevalkit_exact_matching": .object(vlmJSON), "lmms_eval_static": .object(lmmsJSON)],
            questions: rows.count, unanswered: unanswered, submission: try submissionTable(answers))
    }

    /// The columns LLaVA's `convert_mmbench_for_submission.py` drops from the question table.
    static let droppedColumns = ["hint", "category", "source", "image", "comment", "l2-category"]

    /// The table `convert_mmbench_for_submission.py` uploads (`to_excel`): the question table
    /// without `droppedColumns`, a `prediction` column inserted at position 6 holding the text of
    /// the answer line whose `question_id` is the row's index (the last such line; empty when
    /// none). Cells of a column whose every value reads as a number are numbers, as pandas reads
    /// them; missing values are empty. `{"columns": [...], "rows": [[...]]}`.
    func submissionTable(_ answers: AnswerSet) throws -> JSONValue {
        let table = try TSV.read(path(Self.table))
        let kept = table.header.indices.filter { !Self.droppedColumns.contains(table.header[$0]) }
        let numeric = Set(kept.filter { c in
            table.rows.allSatisfy { row in c >= row.count || Self.isNone(row[c]) || Double(row[c].pythonStripped()) != nil }
        })
        let indexColumn = table.header.firstIndex(of: "index")
        var columns = kept.map { JSONValue.string(table.header[$0]) }
        let at = min(6, columns.count)
        columns.insert(.string("prediction"), at: at)
        let rows: [JSONValue] = table.rows.map { cells in
            var out: [JSONValue] = kept.map { c in
                let text = c < cells.count ? cells[c] : ""
                if Self.isNone(text) { return .null }
                guard numeric.contains(c) else { return .string(text) }
                if let i = Int64(text.pythonStripped()) { return .int(i) }
                return .double(Double(text.pythonStripped())!)
            }
            let index = indexColumn.flatMap { $0 < cells.count ? Int64(cells[$0].pythonStripped()) : nil }
            out.insert(index.flatMap { answers.byID[.int($0)] }.map { .string($0.text) } ?? .null, at: at)
            return .array(out)
        }
        return .object(["columns": .array(columns), "rows": .array(rows)])
    }

    /// VLMEvalKit's `prefetch_circular_group` under exact matching: every copy must read as its letter.
    static func vlmEvalKitHit(_ copies: [Row], _ texts: [String?]) -> Bool {
        for (row, text) in zip(copies, texts) {
            guard let text, let letter = ChoiceReader.vlmEvalKit(text, row.choices), letter.pyEquals(row.answer) else { return false }
        }
        return true
    }

    /// lmms-eval's `eval_sub_data(..., static_only=True)`.
    static func lmmsHit(_ copies: [Row], _ texts: [String?]) -> Bool {
        var pending: [(Row, String)] = []
        for (row, text) in zip(copies, texts) {
            guard let text else { return false }
            let prediction = text.pythonStripped()
            if let letter = ChoiceReader.lmmsPrefetch(prediction, row.choices) {
                if !letter.pyEquals(row.answer) { return false }
            } else {
                pending.append((row, prediction))
            }
        }
        for (row, prediction) in pending {
            let letters = row.choices.map(\.letter).sorted { PyText($0) < PyText($1) }
            let letter = ChoiceReader.lmmsExtract(prediction, letters: letters)
            if letter.isEmpty || !letter.pyEquals(row.answer) { return false }
        }
        return true
    }

    static func mean100(_ hits: [Bool]) -> Double {
        hits.isEmpty ? 0 : 100 * Double(hits.filter { $0 }.count) / Double(hits.count)
    }

    /// `report_acc`: Overall, then each l2-category (abbreviated) and category, sorted.
    static func vlmEvalKitReport(_ hits: [(Row, Bool)]) -> JSONObject {
        let splits = Set(hits.map { PyText($0.0.split) }).sorted()
        var out: JSONObject = ["split": .string(splits.map(\.string).joined(separator: ","))]
        out["Overall"] = .double(mean100(hits.map(\.1)))
        for key in [\Row.l2Category, \Row.category] {
            let names = Set(hits.map { PyText($0.0[keyPath: key]) }).sorted()
            for name in names {
                let label = l2Abbreviations.first { $0.key.pyEquals(name.string) }?.value ?? name.string
                out[label] = .double(mean100(hits.filter { PyText($0.0[keyPath: key]) == name }.map(\.1)))
            }
        }
        return out
    }

    /// lmms-eval's `calculate_hit_rates`: overall, per category and per l2-category.
    static func lmmsReport(_ hits: [(Row, Bool)]) -> JSONObject {
        func table(_ key: KeyPath<Row, String>) -> JSONValue {
            let names = Set(hits.map { PyText($0.0[keyPath: key]) }).sorted()
            return .object(JSONObject(names.map { name in
                (name.string, JSONValue.double(mean100(hits.filter { PyText($0.0[keyPath: key]) == name }.map(\.1))))
            }))
        }
        return ["overall": .double(mean100(hits.map(\.1))), "category": table(\.category), "l2-category": table(\.l2Category)]
    }
}

/// A tab-separated table as pandas' `read_table` reads it: the first line names the columns,
/// a field may be quoted with `"` (doubled inside), and a quoted field may span lines.
enum TSV {
    struct Table {
        let header: [String]
        let rows: [[String]]
    }

    static func read(_ path: String) throws -> Table {
        var bytes = try FileBytes.contents(path)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var records: [[String]] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false, atFieldStart = true
        var k = 0
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field = []
            atFieldStart = true
        }
        while k < bytes.count {
            let b = bytes[k]
            if quoted {
                if b == 0x22 {
                    if k + 1 < bytes.count && bytes[k + 1] == 0x22 { field.append(0x22); k += 1 } else { quoted = false }
                } else {
                    field.append(b)
                }
            } else if b == 0x22 && atFieldStart {
                quoted = true
                atFieldStart = false
            } else if b == 0x09 {
                endField()
            } else if b == 0x0A || b == 0x0D {
                if b == 0x0D && k + 1 < bytes.count && bytes[k + 1] == 0x0A { k += 1 }
                endField()
                if !(fields.count == 1 && fields[0].isEmpty) { records.append(fields) }
                fields = []
            } else {
                field.append(b)
                atFieldStart = false
            }
            k += 1
        }
        if quoted { throw BenchmarkFileError(path, "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty {
            endField()
            records.append(fields)
        }
        guard let header = records.first else { throw BenchmarkFileError(path, "empty table") }
        return Table(header: header, rows: Array(records.dropFirst()))
    }
}
