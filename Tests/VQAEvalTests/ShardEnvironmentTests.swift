import VQAEval
import XCTest

/// `--shard auto`: the shard of a Slurm array task or a Kubernetes Indexed Job pod.
final class ShardEnvironmentTests: XCTestCase {
    func shard(_ environment: [String: String], count: Int? = nil) throws -> Shard {
        try Shard.fromEnvironment(environment, count: count)
    }

    func reason(_ environment: [String: String], count: Int? = nil) -> String {
        do {
            let s = try shard(environment, count: count)
            return "no error (got \(s))"
        } catch {
            return "\(error)"
        }
    }

    func slurm(id: Int, min: Int?, count: Int, step: Int? = nil) -> [String: String] {
        var e = ["SLURM_ARRAY_TASK_ID": "\(id)", "SLURM_ARRAY_TASK_COUNT": "\(count)", "SLURM_JOB_ID": "77"]
        if let min { e["SLURM_ARRAY_TASK_MIN"] = "\(min)" }
        if let step { e["SLURM_ARRAY_TASK_STEP"] = "\(step)" }
        return e
    }

    func testSlurmTaskIdsCountFromTheArraysFirstId() throws {
        // --array=0-3
        XCTAssertEqual(try (0...3).map { try shard(slurm(id: $0, min: 0, count: 4)) },
                       try (1...4).map { try Shard(index: $0, count: 4) })
        // --array=1-4 and --array=5-8: the first task is shard 1 either way.
        XCTAssertEqual(try shard(slurm(id: 1, min: 1, count: 4)), try Shard(index: 1, count: 4))
        XCTAssertEqual(try shard(slurm(id: 4, min: 1, count: 4)), try Shard(index: 4, count: 4))
        XCTAssertEqual(try shard(slurm(id: 7, min: 5, count: 4)), try Shard(index: 3, count: 4))
        // --array=0-15:4 is tasks 0, 4, 8, 12.
        XCTAssertEqual(try shard(slurm(id: 8, min: 0, count: 4, step: 4)), try Shard(index: 3, count: 4))
        // Without SLURM_ARRAY_TASK_MIN, ids start at 0.
        XCTAssertEqual(try shard(slurm(id: 2, min: nil, count: 3)), try Shard(index: 3, count: 3))
        // A matching --shard-count is accepted.
        XCTAssertEqual(try shard(slurm(id: 0, min: 0, count: 2), count: 2), try Shard(index: 1, count: 2))
    }

    func testSlurmArraysThatDoNotNameAShardAreRefused() {
        // --array=1,4,9 has MIN 1, COUNT 3: task 9 is past the third.
        XCTAssertTrue(reason(slurm(id: 9, min: 1, count: 3)).contains("Slurm array task 9 is not one of 3 evenly spaced tasks from 1 by 1"))
        XCTAssertTrue(reason(slurm(id: 5, min: 0, count: 4, step: 4)).contains("is not one of 4 evenly spaced tasks"))
        XCTAssertEqual(reason(slurm(id: 1, min: 0, count: 2), count: 3), "--shard-count 3 disagrees with SLURM_ARRAY_TASK_COUNT=2")
        XCTAssertEqual(reason(["SLURM_ARRAY_TASK_ID": "1"]), "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
        XCTAssertEqual(reason(["SLURM_ARRAY_TASK_ID": "one", "SLURM_ARRAY_TASK_COUNT": "2"]),
                       "--shard auto: SLURM_ARRAY_TASK_ID is not an integer (\"one\")")
    }

    func testKubernetesCompletionIndexIsZeroBasedWithTheCountGiven() throws {
        XCTAssertEqual(try (0..<3).map { try shard(["JOB_COMPLETION_INDEX": "\($0)"], count: 3) },
                       try (1...3).map { try Shard(index: $0, count: 3) })
        XCTAssertTrue(reason(["JOB_COMPLETION_INDEX": "0"]).contains("give --shard-count N"))
        XCTAssertEqual(reason(["JOB_COMPLETION_INDEX": "3"], count: 3), "--shard auto: JOB_COMPLETION_INDEX=3 is outside 0..<3 (--shard-count 3)")
        XCTAssertEqual(reason(["JOB_COMPLETION_INDEX": "0"], count: 0), "--shard-count must be at least 1 (got 0)")
    }

    func testSlurmIsReadFirstAndNothingSetIsAnError() throws {
        var both = slurm(id: 1, min: 0, count: 2)
        both["JOB_COMPLETION_INDEX"] = "0"
        XCTAssertEqual(try shard(both), try Shard(index: 2, count: 2))
        let none = "--shard auto: no job array found (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX is not set); give --shard I/N"
        XCTAssertEqual(reason([:]), none)
        XCTAssertEqual(reason(["SLURM_ARRAY_TASK_ID": "", "JOB_COMPLETION_INDEX": "", "SLURM_JOB_ID": "5"]), none)
    }
}
