import Checkpoint
import Imaging
import XCTest

final class ProcessorTests: XCTestCase {
    /// CLIPImageProcessorPil in crop mode and LLaVA's expand2square + processor in pad mode, at
    /// 336 and 112, plus crop-larger-than-resize, no-resize, exact-size bilinear and nearest cases.
    func testPixelValuesMatchTransformers() throws {
        let manifest = try Fixtures.manifest()
        let reference = try Fixtures.reference()
        let table = try reference.floats(try reference.info("pixel_value_table"))
        XCTAssertEqual(table.count, 3 * 256)
        XCTAssertEqual(manifest.processor.count, 32)
        var worstStage = 0
        var worstValue: Float = 0
        var worstDirect: Float = 0
        var directCount = 0
        for item in manifest.processor {
            let mode = try XCTUnwrap(ImageProcessor.Mode(rawValue: item.mode))
            let processor = ImageProcessor(config: item.config, mode: mode)
            let label = "\(item.png)"
            let image = try Fixtures.image(item.source)

            // The uint8 stage (pad, resize, crop) against the processor's own uint8 output.
            let stage = try processor.prepare(image)
            let expectedStage = try RGBImage(contentsOfFile: Fixtures.path(item.png))
            XCTAssertEqual(stage.width, item.width, label)
            XCTAssertEqual(stage.height, item.height, label)
            let stageDiff = maxAbsDiff(stage.pixels, expectedStage.pixels)
            worstStage = max(worstStage, stageDiff)
            XCTAssertEqual(stageDiff, 0, label)

            // Float32 values: pixel_values[c, y, x] == table[c, stage[y, x, c]] (checked bit for
            // bit by the script against the processor output).
            let values = try processor.process(image)
            XCTAssertEqual([values.channels, values.height, values.width], [item.channels, item.height, item.width], label)
            let plane = item.height * item.width
            var expected = [Float](repeating: 0, count: 3 * plane)
            for c in 0..<3 {
                for i in 0..<plane { expected[c * plane + i] = table[c * 256 + Int(expectedStage.pixels[3 * i + c])] }
            }
            let valueDiff = maxAbsDiff(values.data, expected)
            worstValue = max(worstValue, valueDiff)
            XCTAssertLessThanOrEqual(valueDiff, 1e-6, label)

            if let tensor = item.direct {
                directCount += 1
                let raw = try reference.floats(try reference.info(tensor))
                let diff = maxAbsDiff(values.data, raw)
                worstDirect = max(worstDirect, diff)
                XCTAssertLessThanOrEqual(diff, 1e-6, tensor)
            }
        }
        XCTAssertEqual(directCount, 2)
        print("processor: \(manifest.processor.count) cases; uint8 stage max |diff| \(worstStage); "
              + "pixel_values max |diff| \(worstValue) (table), \(worstDirect) (raw tensors)")
    }

    func testValueTableMatchesTransformers() throws {
        let reference = try Fixtures.reference()
        let table = try reference.floats(try reference.info("pixel_value_table"))
        // A 256x1 ramp with resize and crop off runs the same arithmetic as the table.
        var ramp = RGBImage(width: 256, height: 1)
        for v in 0..<256 { ramp[v, 0] = RGB(UInt8(v), UInt8(v), UInt8(v)) }
        var config = ImageProcessorConfig()
        config.doResize = false
        config.doCenterCrop = false
        let values = try ImageProcessor(config: config).process(ramp)
        XCTAssertEqual(values.data.count, 3 * 256)
        for i in 0..<(3 * 256) {
            XCTAssertEqual(values.data[i].bitPattern, table[i].bitPattern, "channel \(i / 256) value \(i % 256)")
        }
    }

    func testPadColorAndPlacement() {
        let processor = ImageProcessor(config: .llava15, mode: .pad)
        XCTAssertEqual(processor.padColor, RGB(122, 116, 104))
        let wide = RGBImage(width: 5, height: 2, fill: RGB(1, 2, 3))
        let square = wide.expandedToSquare(background: processor.padColor)
        XCTAssertEqual([square.width, square.height], [5, 5])
        // (5 - 2) / 2 = 1 row of background on top, 2 at the bottom.
        XCTAssertEqual(square[0, 0], RGB(122, 116, 104))
        XCTAssertEqual(square[4, 1], RGB(1, 2, 3))
        XCTAssertEqual(square[4, 2], RGB(1, 2, 3))
        XCTAssertEqual(square[0, 3], RGB(122, 116, 104))
        let tall = RGBImage(width: 2, height: 5, fill: RGB(9, 9, 9)).expandedToSquare(background: RGB(7, 7, 7))
        XCTAssertEqual(tall[0, 0], RGB(7, 7, 7))
        XCTAssertEqual(tall[1, 0], RGB(9, 9, 9))
        XCTAssertEqual(tall[2, 4], RGB(9, 9, 9))
        XCTAssertEqual(tall[3, 4], RGB(7, 7, 7))
    }

    func testResizeTargetFloorsTheLongSide() {
        let processor = ImageProcessor(config: .llava15)
        XCTAssertTrue(processor.resizeTarget(width: 640, height: 480) == (448, 336))
        XCTAssertTrue(processor.resizeTarget(width: 480, height: 640) == (336, 448))
        XCTAssertTrue(processor.resizeTarget(width: 500, height: 333) == (504, 336))  // 336*500/333 = 504.5
        XCTAssertTrue(processor.resizeTarget(width: 4000, height: 3000) == (448, 336))
        XCTAssertTrue(processor.resizeTarget(width: 300, height: 300) == (336, 336))
    }

    func testCenterCropPadsWithZeros() {
        let image = RGBImage(width: 3, height: 2, fill: RGB(50, 60, 70))
        let out = image.centerCropped(width: 6, height: 5)
        // Columns: left = (3 - 6) // 2 = -2, so the image covers x 2...4; rows: top = (2 - 5) // 2 = -2, y 2...3.
        for y in 0..<5 {
            for x in 0..<6 {
                let inside = (2...4).contains(x) && (2...3).contains(y)
                XCTAssertEqual(out[x, y], inside ? RGB(50, 60, 70) : RGB(0, 0, 0), "(\(x), \(y))")
            }
        }
    }

    func testProcessFileUsesTheDecoder() throws {
        let processor = ImageProcessor(config: .llava15, mode: .pad)
        let fromFile = try processor.process(contentsOfFile: Fixtures.path("portrait.png"))
        XCTAssertEqual(fromFile, try processor.process(try Fixtures.image("portrait.png")))
        XCTAssertEqual([fromFile.channels, fromFile.height, fromFile.width], [3, 336, 336])
        XCTAssertThrowsError(try processor.process(contentsOfFile: Fixtures.path("missing.png")))
    }
}
