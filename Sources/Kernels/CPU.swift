import CKernels

/// CPU features the kernels choose by, read once with CPUID.
public enum CPU {
    /// The features, named as in /proc/cpuinfo's flags ("avx2", "avx512_vnni", "amx_int8", ...),
    /// counting only those whose registers the operating system saves.
    public static let flags: Set<String> = {
        let bits = k_cpu_features()
        let names: [(Int, String)] = [
            (K_CPU_SSE3, "sse3"), (K_CPU_SSSE3, "ssse3"), (K_CPU_SSE4_2, "sse4_2"), (K_CPU_AVX, "avx"),
            (K_CPU_FMA, "fma"), (K_CPU_F16C, "f16c"), (K_CPU_AVX2, "avx2"), (K_CPU_AVX512F, "avx512f"),
            (K_CPU_AVX512DQ, "avx512dq"), (K_CPU_AVX512CD, "avx512cd"), (K_CPU_AVX512BW, "avx512bw"),
            (K_CPU_AVX512VL, "avx512vl"), (K_CPU_AVX512_VNNI, "avx512_vnni"), (K_CPU_AVX512_BF16, "avx512_bf16"),
            (K_CPU_AMX_TILE, "amx_tile"), (K_CPU_AMX_INT8, "amx_int8"), (K_CPU_AMX_BF16, "amx_bf16"),
        ]
        return Set(names.filter { bits & UInt64($0.0) != 0 }.map(\.1))
    }()

    /// AVX-512 with VNNI: int8 products run as integer dot products.
    public static let hasVNNI = k_has_vnni() != 0
}

/// The kernels of the int8 product (`--quantize q8`). All give identical results: the block sums
/// are exact integers, turned into floats by the same operations in the same order.
public enum Int8Kernel: Int32, CaseIterable, Sendable {
    case avx2 = 0, vnni = 1, amx = 2

    public var name: String {
        switch self {
        case .avx2: "avx2"
        case .vnni: "avx512-vnni"
        case .amx: "amx"
        }
    }

    /// Whether this CPU runs the kernel (AMX: once Linux granted the tile state to the process).
    public var isAvailable: Bool { k_q8_kernels() & (1 << rawValue) != 0 }

    /// When set (and available), every int8 product uses this kernel (for measurements).
    public nonisolated(unsafe) static var forced: Int8Kernel?

    /// The kernel for a product with `rows` activation rows: AMX from 16 rows (its tiles are 16
    /// rows tall), else VNNI, else AVX2 below 16 rows (decoding). Nil otherwise: longer prompts on
    /// CPUs without VNNI widen the int8 weights into sgemm, about twice as fast as the AVX2 kernel.
    public static func best(rows: Int) -> Int8Kernel? {
        if let forced, forced.isAvailable { return forced }
        if rows >= 16, Int8Kernel.amx.isAvailable { return .amx }
        if Int8Kernel.vnni.isAvailable { return .vnni }
        if rows < 16, Int8Kernel.avx2.isAvailable { return .avx2 }
        return nil
    }
}
