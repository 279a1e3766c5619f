import ArgumentParser
import Foundation
import VQAEval

/// `--shard I/N`, or `--shard auto` (with `--shard-count N` for Kubernetes): which part of the
/// work this process does.
struct ShardFlags: ParsableArguments {
    @Option(name: .long, help: "Run only the I-th of N contiguous chunks (1-based), e.g. 2/8; auto: this task's chunk of a Slurm job array or a Kubernetes Indexed Job.")
    var shard: String?

    @Option(name: .long, help: "With --shard auto: the number of shards (a Kubernetes Indexed Job's completions; Slurm's comes from SLURM_ARRAY_TASK_COUNT).")
    var shardCount: Int?

    func validate() throws {
        if shardCount != nil && shard != "auto" { throw ValidationError("--shard-count goes with --shard auto") }
        _ = try resolved()
    }

    /// The shard to run, nil when the whole file is run.
    func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Shard? {
        guard let shard else { return nil }
        do {
            if shard == "auto" { return try Shard.fromEnvironment(environment, count: shardCount) }
            return try Shard(parsing: shard)
        } catch {
            throw ValidationError(shard == "auto" ? "\(error)" : "--shard: \(error)")
        }
    }
}
