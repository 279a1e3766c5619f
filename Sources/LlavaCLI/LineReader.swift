import CEditLine
import Foundation

/// Reads the chat's input lines. On a terminal: libedit, with line editing (arrows, Ctrl-A/E,
/// Ctrl-W, …) and the session's history (up and down arrows); end of input (Ctrl-D on an empty
/// line) moves to a new line so the shell prompt starts clean. Otherwise: plain lines from stdin,
/// no prompt.
final class LineReader {
    let interactive = isatty(STDIN_FILENO) != 0

    /// The next line without its newline, or nil at the end of input.
    func next(prompt: String) -> String? {
        guard interactive else { return readLine(strippingNewline: true) }
        guard let raw = readline(prompt) else {
            StandardStream.output.write("\n")
            return nil
        }
        defer { free(raw) }
        let line = String(cString: raw)
        if !line.trimmingCharacters(in: .whitespaces).isEmpty { add_history(raw) }
        return line
    }
}
