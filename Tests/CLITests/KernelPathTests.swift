import Foundation
import Kernels
import XCTest

/// `LLAVA_KERNELS` lowers the kernel path of a whole run, OpenBLAS's kernel family included: the
/// shipped model answers the README question the same on every path this CPU runs, unquantized
/// and in 4 bits, and the report names the path it ran.
final class KernelPathTests: XCTestCase {
    static let image = CLI.packageRoot.path + "/Prompts/shapes/images/shapes_0000.png"

    func testEveryPathAnswersTheReadmeQuestion() throws {
        var families: [KernelPath: String] = [:]
        for path in KernelPath.available {
            for quantize in ["none", "q4"] {
                let r = try CLI.run(["ask", "--image", Self.image, "--quantize", quantize, "--json", "What color is the cross?"],
                                    environment: ["LLAVA_KERNELS": path.description])
                XCTAssertEqual(r.status, 0, "\(path) \(quantize): \(r.stderr)")
                let object = try r.lastJSONObject()
                XCTAssertEqual((object["text"] as? String)?.trimmingCharacters(in: .whitespaces), "red", "\(path) \(quantize)")
                let kernels = object["kernels"] as? String ?? ""
                XCTAssertTrue(kernels.hasPrefix("\(path): "), "\(path): reported \(kernels)")
                families[path] = object["blas_core"] as? String
            }
        }
        if KernelPath.best > .avx2 { XCTAssertEqual(families[.avx2], "Haswell", "OpenBLAS's family on the AVX2 path") }
        if let base = families[.base] { XCTAssertFalse(["Haswell", "SkylakeX", "Cooperlake", "Zen"].contains(base), base) }
    }

    func testAnUnknownOrUnsupportedPathIsOneWarningLine() throws {
        let r = try CLI.run(["ask", "--image", Self.image, "What color is the cross?"], environment: ["LLAVA_KERNELS": "sse9"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let warnings = r.stderrLines.filter { $0.contains("LLAVA_KERNELS") }
        XCTAssertEqual(warnings, ["llava: warning: LLAVA_KERNELS=sse9 names no kernel path (base, avx2, avx512, vnni, amx); using \(KernelPath.best)"])
        if KernelPath.best < .amx {
            let above = KernelPath.allCases.last!
            let s = try CLI.run(["ask", "--image", Self.image, "What color is the cross?"], environment: ["LLAVA_KERNELS": above.description])
            XCTAssertEqual(s.stderrLines.filter { $0.contains("LLAVA_KERNELS") },
                           ["llava: warning: LLAVA_KERNELS=amx: this CPU runs at most \(KernelPath.best); using \(KernelPath.best)"])
        }
    }
}
