import FileAccess
import Foundation

/// The fields of a Hugging Face `preprocessor_config.json` that CLIPImageProcessor uses. Missing
/// fields take CLIPImageProcessor's defaults; unknown fields are ignored.
public struct ImageProcessorConfig: Decodable, Equatable, Sendable {
    /// How `size` is spelled: `{"shortest_edge": n}` (or a bare integer) keeps the aspect ratio,
    /// `{"height": h, "width": w}` resizes to exactly that size.
    public enum Size: Equatable, Sendable {
        case shortestEdge(Int)
        case exact(height: Int, width: Int)
    }

    public static let clipMean = [0.48145466, 0.4578275, 0.40821073]
    public static let clipStd = [0.26862954, 0.26130258, 0.27577711]

    public var doResize: Bool
    public var size: Size
    public var resample: ResampleFilter
    public var doCenterCrop: Bool
    public var cropHeight: Int
    public var cropWidth: Int
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    /// Recorded for completeness: decoded images are always RGB already.
    public var doConvertRGB: Bool

    public init(doResize: Bool = true, size: Size = .shortestEdge(224), resample: ResampleFilter = .bicubic,
                doCenterCrop: Bool = true, cropHeight: Int = 224, cropWidth: Int = 224,
                doRescale: Bool = true, rescaleFactor: Double = 1.0 / 255.0,
                doNormalize: Bool = true, imageMean: [Double] = clipMean, imageStd: [Double] = clipStd,
                doConvertRGB: Bool = true) {
        self.doResize = doResize
        self.size = size
        self.resample = resample
        self.doCenterCrop = doCenterCrop
        self.cropHeight = cropHeight
        self.cropWidth = cropWidth
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.imageMean = imageMean
        self.imageStd = imageStd
        self.doConvertRGB = doConvertRGB
    }

    /// llava-hf/llava-1.5-7b-hf's preprocessor: CLIP ViT-L/14 at 336 pixels.
    public static let llava15 = ImageProcessorConfig(size: .shortestEdge(336), cropHeight: 336, cropWidth: 336)

    enum CodingKeys: String, CodingKey {
        case doResize = "do_resize", size, resample, doCenterCrop = "do_center_crop", cropSize = "crop_size"
        case doRescale = "do_rescale", rescaleFactor = "rescale_factor", doNormalize = "do_normalize"
        case imageMean = "image_mean", imageStd = "image_std", doConvertRGB = "do_convert_rgb"
    }

    private struct SizeKeys: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ImageProcessorConfig()
        func flag(_ key: CodingKeys, _ fallback: Bool) throws -> Bool {
            try c.decodeIfPresent(Bool.self, forKey: key) ?? fallback
        }
        doResize = try flag(.doResize, defaults.doResize)
        doCenterCrop = try flag(.doCenterCrop, defaults.doCenterCrop)
        doRescale = try flag(.doRescale, defaults.doRescale)
        doNormalize = try flag(.doNormalize, defaults.doNormalize)
        doConvertRGB = try flag(.doConvertRGB, defaults.doConvertRGB)
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? defaults.rescaleFactor

        if let code = try c.decodeIfPresent(Int.self, forKey: .resample) {
            guard let filter = ResampleFilter(rawValue: code) else {
                throw DecodingError.dataCorruptedError(forKey: .resample, in: c,
                                                       debugDescription: "resample \(code) is not a Pillow filter code (0...5)")
            }
            resample = filter
        } else {
            resample = defaults.resample
        }

        size = defaults.size
        if c.contains(.size), try !c.decodeNil(forKey: .size) {
            if let edge = try? c.decode(Int.self, forKey: .size) {
                size = .shortestEdge(edge)
            } else {
                let dict = try c.decode([String: Int?].self, forKey: .size).compactMapValues { $0 }
                switch (dict["shortest_edge"], dict["height"], dict["width"]) {
                case (let edge?, nil, nil) where dict.count == 1:
                    size = .shortestEdge(edge)
                case (nil, let h?, let w?) where dict.count == 2:
                    size = .exact(height: h, width: w)
                default:
                    throw DecodingError.dataCorruptedError(
                        forKey: .size, in: c,
                        debugDescription: "size must be {\"shortest_edge\": n} or {\"height\": h, \"width\": w}, got \(dict.keys.sorted())")
                }
            }
        }

        cropHeight = defaults.cropHeight
        cropWidth = defaults.cropWidth
        if c.contains(.cropSize), try !c.decodeNil(forKey: .cropSize) {
            if let side = try? c.decode(Int.self, forKey: .cropSize) {
                cropHeight = side
                cropWidth = side
            } else {
                let dict = try c.decode([String: Int?].self, forKey: .cropSize).compactMapValues { $0 }
                guard let h = dict["height"], let w = dict["width"], dict.count == 2 else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .cropSize, in: c,
                        debugDescription: "crop_size must be an integer or {\"height\": h, \"width\": w}, got \(dict.keys.sorted())")
                }
                cropHeight = h
                cropWidth = w
            }
        }

        func perChannel(_ key: CodingKeys, _ fallback: [Double]) throws -> [Double] {
            guard c.contains(key), try !c.decodeNil(forKey: key) else { return fallback }
            if let single = try? c.decode(Double.self, forKey: key) { return [single, single, single] }
            let values = try c.decode([Double].self, forKey: key)
            guard values.count == 3 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c,
                                                       debugDescription: "needs 3 values (one per channel), got \(values.count)")
            }
            return values
        }
        imageMean = try perChannel(.imageMean, defaults.imageMean)
        imageStd = try perChannel(.imageStd, defaults.imageStd)
        if let problem = validationProblem {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: problem))
        }
    }

    /// Why the values cannot be used, or nil when they can.
    public var validationProblem: String? {
        let limit = 16384
        switch size {
        case .shortestEdge(let edge) where edge < 1 || edge > limit:
            return "size.shortest_edge \(edge) is outside 1...\(limit)"
        case .exact(let h, let w) where h < 1 || w < 1 || h > limit || w > limit:
            return "size \(h)x\(w) is outside 1...\(limit)"
        default: break
        }
        if cropHeight < 1 || cropWidth < 1 || cropHeight > limit || cropWidth > limit {
            return "crop_size \(cropHeight)x\(cropWidth) is outside 1...\(limit)"
        }
        if !rescaleFactor.isFinite { return "rescale_factor is not finite" }
        if imageMean.count != 3 || imageStd.count != 3 { return "image_mean and image_std need 3 values each" }
        if !imageMean.allSatisfy(\.isFinite) { return "image_mean has a non-finite value" }
        if !imageStd.allSatisfy({ $0.isFinite && $0 != 0 }) { return "image_std needs finite, non-zero values" }
        return nil
    }

    /// Reads a `preprocessor_config.json`; errors name the file.
    public init(contentsOfFile path: String) throws {
        let data: Data
        do { data = Data(try FileAccess.read(path, limit: FileAccess.configByteLimit)) } catch let error as FileAccessError {
            throw ImageError(error)
        }
        do {
            self = try JSONDecoder().decode(ImageProcessorConfig.self, from: data)
        } catch let error as DecodingError {
            throw ImageError.invalidConfig(path: path, reason: Self.summary(of: error))
        } catch {
            throw ImageError.invalidConfig(path: path, reason: "\(error)")
        }
    }

    static func summary(of error: DecodingError) -> String {
        func at(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "" : "\(path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): "
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(at(context.codingPath))expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(at(context.codingPath))expected \(type), found null"
        case .keyNotFound(let key, let context):
            return "\(at(context.codingPath))missing key \(key.stringValue)"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty, context.underlyingError != nil { return "not valid JSON" }
            return "\(at(context.codingPath))\(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
