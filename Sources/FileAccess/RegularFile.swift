#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a path could not be used as an input file. `reason` is one line without the path; the
/// modules above wrap it in their own error types, which put the path in front.
public enum FileAccessError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(path: String)
    /// A directory, a FIFO, a device, a socket: `kind` says which ("a directory").
    case notRegular(path: String, kind: String)
    case tooLarge(path: String, size: Int, limit: Int)
    case unreadable(path: String, reason: String)

    public var path: String {
        switch self {
        case .notFound(let p), .notRegular(let p, _), .tooLarge(let p, _, _), .unreadable(let p, _): p
        }
    }

    public var reason: String {
        switch self {
        case .notFound: "no such file"
        case .notRegular(_, let kind): "is \(kind), not a regular file"
        case .tooLarge(_, let size, let limit): "is \(size) bytes, more than the limit of \(limit) bytes for this kind of file"
        case .unreadable(_, let reason): "cannot read: \(reason)"
        }
    }

    public var description: String { "\(path): \(reason)" }
}

/// The one way input files are opened: only regular files, checked before they are opened
/// (`stat`) and again on the open descriptor (`fstat`, after an `O_NONBLOCK` open, so a FIFO
/// swapped in between cannot block), and files read whole are capped in size.
public enum FileAccess {
    /// Cap for small files read whole: config.json, model.safetensors.index.json,
    /// preprocessor_config.json, tokenizer_config.json, tokenizer.model, templates.
    public static let configByteLimit = 64 << 20
    /// Cap for question, annotation and answer files read whole.
    public static let listByteLimit = 1 << 30
    /// Cap for image files (the decoders take 32-bit lengths).
    public static let imageByteLimit = Int(Int32.max)

    /// Opens a regular file read-only; the caller closes the descriptor. Returns its size too.
    public static func openRegularFile(_ path: String) throws -> (fd: Int32, size: Int) {
        guard !path.isEmpty else { throw FileAccessError.notFound(path: path) }
        var before = stat()
        guard stat(path, &before) == 0 else { throw failure(path, errno) }
        if let kind = nonRegularKind(before.st_mode) { throw FileAccessError.notRegular(path: path, kind: kind) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, errno) }
        var after = stat()
        guard fstat(fd, &after) == 0 else {
            let code = errno
            close(fd)
            throw failure(path, code)
        }
        if let kind = nonRegularKind(after.st_mode) {
            close(fd)
            throw FileAccessError.notRegular(path: path, kind: kind)
        }
        return (fd, Int(after.st_size))
    }

    /// The whole content of a regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws -> [UInt8] {
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
        guard size <= limit else { throw FileAccessError.tooLarge(path: path, size: size, limit: limit) }
        var out = [UInt8]()
        out.reserveCapacity(size)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure(path, errno)
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            // The file may grow while it is read.
            if out.count > limit { throw FileAccessError.tooLarge(path: path, size: out.count, limit: limit) }
        }
        return out
    }

    static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: nil
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFCHR, S_IFBLK: "a device"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }

    static func failure(_ path: String, _ code: Int32) -> FileAccessError {
        if code == ENOENT || code == ENOTDIR { return .notFound(path: path) }
        return .unreadable(path: path, reason: String(cString: strerror(code)))
    }
}
