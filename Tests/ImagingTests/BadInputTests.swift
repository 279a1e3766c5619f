import Foundation
import Imaging
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class BadInputTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try Fixtures.temporaryDirectory(for: self)
    }

    private func fixtureBytes(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name))))
    }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Loads `path`, expects an ImageError accepted by `check`, and checks that the message is
    /// one line starting with the path.
    private func expectError(_ path: String, file: StaticString = #filePath, line: UInt = #line,
                             _ check: (ImageError) -> Bool) {
        do {
            let image = try RGBImage(contentsOfFile: path)
            XCTFail("\(path) decoded as \(image.width)x\(image.height)", file: file, line: line)
        } catch let error as ImageError {
            XCTAssertTrue(check(error), "unexpected error: \(error)", file: file, line: line)
            let text = error.description
            XCTAssertTrue(text.hasPrefix(path + ": "), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
        } catch {
            XCTFail("not an ImageError: \(error)", file: file, line: line)
        }
    }

    private func index(of marker: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= marker.count else { return nil }
        return (0...(bytes.count - marker.count)).first { Array(bytes[$0..<$0 + marker.count]) == marker }
    }

    func testMissingFileDirectoryEmptyFileAndPipe() throws {
        let missing = dir.appendingPathComponent("nope.png").path
        expectError(missing) { $0 == .fileNotFound(path: missing) }
        expectError(dir.path) { $0 == .notAFile(path: self.dir.path, kind: "a directory") }
        let empty = try write([], "empty.png")
        expectError(empty) { $0 == .emptyFile(path: empty) }
        // A named pipe would block a plain read; it must be refused up front.
        let fifo = dir.appendingPathComponent("pipe.png").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        expectError(fifo) { $0 == .notAFile(path: fifo, kind: "a FIFO") }
    }

    func testTruncatedFiles() throws {
        // Cut at 60%: Pillow raises "image file is truncated" for every one of these.
        let formats = ["jpeg420.jpg": "JPEG", "progressive.jpg": "JPEG", "landscape.png": "PNG",
                       "tiny.gif": "GIF", "tiny.bmp": "BMP", "tiny.tga": "TGA", "tiny.ppm": "PNM"]
        for (name, format) in formats {
            let bytes = try fixtureBytes(name)
            let path = try write(Array(bytes.prefix(bytes.count * 6 / 10)), "cut-" + name)
            expectError(path) { $0 == .truncated(path: path, format: format) }
        }
        // A few bytes short: still truncated for JPEG (even just the end marker), BMP and PNM.
        for (name, cut, format) in [("jpeg420.jpg", 2, "JPEG"), ("progressive.jpg", 1, "JPEG"), ("large.jpg", 40, "JPEG"),
                                    ("tiny.bmp", 2, "BMP"), ("tiny.ppm", 1, "PNM")] {
            let bytes = try fixtureBytes(name)
            let path = try write(Array(bytes.dropLast(cut)), "short-\(cut)-" + name)
            expectError(path) { $0 == .truncated(path: path, format: format) }
        }
        let headerOnly = try write(Array(try fixtureBytes("jpeg444.jpg").prefix(30)), "header.jpg")
        expectError(headerOnly) {
            if case .truncated(headerOnly, "JPEG") = $0 { return true }
            if case .corrupt(headerOnly, "JPEG", _) = $0 { return true }
            return false
        }
    }

    func testTolerancesShareWithPillow() throws {
        // Pillow accepts these: the BMP's last row misses only its padding byte, the GIF misses
        // its block terminator and trailer, the TGA part of its footer, the PNG part of IEND.
        for (name, cut) in [("tiny.bmp", 1), ("tiny.gif", 2), ("tiny.tga", 2), ("landscape.png", 2)] {
            let bytes = try fixtureBytes(name)
            let path = try write(Array(bytes.dropLast(cut)), "nearly-" + name)
            XCTAssertEqual(try RGBImage(contentsOfFile: path), try Fixtures.image(name), name)
        }
    }

    func testCorruptData() throws {
        // A PNG whose zlib stream header is destroyed.
        var png = try fixtureBytes("landscape.png")
        let idat = try XCTUnwrap(index(of: Array("IDAT".utf8), in: png))
        png[idat + 4] = 0xFF
        png[idat + 5] = 0xFF
        let badPNG = try write(png, "bad-zlib.png")
        expectError(badPNG) { if case .corrupt(badPNG, "PNG", _) = $0 { return true }; return false }

        // A JPEG whose quantisation table marker announces an impossible length.
        var jpeg = try fixtureBytes("jpeg444.jpg")
        let dqt = try XCTUnwrap(index(of: [0xFF, 0xDB], in: jpeg))
        jpeg[dqt + 2] = 0x00
        jpeg[dqt + 3] = 0x01
        let badJPEG = try write(jpeg, "bad-dqt.jpg")
        expectError(badJPEG) { if case .corrupt(badJPEG, "JPEG", _) = $0 { return true }; return false }

        // JPEG signature followed by noise.
        var rng = SystemRandomNumberGenerator()
        let noise = try write([0xFF, 0xD8, 0xFF, 0xE0] + (0..<4000).map { _ in UInt8.random(in: 0...255, using: &rng) }, "noise.jpg")
        expectError(noise) {
            switch $0 {
            case .corrupt(noise, "JPEG", _), .truncated(noise, "JPEG"), .unsupportedFormat(noise, _): return true
            default: return false
            }
        }
    }

    func testUnsupportedFormats() throws {
        let webp = try write(Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8) + [UInt8](repeating: 0, count: 40), "image.webp")
        expectError(webp) { $0 == .unsupportedFormat(path: webp, detail: "WebP") }
        let tiff = try write([0x49, 0x49, 0x2A, 0x00] + [UInt8](repeating: 0, count: 40), "image.tif")
        expectError(tiff) { $0 == .unsupportedFormat(path: tiff, detail: "TIFF") }
        let text = try write(Array("this is not an image, just some text\n".utf8), "notes.png")
        expectError(text) {
            if case .unsupportedFormat(text, let detail) = $0 { return detail.hasPrefix("unrecognised content") }
            return false
        }
    }

    func testAbsurdDimensions() throws {
        // PNG header claiming 100000 x 100000.
        var png = try fixtureBytes("small.png")
        for (offset, value) in [(16, 100_000), (20, 100_000)] {
            png[offset] = UInt8(value >> 24 & 0xFF)
            png[offset + 1] = UInt8(value >> 16 & 0xFF)
            png[offset + 2] = UInt8(value >> 8 & 0xFF)
            png[offset + 3] = UInt8(value & 0xFF)
        }
        let bigPNG = try write(png, "huge.png")
        expectError(bigPNG) { $0 == .tooLarge(path: bigPNG, width: 100_000, height: 100_000) }

        // JPEG frame header claiming 65000 x 65000.
        var jpeg = try fixtureBytes("jpeg444.jpg")
        let sof = try XCTUnwrap(index(of: [0xFF, 0xC0], in: jpeg))
        jpeg[sof + 5] = 0xFD; jpeg[sof + 6] = 0xE8  // height 65000
        jpeg[sof + 7] = 0xFD; jpeg[sof + 8] = 0xE8  // width 65000
        let bigJPEG = try write(jpeg, "huge.jpg")
        expectError(bigJPEG) { $0 == .tooLarge(path: bigJPEG, width: 65000, height: 65000) }

        // GIF logical screen of 65535 x 65535.
        var gif = try fixtureBytes("tiny.gif")
        gif[6] = 0xFF; gif[7] = 0xFF; gif[8] = 0xFF; gif[9] = 0xFF
        let bigGIF = try write(gif, "huge.gif")
        expectError(bigGIF) { $0 == .tooLarge(path: bigGIF, width: 65535, height: 65535) }

        // PNM headers: large, and too large for any integer type the decoder uses.
        let bigPPM = try write(Array("P6\n100000 100000\n255\n".utf8) + [UInt8](repeating: 7, count: 64), "huge.ppm")
        expectError(bigPPM) { $0 == .tooLarge(path: bigPPM, width: 100_000, height: 100_000) }
        let absurdPPM = try write(Array("P6 9999999999 9999999999 255\n".utf8) + [UInt8](repeating: 7, count: 64), "absurd.ppm")
        expectError(absurdPPM) { _ in true }

        // Zero width.
        var zero = try fixtureBytes("small.png")
        zero[16] = 0; zero[17] = 0; zero[18] = 0; zero[19] = 0
        let zeroPNG = try write(zero, "zero.png")
        expectError(zeroPNG) { if case .corrupt(zeroPNG, "PNG", _) = $0 { return true }; return false }
    }

    func testErrorDescriptionsAreOneLineAndNameTheFile() {
        let errors: [ImageError] = [
            .fileNotFound(path: "a.png"), .notAFile(path: "a.png", kind: "a directory"),
            .unreadable(path: "a.png", reason: "line one\nline two"), .emptyFile(path: "a.png"),
            .unsupportedFormat(path: "a.png", detail: "WebP"), .corrupt(path: "a.png", format: "PNG", reason: "bad\nzlib"),
            .truncated(path: "a.png", format: "PNG"), .tooLarge(path: "a.png", width: 1, height: 2),
            .writeFailed(path: "a.png", reason: "x"), .invalidConfig(path: "a.png", reason: "y"),
        ]
        for error in errors {
            XCTAssertTrue(error.description.hasPrefix("a.png: "), error.description)
            XCTAssertFalse(error.description.contains("\n"), error.description)
        }
    }
}
