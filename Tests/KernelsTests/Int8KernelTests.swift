import Foundation
import XCTest

@testable import Kernels

/// The int8 product's kernels (AVX2, AVX-512 VNNI, AMX) compute the same integer block sums and
/// scale them identically, so their outputs must be equal bit for bit.
final class Int8KernelTests: XCTestCase {
    func product(_ x: [Float], m: Int, _ w: Weight, kernel: Int8Kernel) throws -> [UInt32] {
        guard case .q8(let p) = w.storage else { throw XCTSkip("not quantized") }
        var y = [Float](repeating: .nan, count: m * w.rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                int8Product(xp.baseAddress!, rows: m, ldx: w.cols, p, into: yp.baseAddress!, ldy: w.rows, kernel: kernel)
            }
        }
        return y.map(\.bitPattern)
    }

    /// Shapes cover every block size (32, 64, 128), partial row tiles (m not a multiple of 16 or
    /// 32) and partial column groups (n not a multiple of 16).
    let shapes = [(1, 70, 64), (3, 33, 32), (16, 48, 96), (17, 130, 128), (40, 47, 384), (77, 200, 640)]

    func compare(_ kernel: Int8Kernel, against reference: Int8Kernel) throws {
        var rng = LCG(state: 21)
        for (m, n, k) in shapes {
            var x = rng.array(m * k)
            x[0] = 30 // an outlier block
            let w = Weight(rows: n, cols: k, values: rng.array(n * k)).quantizedQ8()
            let a = try product(x, m: m, w, kernel: kernel)
            let b = try product(x, m: m, w, kernel: reference)
            XCTAssertFalse(a.contains(Float.nan.bitPattern), "\(kernel.name) \(m)x\(n)x\(k) left outputs unwritten")
            XCTAssertEqual(a, b, "\(kernel.name) vs \(reference.name), \(m)x\(n)x\(k)")
        }
    }

    func testAVX2MatchesVNNI() throws {
        guard Int8Kernel.avx2.isAvailable, Int8Kernel.vnni.isAvailable else {
            throw XCTSkip("this CPU lacks AVX2 or AVX-512 VNNI")
        }
        try compare(.avx2, against: .vnni)
    }

    func testAMXMatchesVNNI() throws {
        guard Int8Kernel.amx.isAvailable else {
            let flags = CPU.flags
            throw XCTSkip(flags.contains("amx_int8")
                ? "the CPU has AMX but Linux did not grant the tile state (arch_prctl ARCH_REQ_XCOMP_PERM)"
                : "this CPU has no AMX (amx_int8)")
        }
        try compare(.amx, against: Int8Kernel.vnni.isAvailable ? .vnni : .avx2)
    }

    func testAMXIsUsedFromSixteenRowsWhereAvailable() {
        if Int8Kernel.amx.isAvailable {
            XCTAssertEqual(Int8Kernel.best(rows: 16), .amx)
        }
        XCTAssertNotEqual(Int8Kernel.best(rows: 1), .amx)
    }
}
