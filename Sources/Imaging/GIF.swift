/// What the first frame of a GIF says about transparency. stb_image leaves transparent pixels as
/// (0, 0, 0, 0); Pillow opens a GIF as a palette image, so `convert("RGB")` shows the palette
/// colour stored at the transparent index instead.
struct GIFTransparency {
    /// The palette colour of the transparent index.
    let color: RGB

    /// Reads the graphic control extension before the first image and the palette that image uses.
    /// Returns nil when the first frame has no transparent index, does not cover the whole
    /// logical screen, or the file is malformed.
    init?(_ d: UnsafeBufferPointer<UInt8>) {
        let n = d.count
        guard n >= 13 else { return nil }
        func le16(_ i: Int) -> Int { Int(d[i]) | Int(d[i + 1]) << 8 }
        let screenWidth = le16(6), screenHeight = le16(8)
        var globalPalette: Range<Int>?
        var pos = 13
        if d[10] & 0x80 != 0 {
            let size = 3 << (Int(d[10] & 7) + 1)
            globalPalette = pos..<pos + size
            pos += size
        }
        var transparentIndex: Int?
        while pos < n {
            switch d[pos] {
            case 0x21:
                // Graphic control extension: 0x21 0xF9 0x04 flags delay(2) index 0x00
                if pos + 7 < n, d[pos + 1] == 0xF9, d[pos + 2] == 4 {
                    transparentIndex = d[pos + 3] & 1 != 0 ? Int(d[pos + 6]) : nil
                }
                pos += 2
                while pos < n {
                    let length = Int(d[pos])
                    pos += 1 + length
                    if length == 0 { break }
                }
            case 0x2C:
                guard pos + 10 <= n, let index = transparentIndex else { return nil }
                let left = le16(pos + 1), top = le16(pos + 3)
                let width = le16(pos + 5), height = le16(pos + 7)
                guard left == 0, top == 0, width == screenWidth, height == screenHeight else { return nil }
                let packed = d[pos + 9]
                var palette = globalPalette
                if packed & 0x80 != 0 {
                    let start = pos + 10
                    palette = start..<start + (3 << (Int(packed & 7) + 1))
                }
                guard let table = palette, table.upperBound <= n, table.lowerBound + 3 * index + 2 < table.upperBound else {
                    return nil
                }
                let p = table.lowerBound + 3 * index
                color = RGB(d[p], d[p + 1], d[p + 2])
                return
            default:
                return nil
            }
        }
        return nil
    }
}
