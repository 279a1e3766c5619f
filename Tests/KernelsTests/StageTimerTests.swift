import XCTest

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
}
