import VQAEval
import XCTest

final class ScoringTests: XCTestCase {
    func tenAnswers(_ matching: Int, _ answer: String = "2", other: String = "3") -> [String] {
        Array(repeating: answer, count: matching) + Array(repeating: other, count: 10 - matching)
    }

    func testSoftAccuracyAveragesTheTenLeaveOneOutSubsets() {
        // One match: 9 subsets see it once (1/3), the one without it sees none → 0.3, not 1/3.
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "2", references: tenAnswers(1)), 0.3, accuracy: 1e-12)
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "2", references: tenAnswers(2)), 0.6, accuracy: 1e-12)
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "2", references: tenAnswers(3)), 0.9, accuracy: 1e-12)
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "2", references: tenAnswers(4)), 1.0, accuracy: 1e-12)
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "2", references: tenAnswers(10)), 1.0, accuracy: 1e-12)
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "5", references: tenAnswers(4)), 0)
    }

    func testSoftAccuracyNormalizesPredictionAndReferences() {
        // "Two." and "two" both normalize to "2"; "the 2" too.
        let refs = ["two", "2", "the 2", "3", "3", "3", "3", "3", "3", "3"]
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "Two.", references: refs), 0.9, accuracy: 1e-12)
    }

    func testASingleReferenceIsExactMatchAfterNormalization() {
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "The Red one.", references: ["red 1"]), 1)
        XCTAssertEqual(VQAScoring.softAccuracy(prediction: "blue", references: ["red"]), 0)
        XCTAssertTrue(VQAScoring.exactMatch(prediction: "Yes.", reference: Reference(answers: ["yes"])))
    }

    func testExactMatchUsesTheMostFrequentReference() {
        let r = Reference(answers: ["red", "red", "red", "blue", "blue", "green", "red", "red", "blue", "red"])
        XCTAssertTrue(VQAScoring.exactMatch(prediction: "Red", reference: r))
        XCTAssertFalse(VQAScoring.exactMatch(prediction: "blue", reference: r))
        let tied = Reference(answers: ["cat", "dog"])
        XCTAssertTrue(VQAScoring.exactMatch(prediction: "dog", reference: tied))
        XCTAssertNil(tied.yesNoLabel)
    }

    func testPOPEReadsTheFirstSentence() {
        XCTAssertTrue(POPE.saysYes("Yes, there is a dog in the image."))
        XCTAssertFalse(POPE.saysYes("No, there is no dog."))
        XCTAssertFalse(POPE.saysYes("There is not a dog."))
        XCTAssertFalse(POPE.saysYes("no"))
        XCTAssertTrue(POPE.saysYes("There is a dog. No cat."))      // only the first sentence counts
        XCTAssertTrue(POPE.saysYes("NO"))                           // only "No", "no" and "not"
        XCTAssertFalse(POPE.saysYes("No, it is red"))               // the comma is removed before splitting
        XCTAssertTrue(POPE.saysYes("Nothing"))
    }

    func testPOPEMetricsOnAHandComputedCase() {
        // labels:      y y y y n n n n n n
        // predictions: y y y n y n n n n y
        // TP 3, FN 1, FP 2, TN 4.
        let labels = [true, true, true, true, false, false, false, false, false, false]
        let predicted = [true, true, true, false, true, false, false, false, false, true]
        var c = YesNoCounts()
        for (p, l) in zip(predicted, labels) { c.add(predictedYes: p, labelYes: l) }
        XCTAssertEqual(c, YesNoCounts(tp: 3, fp: 2, tn: 4, fn: 1))
        XCTAssertEqual(c.accuracy, 0.7, accuracy: 1e-12)
        XCTAssertEqual(c.precision, 0.6, accuracy: 1e-12)
        XCTAssertEqual(c.recall, 0.75, accuracy: 1e-12)
        XCTAssertEqual(c.f1, 2 * 0.6 * 0.75 / 1.35, accuracy: 1e-12)
        XCTAssertEqual(c.yesRatio, 0.5, accuracy: 1e-12)
        XCTAssertEqual(YesNoCounts().f1, 0)
    }

    func testAccumulatorPerCategoryAndOverall() {
        var s = ScoreAccumulator()
        s.add(category: "random", prediction: "Yes", reference: Reference(answers: ["yes"]))
        s.add(category: "random", prediction: "No.", reference: Reference(answers: ["yes"]))
        s.add(category: "adversarial", prediction: "No", reference: Reference(answers: ["no"]))
        s.add(category: nil, prediction: "two", reference: Reference(answers: tenAnswers(2)))
        XCTAssertEqual(s.categories.map(\.name), ["-", "adversarial", "random"])
        XCTAssertEqual(s.overall.count, 4)
        XCTAssertEqual(s.overall.exactMatches, 2)
        XCTAssertEqual(s.overall.vqaAccuracy, (1 + 0 + 1 + 0.6) / 4, accuracy: 1e-12)
        XCTAssertEqual(s.overall.yesNo, YesNoCounts(tp: 1, fp: 0, tn: 1, fn: 1))
        let random = s.categories[2]
        XCTAssertEqual(random.exact, 0.5)
        XCTAssertEqual(random.yesNo.f1, 2 * 1 * 0.5 / 1.5, accuracy: 1e-12)

        let table = s.table().split(separator: "\n").map(String.init)
        XCTAssertEqual(table[0], "category     n   exact  vqa-acc  pope-f1")
        XCTAssertEqual(table[1], "-            1    0.00    60.00        -")
        XCTAssertEqual(table[2], "adversarial  1  100.00   100.00     0.00")
        XCTAssertEqual(table[3], "random       2   50.00    50.00    66.67")
        XCTAssertEqual(table[4], "overall      4   50.00    65.00    66.67")
        XCTAssertTrue(table.contains { $0.hasPrefix("yes/no") && $0.contains("yes-ratio") }, table.joined(separator: "\n"))
    }

    func testAnnotationFormats() throws {
        let text = """
        {"question_id": 1, "answers": ["two", "2", "3"]}
        {"question_id": "q2", "answer": "Red"}
        {"question_id": 3, "label": "no", "image": "x.jpg"}
        {"question_id": 4, "answers": [{"answer": "yes", "answer_confidence": "yes"}, {"answer": "no"}, {"answer": "yes"}]}

        """
        let a = try Annotations(path: "key.jsonl", contents: Array(text.utf8))
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(a.reference(for: .int(1))?.answers, ["two", "2", "3"])
        XCTAssertEqual(a.reference(for: .string("q2"))?.normalized, ["red"])
        XCTAssertEqual(a.reference(for: .int(3))?.yesNoLabel, false)
        XCTAssertEqual(a.reference(for: .int(4))?.yesNoLabel, true)
        // The id's spelling may differ between files.
        XCTAssertNotNil(a.reference(for: .string("1")))

        let array = try Annotations(path: "key.json", contents: Array(#"[{"question_id": 7, "answer": "yes"}]"#.utf8))
        XCTAssertEqual(array.reference(for: .int(7))?.answers, ["yes"])

        XCTAssertThrowsError(try Annotations(path: "bad.jsonl", contents: Array("{\"question_id\": 1, \"answer\": \"a\"}\n{\"question_id\": 2}\n".utf8))) {
            XCTAssertEqual("\($0)", "bad.jsonl:2: no \"answers\", \"answer\" or \"label\"")
        }
        XCTAssertThrowsError(try Annotations(path: "dup.jsonl", contents: Array("{\"question_id\": 1, \"answer\": \"a\"}\n{\"question_id\": 1, \"answer\": \"b\"}\n".utf8))) {
            XCTAssertEqual("\($0)", "dup.jsonl:2: question_id 1 repeats")
        }
    }

    func testFormatFixed() {
        XCTAssertEqual(formatFixed(66.666666, decimals: 2), "66.67")
        XCTAssertEqual(formatFixed(0, decimals: 2), "0.00")
        XCTAssertEqual(formatFixed(100, decimals: 1), "100.0")
        XCTAssertEqual(formatFixed(-0.004, decimals: 2), "0.00")
        XCTAssertEqual(formatFixed(-1.5, decimals: 0), "-2")
    }

    func testAnAnswerKeyCanBeOneObjectKeyedByQuestionID() throws {
        let key = try Annotations(path: "key.json", contents: Array(#"{"7": ["Red", "red"], "q8": "two", "9": [{"answer": "yes"}]}"#.utf8))
        XCTAssertEqual(key.count, 3)
        XCTAssertEqual(key.reference(for: .int(7))?.answers, ["Red", "red"])
        XCTAssertEqual(key.reference(for: .string("q8"))?.answers, ["two"])
        XCTAssertEqual(key.reference(for: .int(9))?.answers, ["yes"])
        // A JSON-lines key whose first line is an object with question_id is not read as a map.
        let lines = try Annotations(path: "key.jsonl", contents: Array("{\"question_id\": 1, \"answer\": \"a\"}\n".utf8))
        XCTAssertEqual(lines.reference(for: .int(1))?.answers, ["a"])
        XCTAssertThrowsError(try Annotations(path: "bad.json", contents: Array(#"{"7": 3}"#.utf8)))
    }
}
