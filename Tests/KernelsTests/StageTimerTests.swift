import XCTest

import CKernels
@testable import Kernels

final class StageTimerTests: XCTestCase {
    func testStagesAreRecordedPerLayerOnlyWhileRecording() {
        // Outside a recording nothing is kept, and the body still runs.
        XCTAssertEqual(stage("attention") { 41 + 1 }, 42)
        XCTAssertFalse(StageTimer.isRecording)

        let (value, times) = StageTimer.record { () -> Int in
            XCTAssertTrue(StageTimer.isRecording)
            for layer in 0..<3 {
                StageTimer.setLayer(layer)
                stage("attention") { usleep(200) }
                stage("mlp") {}
                stage("mlp") {}
            }
            StageTimer.setLayer(nil)
            return stage("lm_head") { 7 }
        }
        XCTAssertEqual(value, 7)
        XCTAssertFalse(StageTimer.isRecording)
        XCTAssertEqual(Set(times.nanoseconds.keys.map(\.label)), [
            "vision.layer.0.attention", "vision.layer.1.attention", "vision.layer.2.attention",
            "vision.layer.0.mlp", "vision.layer.1.mlp", "vision.layer.2.mlp", "lm_head",
        ])
        for layer in 0..<3 {
            XCTAssertGreaterThanOrEqual(times.milliseconds(StageTimes.Key(layer: layer, name: "attention")), 0.2)
        }
        XCTAssertEqual(Set(times.byName.keys), ["attention", "mlp", "lm_head"])
        XCTAssertGreaterThanOrEqual(times.byName["attention"]!, 0.6)
        XCTAssertEqual(times.milliseconds(StageTimes.Key(layer: nil, name: "absent")), 0)
    }

    func testTimeAloneExcludesParallelRegions() throws {
        try XCTSkipIf(k_pool_cpu_count() < 2, "one CPU: the pool has no workers, so every loop runs alone")
        let saved = Threads.count
        defer { Threads.set(saved) }
        Threads.set(2)
        let (_, times) = StageTimer.record {
            stage("alone") { usleep(20_000) }
            stage("parallel") {
                parallelFor(2) { _ in
                    usleep(20_000)
                    parallelFor(2) { _ in usleep(5_000) }  // inside a job: counted once, with its job
                }
            }
            stage("both") {
                usleep(20_000)
                parallelFor(2) { _ in usleep(20_000) }
            }
        }
        func ms(_ name: String) -> (all: Double, alone: Double) {
            let key = StageTimes.Key(layer: nil, name: name)
            return (times.milliseconds(key), Double(times.aloneNanoseconds[key] ?? 0) / 1e6)
        }
        // Sleeps last at least as long as asked; the checks leave 5 ms for the scheduler.
        XCTAssertGreaterThanOrEqual(ms("alone").alone, 20)
        XCTAssertEqual(ms("alone").alone, ms("alone").all, accuracy: 0.01)
        XCTAssertGreaterThanOrEqual(ms("parallel").all, 25)
        XCTAssertLessThan(ms("parallel").alone, 5)
        XCTAssertGreaterThanOrEqual(ms("both").alone, 20)
        XCTAssertLessThan(ms("both").alone, ms("both").all - 15)
        XCTAssertEqual(times.aloneByName["alone"]!, ms("alone").alone, accuracy: 1e-9)

        let clock = OneThreadClock()
        usleep(10_000)
        XCTAssertGreaterThanOrEqual(clock.read().alone, 10_000_000)
        let (elapsed, alone) = clock.read()
        XCTAssertLessThanOrEqual(alone, elapsed)
    }
}
