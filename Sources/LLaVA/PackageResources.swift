import Foundation

/// Locates the package's shipped folders (`Prompts/`, `Models/`).
///
/// Order: the `LLAVA_HOME` environment variable, then the source tree this binary was built
/// from, then the folders above the executable.
public enum PackageResources {
    public static var root: String? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let home = ProcessInfo.processInfo.environment["LLAVA_HOME"], !home.isEmpty { candidates.append(home) }
        // Sources/LLaVA/PackageResources.swift → package root.
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(source.path)
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.path)
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { fm.fileExists(atPath: ($0 as NSString).appendingPathComponent("Prompts/templates")) }
    }

    public static func path(_ relative: String) -> String? {
        root.map { ($0 as NSString).appendingPathComponent(relative) }
    }

    /// The model used when no `--model` is given.
    public static var defaultModelDirectory: String? { path("Models/shapes-llava") }
}
