import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library loads (before `main`). Some
/// machines set it to an older core (e.g. Haswell, AVX2 kernels) although the CPU has AVX-512,
/// which costs about a third of the matrix-product speed. Executables call `prepare()` first
/// thing: if the variable is set, the process re-executes itself once without it, so OpenBLAS
/// picks the core from the CPU. `LLAVA_BLAS_CORETYPE=NAME` asks for a specific core instead
/// (it becomes OPENBLAS_CORETYPE for the re-executed process); `LLAVA_BLAS_CORETYPE=keep`
/// leaves the environment as it is.
public enum BLASEnvironment {
    static let marker = "LLAVA_BLAS_REEXEC"

    public static func prepare() {
        let env = ProcessInfo.processInfo.environment
        guard env[marker] == nil else { return }
        let wanted = env["LLAVA_BLAS_CORETYPE"]
        if wanted == "keep" { return }
        let current = env["OPENBLAS_CORETYPE"]
        guard current != nil || wanted != nil, current != wanted else { return }
        var newEnv = env
        newEnv["OPENBLAS_CORETYPE"] = wanted
        newEnv[marker] = current ?? ""
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = newEnv.map { strdup("\($0.key)=\($0.value)") } + [nil]
        execve("/proc/self/exe", &argv, &envp)
        // execve only returns on failure: go on with the environment as it is.
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }

    /// The OPENBLAS_CORETYPE this process started with before `prepare()` re-executed it.
    public static var originalCoreType: String? {
        guard let v = ProcessInfo.processInfo.environment[marker], !v.isEmpty else { return nil }
        return v
    }
}
