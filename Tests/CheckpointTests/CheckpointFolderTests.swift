import Foundation
import XCTest

@testable import Checkpoint

final class CheckpointFolderTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "checkpoint-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    let minimalConfig = """
    {"model_type": "llava", "vision_config": {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
     "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
     "text_config": {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
     "num_attention_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-05}, "image_token_index": 60}
    """

    func testMinimalConfigTakesTransformersDefaults() throws {
        try write("config.json", minimalConfig)
        let c = try LlavaConfiguration.load(path: dir + "/config.json")
        XCTAssertEqual(c.vision.hiddenAct, "quick_gelu")
        XCTAssertEqual(c.vision.layerNormEps, 1e-5)
        XCTAssertEqual(c.text.numKeyValueHeads, 2)
        XCTAssertEqual(c.text.headDim, 4)
        XCTAssertEqual(c.text.ropeTheta, 10000)
        XCTAssertEqual(c.text.rmsNormEps, 1e-5)
        XCTAssertEqual(c.text.maxPositionEmbeddings, 2048)
        XCTAssertEqual(c.visionFeatureLayers, [-2])
        XCTAssertEqual(c.visionLayersToRun, 1)
        XCTAssertEqual(c.visionFeatureSelectStrategy, .default)
        XCTAssertEqual(c.projectorHiddenAct, "gelu")
        XCTAssertTrue(c.multimodalProjectorBias)
    }

    func testEmptyConfigIsLlava15() throws {
        try write("config.json", "{}")
        let c = try LlavaConfiguration.load(path: dir + "/config.json")
        XCTAssertEqual(c.vision, .llavaDefault)
        XCTAssertEqual(c.visionLayersToRun, 23)
        XCTAssertEqual(c.text.hiddenSize, 4096)
        XCTAssertEqual(c.text.rmsNormEps, 1e-6)
        XCTAssertEqual(c.imageTokenIndex, 32000)
    }

    func testRopeParametersAndEosList() throws {
        try write("config.json", """
        {"text_config": {"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "eos_token_id": [2, 7]}}
        """)
        let c = try LlavaConfiguration.load(path: dir + "/config.json")
        XCTAssertEqual(c.text.ropeTheta, 500000)
        XCTAssertEqual(c.text.eosTokenIds, [2, 7])
    }

    func testBadConfigsNameTheFileAndField() throws {
        let cases: [(String, String)] = [
            ("not json", "not a JSON object"),
            ("{\"model_type\": \"qwen2_vl\"}", "model_type is \"qwen2_vl\""),
            ("{\"text_config\": {\"hidden_size\": \"big\"}}", "hidden_size should be a number"),
            ("{\"text_config\": {\"num_attention_heads\": 6, \"num_key_value_heads\": 4}}", "not a multiple of num_key_value_heads"),
            ("{\"text_config\": {\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}}}", "rope type \"dynamic\" is not supported"),
            ("{\"vision_feature_layer\": -30}", "outside the 24-layer vision tower"),
            ("{\"vision_feature_select_strategy\": \"cls\"}", "must be \"default\" or \"full\""),
            ("{\"vision_config\": {\"image_size\": 100, \"patch_size\": 14}}", "not a multiple of patch_size"),
        ]
        for (text, fragment) in cases {
            try write("config.json", text)
            XCTAssertThrowsError(try LlavaConfiguration.load(path: dir + "/config.json")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(dir + "/config.json: "), message)
                XCTAssertTrue(message.contains(fragment), "\(message) should contain \(fragment)")
            }
        }
    }

    func testMissingFolderAndWeights() throws {
        XCTAssertThrowsError(try CheckpointFolder(directory: dir + "/nowhere")) { error in
            XCTAssertEqual("\(error)", "\(dir!)/nowhere: no such file")
        }
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("config.json: no such file"))
        }
        try write("config.json", minimalConfig)
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("model.safetensors (or model.safetensors.index.json): no such file"))
        }
    }

    func testShardedIndexAndBothNameSchemes() throws {
        try write("config.json", minimalConfig)
        try SafeTensorsBytes.valid([("model.language_model.norm.weight", "F32", [8], floatBytes(Array(repeating: 1, count: 8)))])
            .write(to: dir + "/model-00001-of-00002.safetensors")
        try SafeTensorsBytes.valid([("lm_head.weight", "F16", [2, 8], halfBytes(Array(repeating: 0.5, count: 16)))])
            .write(to: dir + "/model-00002-of-00002.safetensors")
        try write("model.safetensors.index.json", """
        {"metadata": {"total_size": 64}, "weight_map": {"model.language_model.norm.weight": "model-00001-of-00002.safetensors",
         "lm_head.weight": "model-00002-of-00002.safetensors"}}
        """)
        let ckpt = try CheckpointFolder(directory: dir)
        XCTAssertEqual(ckpt.files.count, 2)
        XCTAssertEqual(ckpt.tensorNames, ["language_model.lm_head.weight", "language_model.model.norm.weight"])
        XCTAssertEqual(try ckpt.floats("language_model.model.norm.weight", shape: [8]), Array(repeating: 1, count: 8))
        XCTAssertEqual(try ckpt.weight("language_model.lm_head.weight", shape: [2, 8]).rowArray(1), Array(repeating: 0.5, count: 8))
        XCTAssertThrowsError(try ckpt.weight("language_model.lm_head.weight", shape: [3, 8])) { error in
            XCTAssertTrue("\(error)".contains("model-00002-of-00002.safetensors: tensor lm_head.weight has shape [2, 8], the config implies [3, 8]"), "\(error)")
        }
        XCTAssertThrowsError(try ckpt.weight("language_model.model.embed_tokens.weight", shape: [64, 8])) { error in
            XCTAssertTrue("\(error)".contains("tensor language_model.model.embed_tokens.weight is missing"))
        }
    }

    func testIndexNamingAMissingShardOrTensor() throws {
        try write("config.json", minimalConfig)
        try write("model.safetensors.index.json", "{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\"}}")
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("model-00001-of-00001.safetensors: no such file"))
        }
        try SafeTensorsBytes.valid([("b", "F32", [1], floatBytes([1]))]).write(to: dir + "/model-00001-of-00001.safetensors")
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("tensor a is listed in model.safetensors.index.json but not stored here"))
        }
        try write("model.safetensors.index.json", "{\"weight_map\": {\"a\": \"../../etc/passwd\"}}")
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("is not a file name"))
        }
    }

    func testDuplicateNamesAcrossSchemes() throws {
        try write("config.json", minimalConfig)
        try SafeTensorsBytes.valid([
            ("lm_head.weight", "F32", [1], floatBytes([1])),
            ("language_model.lm_head.weight", "F32", [1], floatBytes([2])),
        ]).write(to: dir + "/model.safetensors")
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("duplicates"))
        }
    }
}
