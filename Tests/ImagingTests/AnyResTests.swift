import Checkpoint
import FixtureLocations
import Foundation
import Imaging
import XCTest

/// LLaVA-1.6 anyres preprocessing and feature geometry against transformers 5
/// (`LlavaNextImageProcessorPil`, `LlavaNextProcessor._get_number_of_features`, `unpad_image`,
/// `pack_image_features`), from `Tests/Fixtures/reference/anyres` (see its README.md).
final class AnyResTests: XCTestCase {
    static let folder = FixtureLocations.reference + "/anyres"

    override func setUpWithError() throws {
        try FixtureLocations.requireReference("anyres")
    }

    private func cases() throws -> [String: Any] { try FixtureJSON.object(Self.folder + "/cases.json") }

    private func resolution(_ pair: [Int]) throws -> Resolution {
        guard pair.count == 2 else { throw FixtureError("expected [height, width], got \(pair)") }
        return Resolution(height: pair[0], width: pair[1])
    }

    private func pinpoints(_ object: [String: Any]) throws -> [Resolution] {
        guard let list = object["pinpoints"] as? [[NSNumber]] else { throw FixtureError("pinpoints is not a list of pairs") }
        return try list.map { try resolution($0.map(\.intValue)) }
    }

    /// The kept range of one axis: null in the fixture means nothing was kept.
    private func range(_ object: [String: Any], _ key: String) throws -> Range<Int>? {
        if object[key] is NSNull { return nil }
        let pair = try object.ints(key)
        guard pair.count == 2 else { throw FixtureError("\(key) is not [start, end]") }
        return pair[0]..<pair[1]
    }

    /// Selection, resize size, padding, grid, unpadding and counts for one fixture case.
    private func checkGeometry(_ item: [String: Any], pinpoints: [Resolution], tile: Int, patch: Int, label: String) throws {
        let size = try resolution(try item.ints("image_size"))
        let best = try resolution(try item.ints("best_resolution"))
        XCTAssertEqual(AnyRes.selectBestResolution(imageSize: size, pinpoints: pinpoints), best, label)
        let grid = try XCTUnwrap(AnyResGrid(imageSize: size, pinpoints: pinpoints, tileSize: tile), label)
        XCTAssertEqual(grid.resolution, best, label)
        XCTAssertEqual(grid.resized, try resolution(try item.ints("resized")), label)
        XCTAssertEqual([grid.top, grid.left], try item.ints("pad"), label)
        XCTAssertEqual([grid.rows, grid.columns], try item.ints("grid"), label)

        let layout = try XCTUnwrap(AnyResFeatureLayout(imageSize: size, pinpoints: pinpoints, tileSize: tile, patchSize: patch), label)
        XCTAssertEqual([layout.gridRows, layout.gridColumns], [grid.rows, grid.columns], label)
        XCTAssertEqual([layout.keptRows.count, layout.keptColumns.count], try item.ints("kept_shape"), label)
        if let rows = try range(item, "kept_rows") { XCTAssertEqual(layout.keptRows, rows, label) }
        if let columns = try range(item, "kept_columns") { XCTAssertEqual(layout.keptColumns, columns, label) }
        XCTAssertEqual(layout.processorCount(), try item.int("num_features"), label)
        XCTAssertEqual(layout.processorCount(strategyIsFull: true), try item.int("num_features_full"), label)
        XCTAssertEqual(layout.count, layout.sequence.count, label)
    }

    func testPixelValuesMatchTransformers() throws {
        let doc = try cases()
        let small = try doc.object("small")
        let reference = try SafeTensorsFile(path: Self.folder + "/pixel_values.safetensors")
        let items = try doc.objects("pixel_cases")
        XCTAssertEqual(items.count, 30)
        var processors: [String: AnyResProcessor] = [:]
        var worst: Float = 0
        var differing = 0
        var tiles = 0
        for item in items {
            let label = try item.string("name")
            let configName = try item.string("config")
            if processors[configName] == nil {
                processors[configName] = try AnyResProcessor(contentsOfFile: Self.folder + "/" + configName)
            }
            let processor = try XCTUnwrap(processors[configName])
            XCTAssertEqual(processor.pinpoints, try pinpoints(small), label)
            XCTAssertEqual(processor.tileSize, try small.int("tile"), label)

            let out = try processor.process(contentsOfFile: Self.folder + "/" + (try item.string("input")))
            XCTAssertEqual(out.imageSize, try resolution(try item.ints("image_size")), label)
            XCTAssertEqual(out.grid.resolution, try resolution(try item.ints("best_resolution")), label)
            XCTAssertEqual([out.grid.rows, out.grid.columns], try item.ints("grid"), label)
            XCTAssertEqual(out.tiles.count, 1 + out.grid.tileCount, label)

            let info = try reference.info(try item.string("tensor"))
            XCTAssertEqual(info.shape, [out.tiles.count, 3, processor.config.cropHeight, processor.config.cropWidth], label)
            let expected = try reference.floats(info)
            let actual = out.tiles.flatMap(\.data)
            guard actual.count == expected.count else {
                XCTFail("\(label): \(actual.count) values, expected \(expected.count)")
                continue
            }
            for tile in out.tiles {
                XCTAssertEqual([tile.channels, tile.height, tile.width], [3, processor.config.cropHeight, processor.config.cropWidth], label)
            }
            tiles += out.tiles.count
            for i in actual.indices where actual[i].bitPattern != expected[i].bitPattern {
                differing += 1
                worst = max(worst, abs(actual[i] - expected[i]))
            }
            XCTAssertBitwiseEqual(actual, expected, label)
        }
        XCTAssertEqual(differing, 0)
        print("anyres pixels: \(items.count) pictures, \(tiles) tiles; \(differing) values differ, max |diff| \(worst)")
    }

    func testSmallGeometryAndPackingMatchTransformers() throws {
        let doc = try cases()
        let small = try doc.object("small")
        let (tile, patch) = (try small.int("tile"), try small.int("patch"))
        let points = try pinpoints(small)
        let items = try doc.objects("pixel_cases")
        var emptyAxes = 0
        for item in items {
            let label = try item.string("name")
            try checkGeometry(item, pinpoints: points, tile: tile, patch: patch, label: label)
            let layout = try XCTUnwrap(AnyResFeatureLayout(imageSize: try resolution(try item.ints("image_size")),
                                                           pinpoints: points, tileSize: tile, patchSize: patch))
            if layout.keptRows.isEmpty || layout.keptColumns.isEmpty { emptyAxes += 1 }
            // (tile, position): the overview is tile 0, grid tile t is t + 1; (-1, -1) is a newline.
            let packed = layout.sequence.flatMap { feature -> [Int] in
                switch feature {
                case .overview(let position): return [0, position]
                case .tile(let tile, let position): return [tile + 1, position]
                case .newline: return [-1, -1]
                }
            }
            XCTAssertEqualArrays(packed, try item.ints("packed"), label)
        }
        XCTAssertGreaterThanOrEqual(emptyAxes, 4, "the extreme shapes keep no row or no column")
    }

    func testCountsAndUnpaddingAtLlavaNextDefaults() throws {
        let doc = try cases()
        let defaults = try doc.object("default")
        let points = try pinpoints(defaults)
        XCTAssertEqual(points, GridPinpoints.llavaNextDefault)
        let (tile, patch) = (try defaults.int("tile"), try defaults.int("patch"))
        let items = try doc.objects("count_cases")
        XCTAssertEqual(items.count, 343)
        var empty = 0
        for item in items {
            let size = try item.ints("image_size")
            let label = "\(size)"
            try checkGeometry(item, pinpoints: points, tile: tile, patch: patch, label: label)
            let layout = try XCTUnwrap(AnyResFeatureLayout(imageSize: try resolution(size), pinpoints: points,
                                                           tileSize: tile, patchSize: patch))
            XCTAssertEqual(layout.count, try item.int("packed_length"), label)
            if layout.unpaddedCount == 0 { empty += 1 }
        }
        print("anyres counts: \(items.count) shapes at 336, \(empty) with no unpadded grid feature")
    }

    func testThinPicturesKeepNothingWithoutCrashing() throws {
        // 301 wide, 17 tall on a 1x3 grid of 4x4 features: no row survives, so no newline either.
        let wide = AnyResFeatureLayout(imageSize: Resolution(height: 17, width: 301), gridRows: 1, gridColumns: 3, side: 4)
        XCTAssertTrue(wide.keptRows.isEmpty)
        XCTAssertEqual(wide.keptColumns, 0..<12)
        XCTAssertEqual(wide.count, 16)
        XCTAssertEqual(wide.sequence, (0..<16).map { .overview(position: $0) })
        // 17 wide, 301 tall on a 3x1 grid: no column survives, but each row keeps its newline.
        let tall = AnyResFeatureLayout(imageSize: Resolution(height: 301, width: 17), gridRows: 3, gridColumns: 1, side: 4)
        XCTAssertTrue(tall.keptColumns.isEmpty)
        XCTAssertEqual(tall.newlineCount, 12)
        XCTAssertEqual(tall.count, 28)
        // A single pixel row or column, and the 1x1 picture.
        for (h, w) in [(1, 100_000), (100_000, 1), (1, 1)] {
            let layout = try XCTUnwrap(AnyResFeatureLayout(imageSize: Resolution(height: h, width: w),
                                                           pinpoints: GridPinpoints.llavaNextDefault, tileSize: 336, patchSize: 14))
            XCTAssertEqual(layout.count, layout.sequence.count)
        }
        XCTAssertNil(AnyRes.selectBestResolution(imageSize: Resolution(height: 10, width: 10), pinpoints: []))
    }

    func testPinpointsFromConfigFiles() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let path = dir.appendingPathComponent("config.json").path
        let json = #"{"image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]], "vision_config": {"image_size": 336}}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try GridPinpoints.read(contentsOfFile: path, tileSize: 336), GridPinpoints.llavaNextDefault)
        let processor = try AnyResProcessor(contentsOfFile: Self.folder + "/preprocessor_config_resize32.json")
        XCTAssertEqual(processor.overviewSize, Resolution(height: 32, width: 32))
        XCTAssertEqual(processor.tileSize, 28)
    }

    func testBadPinpointsGiveOneLine() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let cases: [(String, String)] = [
            (#"{"crop_size": 28}"#, "missing"),
            (#"{"image_grid_pinpoints": null}"#, "missing"),
            (#"{"image_grid_pinpoints": 56}"#, "list of [height, width] pairs"),
            (#"{"image_grid_pinpoints": []}"#, "empty list"),
            (#"{"image_grid_pinpoints": [56, 112]}"#, "entry 0"),
            (#"{"image_grid_pinpoints": [[56, 112], [56, 112, 168]]}"#, "entry 1"),
            (#"{"image_grid_pinpoints": [[56, "112"]]}"#, "two integers"),
            (#"{"image_grid_pinpoints": [[56, 112.5]]}"#, "two integers"),
            (#"{"image_grid_pinpoints": [[0, 56]]}"#, "not positive"),
            (#"{"image_grid_pinpoints": [[56, -28]]}"#, "not positive"),
            (#"{"image_grid_pinpoints": [[56, 112], [56, 100]]}"#, "not a multiple of the tile size 28"),
            ("[1, 2]", "does not hold a JSON object"),
            ("{not json", "not valid JSON"),
        ]
        for (index, (json, mention)) in cases.enumerated() {
            let path = dir.appendingPathComponent("preprocessor_config\(index).json").path
            try Data(json.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try GridPinpoints.read(contentsOfFile: path, tileSize: 28), json) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix(path + ": image_grid_pinpoints: "), text)
                XCTAssertTrue(text.contains(mention), "\(json): \(text)")
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
        // Through the processor: a config whose pinpoints do not fit its crop size.
        let path = dir.appendingPathComponent("mismatch.json").path
        try Data(#"{"crop_size": 336, "size": 336, "image_grid_pinpoints": [[56, 112]]}"#.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try AnyResProcessor(contentsOfFile: path)) { error in
            XCTAssertEqual("\(error)", "\(path): image_grid_pinpoints: entry 0 [56, 112] is not a multiple of the tile size 336")
        }
        let missing = dir.appendingPathComponent("absent.json").path
        XCTAssertThrowsError(try GridPinpoints.read(contentsOfFile: missing, tileSize: 28)) { error in
            XCTAssertEqual(error as? ImageError, .fileNotFound(path: missing))
        }
    }
}
