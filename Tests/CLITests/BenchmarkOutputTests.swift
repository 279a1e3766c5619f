import Foundation
import XCTest
import ZIPFoundation

/// What benchmark runs and scoring write (summaries, upload files) and what they refuse before
/// anything is asked: outputs they could not write, flags that do not apply, answers of another
/// split, an answer key given as answers.
final class BenchmarkOutputTests: XCTestCase {
    let root = CLI.referenceFixtures + "/eval"
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "llava-outputs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func json(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// A copy of a fixture benchmark folder made of links to its files, without `leaving`.
    func linkedFolder(_ name: String, leaving: Set<String>, as copy: String? = nil) throws -> String {
        let folder = dir + "/" + (copy ?? name)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for item in try FileManager.default.contentsOfDirectory(atPath: root + "/" + name) where !leaving.contains(item) {
            try FileManager.default.createSymbolicLink(atPath: folder + "/" + item, withDestinationPath: root + "/" + name + "/" + item)
        }
        return folder
    }

    func testASubmissionTheBenchmarkHasNoneIsRefusedBeforeAnyQuestion() throws {
        let answers = dir + "/pope.jsonl"
        let r = try CLI.run(["eval", "run", "--benchmark", "pope", "--data", root + "/pope", "--answers", answers,
                             "--submission", dir + "/upload.json"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines, ["llava: error: --submission: pope has no submission file (vqav2 test-dev, vizwiz, gqa, seed and mmbench have one)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: answers))
    }

    func testAnOutputInAMissingFolderIsRefusedBeforeAnyQuestion() throws {
        let answers = dir + "/vizwiz.jsonl"
        for (flag, path) in [("--submission", dir + "/nope/upload.json"), ("--summary", dir + "/nope/summary.json")] {
            let r = try CLI.run(["eval", "run", "--benchmark", "vizwiz", "--data", root + "/vizwiz", "--answers", answers, flag, path])
            XCTAssertEqual(r.status, 1, flag)
            XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("llava: error: \(path): cannot write"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: answers))
        }
    }

    func testMMBenchWritesTheUploadWorkbookLLaVAsConverterWrites() throws {
        let upload = dir + "/llava-v1.5-7b.xlsx"
        let r = try CLI.run(["eval", "score", "--benchmark", "mmbench", "--data", root + "/mmbench", "--answers",
                             root + "/mmbench/answers/mmbench_dev_20230712/llava-v1.5-7b.jsonl", "--summary", dir + "/s.json",
                             "--submission", upload])
        XCTAssertEqual(r.status, 0, r.stderr)
        let archive = try Archive(url: URL(fileURLWithPath: upload), accessMode: .read)
        for part in ["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"] {
            XCTAssertNotNil(archive[part], part)
        }
        var sheet = Data()
        _ = try archive.extract(archive["xl/worksheets/sheet1.xml"]!) { sheet.append($0) }
        let xml = String(decoding: sheet, as: UTF8.self)
        let header = ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"].enumerated().map { k, name in
            "<c r=\"\(["A", "B", "C", "D", "E", "F", "G", "H", "I"][k])1\" t=\"inlineStr\"><is><t xml:space=\"preserve\">\(name)</t></is></c>"
        }.joined()
        XCTAssertTrue(xml.contains("<row r=\"1\">" + header + "</row>"), String(xml.prefix(2000)))
        // One row per question of the TSV, in its order, after the header.
        let tsv = try String(contentsOfFile: root + "/mmbench/mmbench_dev_20230712.tsv", encoding: .utf8)
        let rows = tsv.split(separator: "\n").dropFirst()
        let firstIndex = rows.first.map { String($0.prefix { $0 != "\t" }) } ?? "?"
        XCTAssertTrue(xml.contains("<row r=\"2\"><c r=\"A2\"><v>\(firstIndex)</v></c>"), String(xml.prefix(2000)))
        XCTAssertEqual(xml.components(separatedBy: "<row ").count - 1, rows.count + 1)
        XCTAssertFalse(xml.contains("hint") || xml.contains("/9j/"), "dropped columns are not uploaded")
    }

    func testMMBenchRefusesAnUploadThatIsNotAWorkbook() throws {
        let r = try CLI.run(["eval", "score", "--benchmark", "mmbench", "--data", root + "/mmbench", "--answers",
                             root + "/mmbench/answers/mmbench_dev_20230712/llava-v1.5-7b.jsonl", "--summary", dir + "/s.json",
                             "--submission", dir + "/upload.json"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("name it .xlsx"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/s.json"))
    }

    func testQuestionsAndImageFolderAreRefusedWithABenchmark() throws {
        for (flag, value) in [("--questions", "Prompts/shapes/questions.jsonl"), ("--image-folder", "Prompts/shapes/images")] {
            let r = try CLI.run(["eval", "run", "--benchmark", "pope", "--data", root + "/pope", "--answers", dir + "/a.jsonl", flag, value])
            XCTAssertEqual(r.status, 1, flag)
            XCTAssertEqual(r.stderrLines, ["llava: error: \(flag) does not apply to --benchmark runs: the benchmark folder has the \(flag == "--questions" ? "questions" : "images")"])
        }
    }

    func testVQAv2ValAnswersScoredAsTestDevNameTheirSplit() throws {
        let answers = root + "/vqav2/answers/llava_vqav2_mscoco_val2014/llava-v1.5-7b/merge.jsonl"
        let r = try CLI.run(["eval", "score", "--benchmark", "vqav2", "--data", root + "/vqav2", "--answers", answers,
                             "--summary", dir + "/s.json"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines, ["llava: error: \(answers): the answers are to VQAv2 val questions, none to test-dev ones: give --split val"])
        XCTAssertEqual(r.stdout, "")
        let val = try CLI.run(["eval", "score", "--benchmark", "vqav2", "--split", "val", "--data", root + "/vqav2",
                               "--answers", answers, "--summary", dir + "/s.json"])
        XCTAssertEqual(val.status, 0, val.stderr)
    }

    func testVQAv2ValQuestionsAreBuiltFromTheReleaseQuestionsWhenLLaVAsFileIsAbsent() throws {
        let folder = try linkedFolder("vqav2", leaving: ["llava_vqav2_mscoco_val2014.jsonl"])
        let answers = dir + "/val.jsonl"
        let r = try CLI.run(["eval", "run", "--quiet", "--benchmark", "vqav2", "--split", "val", "--data", folder,
                             "--answers", answers, "-n", "4"], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let asked = try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let official = try String(contentsOfFile: root + "/vqav2/llava_vqav2_mscoco_val2014.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(asked.map { $0["question_id"] as! Int }, official.map { $0["question_id"] as! Int })
        XCTAssertEqual(asked.map { $0["prompt"] as! String }, official.map { $0["text"] as! String })

        let bare = try linkedFolder("vqav2", leaving: ["llava_vqav2_mscoco_val2014.jsonl", "v2_OpenEnded_mscoco_val2014_questions.json"],
                                    as: "bare")
        let missing = try CLI.run(["eval", "run", "--benchmark", "vqav2", "--split", "val", "--data", bare, "--answers", dir + "/b.jsonl"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderrLines.count, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("v2_OpenEnded_mscoco_val2014_questions.json"), missing.stderr)
    }

    func testSEEDAnswersWithStringIDsAreScoredAndSubmitted() throws {
        let official = root + "/seed/answers/llava-v1.5-7b/merge.jsonl"
        let strings = dir + "/strings.jsonl"
        let lines = try String(contentsOfFile: official, encoding: .utf8).split(separator: "\n").map { line -> String in
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o["question_id"] = "\(o["question_id"]!)"
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: strings, atomically: true, encoding: .utf8)
        var results: [(headline: [String: Any], upload: [[String: Any]])] = []
        for (k, answers) in [official, strings].enumerated() {
            let r = try CLI.run(["eval", "score", "--benchmark", "seed", "--data", root + "/seed", "--answers", answers,
                                 "--summary", dir + "/s\(k).json", "--submission", dir + "/u\(k).jsonl"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let upload = try String(contentsOfFile: dir + "/u\(k).jsonl", encoding: .utf8).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
            results.append(((try json(dir + "/s\(k).json") as! [String: Any])["headline"] as! [String: Any], upload))
        }
        XCTAssertEqual(results[1].headline["image_accuracy"] as? Double, results[0].headline["image_accuracy"] as? Double)
        XCTAssertEqual(results[1].upload.map { $0["prediction"] as! String }, results[0].upload.map { $0["prediction"] as! String })
        XCTAssertTrue(results[1].upload.contains { !($0["prediction"] as! String).isEmpty })
    }

    func testCocoCaptionRunReadsKarpathysRowsAsTheyAre() throws {
        let folder = try linkedFolder("coco-caption", leaving: ["coco_karpathy_test.jsonl"])
        let answers = dir + "/captions.jsonl"
        let r = try CLI.run(["eval", "run", "--quiet", "--benchmark", "coco-caption", "--data", folder, "--answers", answers,
                             "-n", "4"], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: answers, encoding: .utf8).split(separator: "\n").count, 12)
    }

    func testAnAnswerKeyGivenAsAnswersIsNamedAndNothingIsWritten() throws {
        let key = dir + "/key/answers.jsonl"
        try FileManager.default.createDirectory(atPath: dir + "/key", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CLI.packageRoot.path + "/Prompts/shapes/answers.jsonl", toPath: key)
        let before = try Data(contentsOf: URL(fileURLWithPath: key))
        let score = try CLI.run(["eval", "score", "--answers", key, "--annotations", key])
        XCTAssertEqual(score.status, 1)
        XCTAssertEqual(score.stderrLines.count, 1, score.stderr)
        XCTAssertTrue(score.stderr.contains("\(key) is an answer key"), score.stderr)
        let merge = try CLI.run(["eval", "merge", "--answers", key, CLI.packageRoot.path + "/Prompts/shapes/answers.jsonl"])
        XCTAssertEqual(merge.status, 1)
        XCTAssertTrue(merge.stderr.contains("\(key) is an answer key"), merge.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/key"), ["answers.jsonl"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: key)), before)
    }

    func testASummaryIsNotWrittenIntoTheKeyFolderUnlessAsked() throws {
        let folder = dir + "/shapes"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CLI.packageRoot.path + "/Prompts/shapes/answers.jsonl", toPath: folder + "/key.jsonl")
        let answers = folder + "/answers.jsonl"
        try "{\"question_id\": 0, \"text\": \"red\"}\n{\"question_id\": 1, \"text\": \"square\"}\n"
            .write(toFile: answers, atomically: true, encoding: .utf8)
        let r = try CLI.run(["eval", "score", "--answers", answers, "--annotations", folder + "/key.jsonl"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("--summary"), r.stderr)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder)), ["key.jsonl", "answers.jsonl"])
        let asked = try CLI.run(["eval", "score", "--answers", answers, "--annotations", folder + "/key.jsonl",
                                 "--summary", folder + "/s.json"])
        XCTAssertEqual(asked.status, 0, asked.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/s.json"))
    }

    func testASweepOnVQAv2TestDevWritesTheUploadFileAndNoEmptyAccuracyColumn() throws {
        let out = dir + "/sweep"
        let r = try CLI.run(["eval", "sweep", "--quiet", "--benchmarks", "vqav2", "--data-root", root, "--split", "test-dev",
                             "--merge", "pitome", "--ratios", "1", "--out", out, "-n", "4"], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let upload = try json(out + "/cells/none/vqav2.submission.json") as! [[String: Any]]
        XCTAssertFalse(upload.isEmpty)
        let table = try String(contentsOfFile: out + "/table.md", encoding: .utf8)
        XCTAssertFalse(table.contains("val_accuracy"), table)
        XCTAssertFalse(try String(contentsOfFile: out + "/table.csv", encoding: .utf8).contains("val_accuracy"))
    }
}
