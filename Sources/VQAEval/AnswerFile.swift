#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line of a LLaVA answer file: `question_id`, `prompt`, `text`, `answer_id`, `model_id`,
/// `metadata`. Only the line's bytes and the fields scoring needs are kept (answer files of
/// 100 000 lines stay small in memory); `object` parses the line again.
public struct AnswerRecord: Sendable {
    public let id: QuestionID
    /// 1-based line number in its file.
    public let line: Int
    /// The line as stored, without its newline.
    public let bytes: [UInt8]
    public let text: String
    /// The failure recorded for this question (`metadata.error`), if it could not be answered.
    public let error: String?
    /// `metadata.category`, when recorded.
    public let category: String?

    public init(line: Int, bytes: [UInt8]) throws {
        let o = try JSONLines.object(bytes[...])
        guard let raw = o["question_id"] else { throw LineReason("no \"question_id\"") }
        guard let id = QuestionID(raw) else { throw LineReason("\"question_id\" must be an integer or a string, not \(raw)") }
        if let t = o["text"], t.stringValue == nil { throw LineReason("\"text\" must be a string") }
        self.id = id
        self.line = line
        self.bytes = bytes
        text = o["text"]?.stringValue ?? ""
        let metadata = o["metadata"]?.objectValue
        error = metadata?["error"]?.stringValue
        category = metadata?["category"]?.stringValue
    }

    /// The whole line, parsed.
    public var object: JSONObject {
        // The bytes were parsed into an object when the record was made.
        (try? JSONLines.object(bytes[...])) ?? JSONObject()
    }

    /// The value at a dotted path such as "metadata.merge".
    public func value(at path: String) -> JSONValue? {
        Self.value(at: path, in: object)
    }

    static func value(at path: String, in object: JSONObject) -> JSONValue? {
        var current: JSONValue? = .object(object)
        for part in path.split(separator: ".") { current = current?[String(part)] }
        return current
    }
}

/// The parsed lines of an answer file, and where its intact part ends.
public struct AnswerFileContents: Sendable {
    public let path: String
    public let records: [AnswerRecord]
    /// Byte length of the intact part: every complete, valid line.
    public let intactLength: Int
    /// Bytes after the intact part: an incomplete or unreadable last line left by an
    /// interrupted run (0 when the file ends cleanly).
    public var tornBytes: Int { totalLength - intactLength }
    public let totalLength: Int

    /// Splits and parses `bytes`. The tail is torn when it has no final newline, or when the
    /// last line is not a valid answer (a crash can leave zero-filled blocks); it is not part
    /// of `records`. Any other invalid line throws `corruptAnswers`. A question_id answered
    /// twice throws `duplicateAnswer`.
    public init(path: String, bytes: [UInt8]) throws {
        self.path = path
        totalLength = bytes.count
        var lines: [(number: Int, start: Int, end: Int)] = []
        var start = 0
        var number = 1
        for k in 0..<bytes.count where bytes[k] == 0x0A {
            lines.append((number, start, k))
            number += 1
            start = k + 1
        }
        var intact = start  // everything up to the last newline, for now
        var records: [AnswerRecord] = []
        var seen: [QuestionID: Int] = [:]
        for (n, (number, s, e)) in lines.enumerated() {
            let slice = bytes[s..<e]
            if !slice.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0D) }) { continue }
            do {
                let record = try AnswerRecord(line: number, bytes: Array(slice))
                if let first = seen[record.id] {
                    throw EvalFileError.duplicateAnswer(id: record.id.description, first: "\(path):\(first)", second: "\(path):\(number)")
                }
                seen[record.id] = number
                records.append(record)
            } catch let reason as LineReason {
                let isLast = n == lines.count - 1 && start == bytes.count
                if isLast {
                    intact = s
                } else {
                    throw EvalFileError.corruptAnswers(LineIssue(path: path, line: number, reason: reason.description))
                }
            }
        }
        intactLength = intact
        self.records = records
    }

    public static func read(_ path: String) throws -> AnswerFileContents {
        try AnswerFileContents(path: path, bytes: FileBytes.contents(path))
    }
}

/// Answer-file problems beyond single lines.
public enum AnswerFileError: Error, CustomStringConvertible, Equatable {
    /// A line without the fields every answer line of `llava eval` has (`text`, `metadata`).
    case notAnAnswerFile(path: String, line: Int, looksLikeKey: Bool)
    /// The same file named twice among the shards to merge.
    case givenTwice(path: String, again: String)

    public var description: String {
        switch self {
        case .notAnAnswerFile(let path, let line, let looksLikeKey):
            "\(path):\(line): not an answer file of llava eval (no \"text\" and \"metadata\")"
                + (looksLikeKey ? "; it looks like reference answers: give it as --annotations" : "")
        case .givenTwice(let path, let again):
            path == again ? "\(path) is given twice" : "\(path) is given twice (again as \(again))"
        }
    }

    /// Throws `notAnAnswerFile` unless `record` has the fields `llava eval` writes.
    static func checkProduced(_ record: AnswerRecord, path: String) throws {
        let object = record.object
        guard object["text"]?.stringValue == nil || object["metadata"]?.objectValue == nil else { return }
        let keyLike = object["answer"] != nil || object["answers"] != nil || object["label"] != nil
        throw notAnAnswerFile(path: path, line: record.line, looksLikeKey: keyLike)
    }
}

/// The settings an answer file was produced with, as dotted paths into each line
/// (`model_id`, `metadata.merge`, …) and the values this run would write there.
public struct RecordedSettings: Sendable {
    public var fields: [(path: String, value: JSONValue)]
    /// What a field that a line lacks stands for (settings added after the line was written).
    public var absentMeans: [String: JSONValue]

    public init(_ fields: [(path: String, value: JSONValue)], absentMeans: [String: JSONValue] = [:]) {
        self.fields = fields
        self.absentMeans = absentMeans
    }

    /// Throws `settingsMismatch` naming the first field where `record` differs.
    public func check(_ record: AnswerRecord, path: String) throws {
        let object = record.object
        for (field, value) in fields {
            let recorded = AnswerRecord.value(at: field, in: object) ?? absentMeans[field]
            if recorded != value {
                throw EvalFileError.settingsMismatch(path: path, line: record.line, field: field,
                                                     recorded: recorded?.description ?? "(absent)", current: value.description)
            }
        }
    }
}

/// Appends answer lines durably, and resumes a file an earlier run left behind.
///
/// Every line is written with one `write` of the complete line (newline included) to a file
/// opened for appending, then `fsync`ed, so a killed run leaves whole lines and at most one
/// incomplete last line. Opening an existing file checks it (settings, question ids,
/// duplicates) before touching it, then cuts off an incomplete last line. An exclusive
/// `flock` keeps two processes from appending to the same file.
public final class AnswerWriter {
    public let path: String
    /// The answers already in the file (after repair), in file order.
    public let existing: [AnswerRecord]
    /// Bytes of an incomplete last line that were cut off.
    public let repairedBytes: Int
    /// Failed answers taken out of the file to be answered again.
    public let removedFailed: Int
    private var fd: Int32
    private var size: Int
    /// Lines in the file (for the line numbers of appended records).
    private var lineCount = 0

    /// Opens (creating when absent) `path` for appending. Throws `settingsMismatch` when a line
    /// was produced with other settings, `foreignAnswers` when a line answers a question that
    /// is not in `questionIDs`, `locked` when another process writes the file. With
    /// `retryFailed`, lines recording an error are removed (the file is rewritten atomically)
    /// so those questions are answered again.
    public init(path: String, settings: RecordedSettings, questionIDs: Set<QuestionID>, retryFailed: Bool = false) throws {
        self.path = path
        var fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 { try? Durable.syncDirectory(of: path) }
        }
        guard fd >= 0 else { throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText()) }
        self.fd = fd
        size = 0
        do {
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                throw EvalFileError.unwritable(path: path, reason: "not a regular file")
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                if errno == EWOULDBLOCK { throw EvalFileError.locked(path: path) }
                throw EvalFileError.unwritable(path: path, reason: "cannot lock: " + FileBytes.errnoText())
            }
            let contents = try AnswerFileContents(path: path, bytes: Durable.readAll(fd: fd, path: path))
            for record in contents.records {
                try AnswerFileError.checkProduced(record, path: path)
                guard questionIDs.contains(record.id) else {
                    throw EvalFileError.foreignAnswers(path: path, line: record.line, id: record.id.description)
                }
                try settings.check(record, path: path)
            }
            var kept = contents.records
            var removed = 0
            if retryFailed && kept.contains(where: { $0.error != nil }) {
                kept = kept.filter { $0.error == nil }
                removed = contents.records.count - kept.count
                let newFD = try Durable.replace(path: path, lines: kept.map(\.bytes), keepOpen: true)
                close(self.fd)
                self.fd = newFD
                size = kept.reduce(0) { $0 + $1.bytes.count + 1 }
                repairedBytes = contents.tornBytes
            } else {
                if contents.tornBytes > 0 {
                    guard ftruncate(fd, off_t(contents.intactLength)) == 0, fsync(fd) == 0 else {
                        throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText())
                    }
                }
                size = contents.intactLength
                repairedBytes = contents.tornBytes
            }
            existing = kept
            lineCount = removed > 0 ? kept.count : kept.last?.line ?? 0
            removedFailed = removed
            let flags = fcntl(self.fd, F_GETFL)
            _ = fcntl(self.fd, F_SETFL, flags | O_APPEND)
        } catch {
            close(self.fd)
            throw error
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Appends one answer line (one `write` of the whole line, then `fsync`) and returns it as
    /// a record. On a failed write the file is cut back to its previous end.
    @discardableResult
    public func append(_ answer: JSONObject) throws -> AnswerRecord {
        var text = ""
        JSONValue.object(answer).write(to: &text)
        text += "\n"
        let bytes = Array(text.utf8)
        do {
            try Durable.writeAll(fd: fd, bytes: bytes, path: path)
            guard fsync(fd) == 0 else { throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText()) }
        } catch {
            _ = ftruncate(fd, off_t(size))
            throw error
        }
        size += bytes.count
        lineCount += 1
        return try AnswerRecord(line: lineCount, bytes: Array(bytes.dropLast()))
    }

    /// Rewrites the file with its lines in the order of `order` (ids not in it go last, as
    /// they were), atomically, when they are not in that order already. A resume appends the
    /// questions it answers after those already in the file; this puts the file back in input
    /// order. Returns whether the file was rewritten.
    @discardableResult
    public func putInOrder(_ order: [QuestionID]) throws -> Bool {
        let contents = try AnswerFileContents(path: path, bytes: Durable.readAll(fd: fd, path: path))
        var rank: [QuestionID: Int] = [:]
        for (k, id) in order.enumerated() where rank[id] == nil { rank[id] = k }
        let ranked = contents.records.enumerated().map { (rank: rank[$0.element.id] ?? order.count + $0.offset, record: $0.element) }
        let sorted = ranked.sorted { $0.rank < $1.rank }
        guard sorted.map(\.record.line) != contents.records.map(\.line) else { return false }
        let newFD = try Durable.replace(path: path, lines: sorted.map(\.record.bytes), keepOpen: true)
        close(fd)
        fd = newFD
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_APPEND)
        size = sorted.reduce(0) { $0 + $1.record.bytes.count + 1 }
        lineCount = sorted.count
        return true
    }

    /// Releases the file and its lock.
    public func closeFile() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}

/// Joins shard answer files, in the order given, into one file.
public enum AnswerMerger {
    /// Checks every shard (complete last line, valid lines, no question_id twice across all
    /// shards, the same values at `settingsFields` everywhere) and writes their lines to
    /// `output` atomically (temporary file, fsync, rename). Returns the number of answers.
    @discardableResult
    public static func merge(shards: [String], into output: String, settingsFields: [String]) throws -> Int {
        var outputInfo = stat()
        let outputExists = stat(output, &outputInfo) == 0
        var lines: [[UInt8]] = []
        var seen: [QuestionID: String] = [:]
        var reference: (values: [JSONValue?], path: String, line: Int)?
        var files: [(dev: UInt64, ino: UInt64, path: String)] = []
        for shard in shards {
            var info = stat()
            if stat(shard, &info) == 0 {
                if let earlier = files.first(where: { $0.dev == UInt64(info.st_dev) && $0.ino == UInt64(info.st_ino) }) {
                    throw AnswerFileError.givenTwice(path: earlier.path, again: shard)
                }
                files.append((UInt64(info.st_dev), UInt64(info.st_ino), shard))
            }
            if outputExists, stat(shard, &info) == 0, info.st_dev == outputInfo.st_dev, info.st_ino == outputInfo.st_ino {
                throw EvalFileError.sameInputAndOutput(path: output)
            }
            let contents = try AnswerFileContents.read(shard)
            if contents.tornBytes > 0 { throw EvalFileError.incompleteShard(path: shard) }
            for record in contents.records {
                let here = "\(shard):\(record.line)"
                if let first = seen[record.id] {
                    throw EvalFileError.duplicateAnswer(id: record.id.description, first: first, second: here)
                }
                seen[record.id] = here
                let values = settingsFields.map { record.value(at: $0) }
                if let reference {
                    for (k, field) in settingsFields.enumerated() where values[k] != reference.values[k] {
                        throw EvalFileError.shardSettingsDiffer(
                            field: field, first: "\(reference.path):\(reference.line)",
                            firstValue: reference.values[k]?.description ?? "(absent)",
                            second: "\(shard):\(record.line)", secondValue: values[k]?.description ?? "(absent)")
                    }
                } else {
                    reference = (values, shard, record.line)
                }
                lines.append(record.bytes)
            }
        }
        _ = try Durable.replace(path: output, lines: lines, keepOpen: false)
        return lines.count
    }
}

/// `answer_id`s like shortuuid's: 22 characters of base 57 from 128 random bits.
public enum AnswerID {
    public static let alphabet = Array("23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")

    public static func make() -> String {
        var g = SystemRandomNumberGenerator()
        var value = (UInt128(g.next() as UInt64) << 64) | UInt128(g.next() as UInt64)
        var out: [Character] = []
        for _ in 0..<22 {
            out.append(alphabet[Int(value % 57)])
            value /= 57
        }
        return String(out)
    }
}

/// File operations that survive a crash at any point.
enum Durable {
    static func readAll(fd: Int32, path: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw EvalFileError.unreadable(path: path, reason: FileBytes.errnoText())
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            offset += off_t(n)
        }
    }

    static func writeAll(fd: Int32, bytes: [UInt8], path: String) throws {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText())
            }
            written += n
        }
    }

    /// Makes a new or renamed entry of `path`'s directory durable.
    static func syncDirectory(of path: String) throws {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let fd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw EvalFileError.unwritable(path: dir, reason: FileBytes.errnoText()) }
        defer { close(fd) }
        _ = fsync(fd)
    }

    /// Replaces `path` with `lines` (each followed by a newline): written to a temporary file
    /// beside it, fsynced, renamed over `path`, directory fsynced. With `keepOpen`, returns the
    /// new file's descriptor, locked exclusively before the rename.
    static func replace(path: String, lines: [[UInt8]], keepOpen: Bool) throws -> Int32 {
        var info = stat()
        if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFREG {
            // Renaming over a device, a pipe or a link would replace it, not write to it.
            throw EvalFileError.unwritable(path: path, reason: "not a regular file")
        }
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EvalFileError.unwritable(path: temp, reason: FileBytes.errnoText()) }
        do {
            if keepOpen { _ = flock(fd, LOCK_EX | LOCK_NB) }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
            for line in lines {
                buffer.append(contentsOf: line)
                buffer.append(0x0A)
            }
            try writeAll(fd: fd, bytes: buffer, path: temp)
            guard fsync(fd) == 0 else { throw EvalFileError.unwritable(path: temp, reason: FileBytes.errnoText()) }
            guard rename(temp, path) == 0 else { throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText()) }
            try syncDirectory(of: path)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        if keepOpen { return fd }
        close(fd)
        return -1
    }
}
