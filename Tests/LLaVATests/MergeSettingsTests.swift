import Foundation
import LLaVA
import TokenMerging
import XCTest

final class MergeSettingsTests: XCTestCase {
    func testJSONFormRoundTripsAndKeepsItsKeys() throws {
        let plain = VisionMergeSettings(options: MergeOptions(method: .tome, keep: 64))
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(plain)) as! [String: Any]
        XCTAssertEqual(Set(object.keys), ["method", "ratio", "keep", "metric", "weighting", "prop_attn", "pitome_every_layer", "seed"])
        XCTAssertTrue(object["ratio"] is NSNull)
        XCTAssertEqual(try JSONDecoder().decode(VisionMergeSettings.self, from: JSONEncoder().encode(plain)), plain)

        let everything = VisionMergeSettings(
            options: MergeOptions(method: .pitome, ratio: 0.9, weighting: .size, pitomeEveryLayer: true, alpha: 0.5,
                                  marginBase: 0.8, seed: UInt64.max - 3),
            metric: .keys, proportionalAttention: true)
        let data = try JSONEncoder().encode(everything)
        let full = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(full["alpha"] as? Double, 0.5)
        XCTAssertEqual(full["margin_base"] as? Double, 0.8)
        XCTAssertEqual(try JSONDecoder().decode(VisionMergeSettings.self, from: data), everything)
    }

    func testLabelNamesEverySettingAwayFromItsDefault() {
        XCTAssertEqual(VisionMergeSettings(options: MergeOptions(method: .tome, keep: 64)).label, "tome keep=64")
        let s = VisionMergeSettings(options: MergeOptions(method: .randomDrop, ratio: 0.9, weighting: .size, seed: 3),
                                    metric: .keys, proportionalAttention: true)
        XCTAssertEqual(s.label, "random ratio=0.9 metric=keys weighting=size prop-attn seed=3")
    }

    func testSettingsThatEncodeDifferentlyAreDifferentCacheKeys() {
        let a = VisionMergeSettings(options: MergeOptions(method: .randomDrop, ratio: 0.9, seed: 1))
        var b = a
        b.options.seed = 2
        var c = a
        c.options.trackSources = true
        let keys = Set([a, b, c].map { ImageCache.Key(digest: "d", mode: .crop, merge: $0) })
        XCTAssertEqual(keys.count, 3)
        XCTAssertEqual(ImageCache.Key(digest: "d", mode: .crop, merge: a), ImageCache.Key(digest: "d", mode: .crop, merge: a))
    }

    func testValidationNeedsNoTower() {
        XCTAssertNoThrow(try VisionMergeSettings.none.validate())
        XCTAssertNoThrow(try VisionMergeSettings(options: MergeOptions(method: .pool2x2)).validate())
        XCTAssertThrowsError(try VisionMergeSettings(options: MergeOptions(method: .tome)).validate()) { error in
            XCTAssertEqual(error as? MergeError, .missingAmount(.tome))
        }
        XCTAssertThrowsError(try VisionMergeSettings(options: MergeOptions(method: .tome, keep: 0)).validate()) { error in
            XCTAssertEqual(error as? MergeError, .invalidBudget(0))
        }
    }
}
