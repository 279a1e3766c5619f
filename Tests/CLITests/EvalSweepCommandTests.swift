import FixtureLocations
import Foundation
import XCTest

/// `llava eval sweep`: two benchmarks × two settings with the shipped model, killed in the
/// middle and resumed, give the same answers and table as an uninterrupted sweep.
final class EvalSweepCommandTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        try FixtureLocations.requireReference("eval")
        dir = NSTemporaryDirectory() + "llava-sweep-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The shipped question file's first 120 questions, as a question-file benchmark folder.
    func shapes() throws -> String {
        let folder = dir + "/shapes", source = CLI.packageRoot.path + "/Prompts/shapes"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let questions = try String(contentsOfFile: source + "/questions.jsonl", encoding: .utf8).split(separator: "\n").prefix(120)
        try (questions.joined(separator: "\n") + "\n").write(toFile: folder + "/questions.jsonl", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: source + "/answers.jsonl", toPath: folder + "/answers.jsonl")
        try FileManager.default.createSymbolicLink(atPath: folder + "/images", withDestinationPath: source + "/images")
        return folder
    }

    func arguments(_ out: String) -> [String] {
        ["eval", "sweep", "--benchmarks", "pope,shapes=" + dir + "/shapes",
         "--data-root", CLI.referenceFixtures + "/eval", "--merge", "pitome", "--ratios", "1,0.9", "--out", out, "--quiet"]
    }

    /// (question_id, prompt) → text of every line of every cell, and whether any repeats.
    func answers(_ out: String) throws -> [String: String] {
        var all: [String: String] = [:]
        for setting in ["none", "pitome-ratio0.9"] {
            for bench in ["pope", "shapes"] {
                let text = try String(contentsOfFile: "\(out)/cells/\(setting)/\(bench).jsonl", encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                    let key = "\(setting)/\(bench)/\(o["question_id"]!)/\(o["prompt"]!)"
                    XCTAssertNil(all[key], "answered twice: \(key)")
                    all[key] = o["text"] as? String
                }
            }
        }
        return all
    }

    func scores(_ out: String) throws -> [[String: Any]] {
        let table = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/table.json"))) as! [String: Any]
        return (table["rows"] as! [[String: Any]]).map { row in
            ["method": row["method"]!, "visual_tokens": row["visual_tokens"]!, "scores": row["scores"]!]
        }
    }

    func testAKilledSweepResumesToTheSameTable() throws {
        _ = try shapes()
        let whole = dir + "/whole"
        let first = try CLI.run(arguments(whole), timeout: 600)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("| method | ratio | keep | visual tokens | TTFT ms | pope f1_mean_over_categories | shapes vqa_accuracy |"), first.stdout)
        for name in ["table.md", "table.csv", "table.json", "plot.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: whole + "/" + name), name)
        }
        let rows = try scores(whole)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows.map { $0["visual_tokens"] as? Int }, [64, 30])

        // Kill a second sweep once it is inside the first shapes cell, then run it again.
        let killed = dir + "/killed"
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = arguments(killed)
        var env = ProcessInfo.processInfo.environment
        env["LLAVA_HOME"] = CLI.packageRoot.path
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let cell = killed + "/cells/none/shapes.jsonl"
        while process.isRunning {
            if let text = try? String(contentsOfFile: cell, encoding: .utf8), text.split(separator: "\n").count >= 40 { break }
            usleep(2_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let resumed = try CLI.run(arguments(killed), timeout: 600)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try answers(killed), try answers(whole))
        XCTAssertEqual(NSArray(array: try scores(killed)), NSArray(array: rows))
    }

    func testShardsAnswerTheirCellsAndTheUnshardedSweepWritesTheTable() throws {
        _ = try shapes()
        let out = dir + "/sharded"
        // Four cells (2 settings × 2 benchmarks) in three shards: 2, 2 and none.
        let slurm = ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"]
        let cells = ["none/pope", "none/shapes", "pitome-ratio0.9/pope", "pitome-ratio0.9/shapes"].map { "\(out)/cells/\($0).jsonl" }
        for (shard, environment, done) in [("1/3", [String: String](), 2), ("auto", slurm, 4), ("3/3", [:], 4)] {
            let r = try CLI.run(arguments(out) + ["--shard", shard], timeout: 600, environment: environment)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, "", "a sharded sweep prints no table")
            XCTAssertEqual(cells.map { FileManager.default.fileExists(atPath: $0) }, (0..<4).map { $0 < done }, shard)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/table.json"))
        let before = try cells.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let whole = try CLI.run(arguments(out), timeout: 600)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertEqual(try cells.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, before, "every cell was answered by its shard")
        XCTAssertEqual(try scores(out).map { $0["visual_tokens"] as? Int }, [64, 30])
        let all = try answers(out)
        for setting in ["none", "pitome-ratio0.9"] {
            XCTAssertEqual(all.keys.filter { $0.hasPrefix(setting + "/shapes/") }.count, 120, setting)
        }
    }
}
