import Foundation

/// Where the tests find their data.
public enum FixtureLocations {
    /// The package root (this file is Tests/FixtureLocations/FixtureLocations.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The project's own fixtures, Tests/Fixtures.
    public static let project = packageRoot.appendingPathComponent("Tests/Fixtures").path

    /// The shared reference fixtures made with the official PiToMe code and transformers:
    /// `$LLAVA_SHARED_FIXTURES` if set, else `<package root>/../shared/fixtures`. When the folder
    /// does not exist, `sharedProblem` says how to point at it and the tests that read it fail
    /// (they do not skip).
    public static var shared: String { located.path }

    /// Why the shared fixtures cannot be found (nil when they can), with what to do.
    public static var sharedProblem: String? { located.problem }

    private static let located: (path: String, problem: String?) = {
        let found = locateShared(environment: ProcessInfo.processInfo.environment)
        if let problem = found.problem { FileHandle.standardError.write(Data("error: \(problem)\n".utf8)) }
        return found
    }()

    /// The shared fixtures' folder for `environment`, and the problem when it does not exist.
    public static func locateShared(environment: [String: String]) -> (path: String, problem: String?) {
        let path: String
        let origin: String
        if let env = environment["LLAVA_SHARED_FIXTURES"], !env.isEmpty {
            path = env
            origin = "LLAVA_SHARED_FIXTURES"
        } else {
            path = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
            origin = "../shared/fixtures beside the package"
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return (path, nil)
        }
        let problem = "the shared test fixtures are not at \(path) (\(origin)): set LLAVA_SHARED_FIXTURES to the fixtures "
            + "folder, or put it at ../shared/fixtures beside the package"
        return (path, problem)
    }
}
