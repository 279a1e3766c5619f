import FixtureLocations
import Foundation
import XCTest

/// `llava eval run|score --benchmark`: every benchmark of the reference fixtures asked with the
/// shipped model and scored, and the official scores reproduced from the fixture answer files.
final class EvalBenchmarkCommandTests: XCTestCase {
    let root = CLI.referenceFixtures + "/eval"
    var dir = ""

    override func setUpWithError() throws {
        try FixtureLocations.requireReference("eval")
        dir = NSTemporaryDirectory() + "llava-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func testEveryBenchmarkRunsEndToEndWithTheShippedModel() throws {
        let benchmarks: [(name: String, folder: String, questions: Int)] = [
            ("vqav2", "vqav2", 10), ("gqa", "gqa", 24), ("vizwiz", "vizwiz", 20), ("scienceqa", "scienceqa", 26),
            ("textvqa", "textvqa", 24), ("pope", "pope", 36), ("mme", "mme", 44), ("mmbench", "mmbench", 32),
            ("seed", "seed", 26), ("coco-caption", "coco-caption", 12),
        ]
        for b in benchmarks {
            let answers = dir + "/\(b.name).jsonl", summary = dir + "/\(b.name).summary.json"
            let r = try CLI.run(["eval", "run", "--quiet", "--benchmark", b.name, "--data", root + "/" + b.folder,
                                 "--answers", answers, "--summary", summary], timeout: 600)
            XCTAssertEqual(r.status, 0, "\(b.name): \(r.stderr)")
            let written = try lines(answers)
            XCTAssertEqual(written.count, b.questions, b.name)
            for line in written {
                XCTAssertNotNil(line["question_id"], b.name)
                XCTAssertNotNil(line["prompt"] as? String, b.name)
                XCTAssertNotNil(line["text"] as? String, b.name)
                XCTAssertEqual(line["model_id"] as? String, "shapes-llava", b.name)
            }
            let s = try json(summary)
            XCTAssertEqual(s["benchmark"] as? String, b.name)
            XCTAssertNotNil(s["headline"] as? [String: Any], b.name)
            XCTAssertNotNil(s["metrics"] as? [String: Any], b.name)
            XCTAssertEqual(s["unanswered"] as? Int, 0, b.name)
            XCTAssertTrue(r.stdout.hasPrefix(b.name + "\n"), b.name)
        }
        // The answers are in LLaVA's format: MMBench lines carry the rotation fields and ScienceQA
        // prompts mark the image.
        let mmbench = try lines(dir + "/mmbench.jsonl")
        XCTAssertEqual(mmbench[0]["round_id"] as? Int, 0)
        XCTAssertEqual((mmbench[0]["option_char"] as? [String])?.first, "A")
        let sqa = try lines(dir + "/scienceqa.jsonl")
        XCTAssertTrue(sqa.contains { ($0["prompt"] as? String)?.hasPrefix("<image>\n") == true })
        XCTAssertTrue(sqa.contains { ($0["prompt"] as? String)?.hasPrefix("<image>") == false })
    }

    /// A benchmark run carries FastV's cut into the language model like `ask` does: every answer
    /// records the kept count.
    func testABenchmarkRunAppliesFastVsCut() throws {
        for (label, flags) in [("none", [String]()), ("fastv", ["--merge", "fastv", "--keep", "8"])] {
            let answers = dir + "/pope-\(label).jsonl"
            let r = try CLI.run(["eval", "run", "--quiet", "--benchmark", "pope", "--data", root + "/pope",
                                 "--answers", answers] + flags, timeout: 300)
            XCTAssertEqual(r.status, 0, r.stderr)
            let written = try lines(answers)
            XCTAssertEqual(written.count, 36)
            let metadata = written.map { $0["metadata"] as! [String: Any] }
            XCTAssertEqual(Set(metadata.map { $0["visual_tokens"] as! Int }), [label == "none" ? 64 : 8], label)
        }
    }

    func testARunResumesAndWritesTheSubmissionFile() throws {
        let answers = dir + "/vizwiz.jsonl", upload = dir + "/upload.json"
        let args = ["eval", "run", "--benchmark", "vizwiz", "--data", root + "/vizwiz", "--answers", answers,
                    "--submission", upload]
        XCTAssertEqual(try CLI.run(args).status, 0)
        let first = try String(contentsOfFile: answers, encoding: .utf8)
        let again = try CLI.run(args)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("20 already answered"), again.stderr)
        XCTAssertEqual(try String(contentsOfFile: answers, encoding: .utf8), first)
        let rows = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: upload))) as! [[String: Any]]
        XCTAssertEqual(rows.count, 20)
        XCTAssertEqual(rows[0]["image"] as? String, "VizWiz_test_00000000.jpg")
    }

    func testScoreReproducesTheOfficialNumbersAndSubmission() throws {
        let summary = dir + "/gqa.json", upload = dir + "/vqav2.json"
        let g = try CLI.run(["eval", "score", "--benchmark", "gqa", "--data", root + "/gqa", "--answers",
                             root + "/gqa/answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl", "--summary", summary])
        XCTAssertEqual(g.status, 0, g.stderr)
        let s = try json(summary)
        let expected = try json(root + "/gqa/expected.json")
        XCTAssertEqual((s["headline"] as! [String: Any])["accuracy"] as! Double,
                       (expected["headline"] as! [String: Any])["accuracy"] as! Double, accuracy: 1e-9)
        XCTAssertEqual(Set((s["metrics"] as! [String: Any]).keys), Set((expected["metrics"] as! [String: Any]).keys))

        let v = try CLI.run(["eval", "score", "--benchmark", "vqav2", "--data", root + "/vqav2", "--answers",
                             root + "/vqav2/answers/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b/merge.jsonl",
                             "--summary", dir + "/v.json", "--submission", upload])
        XCTAssertEqual(v.status, 0, v.stderr)
        let mine = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: upload))) as! NSArray
        let official = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            root + "/vqav2/expected/answers_upload/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b.json"))) as! NSArray
        XCTAssertEqual(mine, official)
        XCTAssertTrue(v.stderr.contains("1 of 10 questions have no usable answer"), v.stderr)
    }

    func testCaptionsScoredAgainstAnAnnotationFile() throws {
        let summary = dir + "/c.json"
        let r = try CLI.run(["eval", "score", "--benchmark", "coco-caption", "--annotations", root + "/coco-caption/dataset_coco.json",
                             "--answers", root + "/coco-caption/answers/llava-v1.5-7b.jsonl", "--summary", summary])
        XCTAssertEqual(r.status, 0, r.stderr)
        let cider = ((try json(summary))["headline"] as! [String: Any])["CIDEr"] as! Double
        let official = ((try json(root + "/coco-caption/expected.json"))["headline"] as! [String: Any])["CIDEr"] as! Double
        XCTAssertEqual(cider, official, accuracy: 1e-9)
    }

    func testBadBenchmarkInputIsOneLine() throws {
        let missing = try CLI.run(["eval", "score", "--benchmark", "gqa", "--data", dir + "/nope", "--answers", dir + "/a.jsonl"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderrLines, ["llava: error: \(dir)/nope: no such folder"])
        let wrongFolder = try CLI.run(["eval", "score", "--benchmark", "pope", "--data", root + "/gqa", "--answers",
                                       root + "/gqa/answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl"])
        XCTAssertEqual(wrongFolder.status, 1)
        XCTAssertEqual(wrongFolder.stderrLines.count, 1)
        XCTAssertTrue(wrongFolder.stderr.contains("llava_pope_test.jsonl"), wrongFolder.stderr)
        let noSubmission = try CLI.run(["eval", "score", "--benchmark", "mme", "--data", root + "/mme", "--answers",
                                        root + "/mme/answers/llava-v1.5-7b.jsonl", "--summary", dir + "/m.json",
                                        "--submission", dir + "/m.sub.json"])
        XCTAssertEqual(noSubmission.status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/m.sub.json"))
    }
}

extension EvalBenchmarkCommandTests {
    /// A missing image fails that question only: its line records the error, the run goes on,
    /// exits 1, and the summary counts it as unanswered.
    func testAMissingImageIsRecordedAndCountedUnanswered() throws {
        let copy = dir + "/vizwiz"
        try FileManager.default.copyItem(atPath: root + "/vizwiz", toPath: copy)
        try FileManager.default.removeItem(atPath: copy + "/test/VizWiz_test_00000003.jpg")
        let answers = dir + "/a.jsonl", summary = dir + "/s.json"
        let r = try CLI.run(["eval", "run", "--quiet", "--benchmark", "vizwiz", "--data", copy, "--answers", answers,
                             "--summary", summary])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("VizWiz_test_00000003.jpg"), r.stderr)
        let written = try lines(answers)
        XCTAssertEqual(written.count, 20)
        let failed = written.filter { ($0["metadata"] as? [String: Any])?["error"] != nil }
        XCTAssertEqual(failed.map { $0["question_id"] as? Int }, [3])
        let s = try json(summary)
        XCTAssertEqual(s["unanswered"] as? Int, 1)
        XCTAssertEqual(s["unanswered_ids"] as? [Int], [3])
    }

    func testShardAutoSplitsABenchmarkRun() throws {
        func run(_ answers: String, _ shard: [String], _ environment: [String: String] = [:]) throws -> [String] {
            let r = try CLI.run(["eval", "run", "--quiet", "--benchmark", "pope", "--data", root + "/pope", "--answers", answers] + shard,
                                environment: environment)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try lines(answers).map { "\($0["question_id"]!) \($0["text"]!)" }
        }
        let explicit = try run(dir + "/explicit.jsonl", ["--shard", "2/2"])
        XCTAssertEqual(explicit.count, 18)
        XCTAssertEqual(try run(dir + "/k8s.jsonl", ["--shard", "auto", "--shard-count", "2"], ["JOB_COMPLETION_INDEX": "1"]), explicit)
        XCTAssertEqual(try run(dir + "/slurm.jsonl", ["--shard", "auto"],
                               ["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_COUNT": "2"]), explicit)
    }

    func testBrokenReleaseFileIsNamedOnOneLine() throws {
        let copy = dir + "/gqa"
        try FileManager.default.copyItem(atPath: root + "/gqa", toPath: copy)
        try "{\"1\": {\"question\": 3}}".write(toFile: copy + "/data/testdev_balanced_questions.json", atomically: true, encoding: .utf8)
        let r = try CLI.run(["eval", "score", "--benchmark", "gqa", "--data", copy, "--answers",
                             copy + "/answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl", "--summary", dir + "/s.json"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("llava: error: \(copy)/data/testdev_balanced_questions.json: not in the expected format"), r.stderr)
    }
}
