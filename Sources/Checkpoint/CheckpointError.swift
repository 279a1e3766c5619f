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
        }
    }
}
