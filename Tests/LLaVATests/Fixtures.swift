import FixtureLocations
import Foundation
import XCTest

@testable import LLaVA

/// Paths to test data: the project's own fixtures and the shared reference fixtures.
enum Fixtures {
    static let llava = FixtureLocations.project + "/llava"
    static let shared = FixtureLocations.shared

    static func json(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func jsonLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

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

extension Array where Element == Any {
    var ints: [Int] { map { ($0 as! NSNumber).intValue } }
    var floats: [Float] { map { ($0 as! NSNumber).floatValue } }
}
