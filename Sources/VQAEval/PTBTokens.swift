/// One whitespace-free chunk of a caption cut into tokens the way Stanford's PTBTokenizer
/// cuts the text captions are made of (its full grammar also knows URLs, e-mail addresses,
/// times and many more abbreviations).
struct PTBChunk {
    let s: [Unicode.Scalar]

    init(_ scalars: [Unicode.Scalar]) { s = scalars }

    /// Abbreviations that keep their period.
    static let abbreviations: Set<String> = [
        "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "inc", "co", "corp", "ltd", "vs", "no", "etc", "mt", "ave",
        "ft", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen", "gov", "sen",
        "rep", "rev", "capt", "col", "lt", "sgt", "fig", "ca", "est", "dept", "univ", "blvd", "rd", "mssrs", "messrs",
    ]
    static let clitics: Set<String> = ["'s", "'re", "'ve", "'ll", "'d", "'m"]
    static let brackets: [Unicode.Scalar: String] = ["(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"]
    static let split: [String: [String]] = ["cannot": ["can", "not"], "gonna": ["gon", "na"], "wanna": ["wan", "na"],
                                            "gotta": ["got", "ta"]]

    static func isWord(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || c.properties.numericType != nil || c == "_" || c.properties.generalCategory == .nonspacingMark
    }
    static func isDigit(_ c: Unicode.Scalar) -> Bool { c.properties.numericType == .decimal }
    static func isUpper(_ c: Unicode.Scalar) -> Bool { c.properties.isUppercase }

    func at(_ k: Int) -> Unicode.Scalar? { k >= 0 && k < s.count ? s[k] : nil }

    /// Whether the character at `j` (not a word character) joins the word characters around it.
    func joins(_ j: Int) -> Bool {
        guard let before = at(j - 1), let after = at(j + 1), Self.isWord(before), Self.isWord(after) else { return false }
        switch s[j] {
        case "-", ".", "/": return true
        case ",", ":": return Self.isDigit(before) && Self.isDigit(after)
        case "&": return Self.isUpper(before) && Self.isUpper(after)
        case "@": return s[(j + 1)...].contains(".")
        default: return false
        }
    }

    func tokens() -> [String] {
        var out: [String] = []
        var k = 0
        while k < s.count {
            let c = s[k]
            if Self.isWord(c) || (c == "'" && isDecade(k)) {
                k = word(from: k, into: &out)
            } else if let b = Self.brackets[c] {
                out.append(b)
                k += 1
            } else {
                var j = k + 1
                if c == "?" || c == "!" {
                    while let n = at(j), n == "?" || n == "!" { j += 1 }
                } else {
                    while at(j) == c { j += 1 }
                }
                let run = String(scalars: s[k..<j])
                switch run {
                case "\"": out.append(k == 0 ? "``" : "''")
                case "'": out.append(k == 0 ? "`" : "'")
                default: out.append(run)
                }
                k = j
            }
        }
        return out
    }

    /// `'90s`: an apostrophe, two digits and an s.
    func isDecade(_ k: Int) -> Bool {
        guard let a = at(k + 1), let b = at(k + 2), Self.isDigit(a), Self.isDigit(b), at(k + 3) == "s" || at(k + 3) == "S" else { return false }
        return at(k + 4).map { !Self.isWord($0) } ?? true
    }

    /// A word starting at `k`, its clitics and a kept abbreviation period; returns where it ends.
    func word(from k: Int, into out: inout [String]) -> Int {
        var j = k + 1
        while j < s.count {
            if Self.isWord(s[j]) || joins(j) { j += 1 } else { break }
        }
        var word = Array(s[k..<j])
        // An apostrophe inside the word: a clitic, n't, or part of the word (o'clock).
        var clitic: [Unicode.Scalar] = []
        if at(j) == "'" {
            var e = j + 1
            while let n = at(e), Self.isWord(n) { e += 1 }
            let tail = String(scalars: s[j..<e]).pythonLowercased()
            if Self.clitics.contains(tail) {
                clitic = Array(s[j..<e])
                j = e
            } else if e > j + 1 {
                word += s[j..<e]
                j = e
            } else if let prev = word.last, prev == "s" || prev == "S" {
                // dogs' → dogs '
            }
        }
        // A period that belongs to the word: an abbreviation or an acronym (u.s., a.m.).
        if clitic.isEmpty, at(j) == ".", isAbbreviation(word) {
            word.append(".")
            j += 1
        }
        let text = String(scalars: word)
        let lower = text.pythonLowercased()
        if let time = timeSplit(word) {
            out += time
        } else if let parts = Self.split[lower] {
            var offset = 0
            for p in parts {
                out.append(String(scalars: word[offset..<offset + p.count]))
                offset += p.count
            }
        } else if word.count > 3, lower.pythonHasSuffix("n't") {
            out.append(String(scalars: word.dropLast(3)))
            out.append(String(scalars: word.suffix(3)))
        } else {
            out.append(text)
        }
        if !clitic.isEmpty { out.append(String(scalars: clitic)) }
        return j
    }

    func isAbbreviation(_ word: [Unicode.Scalar]) -> Bool {
        let text = String(scalars: word).pythonLowercased()
        if Self.abbreviations.contains(text) { return true }
        // Single letters separated by periods: u.s, a.m, e.g
        let parts = text.pythonSplit(".")
        return parts.count >= 2 && parts.allSatisfy { $0.unicodeScalars.count == 1 && $0.unicodeScalars.first!.properties.isAlphabetic }
    }

    /// "5:30pm" → "5:30", "pm".
    func timeSplit(_ word: [Unicode.Scalar]) -> [String]? {
        guard let colon = word.firstIndex(of: ":"), colon > 0, word[..<colon].allSatisfy(Self.isDigit) else { return nil }
        var k = colon + 1
        while k < word.count, Self.isDigit(word[k]) { k += 1 }
        guard k > colon + 1, k < word.count, word[k...].allSatisfy({ $0.properties.isAlphabetic }) else { return nil }
        return [String(scalars: word[..<k]), String(scalars: word[k...])]
    }
}

extension PTBChunk {
    /// PTBTokenizer keeps "2 1/2" together, joined by a no-break space.
    static func joinFractions(_ tokens: [String]) -> [String] {
        var out: [String] = []
        for t in tokens {
            if let last = out.last, !last.isEmpty, last.unicodeScalars.allSatisfy(isDigit), isFraction(t) {
                out[out.count - 1] = last + "\u{00A0}" + t
            } else {
                out.append(t)
            }
        }
        return out
    }

    static func isFraction(_ t: String) -> Bool {
        let parts = t.pythonSplit("/")
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.unicodeScalars.allSatisfy(isDigit) }
    }
}
