import FixtureLocations
import Foundation
import XCTest

final class FixtureLocationTests: XCTestCase {
    func testReferenceFixturesLiveInTheRepository() {
        XCTAssertEqual(FixtureLocations.reference, FixtureLocations.packageRoot.appendingPathComponent("Tests/Fixtures/reference").path)
        for folder in FixtureLocations.referenceFolders {
            XCTAssertNil(FixtureLocations.referenceProblem(folder), FixtureLocations.referenceProblem(folder) ?? "")
        }
    }

    func testAMissingFolderIsNamedInOneLine() throws {
        let problem = try XCTUnwrap(FixtureLocations.referenceProblem("no-such-folder"))
        XCTAssertTrue(problem.contains(FixtureLocations.reference + "/no-such-folder"), problem)
        XCTAssertTrue(problem.contains("README.md"), problem)
        XCTAssertFalse(problem.contains("\n"), problem)
        XCTAssertThrowsError(try FixtureLocations.requireReference("pitome", "no-such-folder")) { XCTAssertEqual("\($0)", problem) }
        XCTAssertNoThrow(try FixtureLocations.requireReference("pitome", "llava-small"))
    }

    /// No test reads fixtures from outside the repository (a sibling folder or an environment variable).
    func testNoTestReadsOutsideTheRepository() throws {
        let tests = FixtureLocations.packageRoot.appendingPathComponent("Tests")
        let outside = [".." + "/shared", "LLAVA_" + "SHARED_FIXTURES", "shared" + "/fixtures"]
        var offenders: [String] = []
        let files = FileManager.default.enumerator(atPath: tests.path)?.compactMap { $0 as? String } ?? []
        for file in files where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: tests.appendingPathComponent(file).path, encoding: .utf8)
            offenders += outside.filter { text.contains($0) }.map { "\(file): \($0)" }
        }
        XCTAssertGreaterThan(files.count, 10)
        XCTAssertEqual(offenders, [])
    }

    func testArrayDifferencesNameTheFirstValuesAndTheCount() {
        XCTAssertNil(arrayDifferences([1, 2, 3], [1, 2, 3], same: ==))
        let many = Array(0..<10_000)
        var other = many
        for i in stride(from: 100, to: 10_000, by: 100) { other[i] = -1 }
        let d = arrayDifferences(many, other, same: ==) ?? ""
        XCTAssertTrue(d.hasPrefix("99 of 10000 compared values differ, first: [100] 100 vs -1, [200] 200 vs -1"), d)
        XCTAssertLessThan(d.count, 200, d)
        XCTAssertEqual(arrayDifferences([1, 2], [1, 2, 3], same: ==), "counts 2 vs 3; the common 2 values agree")
    }

    func testFixtureFieldsThrowOneLine() throws {
        let o: [String: Any] = ["n": 3, "list": [1, 2, "x"], "s": "text"]
        XCTAssertEqual(try o.int("n"), 3)
        XCTAssertThrowsError(try o.int("missing")) { XCTAssertEqual("\($0)", "fixture field \"missing\" is missing") }
        XCTAssertThrowsError(try o.ints("list")) { XCTAssertTrue("\($0)".hasPrefix("fixture field \"list\" is not a list of integers"), "\($0)") }
        XCTAssertThrowsError(try FixtureJSON.lines(FixtureLocations.reference + "/no-such/expected.jsonl")) { error in
            XCTAssertTrue("\(error)".contains("no-such/expected.jsonl is missing"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }
}
