import ArgumentParser
import Foundation
import Kernels
import LLaVA

@main
struct Llava: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llava",
        abstract: "LLaVA-1.5 on the CPU, with visual-token merging (PiToMe, ToMe) inside the vision tower.",
        discussion: """
        Without --model, the small model shipped in Models/shapes-llava is used.
        Examples:
          llava ask --image Prompts/shapes/images/0000.png "What color is the star?"
          llava ask --model ~/llava-1.5-7b-hf --image photo.jpg --merge pitome --ratio 0.9 "Describe the image."
        """,
        subcommands: [Ask.self, Eval.self, Bench.self, MergeMap.self, Chat.self, Quantize.self]
    )

    /// Fixes the BLAS environment (see `BLASEnvironment`), then parses and runs the command.
    static func main() {
        BLASEnvironment.prepare()
        main(nil)
    }
}
