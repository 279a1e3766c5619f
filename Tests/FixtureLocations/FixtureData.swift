import Foundation

/// A fixture that is missing or does not hold what a test expects, in one line.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Reading JSON fixtures without force casts: every problem is a thrown `FixtureError`, so a
/// missing or damaged file fails the test that reads it and nothing else.
public enum FixtureJSON {
    /// The bytes of `path`, or a one-line error naming it.
    public static func data(_ path: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: path) else {
            throw FixtureError("fixture \(path) is missing" + missingHint(path))
        }
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw FixtureError("fixture \(path) cannot be read: \(error.localizedDescription)")
        }
    }

    /// The JSON value in `path`.
    public static func value(_ path: String) throws -> Any {
        do { return try JSONSerialization.jsonObject(with: try data(path)) } catch let error as FixtureError { throw error } catch {
            throw FixtureError("fixture \(path) is not valid JSON")
        }
    }

    /// `path` holds one JSON object.
    public static func object(_ path: String) throws -> [String: Any] {
        guard let o = try value(path) as? [String: Any] else { throw FixtureError("fixture \(path) does not hold a JSON object") }
        return o
    }

    /// `path` holds a JSON list of objects.
    public static func objects(_ path: String) throws -> [[String: Any]] {
        guard let o = try value(path) as? [[String: Any]] else { throw FixtureError("fixture \(path) does not hold a list of JSON objects") }
        return o
    }

    /// `path` holds one JSON object per non-empty line.
    public static func lines(_ path: String) throws -> [[String: Any]] {
        guard let text = String(data: try data(path), encoding: .utf8) else { throw FixtureError("fixture \(path) is not UTF-8 text") }
        return try text.split(separator: "\n").enumerated().map { index, line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw FixtureError("fixture \(path) line \(index + 1) is not a JSON object")
            }
            return o
        }
    }

    private static func missingHint(_ path: String) -> String {
        path.hasPrefix(FixtureLocations.reference) ? " (see Tests/Fixtures/reference/README.md for the script that makes it)" : ""
    }
}

/// Typed fields of a JSON fixture object; a missing or mistyped field throws a `FixtureError` naming it.
extension Dictionary where Key == String, Value == Any {
    private func field<T>(_ key: String, _ kind: String, _ convert: (Any) -> T?) throws -> T {
        guard let raw = self[key] else { throw FixtureError("fixture field \"\(key)\" is missing") }
        guard let value = convert(raw) else { throw FixtureError("fixture field \"\(key)\" is not \(kind): \(String(describing: raw).prefix(60))") }
        return value
    }

    public func string(_ key: String) throws -> String { try field(key, "a string") { $0 as? String } }
    public func int(_ key: String) throws -> Int { try field(key, "an integer") { ($0 as? NSNumber)?.intValue } }
    public func double(_ key: String) throws -> Double { try field(key, "a number") { ($0 as? NSNumber)?.doubleValue } }
    public func float(_ key: String) throws -> Float { try field(key, "a number") { ($0 as? NSNumber)?.floatValue } }
    public func object(_ key: String) throws -> [String: Any] { try field(key, "an object") { $0 as? [String: Any] } }
    public func objects(_ key: String) throws -> [[String: Any]] { try field(key, "a list of objects") { $0 as? [[String: Any]] } }
    public func strings(_ key: String) throws -> [String] { try field(key, "a list of strings") { $0 as? [String] } }

    public func ints(_ key: String) throws -> [Int] {
        try field(key, "a list of integers") { value in
            guard let list = value as? [Any] else { return nil }
            let numbers = list.compactMap { ($0 as? NSNumber)?.intValue }
            return numbers.count == list.count ? numbers : nil
        }
    }

    public func floats(_ key: String) throws -> [Float] {
        try field(key, "a list of numbers") { value in
            guard let list = value as? [Any] else { return nil }
            let numbers = list.compactMap { ($0 as? NSNumber)?.floatValue }
            return numbers.count == list.count ? numbers : nil
        }
    }
}
