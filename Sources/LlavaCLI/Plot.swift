import Foundation

// Line charts as hand-written SVG (no plotting dependency), and the optional SVG → PNG step
// through whichever converter is on PATH.

/// One line of a chart.
struct PlotSeries {
    var name: String
    var points: [(x: Double, y: Double)]
}

/// One chart panel: axes, ticks, one polyline per series, a legend.
struct PlotPanel {
    /// A short identifier written into the SVG (`data-panel`), e.g. "ttft".
    var id: String
    var title: String
    var xLabel: String
    var yLabel: String
    var series: [PlotSeries]
    /// Fixed y range (otherwise 0 … a rounded-up maximum).
    var yRange: ClosedRange<Double>? = nil
    /// Suffix of the y tick labels, e.g. "%".
    var yUnit = ""
}

enum SVGPlot {
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    static let width = 760.0
    static let panelHeight = 330.0
    static let top = 64.0
    static let left = 78.0
    static let right = 170.0
    static let bottomAxis = 50.0
    static let gap = 34.0

    /// The chart: a title, a subtitle, then the panels stacked vertically sharing the x range.
    /// Series keep their colour across panels (by name).
    static func render(title: String, subtitle: String, panels: [PlotPanel]) -> String {
        let height = top + Double(panels.count) * (panelHeight + bottomAxis) + Double(max(0, panels.count - 1)) * gap + 16
        let names = panels.flatMap { $0.series.map(\.name) }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let color = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, colors[$0 % colors.count]) })
        let xs = panels.flatMap { $0.series.flatMap { $0.points.map(\.x) } }
        let distinctX = Array(Set(xs)).sorted()
        var xMin = distinctX.first ?? 0, xMax = distinctX.last ?? 1
        if xMin == xMax { xMin -= max(abs(xMin) * 0.05, 0.05); xMax += max(abs(xMax) * 0.05, 0.05) }
        let xTicks = distinctX.count >= 2 && distinctX.count <= 12 ? distinctX : niceTicks(xMin, xMax)
        let pad = (xMax - xMin) * 0.04
        let xDomain = (xMin - pad)...(xMax + pad)

        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(fmt(width))" height="\(fmt(height))" viewBox="0 0 \(fmt(width)) \(fmt(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
        <rect x="0" y="0" width="\(fmt(width))" height="\(fmt(height))" fill="#ffffff"/>
        <text x="\(fmt(width / 2))" y="26" text-anchor="middle" font-size="17" font-weight="bold">\(escape(title))</text>
        <text x="\(fmt(width / 2))" y="46" text-anchor="middle" font-size="12" fill="#555555">\(escape(subtitle))</text>

        """
        for (i, panel) in panels.enumerated() {
            let y0 = top + Double(i) * (panelHeight + bottomAxis + gap)
            s += renderPanel(panel, y0: y0, xDomain: xDomain, xTicks: xTicks, color: color)
        }
        s += "</svg>\n"
        return s
    }

    static func renderPanel(_ p: PlotPanel, y0: Double, xDomain: ClosedRange<Double>, xTicks: [Double],
                            color: [String: String]) -> String {
        let plotW = width - left - right
        let plotH = panelHeight - 30
        let px0 = left, py0 = y0 + 30, py1 = py0 + plotH
        let ys = p.series.flatMap { $0.points.map(\.y) }
        let yDomain: ClosedRange<Double>
        if let r = p.yRange {
            yDomain = r
        } else {
            let top = niceCeiling(max(ys.max() ?? 1, 1e-9) * 1.08)
            yDomain = 0...top
        }
        let yTicks = niceTicks(yDomain.lowerBound, yDomain.upperBound)
        func sx(_ x: Double) -> Double { px0 + (x - xDomain.lowerBound) / (xDomain.upperBound - xDomain.lowerBound) * plotW }
        func sy(_ y: Double) -> Double { py1 - (y - yDomain.lowerBound) / (yDomain.upperBound - yDomain.lowerBound) * plotH }

        var s = "<g class=\"panel\" data-panel=\"\(escape(p.id))\">\n"
        s += "<text x=\"\(fmt(px0 + plotW / 2))\" y=\"\(fmt(y0 + 18))\" text-anchor=\"middle\" font-size=\"14\">\(escape(p.title))</text>\n"
        // Grid and y ticks.
        let yDecimals = decimals(for: yTicks)
        for t in yTicks where yDomain.contains(t) {
            let y = sy(t)
            s += "<line x1=\"\(fmt(px0))\" y1=\"\(fmt(y))\" x2=\"\(fmt(px0 + plotW))\" y2=\"\(fmt(y))\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n"
            s += "<line x1=\"\(fmt(px0 - 5))\" y1=\"\(fmt(y))\" x2=\"\(fmt(px0))\" y2=\"\(fmt(y))\" stroke=\"#333333\" stroke-width=\"1\"/>\n"
            s += "<text x=\"\(fmt(px0 - 8))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\" font-size=\"11\">\(String(format: "%.\(yDecimals)f", t))\(escape(p.yUnit))</text>\n"
        }
        // x ticks.
        let xDecimals = decimals(for: xTicks)
        for t in xTicks where xDomain.contains(t) {
            let x = sx(t)
            s += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(py0))\" x2=\"\(fmt(x))\" y2=\"\(fmt(py1))\" stroke=\"#f0f0f0\" stroke-width=\"1\"/>\n"
            s += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(py1))\" x2=\"\(fmt(x))\" y2=\"\(fmt(py1 + 5))\" stroke=\"#333333\" stroke-width=\"1\"/>\n"
            s += "<text x=\"\(fmt(x))\" y=\"\(fmt(py1 + 18))\" text-anchor=\"middle\" font-size=\"11\">\(String(format: "%.\(xDecimals)f", t))</text>\n"
        }
        // Axes and their labels.
        s += "<line x1=\"\(fmt(px0))\" y1=\"\(fmt(py0))\" x2=\"\(fmt(px0))\" y2=\"\(fmt(py1))\" stroke=\"#333333\" stroke-width=\"1.2\"/>\n"
        s += "<line x1=\"\(fmt(px0))\" y1=\"\(fmt(py1))\" x2=\"\(fmt(px0 + plotW))\" y2=\"\(fmt(py1))\" stroke=\"#333333\" stroke-width=\"1.2\"/>\n"
        s += "<text x=\"\(fmt(px0 + plotW / 2))\" y=\"\(fmt(py1 + 38))\" text-anchor=\"middle\" font-size=\"12\">\(escape(p.xLabel))</text>\n"
        let ly = py0 + plotH / 2
        s += "<text x=\"\(fmt(20))\" y=\"\(fmt(ly))\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 20 \(fmt(ly)))\">\(escape(p.yLabel))</text>\n"
        // Series: one polyline each, with point markers.
        for series in p.series {
            let c = color[series.name] ?? "#000000"
            let pts = series.points.sorted { $0.x < $1.x }
            let coords = pts.map { "\(fmt(sx($0.x))),\(fmt(sy($0.y)))" }.joined(separator: " ")
            s += "<polyline class=\"series\" data-method=\"\(escape(series.name))\" points=\"\(coords)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"/>\n"
            for pt in pts {
                s += "<circle cx=\"\(fmt(sx(pt.x)))\" cy=\"\(fmt(sy(pt.y)))\" r=\"3.5\" fill=\"\(c)\"/>\n"
            }
        }
        // Legend.
        let lx = px0 + plotW + 18
        for (i, series) in p.series.enumerated() {
            let y = py0 + 10 + Double(i) * 20
            let c = color[series.name] ?? "#000000"
            s += "<line x1=\"\(fmt(lx))\" y1=\"\(fmt(y))\" x2=\"\(fmt(lx + 24))\" y2=\"\(fmt(y))\" stroke=\"\(c)\" stroke-width=\"2\"/>\n"
            s += "<circle cx=\"\(fmt(lx + 12))\" cy=\"\(fmt(y))\" r=\"3.5\" fill=\"\(c)\"/>\n"
            s += "<text x=\"\(fmt(lx + 32))\" y=\"\(fmt(y + 4))\" font-size=\"12\">\(escape(series.name))</text>\n"
        }
        s += "</g>\n"
        return s
    }

    /// About five round tick values (1, 2 or 5 × 10^k apart) covering lo … hi.
    static func niceTicks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo else { return [lo] }
        let step = niceStep((hi - lo) / Double(count))
        var ticks: [Double] = []
        var t = (lo / step).rounded(.up) * step
        while t <= hi + step * 1e-9 {
            ticks.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return ticks
    }

    static func niceStep(_ raw: Double) -> Double {
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let f = raw / magnitude
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude
    }

    /// The smallest 1/2/5 × 10^k multiple of a nice step at or above `x`.
    static func niceCeiling(_ x: Double) -> Double {
        let step = niceStep(x / 5)
        return (x / step).rounded(.up) * step
    }

    /// Decimals needed to tell the ticks apart (at most 3).
    static func decimals(for ticks: [Double]) -> Int {
        for d in 0...3 {
            let labels = ticks.map { String(format: "%.\(d)f", $0) }
            if Set(labels).count == ticks.count && zip(labels, ticks).allSatisfy({ abs(Double($0)! - $1) < 1e-9 }) { return d }
        }
        return 3
    }

    static func fmt(_ x: Double) -> String { String(format: "%.2f", x) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// SVG → PNG through `rsvg-convert` or ImageMagick, whichever is on PATH first.
enum SVGConverter {
    /// The converters tried, in order, with their arguments for (svg, png).
    static let candidates: [(name: String, arguments: (String, String) -> [String])] = [
        ("rsvg-convert", { svg, png in ["-b", "white", "-o", png, svg] }),
        ("magick", { svg, png in ["-background", "white", svg, png] }),
        ("convert", { svg, png in ["-background", "white", svg, png] }),
    ]

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = (String(dir) as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Writes `png` from `svg`; returns the converter's name, or nil when none is installed.
    static func convert(svg: String, png: String) throws -> String? {
        guard let (name, arguments, executable) = candidates.lazy
            .compactMap({ c in find(c.name).map { (c.name, c.arguments, $0) } }).first else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments(svg, png)
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: png) else {
            let why = String(decoding: message, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "exit status \(process.terminationStatus)"
            throw CLIError("\(name) could not convert \(svg) to PNG: \(why)")
        }
        return name
    }
}
