/// Tells a file of reference answers (an answer key) from a file of model answers, so that a
/// key given where answers are expected is named instead of scored (or overwritten).
public enum AnswerKeyCheck {
    /// Whether the JSON-lines file at `path` holds reference answers: its first lines are
    /// objects with `answer`, `answers` or `label` and none has the model's `text`. A missing
    /// or unreadable file is not a key (the caller reports it as it would otherwise).
    public static func isAnswerKey(_ path: String) -> Bool {
        guard let bytes = try? FileBytes.contents(path) else { return false }
        let objects = JSONLines.lines(bytes).prefix(20).compactMap { try? JSONLines.object($0.bytes) }
        guard !objects.isEmpty else { return false }
        return objects.allSatisfy { o in
            o["text"] == nil && (o["answer"] != nil || o["answers"] != nil || o["label"] != nil)
        }
    }

    /// The one-line refusal for a key given as `--answers`.
    public static func message(_ path: String) -> String {
        "\(path) is an answer key (reference answers, no model \"text\"), not an answer file: give it as --annotations and the model's answers as --answers"
    }
}
