import ArgumentParser
import Foundation
import Kernels
import LLaVA

@main
struct Llava: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "llava",
        abstract: "LLaVA-1.5 on the CPU, with visual-token merging (PiToMe, ToMe) inside the vision tower.",
        discussion: """
        Without --model, the small model shipped in Models/shapes-llava is used. Paths under ~/ in \
        the examples stand for a real LLaVA-1.5 checkpoint folder.
        """,
        version: version,
        subcommands: [Ask.self, Eval.self, Bench.self, MergeMap.self, Chat.self, Quantize.self, Serve.self]
    )

    /// Fixes the BLAS environment (see `BLASEnvironment`), then parses and runs the command.
    /// Help and --version print as usual; every other parse or validation error is one line on
    /// stderr and exit status 1.
    static func main() {
        // A short-lived process: freed matrices stay for the next layer (towers 4–6 % faster in
        // interleaved runs on a 2-core AMD EPYC).
        Matrix.keepFreedMemoryForReuse()
        BLASEnvironment.prepare()
        if let problem = KernelPath.environmentProblem { printErr("llava: warning: \(problem)") }
        let arguments = ArgumentCheck.joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))
        do {
            try ArgumentCheck.rejectUnknownHelpTopic(arguments)
            try ArgumentCheck.rejectUnknownAndRepeatedOptions(arguments)
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            // Help and --version come here too (as errors that exit cleanly).
            if exitCode(for: error) == .success, !(error is ExitCode), let command = HelpExamples.command(for: arguments) {
                StandardStream.output.write(Llava.fullMessage(for: error) + "\n" + HelpExamples.section(for: command))
                Foundation.exit(0)
            }
            if exitCode(for: error) == .success || error is ExitCode { exit(withError: error) }
            let message = ArgumentCheck.message(for: error, arguments: arguments)
            if message.isEmpty { exit(withError: error) }
            printErr("llava: error: \(message)")
            Foundation.exit(1)
        }
    }
}

extension Llava: Exemplified {
    static let examples = [
        "llava ask --image Prompts/shapes/images/shapes_0000.png \"What color is the cross?\"",
        "llava ask --model ~/llava-1.5-7b-hf --image Prompts/shapes/images/shapes_0000.png --merge pitome --ratio 0.9 \"Describe the image.\"",
    ]
}
