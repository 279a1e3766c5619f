import VQAEval
import XCTest

/// The answer lengths LLaVA-1.5 evaluates with, and which benchmarks give an upload file.
final class LLaVAEvalSettingsTests: XCTestCase {
    func testAnswerLengthsAreThoseOfLLaVAsEvalScripts() {
        // model_vqa_loader.py --max_new_tokens defaults to 128; model_vqa_mmbench.py and
        // model_vqa_science.py generate up to 1024 tokens.
        for name in BenchmarkName.allCases {
            XCTAssertEqual(name.llavaMaxNewTokens, name == .mmbench || name == .scienceqa ? 1024 : 128, name.rawValue)
        }
        XCTAssertEqual(BenchmarkName.scienceqa.llavaScript, "scripts/v1_5/eval/sqa.sh")
        XCTAssertEqual(BenchmarkName.gqa.llavaScript, "scripts/v1_5/eval/gqa.sh")
    }

    func testBenchmarksScoredOnTheirServerHaveAnUploadFile() {
        XCTAssertTrue(BenchmarkName.vqav2.hasSubmission(vqav2Split: .testDev))
        XCTAssertFalse(BenchmarkName.vqav2.hasSubmission(vqav2Split: .val))
        for name in [BenchmarkName.vizwiz, .gqa, .seed, .mmbench] { XCTAssertTrue(name.hasSubmission(vqav2Split: .val)) }
        for name in [BenchmarkName.pope, .mme, .scienceqa, .textvqa, .cocoCaption] { XCTAssertFalse(name.hasSubmission(vqav2Split: .val)) }
    }
}
