/// Everything that can go wrong while reading or writing an image or a preprocessor config.
/// Each case names the file; `description` is a single line.
public enum ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    case fileNotFound(path: String)
    /// The path exists but is a directory, a device, a pipe, …
    case notAFile(path: String, kind: String)
    case unreadable(path: String, reason: String)
    case emptyFile(path: String)
    case unsupportedFormat(path: String, detail: String)
    case corrupt(path: String, format: String, reason: String)
    case truncated(path: String, format: String)
    /// Width × height above `RGBImage.maxPixelCount`.
    case tooLarge(path: String, width: Int, height: Int)
    case writeFailed(path: String, reason: String)
    case invalidConfig(path: String, reason: String)

    public var description: String {
        let text: String
        switch self {
        case .fileNotFound(let path):
            text = "\(path): no such file"
        case .notAFile(let path, let kind):
            text = "\(path): is \(kind), not an image file"
        case .unreadable(let path, let reason):
            text = "\(path): cannot read: \(reason)"
        case .emptyFile(let path):
            text = "\(path): file is empty"
        case .unsupportedFormat(let path, let detail):
            text = "\(path): unsupported image format: \(detail)"
        case .corrupt(let path, let format, let reason):
            text = "\(path): corrupt \(format) data: \(reason)"
        case .truncated(let path, let format):
            text = "\(path): \(format) data is truncated"
        case .tooLarge(let path, let width, let height):
            text = "\(path): image is \(width)x\(height) pixels, more than the limit of \(RGBImage.maxPixelCount)"
        case .writeFailed(let path, let reason):
            text = "\(path): cannot write PNG: \(reason)"
        case .invalidConfig(let path, let reason):
            text = "\(path): invalid preprocessor config: \(reason)"
        }
        return String(text.map { $0.isNewline ? " " : $0 })
    }
}
