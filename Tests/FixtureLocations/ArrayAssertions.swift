import Foundation
import XCTest

/// How two arrays differ, in one line: the element counts when they differ, how many positions
/// differ, and the first few of them. nil when they agree. `same` decides agreement per element.
public func arrayDifferences<T>(_ a: [T], _ b: [T], shown: Int = 5, same: (T, T) -> Bool) -> String? {
    var differing = 0
    var first: [String] = []
    for i in 0..<min(a.count, b.count) where !same(a[i], b[i]) {
        differing += 1
        if first.count < shown { first.append("[\(i)] \(a[i]) vs \(b[i])") }
    }
    if differing == 0 && a.count == b.count { return nil }
    var parts: [String] = []
    if a.count != b.count { parts.append("counts \(a.count) vs \(b.count)") }
    if differing > 0 {
        parts.append("\(differing) of \(min(a.count, b.count)) compared values differ, first: " + first.joined(separator: ", ")
            + (differing > first.count ? ", …" : ""))
    } else {
        parts.append("the common \(min(a.count, b.count)) values agree")
    }
    return parts.joined(separator: "; ")
}

/// XCTAssertEqual for arrays that names the first differing values and their count instead of
/// printing both arrays whole.
public func XCTAssertEqualArrays<T: Equatable>(_ a: @autoclosure () throws -> [T], _ b: @autoclosure () throws -> [T],
                                              _ message: @autoclosure () -> String = "",
                                              file: StaticString = #filePath, line: UInt = #line) {
    do {
        if let d = arrayDifferences(try a(), try b(), same: ==) { XCTFail(joined(d, message()), file: file, line: line) }
    } catch {
        XCTFail(joined("threw \(error)", message()), file: file, line: line)
    }
}

/// Every element within `accuracy` (NaN never is); the failure names the first differing values,
/// their count and the largest difference.
public func XCTAssertArraysClose<T: BinaryFloatingPoint>(_ a: @autoclosure () throws -> [T], _ b: @autoclosure () throws -> [T],
                                                        accuracy: T, _ message: @autoclosure () -> String = "",
                                                        file: StaticString = #filePath, line: UInt = #line) {
    do {
        let x = try a(), y = try b()
        if let d = arrayDifferences(x, y, same: { abs($0 - $1) <= accuracy }) {
            let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            XCTFail(joined(d + "; largest difference \(worst) > \(accuracy)", message()), file: file, line: line)
        }
    } catch {
        XCTFail(joined("threw \(error)", message()), file: file, line: line)
    }
}

/// Bit-for-bit equality of Float arrays (so -0 ≠ 0 and equal NaNs agree); the failure shows the
/// first differing values with their bit patterns.
public func XCTAssertBitwiseEqual(_ a: @autoclosure () throws -> [Float], _ b: @autoclosure () throws -> [Float],
                                  _ message: @autoclosure () -> String = "",
                                  file: StaticString = #filePath, line: UInt = #line) {
    do {
        let x = try a().map(Bits.init), y = try b().map(Bits.init)
        if let d = arrayDifferences(x, y, same: ==) { XCTFail(joined(d, message()), file: file, line: line) }
    } catch {
        XCTFail(joined("threw \(error)", message()), file: file, line: line)
    }
}

private struct Bits: Equatable, CustomStringConvertible {
    let value: Float
    init(_ value: Float) { self.value = value }
    static func == (a: Bits, b: Bits) -> Bool { a.value.bitPattern == b.value.bitPattern }
    var description: String { "\(value) (0x\(String(value.bitPattern, radix: 16)))" }
}

private func joined(_ detail: String, _ message: String) -> String {
    message.isEmpty ? detail : "\(message): \(detail)"
}
