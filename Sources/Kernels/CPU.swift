import CKernels
import Foundation

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
}

/// The kernel path: the widest instruction set the hand-written kernels use. Each path has its own
/// kernels where it helps and runs those of the paths below it elsewhere. The default is the best
/// path this CPU runs; `LLAVA_KERNELS=base|avx2|avx512|vnni|amx` (or `use`) lowers it, so a CPU
/// with AVX-512 also runs, measures and tests the AVX2 and baseline paths.
///
/// - base: plain C loops the compiler vectorises for baseline x86-64; quantized weights are
///   widened to Float32 for OpenBLAS.
/// - avx2: AVX2 + FMA + F16C: F16/BF16 products in registers, int8 and 4-bit integer products.
/// - avx512: AVX-512 F/BW/VL/DQ versions of the same.
/// - vnni: AVX-512 VNNI integer dot products for int8 and 4-bit weights.
/// - amx: AMX tiles for int8 prompts.
public enum KernelPath: Int32, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case base = 0, avx2 = 1, avx512 = 2, vnni = 3, amx = 4

    public var description: String {
        switch self {
        case .base: "base"
        case .avx2: "avx2"
        case .avx512: "avx512"
        case .vnni: "vnni"
        case .amx: "amx"
        }
    }

    public init?(name: String) {
        guard let path = KernelPath.allCases.first(where: { $0.description == name }) else { return nil }
        self = path
    }

    public static func < (a: KernelPath, b: KernelPath) -> Bool { a.rawValue < b.rawValue }

    /// The widest path this CPU runs.
    public static var best: KernelPath { KernelPath(rawValue: k_path_best()) ?? .base }

    /// Every path this CPU runs, narrowest first.
    public static var available: [KernelPath] { allCases.filter { $0 <= best } }

    /// The path in use.
    public static var current: KernelPath { KernelPath(rawValue: k_path()) ?? .base }

    /// Uses `path` from now on (or the best this CPU runs, when it runs no wider); returns the path in use.
    @discardableResult
    public static func use(_ path: KernelPath) -> KernelPath { KernelPath(rawValue: k_set_path(path.rawValue)) ?? .base }

    /// Runs `body` on `path`, then returns to the path in use before.
    public static func with<T>(_ path: KernelPath, _ body: () throws -> T) rethrows -> T {
        let before = current
        use(path)
        defer { use(before) }
        return try body()
    }

    /// Runs `body` on every path this CPU runs, narrowest first, then returns to the path in use.
    public static func forEachAvailable(_ body: (KernelPath) throws -> Void) rethrows {
        for path in available { try with(path) { try body(path) } }
    }

    /// What `LLAVA_KERNELS` asks for that cannot be had, in one line (nil when it is unset or granted).
    public static var environmentProblem: String? {
        let value = ProcessInfo.processInfo.environment["LLAVA_KERNELS"] ?? ""
        let requested = k_path_requested()
        if requested == -1 { return nil }
        guard let asked = KernelPath(rawValue: requested) else {
            return "LLAVA_KERNELS=\(value) names no kernel path (base, avx2, avx512, vnni, amx); using \(current)"
        }
        return asked > best ? "LLAVA_KERNELS=\(value): this CPU runs at most \(best); using \(current)" : nil
    }
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

    /// The kernel path the kernel belongs to.
    public var path: KernelPath {
        switch self {
        case .avx2: .avx2
        case .vnni: .vnni
        case .amx: .amx
        }
    }

    /// Whether this CPU runs the kernel (AMX: once Linux granted the tile state to the process)
    /// on the kernel path in use.
    public var isAvailable: Bool { k_q8_kernels() & (1 << rawValue) != 0 && path <= KernelPath.current }

    /// When set (and available), every int8 product uses this kernel (for measurements).
    public nonisolated(unsafe) static var forced: Int8Kernel?

    /// The kernel for a product with `rows` activation rows: AMX from 16 rows (its tiles are 16
    /// rows tall), else VNNI, else AVX2 up to `avx2MaxRows`. Nil otherwise (longer prompts without
    /// VNNI, and the baseline path), where int8 weights are widened into sgemm.
    public static func best(rows: Int) -> Int8Kernel? {
        if let forced, forced.isAvailable { return forced }
        if rows >= 16, Int8Kernel.amx.isAvailable { return .amx }
        if Int8Kernel.vnni.isAvailable { return .vnni }
        if rows <= avx2MaxRows, Int8Kernel.avx2.isAvailable { return .avx2 }
        return nil
    }

    /// Up to this many rows, int8 products without VNNI run on the AVX2 kernel; longer prompts
    /// widen the weights into sgemm. `kernel-bench --only rows` measures both: on 2 threads of a
    /// 2-core AMD EPYC (AVX2), 1024 × 1024, the AVX2 kernel took 16.5–17.9 µs per row from 4 to
    /// 55 rows and 17–27 µs beyond, widening 34–90 µs per row up to 48 rows, 23–28 µs from 96 to
    /// 128 and 13–17 µs from 448 rows.
    public nonisolated(unsafe) static var avx2MaxRows = 96
}
