// GBNF syntax: the parse tree of a grammar and the parser that reads llama.cpp's GBNF into it.
//
// The parser follows llama.cpp's `llama_grammar_parser` (src/llama-grammar.cpp) rule for rule:
// - a rule is `name ::= alternatives`, names are ASCII letters, digits and `-`;
// - spaces, tabs and `#` comments separate items; a newline ends the rule's top-level sequence, except after `|`,
//   `::=` and inside parentheses, where newlines are spaces;
// - items are "literals", [classes], [^negated classes], `.`, rule names and ( groups ), each optionally followed by
//   `*`, `+`, `?`, `{m}`, `{m,}` or `{m,n}` (which repeat the item just before, a whole literal included);
// - escapes `\n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH` in literals and classes.
// Differences, each an error here where llama.cpp goes on: a rule defined twice (llama.cpp keeps the last), a
// repetition count above `GrammarLimits.maximumRepetition` (llama.cpp silently makes counts above 2000 unbounded),
// an escape that is not a Unicode scalar, a NUL character, token references `<...>` (not supported).

/// Where something is in the grammar text: a scalar offset, turned into a line and column only for messages.
typealias GrammarOffset = Int

/// One item of a sequence, with the offset of its first character.
struct GrammarItem: Sendable {
    indirect enum Kind: Sendable {
        /// A string literal, as Unicode scalar values (may be empty).
        case literal([UInt32])
        /// A character class: inclusive ranges, possibly negated.
        case characterClass(ranges: [ClosedRange<UInt32>], negated: Bool)
        /// `.`: any character.
        case anyCharacter
        /// A reference to a named rule.
        case reference(String)
        /// `( ... )`: alternatives, each a sequence.
        case group([[GrammarItem]])
        /// A repeated item: `*` is 0...nil, `+` 1...nil, `?` 0...1, `{m,n}` m...n; `maximum` nil when unbounded.
        case repetition(GrammarItem, minimum: Int, maximum: Int?)
    }

    var kind: Kind
    var offset: GrammarOffset
}

/// A rule as written: its name, where it starts, and its alternatives.
struct GrammarRuleDefinition: Sendable {
    var name: String
    var offset: GrammarOffset
    var alternatives: [[GrammarItem]]
}

/// Caps that keep hostile grammars from hanging the compiler or exhausting memory. Every one is checked before the
/// work it bounds, and each produces a `MobileLLMError.grammar` saying which limit was hit.
enum GrammarLimits {
    /// Grammar text, in bytes of UTF-8.
    static let maximumSourceBytes = 1 << 20
    /// Parentheses and repetition operators nested inside one another.
    static let maximumNesting = 256
    /// `m` and `n` of `{m,n}`.
    static let maximumRepetition = 10_000
    /// Rules after groups and repetitions have become rules of their own.
    static let maximumRules = 250_000
    /// Elements (characters, rule references, ends of alternatives) after expansion of repetitions.
    static let maximumElements = 2_000_000
    /// Parse stacks one character position may fan out into (checked at compile time for every position).
    static let maximumFanOut = 4_096
    /// Parse stacks one matcher state may hold at run time; a step that would exceed it keeps this many (each a
    /// valid parse that can still finish) and drops the rest.
    static let maximumStacksPerState = 8_192
}

/// A compile-time failure before it becomes `MobileLLMError.grammar`: where, in which rule, and what.
struct GrammarError: Error {
    var rule: String
    var offset: GrammarOffset
    var message: String
}

/// Reads GBNF text into rule definitions. Never traps: every problem is a `GrammarError` with its offset.
struct GBNFParser {
    private let text: [UInt32]
    private var position = 0
    private var currentRule = ""
    private(set) var rules: [GrammarRuleDefinition] = []

    /// Parses the whole text.
    static func parse(_ source: String) throws(GrammarError) -> [GrammarRuleDefinition] {
        if source.utf8.count > GrammarLimits.maximumSourceBytes {
            throw GrammarError(rule: "", offset: 0, message: "the grammar is \(source.utf8.count) bytes long; the limit is \(GrammarLimits.maximumSourceBytes)")
        }
        var parser = GBNFParser(text: source.unicodeScalars.map(\.value))
        try parser.parseAll()
        return parser.rules
    }

    private init(text: [UInt32]) {
        self.text = text
    }

    // MARK: characters

    private static let end: UInt32 = 0xFFFF_FFFF

    @inline(__always) private func peek(_ ahead: Int = 0) -> UInt32 {
        position + ahead < text.count ? text[position + ahead] : GBNFParser.end
    }

    private static func isWordCharacter(_ c: UInt32) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2D
    }

    private static func isDigit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }

    private func fail(_ message: String, at offset: Int? = nil) -> GrammarError {
        GrammarError(rule: currentRule, offset: offset ?? position, message: message)
    }

    /// "line L column C" of an offset, for messages that point somewhere else than the error.
    private func describe(offset: Int) -> String {
        var line = 1, column = 1
        for index in 0..<min(offset, text.count) {
            if text[index] == 0x0A { line += 1; column = 1 } else { column += 1 }
        }
        return "line \(line) column \(column)"
    }

    /// What is at the current position, for messages.
    private func describeHere() -> String {
        let c = peek()
        if c == GBNFParser.end { return "the end of the grammar" }
        return "'\(GrammarText.describe(c))'"
    }

    /// Skips spaces, tabs and comments, and newlines when `newlines` is true.
    private mutating func skipSpace(newlines: Bool) {
        while position < text.count {
            let c = text[position]
            if c == 0x20 || c == 0x09 || (newlines && (c == 0x0A || c == 0x0D)) {
                position += 1
            } else if c == 0x23 {  // '#': to the end of the line
                while position < text.count, text[position] != 0x0A, text[position] != 0x0D { position += 1 }
            } else {
                break
            }
        }
    }

    private mutating func parseName() throws(GrammarError) -> String {
        let start = position
        while position < text.count, GBNFParser.isWordCharacter(text[position]) { position += 1 }
        guard position > start else { throw fail("expected a rule name, found \(describeHere())") }
        return String(decoding: text[start..<position].map { UInt8($0) }, as: UTF8.self)
    }

    /// A decimal count for `{m,n}`, refused above the repetition limit without overflowing.
    private mutating func parseCount() throws(GrammarError) -> Int {
        let start = position
        guard GBNFParser.isDigit(peek()) else { throw fail("expected a number in '{...}', found \(describeHere())") }
        var value = 0
        while GBNFParser.isDigit(peek()) {
            value = min(value * 10 + Int(peek() - 0x30), GrammarLimits.maximumRepetition + 1)
            position += 1
        }
        if value > GrammarLimits.maximumRepetition {
            throw fail("repetition count \(String(decoding: text[start..<position].map { UInt8($0) }, as: UTF8.self)) is above the limit of \(GrammarLimits.maximumRepetition)", at: start)
        }
        return value
    }

    /// Exactly `digits` hex digits.
    private mutating func parseHex(_ digits: Int, escapeStart: Int) throws(GrammarError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<digits {
            let c = peek()
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x41...0x46: digit = c - 0x41 + 10
            case 0x61...0x66: digit = c - 0x61 + 10
            default: throw fail("expected \(digits) hex digits in the escape, found \(describeHere())", at: escapeStart)
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// One character of a literal or class, escapes decoded. `context` names the construct for end-of-input errors.
    private mutating func parseCharacter(context: String, openedAt: Int) throws(GrammarError) -> UInt32 {
        let c = peek()
        if c == GBNFParser.end { throw fail("unterminated \(context): the grammar ends before it is closed", at: openedAt) }
        if c == 0 { throw fail("NUL character in the grammar text") }
        guard c == 0x5C else {  // not a backslash
            position += 1
            return c
        }
        let start = position
        position += 1
        let kind = peek()
        position += 1
        switch kind {
        case 0x78: return try scalar(parseHex(2, escapeStart: start), at: start)  // x
        case 0x75: return try scalar(parseHex(4, escapeStart: start), at: start)  // u
        case 0x55: return try scalar(parseHex(8, escapeStart: start), at: start)  // U
        case 0x74: return 0x09  // t
        case 0x72: return 0x0D  // r
        case 0x6E: return 0x0A  // n
        case 0x5C, 0x22, 0x5B, 0x5D, 0x2D: return kind  // \ " [ ] -
        case GBNFParser.end:
            throw fail("unterminated \(context): the grammar ends inside an escape", at: openedAt)
        default:
            throw fail("unknown escape '\\\(GrammarText.describe(kind))'", at: start)
        }
    }

    private func scalar(_ value: UInt32, at offset: Int) throws(GrammarError) -> UInt32 {
        guard value <= 0x10FFFF else {
            throw fail("escape U+\(String(value, radix: 16, uppercase: true)) is above U+10FFFF, not a Unicode character", at: offset)
        }
        return value
    }

    // MARK: structure

    private mutating func parseAll() throws(GrammarError) {
        var seen: [String: Int] = [:]
        skipSpace(newlines: true)
        while position < text.count {
            let start = position
            currentRule = ""
            let name = try parseName()
            currentRule = name
            if let first = seen[name] {
                throw fail("rule '\(name)' is defined twice (first at \(describe(offset: first)))", at: start)
            }
            seen[name] = start
            skipSpace(newlines: false)
            guard peek() == 0x3A, peek(1) == 0x3A, peek(2) == 0x3D else {
                throw fail("expected '::=' after the rule name, found \(describeHere())")
            }
            position += 3
            skipSpace(newlines: true)
            let alternatives = try parseAlternatives(nested: false, depth: 0)
            switch peek() {
            case 0x0D: position += peek(1) == 0x0A ? 2 : 1
            case 0x0A: position += 1
            case GBNFParser.end: break
            case 0x29: throw fail("unmatched ')'")
            default: throw fail("expected a newline or the end of the grammar after the rule, found \(describeHere())")
            }
            rules.append(GrammarRuleDefinition(name: name, offset: start, alternatives: alternatives))
            skipSpace(newlines: true)
        }
    }

    private mutating func parseAlternatives(nested: Bool, depth: Int) throws(GrammarError) -> [[GrammarItem]] {
        var alternatives = [try parseSequence(nested: nested, depth: depth)]
        while peek() == 0x7C {  // '|'
            position += 1
            skipSpace(newlines: true)
            alternatives.append(try parseSequence(nested: nested, depth: depth))
        }
        return alternatives
    }

    private mutating func parseSequence(nested: Bool, depth: Int) throws(GrammarError) -> [GrammarItem] {
        var items: [GrammarItem] = []
        // Repetition operators wrap the last item; each wrap counts as one level of nesting.
        var wraps = 0
        func repeatLast(_ minimum: Int, _ maximum: Int?, _ symbol: String, at offset: Int) throws(GrammarError) {
            guard let last = items.popLast() else {
                throw fail("'\(symbol)' has nothing before it to repeat", at: offset)
            }
            if let maximum, maximum < minimum {
                throw fail("repetition {\(minimum),\(maximum)}: the maximum is below the minimum", at: offset)
            }
            wraps += 1
            if depth + wraps > GrammarLimits.maximumNesting {
                throw fail("repetitions and groups nested more than \(GrammarLimits.maximumNesting) deep", at: offset)
            }
            items.append(GrammarItem(kind: .repetition(last, minimum: minimum, maximum: maximum), offset: last.offset))
        }
        while position < text.count {
            let start = position
            let c = text[position]
            switch c {
            case 0x22:  // '"'
                position += 1
                var scalars: [UInt32] = []
                while true {
                    // Plain characters in one sweep; escapes, the end and NUL through parseCharacter.
                    let runStart = position
                    while position < text.count {
                        let c = text[position]
                        if c == 0x22 || c == 0x5C || c == 0 { break }
                        position += 1
                    }
                    scalars.append(contentsOf: text[runStart..<position])
                    if peek() == 0x22 { break }
                    scalars.append(try parseCharacter(context: "string literal", openedAt: start))
                }
                position += 1
                items.append(GrammarItem(kind: .literal(scalars), offset: start))
                wraps = 0
                skipSpace(newlines: nested)
            case 0x5B:  // '['
                position += 1
                var negated = false
                if peek() == 0x5E { negated = true; position += 1 }
                var ranges: [ClosedRange<UInt32>] = []
                while peek() != 0x5D {
                    let low = try parseCharacter(context: "character class", openedAt: start)
                    var high = low
                    if peek() == 0x2D, peek(1) != 0x5D, peek(1) != GBNFParser.end {
                        let rangeStart = position
                        position += 1
                        high = try parseCharacter(context: "character class", openedAt: start)
                        guard high >= low else {
                            throw fail("character range \(GrammarText.describe(low))-\(GrammarText.describe(high)) ends before it starts", at: rangeStart)
                        }
                    }
                    ranges.append(low...high)
                }
                position += 1
                items.append(GrammarItem(kind: .characterClass(ranges: ranges, negated: negated), offset: start))
                wraps = 0
                skipSpace(newlines: nested)
            case 0x28:  // '('
                guard depth < GrammarLimits.maximumNesting else {
                    throw fail("parentheses nested more than \(GrammarLimits.maximumNesting) deep")
                }
                position += 1
                skipSpace(newlines: true)
                let alternatives = try parseAlternatives(nested: true, depth: depth + 1)
                guard peek() == 0x29 else {
                    if peek() == GBNFParser.end { throw fail("'(' is never closed", at: start) }
                    throw fail("expected ')' to close the '(' at \(describe(offset: start)), found \(describeHere())")
                }
                position += 1
                items.append(GrammarItem(kind: .group(alternatives), offset: start))
                wraps = 0
                skipSpace(newlines: nested)
            case 0x2E:  // '.'
                position += 1
                items.append(GrammarItem(kind: .anyCharacter, offset: start))
                wraps = 0
                skipSpace(newlines: nested)
            case 0x2A, 0x2B, 0x3F:  // '*', '+', '?'
                position += 1
                skipSpace(newlines: nested)
                let symbol = c == 0x2A ? "*" : c == 0x2B ? "+" : "?"
                try repeatLast(c == 0x2B ? 1 : 0, c == 0x3F ? 1 : nil, symbol, at: start)
            case 0x7B:  // '{'
                position += 1
                skipSpace(newlines: nested)
                let minimum = try parseCount()
                skipSpace(newlines: nested)
                var maximum: Int? = minimum
                if peek() == 0x2C {  // ','
                    position += 1
                    skipSpace(newlines: nested)
                    maximum = nil
                    if GBNFParser.isDigit(peek()) {
                        maximum = try parseCount()
                        skipSpace(newlines: nested)
                    }
                }
                guard peek() == 0x7D else { throw fail("expected '}' to close the repetition, found \(describeHere())") }
                position += 1
                skipSpace(newlines: nested)
                try repeatLast(minimum, maximum, "{", at: start)
            case 0x3C, 0x21:  // '<', '!'
                throw fail("token references ('<...>', '!<...>') are not supported; write the text instead")
            default:
                if GBNFParser.isWordCharacter(c) {
                    let name = try parseName()
                    items.append(GrammarItem(kind: .reference(name), offset: start))
                    wraps = 0
                    skipSpace(newlines: nested)
                } else {
                    return items
                }
            }
        }
        return items
    }
}

/// Text helpers shared by the grammar compiler and the JSON Schema translator.
enum GrammarText {
    /// A character for an error message: printable ASCII as itself, anything else as U+XXXX.
    static func describe(_ c: UInt32) -> String {
        if c >= 0x21, c <= 0x7E { return String(UnicodeScalar(UInt8(c))) }
        return "U+" + String(format4(c))
    }

    private static func format4(_ c: UInt32) -> String {
        let hex = String(c, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// Line and column (1-based, columns in Unicode scalars) of a scalar offset in `source`.
    static func lineAndColumn(of offset: Int, in source: String) -> (line: Int, column: Int) {
        var line = 1, column = 1, index = 0
        for scalar in source.unicodeScalars {
            if index >= offset { break }
            if scalar == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
            index += 1
        }
        return (line, column)
    }

    /// A GBNF string literal for `text`: printable ASCII as itself, `"`, `\` and control characters escaped,
    /// everything else as itself (UTF-8 in the grammar text).
    static func literal(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars { out += escaped(scalar.value, inClass: false) }
        return out + "\""
    }

    /// One character as GBNF writes it inside a literal or (with `inClass`) a character class.
    static func escaped(_ c: UInt32, inClass: Bool) -> String {
        switch c {
        case 0x5C: return "\\\\"
        case 0x22: return "\\\""
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        case 0x5B where inClass, 0x5D where inClass, 0x2D where inClass, 0x5E where inClass: return "\\x" + hex2(c)
        default:
            if c < 0x20 || c == 0x7F { return "\\x" + hex2(c) }
            if c >= 0xD800, c <= 0xDFFF { return "\\u" + format4(c) }
            guard let scalar = UnicodeScalar(c) else { return "\\U" + String(repeating: "0", count: 8 - String(c, radix: 16).count) + String(c, radix: 16, uppercase: true) }
            return String(Character(scalar))
        }
    }

    private static func hex2(_ c: UInt32) -> String {
        let hex = String(c, radix: 16, uppercase: true)
        return hex.count < 2 ? "0" + hex : hex
    }
}
