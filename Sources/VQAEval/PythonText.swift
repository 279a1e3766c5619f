#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text compared the way the official Python scripts compare `str` values: code point for
/// code point. Swift's `String ==` and `String` hashing use canonical equivalence ("é" equals
/// "e" + U+0301), so every comparison and every dictionary key in scoring goes through this
/// type instead.
public struct PyText: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let scalars: [Unicode.Scalar]

    public init(_ string: String) { scalars = Array(string.unicodeScalars) }
    public init(scalars: [Unicode.Scalar]) { self.scalars = scalars }
    public init(stringLiteral value: String) { self.init(value) }

    public var string: String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    public var description: String { string }
    public var count: Int { scalars.count }
    public var isEmpty: Bool { scalars.isEmpty }

    public static func == (a: PyText, b: PyText) -> Bool { a.scalars == b.scalars }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(scalars.count)
        for s in scalars { hasher.combine(s.value) }
    }
    /// Python's ordering of `str`: by code points.
    public static func < (a: PyText, b: PyText) -> Bool {
        a.scalars.lexicographicallyPrecedes(b.scalars) { $0.value < $1.value }
    }
}

extension String {
    /// Python's `str.lower()`: the full lowercase mapping of each code point ("İ" becomes two),
    /// and capital sigma as final sigma "ς" at the end of a word (Swift's `lowercased()` always
    /// gives "σ").
    public func pythonLowercased() -> String {
        let s = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        for k in s.indices {
            let c = s[k]
            if c.value < 0x80 {
                out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c)
            } else if c.value == 0x03A3 {
                out.append(Self.isFinalSigma(s, at: k) ? "\u{03C2}" : "\u{03C3}")
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }

    /// CPython's rule: a cased letter before (skipping case-ignorable ones) and none after.
    private static func isFinalSigma(_ s: [Unicode.Scalar], at k: Int) -> Bool {
        var j = k - 1
        while j >= 0, s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0, s[j].properties.isCased else { return false }
        j = k + 1
        while j < s.count, s[j].properties.isCaseIgnorable { j += 1 }
        return !(j < s.count && s[j].properties.isCased)
    }

    /// Python's `str.upper()` (full uppercase mapping of each code point).
    public func pythonUppercased() -> String {
        var out = String.UnicodeScalarView()
        for c in unicodeScalars { out.append(contentsOf: c.properties.uppercaseMapping.unicodeScalars) }
        return String(out)
    }

    /// Python's `str.strip()` with no argument.
    public func pythonStripped() -> String { strippingWhitespace() }

    /// Python's `str.strip(chars)`: removes any of `chars` from both ends.
    public func pythonStripped(_ chars: String) -> String {
        let set = Set(chars.unicodeScalars.map(\.value))
        let s = Array(unicodeScalars)
        var lo = 0, hi = s.count
        while lo < hi, set.contains(s[lo].value) { lo += 1 }
        while hi > lo, set.contains(s[hi - 1].value) { hi -= 1 }
        return String(scalars: s[lo..<hi])
    }

    /// Python's `str.rstrip(chars)`.
    public func pythonRightStripped(_ chars: String) -> String {
        let set = Set(chars.unicodeScalars.map(\.value))
        let s = Array(unicodeScalars)
        var hi = s.count
        while hi > 0, set.contains(s[hi - 1].value) { hi -= 1 }
        return String(scalars: s[0..<hi])
    }

    /// Python's `str.split()` with no argument.
    public func pythonSplit() -> [String] { splitOnWhitespace() }

    /// Python's `str.split(sep)`: every occurrence separates, empty pieces kept.
    public func pythonSplit(_ separator: String) -> [String] {
        let t = Array(separator.unicodeScalars)
        let s = Array(unicodeScalars)
        precondition(!t.isEmpty)
        var pieces: [String] = []
        var start = 0, k = 0
        while k + t.count <= s.count {
            if Array(s[k..<k + t.count]) == t {
                pieces.append(String(scalars: s[start..<k]))
                k += t.count
                start = k
            } else {
                k += 1
            }
        }
        pieces.append(String(scalars: s[start..<s.count]))
        return pieces
    }

    /// Python's `str.replace(old, new)`.
    public func pythonReplacing(_ target: String, with replacement: String) -> String {
        replacingAll(target, with: replacement)
    }

    /// Python's `sub in s`.
    public func pythonContains(_ target: String) -> Bool { containsScalars(target) }

    /// Python's `s.find(sub, start)`: the code-point offset of the first occurrence, or nil.
    public func pythonFind(_ target: String, from start: Int = 0) -> Int? {
        let t = Array(target.unicodeScalars), s = Array(unicodeScalars)
        guard start <= s.count, s.count - start >= t.count else { return nil }
        for k in start...(s.count - t.count) where Array(s[k..<k + t.count]) == t { return k }
        return nil
    }

    /// Python's `s.rfind(sub)`.
    public func pythonRFind(_ target: String) -> Int? {
        let t = Array(target.unicodeScalars), s = Array(unicodeScalars)
        guard s.count >= t.count else { return nil }
        for k in stride(from: s.count - t.count, through: 0, by: -1) where Array(s[k..<k + t.count]) == t { return k }
        return nil
    }

    public func pythonHasPrefix(_ prefix: String) -> Bool {
        Array(unicodeScalars).starts(with: Array(prefix.unicodeScalars))
    }

    public func pythonHasSuffix(_ suffix: String) -> Bool {
        Array(unicodeScalars).reversed().starts(with: Array(suffix.unicodeScalars).reversed())
    }

    /// Code points, as Python's `len`.
    public var pythonCount: Int { unicodeScalars.count }

    /// Equality of code points (Python's `==` on `str`).
    public func pyEquals(_ other: String) -> Bool { unicodeScalars.elementsEqual(other.unicodeScalars) }

    public var py: PyText { PyText(self) }

    init<S: Sequence>(scalars: S) where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }
}

/// Python's `round(x, n)` for floats: the double nearest to `x` correctly rounded to `n`
/// decimals (C's `%.*f` rounds the exact binary value, half to even, as CPython does).
public func pythonRound(_ x: Double, _ digits: Int) -> Double {
    guard x.isFinite else { return x }
    let text = formatC(x, decimals: digits)
    return Double(text) ?? x
}

/// `"{:.Nf}".format(x)`: exact decimal rounding of the binary value, half to even on ties.
public func formatC(_ x: Double, decimals: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 400)
    let n = withVaList([x]) { args in
        buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, 400, "%.\(decimals)f", args) }
    }
    guard n > 0 else { return String(x) }
    return String(cString: buffer)
}
