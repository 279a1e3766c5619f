import Imaging
import XCTest

final class ResizeTests: XCTestCase {
    /// Pillow's Image.resize for every filter (nearest, lanczos, bilinear, bicubic, box, hamming):
    /// up, down, one axis only, mixed, identity, 1x1, and a 1280x960 JPEG shrunk to 149x112 and 21x600.
    func testResizeEqualsPillowExactly() throws {
        let manifest = try Fixtures.manifest()
        XCTAssertEqual(manifest.resize.count, 33)
        var filters = Set<ResampleFilter>()
        var worst = 0
        for item in manifest.resize {
            let filter = try XCTUnwrap(ResampleFilter(rawValue: item.filter))
            filters.insert(filter)
            let source = try Fixtures.image(item.source)
            let expected = try RGBImage(contentsOfFile: Fixtures.path(item.png))
            let actual = source.resized(width: item.width, height: item.height, filter: filter)
            XCTAssertEqual(actual.width, item.width)
            XCTAssertEqual(actual.height, item.height)
            let diff = maxAbsDiff(actual.pixels, expected.pixels)
            worst = max(worst, diff)
            XCTAssertEqual(diff, 0, "\(item.source) -> \(item.width)x\(item.height) \(filter)")
        }
        print("resize: \(manifest.resize.count) cases, max |diff| \(worst)")
        XCTAssertEqual(filters, Set(ResampleFilter.allCases))
    }

    func testSameSizeIsACopy() throws {
        let image = try Fixtures.image("portrait.png")
        for filter in ResampleFilter.allCases {
            XCTAssertEqual(image.resized(width: image.width, height: image.height, filter: filter), image)
        }
    }

    func testConstantImageStaysConstant() {
        // Normalised weights sum to 1 in fixed point up to rounding; a flat colour must survive
        // any resize exactly.
        let flat = RGBImage(width: 37, height: 23, fill: RGB(200, 17, 255))
        for filter in ResampleFilter.allCases {
            for (w, h) in [(5, 3), (100, 61), (37, 90), (1, 1)] {
                let out = flat.resized(width: w, height: h, filter: filter)
                XCTAssertTrue(stride(from: 0, to: out.pixels.count, by: 3).allSatisfy {
                    out.pixels[$0] == 200 && out.pixels[$0 + 1] == 17 && out.pixels[$0 + 2] == 255
                }, "\(filter) \(w)x\(h)")
            }
        }
    }
}
