import Foundation
import XCTest

/// Flags as llama.cpp users type them, and flag values that are wrong: one line, exit 1.
final class FlagTests: XCTestCase {
    let model = CLI.fixtures + "/gqa-f16-v5"
    let image = CLI.fixtures + "/images/square-42.png"

    func ask(_ extra: [String], stdin: String? = nil) throws -> CLI.Result {
        try CLI.run(["ask", "--model", model, "--image", image, "-n", "6"] + extra, stdin: stdin)
    }

    /// A failure: exit 1 and exactly one line on stderr, `llava: error: ` + `message`.
    func assertOneLine(_ r: CLI.Result, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderrLines, ["llava: error: " + message], file: file, line: line)
    }

    func testLlamaCppSpellingsGiveTheSameAnswers() throws {
        let question = "What color is the square?"
        let plain = try ask(["--temperature", "0.9", "--seed", "5", question])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let short = try CLI.run(["ask", "-m", model, "--image", image, "-n", "6", "--temp", "0.9", "-s", "5", "-p", question])
        XCTAssertEqual(short.status, 0, short.stderr)
        XCTAssertEqual(short.stdout, plain.stdout)
        let piped = try CLI.run(["ask", "-m", model, "--image", image, "-n", "6", "--temp", "0.9", "-s", "5", "-"], stdin: question + "\n")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(piped.stdout, plain.stdout)
        let promptDash = try CLI.run(["ask", "-m", model, "--image", image, "-n", "6", "--temp", "0.9", "-s", "5", "-p", "-"], stdin: question)
        XCTAssertEqual(promptDash.stdout, plain.stdout)
    }

    /// A forced BLAS family OpenBLAS does not know still answers (OpenBLAS picks one itself), with
    /// one warning naming the variable and the family in use; a known one gives no warning.
    func testUnknownForcedBLASFamilyIsAWarning() throws {
        let question = "What color is the square?"
        let plain = try ask([question])
        let odd = try CLI.run(["ask", "--model", model, "--image", image, "-n", "6", question],
                              environment: ["LLAVA_BLAS_CORETYPE": "NoSuchFamily"])
        XCTAssertEqual(odd.status, 0, odd.stderr)
        XCTAssertEqual(odd.stdout, plain.stdout)
        let warnings = odd.stderrLines.filter { $0.contains("warning") }
        XCTAssertEqual(warnings.count, 1, odd.stderr)
        XCTAssertTrue(warnings.first?.hasPrefix("llava: warning: LLAVA_BLAS_CORETYPE=NoSuchFamily is not a kernel family") == true, odd.stderr)
        let known = try CLI.run(["ask", "--model", model, "--image", image, "-n", "6", question],
                                environment: ["LLAVA_BLAS_CORETYPE": "prescott"])
        XCTAssertEqual(known.status, 0, known.stderr)
        XCTAssertFalse(known.stderr.contains("warning"), known.stderr)
        XCTAssertTrue(known.stderr.contains("BLAS core Prescott"), known.stderr)
    }

    func testQuestionGivenTwiceOrNotAtAll() throws {
        assertOneLine(try ask(["-p", "a", "b"]), "give the question once: as the argument or with -p/--prompt, not both")
        assertOneLine(try ask([]), "no question: give it as the argument or with -p/--prompt")
        assertOneLine(try ask(["-"], stdin: "  \n"), "the question read from stdin is empty")
        assertOneLine(try CLI.run(["ask", "--model", model, "--image", image, "-"], stdinFile: "/dev/zero"),
                      "the question read from stdin is longer than 1048576 bytes")
    }

    func testSamplersAreSeededAndChangeTheDraws() throws {
        let base = ["--json", "-n", "12", "--ignore-eos", "--temp", "1.5", "-s", "9", "Describe it."]
        func ids(_ extra: [String]) throws -> [Int] {
            let r = try CLI.run(["ask", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", image] + base + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try r.lastJSONObject()["generated_ids"] as! [Int]
        }
        let free = try ids([])
        XCTAssertEqual(free.count, 12, "--ignore-eos runs to -n")
        XCTAssertEqual(try ids([]), free)
        let topK1 = try ids(["--top-k", "1"])
        let greedy = try CLI.run(["ask", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", image, "--json", "-n", "12",
                                  "--ignore-eos", "Describe it."])
        XCTAssertEqual(topK1, try greedy.lastJSONObject()["generated_ids"] as! [Int], "top-k 1 is greedy")
        let minP1 = try ids(["--min-p", "1"])
        XCTAssertEqual(minP1, topK1, "min-p 1 keeps only the most likely token")
        // A strong repeat penalty at temperature 0: no token repeats within the window.
        let penalized = try CLI.run(["ask", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", image, "--json", "-n", "12",
                                     "--ignore-eos", "--repeat-penalty", "1000", "--repeat-last-n", "64", "Describe it."])
        let penalizedIds = try penalized.lastJSONObject()["generated_ids"] as! [Int]
        XCTAssertEqual(Set(penalizedIds).count, penalizedIds.count, "\(penalizedIds)")
    }

    func testContextSize() throws {
        // gqa-f16-v5's context is 256 positions.
        let context = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/config.json"))) as! [String: Any]
        let positions = (context["text_config"] as! [String: Any])["max_position_embeddings"] as! Int
        assertOneLine(try ask(["-c", "\(positions + 1)", "Hi"]),
                      "a context of \(positions + 1) tokens was asked for but the model's context is \(positions) (max_position_embeddings in \(model)/config.json)")
        let small = try ask(["--ctx-size", "8", "Hi"])
        XCTAssertEqual(small.status, 1)
        XCTAssertTrue(small.stderr.contains("but the model's context is 8"), small.stderr)
        XCTAssertEqual(try ask(["-c", "0", "Hi"]).status, 0)
        XCTAssertEqual(try ask(["-c", "\(positions)", "Hi"]).status, 0)
    }

    func testSecondImageAndUnknownFlags() throws {
        assertOneLine(try ask(["--image", image, "Hi"]), "--image is given twice; give it once")
        assertOneLine(try ask(["--model", model, "Hi"]), "--model is given twice; give it once")
        assertOneLine(try ask(["-m", model, "Hi"]), "--model and -m are the same option; give it once")
        assertOneLine(try ask(["--temperature", "1", "--temp", "1", "Hi"]), "--temperature and --temp are the same option; give it once")
        assertOneLine(try ask(["--temprature", "1", "Hi"]), "unknown option --temprature for llava ask; did you mean --temperature?")
        assertOneLine(try ask(["--topk", "1", "Hi"]), "unknown option --topk for llava ask; did you mean --top-k?")
        assertOneLine(try ask(["--tmep", "1", "Hi"]), "unknown option --tmep for llava ask; did you mean --temp?")
        assertOneLine(try ask(["--no-such-thing", "Hi"]), "unknown option --no-such-thing for llava ask (see llava ask --help)")
        assertOneLine(try CLI.run(["eval", "--imagefolder", "x"]), "unknown option --imagefolder for llava eval run; did you mean --image-folder?")
    }

    func testVersionAndHelpPrintNormally() throws {
        let version = try CLI.run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, version.stdout)
        let help = try CLI.run(["ask", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--top-k"), help.stdout)
        XCTAssertTrue(help.stdout.contains("--temperature, --temp"), help.stdout)
    }

    func testSeedDefaultIsStatedTheSameWayEverywhere() throws {
        let help = try CLI.run(["eval", "run", "--help"]).stdout.replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: #"\s+"#, with: " ", options: .regularExpression)
        XCTAssertTrue(help.contains("the sampling seed defaults to 0 here (-s sets it)"), help)
        XCTAssertTrue(help.contains("Random seed for sampling (default: random for ask and chat, 0 for eval)"), help)
        XCTAssertFalse(help.contains("(default: random)"), help)
    }

    func testNegativeAndNonFiniteValuesAreOneLineErrors() throws {
        assertOneLine(try ask(["--temperature", "-1", "Hi"]), "--temperature must be a finite number >= 0, got -1")
        assertOneLine(try ask(["--temp", "inf", "Hi"]), "--temperature must be a finite number >= 0, got inf")
        assertOneLine(try ask(["--temp", "nan", "Hi"]), "--temperature must be a finite number >= 0, got nan")
        assertOneLine(try ask(["--top-p", "-0.5", "Hi"]), "--top-p must be in (0, 1], got -0.5")
        assertOneLine(try ask(["--min-p", "2", "Hi"]), "--min-p must be in [0, 1], got 2")
        assertOneLine(try ask(["--top-k", "-3", "Hi"]), "--top-k must be >= 0, got -3")
        assertOneLine(try ask(["--repeat-penalty", "inf", "Hi"]), "--repeat-penalty must be a finite number > 0, got inf")
        assertOneLine(try ask(["--threads", "-1", "Hi"]), "--threads must be at least 1, got -1")
        assertOneLine(try CLI.run(["ask", "--model", model, "--image", image, "-n", "-4", "Hi"]), "--max-tokens must be at least 1, got -4")
        assertOneLine(try ask(["-c", "-1", "Hi"]), "--ctx-size must be >= 0, got -1")
        assertOneLine(try ask(["--quantize-vision", "q4", "Hi"]), "--quantize-vision must be none or q8, got q4")
        assertOneLine(try ask(["--threads", "abc", "Hi"]), "The value 'abc' is invalid for '--threads <threads>'")
        let ratio = try ask(["--merge", "pitome", "--ratio", "-1", "Hi"])
        XCTAssertEqual(ratio.status, 1)
        XCTAssertEqual(ratio.stderrLines.count, 1, ratio.stderr)
        XCTAssertTrue(ratio.stderr.hasPrefix("llava: error: --ratio must"), ratio.stderr)
        // Every command's numeric options read negative values as values (the wording of each
        // command's own check aside).
        for (arguments, flag) in [(["bench", "--repeat", "-1"], "--repeat"), (["bench", "--ratios", "-1,0.5"], "--ratios"),
                                  (["merge-map", "--image", image, "--merge", "tome", "--out", "m.png", "--keep", "-2"], "--keep"),
                                  (["ask", "--image", image, "--merge", "tome", "--keep", "-2", "Hi"], "--keep")] {
            let r = try CLI.run(arguments)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("llava: error: \(flag) must"), r.stderr)
        }
        let cache = try CLI.run(["eval", "--questions", "q", "--image-folder", "i", "--answers", "a", "--image-cache-mb", "-5"])
        assertOneLine(cache, "--image-cache-mb must be in [0, 1e9), got -5")
    }

    func testEmptyModelAndUnwritableOutput() throws {
        assertOneLine(try CLI.run(["ask", "--model", "", "--image", image, "Hi"]),
                      "--model is empty: give a checkpoint folder (or leave --model out for the shipped model)")
        guard FileManager.default.isWritableFile(atPath: "/dev/full") else { return }
        let shapes = CLI.packageRoot.path + "/Prompts/shapes"
        let answers = NSTemporaryDirectory() + "llava-full-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: answers) }
        let runs: [([String], String?)] = [
            (["ask", "--model", model, "--image", image, "-n", "3", "Hi"], nil),
            (["ask", "--model", model, "--image", image, "-n", "3", "--json", "Hi"], nil),
            (["chat", "--image", shapes + "/images/shapes_0000.png", "-n", "3"], "What color is the cross?\n"),
            (["eval", "--questions", shapes + "/questions.jsonl", "--image-folder", shapes + "/images", "--answers", answers,
              "--annotations", shapes + "/answers.jsonl", "--quiet"], nil),
        ]
        for (arguments, input) in runs {
            let process = Process()
            process.executableURL = CLI.executable
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["LLAVA_HOME": CLI.packageRoot.path]) { $1 }
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
            let stdin = Pipe()
            process.standardInput = stdin
            let err = Pipe()
            process.standardError = err
            try process.run()
            if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
            try stdin.fileHandleForWriting.close()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 1, "\(arguments[0]): \(message)")
            XCTAssertEqual(message.split(separator: "\n").last, "llava: error: cannot write to stdout: No space left on device",
                           "\(arguments[0]): \(message)")
        }
    }

    func testStreamedAnswerAndJSONTextAreTheSameBytes() throws {
        // Random fixture weights produce byte tokens and stray spaces; answers cut at every length.
        for seed in 1...4 {
            for n in [1, 2, 3, 5, 8] {
                let args = ["ask", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", image, "-n", "\(n)", "--ignore-eos",
                            "--temp", "1.5", "-s", "\(seed)", "Describe it."]
                let streamed = try CLI.run(args)
                let json = try CLI.run(args + ["--json"])
                XCTAssertEqual(streamed.status, 0, streamed.stderr)
                let text = try json.lastJSONObject()["text"] as! String
                XCTAssertEqual(streamed.stdout, text + "\n", "seed \(seed), -n \(n)")
            }
        }
    }
}
