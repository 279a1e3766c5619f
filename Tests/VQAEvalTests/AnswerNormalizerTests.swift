import VQAEval
import XCTest

/// The EvalAI answer processor, step by step, on the cases its rules were written for.
final class AnswerNormalizerTests: XCTestCase {
    func check(_ cases: [(String, String)], file: StaticString = #filePath, line: UInt = #line) {
        for (input, expected) in cases {
            XCTAssertEqual(AnswerNormalizer.normalize(input), expected, "normalize(\(input.debugDescription))", file: file, line: line)
        }
    }

    func testNumberWordsBecomeDigits() {
        check([("Two", "2"), ("two dogs", "2 dogs"), ("none", "0"), ("zero", "0"), ("ten", "10"),
               ("one two three", "1 2 3"), ("eleven", "eleven"), ("Seven.", "7")])
    }

    func testArticlesAreDropped() {
        check([("The dog", "dog"), ("an apple", "apple"), ("A", ""), ("THE END", "end"), ("a man's hat", "man 's hat")])
    }

    func testLowercaseWhitespaceCommasAndQuestionMarks() {
        check([("\t Hello\nworld ", "hello world"), ("what?", "what"), ("1,000", "1000"), ("Yes", "yes"),
               ("it's", "it 's"), ("  many   spaces  ", "many spaces")])
    }

    func testPunctuationNextToASpaceIsDeletedOtherwiseSpaced() {
        check([("red-white", "red white"), ("red - white", "red white"), ("(left)", "left"), ("cat/dog", "cat dog"),
               ("cat / dog", "cat dog"), ("x_y", "x y"), ("x @y", "x y"), ("\"quoted\"", "quoted"), ("yes!", "yes"),
               ("a b-c ,x", "b c x"), ("well, 1-2", "well 1 2")])
    }

    func testDigitCommaDigitRuleDeletesEveryPunctuationMark() {
        // Inside `normalize` commas are gone before this step; the rule acts on raw text.
        XCTAssertEqual(AnswerNormalizer.processPunctuation("1,000 a-b"), "1000 ab")
        XCTAssertEqual(AnswerNormalizer.processPunctuation("1,2;x"), "12x")
        XCTAssertEqual(AnswerNormalizer.processPunctuation("a-b"), "a b")
        XCTAssertEqual(AnswerNormalizer.processPunctuation("a- b"), "a b")
        XCTAssertEqual(AnswerNormalizer.processPunctuation("1, 2-3"), "1 2 3")
    }

    func testPeriodsGoUnlessADigitFollows() {
        check([("Yes.", "yes"), ("3.5", "3.5"), ("3.5.", "3.5"), ("p.m.", "pm"), ("1.5 ...", "1.5"), (".5", ".5"),
               ("ye.s", "yes"), ("no.", "no")])
        // The original passes re.UNICODE (32) as re.sub's count: only the first 32 periods go.
        let letters = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.A.B.C.D.E.F.G.H.I."
        XCTAssertEqual(AnswerNormalizer.normalize(letters), "abcdefghijklmnopqrstuvwxyzabcdefg.h.i.")
    }

    func testContractionsAreRepaired() {
        check([("dont", "don't"), ("Isnt it", "isn't it"), ("whats up", "what's up"), ("cant", "can't"),
               ("Yall", "y'all"), ("somebody'd", "somebodyd"), ("wont", "won't"), ("thats", "that's")])
        // The table's capitalised keys never match after lowercasing.
        check([("Im here", "im here"), ("Ive", "ive")])
    }

    func testDigitsFromOtherScriptsCountAsDigitsForThePeriodRule() {
        XCTAssertEqual(AnswerNormalizer.normalize("٣.٥"), "٣.٥")
    }
}
