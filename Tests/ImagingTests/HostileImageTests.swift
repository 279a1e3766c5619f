import Foundation
import Imaging
import XCTest

/// Small files that lie or would make preprocessing allocate gigabytes: refused before anything
/// large is allocated, with one line naming the file.
final class HostileImageTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try Fixtures.temporaryDirectory(for: self)
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    private func fixtureBytes(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name))))
    }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    private func processError(_ processor: ImageProcessor, _ file: String, line: UInt = #line) -> ImageError? {
        do {
            _ = try processor.process(contentsOfFile: file)
            XCTFail("\(file) was processed", line: line)
            return nil
        } catch let error as ImageError {
            XCTAssertTrue(error.description.hasPrefix(file + ": "), error.description, line: line)
            XCTAssertFalse(error.description.contains("\n"), line: line)
            return error
        } catch {
            XCTFail("not an ImageError: \(error)", line: line)
            return nil
        }
    }

    func testThinImageCannotBecomeAHugeBuffer() throws {
        // A valid 1 x 100000 PNG of a few hundred bytes: pad would make a 100000² square, crop
        // would resize it to 336 x 33.6 million.
        let thin = path("thin.png")
        try writePNG(RGBImage(width: 1, height: 100_000, fill: RGB(9, 9, 9)), to: thin)
        XCTAssertEqual(try RGBImage(contentsOfFile: thin).height, 100_000)
        let pad = processError(ImageProcessor(config: .llava15, mode: .pad), thin)
        XCTAssertEqual(pad, .bufferTooLarge(path: thin, width: 1, height: 100_000, step: "pad it to a square",
                                            bufferWidth: 100_000, bufferHeight: 100_000))
        let crop = processError(ImageProcessor(config: .llava15, mode: .crop), thin)
        XCTAssertEqual(crop, .bufferTooLarge(path: thin, width: 1, height: 100_000, step: "resize it",
                                             bufferWidth: 336, bufferHeight: 33_600_000))
        XCTAssertTrue(crop?.description.contains("more than the limit of 89478485 pixels") == true, crop?.description ?? "")

        // Sizes only a header could claim, checked without any image at all.
        let processor = ImageProcessor(config: .llava15, mode: .crop)
        for (w, h) in [(1, 10_000_000), (10_000_000, 1), (65500, 1), (Int.max / 2, 1)] {
            XCTAssertThrowsError(try processor.checkBuffers(width: w, height: h, name: "x.png")) { error in
                XCTAssertTrue("\(error)".hasPrefix("x.png: a \(w)x\(h) image needs a "), "\(error)")
            }
        }
        XCTAssertNoThrow(try processor.checkBuffers(width: 4000, height: 3000, name: "photo.jpg"))
        XCTAssertNoThrow(try ImageProcessor(config: .llava15, mode: .pad).checkBuffers(width: 4000, height: 3000, name: "photo.jpg"))
    }

    func testJPEGHeaderIsCheckedBeforeDecoding() throws {
        // A small JPEG whose frame header claims 65500 x 1: the resize would need 336 x 22 million.
        var jpeg = try fixtureBytes("jpeg444.jpg")
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 5] = 0x00; jpeg[sof + 6] = 0x01  // height 1
        jpeg[sof + 7] = 0xFF; jpeg[sof + 8] = 0xDC  // width 65500
        let file = try write(jpeg, "wide.jpg")
        XCTAssertEqual(try RGBImage.headerSize(jpeg, name: file).width, 65500)
        let error = processError(ImageProcessor(config: .llava15, mode: .crop), file)
        XCTAssertEqual(error, .bufferTooLarge(path: file, width: 65500, height: 1, step: "resize it",
                                              bufferWidth: 22_008_000, bufferHeight: 336))
    }

    func testPNGChecksumsAreVerified() throws {
        let png = try fixtureBytes("landscape.png")
        let idat = try XCTUnwrap((0..<(png.count - 4)).first { Array(png[$0..<$0 + 4]) == Array("IDAT".utf8) })
        // One bit flipped in the compressed data, and one in the IHDR checksum itself.
        var flipped = png
        flipped[idat + 20] ^= 0x01
        var badIHDR = png
        badIHDR[29] ^= 0x80
        for (bytes, name, chunk) in [(flipped, "flipped.png", "IDAT"), (badIHDR, "ihdr.png", "IHDR")] {
            let file = try write(bytes, name)
            XCTAssertThrowsError(try RGBImage(contentsOfFile: file)) { error in
                XCTAssertEqual(error as? ImageError, .corrupt(path: file, format: "PNG", reason: "CRC error in chunk \"\(chunk)\""))
            }
        }
        // Cut inside the image data: truncated; the intact file still decodes as before.
        let cut = try write(Array(png.prefix(idat + 30)), "cut.png")
        XCTAssertThrowsError(try RGBImage(contentsOfFile: cut)) { error in
            XCTAssertEqual(error as? ImageError, .truncated(path: cut, format: "PNG"))
        }
        XCTAssertEqual(try RGBImage(contentsOfFile: Fixtures.path("landscape.png")), try Fixtures.image("landscape.png"))
    }

    func testPixelLimitCanBeChanged() throws {
        defer { RGBImage.maxPixelCount = RGBImage.defaultMaxPixelCount }
        let small = try RGBImage(contentsOfFile: Fixtures.path("small.png"))
        RGBImage.maxPixelCount = small.width * small.height - 1
        XCTAssertThrowsError(try RGBImage(contentsOfFile: Fixtures.path("small.png"))) { error in
            XCTAssertEqual(error as? ImageError, .tooLarge(path: Fixtures.path("small.png"), width: small.width, height: small.height))
        }
        RGBImage.maxPixelCount = small.width * small.height
        XCTAssertEqual(try RGBImage(contentsOfFile: Fixtures.path("small.png")), small)
    }

    func testOnlyRegularFilesAreRead() throws {
        XCTAssertThrowsError(try RGBImage(contentsOfFile: "/dev/zero")) { error in
            XCTAssertEqual(error as? ImageError, .notAFile(path: "/dev/zero", kind: "a device"))
        }
        let config = path("preprocessor_config.json")
        XCTAssertEqual(mkfifo(config, 0o600), 0)
        XCTAssertThrowsError(try ImageProcessorConfig(contentsOfFile: config)) { error in
            XCTAssertEqual("\(error)", "\(config): is a FIFO, not a regular file")
        }
    }

    func testOutputSizeIsWhatPrepareMakes() throws {
        var exact = ImageProcessorConfig.llava15
        exact.size = .exact(height: 40, width: 30)
        exact.doCenterCrop = false
        var noResize = ImageProcessorConfig.llava15
        noResize.doResize = false
        for config in [ImageProcessorConfig.llava15, exact, noResize] {
            for mode in ImageProcessor.Mode.allCases {
                let processor = ImageProcessor(config: config, mode: mode)
                for (w, h) in [(59, 57), (20, 90), (336, 336)] {
                    let prepared = try processor.prepare(RGBImage(width: w, height: h))
                    let size = processor.outputSize(width: w, height: h)
                    XCTAssertEqual([size.width, size.height], [prepared.width, prepared.height], "\(config) \(mode) \(w)x\(h)")
                }
            }
        }
    }

    func testPadColourOfAnAbsurdMeanIsClamped() {
        var config = ImageProcessorConfig.llava15
        config.imageMean = [1e300, -1e300, 0.5]
        XCTAssertEqual(ImageProcessor(config: config, mode: .pad).padColor, RGB(255, 0, 127))
    }
}
