/// The VQA answer normalization used by EvalAI and by LLaVA's `m4c_evaluator.py`
/// (`EvalAIAnswerProcessor`), step for step, quirks included:
///
/// 1. lowercase; delete `,` and `?`; `'s` → ` 's`; strip; newlines and tabs → spaces; strip.
/// 2. punctuation: each of ``; / [ ] " { } ( ) = + \ _ - > < @ ` , ? !`` is deleted when the
///    text (as it entered this step) contains it next to a space, or contains a digit-comma-digit
///    run; otherwise it becomes a space. Then periods not followed by a digit are deleted — at
///    most 32 of them, because the original passes `re.UNICODE` (32) where `re.sub` takes its
///    `count`.
/// 3. split on whitespace; number words none…ten → digits; drop the articles a, an, the; repair
///    contractions from a fixed table (`dont` → `don't`); join with single spaces.
///
/// Step 1 already removes every comma, so inside `normalize` the digit-comma-digit rule of
/// step 2 never fires; it does in `processPunctuation` used on its own (as the official VQA
/// evaluator does on raw answers).
public enum AnswerNormalizer {
    public static let punctuation: [Character] = [
        ";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!",
    ]

    public static let numberWords: [String: String] = [
        "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
        "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
    ]

    public static let articles: Set<String> = ["a", "an", "the"]

    /// Periods the period rule deletes at most (see the type's description).
    public static let periodDeletionLimit = 32

    /// The full normalization.
    public static func normalize(_ answer: String) -> String {
        var text = answer.pythonLowercased()
        text = text.replacingAll(",", with: "").replacingAll("?", with: "").replacingAll("'s", with: " 's")
        text = text.strippingWhitespace()
        text = text.replacingAll("\n", with: " ").replacingAll("\t", with: " ").strippingWhitespace()
        text = processPunctuation(text)
        return processDigitsAndArticles(text)
    }

    /// Step 2: the punctuation rule and the period rule. `commaRun` selects the EvalAI
    /// pattern `(?<=\d),+(?=\d)`; without it the VQA evaluator's `(\d)(\,)(\d)` (one comma).
    public static func processPunctuation(_ input: String, commaRun: Bool = true) -> String {
        let hasDigitCommaDigit = containsDigitCommaDigit(input, run: commaRun)
        var out = input
        for p in punctuation {
            let nextToSpace = input.containsScalars(String(p) + " ") || input.containsScalars(" " + String(p))
            out = out.replacingAll(String(p), with: nextToSpace || hasDigitCommaDigit ? "" : " ")
        }
        return deletingPeriods(out)
    }

    /// Step 3: number words, articles and contractions, on whitespace-separated words.
    public static func processDigitsAndArticles(_ input: String) -> String {
        var words: [String] = []
        for raw in input.pythonLowercased().splitOnWhitespace() {
            let word = exactLookup(numberWords, raw) ?? raw
            if !articles.contains(where: { $0.pyEquals(word) }) { words.append(word) }
        }
        return words.map { exactLookup(contractions, $0) ?? $0 }.joined(separator: " ")
    }

    /// A dictionary lookup that hits only when the key has the same code points (a `String`
    /// key also matches canonically equivalent text).
    static func exactLookup(_ table: [String: String], _ key: String) -> String? {
        guard let index = table.index(forKey: key), table[index].key.pyEquals(key) else { return nil }
        return table[index].value
    }

    /// `(?<=\d),+(?=\d)` (or, without `run`, `\d,\d`) somewhere in the text.
    static func containsDigitCommaDigit(_ text: String, run: Bool = true) -> Bool {
        let scalars = Array(text.unicodeScalars)
        var k = 0
        while k < scalars.count {
            if scalars[k] == ",", k > 0, scalars[k - 1].isDecimalDigit {
                var j = k
                while run, j < scalars.count, scalars[j] == "," { j += 1 }
                if !run { j += 1 }
                if j < scalars.count, scalars[j].isDecimalDigit { return true }
                k = j
            } else {
                k += 1
            }
        }
        return false
    }

    /// Deletes periods that are not followed by a digit, the first `periodDeletionLimit` of them.
    static func deletingPeriods(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var deleted = 0
        for (k, s) in scalars.enumerated() {
            if s == ".", deleted < periodDeletionLimit, !(k + 1 < scalars.count && scalars[k + 1].isDecimalDigit) {
                deleted += 1
                continue
            }
            out.append(s)
        }
        return String(out)
    }

    /// The contraction repairs of the EvalAI processor. The capitalised keys ("Im", "Ive",
    /// "Id've", "I'dve") are kept as they are: after lowercasing they never match.
    public static let contractions: [String: String] = [
        "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
        "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
        "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
        "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
        "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
        "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
        "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
        "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
        "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
        "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
        "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
        "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
        "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
        "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
        "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
        "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
        "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
        "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
        "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
        "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
        "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
        "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
        "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
        "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
        "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
        "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
        "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
        "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
        "youve": "you've",
    ]
}

extension Unicode.Scalar {
    /// Python's `\d` on str patterns: any Unicode decimal digit (category Nd).
    var isDecimalDigit: Bool { properties.numericType == .decimal }

    /// Python's `str.isspace()`.
    var isPythonWhitespace: Bool {
        switch value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            true
        default:
            false
        }
    }
}

extension String {
    /// Python's `str.replace`: every non-overlapping occurrence, left to right, compared by
    /// Unicode scalars (not by grapheme clusters, so "'s" matches inside "é's").
    func replacingAll(_ target: String, with replacement: String) -> String {
        let t = Array(target.unicodeScalars)
        guard !t.isEmpty else { return self }
        let s = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        var k = 0
        while k < s.count {
            if k + t.count <= s.count, s[k] == t[0], Array(s[k..<k + t.count]) == t {
                out.append(contentsOf: replacement.unicodeScalars)
                k += t.count
            } else {
                out.append(s[k])
                k += 1
            }
        }
        return String(out)
    }

    /// Python's `in` on strings: a scalar-for-scalar substring search.
    func containsScalars(_ target: String) -> Bool {
        let t = Array(target.unicodeScalars)
        let s = Array(unicodeScalars)
        guard !t.isEmpty else { return true }
        guard s.count >= t.count else { return false }
        for k in 0...(s.count - t.count) where s[k] == t[0] && Array(s[k..<k + t.count]) == t { return true }
        return false
    }

    /// Python's `str.strip()`.
    func strippingWhitespace() -> String {
        let s = Array(unicodeScalars)
        var lo = 0, hi = s.count
        while lo < hi, s[lo].isPythonWhitespace { lo += 1 }
        while hi > lo, s[hi - 1].isPythonWhitespace { hi -= 1 }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: s[lo..<hi])
        return String(out)
    }

    /// Python's `str.split()`: runs of whitespace separate words; no empty words.
    func splitOnWhitespace() -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        for s in unicodeScalars {
            if s.isPythonWhitespace {
                if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() }
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(String(current)) }
        return words
    }
}
