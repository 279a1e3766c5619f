import VQAEval
import XCTest

final class QuestionFileTests: XCTestCase {
    func testReadsQuestionsAndReportsBadLinesWithTheirNumbers() {
        let text = "\u{FEFF}" + """
        {"question_id": 262144000, "image": "COCO_1.jpg", "text": "Is it red?\\nAnswer the question using a single word or phrase.", "category": "default"}
        {"question_id": "n161313", "image": "a.png", "text": "What?"}
        {"question_id": 3, "image": "b.png", "text": "Broken"
        {"question_id": 4, "image": "c.png"}

        {"question_id": 1.5, "image": "d.png", "text": "x"}
        {"question_id": 262144000, "image": "e.png", "text": "again"}
        [1, 2]
        {"question_id": 9, "image": "f.png", "text": "crlf", "category": null}\r
        {"question_id": 10, "image": 7, "text": "x"}
        """
        let f = QuestionFile(path: "q.jsonl", contents: Array(text.utf8))
        XCTAssertEqual(f.questions.map(\.id), [.int(262144000), .string("n161313"), .int(9)])
        XCTAssertEqual(f.questions.map(\.line), [1, 2, 9])
        XCTAssertEqual(f.questions[0].text, "Is it red?\nAnswer the question using a single word or phrase.")
        XCTAssertEqual(f.questions[0].category, "default")
        XCTAssertNil(f.questions[2].category)
        XCTAssertEqual(f.issues.map(\.line), [3, 4, 6, 7, 8, 10])
        XCTAssertTrue(f.issues[0].description.hasPrefix("q.jsonl:3: invalid JSON"), f.issues[0].description)
        XCTAssertEqual(f.issues[1].description, "q.jsonl:4: no \"text\"")
        XCTAssertEqual(f.issues[2].description, "q.jsonl:6: \"question_id\" must be an integer or a string, not 1.5")
        XCTAssertEqual(f.issues[3].description, "q.jsonl:7: question_id 262144000 repeats (first on line 1)")
        XCTAssertEqual(f.issues[4].description, "q.jsonl:8: expected a JSON object")
        XCTAssertEqual(f.issues[5].description, "q.jsonl:10: \"image\" must be a string")
    }

    func testImagePathsJoinLikeOsPathJoin() {
        let q = Question(id: .int(1), image: "x/y.jpg", text: "", line: 1)
        XCTAssertEqual(q.imagePath(folder: "/data/images"), "/data/images/x/y.jpg")
        XCTAssertEqual(q.imagePath(folder: "/data/images/"), "/data/images/x/y.jpg")
        XCTAssertEqual(Question(id: .int(1), image: "/abs/z.png", text: "", line: 1).imagePath(folder: "/data"), "/abs/z.png")
    }

    func testShardsAreCeilSizedContiguousChunks() throws {
        func ranges(_ total: Int, _ n: Int) throws -> [Range<Int>] {
            try (1...n).map { try Shard(index: $0, count: n).range(total: total) }
        }
        XCTAssertEqual(try ranges(10, 3), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(try ranges(10, 4), [0..<3, 3..<6, 6..<9, 9..<10])
        // ceil(5/4) = 2: the last chunk is empty (LLaVA's chunking would have no 4th chunk at all).
        XCTAssertEqual(try ranges(5, 4), [0..<2, 2..<4, 4..<5, 5..<5])
        // More shards than lines.
        XCTAssertEqual(try ranges(3, 5), [0..<1, 1..<2, 2..<3, 3..<3, 3..<3])
        XCTAssertEqual(try ranges(0, 3), [0..<0, 0..<0, 0..<0])
        XCTAssertEqual(try ranges(7, 1), [0..<7])
        // Every item lands in exactly one shard, in order.
        for total in 0...40 {
            for n in 1...12 {
                let items = Array(0..<total)
                let joined = try (1...n).flatMap { try Shard(index: $0, count: n).slice(items) }
                XCTAssertEqual(joined, items, "\(total) items in \(n) shards")
            }
        }
    }

    func testShardParsing() throws {
        XCTAssertEqual(try Shard(parsing: "2/8"), try Shard(index: 2, count: 8))
        XCTAssertEqual(try Shard(parsing: "2/8").description, "2/8")
        for bad in ["0/3", "4/3", "a/b", "3", "1/0", "1/2/3", "-1/2", ""] {
            XCTAssertThrowsError(try Shard(parsing: bad), bad)
        }
    }
}
