import CSystemZlib

/// stb_image skips the CRC of every PNG chunk. This walks the chunk list as libpng reads it:
/// each chunk (length, type, data, CRC) must lie inside the file with a matching CRC, up to and
/// including IEND. As in Pillow, a file cut after its image data (in the chunks that follow the
/// IDAT chunks, IEND included) is accepted, the decoder then checks that the pixels are
/// complete; bytes after IEND are ignored.
enum PNGChunks {
    enum Problem: Equatable {
        case truncated
        case badCRC(chunk: String)
        case badLength(chunk: String)
    }

    static func problem(_ d: UnsafeBufferPointer<UInt8>) -> Problem? {
        var pos = 8  // after the signature
        var pastImageData = false
        while true {
            guard pos + 12 <= d.count else { return pastImageData ? nil : .truncated }
            let length = Int(d[pos]) << 24 | Int(d[pos + 1]) << 16 | Int(d[pos + 2]) << 8 | Int(d[pos + 3])
            let type = String(decoding: d[(pos + 4)..<(pos + 8)], as: UTF8.self)
            guard length <= Int(Int32.max) else { return .badLength(chunk: type) }
            let end = pos + 8 + length
            guard end + 4 <= d.count else { return pastImageData && type != "IDAT" ? nil : .truncated }
            let stored = UInt32(d[end]) << 24 | UInt32(d[end + 1]) << 16 | UInt32(d[end + 2]) << 8 | UInt32(d[end + 3])
            guard crc32(d[(pos + 4)..<end]) == stored else { return .badCRC(chunk: type) }
            if type == "IEND" { return nil }
            if type == "IDAT" { pastImageData = true }
            pos = end + 4
        }
    }

    /// The CRC-32 of PNG (ISO 3309, zlib's `crc32`), over the chunk type and data.
    static func crc32(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32 {
        var c = CSystemZlib.crc32(0, nil, 0)
        var start = bytes.startIndex
        // zlib takes 32-bit lengths: chunks are below 2^31 bytes, but stay safe.
        while start < bytes.endIndex {
            let n = min(bytes.endIndex - start, Int(Int32.max))
            c = CSystemZlib.crc32(c, bytes.base.baseAddress! + start, UInt32(n))
            start += n
        }
        return UInt32(c)
    }
}
