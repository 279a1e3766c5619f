import FileAccess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Pages are loaded by the kernel on first touch, so
/// mapping a 14 GB checkpoint costs nothing until its tensors are used, and never makes a copy.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let opened: (fd: Int32, size: Int)
        do { opened = try FileAccess.openRegularFile(path) } catch let error as FileAccessError {
            throw CheckpointError(error)
        }
        let fd = opened.fd
        defer { close(fd) }
        size = opened.size
        if size == 0 {
            base = UnsafeRawPointer(bitPattern: 1)!
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw CheckpointError.unreadable(path, "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    /// Drops the whole pages inside [offset, offset + count) from memory (MADV_DONTNEED);
    /// the mapping stays valid and re-reads them from the file on access.
    public func releasePages(offset: Int, count: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset + page - 1) / page * page
        let end = (offset + count) / page * page
        guard end > start, end <= size else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    deinit {
        if size > 0 { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}
