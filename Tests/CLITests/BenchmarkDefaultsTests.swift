import Foundation
import XCTest

/// Benchmark runs ask as LLaVA-1.5's evaluation scripts do (vicuna_v1 template, padded images,
/// greedy, the script's max new tokens), say so once, and take flags given in their place.
final class BenchmarkDefaultsTests: XCTestCase {
    let root = CLI.referenceFixtures + "/eval"
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "llava-defaults-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func metadata(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["metadata"] as! [String: Any]
        }
    }

    func testABenchmarkRunDefaultsToLLaVAsEvaluationSettingsAndSaysSo() throws {
        let answers = dir + "/pope.jsonl"
        let r = try CLI.run(["eval", "run", "--benchmark", "pope", "--data", root + "/pope", "--answers", answers])
        XCTAssertEqual(r.status, 0, r.stderr)
        let said = r.stderrLines.filter { $0.contains("LLaVA-1.5 evaluation settings") }
        XCTAssertEqual(said, ["llava: eval: LLaVA-1.5 evaluation settings (scripts/v1_5/eval/pope.sh): template llava-v1, image mode pad, greedy, at most 128 new tokens"])
        for m in try metadata(answers) {
            XCTAssertEqual(m["template"] as? String, "llava-v1")
            XCTAssertEqual(m["image_mode"] as? String, "pad")
            XCTAssertEqual(m["max_tokens"] as? Int, 128)
            XCTAssertEqual(m["temperature"] as? Double, 0)
        }
    }

    func testFlagsGivenOverrideTheBenchmarkDefaults() throws {
        let answers = dir + "/pope.jsonl"
        let r = try CLI.run(["eval", "run", "--benchmark", "pope", "--data", root + "/pope", "--answers", answers,
                             "--template", "llava-hf", "--image-mode", "crop", "-n", "8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("template llava-hf (given), image mode crop (given), greedy, at most 8 new tokens (given)"), r.stderr)
        for m in try metadata(answers) {
            XCTAssertEqual(m["template"] as? String, "llava-hf")
            XCTAssertEqual(m["image_mode"] as? String, "crop")
            XCTAssertEqual(m["max_tokens"] as? Int, 8)
        }
    }

    func testASweepAsksEachBenchmarkWithItsScriptsSettings() throws {
        let out = dir + "/sweep"
        let r = try CLI.run(["eval", "sweep", "--benchmarks", "pope,mmbench", "--data-root", root, "--merge", "pitome",
                             "--ratios", "1", "--out", out], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderrLines.filter { $0.contains("evaluation settings") },
                       ["llava: eval sweep: LLaVA-1.5 evaluation settings: template llava-v1, image mode pad, greedy, at most 128 new tokens (mmbench: 1024)"])
        XCTAssertEqual(Set(try metadata(out + "/cells/none/pope.jsonl").map { $0["max_tokens"] as! Int }), [128])
        let mmbench = try metadata(out + "/cells/none/mmbench.jsonl")
        XCTAssertEqual(Set(mmbench.map { $0["max_tokens"] as! Int }), [1024])
        XCTAssertEqual(Set(mmbench.map { $0["template"] as! String }), ["llava-v1"])
        XCTAssertEqual(Set(mmbench.map { $0["image_mode"] as! String }), ["pad"])
    }
}
