import Foundation
import VQAEval
import XCTest

final class ImageLocationTests: XCTestCase {
    func testTheQuestionFilesFolderThenItsImagesFolder() throws {
        let dir = NSTemporaryDirectory() + "llava-image-location-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/beside.png", contents: Data([1]))
        FileManager.default.createFile(atPath: dir + "/images/inside.png", contents: Data([1]))
        FileManager.default.createFile(atPath: dir + "/images/both.png", contents: Data([1]))
        FileManager.default.createFile(atPath: dir + "/both.png", contents: Data([1]))
        let questions = dir + "/q.jsonl"
        XCTAssertEqual(ImageLocation.path(of: "beside.png", questionFile: questions, folder: nil), dir + "/beside.png")
        XCTAssertEqual(ImageLocation.path(of: "inside.png", questionFile: questions, folder: nil), dir + "/images/inside.png")
        XCTAssertEqual(ImageLocation.path(of: "both.png", questionFile: questions, folder: nil), dir + "/both.png")
        XCTAssertEqual(ImageLocation.path(of: "missing.png", questionFile: questions, folder: nil), dir + "/missing.png")
        XCTAssertEqual(ImageLocation.path(of: "x.png", questionFile: "q.jsonl", folder: nil), "x.png")
    }

    func testAGivenFolderOrAnAbsolutePathIsTakenAsIs() {
        XCTAssertEqual(ImageLocation.path(of: "a/b.png", questionFile: "/q/q.jsonl", folder: "/data"), "/data/a/b.png")
        XCTAssertEqual(ImageLocation.path(of: "a/b.png", questionFile: "/q/q.jsonl", folder: "/data/"), "/data/a/b.png")
        XCTAssertEqual(ImageLocation.path(of: "/abs/c.png", questionFile: "/q/q.jsonl", folder: "/data"), "/abs/c.png")
        XCTAssertEqual(ImageLocation.path(of: "/abs/c.png", questionFile: "/q/q.jsonl", folder: nil), "/abs/c.png")
    }
}
