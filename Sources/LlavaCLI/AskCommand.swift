import ArgumentParser
import Foundation
import Kernels
import LLaVA

struct Ask: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a question about an image.",
        discussion: """
        The answer streams to stdout; a timing summary goes to stderr. With --json, stdout gets \
        a single JSON object instead (text, prompt_ids, generated_ids, visual_tokens, timings, …).
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
    @Argument(help: "The question.")
    var question: String

    func run() throws {
        try reportingErrors {
            let directory = try model.resolve()
            let loadStart = Date()
            let pipeline = try model.loadPipeline(directory)
            let loadMs = Date().timeIntervalSince(loadStart) * 1000
            let template = try ConversationTemplate.load(generation.template)
            let options = generation.options
            let settings = merge.settings
            _ = try pipeline.model.plannedVisualTokens(settings) // validates the merge settings for this tower
            let stdout = FileHandle.standardOutput
            let result = try pipeline.ask(
                imagePath: image, question: question, template: template, mode: imageOptions.imageMode,
                merge: settings, options: options,
                onText: json ? nil : { stdout.write(Data($0.utf8)) })
            if json {
                let report = AskReport(result: result, model: directory, image: image, template: template.name,
                                       merge: settings, seed: options.seed, temperature: options.temperature,
                                       loadMs: loadMs, threads: Threads.count,
                                       quantization: pipeline.model.quantizationLabel,
                                       peakRSSMiB: ProcessMemory.peakResidentMiB)
                print(try report.jsonLine())
            } else {
                print("")
                printTimingSummary(result, loadMs: loadMs, settings: settings, fullTokens: pipeline.model.fullImageTokens)
            }
        }
    }
}
