import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Memory figures of this process, for reports.
public enum ProcessMemory {
    /// The largest resident set size so far, in MiB (getrusage's ru_maxrss).
    public static var peakResidentMiB: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
