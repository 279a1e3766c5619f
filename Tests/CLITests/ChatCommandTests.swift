import Foundation
import XCTest

final class ChatCommandTests: XCTestCase {
    static let model = CLI.referenceFixtures + "/llava-small/model"
    static let shapes = CLI.referenceFixtures + "/llava-small/shapes.png"
    static let wide = CLI.fixtures + "/images/wide-83x61.png"

    /// What `llava ask` prints for one question (the streamed answer and its newline).
    func askOutput(image: String, question: String) throws -> String {
        let r = try CLI.run(["ask", "--model", Self.model, "--image", image, "-n", "6", question])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout
    }

    func testTurnsClearAndNewImageOverStdin() throws {
        let q1 = "What color is the square?", q3 = "Describe it."
        let script = [q1, "What shape is next to it?", "/clear", q1, "/image \(Self.wide)", q3, "/quit", "never asked"]
        let r = try CLI.run(["chat", "--model", Self.model, "--image", Self.shapes, "-n", "6"],
                            stdin: script.joined(separator: "\n") + "\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        let a1 = try askOutput(image: Self.shapes, question: q1)
        let a3 = try askOutput(image: Self.wide, question: q3)
        XCTAssertFalse(a1.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the fixture model answers something")
        // stdout: a1, the second answer, a1 again after /clear, then the answer about the new image.
        XCTAssertTrue(r.stdout.hasPrefix(a1), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix(a1 + a3), r.stdout)
        XCTAssertGreaterThan(r.stdout.count, 2 * a1.count + a3.count, "the second turn printed nothing")
        // One timing line per answered question; the image prefix is prefilled once per image.
        XCTAssertEqual(r.stderrLines.filter { $0.hasPrefix("llava: prompt ") }.count, 4, r.stderr)
        XCTAssertEqual(r.stderrLines.filter { $0.hasPrefix("llava: image ") }.count, 2, r.stderr)
        let cleared = try XCTUnwrap(r.stderrLines.first { $0.contains("conversation cleared") }, r.stderr)
        let prefix = try XCTUnwrap(r.stderrLines.first { $0.hasPrefix("llava: image ") }?.components(separatedBy: "prefix ").last?
            .split(separator: " ").first.flatMap { Int($0) })
        XCTAssertTrue(cleared.contains("(\(prefix)/1024 tokens"), cleared)
        // The first turn ends at the prefix + the question + the answer; the repeat after /clear too.
        let contexts = r.stderrLines.filter { $0.hasPrefix("llava: prompt ") }.compactMap { $0.components(separatedBy: "context ").last }
        XCTAssertEqual(contexts[0], contexts[2])
    }

    func testEndlessInputIsRefusedAfterOneMebibyteLine() throws {
        let r = try CLI.run(["chat", "--model", Self.model, "--image", Self.shapes, "-n", "6"], stdinFile: "/dev/zero")
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderrLines.last, "llava: error: an input line is longer than 1048576 bytes", r.stderr)
    }

    func testEndOfInputCommandsAndErrorsKeepTheChatGoing() throws {
        let script = ["Hello?", "/bogus", "/image /no/such/image.png", "/image \(Self.shapes)", "What color is the square?"]
        let r = try CLI.run(["chat", "--model", Self.model, "-n", "4"], stdin: script.joined(separator: "\n"))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("no image loaded"), r.stderr)
        XCTAssertTrue(r.stderr.contains("unknown command /bogus"), r.stderr)
        XCTAssertTrue(r.stderr.contains("/no/such/image.png: no such file"), r.stderr)
        XCTAssertEqual(r.stderrLines.filter { $0.hasPrefix("llava: prompt ") }.count, 1, r.stderr)
        XCTAssertFalse(r.stdout.isEmpty)
    }

    func testFullContextIsReported() throws {
        // 256 positions: a long answer fills the context, the next question does not fit.
        let r = try CLI.run(["chat", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", CLI.fixtures + "/images/square-56.png",
                             "-n", "400", "--ignore-eos"], stdin: "Describe it.\nMore?\n/clear\nMore?\n")
        // Piped: the conversation goes on, and the run fails at the end.
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderrLines.last, "llava: error: the context (256 tokens) ran out: 3 turns were cut short or refused", r.stderr)
        XCTAssertTrue(r.stderr.contains("context is full"), r.stderr)
        XCTAssertTrue(r.stderr.contains("/clear"), r.stderr)
        XCTAssertEqual(r.stderrLines.filter { $0.hasPrefix("llava: prompt ") }.count, 2, r.stderr)
    }

    func testMissingImageFileFailsAtStart() throws {
        let r = try CLI.run(["chat", "--model", Self.model, "--image", "/no/such/image.png"], stdin: "")
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines, ["llava: error: /no/such/image.png: no such file"])
    }
}

/// `llava chat` on a terminal: libedit line editing and history, Ctrl-D, bad /image files,
/// and the context figure.
final class ChatTerminalTests: XCTestCase {
    let image = CLI.packageRoot.path + "/Prompts/shapes/images/shapes_0000.png"

    func testHistoryAndCtrlDOnATerminal() throws {
        let terminal = try Terminal(["chat", "--image", image, "-n", "4"])
        terminal.waitFor("> ")
        terminal.type("What color is the cross?\r")
        terminal.waitFor("> ", count: 2)
        // Up arrow brings the question back; Enter asks it again.
        terminal.type("\u{1B}[A\r")
        terminal.waitFor("> ", count: 3)
        // Ctrl-A then typing inserts at the start of the line: the edited line is what is run.
        terminal.type("bogus\u{01}/\r")
        terminal.waitFor("unknown command /bogus")
        terminal.waitFor("> ", count: 4)
        terminal.type("\u{04}")
        XCTAssertEqual(terminal.finish(), 0, terminal.output)
        let output = terminal.output
        XCTAssertTrue(output.contains("What color is the cross?\r\nred\r\n"), output.debugDescription)
        XCTAssertEqual(output.components(separatedBy: "> What color is the cross?\r\n").count - 1, 2, output.debugDescription)
        XCTAssertEqual(output.components(separatedBy: "llava: prompt ").count - 1, 2, output.debugDescription)
        // Ctrl-D leaves the prompt line: the output ends on a new line after the last prompt
        // (the terminal may echo the key as ^D).
        let tail = (output.components(separatedBy: "> ").last ?? "").replacingOccurrences(of: "^D", with: "")
            .replacingOccurrences(of: "\r", with: "")
        XCTAssertEqual(tail, "\n")
    }

    func testBadImageNamesTheImageStillInUse() throws {
        let r = try CLI.run(["chat", "--image", image, "-n", "4"],
                            stdin: "/image /no/such.png\nWhat color is the cross?\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderrLines.contains("llava: error: /no/such.png: no such file (still talking about \(image))"), r.stderr)
        XCTAssertEqual(r.stdout, "red\n")
        let none = try CLI.run(["chat", "-n", "4"], stdin: "/image /no/such.png\n")
        XCTAssertTrue(none.stderrLines.contains("llava: error: /no/such.png: no such file (no image loaded)"), none.stderr)
    }

    func testContextNeverAbove100Percent() throws {
        // A 256-position context and answers that run to its end.
        let r = try CLI.run(["chat", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", CLI.fixtures + "/images/square-56.png",
                             "-n", "400", "--ignore-eos"], stdin: "Describe it.\nMore?\n/clear\nMore?\n")
        // Piped: the conversation goes on, and the run fails at the end.
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderrLines.last, "llava: error: the context (256 tokens) ran out: 3 turns were cut short or refused", r.stderr)
        let contexts = r.stderrLines.filter { $0.hasPrefix("llava: prompt ") }.compactMap { $0.components(separatedBy: "context ").last }
        XCTAssertEqual(contexts, ["256/256", "256/256"], r.stderr)
        // -c caps the conversation below the model's context.
        let capped = try CLI.run(["chat", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", CLI.fixtures + "/images/square-56.png",
                                  "-n", "400", "--ignore-eos", "-c", "100"], stdin: "Describe it.\n")
        XCTAssertTrue(capped.stderrLines.contains { $0.hasSuffix("context 100/100") }, capped.stderr)
    }
}
