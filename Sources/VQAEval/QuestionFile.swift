import FileAccess
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `question_id`: an integer or a string, written back with the JSON type it was read with.
public enum QuestionID: Hashable, Sendable, CustomStringConvertible {
    case int(Int64)
    case string(String)

    /// Integers and strings only (a float, bool, null, array or object is not an id).
    public init?(_ value: JSONValue) {
        switch value {
        case .int(let i): self = .int(i)
        case .string(let s): self = .string(s)
        default: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case .int(let i): .int(i)
        case .string(let s): .string(s)
        }
    }

    /// The id as JSON text: 17 or "n161313".
    public var description: String { json.description }

    /// The id without its type, for joining with files that may spell it differently
    /// (annotation files sometimes have "17" where the questions have 17).
    public var key: String {
        switch self {
        case .int(let i): String(i)
        case .string(let s): s
        }
    }
}

/// One line of a LLaVA question file (`model_vqa_loader` input).
public struct Question: Sendable, Equatable {
    public let id: QuestionID
    /// Image file name relative to the image folder (or an absolute path).
    public let image: String
    /// The whole user text (with any answer-format suffix it carries).
    public let text: String
    public let category: String?
    /// 1-based line number in the question file.
    public let line: Int

    public init(id: QuestionID, image: String, text: String, category: String? = nil, line: Int) {
        self.id = id
        self.image = image
        self.text = text
        self.category = category
        self.line = line
    }

    /// The image's path: `image` under `folder`, or `image` itself when it is absolute
    /// (as Python's `os.path.join` does).
    public func imagePath(folder: String) -> String {
        if image.hasPrefix("/") || folder.isEmpty { return image }
        return folder.hasSuffix("/") ? folder + image : folder + "/" + image
    }
}

/// A line that could not be used, with where it is and why.
public struct LineIssue: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int
    public let reason: String

    public init(path: String, line: Int, reason: String) {
        self.path = path
        self.line = line
        self.reason = reason
    }

    public var description: String { "\(path):\(line): \(reason)" }
}

/// Errors of the evaluation files; each names the file (and line) and says what is wrong.
public enum EvalFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case malformed(LineIssue)
    case locked(path: String)
    case corruptAnswers(LineIssue)
    case settingsMismatch(path: String, line: Int, field: String, recorded: String, current: String)
    case foreignAnswers(path: String, line: Int, id: String)
    case duplicateAnswer(id: String, first: String, second: String)
    case incompleteShard(path: String)
    case shardSettingsDiffer(field: String, first: String, firstValue: String, second: String, secondValue: String)
    case sameInputAndOutput(path: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
        case .unwritable(let path, let reason): "\(path): cannot write: \(reason)"
        case .malformed(let issue): issue.description
        case .locked(let path): "\(path) is being written by another llava eval process (it holds the file's lock)"
        case .corruptAnswers(let issue): "\(issue) (only an incomplete last line is repaired automatically; fix or remove this line)"
        case .settingsMismatch(let path, let line, let field, let recorded, let current):
            "\(path) was produced with other settings: line \(line) has \(field) = \(recorded), this run has \(current); use another --answers file or the same settings"
        case .foreignAnswers(let path, let line, let id):
            "\(path):\(line): question_id \(id) is not among this run's questions (the file was written for another question file or shard)"
        case .duplicateAnswer(let id, let first, let second): "question_id \(id) is answered twice: \(first) and \(second)"
        case .incompleteShard(let path):
            "\(path): the last line is incomplete (an interrupted run); resume that shard before merging"
        case .sameInputAndOutput(let path): "\(path) is both an input and the output"
        case .shardSettingsDiffer(let field, let first, let firstValue, let second, let secondValue):
            "the shard files were produced with different settings: \(first) has \(field) = \(firstValue), \(second) has \(secondValue)"
        }
    }
}

/// A JSON-lines file cut into lines with their 1-based numbers.
public enum JSONLines {
    /// Lines of `bytes` (a UTF-8 byte order mark at the start is skipped). A final line without
    /// a newline is included. Lines holding only whitespace are left out.
    public static func lines(_ bytes: [UInt8]) -> [(number: Int, bytes: ArraySlice<UInt8>)] {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var number = 1
        var k = start
        func emit(_ end: Int) {
            let slice = bytes[start..<end]
            if slice.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A) }) { out.append((number, slice)) }
        }
        while k < bytes.count {
            if bytes[k] == 0x0A {
                emit(k)
                number += 1
                start = k + 1
            }
            k += 1
        }
        if start < bytes.count { emit(bytes.count) }
        return out
    }

    /// Parses one line as a JSON object.
    public static func object(_ line: ArraySlice<UInt8>) throws -> JSONObject {
        let value: JSONValue
        do { value = try JSONValue.parse(line) } catch let e as JSONParseError {
            throw LineReason("invalid JSON: \(e.reason) at column \(e.offset + 1)")
        }
        guard let object = value.objectValue else { throw LineReason("expected a JSON object") }
        return object
    }
}

/// Why a line is unusable (becomes a `LineIssue` once the file and line number are known).
public struct LineReason: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A LLaVA question file: one JSON object per line with `question_id` (int or string),
/// `image`, `text` and optionally `category`. Unusable lines (invalid JSON, a missing or
/// mistyped field, a question_id seen before) are collected as issues and left out.
public struct QuestionFile: Sendable {
    public let path: String
    public let questions: [Question]
    public let issues: [LineIssue]

    public init(path: String) throws {
        try self.init(path: path, contents: FileBytes.contents(path))
    }

    public init(path: String, contents: [UInt8]) {
        self.path = path
        var questions: [Question] = []
        var issues: [LineIssue] = []
        var seen: [QuestionID: Int] = [:]
        for (number, bytes) in JSONLines.lines(contents) {
            do {
                let q = try QuestionFile.question(bytes, line: number)
                if let first = seen[q.id] {
                    throw LineReason("question_id \(q.id) repeats (first on line \(first))")
                }
                seen[q.id] = number
                questions.append(q)
            } catch {
                issues.append(LineIssue(path: path, line: number, reason: "\(error)"))
            }
        }
        self.questions = questions
        self.issues = issues
    }

    static func question(_ bytes: ArraySlice<UInt8>, line: Int) throws -> Question {
        let o = try JSONLines.object(bytes)
        guard let rawID = o["question_id"] else { throw LineReason("no \"question_id\"") }
        guard let id = QuestionID(rawID) else { throw LineReason("\"question_id\" must be an integer or a string, not \(rawID)") }
        func string(_ key: String) throws -> String {
            guard let v = o[key] else { throw LineReason("no \"\(key)\"") }
            guard let s = v.stringValue else { throw LineReason("\"\(key)\" must be a string") }
            return s
        }
        let image = try string("image")
        if image.isEmpty { throw LineReason("\"image\" is empty") }
        let text = try string("text")
        var category: String?
        if let c = o["category"], !c.isNull {
            guard let s = c.stringValue else { throw LineReason("\"category\" must be a string") }
            category = s
        }
        return Question(id: id, image: image, text: text, category: category, line: line)
    }
}

/// `--shard I/N`: the I-th (1-based) of N contiguous chunks of ceil(count / N) items, as
/// LLaVA's `--num-chunks N --chunk-idx I-1`. When N does not divide the count, the last
/// non-empty chunk is shorter and any chunks after it are empty.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 1, index <= count else {
            throw LineReason("a shard is I/N with 1 <= I <= N (got \(index)/\(count))")
        }
        self.index = index
        self.count = count
    }

    /// Parses "I/N".
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw LineReason("a shard is written I/N, e.g. 2/8 (got \"\(text)\")")
        }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }

    /// Items per chunk: ceil(total / count).
    public static func chunkSize(total: Int, count: Int) -> Int { (total + count - 1) / count }

    /// Positions of this shard's items among `total`.
    public func range(total: Int) -> Range<Int> {
        let size = Shard.chunkSize(total: total, count: count)
        let start = min((index - 1) * size, total)
        return start..<min(start + size, total)
    }

    public func slice<T>(_ items: [T]) -> [T] { Array(items[range(total: items.count)]) }
}

/// Whole-file reads of question, annotation and answer files: regular files of at most
/// `FileAccess.listByteLimit` bytes, with the system's reason on failure.
public enum FileBytes {
    public static func contents(_ path: String) throws -> [UInt8] {
        do { return try FileAccess.read(path, limit: FileAccess.listByteLimit) } catch let error as FileAccessError {
            switch error {
            case .notFound: throw EvalFileError.unreadable(path: path, reason: "no such file")
            case .notRegular(_, let kind): throw EvalFileError.unreadable(path: path, reason: "is \(kind), not a regular file")
            case .tooLarge(_, let size, let limit):
                throw EvalFileError.unreadable(path: path, reason: "\(size) bytes is more than the limit of \(limit)")
            case .unreadable(_, let reason): throw EvalFileError.unreadable(path: path, reason: reason.lowercased())
            }
        }
    }

    static func errnoText(_ code: Int32 = errno) -> String {
        switch code {
        case ENOENT: "no such file"
        default: String(cString: strerror(code)).lowercased()
        }
    }
}
