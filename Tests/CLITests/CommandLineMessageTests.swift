import Foundation
import XCTest

/// Refusals are one line with a non-zero exit, help lists only what is accepted, and help
/// examples stay whole at any width.
final class CommandLineMessageTests: XCTestCase {
    let image = CLI.packageRoot.path + "/Prompts/shapes/images/shapes_0000.png"

    func testQuantizeVisionHelpListsOnlyTheValuesItAccepts() throws {
        let r = try CLI.run(["ask", "--help"], environment: ["COLUMNS": "10000"])
        XCTAssertEqual(r.status, 0)
        let start = r.stdout.range(of: "--quantize-vision <")!.upperBound
        let rest = r.stdout[start...]
        let block = rest[..<(rest.range(of: "\n  -")?.lowerBound ?? rest.endIndex)]
        let line = block.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(line.contains("(values: none, q8;"), line)
        XCTAssertFalse(line.contains("q4"), line)
        let refused = try CLI.run(["ask", "--image", image, "--quantize-vision", "q4", "Hi"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderrLines, ["llava: error: --quantize-vision must be none or q8, got q4"])
    }

    func testAnUnknownMergeMethodIsOneLine() throws {
        let r = try CLI.run(["ask", "--image", image, "--merge", "foo", "Hi"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines, ["llava: error: --merge must be none, pitome, tome, tofu, dct, diffrate, random, pool, divprune, visionzip, prumerge-plus, crossget, mctf, fastv, vispruner or cdpruner, got foo"])
    }

    func testHelpForAnUnknownCommandFails() throws {
        let r = try CLI.run(["help", "nosuch"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(r.stderrLines, ["llava: error: no command llava nosuch (commands: ask, eval, bench, merge-map, chat, quantize, serve)"])
        let sub = try CLI.run(["help", "eval", "nosuch"])
        XCTAssertEqual(sub.status, 1)
        XCTAssertEqual(try CLI.run(["help", "eval", "run"]).status, 0)
    }

    func testAnEmptyQuestionIsRefusedAsOnStdin() throws {
        for question in ["", "  "] {
            let r = try CLI.run(["ask", "--image", image, question])
            XCTAssertEqual(r.status, 1)
            XCTAssertEqual(r.stderrLines, ["llava: error: the question is empty"])
            XCTAssertEqual(r.stdout, "")
        }
        let stdin = try CLI.run(["ask", "--image", image, "-"], stdin: "\n")
        XCTAssertEqual(stdin.stderrLines, ["llava: error: the question read from stdin is empty"])
    }

    func testPipedChatThatRunsOutOfContextFails() throws {
        let questions = String(repeating: "Describe every shape in the image in detail.\n", count: 6)
        let r = try CLI.run(["chat", "--image", image, "-c", "120"], stdin: questions, timeout: 300)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderrLines.last?.hasPrefix("llava: error: ") == true, r.stderr)
        let fits = try CLI.run(["chat", "--image", image], stdin: "What color is the cross?\n", timeout: 300)
        XCTAssertEqual(fits.status, 0, fits.stderr)
    }

    func testHelpExamplesStayOnOneLineAtEightyColumns() throws {
        for command in [[], ["ask"], ["chat"], ["eval", "run"], ["merge-map"], ["quantize"]] {
            let r = try CLI.run(command + ["--help"], environment: ["COLUMNS": "80"])
            XCTAssertEqual(r.status, 0)
            let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let start = lines.firstIndex(of: "Examples:") else { XCTFail("\(command): no examples"); continue }
            let examples = lines[(start + 1)...].filter { !$0.isEmpty }
            XCTAssertFalse(examples.isEmpty)
            for example in examples {
                XCTAssertTrue(example.hasPrefix("llava ") || example.contains("| llava "), "\(command): \(example)")
                XCTAssertEqual(example.filter { $0 == "\"" }.count % 2, 0, "\(command): \(example)")
            }
        }
        let root = try CLI.run(["--help"], environment: ["COLUMNS": "80"])
        XCTAssertTrue(root.stdout.contains("  llava ask --image Prompts/shapes/images/shapes_0000.png \"What color is the cross?\"\n"), root.stdout)
    }
}
