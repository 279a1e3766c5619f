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
        try expectRejected(cases)
    }

    /// Each config text is refused with one message naming config.json and containing its fragment.
    func expectRejected(_ cases: [(String, String)], file: StaticString = #filePath, line: UInt = #line) throws {
        for (text, fragment) in cases {
            try write("config.json", text)
            XCTAssertThrowsError(try LlavaConfiguration.load(path: dir + "/config.json"), file: file, line: line) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(dir + "/config.json: "), message, file: file, line: line)
                XCTAssertTrue(message.contains(fragment), "\(message) should contain \(fragment)", file: file, line: line)
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

    func testHugeSizesInConfigAreRefusedBeforeAllocating() throws {
        let cases: [(String, String)] = [
            ("{\"text_config\": {\"num_hidden_layers\": 1000000000000}}", "text_config.num_hidden_layers is 1000000000000, more than the limit of 1024"),
            ("{\"vision_config\": {\"num_hidden_layers\": 1000000000000}}", "vision_config.num_hidden_layers is 1000000000000, more than the limit of 1024"),
            ("{\"text_config\": {\"vocab_size\": 9223372036854775807}}", "text_config.vocab_size is 9223372036854775807, more than the limit"),
            ("{\"text_config\": {\"hidden_size\": 4611686018427387904, \"num_attention_heads\": 1}}", "text_config.hidden_size is 4611686018427387904"),
            ("{\"text_config\": {\"intermediate_size\": 100000000}}", "text_config.intermediate_size is 100000000"),
            ("{\"text_config\": {\"max_position_embeddings\": 1e15}}", "text_config.max_position_embeddings is 1000000000000000"),
            ("{\"text_config\": {\"head_dim\": 1e300}}", "head_dim should be an integer"),
            ("{\"vision_config\": {\"image_size\": 1400000, \"patch_size\": 14}}", "vision_config.image_size is 1400000, more than the limit of 4096"),
            ("{\"vision_config\": {\"intermediate_size\": 99999999999}}", "vision_config.intermediate_size is 99999999999"),
            ("{\"image_token_index\": 99999999999}", "image_token_index 99999999999 is larger than a token id can be"),
        ]
        try expectRejected(cases)
    }

    func testConfigFilesMustBeRegularAndSmall() throws {
        XCTAssertEqual(mkfifo(dir + "/config.json", 0o600), 0)
        XCTAssertThrowsError(try LlavaConfiguration.load(path: dir + "/config.json")) { error in
            XCTAssertEqual("\(error)", "\(dir!)/config.json: is a FIFO, not a regular file")
        }
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        try FileManager.default.createSymbolicLink(atPath: dir + "/config.json", withDestinationPath: "/dev/zero")
        XCTAssertThrowsError(try LlavaConfiguration.load(path: dir + "/config.json")) { error in
            XCTAssertEqual("\(error)", "\(dir!)/config.json: is a device, not a regular file")
        }
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        // A sparse file over the 64 MiB cap: refused from its size, never read.
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/config.json", contents: nil))
        XCTAssertEqual(truncate(dir + "/config.json", 65 << 20), 0)
        XCTAssertThrowsError(try LlavaConfiguration.load(path: dir + "/config.json")) { error in
            XCTAssertTrue("\(error)".hasSuffix("config.json: is 68157440 bytes, more than the limit of 67108864 bytes for this kind of file"), "\(error)")
        }
        try write("config.json", minimalConfig)
        try FileManager.default.createDirectory(atPath: dir + "/model.safetensors.index.json", withIntermediateDirectories: false)
        XCTAssertThrowsError(try CheckpointFolder(directory: dir)) { error in
            XCTAssertEqual("\(error)", "\(dir!)/model.safetensors.index.json: is a directory, not a regular file")
        }
    }

    func testLayerCountOfTheWeights() throws {
        try write("config.json", minimalConfig)
        try SafeTensorsBytes.valid([
            ("model.language_model.layers.0.a", "F32", [1], floatBytes([1])),
            ("model.language_model.layers.1.a", "F32", [1], floatBytes([1])),
            ("model.language_model.layers.3.a", "F32", [1], floatBytes([1])),
            ("model.language_model.layers.x.a", "F32", [1], floatBytes([1])),
        ]).write(to: dir + "/model.safetensors")
        let ckpt = try CheckpointFolder(directory: dir)
        XCTAssertEqual(ckpt.layerCount(prefix: "language_model.model.layers."), 2)
        XCTAssertEqual(ckpt.layerCount(prefix: "vision_tower.vision_model.encoder.layers."), 0)
    }
}
