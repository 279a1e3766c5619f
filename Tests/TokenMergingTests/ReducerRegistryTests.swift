import Foundation
import Kernels
import TokenMerging
import XCTest

/// The registry of reducers: every method is one value found by name, and what the schedule,
/// merger and command line need is asked of it.
final class ReducerRegistryTests: XCTestCase {
    func testEveryReducerIsFoundByItsNameOnce() throws {
        let names = Reducers.all.map { $0.name }
        XCTAssertEqual(Set(names).count, names.count, "duplicate names in \(names)")
        XCTAssertEqual(MergeMethod.allCases.map(\.rawValue), names)
        for name in names {
            let method = try XCTUnwrap(MergeMethod(rawValue: name))
            XCTAssertEqual(method.reducer.name, name)
            XCTAssertFalse(method.reducer.summary.isEmpty, name)
            XCTAssertTrue(Reducers.help.contains("\(name): \(method.reducer.summary)"))
        }
        XCTAssertNil(MergeMethod(rawValue: "foo"))
    }

    func testMethodsRoundTripThroughJSONAndUnknownNamesAreRefused() throws {
        for method in MergeMethod.allCases {
            let data = try JSONEncoder().encode([method])
            XCTAssertEqual(String(decoding: data, as: UTF8.self), "[\"\(method.rawValue)\"]")
            XCTAssertEqual(try JSONDecoder().decode([MergeMethod].self, from: data), [method])
        }
        XCTAssertThrowsError(try JSONDecoder().decode([MergeMethod].self, from: Data("[\"foo\"]".utf8))) { error in
            XCTAssertTrue("\(error)".contains("unknown merge method \"foo\""), "\(error)")
        }
    }

    func testOnlyTowerReducersHaveStagesAndTheirStagesAreTheirOwn() throws {
        for method in MergeMethod.allCases {
            let options = MergeOptions(method: method, ratio: method.reducer.amount == .required ? 0.9 : nil)
            let schedule = try MergeSchedule(options: options, towerDepth: 24, mergeLayers: 23, initialTokens: 577)
            let active = schedule.steps.filter { $0.stage != .none }
            if method.site == .towerLayers {
                XCTAssertFalse(active.isEmpty, "\(method) has no stage")
            } else {
                XCTAssertTrue(active.isEmpty, "\(method) acts at \(method.site) but has tower stages")
                XCTAssertEqual(schedule.tokenCounts.last, 577, "\(method)")
            }
        }
        XCTAssertNotNil(try MergeSchedule(options: MergeOptions(method: .divPrune, keep: 48), towerDepth: 12, mergeLayers: 11,
                                          initialTokens: 65).projectorKeep)
    }

    func testAReducersOwnSettingIsRefusedForAnotherMethod() {
        XCTAssertThrowsError(try MergeOptions(method: .tome, ratio: 0.9, pitomeEveryLayer: true).validate())
        XCTAssertThrowsError(try MergeOptions(method: .tome, ratio: 0.9, fastvLayer: 3).validate())
        XCTAssertThrowsError(try MergeOptions(method: .tome, ratio: 0.9, importantRatio: 0.25).validate()) { error in
            XCTAssertTrue("\(error)".hasPrefix("important-ratio only applies to method"), "\(error)")
        }
        XCTAssertThrowsError(try MergeOptions(method: .pitome, ratio: 0.9, importantRatio: 1.5).validate())
        let options = MergeOptions(method: .pitome, ratio: 0.9, pitomeEveryLayer: true, fastvLayer: 3)
        let tome = options.keepingOnlyParameters(of: .tome)
        XCTAssertEqual(tome.method, .tome)
        XCTAssertFalse(tome.pitomeEveryLayer)
        XCTAssertEqual(tome.fastvLayer, MergeOptions().fastvLayer)
        XCTAssertNoThrow(try tome.validate())
        XCTAssertTrue(options.keepingOnlyParameters(of: .pitome).pitomeEveryLayer)
    }

    func testStagesAreEqualByNameAndDescribeThemselves() {
        XCTAssertEqual(LayerStep.Stage.tome, .tome)
        XCTAssertNotEqual(LayerStep.Stage.tome, .pitome)
        XCTAssertEqual("\(LayerStep.Stage.tofuMerge)", "tofuMerge")
        XCTAssertEqual(MergeSchedule.maxRemoval(stage: .tome, patchTokens: 576), 288)
        XCTAssertEqual(MergeSchedule.maxRemoval(stage: .none, patchTokens: 576), 0)
    }
}
