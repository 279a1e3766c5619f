import Foundation

/// The arithmetic of LLaVA-1.6 ("anyres", LLaVA-NeXT) as transformers 5 does it: which pinpoint
/// a picture is scaled to, how it is scaled and padded, and which positions of the tiles' feature
/// grid the model keeps. Pure functions of sizes; no pixels.
public enum AnyRes {
    /// transformers' `select_best_resolution`. For each pinpoint the picture is scaled by
    /// s = min(width_p / width, height_p / height) (double precision), the scaled sides are
    /// truncated to integers, the effective resolution is min(their product, the picture's pixel
    /// count) and the wasted one the pinpoint's area minus that. The best pinpoint has the
    /// largest effective resolution, then the smallest waste; on a full tie the earlier entry
    /// stays. A picture too thin to keep a single pixel at any pinpoint has effective resolution
    /// 0 everywhere and gets the least wasteful pinpoint. nil only for an empty list or a
    /// picture without pixels.
    public static func selectBestResolution(imageSize: Resolution, pinpoints: [Resolution]) -> Resolution? {
        let (h, w) = (imageSize.height, imageSize.width)
        guard h > 0, w > 0 else { return nil }
        var best: Resolution?
        var bestEffective = 0
        var leastWasted = Int.max
        for p in pinpoints {
            let scale = min(Double(p.width) / Double(w), Double(p.height) / Double(h))
            let scaledWidth = Int(Double(w) * scale)
            let scaledHeight = Int(Double(h) * scale)
            let effective = min(scaledWidth * scaledHeight, w * h)
            let wasted = p.width * p.height - effective
            if effective > bestEffective || (effective == bestEffective && wasted < leastWasted) {
                best = p
                bestEffective = effective
                leastWasted = wasted
            }
        }
        return best
    }

    /// transformers' `get_patch_output_size`: the size the picture is resized to before padding
    /// to `target`. The side with the smaller scale factor becomes the target's side; the other
    /// is ⌈side · factor⌉ (product in double precision), at most the target's.
    public static func resizedSize(imageSize: Resolution, target: Resolution) -> Resolution {
        let scaleWidth = Double(target.width) / Double(imageSize.width)
        let scaleHeight = Double(target.height) / Double(imageSize.height)
        if scaleWidth < scaleHeight {
            let height = min(Int((Double(imageSize.height) * scaleWidth).rounded(.up)), target.height)
            return Resolution(height: height, width: target.width)
        }
        let width = min(Int((Double(imageSize.width) * scaleHeight).rounded(.up)), target.width)
        return Resolution(height: target.height, width: width)
    }

    /// Where the resized picture is pasted on the zero canvas of `target`:
    /// ⌊(target − resized) / 2⌋ on each axis (the odd pixel goes to the bottom or right).
    public static func padOffsets(resized: Resolution, target: Resolution) -> (top: Int, left: Int) {
        (floorDiv(target.height - resized.height, 2), floorDiv(target.width - resized.width, 2))
    }

    /// Python's `int(round(x, 7))` for x ≥ 0: x rounded to 7 decimals (on its exact binary
    /// value), then truncated. That is ⌊x⌋, plus one when x lies within 5·10⁻⁸ below the next
    /// integer (exactly half-way cannot happen: 5·10⁻⁸ is not a binary fraction).
    static func truncatedRound7(_ x: Double) -> Int {
        precondition(x >= 0 && x.isFinite, "truncatedRound7 needs a finite value ≥ 0, got \(x)")
        let floor = x.rounded(.down)
        let gap = (floor + 1) - x  // exact whenever it is small (Sterbenz)
        return Int(floor) + (isBelowHalfTenMillionth(gap) ? 1 : 0)
    }

    /// Whether the positive double `d` is (exactly) less than 5·10⁻⁸, i.e. d · 2·10⁷ < 1.
    private static func isBelowHalfTenMillionth(_ d: Double) -> Bool {
        guard d > 0 else { return true }
        if d >= 1e-7 { return false }
        // d = m · 2^-k with an integer m < 2^53: compare m · 2·10⁷ with 2^k in 128 bits.
        let m = UInt64(d.significandBitPattern) | (d.isNormal ? (UInt64(1) << 52) : 0)
        let k = 52 - Int(d.exponent)
        if k >= 128 { return true }
        let (high, low) = m.multipliedFullWidth(by: 20_000_000)
        if k >= 64 { return high < (UInt64(1) << UInt64(k - 64)) }
        return high == 0 && low < (UInt64(1) << UInt64(k))
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// How a picture is laid out on its best pinpoint (transformers' `LlavaNextImageProcessor`
/// geometry): the pinpoint, the size it is resized to, where it is pasted and the tile grid.
public struct AnyResGrid: Equatable, Sendable {
    /// The picture, height × width.
    public let imageSize: Resolution
    /// The chosen pinpoint (`select_best_resolution`).
    public let resolution: Resolution
    /// The size the picture is resized to, keeping its aspect ratio (`get_patch_output_size`).
    public let resized: Resolution
    /// Offsets of the resized picture on the zero canvas of `resolution`.
    public let top: Int
    public let left: Int
    /// Tiles of `tileSize` × `tileSize`, `rows` × `columns` of them, read row by row.
    public let tileSize: Int
    public let rows: Int
    public let columns: Int

    /// nil when the list is empty or the picture or the tile size is not positive. Pinpoints
    /// are expected to be multiples of `tileSize` (as `GridPinpoints` checks); otherwise the
    /// counts are rounded down as transformers' model does (`pinpoint // tile`).
    public init?(imageSize: Resolution, pinpoints: [Resolution], tileSize: Int) {
        guard tileSize > 0, let best = AnyRes.selectBestResolution(imageSize: imageSize, pinpoints: pinpoints) else {
            return nil
        }
        self.imageSize = imageSize
        resolution = best
        resized = AnyRes.resizedSize(imageSize: imageSize, target: best)
        (top, left) = AnyRes.padOffsets(resized: resized, target: best)
        self.tileSize = tileSize
        rows = best.height / tileSize
        columns = best.width / tileSize
    }

    public var tileCount: Int { rows * columns }
}

/// One row of the image features LLaVA-1.6 hands to the language model.
public enum AnyResFeature: Equatable, Hashable, Sendable {
    /// Feature `position` (y · side + x) of the overview tile.
    case overview(position: Int)
    /// Feature `position` (y · side + x) of grid tile `tile` (0-based, row by row; it is
    /// pixel tile `tile + 1`, after the overview).
    case tile(tile: Int, position: Int)
    /// The learned `image_newline` vector, closing a kept row of the grid.
    case newline
}

/// Which features of the tiles LLaVA-1.6 keeps, as transformers' `LlavaNextModel` does after the
/// tower (`pack_image_features` with `unpad_image`), and how many image positions its processor
/// counts (`LlavaNextProcessor._get_number_of_features`).
///
/// The grid tiles' features form a grid of `side · rows` × `side · columns` positions (tile
/// (r, c), feature (y, x) sits at row r · side + y, column c · side + x). `unpad_image` then drops
/// the rows (or columns) that show only padding: when the picture is wider than the grid
/// (width / height > grid width / grid height, in double precision) it keeps rows p ..< H − p with
/// p = ⌊(H − int(round(height · (W / width), 7))) / 2⌋, otherwise columns the same way with the
/// roles swapped. Very thin pictures can keep no row (or no column) at all.
///
/// The packed sequence is: the overview's `side²` features, then for each kept row its kept
/// columns' features followed by one `image_newline`. A kept row with no kept column still gets
/// its newline; with no kept row there are no newlines.
public struct AnyResFeatureLayout: Equatable, Sendable {
    public let imageSize: Resolution
    /// Tiles per column and per row of the grid.
    public let gridRows: Int
    public let gridColumns: Int
    /// Features per tile side: the tower's image size / patch size.
    public let side: Int
    /// Kept rows and columns of the `side · gridRows` × `side · gridColumns` feature grid.
    public let keptRows: Range<Int>
    public let keptColumns: Range<Int>

    public init(imageSize: Resolution, gridRows: Int, gridColumns: Int, side: Int) {
        precondition(imageSize.height > 0 && imageSize.width > 0, "AnyResFeatureLayout: picture \(imageSize) has no pixels")
        precondition(gridRows > 0 && gridColumns > 0 && side > 0,
                     "AnyResFeatureLayout: grid \(gridRows)x\(gridColumns) of \(side)x\(side) features")
        self.imageSize = imageSize
        self.gridRows = gridRows
        self.gridColumns = gridColumns
        self.side = side
        let height = side * gridRows, width = side * gridColumns
        let (h, w) = (imageSize.height, imageSize.width)
        var rows = 0..<height, columns = 0..<width
        if Double(w) / Double(h) > Double(width) / Double(height) {
            let kept = AnyRes.truncatedRound7(Double(h) * (Double(width) / Double(w)))
            rows = Self.slice(height, padding: AnyRes.floorDiv(height - kept, 2))
        } else {
            let kept = AnyRes.truncatedRound7(Double(w) * (Double(height) / Double(h)))
            columns = Self.slice(width, padding: AnyRes.floorDiv(width - kept, 2))
        }
        keptRows = rows
        keptColumns = columns
    }

    /// The layout for a picture on its best pinpoint, with tiles of `tileSize` pixels (the
    /// tower's `image_size`) and `patchSize`-pixel patches; nil when no pinpoint applies.
    public init?(imageSize: Resolution, pinpoints: [Resolution], tileSize: Int, patchSize: Int) {
        guard patchSize > 0, tileSize >= patchSize,
              let grid = AnyResGrid(imageSize: imageSize, pinpoints: pinpoints, tileSize: tileSize),
              grid.rows > 0, grid.columns > 0 else { return nil }
        self.init(imageSize: imageSize, gridRows: grid.rows, gridColumns: grid.columns, side: tileSize / patchSize)
    }

    /// Python's `x[p : n - p]` for 0 ≤ p (an empty range when p > n − p).
    private static func slice(_ n: Int, padding: Int) -> Range<Int> {
        let start = min(max(padding, 0), n)
        return start..<max(start, min(n - padding, n))
    }

    /// Features of the overview tile (the CLS token excluded).
    public var overviewCount: Int { side * side }
    /// Kept grid features, without newlines.
    public var unpaddedCount: Int { keptRows.count * keptColumns.count }
    /// One `image_newline` per kept row.
    public var newlineCount: Int { keptRows.count }
    /// Rows the model packs for this picture: overview + kept grid features + newlines.
    public var count: Int { overviewCount + unpaddedCount + newlineCount }

    /// The image positions `LlavaNextProcessor` inserts for this picture: `count`, plus the
    /// tower's extra tokens (`num_additional_image_tokens`, the CLS token) when the vision
    /// feature select strategy is "full", or those minus one when it is "default".
    public func processorCount(additionalTokens: Int = 1, strategyIsFull: Bool = false) -> Int {
        count + additionalTokens - (strategyIsFull ? 0 : 1)
    }

    /// The grid tile (0-based, row by row) and the feature in it at `row`, `column` of the
    /// feature grid.
    public func source(row: Int, column: Int) -> (tile: Int, position: Int) {
        precondition(row >= 0 && row < side * gridRows && column >= 0 && column < side * gridColumns,
                     "feature (\(row), \(column)) is outside the \(side * gridRows)x\(side * gridColumns) grid")
        let tile = (row / side) * gridColumns + column / side
        return (tile, (row % side) * side + column % side)
    }

    /// The packed sequence, in order.
    public var sequence: [AnyResFeature] {
        var out: [AnyResFeature] = (0..<overviewCount).map { .overview(position: $0) }
        out.reserveCapacity(count)
        for row in keptRows {
            for column in keptColumns {
                let (tile, position) = source(row: row, column: column)
                out.append(.tile(tile: tile, position: position))
            }
            out.append(.newline)
        }
        return out
    }
}
