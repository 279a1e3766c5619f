/// One line of a LLaVA answer file as the scoring scripts see it.
public struct ModelAnswer: Sendable {
    public let id: QuestionID
    /// `text` (the decoded generation, already stripped by LLaVA).
    public let text: String
    /// `prompt`, when the line has one.
    public let prompt: String?
    /// The line records a failure (an `error` field at the top level or in `metadata`, or no
    /// `text`): the question counts as unanswered and wrong.
    public let failed: Bool
    /// 1-based line number.
    public let line: Int
}

/// The answers of a LLaVA answer file, in file order. Unlike the resumable-run reader, the same
/// `question_id` may appear on several lines (MME asks two questions per image under one id);
/// `byID` keeps the last, as the official scripts' dictionaries do.
public struct AnswerSet: Sendable {
    public let path: String
    public let answers: [ModelAnswer]
    public let byID: [QuestionID: ModelAnswer]

    public init(path: String) throws {
        try self.init(path: path, contents: FileBytes.contents(path))
    }

    public init(path: String, contents: [UInt8]) throws {
        self.path = path
        var answers: [ModelAnswer] = []
        var byID: [QuestionID: ModelAnswer] = [:]
        let lines = JSONLines.lines(contents)
        let endsCleanly = contents.last.map { $0 == 0x0A } ?? true
        for (k, (number, bytes)) in lines.enumerated() {
            do {
                let o = try JSONLines.object(bytes)
                guard let raw = o["question_id"] else { throw LineReason("no \"question_id\"") }
                guard let id = QuestionID(raw) else { throw LineReason("\"question_id\" must be an integer or a string, not \(raw)") }
                let text = o["text"]?.stringValue
                if let t = o["text"], t.stringValue == nil, !t.isNull { throw LineReason("\"text\" must be a string") }
                let hasError = (o["error"].map { !$0.isNull } ?? false) || (o["metadata"]?["error"].map { !$0.isNull } ?? false)
                let answer = ModelAnswer(id: id, text: text ?? "", prompt: o["prompt"]?.stringValue,
                                         failed: hasError || text == nil, line: number)
                answers.append(answer)
                byID[id] = answer
            } catch {
                // An incomplete last line left by an interrupted run is not an answer.
                if k == lines.count - 1 && !endsCleanly { break }
                throw EvalFileError.malformed(LineIssue(path: path, line: number, reason: "\(error)"))
            }
        }
        self.answers = answers
        self.byID = byID
    }

    /// The usable answer to `id`: nil when there is no line or the line records a failure.
    public func usable(_ id: QuestionID) -> ModelAnswer? {
        guard let a = byID[id], !a.failed else { return nil }
        return a
    }
}
