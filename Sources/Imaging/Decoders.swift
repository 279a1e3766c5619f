import CJPEG
import CStb

/// The two decoder back ends: stb_image for PNG, GIF, BMP, PSD, PNM and TGA, libjpeg for JPEG.
extension RGBImage {
    // MARK: - stb_image

    static func decodeWithStb(_ bytes: [UInt8], format: ImageFormat, name: String) throws -> RGBImage {
        try bytes.withUnsafeBufferPointer { data -> RGBImage in
            let base = data.baseAddress!
            let length = Int32(data.count)
            func stbFailure() -> ImageError {
                let reason = stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
                if reason == "outofdata" { return .truncated(path: name, format: format.rawValue) }
                return .corrupt(path: name, format: format.rawValue, reason: reason)
            }
            if let declared = declaredSize(data, format: format) {
                try checkSize(declared.width, declared.height, format: format.rawValue, name: name)
            }
            var width: Int32 = 0, height: Int32 = 0, components: Int32 = 0
            guard stbi_info_from_memory(base, length, &width, &height, &components) == 1 else {
                throw stbFailure()
            }
            try checkSize(Int(width), Int(height), format: format.rawValue, name: name)
            if Truncation.isTruncated(data, format: format) {
                throw ImageError.truncated(path: name, format: format.rawValue)
            }
            if format == .png, let problem = PNGChunks.problem(data) {
                switch problem {
                case .truncated: throw ImageError.truncated(path: name, format: "PNG")
                case .badCRC(let chunk): throw ImageError.corrupt(path: name, format: "PNG", reason: "CRC error in chunk \(chunk.debugDescription)")
                case .badLength(let chunk): throw ImageError.corrupt(path: name, format: "PNG", reason: "chunk \(chunk.debugDescription) has an impossible length")
                }
            }
            let w = Int(width), h = Int(height)

            // Pillow opens 16-bit greyscale PNGs as mode I;16 and clips values above 255 when it
            // converts to RGB; stb would keep the high byte instead.
            if format == .png, isSixteenBitGreyPNG(data) {
                var cw: Int32 = 0, ch: Int32 = 0, cn: Int32 = 0
                guard let grey = stbi_load_16_from_memory(base, length, &cw, &ch, &cn, 1) else {
                    throw stbFailure()
                }
                defer { stbi_image_free(grey) }
                guard Int(cw) == w, Int(ch) == h else {
                    throw ImageError.corrupt(path: name, format: format.rawValue, reason: "header and data disagree on the size")
                }
                var pixels = [UInt8](repeating: 0, count: w * h * 3)
                for i in 0..<(w * h) {
                    let v = UInt8(min(grey[i], 255))
                    pixels[3 * i] = v
                    pixels[3 * i + 1] = v
                    pixels[3 * i + 2] = v
                }
                return RGBImage(width: w, height: h, pixels: pixels)
            }

            let transparency = format == .gif ? GIFTransparency(data) : nil
            let channels = transparency == nil ? 3 : 4
            var lw: Int32 = 0, lh: Int32 = 0, ln: Int32 = 0
            guard let decoded = stbi_load_from_memory(base, length, &lw, &lh, &ln, Int32(channels)) else {
                throw stbFailure()
            }
            defer { stbi_image_free(decoded) }
            guard Int(lw) == w, Int(lh) == h else {
                throw ImageError.corrupt(path: name, format: format.rawValue, reason: "header and data disagree on the size")
            }
            guard let transparency else {
                return RGBImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: decoded, count: w * h * 3)))
            }
            var pixels = [UInt8](repeating: 0, count: w * h * 3)
            for i in 0..<(w * h) {
                let transparent = decoded[4 * i + 3] == 0
                pixels[3 * i] = transparent ? transparency.color.red : decoded[4 * i]
                pixels[3 * i + 1] = transparent ? transparency.color.green : decoded[4 * i + 1]
                pixels[3 * i + 2] = transparent ? transparency.color.blue : decoded[4 * i + 2]
            }
            return RGBImage(width: w, height: h, pixels: pixels)
        }
    }

    /// The size written in the header of formats whose header stb_image might reject with a
    /// vaguer message ("too large") before the pixel limit is checked.
    static func declaredSize(_ d: UnsafeBufferPointer<UInt8>, format: ImageFormat) -> (width: Int, height: Int)? {
        func be32(_ i: Int) -> Int { Int(d[i]) << 24 | Int(d[i + 1]) << 16 | Int(d[i + 2]) << 8 | Int(d[i + 3]) }
        func le16(_ i: Int) -> Int { Int(d[i]) | Int(d[i + 1]) << 8 }
        func le32(_ i: Int) -> Int { Int(Int32(bitPattern: UInt32(le16(i)) | UInt32(le16(i + 2)) << 16)) }
        switch format {
        case .png where d.count >= 24 && Array(d[12..<16]) == Array("IHDR".utf8):
            return (be32(16), be32(20))
        case .gif where d.count >= 10:
            return (le16(6), le16(8))
        case .bmp where d.count >= 26 && le32(14) >= 40:
            return (le32(18), abs(le32(22)))
        case .psd where d.count >= 22:
            return (be32(18), be32(14))
        default:
            return nil
        }
    }

    /// Bit depth 16 and colour type 0 in the IHDR chunk, which comes first in a valid PNG.
    static func isSixteenBitGreyPNG(_ data: UnsafeBufferPointer<UInt8>) -> Bool {
        guard data.count >= 26, Array(data[12..<16]) == Array("IHDR".utf8) else { return false }
        return data[24] == 16 && data[25] == 0
    }

    static func checkSize(_ width: Int, _ height: Int, format: String, name: String) throws {
        guard width > 0, height > 0 else {
            throw ImageError.corrupt(path: name, format: format, reason: "declared size \(width)x\(height)")
        }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= (try pixelLimit()) else {
            throw ImageError.tooLarge(path: name, width: width, height: height)
        }
    }

    // MARK: - libjpeg

    static func jpegError(_ status: cjpeg_status, _ message: [CChar], name: String) -> ImageError {
        let text = String(cString: message)
        switch status {
        case CJPEG_TRUNCATED: return .truncated(path: name, format: "JPEG")
        case CJPEG_UNSUPPORTED: return .unsupportedFormat(path: name, detail: text)
        default: return .corrupt(path: name, format: "JPEG", reason: text)
        }
    }

    /// The size in a JPEG's frame header (libjpeg reads the headers only).
    static func jpegHeaderSize(_ bytes: [UInt8], name: String) throws -> (width: Int, height: Int) {
        var message = [CChar](repeating: 0, count: 256)
        return try bytes.withUnsafeBufferPointer { data in
            var info = cjpeg_info()
            var status = CJPEG_OK
            guard let decoder = cjpeg_open(data.baseAddress, data.count, &info, &status, &message, message.count) else {
                throw jpegError(status, message, name: name)
            }
            cjpeg_close(decoder)
            return (Int(info.width), Int(info.height))
        }
    }

    static func decodeJPEG(_ bytes: [UInt8], name: String) throws -> RGBImage {
        var message = [CChar](repeating: 0, count: 256)
        func error(_ status: cjpeg_status) -> ImageError { jpegError(status, message, name: name) }
        return try bytes.withUnsafeBufferPointer { data -> RGBImage in
            var info = cjpeg_info()
            var status = CJPEG_OK
            guard let decoder = cjpeg_open(data.baseAddress, data.count, &info, &status, &message, message.count) else {
                throw error(status)
            }
            defer { cjpeg_close(decoder) }
            try checkSize(Int(info.width), Int(info.height), format: "JPEG", name: name)
            let w = Int(info.width), h = Int(info.height), channels = Int(info.channels)
            var raw = [UInt8](repeating: 0, count: w * h * channels)
            status = raw.withUnsafeMutableBufferPointer {
                cjpeg_decode(decoder, $0.baseAddress, Int32(maxJPEGScans), &message, message.count)
            }
            guard status == CJPEG_OK else { throw error(status) }
            switch channels {
            case 3:
                return RGBImage(width: w, height: h, pixels: raw)
            case 1:
                return RGBImage(width: w, height: h, pixels: expandGrey(raw))
            default:
                return RGBImage(width: w, height: h, pixels: adobeCMYKToRGB(raw))
            }
        }
    }

    static func expandGrey(_ grey: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: grey.count * 3)
        for (i, v) in grey.enumerated() {
            out[3 * i] = v
            out[3 * i + 1] = v
            out[3 * i + 2] = v
        }
        return out
    }

    /// Pillow reads CMYK JPEGs with Adobe polarity (every stored byte inverted) and converts
    /// CMYK to RGB as channel = (255 − K) − round((255 − K)·C / 255), with its integer rounding.
    static func adobeCMYKToRGB(_ stored: [UInt8]) -> [UInt8] {
        let count = stored.count / 4
        var out = [UInt8](repeating: 0, count: count * 3)
        func mulDiv255(_ a: Int, _ b: Int) -> Int {
            let t = a * b + 128
            return ((t >> 8) + t) >> 8
        }
        for i in 0..<count {
            let notK = Int(stored[4 * i + 3])  // 255 − K, since the stored value is inverted
            for c in 0..<3 {
                let ink = 255 - Int(stored[4 * i + c])
                out[3 * i + c] = UInt8(clamping: notK - mulDiv255(ink, notK))
            }
        }
        return out
    }
}
