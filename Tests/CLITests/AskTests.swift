import Foundation
import XCTest

final class AskTests: XCTestCase {
    func testJSONReportCarriesIdsAndTimings() throws {
        let r = try CLI.run(["ask", "--model", CLI.fixtures + "/gqa-f16-v5", "--image", CLI.fixtures + "/images/square-42.png",
                             "-n", "6", "--json", "What color is the square?"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try r.lastJSONObject()
        for key in ["text", "prompt_ids", "generated_ids", "visual_tokens", "timings", "stop_reason"] {
            XCTAssertNotNil(object[key], key)
        }
        XCTAssertEqual(object["visual_tokens"] as? Int, 9)
        XCTAssertEqual((object["generated_ids"] as! [Int]).count, 6)
        let timings = object["timings"] as! [String: Any]
        for key in ["vision_ms", "prefill_ms", "ttft_ms", "decode_tokens_per_s"] { XCTAssertNotNil(timings[key], key) }
    }

    func testGreedyAnswerEqualsTransformersTokens() throws {
        // The first case of the fixture: the CLI path (file → preprocessing → tower → decoder)
        // reproduces transformers' greedy tokens.
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLI.fixtures + "/expected.json"))) as! [[String: Any]]
        let c = cases.first { ($0["template"] as! String) == "llava-v1" }!
        let r = try CLI.run(["ask", "--model", CLI.fixtures + "/" + (c["model"] as! String), "--image", CLI.fixtures + "/" + (c["image"] as! String),
                             "--template", "llava-v1", "-n", "16", "--json", c["question"] as! String])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try r.lastJSONObject()
        XCTAssertEqual(object["prompt_ids"] as! [Int], c["prompt_ids"] as! [Int])
        let greedy = c["greedy_ids"] as! [Int]
        let generated = object["generated_ids"] as! [Int]
        // Generation stops at EOS; up to there it must agree.
        XCTAssertEqual(generated, Array(greedy.prefix(generated.count)))
    }

    func testStreamsTextAndPrintsTimingSummary() throws {
        let r = try CLI.run(["ask", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", CLI.fixtures + "/images/wide-83x61.png",
                             "-n", "8", "--temperature", "0.8", "--seed", "3", "Describe it."])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("prompt eval"), r.stderr)
        XCTAssertTrue(r.stderr.contains("time to first token"), r.stderr)
        // Same seed, same answer.
        let again = try CLI.run(["ask", "--model", CLI.fixtures + "/mha-f32-legacy", "--image", CLI.fixtures + "/images/wide-83x61.png",
                                 "-n", "8", "--temperature", "0.8", "--seed", "3", "Describe it."])
        XCTAssertEqual(r.stdout, again.stdout)
    }
}
