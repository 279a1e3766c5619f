import FixtureLocations
import VQAEval
import XCTest

/// The official scripts' string semantics and answer readers, case by case.
final class OfficialRulesTests: XCTestCase {
    func testPythonLowerUsesFinalSigmaAndFullMappings() {
        XCTAssertTrue("ΟΔΟΣ".pythonLowercased().pyEquals("οδος".dropLast() + "ς"))
        XCTAssertTrue("ΣΑ".pythonLowercased().pyEquals("σα"))
        XCTAssertTrue("Σ".pythonLowercased().pyEquals("σ"))
        XCTAssertEqual(Array("İ".pythonLowercased().unicodeScalars).map(\.value), [0x69, 0x307])
        XCTAssertTrue("ÀB".pythonLowercased().pyEquals("àb"))
    }

    func testCodePointComparisonSeparatesCanonicallyEquivalentText() {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        XCTAssertEqual(composed, decomposed) // Swift's ==
        XCTAssertFalse(composed.pyEquals(decomposed))
        XCTAssertNotEqual(PyText(composed), PyText(decomposed))
        XCTAssertEqual(Set([PyText(composed), PyText(decomposed)]).count, 2)
        // GQA: a decomposed prediction is wrong against the composed gold answer, as in Python.
        XCTAssertFalse(GQABenchmark.prediction(decomposed + ".").pyEquals(composed))
        XCTAssertTrue(GQABenchmark.prediction("Caf\u{C9}..").pyEquals(composed))
    }

    func testPythonStripUsesPythonsWhitespace() {
        XCTAssertTrue("\u{1C}\u{85} yes\u{3000}".pythonStripped().pyEquals("yes"))
        XCTAssertTrue("\u{200B}yes".pythonStripped().pyEquals("\u{200B}yes")) // zero-width space is not whitespace
        XCTAssertEqual("a\u{2028}b  c".pythonSplit(), ["a", "b", "c"])
        XCTAssertEqual("a  b".pythonSplit(" "), ["a", "", "b"])
    }

    func testPythonRoundHalvesToEvenOnTheBinaryValue() {
        XCTAssertEqual(pythonRound(0.125, 2), 0.12)
        XCTAssertEqual(pythonRound(0.375, 2), 0.38)
        XCTAssertEqual(pythonRound(2.675, 2), 2.67) // 2.675 is stored just below
        XCTAssertEqual(pythonRound(53.333333333333336, 2), 53.33)
    }

    func testGQAOnlyStripsPeriodsAndLowercases() {
        XCTAssertEqual(GQABenchmark.prediction("Brown..."), "brown")
        XCTAssertEqual(GQABenchmark.prediction("Right ."), "right ")
        XCTAssertEqual(GQABenchmark.prediction("The Cat"), "the cat")
        XCTAssertEqual(GQABenchmark.prediction("yes\n"), "yes\n")
    }

    func testPOPEReadsNoOnlyFromExactWords() {
        for yes in ["Yes", "NO", "Not really", "None", "", "No\nThere isn't one", "isn't", "I cannot see one"] {
            XCTAssertTrue(POPEBenchmark.saysYes(yes), yes.debugDescription)
        }
        for no in ["No", "no.", "There is a dog, not a cat.", "No, there is not.", "Yes, no"] {
            XCTAssertFalse(POPEBenchmark.saysYes(no), no.debugDescription)
        }
    }

    func testMMEReadsTheFirstFourCharacters() {
        XCTAssertEqual(MMEBenchmark.parse("yes"), "yes")
        XCTAssertEqual(MMEBenchmark.parse("yesterday\n"), "yes")
        XCTAssertEqual(MMEBenchmark.parse("nope\n"), "no")
        XCTAssertEqual(MMEBenchmark.parse("not sure\n"), "no")
        XCTAssertEqual(MMEBenchmark.parse("i think yes\n"), "other")
        XCTAssertEqual(MMEBenchmark.parse("y\n"), "other")
        XCTAssertEqual(MMEBenchmark.parse("\n"), "other")
    }

    func testScienceQAPattern() {
        XCTAssertEqual(ScienceQABenchmark.parse("B"), "B")
        XCTAssertEqual(ScienceQABenchmark.parse("B. The answer is A."), "B")
        XCTAssertEqual(ScienceQABenchmark.parse("The answer is C."), "C")
        XCTAssertEqual(ScienceQABenchmark.parse("The answer is B"), "FAILED") // the pattern's "." needs a character
        XCTAssertEqual(ScienceQABenchmark.parse("The answer is B\n"), "FAILED")
        XCTAssertEqual(ScienceQABenchmark.parse("The answer is A. The answer is B."), "FAILED")
        for failing in ["(C)", "B) false", "c", "Answer: A", "A.B", "The answer is (C)."] {
            XCTAssertEqual(ScienceQABenchmark.parse(failing), "FAILED", failing)
        }
    }

    func testTextVQAReadsTheQuestionBackFromThePrompt() {
        XCTAssertEqual(TextVQABenchmark.question(fromPrompt: "What Is It?\nReference OCR token: A, B\nAnswer the question using a single word or phrase."), "what is it?")
        XCTAssertEqual(TextVQABenchmark.question(fromPrompt: "Reference OCR token: A\nWhat?\nAnswer."), "what?")
        XCTAssertEqual(TextVQABenchmark.question(fromPrompt: "Why?\nAnswer the question using a single word or phrase."), "why?")
        XCTAssertEqual(TextVQABenchmark.question(fromPrompt: "OCR tokens: x Question: Where is it? Short answer:"), "where is it?")
        XCTAssertNil(TextVQABenchmark.question(fromPrompt: "one line"))
    }

    func testTheTwoMMBenchReadersDisagreeWhereTheOfficialOnesDo() {
        let choices: ChoiceReader.Choices = [("A", "the street is empty"), ("B", "the street is busy"), ("C", "the street is flooded")]
        XCTAssertEqual(ChoiceReader.vlmEvalKit("B is wrong, the answer is C", choices), "C")
        XCTAssertNil(ChoiceReader.lmmsPrefetch("B is wrong, the answer is C", choices))
        XCTAssertEqual(ChoiceReader.lmmsExtract("B is wrong, the answer is C", letters: ["A", "B", "C"]), "B")
        XCTAssertEqual(ChoiceReader.vlmEvalKit("(A)", choices), "A")
        XCTAssertEqual(ChoiceReader.vlmEvalKit("The street is busy.", choices), "B")
        XCTAssertNil(ChoiceReader.vlmEvalKit("b", choices))
        XCTAssertNil(ChoiceReader.vlmEvalKit("", choices))
        XCTAssertEqual(ChoiceReader.vlmEvalKit("Cannot determine the answer", choices), "Z")
        XCTAssertEqual(ChoiceReader.lmmsExtract("(B) or (A)", letters: ["A", "B", "C"]), "A")
        XCTAssertEqual(ChoiceReader.lmmsExtract("I choose C", letters: ["A", "B", "C"]), "C")
    }

    func testCaptionTokenizer() {
        XCTAssertEqual(CaptionMetrics.tokenize("A BOY WITH AN UMBRELLA TOUCHING A COW!!"), "a boy with an umbrella touching a cow !!")
        XCTAssertEqual(CaptionMetrics.tokenize("A woman with a chef's knife. "), "a woman with a chef 's knife")
        XCTAssertEqual(CaptionMetrics.tokenize("cloud-wreathed mountains (far away)"), "cloud-wreathed mountains -lrb- far away -rrb-")
        XCTAssertEqual(CaptionMetrics.tokenize("It doesn't fit, 1,000 times..."), "it does n't fit 1,000 times")
        XCTAssertEqual(CaptionMetrics.tokenize(""), "")
    }

    /// An answer line recording an error is unanswered and wrong, never read as yes or no.
    func testFailedAnswersCountAsUnansweredAndWrong() throws {
        let pope = FixtureLocations.reference + "/eval/pope"
        let original = try FileBytes.contents(pope + "/answers/llava-v1.5-7b.jsonl")
        var lines = String(decoding: original, as: UTF8.self).split(separator: "\n").map(String.init)
        let expected = try JSONValue.parse(FileBytes.contents(pope + "/expected.json"))
        let first = try XCTUnwrap(expected["per_item"]?.arrayValue?.first)
        // Question 1 (an adversarial "yes" question, answered yes) fails instead: an empty text with an error.
        XCTAssertEqual(first["question_id"]?.intValue, 1)
        XCTAssertEqual(first["label"]?.stringValue, "yes")
        XCTAssertEqual(first["parsed"]?.stringValue, "yes")
        lines[0] = #"{"question_id": 1, "prompt": "p", "text": "", "metadata": {"error": "image not found"}}"#
        let set = try AnswerSet(path: "answers.jsonl", contents: Array((lines.joined(separator: "\n") + "\n").utf8))
        let s = try POPEBenchmark(folder: pope).score(set)
        XCTAssertEqual(s.unanswered, [.int(1)])
        let adversarial = s.metrics["adversarial"]!
        let official = try XCTUnwrap(expected["metrics"]?["adversarial"])
        let samples = try XCTUnwrap(official["samples"]?.intValue), tn = try XCTUnwrap(official["TN"]?.intValue)
        let tp = try XCTUnwrap(official["TP"]?.intValue) - 1 // one true positive fewer, and no false negative either
        XCTAssertEqual(adversarial["samples"]?.intValue, samples)
        XCTAssertEqual(adversarial["TP"]?.intValue, tp)
        XCTAssertEqual(adversarial["FN"]?.intValue, official["FN"]?.intValue)
        XCTAssertEqual(adversarial["TN"]?.intValue, tn)
        XCTAssertEqual(adversarial["accuracy"]?.numberValue ?? 0, Double(tp + tn) / Double(samples), accuracy: 1e-12)
        XCTAssertEqual(s.summary["unanswered"]?.intValue, 1)

        // GQA: a top-level "error" field works the same way, and a missing line is unanswered too.
        let gqa = FixtureLocations.reference + "/eval/gqa"
        let g = String(decoding: try FileBytes.contents(gqa + "/answers/llava_gqa_testdev_balanced/llava-v1.5-7b/merge.jsonl"), as: UTF8.self)
        var gl = g.split(separator: "\n").map(String.init)
        let firstID = try XCTUnwrap(try JSONValue.parse(Array(gl[0].utf8))["question_id"]?.stringValue)
        gl[0] = #"{"question_id": "\#(firstID)", "prompt": "p", "text": "no", "error": "timeout"}"#
        gl.removeLast()
        let gs = try GQABenchmark(folder: gqa).score(AnswerSet(path: "a.jsonl", contents: Array((gl.joined(separator: "\n") + "\n").utf8)))
        XCTAssertEqual(gs.unanswered.count, 2)
        XCTAssertEqual(gs.summary["unanswered_ids"]?.arrayValue?.count, 2)
    }

    /// MME: a question without an answer line keeps its place (question-file order) and is wrong.
    func testMMEMissingAnswerIsWrongAndPairsStayAligned() throws {
        let mme = FixtureLocations.reference + "/eval/mme"
        let text = String(decoding: try FileBytes.contents(mme + "/answers/llava-v1.5-7b.jsonl"), as: UTF8.self)
        // Drop the second question of the first artwork image (20101, Rembrandt: answered "No", right);
        // the four artwork answers are all right otherwise.
        let kept = text.split(separator: "\n").filter { !$0.contains("Rembrandt") }
        XCTAssertEqual(kept.count, text.split(separator: "\n").count - 1)
        let s = try MMEBenchmark(folder: mme).score(AnswerSet(path: "a.jsonl", contents: Array((kept.joined(separator: "\n") + "\n").utf8)))
        XCTAssertEqual(s.unanswered, [.string("artwork/images/20101.jpg")])
        let artwork = s.metrics["per_subtask"]!["artwork"]!
        XCTAssertEqual(artwork["questions"]?.intValue, 4)
        XCTAssertEqual(artwork["acc"]?.numberValue ?? 0, 75, accuracy: 1e-9)
        XCTAssertEqual(artwork["acc_plus"]?.numberValue ?? 0, 50, accuracy: 1e-9)
        XCTAssertEqual(artwork["other_num"]?.intValue, 1)
    }
}

extension OfficialRulesTests {
    func testAnIncompleteLastLineIsNotAnAnswer() throws {
        let text = #"{"question_id": 1, "prompt": "p", "text": "Yes"}"# + "\n" + #"{"question_id": 2, "prom"#
        let set = try AnswerSet(path: "a.jsonl", contents: Array(text.utf8))
        XCTAssertEqual(set.answers.map(\.id), [.int(1)])
        XCTAssertThrowsError(try AnswerSet(path: "a.jsonl", contents: Array((text + "\n").utf8))) { error in
            XCTAssertTrue("\(error)".hasPrefix("a.jsonl:2: "), "\(error)")
        }
    }
}

extension OfficialRulesTests {
    /// Captions tokenised as pycocoevalcap does: Stanford PTBTokenizer 3.4.1 with -lowerCase
    /// (outputs recorded from the jar), then its punctuation filter.
    func testCaptionTokenizerAgreesWithPTBTokenizer() {
        let cases: [(String, String)] = [
            ("\"Quoted\" words (in parens) & more!!", "quoted words -lrb- in parens -rrb- & more !!"),
            ("12.5% of 3,000,000 people", "12.5 % of 3,000,000 people"),
            ("A 50% off sale at the store's entrance!", "a 50 % off sale at the store 's entrance"),
            ("A bowl w/ fruit and a plate", "a bowl w / fruit and a plate"),
            ("A boy & girl play", "a boy & girl play"),
            ("A brown and white dog's face", "a brown and white dog 's face"),
            ("A giraffe #1 and giraffe #2 stand", "a giraffe # 1 and giraffe # 2 stand"),
            ("A herd of cows grazing.The sky is blue.", "a herd of cows grazing.the sky is blue"),
            ("A man wearing a t-shirt, jeans, etc.", "a man wearing a t-shirt jeans etc."),
            ("A man's hat, on the U.S. flag.", "a man 's hat on the u.s. flag"),
            ("A picture of a man ... holding a bat", "a picture of a man holding a bat"),
            ("A sign reads \"STOP\" at 4th St.", "a sign reads stop at 4th st."),
            ("A toddler's 'toy' is on the floor", "a toddler 's toy is on the floor"),
            ("An older man is wearing a hat;a young girl is smiling", "an older man is wearing a hat a young girl is smiling"),
            ("Dogs, cats, and birds: all here.", "dogs cats and birds all here"),
            ("I'm here, you're there, they'll go, we'd stay.", "i 'm here you 're there they 'll go we 'd stay"),
            ("It doesn't fit, 1,000 times...", "it does n't fit 1,000 times"),
            ("Its 3 o'clock on the big clock", "its 3 o'clock on the big clock"),
            ("Mr. Smith's dog; the end -- really.", "mr. smith 's dog the end really"),
            ("No. 5 vs. vs Jan. Ave. Mt. Dr. Inc. ft. lbs. approx. etc", "no. 5 vs. vs jan. ave. mt. dr. inc. ft. lbs approx etc"),
            ("Some people walk by... and then leave.", "some people walk by and then leave"),
            ("The cat-dog can't see 3.5 km away?", "the cat-dog ca n't see 3.5 km away"),
            ("The train (red) goes fast.", "the train -lrb- red -rrb- goes fast"),
            ("There are 2 1/2 pizzas and $5 bills.", "there are 2 1/2 pizzas and $ 5 bills"),
            ("Two dogs' bowls sit near the St. Louis arch.", "two dogs bowls sit near the st. louis arch"),
            ("Two pictures:one of a cat and one of a dog", "two pictures one of a cat and one of a dog"),
            ("U.K.", "u.k."),
            ("What is this? A cat!", "what is this a cat"),
            ("[boxed] {curly}", "-lsb- boxed -rsb- -lcb- curly -rcb-"),
            ("a 10-year-old boy", "a 10-year-old boy"),
            ("a cat sat on a mat . a dog too", "a cat sat on a mat a dog too"),
            ("a cup of coffee @ the cafe", "a cup of coffee @ the cafe"),
            ("a dog's.", "a dog 's"),
            ("a woman with her hair in a pony-tail", "a woman with her hair in a pony-tail"),
            ("a--b", "a b"),
            ("cat/dog b&w AT&T 1/2 x-ray 3-D co-op", "cat/dog b & w at&t 1/2 x-ray 3-d co-op"),
            ("don't'", "do n't"),
            ("e-mail me at a@b.com at 5:30pm", "e-mail me at a@b.com at 5:30 pm"),
            ("he said hello.", "he said hello"),
            ("hello!!! what?? ok?!", "hello !!! what ?? ok ?!"),
            ("it's 10:30 a.m. now", "it 's 10:30 a.m. now"),
            ("it's a 'nice' day", "it 's a nice day"),
            ("cannot gonna wanna won't ain't let's", "can not gon na wan na wo n't ai n't let 's"),
            ("the 20's and '90s x.y hi-fi a.b.c", "the 20 's and '90s x.y hi-fi a.b.c"),
            ("the 2nd. floor", "the 2nd floor"),
        ]
        for (input, expected) in cases {
            XCTAssertEqual(CaptionMetrics.tokenize(input), expected, input)
        }
    }
}
