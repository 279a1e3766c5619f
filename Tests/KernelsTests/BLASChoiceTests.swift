import Foundation
import XCTest

@testable import Kernels

final class BLASChoiceTests: XCTestCase {
    let avx2: Set<String> = ["sse3", "ssse3", "sse4_2", "avx", "fma", "f16c", "avx2"]
    var avx512: Set<String> { avx2.union(["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]) }

    func testKernelFamilyFollowsTheStrongestInstructionSet() {
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: avx512.union(["avx512_bf16", "avx512_vnni", "amx_int8"])),
                       "Cooperlake")
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: avx512.union(["avx512_vnni"])), "SkylakeX")
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: avx2), "Haswell")
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: ["sse3", "ssse3", "sse4_2", "avx"]), "Sandybridge")
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: ["sse3", "ssse3", "sse4_2"]), "Nehalem")
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: ["sse3", "ssse3"]), "Core2")
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: []), "Prescott")
    }

    func testPartialAVX512IsNotEnoughForTheAVX512Kernels() {
        // AVX-512F alone (Knights Landing) lacks BW/VL/DQ, which SkylakeX's kernels use.
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: avx2.union(["avx512f", "avx512cd"])), "Haswell")
        // AVX2 without FMA cannot run Haswell's kernels.
        XCTAssertEqual(BLASEnvironment.coreType(forCPUFlags: avx2.subtracting(["fma"])), "Sandybridge")
    }

    func testInheritedCoreTypeIsNotFollowedButTheEngineVariableIs() {
        let flags = avx512.union(["avx512_bf16"])
        XCTAssertEqual(BLASEnvironment.choose(environment: ["OPENBLAS_CORETYPE": "Haswell"], cpuFlags: flags),
                       .init(coreType: "Cooperlake", source: "cpu"))
        XCTAssertEqual(BLASEnvironment.choose(environment: ["LLAVA_BLAS_CORETYPE": "Haswell",
                                                            "OPENBLAS_CORETYPE": "Prescott"], cpuFlags: flags),
                       .init(coreType: "Haswell", source: "LLAVA_BLAS_CORETYPE"))
    }

    func testThisProcessLoadedOpenBLASWithTheChosenFamily() {
        let choice = BLASEnvironment.choice
        if choice.source == "cpu" {
            XCTAssertEqual(Threads.blasCoreName, BLASEnvironment.coreType(forCPUFlags: CPU.flags))
        }
    }
}
