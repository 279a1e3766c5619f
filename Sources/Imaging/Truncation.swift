/// stb_image quietly fills missing pixels of truncated BMP, TGA, PNM and GIF files; Pillow
/// reports them as truncated. These checks compare the size the headers promise with the bytes
/// present, using the same margins Pillow tolerates (the padding of the last BMP row, a missing
/// GIF trailer).
enum Truncation {
    static func isTruncated(_ d: UnsafeBufferPointer<UInt8>, format: ImageFormat) -> Bool {
        switch format {
        case .bmp: return bmp(d)
        case .tga: return tga(d)
        case .pnm: return pnm(d)
        case .gif: return gif(d)
        case .png, .jpeg, .psd: return false
        }
    }

    private static func le16(_ d: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int { Int(d[i]) | Int(d[i + 1]) << 8 }
    private static func le32(_ d: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        Int(Int32(bitPattern: UInt32(le16(d, i)) | UInt32(le16(d, i + 2)) << 16))
    }

    /// Uncompressed BMP: rows padded to 4 bytes, the last row needs only its pixels.
    private static func bmp(_ d: UnsafeBufferPointer<UInt8>) -> Bool {
        guard d.count >= 26 else { return true }
        let offset = le32(d, 10), headerSize = le32(d, 14)
        let width: Int, height: Int, bits: Int, compression: Int
        if headerSize == 12 {
            width = le16(d, 18); height = le16(d, 20); bits = le16(d, 24); compression = 0
        } else if headerSize >= 40, d.count >= 34 {
            width = le32(d, 18); height = abs(le32(d, 22)); bits = le16(d, 28); compression = le32(d, 30)
        } else {
            return false
        }
        guard [0, 3, 6].contains(compression), width > 0, height > 0, bits > 0, offset >= 0 else { return false }
        let stride = (bits * width + 31) / 32 * 4
        let lastRow = (bits * width + 7) / 8
        return d.count < offset + stride * (height - 1) + lastRow
    }

    /// Uncompressed TGA (image types 1, 2, 3): header, id, colour map, then the pixels.
    private static func tga(_ d: UnsafeBufferPointer<UInt8>) -> Bool {
        guard d.count >= 18 else { return true }
        let idLength = Int(d[0]), mapType = Int(d[1]), imageType = Int(d[2])
        guard [1, 2, 3].contains(imageType) else { return false }
        let mapLength = le16(d, 5), mapEntryBits = Int(d[7])
        let width = le16(d, 12), height = le16(d, 14), bits = Int(d[16])
        let map = mapType == 1 ? mapLength * ((mapEntryBits + 7) / 8) : 0
        return d.count < 18 + idLength + map + width * height * ((bits + 7) / 8)
    }

    /// Binary PNM (P5, P6): a text header of four tokens, one whitespace byte, then the samples.
    private static func pnm(_ d: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 2
        var numbers: [Int] = []
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }
        while numbers.count < 3 {
            while i < d.count, isSpace(d[i]) || d[i] == UInt8(ascii: "#") {
                if d[i] == UInt8(ascii: "#") {
                    while i < d.count, d[i] != 0x0A, d[i] != 0x0D { i += 1 }
                } else {
                    i += 1
                }
            }
            var value = 0, digits = 0
            while i < d.count, (0x30...0x39).contains(d[i]), digits < 10 {
                value = value * 10 + Int(d[i] - 0x30)
                i += 1
                digits += 1
            }
            guard digits > 0 else { return false }  // malformed: leave it to the decoder
            numbers.append(value)
        }
        let channels = d[1] == UInt8(ascii: "6") ? 3 : 1
        let sampleBytes = numbers[2] > 255 ? 2 : 1
        let (pixels, overflow) = numbers[0].multipliedReportingOverflow(by: numbers[1])
        guard !overflow, pixels <= Int(Int32.max) else { return false }  // the size check rejects it
        return d.count < i + 1 + pixels * channels * sampleBytes
    }

    /// GIF: walks the blocks up to the first image and checks that each of its data sub-blocks is
    /// complete. A missing block terminator or trailer after complete data is accepted.
    private static func gif(_ d: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = d.count
        guard n >= 13 else { return true }
        var pos = 13
        if d[10] & 0x80 != 0 { pos += 3 << (Int(d[10] & 7) + 1) }
        while true {
            guard pos < n else { return true }
            switch d[pos] {
            case 0x21:  // extension: label, then sub-blocks
                pos += 2
                while true {
                    guard pos < n else { return true }
                    let length = Int(d[pos])
                    pos += 1 + length
                    if length == 0 { break }
                    if pos > n { return true }
                }
            case 0x2C:  // image descriptor, optional local colour table, LZW code size, sub-blocks
                guard pos + 10 <= n else { return true }
                let packed = d[pos + 9]
                pos += 10
                if packed & 0x80 != 0 { pos += 3 << (Int(packed & 7) + 1) }
                pos += 1
                while pos < n {
                    let length = Int(d[pos])
                    if length == 0 { return false }
                    pos += 1 + length
                    if pos > n { return true }
                }
                return pos > n
            default:
                return false  // a trailer or an unknown block: leave it to the decoder
            }
        }
    }
}
