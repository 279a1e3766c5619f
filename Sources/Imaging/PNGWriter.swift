import CStb
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes an 8-bit RGB PNG with stb_image_write, replacing any existing file.
public func writePNG(_ image: RGBImage, to path: String) throws {
    errno = 0
    let ok = image.pixels.withUnsafeBytes { bytes in
        stbi_write_png(path, Int32(image.width), Int32(image.height), 3, bytes.baseAddress, Int32(image.width * 3))
    }
    guard ok != 0 else {
        let code = errno
        throw ImageError.writeFailed(path: path, reason: code != 0 ? String(cString: strerror(code)) : "stb_image_write failed")
    }
}
