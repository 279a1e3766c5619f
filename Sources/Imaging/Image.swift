#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An 8-bit RGB image: `pixels` holds width × height × 3 bytes, interleaved R, G, B, rows top to
/// bottom. Decoded files come out exactly as Pillow's `Image.open(path).convert("RGB")`.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt8]

    /// The default pixel limit: Pillow's `Image.MAX_IMAGE_PIXELS`.
    public static let defaultMaxPixelCount = 89_478_485
    /// The environment variable that sets another pixel limit for a process.
    public static let pixelLimitVariable = "LLAVA_MAX_IMAGE_PIXELS"
    nonisolated(unsafe) private static var pixelLimitOverride: Int?

    /// Largest width × height of an image file, and of every buffer preprocessing makes from it
    /// (the square canvas of `.pad`, the resized image): `defaultMaxPixelCount` unless
    /// `LLAVA_MAX_IMAGE_PIXELS` or this property (set it before decoding) says otherwise.
    public static var maxPixelCount: Int {
        get { (try? pixelLimit()) ?? defaultMaxPixelCount }
        set {
            precondition(newValue > 0, "maxPixelCount must be positive, got \(newValue)")
            pixelLimitOverride = newValue
        }
    }

    /// The pixel limit in force; an unusable `LLAVA_MAX_IMAGE_PIXELS` is an error.
    static func pixelLimit() throws -> Int {
        if let pixelLimitOverride { return pixelLimitOverride }
        guard let raw = getenv(pixelLimitVariable) else { return defaultMaxPixelCount }
        let text = String(cString: raw)
        guard let value = Int(text), value > 0 else { throw ImageError.invalidPixelLimit(text) }
        return value
    }

    /// Wraps existing pixels; `pixels.count` must be `width * height * 3` and both sides positive.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "RGBImage needs a positive size, got \(width)x\(height)")
        precondition(pixels.count == width * height * 3,
                     "RGBImage \(width)x\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: RGB = RGB(0, 0, 0)) {
        precondition(width > 0 && height > 0, "RGBImage needs a positive size, got \(width)x\(height)")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        if fill != RGB(0, 0, 0) {
            for i in stride(from: 0, to: pixels.count, by: 3) {
                pixels[i] = fill.red
                pixels[i + 1] = fill.green
                pixels[i + 2] = fill.blue
            }
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The colour at column x, row y (both zero-based, inside the image).
    public subscript(x: Int, y: Int) -> RGB {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) is outside \(width)x\(height)")
            let i = (y * width + x) * 3
            return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
        }
        set {
            precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) is outside \(width)x\(height)")
            let i = (y * width + x) * 3
            pixels[i] = newValue.red
            pixels[i + 1] = newValue.green
            pixels[i + 2] = newValue.blue
        }
    }

    /// Copies `source` into this image with its top-left corner at (x, y); parts that fall
    /// outside are clipped (Pillow's `paste` without a mask).
    public mutating func paste(_ source: RGBImage, x: Int, y: Int) {
        let x0 = max(x, 0), x1 = min(x + source.width, width)
        let y0 = max(y, 0), y1 = min(y + source.height, height)
        guard x0 < x1, y0 < y1 else { return }
        let rowBytes = (x1 - x0) * 3
        pixels.withUnsafeMutableBufferPointer { out in
            source.pixels.withUnsafeBufferPointer { src in
                for row in y0..<y1 {
                    let to = (row * width + x0) * 3
                    let from = ((row - y) * source.width + (x0 - x)) * 3
                    out.baseAddress!.advanced(by: to).update(from: src.baseAddress!.advanced(by: from), count: rowBytes)
                }
            }
        }
    }
}

/// One 8-bit RGB colour.
public struct RGB: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    public var description: String { "(\(red), \(green), \(blue))" }
}
