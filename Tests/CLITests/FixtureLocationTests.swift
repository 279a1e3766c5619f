import FixtureLocations
import XCTest

final class FixtureLocationTests: XCTestCase {
    func testSharedFixturesAreFound() {
        XCTAssertNil(FixtureLocations.sharedProblem, FixtureLocations.sharedProblem ?? "")
    }

    func testAMissingFolderSaysHowToPointAtIt() {
        let found = FixtureLocations.locateShared(environment: ["LLAVA_SHARED_FIXTURES": "/nonexistent/fixtures"])
        XCTAssertEqual(found.path, "/nonexistent/fixtures")
        let problem = try? XCTUnwrap(found.problem)
        XCTAssertTrue(problem?.contains("/nonexistent/fixtures") == true, problem ?? "")
        XCTAssertTrue(problem?.contains("set LLAVA_SHARED_FIXTURES") == true, problem ?? "")
    }

    func testWithoutTheVariableTheSiblingFolderIsUsed() {
        let found = FixtureLocations.locateShared(environment: [:])
        XCTAssertEqual(found.path, FixtureLocations.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path)
    }
}
