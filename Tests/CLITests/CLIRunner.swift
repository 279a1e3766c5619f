import FixtureLocations
import Foundation
import Imaging
import XCTest

/// Runs the built `llava` executable.
enum CLI {
    static let packageRoot = FixtureLocations.packageRoot
    static let fixtures = FixtureLocations.project + "/llava"
    static let referenceFixtures = FixtureLocations.reference

    /// The unmerged line (pitome, ratio 1) of reference/llava-small/expected.jsonl.
    static func smallReferenceUnmerged() throws -> [String: Any] {
        let lines = try FixtureJSON.lines(referenceFixtures + "/llava-small/expected.jsonl")
        guard let line = try lines.first(where: { try $0.string("algo") == "pitome" && $0.double("ratio") == 1 }) else {
            throw FixtureError("llava-small/expected.jsonl has no pitome line at ratio 1")
        }
        return try line.object("result")
    }

    /// The executable sits next to the test bundle in the build folder.
    static var executable: URL {
        var dir = Bundle(for: Marker.self).bundleURL
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("llava")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/llava")
    }

    final class Marker {}

    /// Bytes read by a background reader (written once, read after the group is done).
    final class Collected: @unchecked Sendable { var data = Data() }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

        /// The JSON object on the last line of stdout (`--json` reports).
        func lastJSONObject() throws -> [String: Any] {
            let last = stdout.split(separator: "\n").last.map(String.init) ?? ""
            guard let object = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
                throw FixtureError("the last line of the output is not a JSON object: \(last.prefix(120))")
            }
            return object
        }
    }

    /// Runs `llava` with `arguments`; `environment` adds to (or replaces in) the test's own.
    /// Standard input is `stdin`, or the file `stdinFile` (e.g. /dev/zero), or empty.
    static func run(_ arguments: [String], stdin: String? = nil, stdinFile: String? = nil, timeout: TimeInterval = 120,
                    environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["LLAVA_HOME"] = packageRoot.path
        env["PATH"] = failingTools + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        env.merge(environment) { _, new in new }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = stdinFile.flatMap { FileHandle(forReadingAtPath: $0) } ?? input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        let outData = Collected(), errData = Collected()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("llava \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                      stderr: String(decoding: errData.data, as: UTF8.self))
    }

    /// Image converters a machine may happen to have: every run puts failing ones first on PATH,
    /// so that nothing the tests check can come from a program the set-up does not install.
    static let failingToolNames = ["convert", "rsvg-convert", "magick"]

    /// A folder of failing `convert`, `rsvg-convert` and `magick`, made once per test process.
    static let failingTools: String = {
        let dir = NSTemporaryDirectory() + "llava-cli-failing-tools-\(ProcessInfo.processInfo.processIdentifier)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in failingToolNames {
            let path = dir + "/" + name
            try! "#!/bin/sh\necho \"\(name) must not be run by llava\" >&2\nexit 1\n".write(toFile: path, atomically: true, encoding: .utf8)
            try! FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        return dir
    }()

    /// A scratch copy of a fixture model folder that a test may damage.
    static func copyOfModel(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "llava-cli-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: fixtures + "/" + name, toPath: dir)
        return dir
    }
}

/// Decodes the PNG at `path` and checks that it has the expected size and is not blank (a
/// picture has many distinct colours; a failed drawing has one or two).
@discardableResult
func assertPicture(_ path: String, width: Int? = nil, height: Int? = nil, minimumColours: Int = 8,
                   file: StaticString = #filePath, line: UInt = #line) throws -> RGBImage {
    let image = try RGBImage(contentsOfFile: path)
    if let width { XCTAssertEqual(image.width, width, "width of \(path)", file: file, line: line) }
    if let height { XCTAssertEqual(image.height, height, "height of \(path)", file: file, line: line) }
    var colours = Set<RGB>()
    for y in stride(from: 0, to: image.height, by: 1) {
        for x in 0..<image.width { colours.insert(image[x, y]) }
    }
    XCTAssertGreaterThanOrEqual(colours.count, minimumColours, "\(path) looks blank", file: file, line: line)
    return image
}
