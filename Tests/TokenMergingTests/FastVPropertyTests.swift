import TokenMerging
import XCTest

/// FastV's selection on random and tied scores: exactly R kept, unique, in range, increasing, and
/// every kept score at least every dropped one.
final class FastVPropertyTests: XCTestCase {
    func testKeepsExactlyTheTopRScoresInIncreasingOrder() {
        var random = TestRandom(seed: 16)
        for n in [1, 2, 9, 64, 576] {
            let scores = (0..<n).map { _ in random.float() }
            for keep in Set([1, n / 3, n / 2, n - 1, n]) where keep >= 1 {
                let kept = FastV.select(scores: scores, keep: keep)
                XCTAssertEqual(kept.count, keep, "n \(n) keep \(keep)")
                XCTAssertEqual(Set(kept).count, keep, "unique, n \(n) keep \(keep)")
                XCTAssertTrue(kept.allSatisfy { $0 >= 0 && $0 < n }, "in range, n \(n) keep \(keep)")
                XCTAssertEqual(kept, kept.sorted(), "increasing, n \(n) keep \(keep)")
                let dropped = Set(0..<n).subtracting(kept)
                let lowestKept = kept.map { scores[$0] }.min()!
                XCTAssertTrue(dropped.allSatisfy { scores[$0] <= lowestKept }, "top R, n \(n) keep \(keep)")
            }
        }
    }

    func testTiesGoToTheEarlierTokenAndTheBudgetIsClamped() {
        XCTAssertEqual(FastV.select(scores: [0.5, 0.5, 0.5, 0.5], keep: 2), [0, 1])
        XCTAssertEqual(FastV.select(scores: [0.1, 0.3, 0.3, 0.2], keep: 1), [1])
        XCTAssertEqual(FastV.select(scores: [0.1, 0.3], keep: 5), [0, 1])
        XCTAssertEqual(FastV.select(scores: [0.1, 0.3], keep: 0), [])
    }

    func testCountFollowsTheBudgetOrTheRatio() throws {
        XCTAssertEqual(FastV.keptCount(visualTokens: 576, options: MergeOptions(method: .fastV, keep: 144)), 144)
        // The official round(576·(1 − 0.75)), round(576·(1 − 0.5)), half to even like Python.
        XCTAssertEqual(FastV.keptCount(visualTokens: 576, options: MergeOptions(method: .fastV, ratio: 0.25)), 144)
        XCTAssertEqual(FastV.keptCount(visualTokens: 576, options: MergeOptions(method: .fastV, ratio: 0.5)), 288)
        XCTAssertEqual(FastV.keptCount(visualTokens: 5, options: MergeOptions(method: .fastV, ratio: 0.5)), 2)
        XCTAssertEqual(FastV.keptCount(visualTokens: 64, options: MergeOptions(method: .fastV, ratio: 0.001)), 1)
        // The tower runs unreduced: every layer keeps its tokens.
        let schedule = try MergeSchedule(options: MergeOptions(method: .fastV, keep: 8), towerDepth: 12, mergeLayers: 11,
                                         initialTokens: 65)
        XCTAssertEqual(schedule.tokenCounts, Array(repeating: 65, count: 12))
        XCTAssertNil(schedule.projectorKeep)
        XCTAssertThrowsError(try MergeOptions(method: .fastV, keep: 8, fastvLayer: 0).validate())
        XCTAssertThrowsError(try MergeOptions(method: .pitome, ratio: 0.9, fastvLayer: 3).validate())
    }
}
