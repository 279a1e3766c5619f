import CCairo
import Foundation

// Line charts drawn in-process with cairo: one drawing routine, run once on an SVG surface and
// once on an image surface written as PNG.

/// One line of a chart.
struct PlotSeries {
    var name: String
    var points: [(x: Double, y: Double)]
}

/// One chart panel: axes, ticks, one line per series, a legend.
struct PlotPanel {
    /// A short identifier, e.g. "ttft".
    var id: String
    var title: String
    var yLabel: String
    var series: [PlotSeries]
    /// Fixed y range (otherwise 0 … a rounded-up maximum).
    var yRange: ClosedRange<Double>? = nil
    /// Suffix of the y tick labels, e.g. "%".
    var yUnit = ""
}

/// A title, a subtitle, then panels stacked vertically that share one x axis.
struct Chart {
    var title: String
    var subtitle: String
    var xLabel: String
    var panels: [PlotPanel]
}

enum ChartDrawing {
    /// Line colours, 0xRRGGBB.
    static let colors: [UInt32] = [0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf]
    static let width = 760.0
    static let panelHeight = 330.0
    static let top = 64.0
    static let left = 78.0
    static let right = 170.0
    static let bottomAxis = 50.0
    static let gap = 34.0

    static func height(_ chart: Chart) -> Double {
        let n = Double(chart.panels.count)
        return top + n * (panelHeight + bottomAxis) + max(0, n - 1) * gap + 16
    }

    /// Writes `chart` to `svg` and to `png` (same drawing, same size).
    static func write(_ chart: Chart, svg: String, png: String) throws {
        let w = width, h = height(chart)
        let vector = cairo_svg_surface_create(svg, w, h)
        try check(cairo_surface_status(vector), svg)
        draw(chart, on: vector)
        cairo_surface_finish(vector)
        let vectorStatus = cairo_surface_status(vector)
        cairo_surface_destroy(vector)
        try check(vectorStatus, svg)

        let raster = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(w.rounded(.up)), Int32(h.rounded(.up)))
        defer { cairo_surface_destroy(raster) }
        try check(cairo_surface_status(raster), png)
        draw(chart, on: raster)
        cairo_surface_flush(raster)
        try check(cairo_surface_write_to_png(raster, png), png)
    }

    static func check(_ status: cairo_status_t, _ path: String) throws {
        guard status == CAIRO_STATUS_SUCCESS else {
            throw CLIError("\(path): cannot write the plot: \(String(cString: cairo_status_to_string(status)))")
        }
    }

    /// The drawing routine: white background, title, subtitle, then every panel.
    /// Series keep their colour across panels (by name).
    static func draw(_ chart: Chart, on surface: OpaquePointer?) {
        let cr = cairo_create(surface)
        defer { cairo_destroy(cr) }
        cairo_set_source_rgb(cr, 1, 1, 1)
        cairo_paint(cr)
        text(cr, chart.title, x: width / 2, y: 26, size: 17, bold: true, align: .center)
        text(cr, chart.subtitle, x: width / 2, y: 46, size: 12, align: .center, gray: 0.33)

        var names: [String] = []
        for p in chart.panels { for s in p.series where !names.contains(s.name) { names.append(s.name) } }
        var color: [String: UInt32] = [:]
        for (i, name) in names.enumerated() { color[name] = colors[i % colors.count] }
        let distinctX = Array(Set(chart.panels.flatMap { $0.series.flatMap { $0.points.map(\.x) } })).sorted()
        var xMin = distinctX.first ?? 0, xMax = distinctX.last ?? 1
        if xMin == xMax { xMin -= max(abs(xMin) * 0.05, 0.05); xMax += max(abs(xMax) * 0.05, 0.05) }
        let pad = (xMax - xMin) * 0.04
        // Ticks at the measured x values while their labels have room (about 30 px apart).
        let closest = zip(distinctX, distinctX.dropFirst()).map { $1 - $0 }.min() ?? 0
        let roomy = closest / (xMax - xMin + 2 * pad) * (width - left - right) >= 30
        let xTicks = distinctX.count >= 2 && distinctX.count <= 12 && roomy ? distinctX : niceTicks(xMin, xMax)
        let xDomain = (xMin - pad)...(xMax + pad)
        for (i, panel) in chart.panels.enumerated() {
            let y0 = top + Double(i) * (panelHeight + bottomAxis + gap)
            drawPanel(cr, panel, y0: y0, xLabel: chart.xLabel, xDomain: xDomain, xTicks: xTicks, color: color)
        }
    }

    static func drawPanel(_ cr: OpaquePointer?, _ p: PlotPanel, y0: Double, xLabel: String, xDomain: ClosedRange<Double>,
                          xTicks: [Double], color: [String: UInt32]) {
        let plotW = width - left - right
        let plotH = panelHeight - 30
        let px0 = left, py0 = y0 + 30, py1 = py0 + plotH
        let (yDomain, yTicks) = yAxis(p)
        func sx(_ x: Double) -> Double { px0 + (x - xDomain.lowerBound) / (xDomain.upperBound - xDomain.lowerBound) * plotW }
        func sy(_ y: Double) -> Double { py1 - (y - yDomain.lowerBound) / (yDomain.upperBound - yDomain.lowerBound) * plotH }

        text(cr, p.title, x: px0 + plotW / 2, y: y0 + 18, size: 14, align: .center)
        for (t, label) in zip(yTicks, yTickLabels(p)) {
            line(cr, px0, sy(t), px0 + plotW, sy(t), gray: 0.89, width: 1)
            line(cr, px0 - 5, sy(t), px0, sy(t), gray: 0.2, width: 1)
            text(cr, label, x: px0 - 8, y: sy(t) + 4, size: 11, align: .right)
        }
        let xDecimals = decimals(for: xTicks)
        for t in xTicks where xDomain.contains(t) {
            line(cr, sx(t), py0, sx(t), py1, gray: 0.94, width: 1)
            line(cr, sx(t), py1, sx(t), py1 + 5, gray: 0.2, width: 1)
            text(cr, String(format: "%.\(xDecimals)f", t), x: sx(t), y: py1 + 18, size: 11, align: .center)
        }
        line(cr, px0, py0, px0, py1, gray: 0.2, width: 1.2)
        line(cr, px0, py1, px0 + plotW, py1, gray: 0.2, width: 1.2)
        text(cr, xLabel, x: px0 + plotW / 2, y: py1 + 38, size: 12, align: .center)
        cairo_save(cr)
        cairo_translate(cr, 20, py0 + plotH / 2)
        cairo_rotate(cr, -Double.pi / 2)
        text(cr, p.yLabel, x: 0, y: 0, size: 12, align: .center)
        cairo_restore(cr)

        for series in p.series {
            setColor(cr, color[series.name] ?? 0)
            let points = series.points.sorted { $0.x < $1.x }
            for (i, pt) in points.enumerated() {
                if i == 0 { cairo_move_to(cr, sx(pt.x), sy(pt.y)) } else { cairo_line_to(cr, sx(pt.x), sy(pt.y)) }
            }
            cairo_set_line_width(cr, 2)
            cairo_stroke(cr)
            for pt in points { dot(cr, sx(pt.x), sy(pt.y)) }
        }
        let lx = px0 + plotW + 18
        for (i, series) in p.series.enumerated() {
            let y = py0 + 10 + Double(i) * 20
            setColor(cr, color[series.name] ?? 0)
            cairo_move_to(cr, lx, y)
            cairo_line_to(cr, lx + 24, y)
            cairo_set_line_width(cr, 2)
            cairo_stroke(cr)
            dot(cr, lx + 12, y)
            text(cr, series.name, x: lx + 32, y: y + 4, size: 12)
        }
    }

    static func setColor(_ cr: OpaquePointer?, _ rgb: UInt32) {
        cairo_set_source_rgb(cr, Double(rgb >> 16 & 0xff) / 255, Double(rgb >> 8 & 0xff) / 255, Double(rgb & 0xff) / 255)
    }

    enum Align { case left, center, right }

    /// Text with cairo's own font selection ("sans-serif" through fontconfig; cairo falls back to
    /// its built-in font when no font is installed).
    static func text(_ cr: OpaquePointer?, _ s: String, x: Double, y: Double, size: Double, bold: Bool = false,
                     align: Align = .left, gray: Double = 0) {
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, size)
        var extents = cairo_text_extents_t()
        cairo_text_extents(cr, s, &extents)
        let dx = align == .left ? 0 : align == .center ? extents.x_advance / 2 : extents.x_advance
        cairo_set_source_rgb(cr, gray, gray, gray)
        cairo_move_to(cr, x - dx, y)
        cairo_show_text(cr, s)
        cairo_new_path(cr)
    }

    static func line(_ cr: OpaquePointer?, _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, gray: Double, width: Double) {
        cairo_set_source_rgb(cr, gray, gray, gray)
        cairo_set_line_width(cr, width)
        cairo_move_to(cr, x0, y0)
        cairo_line_to(cr, x1, y1)
        cairo_stroke(cr)
    }

    /// A filled point marker in the current colour.
    static func dot(_ cr: OpaquePointer?, _ x: Double, _ y: Double) {
        cairo_new_sub_path(cr)
        cairo_arc(cr, x, y, 3.5, 0, 2 * Double.pi)
        cairo_fill(cr)
    }

    /// A panel's y range and the ticks drawn inside it: the fixed range, or 0 … a rounded-up
    /// maximum; a panel whose values are all 0 (or that has none) gets 0 … 1, since a vanishing
    /// range would repeat the label "0".
    static func yAxis(_ p: PlotPanel) -> (domain: ClosedRange<Double>, ticks: [Double]) {
        let highest = p.series.flatMap { $0.points.map(\.y) }.max() ?? 0
        let domain = p.yRange ?? 0...(highest > 0 ? niceCeiling(highest * 1.08) : 1)
        return (domain, niceTicks(domain.lowerBound, domain.upperBound).filter { domain.contains($0) })
    }

    /// The y tick labels of a panel, as drawn: just enough decimals to tell them apart, then the unit.
    static func yTickLabels(_ p: PlotPanel) -> [String] {
        let ticks = yAxis(p).ticks
        let d = decimals(for: ticks)
        return ticks.map { String(format: "%.\(d)f", $0) + p.yUnit }
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

    /// The smallest multiple of a nice step (1/2/5 × 10^k, about a tenth of `x`) at or above `x`,
    /// so the axis ends near the data (107 → 120, not 150).
    static func niceCeiling(_ x: Double) -> Double {
        let step = niceStep(x / 10)
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
}
