import ArgumentParser
import CCairo
import Foundation
import Imaging
import Kernels
import LLaVA
import LlavaBenchmark
import TokenMerging

struct MergeMap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-map",
        abstract: "Draw which image patches ended up in the same visual token (the paper's Fig. 1).",
        discussion: """
        The preprocessed image (at the tower's resolution, enlarged --scale times) is painted \
        token by token: with --style mean (default) each token takes the mean colour of its \
        patches blended with the image, with --style palette each token gets its own distinct \
        colour. Thin dark lines separate tokens (at --scale 3 and above); patches a pruning \
        method dropped are greyed out. The visual-token count goes to stdout.

        Several methods (--merge pitome,tome or --side-by-side pitome,tome) are drawn next to \
        each other after the input image, with a caption under each panel. DCT mixes every \
        patch into every token, so it has no map.

        --out names a .png or an .svg file (the SVG holds the same picture).
        """
    )

    enum Style: String, ExpressibleByArgument, CaseIterable {
        case mean, palette
    }

    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Image file.")
    var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Option(name: .long, help: "Merge method, or several comma-separated for a side-by-side picture.")
    var merge: CommaList<MergeMethod>?
    @Option(name: .long, help: "Methods drawn next to each other, comma-separated (same as a list for --merge).")
    var sideBySide: CommaList<MergeMethod>?
    @Option(name: .long, help: "Fraction of tokens each tower layer keeps (0 < R <= 1).")
    var ratio: Double?
    @Option(name: .long, help: "Token budget: exactly K visual tokens.")
    var keep: Int?
    @Option(name: .long, help: "How merged tokens combine: mean or size.")
    var mergeWeighting: MergeWeighting = .mean
    @Option(name: .long, help: "Merge metric: hidden or keys.")
    var mergeMetric: MergeMetric = .hidden
    @Flag(name: .long, help: "Proportional attention.")
    var propAttn = false
    @Flag(name: .long, help: "PiToMe energy stage at every layer.")
    var pitomeEveryLayer = false
    @Option(name: .long, help: "Seed of the random-drop baseline.")
    var mergeSeed: UInt64 = 0
    @Option(name: .long, help: "VisPruner: the share of --keep chosen by CLS attention (0 ... 1).")
    var importantRatio = MergeOptions().importantRatio
    @Option(name: .long, help: "The question a question-aware reducer (cdpruner) chooses the tokens by.")
    var question: String?
    @Option(name: .long, help: "Output picture: a .png or .svg file.")
    var out: String
    @Option(name: .long, help: "Integer enlargement of the tower-resolution image (default: about 672 pixels for one map, 448 per panel side by side).")
    var scale: Int?
    @Option(name: .long, help: "Token colouring: mean (token's mean colour over the image) or palette (one distinct colour per token).")
    var style: Style = .mean

    var methods: [MergeMethod] { sideBySide?.values ?? merge?.values ?? [] }

    func validate() throws {
        if merge != nil && sideBySide != nil { throw ValidationError("give --merge or --side-by-side, not both") }
        if methods.isEmpty { throw ValidationError("--merge METHOD (or --side-by-side A,B) is required") }
        if let scale, scale < 1 || scale > 64 { throw ValidationError("--scale must be between 1 and 64") }
        if importantRatio != MergeOptions().importantRatio && !methods.contains(where: { $0.reducer.parameters.contains(.importantRatio) }) {
            throw ValidationError("--important-ratio only applies to vispruner")
        }
        let questionAware = methods.filter { $0.needs.contains(.question) }
        if question == nil, let method = questionAware.first {
            throw ValidationError("--merge \(method) chooses the tokens by a question: give --question TEXT")
        }
        if question != nil && questionAware.isEmpty {
            throw ValidationError("--question only applies to a question-aware reducer (cdpruner)")
        }
        if OutputFormat(path: out) == nil {
            throw ValidationError("--out \(out): the picture is written as PNG or SVG, so the name must end in .png or .svg")
        }
        let mappable = MergeMethod.allCases.filter { $0.reducer.tracksSources && $0.site != .decoder }.map(\.rawValue)
        for method in methods where !method.reducer.tracksSources {
            throw ValidationError("\(method) has no merge map: every output token mixes every patch (\(method.reducer.summary)); pick \(mappable.joined(separator: ", "))")
        }
        for method in methods where method.site == .decoder {
            throw ValidationError("\(method) has no merge map: it cuts visual tokens inside the language model, not in the vision tower (\(method.reducer.summary))")
        }
        for method in methods { try validateMergeSettings(settings(method)) }
    }

    /// The methods' settings: each with --ratio or --keep (when it takes an amount) and the
    /// other flags, tracking where every token's patches went.
    var grid: MergeGrid {
        let variant = VisionMergeSettings(options: MergeOptions(weighting: mergeWeighting, pitomeEveryLayer: pitomeEveryLayer,
                                                                seed: mergeSeed, trackSources: true, importantRatio: importantRatio),
                                          metric: mergeMetric, proportionalAttention: propAttn)
        return MergeGrid(methods: methods, ratios: ratio.map { [$0] } ?? [], keeps: keep.map { [$0] } ?? [], variant: variant)
    }

    func settings(_ method: MergeMethod) -> VisionMergeSettings {
        let amount = method.reducer.amount != .none && method.reducer.amount != .fixed
        return grid.settings(method, ratio: amount ? ratio : nil, keep: amount ? keep : nil)
    }

    func run() throws {
        try reportingErrors {
            try draw()
        }
    }

    func draw() throws {
        let directory = try model.resolve()
        let pipeline = try model.loadPipeline(directory, reducers: methods)
        let llava = pipeline.model
        let decoded = try RGBImage(contentsOfFile: image)
        let processor = ImageProcessor(config: pipeline.imageConfig, mode: imageOptions.imageMode)
        let prepared = try processor.prepare(decoded, name: image)
        let pixels = try processor.process(decoded, name: image).data
        let grid = llava.config.vision.imageSize / llava.config.vision.patchSize
        // Default: about 672 pixels for one map, about 448 per panel side by side.
        let scale = self.scale ?? max(1, (methods.count == 1 ? 672 : 448) / prepared.width)
        let skip = llava.config.visionFeatureSelectStrategy.droppedTokens

        var panels: [(image: RGBImage, caption: String)] = []
        for method in methods {
            let s = settings(method)
            let (embeddings, sources) = try llava.encodeImage(pixels: pixels, merge: s, question: question)
            guard let sources else { throw CLIError("\(method.rawValue): the merger kept no source map") }
            let map = MergeMapDrawing(image: prepared, grid: grid, sources: Array(sources.dropFirst(skip)))
            let drawn = map.tokenCount
            let name = s.isActive ? s.label : "none"
            print("\(name): \(embeddings.rows) visual tokens (\(grid * grid) patches; \(drawn) tokens drawn, \(map.droppedPatches) patches dropped)")
            panels.append((map.render(scale: scale, style: style), "\(name): \(embeddings.rows) tokens"))
        }
        let picture: RGBImage
        if panels.count == 1 {
            picture = panels[0].image
        } else {
            let input = MergeMapDrawing.enlarge(prepared, scale: scale)
            picture = MergeMapDrawing.sideBySide([(input, "input \(prepared.width)x\(prepared.height)")] + panels)
        }
        switch OutputFormat(path: out)! {
        case .png: try writePNG(picture, to: out)
        case .svg: try writeSVG(picture, to: out)
        }
        print("wrote \(out) (\(picture.width)x\(picture.height))")
    }
}

enum OutputFormat {
    case png, svg

    /// The format a file name's extension names, or nil.
    init?(path: String) {
        switch (path as NSString).pathExtension.lowercased() {
        case "png": self = .png
        case "svg": self = .svg
        default: return nil
        }
    }
}

/// Writes `image` as an SVG file (the pixels, drawn by cairo, sharp when enlarged).
func writeSVG(_ image: RGBImage, to path: String) throws {
    let pixels = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(image.width), Int32(image.height))
    defer { cairo_surface_destroy(pixels) }
    cairo_surface_flush(pixels)
    if let data = cairo_image_surface_get_data(pixels) {
        let stride = Int(cairo_image_surface_get_stride(pixels))
        for y in 0..<image.height {
            let row = UnsafeMutableRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
            for x in 0..<image.width {
                let c = image[x, y]
                row[x] = UInt32(c.red) << 16 | UInt32(c.green) << 8 | UInt32(c.blue)
            }
        }
    }
    cairo_surface_mark_dirty(pixels)
    let svg = cairo_svg_surface_create(path, Double(image.width), Double(image.height))
    defer { cairo_surface_destroy(svg) }
    let cr = cairo_create(svg)
    cairo_set_source_surface(cr, pixels, 0, 0)
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST)
    cairo_paint(cr)
    cairo_destroy(cr)
    cairo_surface_finish(svg)
    let status = cairo_surface_status(svg)
    guard status == CAIRO_STATUS_SUCCESS else {
        throw CLIError("\(path): cannot write: \(String(cString: cairo_status_to_string(status)))")
    }
}

/// The patch → token assignment of one image and its rendering.
struct MergeMapDrawing {
    let image: RGBImage
    let grid: Int
    /// Token index of every patch (row-major), -1 for a dropped patch.
    let owner: [Int]
    /// Tokens holding at least one patch, numbered 0 ..< tokenCount in order of their first patch.
    let tokenCount: Int

    /// - Parameter sources: the original patch indices held by each visual token.
    init(image: RGBImage, grid: Int, sources: [[Int]]) {
        self.image = image
        self.grid = grid
        var owner = [Int](repeating: -1, count: grid * grid)
        // Number tokens by their first patch so that neighbouring tokens get far-apart palette entries.
        let ordered = sources.filter { !$0.isEmpty }.sorted { $0.min()! < $1.min()! }
        for (t, patches) in ordered.enumerated() {
            for p in patches where p >= 0 && p < owner.count { owner[p] = t }
        }
        // A patch that several tokens hold (PruMerge+ shares neighbours) is drawn with the last of
        // them; only the tokens left holding a patch are numbered.
        let shown = Set(owner.filter { $0 >= 0 }).sorted()
        let number = Dictionary(uniqueKeysWithValues: shown.enumerated().map { ($0.element, $0.offset) })
        self.owner = owner.map { $0 >= 0 ? number[$0]! : -1 }
        tokenCount = shown.count
    }

    var droppedPatches: Int { owner.filter { $0 < 0 }.count }

    static let borderColor = RGB(24, 24, 24)

    /// Visibly distinct, saturated colours (never grey, all different).
    static func palette(_ n: Int) -> [RGB] {
        var colors: [RGB] = []
        var seen = Set<RGB>()
        var i = 0
        while colors.count < n {
            let hue = (Double(i) * 0.618_033_988_75).truncatingRemainder(dividingBy: 1)
            let saturation = [0.85, 0.6, 0.95][(i / 7) % 3]
            let value = [0.95, 0.75, 0.55, 0.85][(i / 3) % 4]
            let c = hsv(hue, saturation, value)
            i += 1
            if c.red == c.green && c.green == c.blue { continue }
            if seen.insert(c).inserted { colors.append(c) }
        }
        return colors
    }

    static func hsv(_ h: Double, _ s: Double, _ v: Double) -> RGB {
        let i = Int(h * 6) % 6
        let f = h * 6 - Double(Int(h * 6))
        let p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s)
        let (r, g, b): (Double, Double, Double) = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
        func byte(_ x: Double) -> UInt8 { UInt8(max(0, min(255, (x * 255).rounded()))) }
        return RGB(byte(r), byte(g), byte(b))
    }

    static func enlarge(_ image: RGBImage, scale: Int) -> RGBImage {
        var out = RGBImage(width: image.width * scale, height: image.height * scale)
        for y in 0..<out.height {
            for x in 0..<out.width { out[x, y] = image[x / scale, y / scale] }
        }
        return out
    }

    func render(scale: Int, style: MergeMap.Style) -> RGBImage {
        let w = image.width, h = image.height
        // Pixel → patch: the tower splits the image into grid × grid patches.
        func patch(_ x: Int, _ y: Int) -> Int { min(y * grid / h, grid - 1) * grid + min(x * grid / w, grid - 1) }
        var sums = [(Double, Double, Double, Double)](repeating: (0, 0, 0, 0), count: tokenCount)
        for y in 0..<h {
            for x in 0..<w {
                let t = owner[patch(x, y)]
                guard t >= 0 else { continue }
                let c = image[x, y]
                sums[t].0 += Double(c.red)
                sums[t].1 += Double(c.green)
                sums[t].2 += Double(c.blue)
                sums[t].3 += 1
            }
        }
        let colors: [RGB]
        switch style {
        case .palette:
            colors = Self.palette(tokenCount)
        case .mean:
            colors = sums.map { RGB(UInt8(($0.0 / $0.3).rounded()), UInt8(($0.1 / $0.3).rounded()), UInt8(($0.2 / $0.3).rounded())) }
        }
        var out = RGBImage(width: w * scale, height: h * scale)
        for y in 0..<out.height {
            for x in 0..<out.width {
                let c = image[x / scale, y / scale]
                let t = owner[patch(x / scale, y / scale)]
                if t < 0 {
                    // Dropped: grey, lighter than the image so that it reads as "gone".
                    let lum = 0.299 * Double(c.red) + 0.587 * Double(c.green) + 0.114 * Double(c.blue)
                    let g = UInt8((110 + 0.4 * lum).rounded())
                    out[x, y] = RGB(g, g, g)
                } else if style == .palette {
                    out[x, y] = colors[t]
                } else {
                    func mix(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((0.7 * Double(a) + 0.3 * Double(b)).rounded()) }
                    out[x, y] = RGB(mix(colors[t].red, c.red), mix(colors[t].green, c.green), mix(colors[t].blue, c.blue))
                }
            }
        }
        if scale >= 3 { drawBorders(&out, scale: scale) }
        return out
    }

    /// A one-pixel line on the right/bottom edge of every patch whose neighbour belongs to another token.
    func drawBorders(_ out: inout RGBImage, scale: Int) {
        let w = image.width, h = image.height
        func patch(_ x: Int, _ y: Int) -> Int { min(y * grid / h, grid - 1) * grid + min(x * grid / w, grid - 1) }
        for y in 0..<out.height {
            for x in 0..<out.width {
                let sx = x / scale, sy = y / scale
                let here = owner[patch(sx, sy)]
                let rightEdge = x % scale == scale - 1 && sx + 1 < w && owner[patch(sx + 1, sy)] != here
                let bottomEdge = y % scale == scale - 1 && sy + 1 < h && owner[patch(sx, sy + 1)] != here
                if rightEdge || bottomEdge { out[x, y] = Self.borderColor }
            }
        }
    }

    static let gap = 8

    /// Panels left to right on white, each with its caption centred underneath.
    static func sideBySide(_ panels: [(image: RGBImage, caption: String)]) -> RGBImage {
        let panelWidth = panels.map(\.image.width).max()!
        let panelHeight = panels.map(\.image.height).max()!
        let longest = panels.map { BitmapFont.width(of: $0.caption, scale: 1) }.max()!
        let textScale = max(1, min(3, (panelWidth - 4) / max(longest, 1)))
        let captionHeight = BitmapFont.height * textScale + 2 * gap
        let width = panels.count * panelWidth + (panels.count + 1) * gap
        let height = gap + panelHeight + captionHeight
        var canvas = RGBImage(width: width, height: height, fill: RGB(255, 255, 255))
        for (i, panel) in panels.enumerated() {
            let x = gap + i * (panelWidth + gap)
            canvas.paste(panel.image, x: x, y: gap)
            let textWidth = BitmapFont.width(of: panel.caption, scale: textScale)
            BitmapFont.draw(panel.caption, into: &canvas, x: x + max(0, (panelWidth - textWidth) / 2),
                            y: gap + panelHeight + gap, scale: textScale, color: RGB(0, 0, 0), maxWidth: panelWidth)
        }
        return canvas
    }
}

/// A 5 × 7 pixel font (upper case, digits and a little punctuation) for captions.
enum BitmapFont {
    static let height = 7
    static let advance = 6

    static let glyphs: [Character: [String]] = [
        "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        "B": ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],
        "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
        "D": ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."],
        "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
        "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
        "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"],
        "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "J": ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
        "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
        "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
        "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
        "N": ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],
        "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
        "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
        "Q": [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],
        "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
        "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
        "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
        "U": ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
        "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
        "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
        "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
        "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
        "Z": ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],
        "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
        "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
        "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
        "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
        "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
        "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
        "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
        "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
        "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
        ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
        ",": [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."],
        "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
        "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
        ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
        "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
        ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
        "/": [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."],
        "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
        "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
    ]

    static func width(of text: String, scale: Int) -> Int {
        text.isEmpty ? 0 : (text.count * advance - 1) * scale
    }

    /// Draws `text` (upper-cased; characters without a glyph leave a space) with its top-left at (x, y).
    static func draw(_ text: String, into image: inout RGBImage, x: Int, y: Int, scale: Int, color: RGB, maxWidth: Int) {
        for (i, ch) in text.uppercased().enumerated() {
            let gx = x + i * advance * scale
            if gx - x + 5 * scale > maxWidth { break }
            guard let rows = glyphs[ch] else { continue }
            for (r, row) in rows.enumerated() {
                for (c, bit) in row.enumerated() where bit == "#" {
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            let px = gx + c * scale + dx, py = y + r * scale + dy
                            if px >= 0 && px < image.width && py >= 0 && py < image.height { image[px, py] = color }
                        }
                    }
                }
            }
        }
    }
}

extension MergeMap: Exemplified {
    static let examples = [
        "llava merge-map --image Prompts/shapes/images/shapes_0000.png --merge pitome --ratio 0.9 --out map.png",
        "llava merge-map --image Prompts/shapes/images/shapes_0000.png --side-by-side pitome,tome --keep 16 --out f.png",
    ]
}
