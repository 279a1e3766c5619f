@testable import LlavaCLI
import XCTest

/// The y axis of the sweep and bench charts: distinct labels whatever the data.
final class PlotAxisTests: XCTestCase {
    func panel(_ ys: [Double], range: ClosedRange<Double>? = nil, unit: String = "") -> PlotPanel {
        PlotPanel(id: "p", title: "t", yLabel: "y",
                  series: [PlotSeries(name: "a", points: ys.enumerated().map { (x: Double($0.offset), y: $0.element) })],
                  yRange: range, yUnit: unit)
    }

    func testAPanelOfZerosGetsZeroToOneWithDistinctLabels() {
        let p = panel([0, 0, 0])
        XCTAssertEqual(ChartDrawing.yAxis(p).domain, 0...1)
        let labels = ChartDrawing.yTickLabels(p)
        XCTAssertEqual(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(Set(labels).count, labels.count)
    }

    func testAnEmptyPanelGetsTheSameAxisAsZeros() {
        let p = PlotPanel(id: "p", title: "t", yLabel: "y", series: [])
        XCTAssertEqual(ChartDrawing.yAxis(p).domain, 0...1)
        XCTAssertEqual(Set(ChartDrawing.yTickLabels(p)).count, ChartDrawing.yTickLabels(p).count)
    }

    func testTheAxisEndsNearTheDataAndLabelsCarryTheUnit() {
        let p = panel([12, 99, 107], unit: "%")
        XCTAssertEqual(ChartDrawing.yAxis(p).domain, 0...120)
        XCTAssertEqual(ChartDrawing.yTickLabels(p), ["0%", "50%", "100%"])
    }

    func testSmallValuesGetEnoughDecimalsToBeToldApart() {
        let labels = ChartDrawing.yTickLabels(panel([0.001, 0.004]))
        XCTAssertGreaterThan(labels.count, 2)
        XCTAssertEqual(Set(labels).count, labels.count, "\(labels)")
    }

    func testAFixedRangeKeepsItsTicksInside() {
        let p = panel([0.2, 0.9], range: 0...1)
        XCTAssertEqual(ChartDrawing.yAxis(p).domain, 0...1)
        XCTAssertTrue(ChartDrawing.yAxis(p).ticks.allSatisfy { (0...1).contains($0) })
    }
}
