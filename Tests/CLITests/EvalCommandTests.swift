import Foundation
import XCTest

/// `llava eval`: durable answer files that survive SIGKILL, resume, shards, the image cache,
/// malformed input and scoring, on the tiny fixture models.
final class EvalCommandTests: XCTestCase {
    let model = CLI.fixtures + "/gqa-f16-v5"
    var dir = ""
    var images = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "llava-eval-\(UUID().uuidString)"
        images = dir + "/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        for name in ["square-42.png", "wide-83x61.png", "tall-70x97.jpg", "square-56.png"] {
            try FileManager.default.copyItem(atPath: CLI.fixtures + "/images/" + name, toPath: images + "/" + name)
        }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: - Helpers

    let pictures = ["square-42.png", "wide-83x61.png", "tall-70x97.jpg", "square-56.png"]

    /// A question file: question i (1-based) asks about `image(i)`; ids alternate int and string.
    @discardableResult
    func writeQuestions(_ count: Int, name: String = "q.jsonl", image: (Int) -> String? = { _ in nil }) throws -> String {
        var lines: [String] = []
        for i in 1...count {
            let id = i % 3 == 0 ? "\"q\(i)\"" : "\(i)"
            let picture = image(i) ?? pictures[i % pictures.count]
            let category = ["adversarial", "popular", "random"][i % 3]
            lines.append(#"{"question_id": \#(id), "image": "\#(picture)", "text": "What is in picture \#(i)?\nAnswer the question using a single word or phrase.", "category": "\#(category)"}"#)
        }
        let path = dir + "/" + name
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func evalArguments(questions: String, answers: String, _ extra: [String] = []) -> [String] {
        ["eval", "--model", model, "--questions", questions, "--image-folder", images, "--answers", answers, "-n", "4"] + extra
    }

    func lines(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"), "\(path) must end with a newline")
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    func objects(_ path: String) throws -> [[String: Any]] {
        try lines(path).map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func metadata(_ o: [String: Any]) -> [String: Any] { o["metadata"] as! [String: Any] }

    /// Each answer line without what legitimately differs between runs: the random answer_id,
    /// the timings, and whether the per-process image cache had the image already.
    func comparable(_ path: String) throws -> [String] {
        try objects(path).map { o in
            var o = o
            o["answer_id"] = nil
            var m = metadata(o)
            m["timings"] = nil
            m["image_cache_hit"] = nil
            o["metadata"] = m
            return String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        }
    }

    func ids(_ path: String) throws -> [String] {
        try objects(path).map { "\($0["question_id"]!)" }
    }

    func sha256(_ path: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum", path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: data, as: UTF8.self).prefix(64))
    }

    // MARK: - Durability and resume

    /// Starts `llava eval` and stops it (SIGSTOP) once `lines` answers are on disk, so that a
    /// signal sent next lands in the middle of the run whatever the machine's speed.
    func startAndPause(_ arguments: [String], answers: String, lines wanted: Int, stderr: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["LLAVA_HOME": CLI.packageRoot.path]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr ?? FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && process.isRunning {
            if ((try? lines(answers).count) ?? 0) >= wanted { break }
            usleep(1_000)
        }
        kill(process.processIdentifier, SIGSTOP)
        XCTAssertTrue(process.isRunning, "the run must still be going when it is stopped")
        return process
    }

    func testResumeAfterSIGKILLMidRunLosesNothingAndDuplicatesNothing() throws {
        let count = 300
        let questions = try writeQuestions(count)
        let answers = dir + "/out.jsonl"
        let process = try startAndPause(evalArguments(questions: questions, answers: answers), answers: answers, lines: 2)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        XCTAssertEqual(process.terminationStatus, SIGKILL)

        let survived = try lines(answers)
        XCTAssertGreaterThanOrEqual(survived.count, 2)
        XCTAssertLessThan(survived.count, count)
        // Every line a killed run leaves is complete.
        for line in survived { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), line) }
        // A write torn by a crash (power loss, full disk) leaves a fragment without a newline.
        let next = survived.count + 1
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: answers))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"question_id": \#(next), "prompt": "What is in pic"#.utf8))
        try handle.close()

        let resumed = try CLI.run(evalArguments(questions: questions, answers: answers))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("cut off an incomplete last line"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("\(count) questions, \(survived.count) already answered"), resumed.stderr)

        // An uninterrupted run with the same settings (greedy) gives the same file.
        let reference = dir + "/reference.jsonl"
        let straight = try CLI.run(evalArguments(questions: questions, answers: reference))
        XCTAssertEqual(straight.status, 0, straight.stderr)
        let all = try ids(reference)
        XCTAssertEqual(all.count, count)
        XCTAssertEqual(Set(all).count, count)
        XCTAssertEqual(try ids(answers), all, "no answer lost or repeated, input order kept")
        XCTAssertEqual(try comparable(answers), try comparable(reference))
        XCTAssertEqual(Array(try lines(answers).prefix(survived.count)), survived, "lines written before the kill are kept as they were")

        // Running once more changes nothing.
        let before = try Data(contentsOf: URL(fileURLWithPath: answers))
        let again = try CLI.run(evalArguments(questions: questions, answers: answers))
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("\(count) already answered in \(answers), 0 to go"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: answers)), before)
    }

    func testCtrlCSaysHowManyAnswersAreSavedAndTheSameCommandResumes() throws {
        let count = 300
        let questions = try writeQuestions(count)
        let answers = dir + "/out.jsonl"
        let arguments = evalArguments(questions: questions, answers: answers, ["--quiet"])
        let stderr = Pipe()
        let process = try startAndPause(arguments, answers: answers, lines: 2, stderr: stderr)
        kill(process.processIdentifier, SIGINT)
        kill(process.processIdentifier, SIGCONT)
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, message)
        let saved = try lines(answers)
        XCTAssertLessThan(saved.count, count)
        for line in saved { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), line) }
        XCTAssertEqual(message.split(separator: "\n").map(String.init),
                       ["llava: interrupted: \(saved.count) answers saved in \(answers); run the same command again to resume"])
        let resumed = try CLI.run(arguments)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ids(answers).count, count)
        XCTAssertEqual(Set(try ids(answers)).count, count)
        XCTAssertEqual(Array(try lines(answers).prefix(saved.count)), saved)
    }

    func testResumeOfNonContiguousAnswersKeepsInputOrder() throws {
        let questions = try writeQuestions(40)
        let answers = dir + "/out.jsonl"
        let reference = dir + "/reference.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: reference, ["--quiet"])).status, 0)
        // Questions 1-10 and 31-40 answered, 11-30 not.
        let all = try lines(reference)
        try ((all[0..<10] + all[30..<40]).joined(separator: "\n") + "\n").write(toFile: answers, atomically: true, encoding: .utf8)
        let r = try CLI.run(evalArguments(questions: questions, answers: answers))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("40 questions, 20 already answered"), r.stderr)
        XCTAssertEqual(try ids(answers), try ids(reference))
        XCTAssertEqual(try comparable(answers), try comparable(reference))
    }

    func testResumeRefusesAnswersMadeWithOtherSettings() throws {
        let questions = try writeQuestions(3)
        let answers = dir + "/out.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: answers)).status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: answers))
        for (flags, field) in [(["-n", "5"], "metadata.max_tokens"), (["--merge", "tome", "--keep", "4"], "metadata.merge"),
                               (["--template", "llava-v1"], "metadata.template"), (["--image-mode", "pad"], "metadata.image_mode")] {
            var arguments = evalArguments(questions: questions, answers: answers)
            if flags[0] == "-n" { arguments[arguments.firstIndex(of: "-n")! + 1] = flags[1] } else { arguments += flags }
            let r = try CLI.run(arguments)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("was produced with other settings: line 1 has \(field) = "), r.stderr)
            XCTAssertEqual(r.stderrLines.filter { $0.hasPrefix("llava: error:") }.count, 1, r.stderr)
        }
        let otherModel = try CLI.run(["eval", "--model", CLI.fixtures + "/mha-f32-legacy", "--questions", questions,
                                      "--image-folder", images, "--answers", answers, "-n", "4"])
        XCTAssertEqual(otherModel.status, 1)
        XCTAssertTrue(otherModel.stderr.contains("model_id = \"gqa-f16-v5\", this run has \"mha-f32-legacy\""), otherModel.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: answers)), before, "a refused resume leaves the file alone")
    }

    // MARK: - Bad input

    func testMalformedLinesAreReportedWithTheirNumbersAndSkipped() throws {
        let questions = dir + "/q.jsonl"
        try """
        {"question_id": 1, "image": "square-42.png", "text": "One?"}
        {"question_id": 2, "image": "square-42.png", "text": "Two?"
        {"question_id": 3, "image": "square-56.png", "text": "Three?"}
        {"question_id": 4, "image": "square-56.png"}
        {"question_id": 5, "image": "tall-70x97.jpg", "text": "Five?"}

        """.write(toFile: questions, atomically: true, encoding: .utf8)
        let answers = dir + "/out.jsonl"
        let r = try CLI.run(evalArguments(questions: questions, answers: answers))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("llava: \(questions):2: invalid JSON"), r.stderr)
        XCTAssertTrue(r.stderr.contains("llava: \(questions):4: no \"text\" (line skipped)"), r.stderr)
        XCTAssertEqual(try ids(answers), ["1", "3", "5"])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.summary.json"))) as! [String: Any]
        XCTAssertEqual((summary["counts"] as! [String: Any])["malformed_lines"] as? Int, 2)

        let strictAnswers = dir + "/strict.jsonl"
        let strict = try CLI.run(evalArguments(questions: questions, answers: strictAnswers, ["--strict"]))
        XCTAssertEqual(strict.status, 1)
        XCTAssertTrue(strict.stderr.contains("llava: error: \(questions):2: invalid JSON"), strict.stderr)
        XCTAssertTrue(strict.stderr.contains("llava: error: \(questions):4: no \"text\""), strict.stderr)
        XCTAssertTrue(strict.stderr.contains("has 2 malformed lines; nothing was answered (--strict)"), strict.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: strictAnswers))
    }

    func testMissingAndBrokenImagesAreRecordedAndTheRunGoesOn() throws {
        let questions = try writeQuestions(6) { i in i == 2 ? "missing.png" : i == 5 ? "broken.png" : nil }
        try "not an image".write(toFile: images + "/broken.png", atomically: true, encoding: .utf8)
        let answers = dir + "/out.jsonl"
        let r = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"]))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("llava: error: 2 of 6 questions failed"), r.stderr)
        XCTAssertTrue(r.stderr.contains("question 2 (\(questions):2): \(images)/missing.png: no such file"), r.stderr)
        let answered = try objects(answers)
        XCTAssertEqual(answered.count, 6)
        for (i, o) in answered.enumerated() {
            let error = metadata(o)["error"] as? String
            if i == 1 || i == 4 {
                XCTAssertEqual(o["text"] as? String, "")
                XCTAssertTrue(error?.contains(i == 1 ? "missing.png" : "broken.png") ?? false, "\(o)")
            } else {
                XCTAssertNil(error)
                XCTAssertNotNil(metadata(o)["visual_tokens"])
            }
        }
        // Resuming keeps the failures (and still exits 1) unless asked to answer them again.
        let kept = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"]))
        XCTAssertEqual(kept.status, 1)
        XCTAssertEqual(try lines(answers).count, 6)
        try FileManager.default.copyItem(atPath: images + "/square-42.png", toPath: images + "/missing.png")
        try FileManager.default.removeItem(atPath: images + "/broken.png")
        try FileManager.default.copyItem(atPath: images + "/square-56.png", toPath: images + "/broken.png")
        let retried = try CLI.run(evalArguments(questions: questions, answers: answers, ["--retry-failed"]))
        XCTAssertEqual(retried.status, 0, retried.stderr)
        XCTAssertEqual(try ids(answers), ["1", "2", "q3", "4", "5", "q6"], "answers given again end up in input order")
        XCTAssertTrue(retried.stderr.contains("put the answers back in input order"), retried.stderr)
        XCTAssertTrue(try objects(answers).allSatisfy { metadata($0)["error"] == nil })
    }

    func testImagesMustStayInsideTheImageFolder() throws {
        let outsideFile = dir + "/outside.png"
        try FileManager.default.copyItem(atPath: images + "/square-42.png", toPath: outsideFile)
        try FileManager.default.createSymbolicLink(atPath: images + "/link.png", withDestinationPath: outsideFile)
        try FileManager.default.createDirectory(atPath: images + "/sub", withIntermediateDirectories: true)
        let names = ["../outside.png", outsideFile, "link.png", "sub/../square-56.png", "sub/../../outside.png"]
        let questions = try writeQuestions(names.count) { names[$0 - 1] }
        let answers = dir + "/out.jsonl"
        let r = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"]))
        XCTAssertEqual(r.status, 1, r.stderr)
        let errors = try objects(answers).map { metadata($0)["error"] as? String }
        for k in [0, 1, 2, 4] {
            XCTAssertTrue(errors[k]?.contains("image \(names[k]) is outside --image-folder \(images) (--allow-outside-images allows it)") ?? false,
                          "\(names[k]): \(errors[k] ?? "answered")")
        }
        XCTAssertTrue(errors[2]?.contains("resolves to \(outsideFile)") ?? false, errors[2] ?? "")
        XCTAssertNil(errors[3], "a path that stays inside the folder is fine")

        let allowed = dir + "/allowed.jsonl"
        let a = try CLI.run(evalArguments(questions: questions, answers: allowed, ["--quiet", "--allow-outside-images"]))
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(try objects(allowed).allSatisfy { metadata($0)["error"] == nil })
    }

    func testUnansweredQuestionsAreCountedListedAndNotRetriedOnResume() throws {
        let questions = try writeQuestions(5) { $0 == 2 || $0 == 4 ? "missing-\($0).png" : nil }
        let answers = dir + "/out.jsonl"
        let r = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"]))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderrLines.contains("llava: eval: unanswered (metadata.error): 2, 4"), r.stderr)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.summary.json"))) as! [String: Any]
        XCTAssertEqual(summary["unanswered"] as? [Int], [2, 4])
        XCTAssertEqual((summary["counts"] as! [String: Any])["failed"] as? Int, 2)
        for o in try objects(answers) where ["2", "4"].contains("\(o["question_id"]!)") {
            XCTAssertEqual(o["text"] as? String, "")
            XCTAssertNotNil(metadata(o)["error"])
        }
        // The image appears, but a resume leaves the failures alone (no stall on a bad file).
        try FileManager.default.copyItem(atPath: images + "/square-42.png", toPath: images + "/missing-2.png")
        let before = try Data(contentsOf: URL(fileURLWithPath: answers))
        let again = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"]))
        XCTAssertEqual(again.status, 1)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: answers)), before)
        let retried = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet", "--retry-failed"]))
        XCTAssertTrue(retried.stderrLines.contains("llava: eval: unanswered (metadata.error): 4"), retried.stderr)
    }

    func testAnswerKeyGivenAsAnswersIsNamed() throws {
        let questions = try writeQuestions(2)
        let key = dir + "/key.jsonl"
        try "{\"question_id\": 1, \"answer\": \"yes\"}\n{\"question_id\": 2, \"answer\": \"no\"}\n".write(toFile: key, atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: key))
        let r = try CLI.run(evalArguments(questions: questions, answers: key))
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines, ["llava: error: \(key):1: not an answer file of llava eval (no \"text\" and \"metadata\"); it looks like reference answers: give it as --annotations"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: key)), before)
    }

    func testProgressLineFitsANarrowTerminal() throws {
        let questions = try writeQuestions(30)
        let answers = dir + "/out.jsonl"
        let key = dir + "/key.jsonl"
        let keyLines = (1...30).map { i in #"{"question_id": \#(i % 3 == 0 ? "\"q\(i)\"" : "\(i)"), "answer": "yes"}"# }
        try (keyLines.joined(separator: "\n") + "\n").write(toFile: key, atomically: true, encoding: .utf8)
        let terminal = try Terminal(evalArguments(questions: questions, answers: answers, ["--annotations", key]), columns: 40)
        XCTAssertEqual(terminal.finish(), 0, terminal.output)
        // Every redraw of the progress line starts with a carriage return and fits in 40 columns.
        let draws = terminal.output.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\r")
            .map { $0.replacingOccurrences(of: "\u{1B}[K", with: "").components(separatedBy: "\n")[0] }
            .filter { $0.hasPrefix("eval ") }
        XCTAssertGreaterThan(draws.count, 1, terminal.output.debugDescription)
        for draw in draws { XCTAssertLessThan(draw.count, 40, draw.debugDescription) }
        XCTAssertTrue(draws.contains { $0.count == 39 }, "long lines are cut, not dropped: \(draws)")
    }

    func testOutputsThatAreNotRegularFilesAreRefusedNotReplaced() throws {
        let questions = try writeQuestions(2)
        let fifo = dir + "/special"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let answers = dir + "/out.jsonl"
        let summary = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet", "--summary", fifo]))
        XCTAssertEqual(summary.stderrLines, ["llava: error: \(fifo): cannot write the summary: not a regular file"])
        XCTAssertEqual(summary.status, 1)
        let answerFile = try CLI.run(evalArguments(questions: questions, answers: fifo, ["--quiet"]))
        XCTAssertEqual(answerFile.stderrLines, ["llava: error: \(fifo): cannot write: not a regular file"])
        let merged = try CLI.run(["eval", "merge", "--answers", fifo, answers])
        XCTAssertEqual(merged.stderrLines, ["llava: error: \(fifo): cannot write: not a regular file"])
        var info = stat()
        XCTAssertEqual(lstat(fifo, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the pipe is still a pipe")
    }

    // MARK: - Shards

    func testShardsMergedEqualAnUnshardedRun() throws {
        let questions = try writeQuestions(10)
        let whole = dir + "/whole.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: whole, ["--quiet"])).status, 0)
        var shards: [String] = []
        for i in 1...3 {
            let path = dir + "/shard\(i).jsonl"
            let r = try CLI.run(evalArguments(questions: questions, answers: path, ["--shard", "\(i)/3"]))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("\(i == 3 ? 2 : 4) questions (shard \(i)/3 of 10)"), r.stderr)
            shards.append(path)
        }
        XCTAssertEqual(try shards.map { try lines($0).count }, [4, 4, 2])
        let merged = dir + "/merged.jsonl"
        let m = try CLI.run(["eval", "merge", "--answers", merged] + shards)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertTrue(m.stderr.contains("3 files, 10 answers"), m.stderr)
        XCTAssertEqual(try comparable(merged), try comparable(whole))

        // More shards than questions: the extra shards are empty files, and merge takes them.
        let empty = dir + "/shard12of12.jsonl"
        let r = try CLI.run(evalArguments(questions: questions, answers: empty, ["--shard", "12/12", "--quiet"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try lines(empty), [])
        XCTAssertEqual(try CLI.run(["eval", "merge", "--answers", merged] + shards + [empty]).status, 0)

        // A question_id in two shards is refused, and nothing is written.
        try FileManager.default.removeItem(atPath: merged)
        let copy = dir + "/copy-of-shard1.jsonl"
        try FileManager.default.copyItem(atPath: shards[0], toPath: copy)
        let overlap = try CLI.run(["eval", "merge", "--answers", merged, shards[0], shards[1], copy])
        XCTAssertEqual(overlap.status, 1)
        XCTAssertEqual(overlap.stderrLines, ["llava: error: question_id 1 is answered twice: \(shards[0]):1 and \(copy):1"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged))

        // The same file given twice is named as such (under the same or another spelling).
        let twice = try CLI.run(["eval", "merge", "--answers", merged, shards[0], shards[1], shards[0]])
        XCTAssertEqual(twice.status, 1)
        XCTAssertEqual(twice.stderrLines, ["llava: error: \(shards[0]) is given twice"])
        let spelled = try CLI.run(["eval", "merge", "--answers", merged, shards[0], dir + "/./shard1.jsonl"])
        XCTAssertEqual(spelled.stderrLines, ["llava: error: \(shards[0]) is given twice (again as \(dir)/./shard1.jsonl)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged))
    }

    func testShardAutoReadsSlurmArraysAndKubernetesIndexedJobs() throws {
        let questions = try writeQuestions(10)
        let explicit = dir + "/explicit.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: explicit, ["--shard", "2/3", "--quiet"])).status, 0)
        // Slurm task 6 of an array 5-7 is shard 2/3; Kubernetes completion index 1 of 3 too.
        let slurm = ["SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"]
        let kubernetes = ["JOB_COMPLETION_INDEX": "1"]
        for (name, environment, extra) in [("slurm", slurm, [String]()), ("k8s", kubernetes, ["--shard-count", "3"])] {
            let path = dir + "/\(name).jsonl"
            let r = try CLI.run(evalArguments(questions: questions, answers: path, ["--shard", "auto"] + extra), environment: environment)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("4 questions (shard 2/3 of 10)"), r.stderr)
            XCTAssertEqual(try comparable(path), try comparable(explicit), name)
        }

        // Without a job array, or without the Kubernetes count: one line, nothing written.
        let none = dir + "/none.jsonl"
        let unset = ["SLURM_ARRAY_TASK_ID": "", "JOB_COMPLETION_INDEX": ""] // empty counts as unset
        let missing = try CLI.run(evalArguments(questions: questions, answers: none, ["--shard", "auto"]), environment: unset)
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderrLines, ["llava: error: --shard auto: no job array found (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX is not set); give --shard I/N"])
        let noCount = try CLI.run(evalArguments(questions: questions, answers: none, ["--shard", "auto"]), environment: kubernetes)
        XCTAssertEqual(noCount.status, 1)
        XCTAssertEqual(noCount.stderrLines.count, 1, noCount.stderr)
        XCTAssertTrue(noCount.stderr.contains("give --shard-count N"), noCount.stderr)
        let stray = try CLI.run(evalArguments(questions: questions, answers: none, ["--shard", "1/2", "--shard-count", "2"]))
        XCTAssertEqual(stray.stderrLines, ["llava: error: --shard-count goes with --shard auto"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: none))
    }

    // MARK: - Image cache

    func testRepeatedImagesAreEncodedOnce() throws {
        // b.png has a.png's bytes under another name.
        try FileManager.default.copyItem(atPath: images + "/square-42.png", toPath: images + "/a.png")
        try FileManager.default.copyItem(atPath: images + "/square-42.png", toPath: images + "/b.png")
        let order = ["a.png", "a.png", "b.png", "tall-70x97.jpg", "a.png", "tall-70x97.jpg"]
        let questions = try writeQuestions(6) { order[$0 - 1] }
        let answers = dir + "/out.jsonl"
        let r = try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "", "--quiet prints nothing when all goes well")
        let answered = try objects(answers)
        XCTAssertEqual(answered.map { metadata($0)["image_cache_hit"] as? Bool }, [false, true, true, false, true, true])
        for o in answered {
            let m = metadata(o)
            let visionMs = (m["timings"] as! [String: Any])["vision_ms"] as! Double
            if m["image_cache_hit"] as! Bool { XCTAssertEqual(visionMs, 0) } else { XCTAssertGreaterThan(visionMs, 0) }
        }
        XCTAssertEqual(metadata(answered[0])["image_sha256"] as? String, try sha256(images + "/a.png"))
        XCTAssertEqual(metadata(answered[3])["image_sha256"] as? String, try sha256(images + "/tall-70x97.jpg"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.summary.json"))) as! [String: Any]
        let cache = (summary["run"] as! [String: Any])["image_cache"] as! [String: Any]
        XCTAssertEqual(cache["tower_runs"] as? Int, 2, "one tower run per distinct image content")
        XCTAssertEqual(cache["hits"] as? Int, 4)

        // Without the cache every question runs the tower, and the answers are the same.
        let uncached = dir + "/uncached.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: uncached, ["--image-cache-mb", "0", "--quiet"])).status, 0)
        let summary0 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/uncached.summary.json"))) as! [String: Any]
        XCTAssertEqual(((summary0["run"] as! [String: Any])["image_cache"] as! [String: Any])["tower_runs"] as? Int, 6)
        XCTAssertEqual(try comparable(uncached), try comparable(answers))
    }

    func testTheCacheEvictsTheLeastRecentlyUsedImageWithinItsBudget() throws {
        let order = ["square-42.png", "square-56.png", "square-42.png", "tall-70x97.jpg", "square-42.png", "square-56.png"]
        let questions = try writeQuestions(6) { order[$0 - 1] }
        // The size of one entry, from a run with room for everything.
        let roomy = dir + "/roomy.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: roomy, ["--quiet"])).status, 0)
        let roomySummary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/roomy.summary.json"))) as! [String: Any]
        let roomyCache = (roomySummary["run"] as! [String: Any])["image_cache"] as! [String: Any]
        XCTAssertEqual(roomyCache["entries"] as? Int, 3)
        let entryBytes = Double(roomyCache["bytes"] as! Int) / 3

        // Room for two entries: the fourth question's image pushes out the least recently used
        // one (square-56, since square-42 was just used again), not the oldest inserted.
        let tight = dir + "/tight.jsonl"
        let budget = String(2.5 * entryBytes / 1_048_576)
        let r = try CLI.run(evalArguments(questions: questions, answers: tight, ["--quiet", "--image-cache-mb", budget]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try objects(tight).map { metadata($0)["image_cache_hit"] as? Bool }, [false, false, true, false, true, false])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tight.summary.json"))) as! [String: Any]
        let cache = (summary["run"] as! [String: Any])["image_cache"] as! [String: Any]
        XCTAssertEqual(cache["evictions"] as? Int, 2)
        XCTAssertEqual(cache["entries"] as? Int, 2)
        XCTAssertEqual(cache["tower_runs"] as? Int, 4)
        XCTAssertLessThanOrEqual(cache["bytes"] as! Int, cache["budget_bytes"] as! Int)
        XCTAssertEqual(try comparable(tight), try comparable(roomy))
    }

    // MARK: - Scoring

    func testScoresAndSummaryJSON() throws {
        let questions = try writeQuestions(8)
        let answers = dir + "/out.jsonl"
        XCTAssertEqual(try CLI.run(evalArguments(questions: questions, answers: answers, ["--quiet"])).status, 0)
        let answered = try objects(answers)
        let texts = answered.map { $0["text"] as! String }
        func id(_ i: Int) -> String { i % 3 == 0 ? "\"q\(i)\"" : "\(i)" }
        func quoted(_ s: String) throws -> String { String(decoding: try JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed]), as: UTF8.self).dropFirst().dropLast().description }
        // Questions 1, 2, 4, 7 (categories popular, random, popular, popular) get their own answer as the
        // reference; 5 has 2 of 10 human answers equal to it (VQA accuracy 0.6, not the majority);
        // 8 has another answer; 3 and 6 ("adversarial") are yes/no questions.
        var key: [String] = []
        for i in [1, 2, 4, 7] { key.append(#"{"question_id": \#(id(i)), "answer": \#(try quoted(texts[i - 1]))}"#) }
        let t5 = try quoted(texts[4])
        key.append(#"{"question_id": 5, "answers": [\#(t5), \#(t5), "zz", "zz", "zz", "zz", "zz", "zz", "zz", "zz"]}"#)
        key.append(#"{"question_id": 8, "answer": "zz"}"#)
        key.append(#"{"question_id": "q3", "label": "yes"}"#)
        key.append(#"{"question_id": "q6", "label": "no"}"#)
        try (key.joined(separator: "\n") + "\n").write(toFile: dir + "/key.jsonl", atomically: true, encoding: .utf8)

        let r = try CLI.run(evalArguments(questions: questions, answers: answers, ["--annotations", dir + "/key.jsonl"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        let table = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(table.first, "category     n   exact  vqa-acc  pope-f1", r.stdout)
        XCTAssertTrue(table.contains { $0.hasPrefix("popular      3  100.00   100.00") }, r.stdout)
        XCTAssertTrue(table.contains { $0.hasPrefix("random       3   33.33    53.33") }, r.stdout)
        XCTAssertTrue(table.contains { $0.hasPrefix("overall      8") }, r.stdout)
        XCTAssertTrue(table.contains { $0.hasPrefix("yes/no") }, r.stdout)

        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.summary.json"))) as! [String: Any]
        XCTAssertEqual(summary["model_id"] as? String, "gqa-f16-v5")
        let counts = summary["counts"] as! [String: Any]
        XCTAssertEqual(counts["questions"] as? Int, 8)
        XCTAssertEqual(counts["resumed"] as? Int, 8)
        XCTAssertEqual(counts["answered_this_run"] as? Int, 0)
        let scores = summary["scores"] as! [String: Any]
        let overall = scores["overall"] as! [String: Any]
        XCTAssertEqual(overall["n"] as? Int, 8)
        // Exact: 1, 2, 4, 7 right; 5, 8 wrong; 3, 6 right only if the model said yes / no.
        let yesNo = overall["yes_no"] as! [String: Any]
        XCTAssertEqual(yesNo["n"] as? Int, 2)
        let tp = yesNo["tp"] as! Int, tn = yesNo["tn"] as! Int
        XCTAssertEqual(tp + (yesNo["fn"] as! Int), 1)
        XCTAssertEqual(tn + (yesNo["fp"] as! Int), 1)
        for key in ["accuracy", "precision", "recall", "f1", "yes_ratio"] { XCTAssertNotNil(yesNo[key] as? Double, key) }
        XCTAssertEqual(overall["vqa_accuracy"] as! Double, (4 + 0.6) / 8, accuracy: 1e-9)
        XCTAssertEqual(overall["exact"] as! Double, 4.0 / 8, accuracy: 1e-9)
        let categories = scores["categories"] as! [[String: Any]]
        XCTAssertEqual(categories.map { $0["category"] as! String }, ["adversarial", "popular", "random"])
        XCTAssertTrue(categories[0]["yes_no"] is [String: Any])
        XCTAssertTrue(categories[1]["yes_no"] is NSNull)

        // The same scores from the answer file alone.
        let s = try CLI.run(["eval", "score", "--answers", answers, "--annotations", dir + "/key.jsonl", "--questions", questions,
                             "--summary", dir + "/score.json"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertEqual(s.stdout, r.stdout)
        let standalone = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/score.json"))) as! [String: Any]
        XCTAssertEqual(NSDictionary(dictionary: standalone["scores"] as! [String: Any]), NSDictionary(dictionary: scores))
    }
}
