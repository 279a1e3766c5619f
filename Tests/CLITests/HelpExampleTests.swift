import Foundation
import XCTest

/// Every example in every help text runs as written, from a folder that holds the package's
/// Prompts/ and Models/. An example whose path starts with ~/ stands for a real LLaVA-1.5
/// checkpoint folder: it is run with a folder that does not exist, and must fail only there
/// (it parsed and validated, and the first thing it could not do is load the checkpoint).
final class HelpExampleTests: XCTestCase {
    static let commands = [[], ["ask"], ["chat"], ["eval"], ["eval", "run"], ["eval", "merge"], ["eval", "score"],
                           ["bench"], ["merge-map"]]
    static let missingCheckpoints = "/nonexistent-llava-checkpoints/"

    /// The example command lines of a help text: the lines after "Example:" or "Examples:" that
    /// run `llava`.
    func examples(_ command: [String]) throws -> [String] {
        let r = try run((["llava"] + command + ["--help"]).joined(separator: " "), in: CLI.packageRoot.path)
        XCTAssertEqual(r.status, 0, r.stderr)
        var out: [String] = []
        var inExamples = false
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text == "Example:" || text == "Examples:" { inExamples = true; continue }
            guard inExamples else { continue }
            if text.hasPrefix("llava ") || text.contains("| llava ") { out.append(text) } else { inExamples = false }
        }
        return out
    }

    /// Runs one example line with /bin/sh in `folder`, `llava` being the built executable.
    func run(_ line: String, in folder: String) throws -> CLI.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", line]
        process.standardInput = FileHandle.nullDevice
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = CLI.executable.deletingLastPathComponent().path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        env["LLAVA_HOME"] = CLI.packageRoot.path
        env["COLUMNS"] = "10000"  // help text unwrapped: one example per line
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = CLI.Collected(), errData = CLI.Collected()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.wait()
        process.waitUntilExit()
        return CLI.Result(status: process.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                          stderr: String(decoding: errData.data, as: UTF8.self))
    }

    func testEveryHelpExampleRunsAsWritten() throws {
        let folder = NSTemporaryDirectory() + "llava-examples-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for name in ["Prompts", "Models"] {
            try FileManager.default.createSymbolicLink(atPath: folder + "/" + name,
                                                       withDestinationPath: CLI.packageRoot.appendingPathComponent(name).path)
        }
        var ran = 0, parsedOnly = 0
        for command in Self.commands {
            for example in try examples(command) {
                if example.contains("~/") {
                    let line = example.replacingOccurrences(of: "~/", with: Self.missingCheckpoints)
                    let r = try run(line, in: folder)
                    XCTAssertEqual(r.status, 1, "\(example): \(r.stderr)")
                    XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(example): \(r.stderr)")
                    XCTAssertTrue(r.stderr.hasPrefix("llava: error: \(Self.missingCheckpoints)"), "\(example): \(r.stderr)")
                    parsedOnly += 1
                } else {
                    let r = try run(example, in: folder)
                    XCTAssertEqual(r.status, 0, "\(example): \(r.stderr)")
                    ran += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(ran, 8, "examples run")
        XCTAssertGreaterThanOrEqual(parsedOnly, 2, "examples for a real checkpoint")
    }

    func testTheTopLevelExampleAnswersItsQuestion() throws {
        let example = try XCTUnwrap(try examples([]).first)
        XCTAssertEqual(example, #"llava ask --image Prompts/shapes/images/shapes_0000.png "What color is the cross?""#)
        let r = try run(example, in: CLI.packageRoot.path)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "red\n")
    }
}
