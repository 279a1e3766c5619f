/// A preprocessed image, channels first: `data[c * height * width + y * width + x]`.
public struct PixelValues: Equatable, Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public var data: [Float]

    public init(channels: Int, height: Int, width: Int, data: [Float]) {
        precondition(data.count == channels * height * width, "PixelValues: \(data.count) values for \(channels)x\(height)x\(width)")
        self.channels = channels
        self.height = height
        self.width = width
        self.data = data
    }
}

/// CLIP image preprocessing as LLaVA-1.5 uses it.
///
/// `.crop` is transformers' CLIPImageProcessor: resize (short side to `shortest_edge`, the long
/// side to ⌊shortest_edge · long / short⌋) with Pillow's resampler on uint8, center crop (zero
/// padding where the image is smaller), then `x · rescale_factor` and `(x − mean) / std` in Float32.
/// `.pad` is the original LLaVA "pad" aspect-ratio mode: the image is first pasted onto a square
/// canvas of side max(w, h), filled with int(mean · 255) per channel, then processed the same way.
public struct ImageProcessor: Sendable {
    public enum Mode: String, Sendable, CaseIterable, Codable {
        case crop, pad
    }

    public let config: ImageProcessorConfig
    public let mode: Mode

    public init(config: ImageProcessorConfig, mode: Mode = .crop) {
        precondition(config.validationProblem == nil, "ImageProcessor: \(config.validationProblem ?? "")")
        self.config = config
        self.mode = mode
    }

    /// The `.pad` background, int(mean · 255) per channel: (122, 116, 104) for the CLIP mean.
    public var padColor: RGB {
        // Clamped in Double first: a mean far outside [0, 1] must not overflow the conversion.
        let c = config.imageMean.map { UInt8(min(max(($0 * 255).rounded(.towardZero), 0), 255)) }
        return RGB(c[0], c[1], c[2])
    }

    /// The size the resize step produces for a width × height input.
    public func resizeTarget(width: Int, height: Int) -> (width: Int, height: Int) {
        switch config.size {
        case .exact(let h, let w):
            return (w, h)
        case .shortestEdge(let edge):
            let (short, long) = width <= height ? (width, height) : (height, width)
            // Python's int(edge * long / short): a correctly rounded division, then truncation.
            let newLong = Int(Double(edge * long) / Double(short))
            return width <= height ? (edge, newLong) : (newLong, edge)
        }
    }

    /// The size `prepare` gives a width × height image (the same for both modes when the
    /// image is square).
    public func outputSize(width: Int, height: Int) -> (width: Int, height: Int) {
        var (w, h) = mode == .pad ? (max(width, height), max(width, height)) : (width, height)
        if config.doResize { (w, h) = resizeTarget(width: w, height: h) }
        if config.doCenterCrop { (w, h) = (config.cropWidth, config.cropHeight) }
        return (w, h)
    }

    /// Refuses, before anything is allocated, an image whose preprocessing would make a buffer
    /// of more than `RGBImage.maxPixelCount` pixels: the `.pad` square of a long thin picture,
    /// or the resized image (and each resampling pass) when the short side is scaled up to the
    /// model's size. `name` is the file named in the error.
    public func checkBuffers(width: Int, height: Int, name: String) throws {
        let limit = try RGBImage.pixelLimit()
        func check(_ w: Int, _ h: Int, _ step: String) throws {
            let (pixels, overflow) = w.multipliedReportingOverflow(by: h)
            if overflow || pixels > limit {
                throw ImageError.bufferTooLarge(path: name, width: width, height: height, step: step, bufferWidth: w, bufferHeight: h)
            }
        }
        var (w, h) = (width, height)
        if mode == .pad, w != h {
            (w, h) = (max(w, h), max(w, h))
            try check(w, h, "pad it to a square")
        }
        if config.doResize {
            if case .shortestEdge(let edge) = config.size {
                let long = max(w, h)
                guard !edge.multipliedReportingOverflow(by: long).overflow else {
                    throw ImageError.bufferTooLarge(path: name, width: width, height: height, step: "resize it",
                                                    bufferWidth: w <= h ? edge : long, bufferHeight: w <= h ? long : edge)
                }
            }
            let target = resizeTarget(width: w, height: h)
            try check(target.width, h, "resize it")
            try check(w, target.height, "resize it")
            try check(target.width, target.height, "resize it")
            (w, h) = target
        }
        if config.doCenterCrop {
            try check(config.cropWidth, config.cropHeight, "crop it")
        }
    }

    /// The uint8 stages: pad to square (in `.pad` mode), resize, center crop. Buffers are checked
    /// first (`checkBuffers`).
    public func prepare(_ image: RGBImage, name: String = "<image>") throws -> RGBImage {
        try checkBuffers(width: image.width, height: image.height, name: name)
        var result = image
        if mode == .pad {
            result = result.expandedToSquare(background: padColor)
        }
        if config.doResize {
            let target = resizeTarget(width: result.width, height: result.height)
            result = result.resized(width: target.width, height: target.height, filter: config.resample)
        }
        if config.doCenterCrop {
            result = result.centerCropped(width: config.cropWidth, height: config.cropHeight)
        }
        return result
    }

    /// The full pipeline: `prepare`, then rescale and normalize into Float32, channels first.
    public func process(_ image: RGBImage, name: String = "<image>") throws -> PixelValues {
        let prepared = try prepare(image, name: name)
        let table = valueTable()
        let plane = prepared.width * prepared.height
        var data = [Float](repeating: 0, count: 3 * plane)
        prepared.pixels.withUnsafeBufferPointer { pixels in
            data.withUnsafeMutableBufferPointer { out in
                for c in 0..<3 {
                    let lookup = table[c]
                    for i in 0..<plane {
                        out[c * plane + i] = lookup[Int(pixels[3 * i + c])]
                    }
                }
            }
        }
        return PixelValues(channels: 3, height: prepared.height, width: prepared.width, data: data)
    }

    /// Decodes an encoded image after checking, from its header alone, that its size and the
    /// buffers preprocessing would make are within the pixel limit.
    public func decode(_ bytes: [UInt8], name: String) throws -> RGBImage {
        let declared = try RGBImage.headerSize(bytes, name: name)
        try RGBImage.checkSize(declared.width, declared.height, format: "image", name: name)
        try checkBuffers(width: declared.width, height: declared.height, name: name)
        return try RGBImage(encoded: bytes, name: name)
    }

    /// Reads, decodes and processes an image file.
    public func process(contentsOfFile path: String) throws -> PixelValues {
        try process(try decode(RGBImage.readFile(path), name: path), name: path)
    }

    /// The output value of each uint8 input value, per channel. transformers multiplies in double
    /// precision and rounds to Float32, then subtracts and divides in Float32.
    func valueTable() -> [[Float]] {
        (0..<3).map { c in
            let mean = Float(config.imageMean[c])
            let std = Float(config.imageStd[c])
            return (0..<256).map { v in
                var x = config.doRescale ? Float(Double(v) * config.rescaleFactor) : Float(v)
                if config.doNormalize { x = (x - mean) / std }
                return x
            }
        }
    }
}

extension RGBImage {
    /// LLaVA's `expand2square`: a square of side max(width, height) filled with `background`,
    /// with the image pasted at ((side − width) / 2, 0) or (0, (side − height) / 2).
    public func expandedToSquare(background: RGB) -> RGBImage {
        if width == height { return self }
        let side = max(width, height)
        var canvas = RGBImage(width: side, height: side, fill: background)
        if width > height {
            canvas.paste(self, x: 0, y: (width - height) / 2)
        } else {
            canvas.paste(self, x: (height - width) / 2, y: 0)
        }
        return canvas
    }

    /// transformers' `center_crop`: the window starts at ⌊(size − crop) / 2⌋ on each axis (a
    /// negative start when the image is smaller), and whatever falls outside the image is 0.
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) -> RGBImage {
        precondition(cropWidth > 0 && cropHeight > 0, "crop size must be positive, got \(cropWidth)x\(cropHeight)")
        func floorHalf(_ v: Int) -> Int { v >= 0 ? v / 2 : -((-v + 1) / 2) }
        let left = floorHalf(width - cropWidth)
        let top = floorHalf(height - cropHeight)
        if left == 0, top == 0, cropWidth == width, cropHeight == height { return self }
        var out = RGBImage(width: cropWidth, height: cropHeight)
        out.paste(self, x: -left, y: -top)
        return out
    }
}
