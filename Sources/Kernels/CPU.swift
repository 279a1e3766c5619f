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
