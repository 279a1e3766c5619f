import ArgumentParser
import Foundation
import Kernels
import LLaVA

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk about an image, llama.cpp style: the image is encoded once, every turn reuses the KV cache.",
        discussion: """
        Type a question and press Enter; the answer streams to stdout and a one-line timing \
        goes to stderr. On a terminal the line can be edited (arrows, Ctrl-A, Ctrl-E, Ctrl-W, …) \
        and Up/Down walk through this session's questions; Ctrl-D on an empty line leaves. \
        Piped input is read line by line. Commands:
          /image PATH   load another image (encoded once; the conversation starts over);
                        a file that cannot be used is reported and the current image stays
          /clear        keep the image, forget the turns (the cache is cut back)
          /quit, /exit  leave (end of input does the same)

        The first question goes into the template's first_turn, later ones into its next_turn; \
        with end_of_answer "</s>" (llava-v1) the EOS token closes every answer.
        """
    )

    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Image to talk about (or load one later with /image PATH).")
    var image: String?
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var merge: MergeFlags
    @OptionGroup var generation: GenerationFlags

    func run() throws {
        let session = try reportingErrors {
            let directory = try model.resolve()
            let run = RunSettings(directory: directory, model: model, imageMode: imageOptions.imageMode, merge: merge.settings,
                                  generation: generation)
            let pipeline = try model.loadPipeline(run)
            let template = try ConversationTemplate.load(run.template)
            _ = try pipeline.model.plannedVisualTokens(run.merge)
            let session = try ChatSession(pipeline: pipeline, template: template, imageMode: run.imageMode,
                                          merge: run.merge, options: run.generation)
            if let image { try load(image, into: session) }
            return session
        }
        printErr("llava chat: /image PATH, /clear, /quit (or end of input); context \(session.context) tokens")
        try reportingErrors { try repl(session) }
    }

    func load(_ path: String, into session: ChatSession) throws {
        let info = try session.load(imagePath: path)
        if info.waitsForQuestion {
            printErr(String(format: "llava: image %@: decoded in %.2f ms; the first question chooses its %d visual tokens (--merge %@)",
                            path, info.imageMs, info.visualTokens, session.merge.options.method.rawValue))
            return
        }
        printErr(String(format: "llava: image %@: decode %.2f ms, vision %.2f ms, %d visual tokens; prefix %d tokens prefilled in %.2f ms",
                        path, info.imageMs, info.visionMs, info.visualTokens, info.prefixTokens, info.prefixMs))
    }

    /// Reads and answers lines until the end of input or /quit. Throws only when the answers
    /// cannot be written.
    func repl(_ session: ChatSession) throws {
        let input = LineReader()
        let stdout = StandardStream.output
        // Piped input has no one to read a warning and go on: a turn cut short or refused for
        // a full context makes the whole run fail at the end.
        let piped = isatty(STDIN_FILENO) == 0
        var cut = 0
        turns: while true {
            guard let raw = try input.next(prompt: "> ") else { break }
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("/") {
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                let argument = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
                switch parts[0] {
                case "/quit", "/exit":
                    break turns
                case "/clear":
                    session.clear()
                    printErr("llava: conversation cleared (\(session.history.count)/\(session.context) tokens: the image prefix)")
                case "/image":
                    if argument.isEmpty {
                        printErr("llava: usage: /image PATH")
                    } else {
                        do {
                            try load(argument, into: session)
                        } catch {
                            let current = session.imagePath.map { "still talking about \($0)" } ?? "no image loaded"
                            printErr("llava: error: \(String(describing: error)) (\(current))")
                        }
                    }
                default:
                    printErr("llava: unknown command \(parts[0]) (commands: /image PATH, /clear, /quit, /exit)")
                }
                continue
            }
            do {
                let turn = try session.ask(line) { stdout.write($0) }
                stdout.write("\n")
                let decoded = max(0, turn.generation.generatedIds.count - 1)
                printErr(String(format: "llava: prompt %d tokens in %.2f ms, first token %.2f ms, %d more in %.2f ms (%.2f tokens/s), context %d/%d",
                                turn.promptTokens, turn.generation.prefillMs, turn.generation.firstTokenMs, decoded, turn.generation.decodeMs,
                                turn.generation.decodeTokensPerSecond, turn.contextUsed, turn.context))
                if turn.generation.stopReason == .contextFull {
                    cut += 1
                    printErr("llava: the context is full (\(turn.context) tokens): the answer was cut; /clear starts over from the image")
                }
            } catch {
                if case ChatError.contextFull = error { cut += 1 }
                report(error)
            }
            try stdout.check()
        }
        if piped && cut > 0 {
            throw CLIError("the context (\(session.context) tokens) ran out: \(cut) turn\(cut == 1 ? " was" : "s were") cut short or refused")
        }
    }

    /// A failure inside the conversation: one line on stderr, and the chat goes on.
    func report(_ error: Error) {
        printErr("llava: error: \(String(describing: error))")
    }
}

extension Chat: Exemplified {
    static let examples = [
        "llava chat --image Prompts/shapes/images/shapes_0000.png",
        "llava chat --image Prompts/shapes/images/shapes_0002.png --template llava-v1 --merge pitome --ratio 0.9 -c 256",
    ]
}
