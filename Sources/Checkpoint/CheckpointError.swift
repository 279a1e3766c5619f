import FileAccess
import Foundation

/// Everything that can be wrong with a checkpoint folder. Each case names the file.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case unreadable(String, String)
    case invalidHeader(String, String)
    case invalidConfig(String, String)
    case missingTensor(file: String, tensor: String)
    case shapeMismatch(file: String, tensor: String, found: [Int], expected: [Int])
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// The path is not a regular file, is too large to read whole, or cannot be opened.
    case file(FileAccessError)

    /// Wraps a file-access failure; a missing file keeps its own case.
    public init(_ error: FileAccessError) {
        if case .notFound(let path) = error { self = .missingFile(path) } else { self = .file(error) }
    }

    public var description: String {
        switch self {
        case .missingFile(let path): "\(path): no such file"
        case .unreadable(let path, let why): "\(path): cannot read: \(why)"
        case .invalidHeader(let path, let why): "\(path): invalid safetensors header: \(why)"
        case .invalidConfig(let path, let why): "\(path): \(why)"
        case .missingTensor(let file, let tensor): "\(file): tensor \(tensor) is missing"
        case .shapeMismatch(let file, let tensor, let found, let expected):
            "\(file): tensor \(tensor) has shape \(found), the config implies \(expected)"
        case .unsupportedDType(let file, let tensor, let dtype):
            "\(file): tensor \(tensor) has dtype \(dtype); only F32, F16 and BF16 are supported"
        case .file(let error): error.description
        }
    }
}

/// Reads a small JSON file of a checkpoint folder whole (at most `FileAccess.configByteLimit`).
func readConfigFile(_ path: String) throws -> Data {
    do { return Data(try FileAccess.read(path, limit: FileAccess.configByteLimit)) } catch let error as FileAccessError {
        throw CheckpointError(error)
    }
}
