import COpenBLAS
import CKernels
import Foundation

/// Chooses OpenBLAS's kernel family from the CPU's features and loads the library.
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, while it loads, and its own table of CPU models can
/// fall back to old kernels on processors it does not know (SSE3 kernels on a new Xeon are 6x
/// slower). So the executable does not link OpenBLAS: before the first product, the engine picks
/// the family from CPUID — AVX-512 with BF16 → Cooperlake, AVX-512 → SkylakeX, AVX2 + FMA →
/// Haswell, AVX → Sandybridge, SSE4.2 → Nehalem, SSSE3 → Core2, otherwise Prescott — and loads
/// `libopenblas.so.0` with that `OPENBLAS_CORETYPE`.
///
/// The rule for a forced choice: `LLAVA_BLAS_CORETYPE=NAME` is used as given. An
/// `OPENBLAS_CORETYPE` inherited from the environment is not followed (machines set it for other
/// programs, and it can only force a weaker family than the CPU's); it is left untouched for child
/// processes, and `overriddenCoreType` reports it.
public enum BLASEnvironment {
    public static let library = "libopenblas.so.0"

    /// The kernel family for a CPU with these features (names as in /proc/cpuinfo's flags).
    public static func coreType(forCPUFlags flags: Set<String>) -> String {
        let avx512 = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"].allSatisfy(flags.contains)
        if avx512 { return flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        if flags.contains("sse4_2") { return "Nehalem" }
        if flags.contains("ssse3") { return "Core2" }
        return "Prescott"
    }

    /// What was asked for and why.
    public struct Choice: Sendable, Equatable {
        public let coreType: String
        /// "cpu" (chosen from the CPU's features) or "LLAVA_BLAS_CORETYPE".
        public let source: String
    }

    /// The choice under an environment and a CPU (pure: the rule above). A kernel path lowered by
    /// `LLAVA_KERNELS` lowers the family too (avx2 → Haswell, base → the family of the CPU without
    /// AVX), so the narrower path is measured and tested with OpenBLAS's matching kernels.
    public static func choose(environment: [String: String], cpuFlags: Set<String>) -> Choice {
        if let forced = environment["LLAVA_BLAS_CORETYPE"], !forced.isEmpty {
            return Choice(coreType: forced, source: "LLAVA_BLAS_CORETYPE")
        }
        if let name = environment["LLAVA_KERNELS"], let path = KernelPath(name: name) {
            return Choice(coreType: coreType(forCPUFlags: flags(cpuFlags, upTo: path)), source: "cpu")
        }
        return Choice(coreType: coreType(forCPUFlags: cpuFlags), source: "cpu")
    }

    /// The CPU's flags less those a kernel path does not use.
    static func flags(_ flags: Set<String>, upTo path: KernelPath) -> Set<String> {
        switch path {
        case .base: return flags.filter { !$0.hasPrefix("avx") && $0 != "fma" && $0 != "f16c" && !$0.hasPrefix("amx") }
        case .avx2: return flags.filter { !$0.hasPrefix("avx512") && !$0.hasPrefix("amx") }
        case .avx512, .vnni, .amx: return flags
        }
    }

    /// The choice this process made (loads OpenBLAS if it is not loaded yet).
    public static var choice: Choice { loaded }

    /// The `OPENBLAS_CORETYPE` of the environment when it differs from the family used.
    public static var overriddenCoreType: String? {
        guard let v = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], v != loaded.coreType else { return nil }
        return v
    }

    /// Loads OpenBLAS now; executables call this first so a missing library is reported at once.
    public static func prepare() { _ = loaded }

    /// Loaded once, on first use; a missing library ends the process with a one-line error.
    static let loaded: Choice = {
        let choice = choose(environment: ProcessInfo.processInfo.environment, cpuFlags: CPU.flags)
        var error = [CChar](repeating: 0, count: 512)
        let program = URL(fileURLWithPath: CommandLine.arguments.first ?? "llava").lastPathComponent
        if blas_open(library, choice.coreType, &error, error.count) != 0 {
            let reason = String(cString: error)
            FileHandle.standardError.write(Data("\(program): error: cannot load OpenBLAS (\(library)): \(reason) (Scripts/setup installs it)\n".utf8))
            exit(1)
        }
        // OpenBLAS quietly picks a family itself when it does not know the forced one (or the CPU
        // cannot run it): say so, since that is the slow fallback the forced name was meant to avoid.
        let running = String(cString: blas_corename())
        if choice.source == "LLAVA_BLAS_CORETYPE" && running.lowercased() != choice.coreType.lowercased() {
            FileHandle.standardError.write(Data(("\(program): warning: LLAVA_BLAS_CORETYPE=\(choice.coreType) is not a kernel family "
                + "OpenBLAS can run here; it chose \(running) itself\n").utf8))
        }
        return choice
    }()
}

/// Which operand of `sgemm` is transposed.
public enum Transpose { case none, transposed }

/// C = alpha · op(A) · op(B) + beta · C, row-major (OpenBLAS sgemm).
public func sgemm(_ ta: Transpose, _ tb: Transpose, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                  _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
                  _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    BLASEnvironment.prepare()
    Threads.onBLASThreads {
        blas_sgemm(ta == .transposed ? 1 : 0, tb == .transposed ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha,
                   a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// y = A · x for a row-major A [m, n] (OpenBLAS sgemv).
public func sgemv(_ m: Int, _ n: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ x: UnsafePointer<Float>,
                  _ y: UnsafeMutablePointer<Float>) {
    BLASEnvironment.prepare()
    Threads.onBLASThreads { blas_sgemv(Int32(m), Int32(n), 1, a, Int32(lda), x, 0, y) }
}
