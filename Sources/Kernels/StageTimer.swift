import Dispatch
import Foundation

/// Where the time of one question goes, stage by stage: wall nanoseconds accumulated per stage
/// (a vision layer's attention, MLP and merge steps, the projector, the decoder's prefill and
/// decoding, lm_head, sampling). Off unless a recording is running, and then only the stages the
/// code marks with `stage(_:_:)` are timed; off, a stage costs one load and one branch.
public struct StageTimes: Sendable, Equatable {
    /// A stage: its name and, inside the vision tower, the layer it belongs to.
    public struct Key: Hashable, Sendable, Comparable {
        public var layer: Int?
        public var name: String

        public init(layer: Int?, name: String) {
            self.layer = layer
            self.name = name
        }

        /// "vision.layer.3.attention" for a layer's stage, the name alone otherwise.
        public var label: String { layer.map { "vision.layer.\($0).\(name)" } ?? name }

        public static func < (a: Key, b: Key) -> Bool {
            (a.layer ?? -1, a.name) < (b.layer ?? -1, b.name)
        }
    }

    /// Accumulated nanoseconds per stage.
    public var nanoseconds: [Key: UInt64] = [:]
    /// Of those, the nanoseconds the stage's thread ran alone, outside parallel regions (see
    /// `OneThreadClock`).
    public var aloneNanoseconds: [Key: UInt64] = [:]

    public init(nanoseconds: [Key: UInt64] = [:], aloneNanoseconds: [Key: UInt64] = [:]) {
        self.nanoseconds = nanoseconds
        self.aloneNanoseconds = aloneNanoseconds
    }

    public func milliseconds(_ key: Key) -> Double { Double(nanoseconds[key] ?? 0) / 1e6 }

    /// Milliseconds per stage name, summed over the tower's layers ("attention" of every layer).
    public var byName: [String: Double] { Self.sumByName(nanoseconds) }

    /// Milliseconds on one thread per stage name, summed over the tower's layers.
    public var aloneByName: [String: Double] { Self.sumByName(aloneNanoseconds) }

    private static func sumByName(_ ns: [Key: UInt64]) -> [String: Double] {
        var out: [String: Double] = [:]
        for (key, value) in ns { out[key.name, default: 0] += Double(value) / 1e6 }
        return out
    }
}

/// The recorder behind `stage(_:_:)`. One recording at a time, for the whole process: stages
/// may be marked on any thread (they are added under a lock), and the vision tower tells it which
/// layer runs (`layer`), so that merge steps timed deep in the merge code land in their layer.
public final class StageTimer: @unchecked Sendable {
    nonisolated(unsafe) static var active: StageTimer?

    private let lock = NSLock()
    private var times = StageTimes()
    private var currentLayer: Int?

    /// Runs `body` with recording on and returns its result with the stage times it recorded.
    /// Recordings do not nest: an inner one takes over until it ends.
    public static func record<T>(_ body: () throws -> T) rethrows -> (T, StageTimes) {
        let timer = StageTimer()
        let outer = active
        active = timer
        defer { active = outer }
        let result = try body()
        return (result, timer.times)
    }

    /// Whether a recording is running (to skip work that only feeds the recorder).
    public static var isRecording: Bool { active != nil }

    /// The vision layer whose stages are being timed (nil outside the tower).
    public static func setLayer(_ layer: Int?) {
        guard let timer = active else { return }
        timer.lock.lock()
        timer.currentLayer = layer
        timer.lock.unlock()
    }

    func add(_ name: String, _ clock: OneThreadClock) {
        let (ns, alone) = clock.read()
        lock.lock()
        let key = StageTimes.Key(layer: currentLayer, name: name)
        times.nanoseconds[key, default: 0] += ns
        times.aloneNanoseconds[key, default: 0] += alone
        lock.unlock()
    }
}

/// Runs `body`, adding its wall time (and the part of it outside parallel regions) to stage
/// `name` when a recording is running.
@inline(__always)
public func stage<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
    guard let timer = StageTimer.active else { return try body() }
    let clock = OneThreadClock()
    defer { timer.add(name, clock) }
    return try body()
}
