import FileAccess

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
    /// Preprocessing would make a buffer (the `.pad` square, the resized image) above the limit.
    case bufferTooLarge(path: String, width: Int, height: Int, step: String, bufferWidth: Int, bufferHeight: Int)
    case invalidPixelLimit(String)
    case writeFailed(path: String, reason: String)
    case invalidConfig(path: String, reason: String)

    public var description: String {
        let text: String
        switch self {
        case .fileNotFound(let path):
            text = "\(path): no such file"
        case .notAFile(let path, let kind):
            text = "\(path): is \(kind), not a regular file"
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
            text = "\(path): image is \(width)x\(height) pixels, more than the limit of \(RGBImage.maxPixelCount) (\(RGBImage.pixelLimitVariable))"
        case .bufferTooLarge(let path, let width, let height, let step, let bw, let bh):
            text = "\(path): a \(width)x\(height) image needs a \(bw)x\(bh) buffer to \(step), more than the limit of \(RGBImage.maxPixelCount) pixels (\(RGBImage.pixelLimitVariable))"
        case .invalidPixelLimit(let value):
            text = "\(RGBImage.pixelLimitVariable) must be a positive integer, got \"\(value)\""
        case .writeFailed(let path, let reason):
            text = "\(path): cannot write PNG: \(reason)"
        case .invalidConfig(let path, let reason):
            text = "\(path): invalid preprocessor config: \(reason)"
        }
        return String(text.map { $0.isNewline ? " " : $0 })
    }
}

extension ImageError {
    /// The image errors for a path that is missing, not a regular file, too large or unreadable.
    init(_ error: FileAccessError) {
        switch error {
        case .notFound(let path): self = .fileNotFound(path: path)
        case .notRegular(let path, let kind): self = .notAFile(path: path, kind: kind)
        case .tooLarge(let path, let size, let limit):
            self = .unreadable(path: path, reason: "\(size) bytes is more than the \(limit) bytes an image file may have")
        case .unreadable(let path, let reason): self = .unreadable(path: path, reason: reason)
        }
    }
}
