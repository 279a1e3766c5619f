import LLaVA
import LlavaBenchmark
import TokenMerging
import XCTest

final class MergeGridTests: XCTestCase {
    func testCellsAreTheBaselineThenEachMethodsRatiosAndBudgets() {
        var variant = VisionMergeSettings.none
        variant.metric = .keys
        let grid = MergeGrid(methods: [.pitome, .pool2x2], ratios: [1, 0.9], keeps: [64], variant: variant)
        let cells = grid.cells.map { "\($0.method.rawValue) \($0.ratio.map { "\($0)" } ?? "-") \($0.keep.map(String.init) ?? "-")" }
        XCTAssertEqual(cells, ["none - -", "pitome 0.9 -", "pitome - 64", "pool - -", "pool - 64"])
        XCTAssertEqual(grid.settings(grid.cells[0]), .none)
        XCTAssertEqual(grid.settings(grid.cells[1]).label, "pitome ratio=0.9 metric=keys")
    }

    func testValidateChecksEveryCell() {
        XCTAssertNoThrow(try MergeGrid(methods: [.tome], ratios: [0.9], keeps: []).validate())
        XCTAssertThrowsError(try MergeGrid(methods: [.tome], ratios: [1.5], keeps: []).validate()) {
            XCTAssertEqual($0 as? MergeError, .invalidRatio(1.5))
        }
    }

    func testTheBaselineKeepsTheVariantsSourceTracking() {
        let grid = MergeGrid(methods: [.none], ratios: [], keeps: [],
                             variant: VisionMergeSettings(options: MergeOptions(trackSources: true)))
        XCTAssertTrue(grid.settings(.none).options.trackSources)
        XCTAssertFalse(grid.settings(.none).isActive)
    }
}
