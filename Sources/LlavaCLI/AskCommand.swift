import ArgumentParser
import Foundation
import Kernels
import LLaVA

struct Ask: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a question about an image.",
        discussion: """
        The answer streams to stdout; a timing summary goes to stderr. With --json, stdout gets \
        a single JSON object instead (text, prompt_ids, generated_ids, visual_tokens, timings, …), \
        whose text is byte for byte what streaming prints. The question is the argument or \
        -p/--prompt; a question of - is read from stdin.
        """
    )

    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Image file (PNG, JPEG, BMP, GIF, …).")
    var image: String
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var merge: MergeFlags
    @OptionGroup var generation: GenerationFlags
    @Flag(name: .long, help: "Print one JSON object with the answer, ids and timings instead of streaming text.")
    var json = false
    @Option(name: [.customShort("p"), .long], help: "The question (instead of the argument).")
    var prompt: String?
    @Argument(help: "The question (- reads it from stdin).")
    var question: String?

    func validate() throws {
        if prompt != nil && question != nil { throw ValidationError("give the question once: as the argument or with -p/--prompt, not both") }
        if prompt == nil && question == nil { throw ValidationError("no question: give it as the argument or with -p/--prompt") }
    }

    /// The question as given, or read from stdin for "-".
    func resolvedQuestion() throws -> String {
        let given = prompt ?? question ?? ""
        guard given == "-" else {
            if given.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw CLIError("the question is empty") }
            return given
        }
        // Read in pieces up to a cap: stdin may be endless (/dev/zero, a stream).
        let limit = 1 << 20
        var data = Data()
        while data.count <= limit {
            let piece = FileHandle.standardInput.readData(ofLength: 65536)
            if piece.isEmpty { break }
            data.append(piece)
        }
        if data.count > limit { throw CLIError("the question read from stdin is longer than \(limit) bytes") }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { throw CLIError("the question read from stdin is empty") }
        return text
    }

    func run() throws {
        try reportingErrors {
            let question = try resolvedQuestion()
            let directory = try model.resolve()
            let run = RunSettings(directory: directory, model: model, imageMode: imageOptions.imageMode, merge: merge.settings,
                                  generation: generation)
            let loadStart = Date()
            let pipeline = try model.loadPipeline(run)
            let loadMs = Date().timeIntervalSince(loadStart) * 1000
            let template = try ConversationTemplate.load(run.template)
            let options = run.generation
            _ = try pipeline.model.contextSize(options)
            let settings = run.merge
            _ = try pipeline.model.plannedVisualTokens(settings) // validates the merge settings for this tower
            let stdout = StandardStream.output
            let result = try pipeline.ask(
                imagePath: image, question: question, template: template, mode: run.imageMode,
                merge: settings, options: options,
                onText: json ? nil : { stdout.write($0) })
            if json {
                let report = AskReport(result: result, model: directory, image: image, template: template.name,
                                       merge: settings, seed: options.seed, temperature: options.temperature,
                                       loadMs: loadMs, threads: Threads.count,
                                       quantization: pipeline.model.quantizationLabel,
                                       peakRSSMiB: ProcessMemory.peakResidentMiB)
                stdout.write(try report.jsonLine() + "\n")
                try stdout.check()
            } else {
                stdout.write("\n")
                try stdout.check()
                printTimingSummary(result, loadMs: loadMs, settings: settings, fullTokens: pipeline.model.fullImageTokens)
            }
        }
    }
}

extension Ask: Exemplified {
    static let examples = [
        "llava ask --image Prompts/shapes/images/shapes_0000.png \"What color is the cross?\"",
        "llava ask -m Models/shapes-llava --image Prompts/shapes/images/shapes_0001.png --temp 0.7 --top-k 40 --min-p 0.05 -s 1 -p \"Describe the image.\"",
        "echo \"How many red shapes are there?\" | llava ask --image Prompts/shapes/images/shapes_0000.png --json -",
        "llava ask -m ~/llava-1.5-7b-hf --image Prompts/shapes/images/shapes_0000.png --merge pitome --ratio 0.9 \"Describe the image.\"",
    ]
}
