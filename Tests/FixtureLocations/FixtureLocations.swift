import Foundation

/// Where the tests find their data.
public enum FixtureLocations {
    /// The package root (this file is Tests/FixtureLocations/FixtureLocations.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The project's own fixtures, Tests/Fixtures.
    public static let project = packageRoot.appendingPathComponent("Tests/Fixtures").path

    /// The shared reference fixtures made with the official PiToMe code and transformers:
    /// `$LLAVA_SHARED_FIXTURES` if set, else `<package root>/../shared/fixtures`, else
    /// `/work/shared/fixtures`. Tests fail (they do not skip) when none exists.
    public static let shared: String = {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["LLAVA_SHARED_FIXTURES"], !env.isEmpty { return env }
        let sibling = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
        if fm.fileExists(atPath: sibling) { return sibling }
        return "/work/shared/fixtures"
    }()
}
