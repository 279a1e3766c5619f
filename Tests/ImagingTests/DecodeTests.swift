import Foundation
import Imaging
import XCTest

final class DecodeTests: XCTestCase {
    /// Every input except the large JPEG: PNG (RGB, RGBA, L, 16-bit L, 16-bit RGB, P with tRNS),
    /// JPEG (4:2:0, 4:2:2, 4:4:4, progressive, greyscale, CMYK), BMP, GIF, TGA, PPM.
    func testDecodedPixelsEqualPillowConvertRGB() throws {
        let manifest = try Fixtures.manifest()
        let reference = try Fixtures.reference()
        XCTAssertEqual(manifest.decode.count, 19)
        var formats = Set<String>()
        for item in manifest.decode {
            let image = try Fixtures.image(item.file)
            XCTAssertEqual(image.width, item.width, item.file)
            XCTAssertEqual(image.height, item.height, item.file)
            let expected = try Fixtures.bytes(reference, item.tensor)
            guard image.pixels.count == expected.count else {
                XCTFail("\(item.file): \(image.pixels.count) bytes, expected \(expected.count)")
                continue
            }
            let diff = maxAbsDiff(image.pixels, expected)
            let mismatches = zip(image.pixels, expected).filter { $0 != $1 }.count
            print("decode \(item.file): max |diff| \(diff), \(mismatches) of \(expected.count) bytes differ")
            XCTAssertEqual(diff, 0, "\(item.file) differs from PIL's convert(\"RGB\")")
            formats.insert(URL(fileURLWithPath: item.file).pathExtension)
        }
        XCTAssertEqual(formats, ["png", "jpg", "bmp", "gif", "tga", "ppm"])
    }

    func testAlphaIsDroppedNotBlended() throws {
        // rgba.png has alpha 0 in its first 12 columns over non-black, non-white colours.
        let image = try Fixtures.image("rgba.png")
        let corner = image[0, 0]
        XCTAssertNotEqual(corner, RGB(0, 0, 0))
        XCTAssertNotEqual(corner, RGB(255, 255, 255))
    }

    func testSixteenBitGreyIsClippedLikePillow() throws {
        // grey16.png holds values 0..1199 (i * 7 mod 1200); Pillow clips to 255 instead of
        // keeping the high byte.
        let image = try Fixtures.image("grey16.png")
        for i in 0..<(image.width * image.height) {
            let value = min(i * 7 % 1200, 255)
            let px = image[i % image.width, i / image.width]
            XCTAssertEqual(px, RGB(UInt8(value), UInt8(value), UInt8(value)), "pixel \(i)")
            if px != RGB(UInt8(value), UInt8(value), UInt8(value)) { break }
        }
    }

    func testFormatComesFromContentNotExtension() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let pngAsJPEG = dir.appendingPathComponent("really-a-png.jpg").path
        let jpegAsPNG = dir.appendingPathComponent("really-a-jpeg.png").path
        let noExtension = dir.appendingPathComponent("image").path
        try FileManager.default.copyItem(atPath: Fixtures.path("landscape.png"), toPath: pngAsJPEG)
        try FileManager.default.copyItem(atPath: Fixtures.path("jpeg444.jpg"), toPath: jpegAsPNG)
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny.tga"), toPath: noExtension)
        XCTAssertEqual(try RGBImage(contentsOfFile: pngAsJPEG), try Fixtures.image("landscape.png"))
        XCTAssertEqual(try RGBImage(contentsOfFile: jpegAsPNG), try Fixtures.image("jpeg444.jpg"))
        XCTAssertEqual(try RGBImage(contentsOfFile: noExtension), try Fixtures.image("tiny.tga"))
    }

    func testDecodingFromMemoryMatchesFile() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("progressive.jpg"))))
        XCTAssertEqual(try RGBImage(encoded: bytes, name: "progressive"), try Fixtures.image("progressive.jpg"))
    }

    func testWritePNGRoundTrips() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let path = dir.appendingPathComponent("out.png").path
        let image = try Fixtures.image("jpeg420.jpg")
        try writePNG(image, to: path)
        XCTAssertEqual(try RGBImage(contentsOfFile: path), image)
        // Overwrites an existing file.
        let other = try Fixtures.image("small.png")
        try writePNG(other, to: path)
        XCTAssertEqual(try RGBImage(contentsOfFile: path), other)
    }

    func testWritePNGToAMissingDirectoryThrows() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let path = dir.appendingPathComponent("no/such/dir/out.png").path
        XCTAssertThrowsError(try writePNG(RGBImage(width: 2, height: 2), to: path)) { error in
            guard case ImageError.writeFailed(let p, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, path)
            XCTAssertTrue("\(error)".hasPrefix(path + ": cannot write PNG"), "\(error)")
        }
    }
}
