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
        let json = try Self.header(entries.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: metadata, alignment: 8)
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

extension SafeTensorsWriter {
    /// A tensor whose bytes stay valid in memory (mapped or owned) while the file is written.
    public struct Source {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: UnsafeRawBufferPointer

        public init(name: String, dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }
    }

    /// The JSON header for tensors laid out one after another in the given order, padded with
    /// spaces so that the data section starts at a multiple of `alignment` bytes.
    static func header(_ tensors: [(name: String, dtype: String, shape: [Int], count: Int)], metadata: [String: String],
                       alignment: Int) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.count]]
            offset += t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % alignment != 0 { json.append(0x20) }
        return json
    }

    /// Writes tensors straight from memory in the given order, never holding the whole file: the
    /// header is padded with spaces so the data starts on a 64-byte boundary (a tensor whose
    /// offset is a multiple of 64 is then 64-byte aligned in a mapping). Written to a temporary
    /// file beside `path`, then renamed.
    public static func write(_ sources: [Source], metadata: [String: String], to path: String) throws {
        let json = try header(sources.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: metadata, alignment: 64)
        let temporary = path + ".partial"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw CheckpointError.unreadable(temporary, "cannot create the file")
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            var prefix = Data()
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix.append(contentsOf: $0) }
            try handle.write(contentsOf: prefix + json)
            for s in sources where s.bytes.count > 0 {
                // In pieces of 64 MB so a mapped source is not all resident at once.
                var start = 0
                while start < s.bytes.count {
                    let count = min(1 << 26, s.bytes.count - start)
                    let piece = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: s.bytes.baseAddress! + start),
                                     count: count, deallocator: .none)
                    try handle.write(contentsOf: piece)
                    start += count
                }
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CheckpointError.unreadable(path, "cannot write: \(error.localizedDescription)")
        }
        _ = try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
    }
}
