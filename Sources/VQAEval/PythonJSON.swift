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
        case .string(let s): writeString(s, to: &out)
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
                writeString(key, to: &out)
                out += ": "
                write(v, to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 || c.value > 0x7E {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += hex4(c.value)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
    }

    static func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
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
