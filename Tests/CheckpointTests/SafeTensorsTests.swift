import Foundation
import Kernels
import XCTest

@testable import Checkpoint

/// Builds safetensors files byte by byte, including broken ones.
struct SafeTensorsBytes {
    var header: String
    var data: [UInt8]
    var declaredLength: UInt64?

    static func valid(_ tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])]) -> SafeTensorsBytes {
        var entries: [String] = []
        var data: [UInt8] = []
        for t in tensors {
            let begin = data.count
            data += t.bytes
            entries.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":\(t.shape),\"data_offsets\":[\(begin),\(data.count)]}")
        }
        entries.append("\"__metadata__\":{\"format\":\"pt\"}")
        return SafeTensorsBytes(header: "{" + entries.joined(separator: ",") + "}", data: data)
    }

    var bytes: [UInt8] {
        let h = Array(header.utf8)
        var out = withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian, Array.init)
        out += h
        out += data
        return out
    }

    func write(to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

func floatBytes(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes(Array.init) }
func halfBytes(_ values: [Float]) -> [UInt8] {
    values.map { Float16($0).bitPattern }.withUnsafeBytes(Array.init)
}
func bf16Bytes(_ values: [Float]) -> [UInt8] {
    values.map { UInt16($0.bitPattern >> 16) }.withUnsafeBytes(Array.init)
}

final class SafeTensorsTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "safetensors-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func path(_ name: String) -> String { dir + "/" + name }

    func expectHeaderError(_ file: SafeTensorsBytes, contains fragment: String, line: UInt = #line) throws {
        let p = path("bad.safetensors")
        try file.write(to: p)
        XCTAssertThrowsError(try SafeTensorsFile(path: p), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(p), "error should name the file: \(text)", line: line)
            XCTAssertTrue(text.contains(fragment), "\(text) should mention \(fragment)", line: line)
        }
    }

    func testReadsAllFloatTypesExactly() throws {
        let values: [Float] = [1, -2.5, 0.099975586, 65504, -0.0001, 3.140625]
        let file = SafeTensorsBytes.valid([
            ("a", "F32", [2, 3], floatBytes(values)),
            ("b", "F16", [3, 2], halfBytes(values)),
            ("c", "BF16", [6], bf16Bytes(values)),
        ])
        try file.write(to: path("ok.safetensors"))
        let st = try SafeTensorsFile(path: path("ok.safetensors"))
        XCTAssertEqual(st.metadata["format"], "pt")
        XCTAssertEqual(try st.floats(st.info("a")), values)
        XCTAssertEqual(try st.floats(st.info("b")), values.map { Float(Float16($0)) })
        XCTAssertEqual(try st.floats(st.info("c")), values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
        let w = try st.weight(st.info("b"))
        XCTAssertEqual(w.rows, 3)
        XCTAssertEqual(w.cols, 2)
        XCTAssertEqual(w.rowArray(1), [values[2], values[3]].map { Float(Float16($0)) })
    }

    func testMissingAndEmptyFiles() throws {
        XCTAssertThrowsError(try SafeTensorsFile(path: path("nope.safetensors"))) { error in
            XCTAssertEqual("\(error)", "\(path("nope.safetensors")): no such file")
        }
        FileManager.default.createFile(atPath: path("empty.safetensors"), contents: Data())
        XCTAssertThrowsError(try SafeTensorsFile(path: path("empty.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("shorter than the 8-byte length prefix"))
        }
    }

    func testTruncatedHeader() throws {
        var f = SafeTensorsBytes.valid([("a", "F32", [2], floatBytes([1, 2]))])
        f.declaredLength = 10_000
        try expectHeaderError(f, contains: "runs past the end")
    }

    func testHeaderOverLimit() throws {
        var f = SafeTensorsBytes.valid([("a", "F32", [2], floatBytes([1, 2]))])
        f.declaredLength = 200_000_000
        try expectHeaderError(f, contains: "exceeds the 100 MB limit")
    }

    func testHeaderNotJSON() throws {
        try expectHeaderError(SafeTensorsBytes(header: "{not json", data: []), contains: "not valid JSON")
        try expectHeaderError(SafeTensorsBytes(header: "[1,2]", data: []), contains: "does not start with '{'")
    }

    func testOffsetsOutsideFile() throws {
        var f = SafeTensorsBytes.valid([("a", "F32", [2], floatBytes([1, 2]))])
        f.data.removeLast(4) // truncated data
        try expectHeaderError(f, contains: "outside the 4-byte data buffer")
    }

    func testSizeDisagreesWithShape() throws {
        let f = SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data: floatBytes([1, 2]))
        try expectHeaderError(f, contains: "is 8 bytes but F32 × [3] needs 12")
    }

    func testOverlappingTensors() throws {
        let f = SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                                 data: floatBytes([1, 2, 3]))
        try expectHeaderError(f, contains: "overlap")
    }

    func testUnknownDTypeAndBadShape() throws {
        try expectHeaderError(SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}", data: floatBytes([1])),
                              contains: "unknown dtype")
        try expectHeaderError(SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", data: floatBytes([1])),
                              contains: "invalid shape")
        try expectHeaderError(SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", data: floatBytes([1])),
                              contains: "invalid data_offsets")
    }

    func testIntegerTensorIsNotAWeight() throws {
        try SafeTensorsBytes.valid([("ids", "I64", [1], Array(repeating: 0, count: 8))]).write(to: path("i.safetensors"))
        let st = try SafeTensorsFile(path: path("i.safetensors"))
        XCTAssertThrowsError(try st.weight(st.info("ids"))) { error in
            XCTAssertTrue("\(error)".contains("only F32, F16 and BF16"))
        }
    }

    // MARK: - Validation as strict as the reference reader

    /// A valid file whose header is padded with spaces, as writers align the data to 8 bytes.
    func padded() -> SafeTensorsBytes {
        var f = SafeTensorsBytes.valid([("a", "F32", [2], floatBytes([1, 2])), ("b", "F16", [2], halfBytes([3, 4]))])
        f.header += "   "
        return f
    }

    func testPaddedFileIsValid() throws {
        try padded().write(to: path("ok.safetensors"))
        let st = try SafeTensorsFile(path: path("ok.safetensors"))
        XCTAssertEqual(try st.floats(st.info("b")), [3, 4])
    }

    func testHeaderLengthAFewBytesShortIsRefused() throws {
        // The JSON still parses (the cut falls in the padding) but every tensor would be read shifted.
        for short in [1, 2] {
            var f = padded()
            f.declaredLength = UInt64(f.header.utf8.count - short)
            try expectHeaderError(f, contains: "the tensors end at byte 12 of the data buffer but the file holds \(12 + short)")
        }
    }

    func testTrailingBytesAndGapsAreRefused() throws {
        var trailing = padded()
        trailing.data += [0]
        try expectHeaderError(trailing, contains: "wrong header length or trailing bytes")
        let gap = SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data: floatBytes([1, 2]))
        try expectHeaderError(gap, contains: "a gap of 4 bytes lies before tensor a at offset 0")
    }

    func testHugeShapesAreRefusedWithoutOverflow() throws {
        for shape in ["[4611686018427387904]", "[0,4611686018427387904,4611686018427387904]", "[9223372036854775807,2]"] {
            let f = SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,4]}}", data: floatBytes([1]))
            try expectHeaderError(f, contains: "impossibly large shape")
        }
        let offsets = SafeTensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e30]}}", data: floatBytes([1]))
        try expectHeaderError(offsets, contains: "invalid data_offsets")
    }

    func testDuplicateNamesAreRefused() throws {
        let entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        let f = SafeTensorsBytes(header: "{\"a\":\(entry),\"a\":\(entry)}", data: floatBytes([1]))
        try expectHeaderError(f, contains: "names a tensor twice")
        // Names that only look alike in escapes are still counted once each.
        let g = SafeTensorsBytes(header: "{\"a\\\",\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                                 data: floatBytes([1]))
        try g.write(to: path("escaped.safetensors"))
        XCTAssertEqual(try SafeTensorsFile(path: path("escaped.safetensors")).tensors.count, 2)
    }

    func testOnlyRegularFilesAreOpened() throws {
        let fifo = path("pipe.safetensors")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        for (p, fragment) in [(fifo, "is a FIFO, not a regular file"), ("/dev/zero", "is a device, not a regular file"),
                              (dir!, "is a directory, not a regular file")] {
            XCTAssertThrowsError(try SafeTensorsFile(path: p)) { error in
                XCTAssertEqual("\(error)", "\(p): \(fragment)")
            }
        }
    }
}
