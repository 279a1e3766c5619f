import FixtureLocations
import VQAEval
import XCTest

/// Every number the official scripts computed on the reference benchmark fixtures
/// (`eval/<benchmark>/expected.json`), reproduced from the fixture's files and answer file.
final class BenchmarkFixtureTests: XCTestCase {
    static let root = FixtureLocations.reference + "/eval"

    func folder(_ name: String) -> String { Self.root + "/" + name }

    func expected(_ name: String) throws -> JSONValue {
        try JSONValue.parse(FileBytes.contents(folder(name) + "/expected.json"))
    }

    func score(_ benchmark: BenchmarkName, folder name: String, answers: String,
               options: BenchmarkSuiteOptions = BenchmarkSuiteOptions()) throws -> BenchmarkScore {
        let adapter = benchmark.adapter(folder: folder(name), options: options)
        return try adapter.score(AnswerSet(path: folder(name) + "/" + answers))
    }

    /// Same keys at every level, numbers within 1e-9, strings equal code point for code point.
    func assertMatches(_ actual: JSONValue?, _ expected: JSONValue?, _ path: String, ignoring: Set<String> = [],
                       file: StaticString = #filePath, line: UInt = #line) {
        switch (actual, expected) {
        case (.object(let a)?, .object(let e)?):
            let ak = Set(a.keys), ek = Set(e.keys).subtracting(ignoring)
            XCTAssertEqual(ak, ek, "keys of \(path)", file: file, line: line)
            for k in ek.intersection(ak) { assertMatches(a[k], e[k], path + "." + k, file: file, line: line) }
        case (.array(let a)?, .array(let e)?):
            XCTAssertEqual(a.count, e.count, "length of \(path)", file: file, line: line)
            for (k, (x, y)) in zip(a, e).enumerated() { assertMatches(x, y, path + "[\(k)]", file: file, line: line) }
        case (.string(let a)?, .string(let e)?):
            XCTAssertTrue(a.pyEquals(e), "\(path): \(a.debugDescription) ≠ \(e.debugDescription)", file: file, line: line)
        default:
            if let a = actual?.numberValue, let e = expected?.numberValue {
                XCTAssertEqual(a, e, accuracy: 1e-9, path, file: file, line: line)
            } else {
                XCTFail("\(path): \(actual?.description ?? "absent") vs \(expected?.description ?? "absent")", file: file, line: line)
            }
        }
    }

    func assertReproduces(_ score: BenchmarkScore, _ expected: JSONValue, ignoring: Set<String> = [],
                          file: StaticString = #filePath, line: UInt = #line) {
        assertMatches(.object(score.headline), expected["headline"], "headline", ignoring: ignoring, file: file, line: line)
        assertMatches(.object(score.metrics), expected["metrics"], "metrics", ignoring: ignoring, file: file, line: line)
        // The summary carries exactly those objects.
        let summary = score.summary
        XCTAssertEqual(summary["benchmark"]?.stringValue, score.benchmark.rawValue, file: file, line: line)
        assertMatches(summary["headline"], expected["headline"], "summary.headline", ignoring: ignoring, file: file, line: line)
        assertMatches(summary["metrics"], expected["metrics"], "summary.metrics", ignoring: ignoring, file: file, line: line)
    }

    func testGQAFollowsTheConverterAndExactMatch() throws {
        let s = try score(.gqa, folder: "gqa", answers: "answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl")
        assertReproduces(s, try expected("gqa"))
        let predictions = try JSONValue.parse(FileBytes.contents(folder("gqa") + "/expected/data/testdev_balanced_predictions.json"))
        assertMatches(s.submission, predictions, "predictions")
        XCTAssertEqual(s.unanswered, [])
    }

    func testPOPEPairsLabelsByOrder() throws {
        let s = try score(.pope, folder: "pope", answers: "answers/llava-v1.5-7b.jsonl")
        assertReproduces(s, try expected("pope"))
    }

    func testMMEReadsTheFirstFourCharacters() throws {
        let s = try score(.mme, folder: "mme", answers: "answers/llava-v1.5-7b.jsonl")
        assertReproduces(s, try expected("mme"))
    }

    func testScienceQAPatternAndImageSubset() throws {
        let s = try score(.scienceqa, folder: "scienceqa", answers: "answers/llava-v1.5-7b.jsonl")
        let e = try expected("scienceqa")
        assertReproduces(s, e)
        // The problems without an answer line are the ones the official scorer read as "FAILED" with
        // the stand-in prompt "Unknown" (not counted in IMG).
        let answers = try AnswerSet(path: folder("scienceqa") + "/answers/llava-v1.5-7b.jsonl")
        let missing = (e["per_item"]?.arrayValue ?? []).compactMap { $0["question_id"]?.stringValue }
            .filter { answers.byID[.string($0)] == nil }
        XCTAssertFalse(missing.isEmpty)
        XCTAssertEqual(s.unanswered, missing.map { .string($0) })
    }

    func testTextVQAWithOCRPrompt() throws {
        let s = try score(.textvqa, folder: "textvqa", answers: "answers/llava-v1.5-7b.jsonl")
        assertReproduces(s, try expected("textvqa"))
    }

    func testVQAv2ValAccuracyOnSubmittedAndRawAnswers() throws {
        let s = try score(.vqav2, folder: "vqav2", answers: "answers/llava_vqav2_mscoco_val2014/llava-v1.5-7b/merge.jsonl",
                          options: BenchmarkSuiteOptions(vqav2Split: .val))
        assertReproduces(s, try expected("vqav2"))
    }

    func testVQAv2TestDevSubmissionEqualsTheConverters() throws {
        let s = try score(.vqav2, folder: "vqav2", answers: "answers/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b/merge.jsonl")
        let upload = try JSONValue.parse(FileBytes.contents(
            folder("vqav2") + "/expected/answers_upload/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b.json"))
        assertMatches(s.submission, upload, "submission")
        let asked = try QuestionFile(path: folder("vqav2") + "/llava_vqav2_mscoco_test-dev2015.jsonl").questions
        let answered = try AnswerSet(path: folder("vqav2") + "/answers/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b/merge.jsonl")
        XCTAssertEqual(s.unanswered, asked.map(\.id).filter { answered.byID[$0] == nil })
        XCTAssertEqual(s.unanswered.count, 1)
    }

    func testVizWizSubmissionEqualsTheConverters() throws {
        let s = try score(.vizwiz, folder: "vizwiz", answers: "answers/llava-v1.5-7b.jsonl")
        let upload = try JSONValue.parse(FileBytes.contents(folder("vizwiz") + "/expected/answers_upload/llava-v1.5-7b.json"))
        assertMatches(s.submission, upload, "submission")
        XCTAssertEqual(s.unanswered, [])
    }

    func testMMBenchCircularWithBothReaders() throws {
        let s = try score(.mmbench, folder: "mmbench", answers: "answers/mmbench_dev_20230712/llava-v1.5-7b.jsonl")
        assertReproduces(s, try expected("mmbench"))
    }

    func testSEEDExactLetter() throws {
        let s = try score(.seed, folder: "seed", answers: "answers/llava-v1.5-7b/merge.jsonl")
        assertReproduces(s, try expected("seed"))
        let upload = try FileBytes.contents(folder("seed") + "/expected/answers_upload/llava-v1.5-7b.jsonl")
        let rows = try JSONLines.lines(upload).map { try JSONValue.parse(Array($0.bytes)) }
        assertMatches(s.submission, .array(rows), "upload")
    }

    func testCaptionMetricsEqualPycocoevalcap() throws {
        let s = try score(.cocoCaption, folder: "coco-caption", answers: "answers/llava-v1.5-7b.jsonl")
        // METEOR needs Java's METEOR 1.5 and is not computed.
        assertReproduces(s, try expected("coco-caption"), ignoring: ["METEOR"])
    }

    func testCaptionTokenizationAndPerImageScores() throws {
        let e = try expected("coco-caption")
        let answers = try AnswerSet(path: folder("coco-caption") + "/answers/llava-v1.5-7b.jsonl")
        for item in e["per_item"]?.arrayValue ?? [] {
            let file = item["filename"]!.stringValue!
            let text = answers.byID[.string(file)]!.text
            XCTAssertTrue(CaptionMetrics.tokenize(text).pyEquals(item["tokenized_prediction"]!.stringValue!), file)
            let refs = item["tokenized_references"]!.arrayValue!.map { $0.stringValue! }
            let rouge = CaptionMetrics.rougeL(hypothesis: CaptionMetrics.tokenize(text), references: refs)
            XCTAssertEqual(rouge, item["ROUGE_L"]!.numberValue!, accuracy: 1e-9, file)
        }
        let references = try CaptionBenchmark.references(annotations: folder("coco-caption") + "/dataset_coco.json")
        let s = try CaptionBenchmark.score(answers, references: references)
        assertMatches(.object(s.metrics), e["metrics"], "annotations", ignoring: ["METEOR"])
    }
}

extension BenchmarkFixtureTests {
    /// The questions each adapter asks are recorded with the prompt LLaVA's scripts wrote into the
    /// fixture answer files (ScienceQA's and MMBench's are built from the release files).
    func testPromptsAreLLaVAs() throws {
        let cases: [(BenchmarkName, String, String)] = [
            (.gqa, "gqa", "answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl"),
            (.pope, "pope", "answers/llava-v1.5-7b.jsonl"), (.mme, "mme", "answers/llava-v1.5-7b.jsonl"),
            (.scienceqa, "scienceqa", "answers/llava-v1.5-7b.jsonl"), (.textvqa, "textvqa", "answers/llava-v1.5-7b.jsonl"),
            (.vqav2, "vqav2", "answers/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b/merge.jsonl"),
            (.vizwiz, "vizwiz", "answers/llava-v1.5-7b.jsonl"),
            (.mmbench, "mmbench", "answers/mmbench_dev_20230712/llava-v1.5-7b.jsonl"),
            (.seed, "seed", "answers/llava-v1.5-7b/merge.jsonl"), (.cocoCaption, "coco-caption", "answers/llava-v1.5-7b.jsonl"),
        ]
        for (name, dir, file) in cases {
            let questions = try name.adapter(folder: folder(dir)).questions()
            let answers = try AnswerSet(path: folder(dir) + "/" + file)
            var asked = Set<PyText>()
            for q in questions { asked.insert(BenchmarkAnswerFile.key(q.id, prompt: q.recordedPrompt)) }
            for a in answers.answers {
                XCTAssertTrue(asked.contains(BenchmarkAnswerFile.key(a.id, prompt: a.prompt ?? "")),
                              "\(name.rawValue): \(a.id) \(a.prompt ?? "")")
            }
            XCTAssertGreaterThanOrEqual(questions.count, answers.answers.count, name.rawValue)
        }
    }

    func testMMBenchImagesDecodeFromTheTable() throws {
        let questions = try BenchmarkName.mmbench.adapter(folder: folder("mmbench")).questions()
        XCTAssertEqual(questions.count, try expected("mmbench")["upload_xlsx"]?["rows"]?.arrayValue?.count)
        for q in questions {
            guard let bytes = q.image?.base64Bytes else { return XCTFail("\(q.id): no image bytes") }
            XCTAssertEqual(Array(bytes.prefix(3)), [0xFF, 0xD8, 0xFF], "\(q.id): not a JPEG")
            XCTAssertTrue(q.text.hasSuffix("\nAnswer with the option's letter from the given choices directly."))
        }
    }
}

extension BenchmarkFixtureTests {
    /// The upload files are byte for byte what the official converters wrote.
    func testSubmissionFilesAreByteEqual() throws {
        let cases: [(BenchmarkName, String, String, String)] = [
            (.vqav2, "vqav2", "answers/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b/merge.jsonl",
             "expected/answers_upload/llava_vqav2_mscoco_test-dev2015/llava-v1.5-7b.json"),
            (.vizwiz, "vizwiz", "answers/llava-v1.5-7b.jsonl", "expected/answers_upload/llava-v1.5-7b.json"),
            (.gqa, "gqa", "answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl", "expected/data/testdev_balanced_predictions.json"),
            (.seed, "seed", "answers/llava-v1.5-7b/merge.jsonl", "expected/answers_upload/llava-v1.5-7b.jsonl"),
        ]
        for (name, dir, answers, expected) in cases {
            let s = try score(name, folder: dir, answers: answers)
            let mine = Array(s.submissionText(try XCTUnwrap(s.submission)).utf8)
            XCTAssertEqual(mine, try FileBytes.contents(folder(dir) + "/" + expected), name.rawValue)
        }
    }

    func testPythonJSONEscapesLikeJSONDumps() {
        XCTAssertEqual(PythonJSON.dumps(.object(["a": .string("é\u{1F600}\n\"x"), "b": .array([.int(1), .double(0.5), .double(1)])])),
                       #"{"a": "\u00e9\ud83d\ude00\n\"x", "b": [1, 0.5, 1.0]}"#)
        XCTAssertEqual(PythonJSON.dumps(.double(1e-05)), "1e-05")
        XCTAssertEqual(PythonJSON.dumps(.double(1e16)), "1e+16")
    }
}

extension BenchmarkFixtureTests {
    /// Per-answer readings recorded from the official functions.
    func testPerItemReadingsMatchTheOfficialFunctions() throws {
        for item in try expected("scienceqa")["per_item"]?.arrayValue ?? [] {
            let text = item["pred"]!.stringValue!
            XCTAssertEqual(ScienceQABenchmark.parse(text), item["parsed_ans"]!.stringValue!, text)
        }
        for item in try expected("mme")["per_item"]?.arrayValue ?? [] {
            let text = item["model_text"]!.stringValue!
            XCTAssertEqual(MMEBenchmark.parse((text + "\n").pythonLowercased()), item["parsed"]!.stringValue!, text)
        }
        for item in try expected("pope")["per_item"]?.arrayValue ?? [] {
            let text = item["model_text"]!.stringValue!
            XCTAssertEqual(POPEBenchmark.saysYes(text) ? "yes" : "no", item["parsed"]!.stringValue!, text)
        }
        let rows = try MMBenchBenchmark(folder: folder("mmbench")).rows()
        for item in try expected("mmbench")["per_item"]?.arrayValue ?? [] {
            let index = item["index"]!.intValue!
            let row = try XCTUnwrap(rows.first { $0.index == index })
            let text = item["model_text"]!.stringValue!
            XCTAssertEqual(ChoiceReader.vlmEvalKit(text, row.choices), item["vlmevalkit_prefetch"]?.stringValue, text)
        }
        for item in try expected("textvqa")["per_item"]?.arrayValue ?? [] {
            let text = item["model_text"]!.stringValue!
            XCTAssertEqual(AnswerNormalizer.normalize(text), item["processed"]!.stringValue!, text)
        }
    }
}
