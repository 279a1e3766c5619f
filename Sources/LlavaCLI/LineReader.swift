import CEditLine
import Foundation

/// Reads the chat's input lines. On a terminal: libedit, with line editing (arrows, Ctrl-A/E,
/// Ctrl-W, …) and the session's history (up and down arrows); end of input (Ctrl-D on an empty
/// line) moves to a new line so the shell prompt starts clean. Otherwise: plain lines from stdin,
/// no prompt.
final class LineReader {
    let interactive = isatty(STDIN_FILENO) != 0

    /// The longest input line: a longer one (endless input such as /dev/zero) is an error.
    static let maxLineBytes = 1 << 20

    /// The next line without its newline, or nil at the end of input.
    func next(prompt: String) throws -> String? {
        guard interactive else { return try plainLine() }
        guard let raw = readline(prompt) else {
            StandardStream.output.write("\n")
            return nil
        }
        defer { free(raw) }
        let line = String(cString: raw)
        if !line.trimmingCharacters(in: .whitespaces).isEmpty { add_history(raw) }
        return line
    }

    /// A line of piped input, read byte by byte up to the cap.
    private func plainLine() throws -> String? {
        var bytes: [UInt8] = []
        while true {
            let c = getchar()
            if c == EOF { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if c == 0x0A { break }
            bytes.append(UInt8(c))
            if bytes.count > Self.maxLineBytes {
                throw CLIError("an input line is longer than \(Self.maxLineBytes) bytes")
            }
        }
        if bytes.last == 0x0D { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
