import FixtureLocations
import Foundation
import XCTest

@testable import LLaVA

/// Paths to test data: the project's own fixtures and the reference fixtures
/// (Tests/Fixtures/reference).
enum Fixtures {
    static let llava = FixtureLocations.project + "/llava"
    static let reference = FixtureLocations.reference

    static func json(_ path: String) throws -> Any { try FixtureJSON.value(path) }

    static func jsonLines(_ path: String) throws -> [[String: Any]] { try FixtureJSON.lines(path) }

    private static var pipelines: [String: LlavaPipeline] = [:]
    private static let lock = NSLock()

    /// One loaded pipeline per model folder, shared by the tests.
    static func pipeline(_ directory: String) throws -> LlavaPipeline {
        lock.lock()
        defer { lock.unlock() }
        if let p = pipelines[directory] { return p }
        let p = try LlavaPipeline(directory: directory)
        pipelines[directory] = p
        return p
    }
}
