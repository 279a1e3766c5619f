import Foundation
import LLaVA
import TokenMerging
import XCTest

final class RunSettingsTests: XCTestCase {
    func testJSONRoundTrip() throws {
        var settings = RunSettings(modelDirectory: "Models/shapes-llava", template: "llava-v1", imageMode: .pad)
        settings.generation.maxTokens = 128
        settings.generation.sampling.topK = 40
        settings.merge = VisionMergeSettings(options: MergeOptions(method: .pitome, ratio: 0.9))
        settings.quantization = .q4
        let data = try JSONEncoder().encode(settings)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["model_directory"] as? String, "Models/shapes-llava")
        XCTAssertEqual(object["image_mode"] as? String, "pad")
        XCTAssertEqual((object["generation"] as? [String: Any])?["max_tokens"] as? Int, 128)
        XCTAssertEqual(try JSONDecoder().decode(RunSettings.self, from: data), settings)
        XCTAssertEqual(settings.modelID, "shapes-llava")
    }

    func testValidateNamesTheFirstBrokenRule() throws {
        var settings = RunSettings(modelDirectory: "m")
        XCTAssertNoThrow(try settings.validate())
        settings.generation.sampling.topP = 0
        settings.generation.maxTokens = 0
        XCTAssertThrowsError(try settings.validate()) { error in
            XCTAssertEqual(error as? RunSettingsError, .outOfRange(.maxTokens, rule: "at least 1", value: "0"))
            XCTAssertEqual(String(describing: error), "max_tokens must be at least 1, got 0")
        }
        settings.generation.maxTokens = 1
        XCTAssertThrowsError(try settings.validate()) { error in
            XCTAssertEqual(String(describing: error), "top_p must be in (0, 1], got 0.0")
        }
        settings = RunSettings(modelDirectory: "m", merge: VisionMergeSettings(options: MergeOptions(method: .tome)))
        XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue($0 is MergeError) }
        XCTAssertThrowsError(try RunSettings(modelDirectory: "").validate()) {
            XCTAssertEqual(String(describing: $0), "model_directory is empty")
        }
    }
}
