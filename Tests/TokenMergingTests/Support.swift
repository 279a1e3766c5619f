import FixtureLocations
import Foundation
import Kernels
import XCTest

/// The reference fixtures, Tests/Fixtures/reference (see `FixtureLocations.reference`).
let fixturesDirectory = URL(fileURLWithPath: FixtureLocations.reference)

/// A small deterministic generator for test inputs.
struct TestRandom {
    private var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(state: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }

    mutating func matrix(rows: Int, cols: Int) -> Matrix {
        let m = Matrix(rows: rows, cols: cols)
        for i in 0..<m.count { m.data[i] = float() }
        return m
    }
}

/// Largest absolute element difference of two equally shaped matrices.
func maxAbsDifference(_ a: Matrix, _ b: Matrix) -> Float {
    precondition(a.rows == b.rows && a.cols == b.cols)
    var worst: Float = 0
    for i in 0..<a.count { worst = max(worst, abs(a.data[i] - b.data[i])) }
    return worst
}

func XCTAssertRowsClose(_ a: Matrix, _ b: Matrix, accuracy: Float, _ message: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.rows, b.rows, "rows: \(message)", file: file, line: line)
    XCTAssertEqual(a.cols, b.cols, "cols: \(message)", file: file, line: line)
    guard a.rows == b.rows && a.cols == b.cols else { return }
    let d = maxAbsDifference(a, b)
    XCTAssertLessThanOrEqual(d, accuracy, message, file: file, line: line)
}
