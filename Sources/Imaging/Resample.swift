import Foundation
import Kernels

/// Pillow's resampling filters, numbered as `PIL.Image.Resampling` (the `resample` field of a
/// preprocessor config).
public enum ResampleFilter: Int, Sendable, CaseIterable, CustomStringConvertible {
    case nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5

    public var description: String {
        switch self {
        case .nearest: "nearest"
        case .lanczos: "lanczos"
        case .bilinear: "bilinear"
        case .bicubic: "bicubic"
        case .box: "box"
        case .hamming: "hamming"
        }
    }

    /// Half-width of the filter at scale 1, in source pixels.
    var support: Double {
        switch self {
        case .nearest, .box: 0.5
        case .bilinear, .hamming: 1.0
        case .bicubic: 2.0
        case .lanczos: 3.0
        }
    }

    /// The filter's weight at distance x. The expressions keep Pillow's operation order so that
    /// the double-precision weights, and therefore the fixed-point ones, come out identical.
    func weight(_ x: Double) -> Double {
        switch self {
        case .nearest, .box:
            return x > -0.5 && x <= 0.5 ? 1.0 : 0.0
        case .bilinear:
            let t = abs(x)
            return t < 1.0 ? 1.0 - t : 0.0
        case .bicubic:
            let a = -0.5
            let t = abs(x)
            if t < 1.0 { return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0 }
            if t < 2.0 { return (((t - 5.0) * t + 8.0) * t - 4.0) * a }
            return 0.0
        case .hamming:
            var t = abs(x)
            if t == 0.0 { return 1.0 }
            if t >= 1.0 { return 0.0 }
            t *= Double.pi
            // The window's constants are single-precision literals in Pillow.
            return sin(t) / t * (Double(Float(0.54)) + Double(Float(0.46)) * cos(t))
        case .lanczos:
            func sinc(_ v: Double) -> Double {
                if v == 0.0 { return 1.0 }
                let p = v * Double.pi
                return sin(p) / p
            }
            return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0
        }
    }
}

extension RGBImage {
    /// Pillow's `Image.resize((width, height), filter)` on an RGB image, bit for bit.
    ///
    /// Convolution filters run as two separable passes, each skipped when its dimension does not
    /// change, in the order Pillow 13 picks (see the body). When shrinking, the filter is
    /// stretched by the reduction factor (antialiasing). Weights are normalised in double
    /// precision, rounded to fixed point with 22 fractional bits, accumulated in 32-bit integers
    /// starting at 2^21 (rounding), and each pass clips its result to 0…255. `.nearest` picks
    /// source pixels at (i + 0.5) · scale as Pillow's affine scaler does.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter = .bicubic) -> RGBImage {
        precondition(newWidth > 0 && newHeight > 0, "resize target must be positive, got \(newWidth)x\(newHeight)")
        if newWidth == width && newHeight == height { return self }
        if filter == .nearest { return nearestResized(width: newWidth, height: newHeight) }
        var image = self
        func horizontal() {
            guard newWidth != image.width else { return }
            let kernel = ResampleKernel(inSize: image.width, outSize: newWidth, filter: filter)
            image = RGBImage(width: newWidth, height: image.height,
                             pixels: horizontalPass(image.pixels, width: image.width, height: image.height, kernel: kernel))
        }
        func vertical() {
            guard newHeight != image.height else { return }
            let kernel = ResampleKernel(inSize: image.height, outSize: newHeight, filter: filter)
            image = RGBImage(width: image.width, height: newHeight,
                             pixels: verticalPass(image.pixels, width: image.width, kernel: kernel))
        }
        // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as
        // many pixels as the width does (earlier versions always went horizontal first). The
        // order matters because each pass rounds and clips to 8 bits.
        if newHeight < height && height - newHeight > 2 * (width - newWidth) {
            vertical()
            horizontal()
        } else {
            horizontal()
            vertical()
        }
        return image
    }

    private func nearestResized(width newWidth: Int, height newHeight: Int) -> RGBImage {
        // Pillow steps through source coordinates by repeated addition of the scale, starting
        // half a step in; the accumulated value is what decides the pixel.
        func sourceIndices(inSize: Int, outSize: Int) -> [Int] {
            let step = Double(Float(inSize)) / Double(outSize)
            var position = step * 0.5
            var indices = [Int](repeating: -1, count: outSize)
            for i in 0..<outSize {
                let index = position < 0 ? -1 : Int(position)
                if index >= 0 && index < inSize { indices[i] = index }
                position += step
            }
            return indices
        }
        let columns = sourceIndices(inSize: width, outSize: newWidth)
        let rows = sourceIndices(inSize: height, outSize: newHeight)
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        for (y, sy) in rows.enumerated() where sy >= 0 {
            for (x, sx) in columns.enumerated() where sx >= 0 {
                let o = (y * newWidth + x) * 3, s = (sy * width + sx) * 3
                out[o] = pixels[s]
                out[o + 1] = pixels[s + 1]
                out[o + 2] = pixels[s + 2]
            }
        }
        return RGBImage(width: newWidth, height: newHeight, pixels: out)
    }
}

/// Fixed-point weights of one resampling pass: for output index i, `count[i]` weights starting
/// at source index `first[i]`, stored at `weights[i * taps ..< i * taps + count[i]]`.
struct ResampleKernel {
    static let precisionBits = 22  // 32 bits − 8 for the pixel − 2 for overshoot of negative lobes

    let taps: Int
    let first: [Int]
    let count: [Int]
    let weights: [Int32]

    init(inSize: Int, outSize: Int, filter: ResampleFilter) {
        // Pillow passes the source extent as a single-precision box.
        let scale = Double(Float(inSize)) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        let one = Double(1 << Self.precisionBits)

        var first = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale
            let inverse = 1.0 / filterScale
            // Truncation toward zero, then clamping, as in Pillow.
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), inSize)
            let n = max(hi - lo, 0)
            var total = 0.0
            for j in 0..<n {
                let w = filter.weight((Double(j + lo) - center + 0.5) * inverse)
                k[j] = w
                total += w
            }
            for j in 0..<n {
                if total != 0.0 { k[j] /= total }
                let scaled = k[j] * one
                weights[i * taps + j] = Int32(scaled < 0 ? -0.5 + scaled : 0.5 + scaled)
            }
            first[i] = lo
            count[i] = n
        }
        self.taps = taps
        self.first = first
        self.count = count
        self.weights = weights
    }
}

@inline(__always)
private func clip8(_ accumulator: Int32) -> UInt8 {
    let v = accumulator >> Int32(ResampleKernel.precisionBits)
    return v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(truncatingIfNeeded: v))
}

private let roundingHalf = Int32(1) << Int32(ResampleKernel.precisionBits - 1)

/// Resamples every row of an interleaved RGB image to `kernel.first.count` columns (rows split
/// over threads).
private func horizontalPass(_ source: [UInt8], width: Int, height: Int, kernel: ResampleKernel) -> [UInt8] {
    let outWidth = kernel.first.count
    var out = [UInt8](repeating: 0, count: outWidth * height * 3)
    source.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            kernel.weights.withUnsafeBufferPointer { weights in
                parallelFor(height, minPerThread: 16, workPerItem: outWidth * 3 * kernel.taps) { rows in
                    for y in rows {
                        let row = src.baseAddress! + y * width * 3
                        let outRow = dst.baseAddress! + y * outWidth * 3
                        for x in 0..<outWidth {
                            let k = weights.baseAddress! + x * kernel.taps
                            var p = row + kernel.first[x] * 3
                            var r = roundingHalf, g = roundingHalf, b = roundingHalf
                            for j in 0..<kernel.count[x] {
                                let w = k[j]
                                r &+= Int32(p[0]) &* w
                                g &+= Int32(p[1]) &* w
                                b &+= Int32(p[2]) &* w
                                p += 3
                            }
                            outRow[3 * x] = clip8(r)
                            outRow[3 * x + 1] = clip8(g)
                            outRow[3 * x + 2] = clip8(b)
                        }
                    }
                }
            }
        }
    }
    return out
}

/// Resamples every column of an interleaved RGB image (rows of `width` pixels) to
/// `kernel.first.count` rows (output rows split over threads).
private func verticalPass(_ source: [UInt8], width: Int, kernel: ResampleKernel) -> [UInt8] {
    let outHeight = kernel.first.count
    let rowLength = width * 3
    var out = [UInt8](repeating: 0, count: outHeight * rowLength)
    source.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            kernel.weights.withUnsafeBufferPointer { weights in
                parallelFor(outHeight, minPerThread: 16, workPerItem: rowLength * kernel.taps) { rows in
                    let acc = UnsafeMutablePointer<Int32>.allocate(capacity: rowLength)
                    defer { acc.deallocate() }
                    for y in rows {
                        for i in 0..<rowLength { acc[i] = roundingHalf }
                        let k = weights.baseAddress! + y * kernel.taps
                        for j in 0..<kernel.count[y] {
                            let w = k[j]
                            let row = src.baseAddress! + (kernel.first[y] + j) * rowLength
                            for i in 0..<rowLength { acc[i] &+= Int32(row[i]) &* w }
                        }
                        let outRow = dst.baseAddress! + y * rowLength
                        for i in 0..<rowLength { outRow[i] = clip8(acc[i]) }
                    }
                }
            }
        }
    }
    return out
}
