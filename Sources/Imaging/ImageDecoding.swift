import CStb
import FileAccess
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The container formats the loader decodes, recognised by their first bytes.
public enum ImageFormat: String, Sendable {
    case png = "PNG", jpeg = "JPEG", gif = "GIF", bmp = "BMP", psd = "PSD", pnm = "PNM", tga = "TGA"
}

extension RGBImage {
    /// Largest number of scans accepted in a progressive JPEG (real files have about ten).
    public static let maxJPEGScans = 1000

    /// Reads and decodes an image file: PNG, GIF, BMP, PSD, PNM (P5/P6) and TGA through stb_image,
    /// JPEG through libjpeg. The format is taken from the file's first bytes, not its name. The
    /// result equals Pillow's `Image.open(path).convert("RGB")`: alpha is dropped (not blended),
    /// greyscale and palette images are expanded, CMYK JPEGs are converted as Pillow does.
    public init(contentsOfFile path: String) throws {
        let bytes = try Self.readFile(path)
        try self.init(encoded: bytes, name: path)
    }

    /// Decodes an encoded image held in memory; `name` is used in error messages.
    public init(encoded bytes: [UInt8], name: String = "<memory>") throws {
        guard !bytes.isEmpty else { throw ImageError.emptyFile(path: name) }
        guard bytes.count <= Int(Int32.max) else {
            throw ImageError.unreadable(path: name, reason: "\(bytes.count) bytes is more than the 2 GiB an image file may have")
        }
        switch Self.sniff(bytes) {
        case .supported(.jpeg):
            self = try Self.decodeJPEG(bytes, name: name)
        case .supported(let format):
            self = try Self.decodeWithStb(bytes, format: format, name: name)
        case .unsupported(let what):
            throw ImageError.unsupportedFormat(path: name, detail: what)
        case .unknown:
            // TGA has no signature; stb_image recognises it from its header fields.
            let recognised = bytes.withUnsafeBufferPointer {
                stbi_info_from_memory($0.baseAddress, Int32($0.count), nil, nil, nil) == 1
            }
            guard recognised else {
                let head = bytes.prefix(8).map { String($0, radix: 16, uppercase: true) }
                    .map { $0.count < 2 ? "0" + $0 : $0 }.joined(separator: " ")
                throw ImageError.unsupportedFormat(path: name, detail: "unrecognised content (first bytes \(head))")
            }
            self = try Self.decodeWithStb(bytes, format: .tga, name: name)
        }
    }

    /// The width and height an encoded image declares, read from its header without decoding
    /// the pixels; errors are the ones decoding would give for a bad header.
    public static func headerSize(_ bytes: [UInt8], name: String = "<memory>") throws -> (width: Int, height: Int) {
        guard !bytes.isEmpty else { throw ImageError.emptyFile(path: name) }
        guard bytes.count <= Int(Int32.max) else {
            throw ImageError.unreadable(path: name, reason: "\(bytes.count) bytes is more than the 2 GiB an image file may have")
        }
        let format: ImageFormat
        switch sniff(bytes) {
        case .supported(.jpeg):
            return try jpegHeaderSize(bytes, name: name)
        case .supported(let f): format = f
        case .unsupported(let what): throw ImageError.unsupportedFormat(path: name, detail: what)
        case .unknown: format = .tga
        }
        var width: Int32 = 0, height: Int32 = 0, components: Int32 = 0
        let ok = bytes.withUnsafeBufferPointer { stbi_info_from_memory($0.baseAddress, Int32($0.count), &width, &height, &components) == 1 }
        guard ok else {
            // Let the decoder word the error (unrecognised content, corrupt header, …).
            _ = try RGBImage(encoded: bytes, name: name)
            throw ImageError.corrupt(path: name, format: format.rawValue, reason: "unreadable header")
        }
        return (Int(width), Int(height))
    }

    // MARK: - File access

    /// The bytes of an image file: a regular file of 1 byte to `FileAccess.imageByteLimit`.
    public static func readFile(_ path: String) throws -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = try FileAccess.read(path, limit: FileAccess.imageByteLimit) } catch let error as FileAccessError {
            throw ImageError(error)
        }
        if bytes.isEmpty { throw ImageError.emptyFile(path: path) }
        return bytes
    }

    // MARK: - Format detection

    enum Sniffed: Equatable {
        case supported(ImageFormat)
        case unsupported(String)
        case unknown
    }

    static func sniff(_ b: [UInt8]) -> Sniffed {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            b.count >= offset + prefix.count && Array(b[offset..<offset + prefix.count]) == prefix
        }
        func ascii(_ s: String, at offset: Int = 0) -> Bool { starts(Array(s.utf8), at: offset) }

        if starts([0xFF, 0xD8, 0xFF]) { return .supported(.jpeg) }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .supported(.png) }
        if ascii("GIF87a") || ascii("GIF89a") { return .supported(.gif) }
        if ascii("BM") { return .supported(.bmp) }
        if ascii("8BPS") { return .supported(.psd) }
        if ascii("P5") || ascii("P6") { return .supported(.pnm) }
        if b.count >= 2, b[0] == UInt8(ascii: "P"), (UInt8(ascii: "1")...UInt8(ascii: "4")).contains(b[1]) {
            return .unsupported("ASCII or 1-bit PNM (P1 to P4)")
        }
        if ascii("RIFF"), ascii("WEBP", at: 8) { return .unsupported("WebP") }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .unsupported("TIFF") }
        if ascii("ftyp", at: 4) { return .unsupported("HEIF/AVIF or another ISO media file") }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) {
            return .unsupported("JPEG 2000")
        }
        if starts([0xFF, 0x0A]) || starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return .unsupported("JPEG XL") }
        if ascii("#?RADIANCE") || ascii("#?RGBE") { return .unsupported("Radiance HDR") }
        if starts([0x53, 0x80, 0xF6, 0x34]) { return .unsupported("Softimage PIC") }
        if ascii("qoif") { return .unsupported("QOI") }
        if ascii("%PDF") { return .unsupported("PDF") }
        return .unknown
    }
}
