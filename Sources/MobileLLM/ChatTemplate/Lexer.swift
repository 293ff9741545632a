/// A position in a template source: 1-based line and column (columns count Unicode scalars).
struct SourcePosition: Sendable, Equatable {
    var line: Int
    var column: Int
}

/// A syntax or evaluation error with its position, before it becomes a `MobileLLMError.template`.
struct TemplateError: Error {
    let position: SourcePosition
    let message: String
}

enum TokenKind: Sendable, Equatable {
    case data(String)
    case variableBegin
    case variableEnd
    case blockBegin
    case blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct Token: Sendable {
    var kind: TokenKind
    var position: SourcePosition

    var describe: String {
        switch kind {
        case let .data(text): return "text \(PythonText.stringRepr(String(text.prefix(20))))"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block"
        case let .name(name): return "'\(name)'"
        case let .string(text): return "string \(PythonText.stringRepr(String(text.prefix(20))))"
        case let .integer(number): return "integer \(number)"
        case let .float(number): return "number \(PythonText.floatRepr(number))"
        case let .op(op): return "'\(op)'"
        case .eof: return "end of template"
        }
    }
}

/// Splits a template into tokens exactly as jinja2's lexer does with `trim_blocks=True, lstrip_blocks=True`
/// (the transformers configuration): newlines normalised to "\n", one trailing newline dropped,
/// `{%-`/`-%}` strip all whitespace, `+` disables lstrip/trim, lstrip removes spaces and tabs before a block
/// or comment tag that starts a line, trim removes the first newline after a block or comment tag.
struct Lexer {
    private var source: [Unicode.Scalar]
    private var position = 0
    private var lineStarts: [Int] = [0]
    private(set) var tokens: [Token] = []

    static let maximumSourceScalars = 4_000_000

    init(_ text: String) throws {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        var previousCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                scalars.append("\n")
                previousCR = true
                continue
            }
            if scalar == "\n" && previousCR { previousCR = false; continue }
            previousCR = false
            scalars.append(scalar)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        guard scalars.count <= Self.maximumSourceScalars else {
            throw TemplateError(position: SourcePosition(line: 1, column: 1), message: "template too large (\(scalars.count) characters; the limit is \(Self.maximumSourceScalars))")
        }
        source = scalars
        for (index, scalar) in scalars.enumerated() where scalar == "\n" { lineStarts.append(index + 1) }
        try tokenize()
    }

    func positionOf(_ offset: Int) -> SourcePosition {
        var low = 0, high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= offset { low = middle } else { high = middle - 1 }
        }
        return SourcePosition(line: low + 1, column: offset - lineStarts[low] + 1)
    }

    private func at(_ offset: Int) -> Unicode.Scalar? { offset < source.count ? source[offset] : nil }

    private func matches(_ text: String, at offset: Int) -> Bool {
        var index = offset
        for scalar in text.unicodeScalars {
            guard index < source.count, source[index] == scalar else { return false }
            index += 1
        }
        return true
    }

    private func fail(_ message: String, at offset: Int) -> TemplateError {
        TemplateError(position: positionOf(offset), message: message)
    }

    private mutating func emit(_ kind: TokenKind, at offset: Int) {
        tokens.append(Token(kind: kind, position: positionOf(offset)))
    }

    /// Finds the next `{{`, `{%` or `{#` at or after `offset`.
    private func nextTagStart(from offset: Int) -> Int? {
        var index = offset
        while index + 1 < source.count {
            if source[index] == "{" {
                let next = source[index + 1]
                if next == "{" || next == "%" || next == "#" { return index }
            }
            index += 1
        }
        return nil
    }

    private mutating func tokenize() throws {
        var lineStarting = true
        while position < source.count {
            guard let start = nextTagStart(from: position) else {
                emit(.data(String(String.UnicodeScalarView(source[position...]))), at: position)
                position = source.count
                break
            }
            let kindScalar = source[start + 1]
            var sign: Unicode.Scalar? = nil
            if let after = at(start + 2), after == "-" || after == "+" { sign = after }
            var textEnd = start
            if sign == "-" {
                while textEnd > position, PythonText.isSpace(source[textEnd - 1]) { textEnd -= 1 }
            } else if sign != "+" && kindScalar != "{" {
                // lstrip_blocks: only spaces and tabs between the line start and the tag.
                var lineStart = start
                while lineStart > position, source[lineStart - 1] != "\n" { lineStart -= 1 }
                if lineStart > position || lineStarting {
                    if source[lineStart..<start].allSatisfy({ $0 == " " || $0 == "\t" }) { textEnd = lineStart }
                }
            }
            if textEnd > position {
                emit(.data(String(String.UnicodeScalarView(source[position..<textEnd]))), at: position)
            }
            position = start + 2 + (sign == nil ? 0 : 1)
            switch kindScalar {
            case "#":
                lineStarting = try skipComment(openedAt: start)
            case "{":
                emit(.variableBegin, at: start)
                lineStarting = try lexTag(openedAt: start, isBlock: false)
            default:
                emit(.blockBegin, at: start)
                lineStarting = try lexTag(openedAt: start, isBlock: true)
            }
        }
        emit(.eof, at: source.count)
    }

    /// Skips a comment; returns whether the consumed text ends with a newline.
    private mutating func skipComment(openedAt start: Int) throws -> Bool {
        var index = position
        while index + 1 < source.count {
            if source[index] == "#" && source[index + 1] == "}" {
                let previous = index > position ? source[index - 1] : nil
                position = index + 2
                if previous == "-" {
                    while position < source.count, PythonText.isSpace(source[position]) { position += 1 }
                } else if previous != "+" && at(position) == "\n" {
                    position += 1
                }
                return position > 0 && source[position - 1] == "\n"
            }
            index += 1
        }
        throw fail("missing end of comment tag", at: start)
    }

    /// Lexes the inside of `{{ ... }}` or `{% ... %}` up to its end marker; returns whether the end marker
    /// consumed a trailing newline.
    private mutating func lexTag(openedAt start: Int, isBlock: Bool) throws -> Bool {
        var balance: [Unicode.Scalar] = []
        let close: Unicode.Scalar = isBlock ? "%" : "}"
        while true {
            // Whitespace.
            while position < source.count, PythonText.isSpace(source[position]) { position += 1 }
            guard position < source.count else {
                throw fail(isBlock ? "unexpected end of template: the block tag opened here is not closed with '%}'" : "unexpected end of template: the print tag opened here is not closed with '}}'", at: start)
            }
            if balance.isEmpty {
                // End markers: "-%}" + whitespace, "+%}", "%}" + optional newline (trim_blocks); "-}}" + whitespace, "}}".
                var endLength = 0
                var stripAfter = false
                var trimNewline = false
                if source[position] == "-", at(position + 1) == close, at(position + 2) == "}" {
                    endLength = 3; stripAfter = true
                } else if isBlock, source[position] == "+", at(position + 1) == close, at(position + 2) == "}" {
                    endLength = 3
                } else if source[position] == close, at(position + 1) == "}" {
                    endLength = 2; trimNewline = isBlock
                }
                if endLength > 0 {
                    emit(isBlock ? .blockEnd : .variableEnd, at: position)
                    position += endLength
                    if stripAfter {
                        while position < source.count, PythonText.isSpace(source[position]) { position += 1 }
                    } else if trimNewline, at(position) == "\n" {
                        position += 1
                    }
                    return position > 0 && source[position - 1] == "\n"
                }
            }
            let scalar = source[position]
            let tokenStart = position
            if scalar == "_" || scalar.properties.isAlphabetic && scalar.isASCII {
                var end = position
                while end < source.count, source[end] == "_" || (source[end].isASCII && (source[end].properties.isAlphabetic || ("0"..."9").contains(source[end]))) {
                    end += 1
                }
                emit(.name(String(String.UnicodeScalarView(source[position..<end]))), at: tokenStart)
                position = end
            } else if ("0"..."9").contains(scalar) {
                try lexNumber()
            } else if scalar == "'" || scalar == "\"" {
                try lexString(quote: scalar)
            } else {
                let two = position + 1 < source.count ? String(String.UnicodeScalarView([scalar, source[position + 1]])) : ""
                let op: String
                if ["**", "//", "==", "!=", "<=", ">="].contains(two) {
                    op = two
                } else if "+-*/%~[](){}<>=.:|,;".unicodeScalars.contains(scalar) {
                    op = String(scalar)
                } else {
                    throw fail("unexpected character \(PythonText.stringRepr(String(scalar)))", at: position)
                }
                switch op {
                case "(", "[", "{": balance.append(scalar)
                case ")", "]", "}":
                    let expected: Unicode.Scalar = op == ")" ? "(" : op == "]" ? "[" : "{"
                    guard let last = balance.last else { throw fail("unexpected '\(op)'", at: position) }
                    guard last == expected else { throw fail("unexpected '\(op)', expected the closing bracket of '\(last)'", at: position) }
                    balance.removeLast()
                default: break
                }
                emit(.op(op), at: tokenStart)
                position += op.unicodeScalars.count
            }
        }
    }

    private func isDigit(_ offset: Int) -> Bool {
        guard let scalar = at(offset) else { return false }
        return ("0"..."9").contains(scalar)
    }

    /// Digits with single underscores between them; returns the end offset.
    private func digitRun(from offset: Int) -> Int? {
        guard isDigit(offset) else { return nil }
        var end = offset
        while true {
            while isDigit(end) { end += 1 }
            if at(end) == "_", isDigit(end + 1) { end += 1; continue }
            return end
        }
    }

    private mutating func lexNumber() throws {
        let start = position
        guard var end = digitRun(from: position) else { return }
        var isFloat = false
        if at(end) == ".", let fractionEnd = digitRun(from: end + 1) {
            end = fractionEnd
            isFloat = true
        }
        if at(end) == "e" || at(end) == "E" {
            var exponentStart = end + 1
            if at(exponentStart) == "+" || at(exponentStart) == "-" { exponentStart += 1 }
            if let exponentEnd = digitRun(from: exponentStart) {
                end = exponentEnd
                isFloat = true
            }
        }
        let text = String(String.UnicodeScalarView(source[start..<end].filter { $0 != "_" }))
        position = end
        if isFloat {
            guard let value = Double(text) else { throw fail("bad number '\(text)'", at: start) }
            emit(.float(value), at: start)
        } else {
            guard let value = Int(text) else { throw fail("integer '\(text)' is too large", at: start) }
            emit(.integer(value), at: start)
        }
    }

    private func hexValue(_ offset: Int, count: Int) -> UInt32? {
        guard offset + count <= source.count else { return nil }
        var value: UInt32 = 0
        for index in offset..<offset + count {
            guard source[index].isASCII, let digit = UInt32(String(source[index]), radix: 16) else { return nil }
            value = value * 16 + digit
        }
        return value
    }

    /// A string literal, unescaped like Python's "unicode-escape" codec (which jinja2 uses).
    private mutating func lexString(quote: Unicode.Scalar) throws {
        let start = position
        var index = position + 1
        var out = String.UnicodeScalarView()
        while true {
            guard index < source.count else { throw fail("unterminated string", at: start) }
            let scalar = source[index]
            if scalar == quote { index += 1; break }
            if scalar != "\\" { out.append(scalar); index += 1; continue }
            guard let escape = at(index + 1) else { throw fail("unterminated string", at: start) }
            index += 2
            switch escape {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var value = UInt32(escape.value - 48)
                var digits = 1
                while digits < 3, let next = at(index), ("0"..."7").contains(next) {
                    value = value * 8 + (next.value - 48)
                    index += 1
                    digits += 1
                }
                out.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            case "x", "u", "U":
                let count = escape == "x" ? 2 : escape == "u" ? 4 : 8
                guard let value = hexValue(index, count: count), let decoded = Unicode.Scalar(value) else {
                    throw fail("bad \\\(escape) escape in a string", at: index - 2)
                }
                out.append(decoded)
                index += count
            case "N":
                throw fail("unsupported \\N{...} escape in a string", at: index - 2)
            default:
                out.append("\\")
                out.append(escape)
            }
        }
        position = index
        emit(.string(String(out)), at: start)
    }
}
