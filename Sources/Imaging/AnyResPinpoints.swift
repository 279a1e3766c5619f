import FileAccess
import Foundation

/// A size in pixels, height first (the order of `image_grid_pinpoints` and of `image_sizes`).
public struct Resolution: Hashable, Sendable, CustomStringConvertible {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    public var description: String { "[\(height), \(width)]" }
}

/// A problem with `image_grid_pinpoints`, in one line naming the file and the field.
public struct AnyResError: Error, CustomStringConvertible, Equatable, Sendable {
    public let path: String
    public let field: String
    public let reason: String

    public init(path: String, field: String, reason: String) {
        self.path = path
        self.field = field
        self.reason = reason
    }

    public var description: String {
        String("\(path): \(field): \(reason)".map { $0.isNewline ? " " : $0 })
    }
}

/// The resolutions LLaVA-1.6 ("anyres") may scale a picture to, read from the
/// `image_grid_pinpoints` field of a `preprocessor_config.json` or a model's `config.json`: a
/// list of `[height, width]` pairs, each side a positive multiple of the tile size.
public enum GridPinpoints {
    /// transformers' default for LLaVA-NeXT (LlavaNextConfig and LlavaNextImageProcessor), for
    /// 336-pixel tiles.
    public static let llavaNextDefault: [Resolution] = [
        Resolution(height: 336, width: 672), Resolution(height: 672, width: 336), Resolution(height: 672, width: 672),
        Resolution(height: 1008, width: 336), Resolution(height: 336, width: 1008),
    ]

    static let field = "image_grid_pinpoints"

    /// Reads `image_grid_pinpoints` from the top level of the JSON file at `path` and checks it
    /// against `tileSize` (the processor's `crop_size` height, or the tower's `image_size`).
    public static func read(contentsOfFile path: String, tileSize: Int) throws -> [Resolution] {
        let bytes: [UInt8]
        do { bytes = try FileAccess.read(path, limit: FileAccess.configByteLimit) } catch let error as FileAccessError {
            throw ImageError(error)
        }
        return try parse(json: Data(bytes), tileSize: tileSize, path: path)
    }

    /// `image_grid_pinpoints` of a JSON object (the text of a config file); `path` names it in errors.
    public static func parse(json: Data, tileSize: Int, path: String) throws -> [Resolution] {
        let document: PinpointJSON
        do { document = try JSONDecoder().decode(PinpointJSON.self, from: json) } catch {
            throw AnyResError(path: path, field: field, reason: "the file is not valid JSON")
        }
        guard case .object(let object) = document else {
            throw AnyResError(path: path, field: field, reason: "the file does not hold a JSON object")
        }
        guard let value = object[field], value != .null else {
            throw AnyResError(path: path, field: field, reason: "missing")
        }
        return try validate(value, tileSize: tileSize, path: path)
    }

    /// Checks a decoded `image_grid_pinpoints` value.
    static func validate(_ value: PinpointJSON, tileSize: Int, path: String) throws -> [Resolution] {
        func fail(_ reason: String) -> AnyResError { AnyResError(path: path, field: field, reason: reason) }
        guard tileSize > 0 else { throw fail("the tile size \(tileSize) is not positive") }
        guard case .array(let items) = value else {
            throw fail("must be a list of [height, width] pairs, got \(value.kind)")
        }
        guard !items.isEmpty else { throw fail("must list at least one [height, width] pair, got an empty list") }
        var result: [Resolution] = []
        for (index, item) in items.enumerated() {
            guard case .array(let pair) = item, pair.count == 2 else {
                throw fail("must be a list of [height, width] pairs; entry \(index) is \(item.kind)")
            }
            var sides: [Int] = []
            for side in pair {
                guard case .integer(let v) = side else {
                    throw fail("entry \(index) must hold two integers, got \(side.kind)")
                }
                sides.append(v)
            }
            let resolution = Resolution(height: sides[0], width: sides[1])
            guard resolution.height > 0, resolution.width > 0 else {
                throw fail("entry \(index) \(resolution) has a side that is not positive")
            }
            guard resolution.height % tileSize == 0, resolution.width % tileSize == 0 else {
                throw fail("entry \(index) \(resolution) is not a multiple of the tile size \(tileSize)")
            }
            result.append(resolution)
        }
        return result
    }
}

/// Just enough JSON to say what a field holds.
enum PinpointJSON: Decodable, Equatable {
    case null, bool(Bool), integer(Int), number(Double), string(String)
    case array([PinpointJSON]), object([String: PinpointJSON])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let v = try? c.decode(Bool.self) {
            self = .bool(v)
        } else if let v = try? c.decode(Int.self) {
            self = .integer(v)
        } else if let v = try? c.decode(Double.self) {
            self = .number(v)
        } else if let v = try? c.decode(String.self) {
            self = .string(v)
        } else if let v = try? c.decode([PinpointJSON].self) {
            self = .array(v)
        } else {
            self = .object(try c.decode([String: PinpointJSON].self))
        }
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .bool(let v): "the boolean \(v)"
        case .integer(let v): "the integer \(v)"
        case .number(let v): "the number \(v)"
        case .string(let v): "the string \"\(v.prefix(40))\""
        case .array(let v): "a list of \(v.count)"
        case .object: "an object"
        }
    }
}
