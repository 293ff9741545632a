/// Cleans an extracted answer or a reference the way the Qwen2.5-Math harness's `strip_string` does before comparing,
/// so that formatting that does not change the value does not change the verdict.
///
/// In order: line breaks, a leading `:` and trailing `.`/`/` go; LaTeX spacing (`\!`, `\,`, `\;`, `~`) goes;
/// Unicode `−`, `×`, `·`, `÷`, `≤`, `≥` become their ASCII or LaTeX forms;
/// `\dfrac`/`\tfrac` become `\frac`, `bmatrix`/`array` become `pmatrix`, `\leq`/`\geq`/`\neq` become `\le`/`\ge`/`\ne`;
/// `\left`/`\right` go and `\{ \}` become `{ }`; a trailing `\text{...}` unit goes (when something is left), then
/// `\text{X}`, `\mathrm{X}`, `\textbf{X}`, `\mbox{X}` and nested `\boxed{X}` become X; degrees (`^\circ`, `°`), dollar
/// signs (`\$`, `$`), `\( \)` and percent signs (`\%`, `%`) go; a trailing unit word after a number goes (`5 cm`,
/// `18 dollars`, `3 hours`); a number written in words becomes digits (`five` → 5); `infinity`/`inf`/`∞` become
/// `\infty`; ` and ` becomes a comma; a leading `x \in` goes (a leading `x =` is `AnswerGrader`'s business);
/// thousands separators go from a lone number (`1,000` and `1{,}000` → 1000); `.5` becomes `0.5` and `2.000`
/// becomes `2`; runs of spaces become one space.
///
/// Where this differs from the harness on purpose: its list of unit words also removes stray single letters
/// (`a`, `c`, `t`, ...) anywhere in an answer and it deletes every `x=`/`y=`/`z=`; here unit words go only after a
/// number, and `x =` only as a whole left side of at most two characters; `and` becomes a list comma instead of
/// vanishing.
public enum AnswerNormalizer {
    /// `answer` cleaned as described above, with single spaces kept (they separate LaTeX commands from letters).
    public static func normalize(_ answer: String) -> String {
        var text = answer.replacingOccurrences(ofAll: ["\r": "", "\n": ""]).trimmingSpaces()
        if text.hasPrefix(":") { text.removeFirst() }
        text = trimTrailingPunctuation(text)
        // LaTeX line breaks (`\\`, matrix rows) must survive the spacing rules below: hold them aside meanwhile.
        text = text.replacingOccurrences(ofAll: ["\\\\": "\u{1}"])
        text = text.replacingOccurrences(ofAll: [
            "\\!": "", "\\,": " ", "\\;": " ", "\\:": " ", "\\ ": " ", "~": " ",
            "\\dfrac": "\\frac", "\\tfrac": "\\frac", "bmatrix": "pmatrix",
            "\\neq": "\\ne", "\\leq": "\\le", "\\geq": "\\ge",
            "\\left.": "", "\\right.": "", "\\left": "", "\\right": "", "\\{": "{", "\\}": "}",
            "\\lbrace": "{", "\\rbrace": "}", "{,}": ",", "\\displaystyle": "",
            "−": "-", "×": "\\times ", "·": "\\cdot ", "÷": "\\div ", "≤": "\\le ", "≥": "\\ge ",
        ]).replacingOccurrences(ofAll: ["\u{1}": "\\\\"])
        text = text.replacing(#/\\begin\{array\}\{[^}]*\}/#, with: "\\begin{pmatrix}").replacingOccurrences(ofAll: ["\\end{array}": "\\end{pmatrix}"])
        text = removeTrailingTextUnit(text)
        text = unwrapCommands(["\\text", "\\textbf", "\\mathrm", "\\mathbf", "\\mbox", "\\boxed", "\\textit"], in: text)
        text = text.replacingOccurrences(ofAll: [
            "^{\\circ}": "", "^\\circ": "", "^{°}": "", "°": "", "\\circ": "", "\\degree": "",
            "\\$": "", "$": "", "\\(": "", "\\)": "", "\\%": "", "%": "",
            "infinity": "\\infty", "∞": "\\infty",
        ])
        text = collapseSpaces(text)
        text = removeTrailingUnitWords(text)
        if let number = WordNumber.value(of: text) { text = String(number) }
        if text == "inf" || text == "-inf" || text == "+inf" { text = text.replacingOccurrences(ofAll: ["inf": "\\infty"]) }
        text = text.replacing(#/\s+and\s+/#, with: ", ")
        text = removeLeadingMembership(text)
        text = removeThousandsSeparators(text)
        text = text.replacing(#/(^|[^\d])\.(\d)/#) { "\($0.output.1)0.\($0.output.2)" }
        text = text.replacing(#/(\d)\.0+(?!\d)/#) { "\($0.output.1)" }
        return trimTrailingPunctuation(collapseSpaces(text))
    }

    /// `normalize(answer)` without any spaces: the form compared as text.
    public static func compact(_ answer: String) -> String {
        normalize(answer).replacingOccurrences(ofAll: [" ": ""])
    }

    /// Units words removed after a number (each also with a trailing `s`).
    static let unitWords: Set<String> = {
        let singular = ["mm", "cm", "m", "km", "in", "inch", "inche", "ft", "foot", "feet", "yd", "yard", "mile", "meter",
                        "metre", "centimeter", "millimeter", "kilometer", "sq", "square", "cubic", "unit", "g", "gram",
                        "kg", "kilogram", "lb", "pound", "oz", "ounce", "ton", "sec", "second", "min", "minute", "hr",
                        "hour", "day", "week", "month", "year", "yr", "dollar", "cent", "degree", "percent", "liter",
                        "litre", "ml", "gallon", "mph", "kmh", "mi", "point", "people", "person", "student", "page",
                        "time", "way"]
        return Set(singular + singular.map { $0 + "s" })
    }()

    private static func trimTrailingPunctuation(_ text: String) -> String {
        var result = text
        while let last = result.last, last == "." || last == "/" || last == " " { result.removeLast() }
        return result
    }

    private static func collapseSpaces(_ text: String) -> String {
        text.replacing(#/\s+/#, with: " ").trimmingSpaces()
    }

    /// `5\text{ cm}` → `5`: a final `\text{...}`/`\mbox{...}` (optionally squared or cubed) goes when text is left.
    private static func removeTrailingTextUnit(_ text: String) -> String {
        guard let match = text.firstMatch(of: #/\\(?:text|mbox)\{[^{}]*\}(?:\^\{?[23]\}?)?\s*$/#) else { return text }
        let rest = String(text[..<match.range.lowerBound]).trimmingSpaces()
        return rest.isEmpty ? text : rest
    }

    /// `\text{abc}` → `abc` for each command (braces balanced; nested ones unwrapped too).
    static func unwrapCommands(_ commands: [String], in text: String) -> String {
        var scalars = Array(text.unicodeScalars)
        var changed = true
        while changed {
            changed = false
            for command in commands {
                let key = Array((command + "{").unicodeScalars)
                guard let start = firstIndex(of: key, in: scalars) else { continue }
                let open = start + key.count - 1
                var level = 0
                var close: Int?
                for position in open..<scalars.count {
                    if scalars[position] == "{" { level += 1 }
                    if scalars[position] == "}" { level -= 1; if level == 0 { close = position; break } }
                }
                guard let end = close else { continue }
                scalars = Array(scalars[..<start]) + Array(scalars[(open + 1)..<end]) + Array(scalars[(end + 1)...])
                changed = true
            }
        }
        return String(String.UnicodeScalarView(scalars))
    }

    private static func firstIndex(of key: [Unicode.Scalar], in scalars: [Unicode.Scalar]) -> Int? {
        guard scalars.count >= key.count else { return nil }
        for start in 0...(scalars.count - key.count) where scalars[start] == key[0] {
            if Array(scalars[start..<(start + key.count)]) == key { return start }
        }
        return nil
    }

    /// `18 dollars` → `18`, `4 sq ft` → `4`: unit words after a space, while what is left still holds a digit.
    private static func removeTrailingUnitWords(_ text: String) -> String {
        var words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        while words.count >= 2, let last = words.last,
              unitWords.contains(last.lowercased().replacing(#/\^\{?[23]\}?$/#, with: "")),
              words.dropLast().joined().contains(where: { $0.isASCII && $0.isNumber }) {
            words.removeLast()
        }
        return words.joined(separator: " ")
    }

    /// `x \in [2, 5]` → `[2, 5]`.
    private static func removeLeadingMembership(_ text: String) -> String {
        guard let match = text.prefixMatch(of: #/[A-Za-z]\s*\\in\s*/#), match.range.upperBound < text.endIndex else { return text }
        return String(text[match.range.upperBound...])
    }

    /// `1,234,567.5` → `1234567.5` when the whole answer is one number with comma thousands groups.
    private static func removeThousandsSeparators(_ text: String) -> String {
        guard text.wholeMatch(of: #/[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?/#) != nil else { return text }
        return text.replacingOccurrences(ofAll: [",": ""])
    }
}

/// Numbers written in English words ("five", "twenty-one", "one hundred and five"), as the harness's word2number
/// step converts them.
enum WordNumber {
    private static let small: [String: Int] = [
        "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
        "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
        "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
        "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    ]
    private static let scales: [String: Int] = ["thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000]

    /// The value of `text` when it is only number words (at most 12 of them); nil otherwise.
    static func value(of text: String) -> Int? {
        let words = text.lowercased().split(whereSeparator: { $0 == " " || $0 == "-" }).map(String.init).filter { $0 != "and" }
        guard !words.isEmpty, words.count <= 12 else { return nil }
        var total = 0
        var current = 0
        for word in words {
            if let value = small[word] {
                current += value
            } else if word == "hundred" {
                current = max(current, 1) * 100
            } else if let scale = scales[word] {
                total += max(current, 1) * scale
                current = 0
            } else {
                return nil
            }
            // Below these bounds no single step (+ 90, × 100, × 10^9) can overflow; beyond them give up.
            guard total < 1 << 50, current < 1 << 30 else { return nil }
        }
        return total + current
    }
}

extension String {
    /// The string with every key of `replacements` replaced by its value, in a fixed (longest key first) order.
    func replacingOccurrences(ofAll replacements: KeyValuePairs<String, String>) -> String {
        var result = self
        for (key, value) in replacements.sorted(by: { $0.key.count > $1.key.count }) where result.contains(key) {
            result = result.replacing(key, with: value)
        }
        return result
    }
}
