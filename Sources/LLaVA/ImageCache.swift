import Crypto
import Foundation
import Imaging
import Kernels
import TokenMerging

/// Encoded images (projector output) kept in memory, least recently used evicted first, under
/// a byte budget.
///
/// An entry is keyed by the SHA-256 of the image file's bytes, the preprocessing mode and the
/// merge settings, so two paths with the same content share an entry and a setting change
/// never reuses embeddings made under another. The cached matrices are never written to after
/// insertion; a hit hands out the same matrix. Safe to use from several threads.
public final class ImageCache: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        /// SHA-256 of the file's bytes, lowercase hex.
        public let digest: String
        public let mode: ImageMode
        public let merge: VisionMergeSettings
        /// The question, for a question-aware reducer (its tokens depend on it); nil otherwise.
        public let question: String?

        public init(digest: String, mode: ImageMode, merge: VisionMergeSettings, question: String? = nil) {
            self.digest = digest
            self.mode = mode
            self.merge = merge
            self.question = merge.questionKey(question)
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
                       question: String? = nil, cache: ImageCache) throws -> CachedImage {
        let clock = OneThreadClock()
        return try encode(imageBytes: RGBImage.readFile(imagePath), name: imagePath, mode: mode, merge: merge,
                          question: question, cache: cache, since: clock)
    }

    /// Encoded image bytes (a file's, or decoded from a benchmark's base64 column) → embeddings,
    /// through `cache`, keyed by the bytes' SHA-256; `name` stands for the image in errors.
    public func encode(imageBytes bytes: [UInt8], name: String, mode: ImageMode = .crop,
                       merge: VisionMergeSettings = .none, question: String? = nil, cache: ImageCache,
                       since clock: OneThreadClock = OneThreadClock()) throws -> CachedImage {
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        let key = ImageCache.Key(digest: digest, mode: mode, merge: merge, question: question)
        if let cached = cache.lookup(key) {
            let (imageMs, aloneMs) = clock.readMilliseconds()
            let image = EncodedImage(embeddings: cached.embeddings, sources: cached.sources,
                                     imageMs: imageMs, visionMs: 0, cut: cached.cut, aloneMs: aloneMs)
            return CachedImage(image: image, hit: true, digest: digest)
        }
        let px = try pixels(decoding: bytes, mode: mode, name: name)
        let imageMs = clock.readMilliseconds().elapsed
        let t1 = DispatchTime.now()
        let (embeddings, sources) = try model.encodeImage(pixels: px, merge: merge, question: question)
        let image = EncodedImage(embeddings: embeddings, sources: sources, imageMs: imageMs, visionMs: elapsedMs(since: t1),
                                 cut: try model.config.languageModelCut(merge), aloneMs: clock.readMilliseconds().alone)
        cache.insert(image, for: key)
        return CachedImage(image: image, hit: false, digest: digest)
    }
}

