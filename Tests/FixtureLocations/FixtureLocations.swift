import Foundation

/// Where the tests find their data. Everything lives inside the repository, so a clone passes its
/// tests on its own.
public enum FixtureLocations {
    /// The package root (this file is Tests/FixtureLocations/FixtureLocations.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The project's own fixtures, Tests/Fixtures.
    public static let project = packageRoot.appendingPathComponent("Tests/Fixtures").path

    /// The reference fixtures made with the official code and transformers, Tests/Fixtures/reference
    /// (`pitome/`, `llava-small/`, `eval/`, `clip-small/`, `anyres/`; see its README.md for how each is regenerated).
    public static let reference = project + "/reference"

    /// The reference fixture folders the tests read.
    public static let referenceFolders = ["pitome", "llava-small", "eval", "clip-small", "anyres"]

    /// Why `reference/<folder>` cannot be read (nil when it is a folder), as one line naming the
    /// folder and the script that makes it.
    public static func referenceProblem(_ folder: String) -> String? {
        let path = reference + "/" + folder
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return nil }
        return "the reference fixtures \(path) are missing (see Tests/Fixtures/reference/README.md for the script "
            + "that makes them)"
    }

    /// Throws `referenceProblem` of the first missing folder: called from `setUpWithError`, a test
    /// class whose fixtures are missing fails each test with that one line and runs nothing.
    public static func requireReference(_ folders: String...) throws {
        for folder in folders {
            if let problem = referenceProblem(folder) { throw FixtureError(problem) }
        }
    }
}
