#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The answer file of a benchmark run, appended durably and resumed. Benchmarks may ask several
/// questions under one `question_id` (MME: two per image; TextVQA: the image id), so a question
/// is known by its id together with its recorded prompt.
public final class BenchmarkAnswerFile {
    public let path: String
    /// Keys (id + prompt) of the questions already answered in the file.
    public private(set) var answered: Set<PyText> = []
    /// Bytes of an incomplete last line that were cut off.
    public let repairedBytes: Int
    private var fd: Int32

    public static func key(_ id: QuestionID, prompt: String) -> PyText { PyText(id.description + "\u{0}" + prompt) }

    /// Opens (creating when absent) `path`; checks every line's settings against `settings` and
    /// cuts off an incomplete last line left by an interrupted run.
    public init(path: String, settings: RecordedSettings) throws {
        self.path = path
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText()) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw EvalFileError.locked(path: path)
        }
        do {
            let bytes = try Durable.readAll(fd: fd, path: path)
            var intact = 0
            var number = 0
            var start = 0
            for k in 0..<bytes.count where bytes[k] == 0x0A {
                number += 1
                let line = Array(bytes[start..<k])
                start = k + 1
                intact = start
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let record: AnswerRecord
                do {
                    record = try AnswerRecord(line: number, bytes: line)
                } catch {
                    throw EvalFileError.corruptAnswers(LineIssue(path: path, line: number, reason: "\(error)"))
                }
                try settings.check(record, path: path)
                answered.insert(Self.key(record.id, prompt: record.object["prompt"]?.stringValue ?? ""))
            }
            repairedBytes = bytes.count - intact
            if repairedBytes > 0 {
                guard ftruncate(fd, off_t(intact)) == 0, fsync(fd) == 0 else {
                    throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText())
                }
            }
            _ = lseek(fd, 0, SEEK_END)
        } catch {
            close(fd)
            fd = -1
            throw error
        }
        self.fd = fd
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Appends one answer line with a single write, then fsync.
    public func append(_ answer: JSONObject) throws {
        var text = ""
        JSONValue.object(answer).write(to: &text)
        text += "\n"
        try Durable.writeAll(fd: fd, bytes: Array(text.utf8), path: path)
        guard fsync(fd) == 0 else { throw EvalFileError.unwritable(path: path, reason: FileBytes.errnoText()) }
        if let id = answer["question_id"].flatMap(QuestionID.init) {
            answered.insert(Self.key(id, prompt: answer["prompt"]?.stringValue ?? ""))
        }
    }

    public func closeFile() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}
