import FixtureLocations
import Foundation
import Imaging
import XCTest

final class MergeMapTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    static let model = CLI.referenceFixtures + "/llava-small/model"
    static let image = CLI.referenceFixtures + "/llava-small/shapes.png"
    /// The fixture tower: 112 px, 14 px patches.
    static let side = 112, grid = 8, patch = 14

    func output() throws -> String {
        let dir = NSTemporaryDirectory() + "llava-map-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir + "/map.png"
    }

    /// "…: N visual tokens (… M patches dropped)" lines of the command's output.
    func reported(_ stdout: String) -> [(tokens: Int, dropped: Int)] {
        stdout.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            guard let t = words.firstIndex(of: "visual"), let d = words.firstIndex(of: "dropped)") else { return nil }
            guard t > 0, d > 1, let tokens = Int(words[t - 1]), let dropped = Int(words[d - 2]) else { return nil }
            return (tokens, dropped)
        }
    }

    /// The colour at the centre of every patch cell of a panel whose top-left corner is (x0, y0).
    func cellCentres(_ image: RGBImage, scale: Int, x0: Int = 0, y0: Int = 0) -> [RGB] {
        let cell = Self.patch * scale
        return (0..<Self.grid * Self.grid).map { p in
            image[x0 + (p % Self.grid) * cell + cell / 2, y0 + (p / Self.grid) * cell + cell / 2]
        }
    }

    func isGrey(_ c: RGB) -> Bool { c.red == c.green && c.green == c.blue }

    func testPaletteMapHasOneColourPerVisualToken() throws {
        let out = try output()
        let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "pitome", "--ratio", "0.9",
                             "--style", "palette", "--scale", "2", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let counts = reported(r.stdout)
        XCTAssertEqual(counts.count, 1, r.stdout)
        guard r.status == 0, counts.count == 1 else { return }
        XCTAssertEqual(counts[0].tokens, 23, "the planned count for pitome ρ=0.9 on this tower")
        XCTAssertEqual(counts[0].dropped, 0)
        let png = try RGBImage(contentsOfFile: out)
        XCTAssertEqual(png.width, Self.side * 2)
        XCTAssertEqual(png.height, Self.side * 2)
        let centres = cellCentres(png, scale: 2)
        XCTAssertFalse(centres.contains(where: isGrey))
        XCTAssertEqual(Set(centres).count, 23)
        // A cell is painted in one colour throughout (no borders below --scale 3).
        let cell = Self.patch * 2
        for p in 0..<Self.grid * Self.grid {
            let x = (p % Self.grid) * cell, y = (p / Self.grid) * cell
            XCTAssertEqual(png[x, y], centres[p])
            XCTAssertEqual(png[x + cell - 1, y + cell - 1], centres[p])
        }
    }

    func testBordersSeparateTokensAndDroppedPatchesAreGrey() throws {
        let out = try output()
        let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "random", "--ratio", "0.9",
                             "--style", "palette", "--scale", "3", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let counts = try XCTUnwrap(reported(r.stdout).first, r.stdout)
        XCTAssertGreaterThan(counts.dropped, 0)
        let png = try RGBImage(contentsOfFile: out)
        let centres = cellCentres(png, scale: 3)
        XCTAssertEqual(centres.filter(isGrey).count, counts.dropped)
        XCTAssertEqual(Set(centres.filter { !isGrey($0) }).count, counts.tokens)
        // The last pixel column of a cell is a dark line exactly when its right neighbour is
        // another token (dropped patches, grey, count as one group).
        let cell = Self.patch * 3
        let token = centres.map { isGrey($0) ? nil : $0 }
        var borders = 0
        for p in 0..<Self.grid * Self.grid where p % Self.grid < Self.grid - 1 {
            let edge = png[(p % Self.grid) * cell + cell - 1, (p / Self.grid) * cell + cell / 2]
            if token[p] != token[p + 1] {
                XCTAssertEqual(edge, RGB(24, 24, 24), "patch \(p)")
                borders += 1
            } else if let colour = token[p] {
                XCTAssertEqual(edge, colour, "patch \(p)")
            } else {
                XCTAssertTrue(isGrey(edge) && edge != RGB(24, 24, 24), "patch \(p)")
            }
        }
        XCTAssertGreaterThan(borders, 0)
    }

    func testSideBySideDrawsInputAndEachMethodWithCaptions() throws {
        let out = try output()
        let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--side-by-side", "pitome,tome",
                             "--keep", "16", "--style", "palette", "--scale", "3", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(reported(r.stdout).map(\.tokens), [16, 16])
        let png = try RGBImage(contentsOfFile: out)
        let panel = Self.side * 3, gap = 8
        XCTAssertEqual(png.width, 3 * panel + 4 * gap)
        XCTAssertGreaterThan(png.height, panel + 2 * gap)
        for i in 1...2 {
            let centres = cellCentres(png, scale: 3, x0: gap + i * (panel + gap), y0: gap)
            XCTAssertEqual(Set(centres).count, 16, "panel \(i)")
        }
        // Each caption (below its panel) has dark text pixels.
        for i in 0..<3 {
            let x0 = gap + i * (panel + gap)
            var dark = 0
            for y in (gap + panel)..<png.height {
                for x in x0..<(x0 + panel) where png[x, y] == RGB(0, 0, 0) { dark += 1 }
            }
            XCTAssertGreaterThan(dark, 20, "caption \(i)")
        }
    }

    func testDefaultScaleAndMeanStyle() throws {
        let out = try output()
        let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--keep", "10", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(reported(r.stdout).map(\.tokens), [10])
        let png = try RGBImage(contentsOfFile: out)
        XCTAssertEqual(png.width, 672)
        XCTAssertEqual(png.height, 672)
        XCTAssertTrue(r.stdout.contains("(672x672)"), r.stdout)
    }

    func testDCTHasNoMap() throws {
        let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "dct", "--ratio", "0.9",
                             "--out", try output()])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("dct") && r.stderr.contains("every patch"), r.stderr)
    }

    func testSVGOutputHoldsThePicture() throws {
        let out = try output().replacingOccurrences(of: ".png", with: ".svg")
        let r = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--keep", "10",
                             "--scale", "2", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote \(out) (224x224)"), r.stdout)
        let svg = try SVGRoot(path: out)
        XCTAssertEqual(svg.viewBox, [0, 0, 224, 224])
        // The picture is embedded as PNG data: decode it and compare with the PNG output.
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let marker = "data:image/png;base64,"
        let start = try XCTUnwrap(text.range(of: marker)).upperBound
        let end = try XCTUnwrap(text[start...].firstIndex(of: "\""))
        let data = try XCTUnwrap(Data(base64Encoded: String(text[start..<end]), options: .ignoreUnknownCharacters))
        let embedded = (out as NSString).deletingLastPathComponent + "/embedded.png"
        try data.write(to: URL(fileURLWithPath: embedded))
        let picture = try assertPicture(embedded, width: 224, height: 224)
        let png = (out as NSString).deletingLastPathComponent + "/same.png"
        let again = try CLI.run(["merge-map", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--keep", "10",
                                 "--scale", "2", "--out", png])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(picture, try RGBImage(contentsOfFile: png))
    }

    func testAnOutputNameWithoutPNGOrSVGIsAnErrorBeforeAnyWork() throws {
        let out = try output().replacingOccurrences(of: ".png", with: ".jpg")
        // The model does not exist: the name is checked first.
        let r = try CLI.run(["merge-map", "--model", "/nonexistent/model", "--image", Self.image, "--merge", "tome",
                             "--keep", "10", "--out", out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderrLines.first, "llava: error: --out \(out): the picture is written as PNG or SVG, so the name must end in .png or .svg")
        XCTAssertFalse(r.stderr.contains("/nonexistent/model"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
