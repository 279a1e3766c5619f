import FileAccess
import Foundation

/// A picture preprocessed for LLaVA-1.6: the overview tile first, then the grid tiles row by row,
/// each channels first at the processor's crop size.
public struct AnyResPixelValues: Equatable, Sendable {
    /// `tiles[0]` is the overview (the whole picture), `tiles[1...]` the grid tiles.
    public let tiles: [PixelValues]
    /// The pinpoint, resize, padding and tile grid of the picture.
    public let grid: AnyResGrid

    /// The picture's size, height × width (transformers' `image_sizes`).
    public var imageSize: Resolution { grid.imageSize }
}

/// LLaVA-1.6 ("anyres") preprocessing, matching transformers 5's `LlavaNextImageProcessorPil`
/// (the PIL/NumPy backend). transformers' `AutoImageProcessor` gives that class for a llava-v1.6
/// `preprocessor_config.json` when torchvision cannot be imported or with `backend="pil"`;
/// with torchvision installed it gives the torchvision-backend `LlavaNextImageProcessor`, whose
/// resampling is not Pillow's. The reference fixtures are made with the PIL class
/// (`Scripts/reference/make_anyres_fixtures.py`).
///
/// For a picture (8-bit RGB; greyscale is expanded as Pillow's `convert("RGB")` does):
/// 1. the best pinpoint (`AnyRes.selectBestResolution`);
/// 2. the picture resized with Pillow's filter (`resample`) to `AnyRes.resizedSize`, keeping its
///    aspect ratio, and pasted on a black (value 0) canvas of the pinpoint's size at
///    `AnyRes.padOffsets`: the padding is 0 in 8-bit space, so it becomes (0 − mean) / std after
///    normalizing;
/// 3. the canvas cut into tiles of `tileSize` (the `crop_size` height) row by row;
/// 4. the overview: the whole picture resized to `size` (`shortest_edge` on both sides, or the
///    exact height and width);
/// 5. the overview, then each tile, through CLIPImageProcessor's steps with the same config
///    (`ImageProcessor` in `.crop` mode: resize to `size`, center crop to `crop_size`, rescale,
///    normalize).
/// Steps 2 and 4 resize whatever `do_resize` says, as transformers does.
public struct AnyResProcessor: Sendable {
    public let config: ImageProcessorConfig
    public let pinpoints: [Resolution]
    let tileProcessor: ImageProcessor

    /// `pinpoints` must be non-empty multiples of `config`'s tile size (the `crop_size` height).
    public init(config: ImageProcessorConfig, pinpoints: [Resolution], name: String = "<config>") throws {
        if let problem = config.validationProblem { throw ImageError.invalidConfig(path: name, reason: problem) }
        let checked = try GridPinpoints.validate(
            .array(pinpoints.map { .array([.integer($0.height), .integer($0.width)]) }),
            tileSize: config.cropHeight, path: name)
        self.config = config
        self.pinpoints = checked
        tileProcessor = ImageProcessor(config: config, mode: .crop)
    }

    /// Reads a LLaVA-1.6 `preprocessor_config.json`: the CLIP fields and `image_grid_pinpoints`.
    public init(contentsOfFile path: String) throws {
        let config = try ImageProcessorConfig(contentsOfFile: path)
        let pinpoints = try GridPinpoints.read(contentsOfFile: path, tileSize: config.cropHeight)
        try self.init(config: config, pinpoints: pinpoints, name: path)
    }

    /// The side of the square tiles the padded picture is cut into: transformers takes the
    /// `crop_size` height.
    public var tileSize: Int { config.cropHeight }

    /// The size the overview is resized to before the per-tile steps.
    public var overviewSize: Resolution {
        switch config.size {
        case .shortestEdge(let edge): Resolution(height: edge, width: edge)
        case .exact(let height, let width): Resolution(height: height, width: width)
        }
    }

    /// The pinpoint, resize and tile grid of a height × width picture.
    public func grid(for imageSize: Resolution) -> AnyResGrid {
        // Pinpoints are non-empty and the tile size positive (checked in init).
        guard let grid = AnyResGrid(imageSize: imageSize, pinpoints: pinpoints, tileSize: tileSize) else {
            preconditionFailure("AnyResProcessor.grid: picture \(imageSize) has no pixels")
        }
        return grid
    }

    /// Refuses, before anything is allocated, a picture whose resize to its pinpoint would make a
    /// buffer (either resampling pass) larger than `RGBImage.maxPixelCount` pixels.
    public func checkBuffers(width: Int, height: Int, name: String) throws {
        let limit = try RGBImage.pixelLimit()
        let grid = grid(for: Resolution(height: height, width: width))
        let passes = [(grid.resized.width, height), (width, grid.resized.height), (grid.resolution.width, grid.resolution.height),
                      (overviewSize.width, height), (width, overviewSize.height)]
        for (w, h) in passes {
            let (pixels, overflow) = w.multipliedReportingOverflow(by: h)
            if overflow || pixels > limit {
                throw ImageError.bufferTooLarge(path: name, width: width, height: height, step: "tile it for anyres",
                                                bufferWidth: w, bufferHeight: h)
            }
        }
        try tileProcessor.checkBuffers(width: overviewSize.width, height: overviewSize.height, name: name)
        try tileProcessor.checkBuffers(width: tileSize, height: tileSize, name: name)
    }

    /// The 8-bit stages: the overview resized to `overviewSize` and the grid tiles cut from the
    /// padded picture, before the per-tile resize, crop, rescale and normalize.
    public func prepare(_ image: RGBImage, name: String = "<image>") throws -> (overview: RGBImage, tiles: [RGBImage], grid: AnyResGrid) {
        try checkBuffers(width: image.width, height: image.height, name: name)
        let grid = grid(for: Resolution(height: image.height, width: image.width))
        let resized = image.resized(width: grid.resized.width, height: grid.resized.height, filter: config.resample)
        var canvas = RGBImage(width: grid.resolution.width, height: grid.resolution.height)
        canvas.paste(resized, x: grid.left, y: grid.top)
        var tiles: [RGBImage] = []
        tiles.reserveCapacity(grid.tileCount)
        for row in 0..<grid.rows {
            for column in 0..<grid.columns {
                tiles.append(canvas.cropped(x: column * tileSize, y: row * tileSize, width: tileSize, height: tileSize))
            }
        }
        let overview = image.resized(width: overviewSize.width, height: overviewSize.height, filter: config.resample)
        return (overview, tiles, grid)
    }

    /// The full pipeline: overview first, then the tiles, each as CLIPImageProcessor makes it.
    public func process(_ image: RGBImage, name: String = "<image>") throws -> AnyResPixelValues {
        let (overview, tiles, grid) = try prepare(image, name: name)
        var values: [PixelValues] = []
        values.reserveCapacity(1 + tiles.count)
        for tile in [overview] + tiles {
            values.append(try tileProcessor.process(tile, name: name))
        }
        return AnyResPixelValues(tiles: values, grid: grid)
    }

    /// Reads, decodes and processes an image file.
    public func process(contentsOfFile path: String) throws -> AnyResPixelValues {
        let bytes = try RGBImage.readFile(path)
        let declared = try RGBImage.headerSize(bytes, name: path)
        try RGBImage.checkSize(declared.width, declared.height, format: "image", name: path)
        try checkBuffers(width: declared.width, height: declared.height, name: path)
        return try process(try RGBImage(encoded: bytes, name: path), name: path)
    }
}

extension RGBImage {
    /// The width × height window whose top-left corner is (x, y); parts outside the image are 0.
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> RGBImage {
        if x == 0, y == 0, cropWidth == width, cropHeight == height { return self }
        var out = RGBImage(width: cropWidth, height: cropHeight)
        out.paste(self, x: -x, y: -y)
        return out
    }
}
