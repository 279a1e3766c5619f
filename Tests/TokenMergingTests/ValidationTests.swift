import TokenMerging
import XCTest

final class ValidationTests: XCTestCase {
    func error(_ options: MergeOptions, tokens: Int = 577, depth: Int = 24, layers: Int = 23) -> MergeError? {
        do {
            _ = try TokenMerger(options: options, towerDepth: depth, mergeLayers: layers, initialTokens: tokens)
            return nil
        } catch {
            return error as? MergeError
        }
    }

    func testInvalidConfigurationsAreTypedErrors() {
        let cases: [(MergeOptions, Int, Int, Int, MergeError)] = [
            (MergeOptions(method: .pitome, ratio: 0), 577, 24, 23, .invalidRatio(0)),
            (MergeOptions(method: .pitome, ratio: -0.5), 577, 24, 23, .invalidRatio(-0.5)),
            (MergeOptions(method: .tome, ratio: 1.01), 577, 24, 23, .invalidRatio(1.01)),
            (MergeOptions(method: .tome, ratio: 0.9, keep: 50), 577, 24, 23, .ratioAndKeep),
            (MergeOptions(method: .tome, keep: 0), 577, 24, 23, .invalidBudget(0)),
            (MergeOptions(method: .tome, keep: 577), 577, 24, 23, .invalidKeep(keep: 577, patchTokens: 576)),
            (MergeOptions(method: .pitome), 577, 24, 23, .missingAmount(.pitome)),
            (MergeOptions(method: .none, ratio: 0.9), 577, 24, 23, .amountWithoutMethod),
            (MergeOptions(method: .tome, ratio: 0.9, pitomeEveryLayer: true), 577, 24, 23, .everyLayerWithoutPiToMe(.tome)),
            (MergeOptions(method: .pitome, ratio: 0.9, alpha: .nan), 577, 24, 23, .invalidAlpha(.nan)),
            (MergeOptions(method: .pitome, ratio: 0.9, marginBase: .infinity), 577, 24, 23, .invalidMarginBase(.infinity)),
            (MergeOptions(method: .tome, keep: 1), 577, 24, 3, .keepUnreachable(keep: 1, minimum: 72, method: .tome, layers: 3)),
            (MergeOptions(method: .pool2x2), 50, 12, 11, .poolGrid(patchTokens: 49)),
            (MergeOptions(method: .pool2x2, ratio: 0.25), 577, 24, 23, .poolRatio),
            (MergeOptions(method: .pool2x2, keep: 100), 577, 24, 23, .poolKeep(keep: 100, pooled: 144)),
            (MergeOptions(method: .pool2x2), 577, 24, 0, .poolWithoutLayers),
            (MergeOptions(method: .dct, ratio: 0.9, trackSources: true), 577, 24, 23, .sourcesUnavailable(.dct)),
            (MergeOptions(method: .tome, ratio: 0.9), 577, 24, 25, .invalidGeometry("merge layers 25 must be between 0 and the tower depth 24")),
            (MergeOptions(method: .tome, ratio: 0.9), 1, 24, 23, .invalidGeometry("1 tokens: need a CLS token and at least one patch token")),
        ]
        for (options, tokens, depth, layers, expected) in cases {
            let got = error(options, tokens: tokens, depth: depth, layers: layers)
            // NaN payloads never compare equal; compare the message instead.
            XCTAssertEqual(got.map(String.init(describing:)), String(describing: expected), "\(options)")
            let message = got.map(String.init(describing:)) ?? ""
            XCTAssertFalse(message.isEmpty)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)")
        }
        XCTAssertEqual(MergeError.invalidRatio(1.5).description, "merge ratio 1.5 is out of range: it must satisfy 0 < ratio <= 1")
    }

    func testValidConfigurations() {
        XCTAssertNil(error(MergeOptions()))
        XCTAssertNil(error(MergeOptions(method: .pitome, ratio: 1)))
        XCTAssertNil(error(MergeOptions(method: .pitome, ratio: 0.01)))
        XCTAssertNil(error(MergeOptions(method: .tome, keep: 576)))
        XCTAssertNil(error(MergeOptions(method: .tome, keep: 1)))
        XCTAssertNil(error(MergeOptions(method: .pool2x2, keep: 144)))
        XCTAssertNil(error(MergeOptions(method: .diffRate, ratio: 0.9)))
    }
}
