import Foundation
import XCTest

// The C library's pseudo-terminal calls (declared by <stdlib.h> only with _XOPEN_SOURCE, which
// the Glibc module does not set).
@_silgen_name("posix_openpt") private func c_posix_openpt(_ flags: Int32) -> Int32
@_silgen_name("grantpt") private func c_grantpt(_ fd: Int32) -> Int32
@_silgen_name("unlockpt") private func c_unlockpt(_ fd: Int32) -> Int32
@_silgen_name("ptsname") private func c_ptsname(_ fd: Int32) -> UnsafeMutablePointer<CChar>?

/// Runs `llava` on a pseudo-terminal made by the test (stdin, stdout and stderr all on it), for
/// what only happens on a terminal: line editing in `chat`, the redrawn progress line of `eval`.
final class Terminal: @unchecked Sendable {
    let process = Process()
    private let master: Int32
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private let done = DispatchSemaphore(value: 0)

    init(_ arguments: [String], columns: UInt16 = 80) throws {
        master = c_posix_openpt(O_RDWR | O_NOCTTY)
        guard master >= 0, c_grantpt(master) == 0, c_unlockpt(master) == 0, let name = c_ptsname(master) else {
            throw XCTSkip("no pseudo-terminal available")
        }
        var size = winsize(ws_row: 24, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
        let slave = open(name, O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw XCTSkip("cannot open \(String(cString: name))") }
        let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
        process.executableURL = CLI.executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["LLAVA_HOME": CLI.packageRoot.path, "TERM": "xterm"]) { $1 }
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()
        let master = self.master
        DispatchQueue.global().async { [self] in
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if n <= 0 { break }  // EIO once the child's side is closed
                lock.lock()
                bytes += chunk[0..<n]
                lock.unlock()
            }
            done.signal()
        }
    }

    deinit { close(master) }

    /// Everything the program wrote so far.
    var output: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits until the output holds `text` `count` times (fails after two minutes).
    func waitFor(_ text: String, count: Int = 1, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if output.components(separatedBy: text).count - 1 >= count { return }
            usleep(5_000)
        }
        XCTFail("no \(count)× \(text.debugDescription) in \(output.debugDescription)", file: file, line: line)
    }

    /// Types `text` as keys.
    func type(_ text: String) {
        let data = Array(text.utf8)
        _ = data.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Waits for the program to end; returns its status.
    func finish() -> Int32 {
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("llava did not end: \(output.debugDescription)")
        }
        process.waitUntilExit()
        _ = done.wait(timeout: .now() + 10)
        return process.terminationStatus
    }
}
