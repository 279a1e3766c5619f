/// JSON text as Python's `json.dumps` writes it by default: `", "` and `": "` separators,
/// non-ASCII characters escaped as `\uXXXX` (surrogate pairs beyond the BMP), floats in
/// `repr` form. The upload files the official converters write are byte for byte this.
public enum PythonJSON {
    public static func dumps(_ value: JSONValue) -> String {
        var out = ""
        write(value, to: &out)
        return out
    }

    static func write(_ value: JSONValue, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d > 0 ? "Infinity" : "-Infinity" } else { out += pythonRepr(d) }
        case .string(let s): JSONValue.writeString(s, to: &out, asciiOnly: true)
        case .array(let a):
            out += "["
            for (k, v) in a.enumerated() {
                if k > 0 { out += ", " }
                write(v, to: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (k, (key, v)) in o.pairs.enumerated() {
                if k > 0 { out += ", " }
                JSONValue.writeString(key, to: &out, asciiOnly: true)
                out += ": "
                write(v, to: &out)
            }
            out += "}"
        }
    }

    /// Python's `repr(float)`: the shortest round-trip digits, `1.0` for integral values,
    /// exponent form below 1e-4 and from 1e16.
    static func pythonRepr(_ d: Double) -> String {
        var s = "\(d)"  // Swift also prints the shortest round-trip digits
        if let e = s.firstIndex(where: { $0 == "e" }) {
            // Swift writes 1e-05 as "1e-05"; Python as "1e-05" too, but Swift's mantissa may lack ".0".
            let mantissa = String(s[..<e]), exponent = String(s[s.index(after: e)...])
            let sign = exponent.hasPrefix("-") ? "-" : "+"
            var digits = String(exponent.drop { $0 == "-" || $0 == "+" })
            while digits.count < 2 { digits = "0" + digits }
            s = mantissa + "e" + sign + digits
        }
        return s
    }
}
