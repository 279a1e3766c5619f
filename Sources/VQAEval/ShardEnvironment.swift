/// `--shard auto`: the shard a job-array task runs, read from the variables its scheduler sets.
///
/// - Slurm job arrays (`sbatch --array=0-7`): `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`,
///   `SLURM_ARRAY_TASK_STEP` and `SLURM_ARRAY_TASK_COUNT`. Task ids need not start at 0 or 1
///   (`--array=5-8` is shards 1..4) and may step (`--array=0-15:4`); a list with gaps
///   (`--array=1,4,9`) is refused, since its task ids do not say which shard they are.
/// - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` (0-based); Kubernetes does not export the
///   number of completions, so it comes from `count` (`--shard-count N`).
///
/// Slurm is read first. `count`, when given, must agree with Slurm's count. An empty variable
/// counts as unset.
extension Shard {
    public static func fromEnvironment(_ environment: [String: String], count: Int?) throws -> Shard {
        let environment = environment.filter { !$0.value.isEmpty }
        if let count, count < 1 { throw LineReason("--shard-count must be at least 1 (got \(count))") }
        if environment["SLURM_ARRAY_TASK_ID"] != nil { return try slurm(environment, count: count) }
        if environment["JOB_COMPLETION_INDEX"] != nil { return try kubernetes(environment, count: count) }
        throw LineReason("--shard auto: no job array found (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX is not set); give --shard I/N")
    }

    static func slurm(_ environment: [String: String], count: Int?) throws -> Shard {
        let id = try integer("SLURM_ARRAY_TASK_ID", environment)!
        guard let total = try integer("SLURM_ARRAY_TASK_COUNT", environment) else {
            throw LineReason("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
        }
        let min = try integer("SLURM_ARRAY_TASK_MIN", environment) ?? 0
        let step = try integer("SLURM_ARRAY_TASK_STEP", environment) ?? 1
        if let count, count != total {
            throw LineReason("--shard-count \(count) disagrees with SLURM_ARRAY_TASK_COUNT=\(total)")
        }
        let offset = id - min
        guard step >= 1, offset >= 0, offset % step == 0, offset / step < total else {
            throw LineReason("--shard auto: Slurm array task \(id) is not one of \(total) evenly spaced tasks from \(min) by \(step) (SLURM_ARRAY_TASK_MIN/STEP/COUNT); use a range such as --array=0-\(total - 1)")
        }
        return try Shard(index: offset / step + 1, count: total)
    }

    static func kubernetes(_ environment: [String: String], count: Int?) throws -> Shard {
        let index = try integer("JOB_COMPLETION_INDEX", environment)!
        guard let count else {
            throw LineReason("--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of shards; give --shard-count N (the Job's completions)")
        }
        guard index >= 0, index < count else {
            throw LineReason("--shard auto: JOB_COMPLETION_INDEX=\(index) is outside 0..<\(count) (--shard-count \(count))")
        }
        return try Shard(index: index + 1, count: count)
    }

    /// An integer variable, nil when it is not set.
    static func integer(_ name: String, _ environment: [String: String]) throws -> Int? {
        guard let text = environment[name] else { return nil }
        guard let value = Int(text) else {
            throw LineReason("--shard auto: \(name) is not an integer (\"\(text)\")")
        }
        return value
    }
}
