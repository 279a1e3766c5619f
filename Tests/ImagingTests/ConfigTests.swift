import Foundation
import Imaging
import XCTest

final class ConfigTests: XCTestCase {
    private func decode(_ json: String) throws -> ImageProcessorConfig {
        try JSONDecoder().decode(ImageProcessorConfig.self, from: Data(json.utf8))
    }

    func testLlavaPreprocessorConfigFile() throws {
        let config = try ImageProcessorConfig(contentsOfFile: Fixtures.path("preprocessor_config.json"))
        XCTAssertEqual(config, .llava15)
        XCTAssertEqual(config.size, .shortestEdge(336))
        XCTAssertEqual([config.cropHeight, config.cropWidth], [336, 336])
        XCTAssertEqual(config.resample, .bicubic)
        XCTAssertEqual(config.rescaleFactor, 0.00392156862745098)
        XCTAssertEqual(config.imageMean, [0.48145466, 0.4578275, 0.40821073])
        XCTAssertEqual(config.imageStd, [0.26862954, 0.26130258, 0.27577711])
    }

    func testMissingFieldsTakeCLIPDefaults() throws {
        let config = try decode("{}")
        XCTAssertEqual(config, ImageProcessorConfig())
        XCTAssertEqual(config.size, .shortestEdge(224))
        XCTAssertEqual([config.cropHeight, config.cropWidth], [224, 224])
        XCTAssertEqual(config.resample, .bicubic)
        XCTAssertEqual(config.rescaleFactor, 1.0 / 255.0)
        XCTAssertTrue(config.doResize && config.doCenterCrop && config.doRescale && config.doNormalize && config.doConvertRGB)
        XCTAssertEqual(config.imageMean, ImageProcessorConfig.clipMean)
        XCTAssertEqual(config.imageStd, ImageProcessorConfig.clipStd)
    }

    func testAlternativeSpellings() throws {
        let ints = try decode(#"{"size": 300, "crop_size": 288, "resample": 2, "do_center_crop": false}"#)
        XCTAssertEqual(ints.size, .shortestEdge(300))
        XCTAssertEqual([ints.cropHeight, ints.cropWidth], [288, 288])
        XCTAssertEqual(ints.resample, .bilinear)
        XCTAssertFalse(ints.doCenterCrop)
        let exact = try decode(#"{"size": {"height": 96, "width": 128}, "crop_size": {"height": 10, "width": 20, "shortest_edge": null}}"#)
        XCTAssertEqual(exact.size, .exact(height: 96, width: 128))
        XCTAssertEqual([exact.cropHeight, exact.cropWidth], [10, 20])
        let scalarMean = try decode(#"{"image_mean": 0.5, "image_std": 0.25}"#)
        XCTAssertEqual(scalarMean.imageMean, [0.5, 0.5, 0.5])
        XCTAssertEqual(scalarMean.imageStd, [0.25, 0.25, 0.25])
    }

    func testInvalidConfigsThrowNamingTheFile() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let cases: [(String, String)] = [
            ("not json", "not valid JSON"),
            (#"{"resample": 7}"#, "resample"),
            (#"{"size": {"longest_edge": 100}}"#, "size"),
            (#"{"size": {"shortest_edge": 0}}"#, "shortest_edge"),
            (#"{"crop_size": {"height": 10}}"#, "crop_size"),
            (#"{"image_mean": [0.5, 0.5]}"#, "image_mean"),
            (#"{"image_std": [0.5, 0, 0.5]}"#, "image_std"),
            (#"{"do_resize": "yes"}"#, "do_resize"),
        ]
        for (index, (json, mention)) in cases.enumerated() {
            let path = dir.appendingPathComponent("config\(index).json").path
            try Data(json.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try ImageProcessorConfig(contentsOfFile: path), json) { error in
                guard case ImageError.invalidConfig(let p, _) = error else { return XCTFail("\(json): \(error)") }
                XCTAssertEqual(p, path)
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix(path + ": invalid preprocessor config"), text)
                XCTAssertTrue(text.contains(mention), "\(json): \(text)")
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
        let missing = dir.appendingPathComponent("absent.json").path
        XCTAssertThrowsError(try ImageProcessorConfig(contentsOfFile: missing)) { error in
            XCTAssertEqual(error as? ImageError, .fileNotFound(path: missing))
        }
        XCTAssertThrowsError(try ImageProcessorConfig(contentsOfFile: dir.path)) { error in
            XCTAssertEqual(error as? ImageError, .notAFile(path: dir.path, kind: "a directory"))
        }
    }
}
