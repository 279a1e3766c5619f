import Foundation

/// Writes a `.safetensors` file: the 8-byte header length, the JSON header (padded with spaces
/// to 8-byte alignment) and the tensors' bytes in the given order.
public struct SafeTensorsWriter {
    public struct Entry {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: [UInt8]

        public init(name: String, dtype: String, shape: [Int], bytes: [UInt8]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        public init(name: String, shape: [Int], floats: [Float]) {
            self.init(name: name, dtype: "F32", shape: shape, bytes: floats.withUnsafeBytes(Array.init))
        }
    }

    public var entries: [Entry] = []
    public var metadata: [String: String] = ["format": "pt"]

    public init(entries: [Entry] = []) { self.entries = entries }

    public func data() throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + e.bytes.count]]
            offset += e.bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries { out.append(contentsOf: e.bytes) }
        return out
    }

    public func write(to path: String) throws {
        try data().write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
