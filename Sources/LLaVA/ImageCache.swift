import Foundation
import Imaging
import Kernels
import TokenMerging

/// Encoded images (projector output) kept in memory, least recently used evicted first, under
/// a byte budget.
///
/// An entry is keyed by the SHA-256 of the image file's bytes, the preprocessing mode and every
/// merge setting, so two paths with the same content share an entry and a setting change
/// never reuses embeddings made under another. The cached matrices are never written to after
/// insertion; a hit hands out the same matrix. Safe to use from several threads.
public final class ImageCache: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        /// SHA-256 of the file's bytes, lowercase hex.
        public let digest: String
        public let mode: ImageMode
        /// Every field of the merge settings (method, ratio, keep, weighting, metric, …).
        public let merge: String

        public init(digest: String, mode: ImageMode, merge settings: VisionMergeSettings) {
            self.digest = digest
            self.mode = mode
            let o = settings.options
            merge = [
                o.method.rawValue, o.ratio.map { "\($0)" } ?? "-", o.keep.map { "\($0)" } ?? "-", o.weighting.rawValue,
                "\(o.pitomeEveryLayer)", "\(o.alpha)", "\(o.marginBase)", "\(o.seed)", "\(o.trackSources)",
                settings.metric.rawValue, "\(settings.proportionalAttention)",
            ].joined(separator: "|")
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var evictions = 0
        public var entries = 0
        public var bytes = 0
        public var budgetBytes = 0
    }

    /// Default budget: 512 MiB (about 50 images of LLaVA-1.5-7B, 576 × 4096 floats each).
    public static let defaultBudgetBytes = 512 << 20

    private struct Entry {
        var image: EncodedImage
        var bytes: Int
        var previous: Key?
        var next: Key?
    }

    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    /// Most recently used end of the list, and least recently used end.
    private var newest: Key?
    private var oldest: Key?
    private var stats: Statistics

    public init(budgetBytes: Int = ImageCache.defaultBudgetBytes) {
        stats = Statistics(budgetBytes: max(0, budgetBytes))
    }

    public var statistics: Statistics {
        lock.lock()
        defer { lock.unlock() }
        return stats
    }

    /// Memory an encoded image holds.
    public static func footprint(_ image: EncodedImage) -> Int {
        let m = image.embeddings
        let sources = image.sources.map { $0.reduce(0) { $0 + $1.count * MemoryLayout<Int>.stride + 32 } } ?? 0
        return m.capacityRows * m.cols * MemoryLayout<Float>.stride + sources + 256
    }

    /// The cached image for `key` (counted as a hit, and made the most recently used), or nil
    /// (counted as a miss).
    public func lookup(_ key: Key) -> EncodedImage? {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = entries[key] else {
            stats.misses += 1
            return nil
        }
        stats.hits += 1
        unlink(key)
        pushNewest(key)
        return entry.image
    }

    /// Stores `image` under `key`, evicting the least recently used entries to stay within the
    /// budget. An image larger than the whole budget is not stored.
    public func insert(_ image: EncodedImage, for key: Key) {
        let size = ImageCache.footprint(image)
        lock.lock()
        defer { lock.unlock() }
        if entries[key] != nil { remove(key) }
        guard size <= stats.budgetBytes else { return }
        while stats.bytes + size > stats.budgetBytes, let victim = oldest {
            remove(victim)
            stats.evictions += 1
        }
        entries[key] = Entry(image: image, bytes: size)
        pushNewest(key)
        stats.bytes += size
        stats.entries = entries.count
    }

    public func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        entries = [:]
        newest = nil
        oldest = nil
        stats.bytes = 0
        stats.entries = 0
    }

    // The recency list threads through the entries by key (previous = newer, next = older).

    private func unlink(_ key: Key) {
        guard let e = entries[key] else { return }
        if let p = e.previous { entries[p]!.next = e.next } else { newest = e.next }
        if let n = e.next { entries[n]!.previous = e.previous } else { oldest = e.previous }
        entries[key]!.previous = nil
        entries[key]!.next = nil
    }

    private func pushNewest(_ key: Key) {
        entries[key]!.next = newest
        entries[key]!.previous = nil
        if let n = newest { entries[n]!.previous = key }
        newest = key
        if oldest == nil { oldest = key }
    }

    private func remove(_ key: Key) {
        guard let e = entries[key] else { return }
        unlink(key)
        entries[key] = nil
        stats.bytes -= e.bytes
        stats.entries = entries.count
    }
}

/// An image encoded through the cache.
public struct CachedImage: Sendable {
    public let image: EncodedImage
    /// True when the embeddings came from the cache (the vision tower did not run).
    public let hit: Bool
    /// SHA-256 of the image file's bytes, lowercase hex.
    public let digest: String
}

extension LlavaPipeline {
    /// Image file → embeddings, through `cache`: the file is read once and hashed; on a hit the
    /// stored embeddings are returned (`visionMs` 0, `imageMs` the read and hash time); on a
    /// miss the bytes are decoded, preprocessed and encoded as `encode(imagePath:mode:merge:)`
    /// does, and stored. Named pipes are read to their end like files.
    public func encode(imagePath: String, mode: ImageMode = .crop, merge: VisionMergeSettings = .none,
                       cache: ImageCache) throws -> CachedImage {
        let t0 = DispatchTime.now()
        let bytes = try ImageFileReader.contents(imagePath)
        let digest = SHA256.hex(bytes)
        let key = ImageCache.Key(digest: digest, mode: mode, merge: merge)
        if let cached = cache.lookup(key) {
            let image = EncodedImage(embeddings: cached.embeddings, sources: cached.sources,
                                     imageMs: elapsedMs(since: t0), visionMs: 0)
            return CachedImage(image: image, hit: true, digest: digest)
        }
        let px = pixels(try RGBImage(encoded: bytes, name: imagePath), mode: mode)
        let imageMs = elapsedMs(since: t0)
        let t1 = DispatchTime.now()
        let (embeddings, sources) = try model.encodeImage(pixels: px, merge: merge)
        let image = EncodedImage(embeddings: embeddings, sources: sources, imageMs: imageMs, visionMs: elapsedMs(since: t1))
        cache.insert(image, for: key)
        return CachedImage(image: image, hit: false, digest: digest)
    }
}

/// Reads a whole image file, with the same one-line errors as the image decoder.
enum ImageFileReader {
    static func contents(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw ImageError.fileNotFound(path: path) }
            throw ImageError.unreadable(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw ImageError.notAFile(path: path, kind: "a directory")
        }
        var out: [UInt8] = []
        if (info.st_mode & S_IFMT) == S_IFREG { out.reserveCapacity(Int(info.st_size)) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > Int(Int32.max) {
                throw ImageError.unreadable(path: path, reason: "more than the 2 GiB an image file may have")
            }
        }
        if out.isEmpty { throw ImageError.emptyFile(path: path) }
        return out
    }
}

/// SHA-256 (FIPS 180-4).
public enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var tail = Array(message[(message.count / 64 * 64)...])
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        let bits = UInt64(message.count) &* 8
        for s in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bits >> UInt64(s))) }
        var w = [UInt32](repeating: 0, count: 64)
        func block(_ p: UnsafePointer<UInt8>) {
            for t in 0..<16 {
                w[t] = UInt32(p[4 * t]) << 24 | UInt32(p[4 * t + 1]) << 16 | UInt32(p[4 * t + 2]) << 8 | UInt32(p[4 * t + 3])
            }
            for t in 16..<64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0..<64 {
                let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[t] &+ w[t]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
            h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
        }
        message.withUnsafeBufferPointer { buf in
            var offset = 0
            while offset + 64 <= buf.count {
                block(buf.baseAddress! + offset)
                offset += 64
            }
        }
        tail.withUnsafeBufferPointer { buf in
            for offset in stride(from: 0, to: buf.count, by: 64) { block(buf.baseAddress! + offset) }
        }
        return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> UInt32(24 - 8 * $0)) } }
    }

    public static func hex(_ message: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        for b in digest(message) {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return out
    }

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
