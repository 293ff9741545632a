
/// A tree the JSON reader can build: `JSONValue` (fast keyed lookup for config, index and tokenizer files) and
/// `TemplateValue` (ints apart from floats, members in order, for chat templates) are both built by the one reader,
/// so every JSON file the engine reads follows the same rules.
protocol JSONTree {
    /// `null`.
    static var jsonNull: Self { get }
    /// `true` / `false`.
    static func json(_ flag: Bool) -> Self
    /// A number written without fraction or exponent that fits in 64 bits (Python's `int`).
    static func json(integer: Int64) -> Self
    /// Any other number, and Python's `NaN`, `Infinity`, `-Infinity` (Python's `float`).
    static func json(float: Double) -> Self
    /// A string.
    static func json(_ text: String) -> Self
    /// An array.
    static func json(array: [Self]) -> Self
    /// An object's members in file order, repeated keys included: the tree keeps the last value of a repeated key
    /// (at the key's first position where it keeps order), as Python's `json.loads` does.
    static func json(object: [(String, Self)]) -> Self
}

/// The engine's one JSON reader. It follows Python's `json.loads` (which transformers uses for every file it reads):
///
/// - RFC 8259 syntax, plus Python's `NaN`, `Infinity` and `-Infinity`; no comments, no trailing commas, no leading
///   zeros;
/// - UTF-8 only, and no byte order mark (Python rejects text that starts with one: "Unexpected UTF-8 BOM");
/// - the last value of a repeated key wins;
/// - an unpaired surrogate escape (`\ud800`) becomes U+FFFD (Swift strings cannot hold one; Python keeps it);
/// - integers that do not fit in 64 bits become floats (Python keeps them exact);
/// - nesting is limited to `maximumDepth` levels (Python's limit is its recursion limit).
///
/// It never traps on bad input: every error is a `MobileLLMError.invalidFile` naming the file, the byte offset, the
/// line and the column (in characters, 1-based, as Python's `JSONDecodeError` counts them).
struct JSONReader<Value: JSONTree> {
    /// Deepest nesting of arrays and objects accepted.
    static var maximumDepth: Int { 512 }

    /// Parses `bytes`; `path` names the source in errors.
    static func parse(_ bytes: some Collection<UInt8>, path: String) throws -> Value {
        try parse(bytes, path: path, captureKey: nil).value
    }

    /// Parses `bytes`; the members of the object under `captureKey` inside the top-level `model` member
    /// (`model.vocab`) are also returned in file order as pairs (that value becomes `null` in the tree): building a
    /// 128k-entry dictionary costs more than the rest of the parse.
    static func parse(_ bytes: some Collection<UInt8>, path: String, captureKey: String?) throws -> (value: Value, captured: [(String, Value)]?) {
        if let result = try bytes.withContiguousStorageIfAvailable({ try parse(raw: UnsafeRawBufferPointer($0), path: path, captureKey: captureKey) }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try parse(raw: $0, path: path, captureKey: captureKey) }
    }

    /// `parse(_:path:captureKey:)` over contiguous bytes.
    private static func parse(raw: UnsafeRawBufferPointer, path: String, captureKey: String?) throws -> (value: Value, captured: [(String, Value)]?) {
        var parser = Parser(bytes: raw, path: path)
        parser.captureKey = captureKey
        if raw.count >= 3, raw[0] == 0xEF, raw[1] == 0xBB, raw[2] == 0xBF {
            throw parser.fail("the file starts with a UTF-8 byte order mark (Python's json, which transformers uses, rejects it too); save it as UTF-8 without one")
        }
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == raw.count else { throw parser.fail("unexpected data after the JSON value") }
        return (value, parser.captured)
    }

    /// Reads and parses the file at `path`.
    static func load(path: String) throws -> Value {
        try parse(readWholeFile(path), path: path)
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var position = 0
        var scratch: [UInt8] = []
        var captureKey: String?
        var topLevelKey = ""
        var captured: [(String, Value)]?

        init(bytes: UnsafeRawBufferPointer, path: String) {
            self.bytes = bytes
            self.path = path
            scratch.reserveCapacity(256)
        }

        /// The error at the current position: byte offset, line and column.
        func fail(_ problem: String) -> MobileLLMError {
            var line = 1, column = 1
            for byte in UnsafeRawBufferPointer(rebasing: bytes[0..<min(position, bytes.count)]) {
                if byte == 0x0A { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
            }
            return .invalidFile(path: path, field: "(document)",
                                problem: "not valid JSON at byte \(position) (line \(line), column \(column)): \(problem)")
        }

        @inline(__always) func peek() -> UInt8? {
            position < bytes.count ? bytes[position] : nil
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                let byte = bytes[position]
                if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 } else { break }
            }
        }

        mutating func expect(_ literal: StaticString) throws {
            let count = literal.utf8CodeUnitCount
            guard position + count <= bytes.count else { throw fail("truncated literal") }
            let start = literal.utf8Start
            for index in 0..<count where bytes[position + index] != start[index] {
                throw fail("unexpected character")
            }
            position += count
        }

        mutating func parseValue(depth: Int) throws -> Value {
            guard depth < JSONReader.maximumDepth else { throw fail("nesting deeper than \(JSONReader.maximumDepth) levels") }
            guard let byte = peek() else { throw fail("unexpected end of data") }
            switch byte {
            case UInt8(ascii: "{"):
                return .json(object: try parseMembers(depth: depth))
            case UInt8(ascii: "["):
                position += 1
                var items: [Value] = []
                skipWhitespace()
                if peek() == UInt8(ascii: "]") { position += 1; return .json(array: items) }
                while true {
                    skipWhitespace()
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard let next = peek() else { throw fail("unexpected end of data in an array") }
                    position += 1
                    if next == UInt8(ascii: "]") { return .json(array: items) }
                    guard next == UInt8(ascii: ",") else { position -= 1; throw fail("expected ',' or ']'") }
                }
            case UInt8(ascii: "\""):
                return .json(try parseString())
            case UInt8(ascii: "t"):
                try expect("true"); return .json(true)
            case UInt8(ascii: "f"):
                try expect("false"); return .json(false)
            case UInt8(ascii: "n"):
                try expect("null"); return .jsonNull
            case UInt8(ascii: "N"):
                try expect("NaN"); return .json(float: .nan)
            case UInt8(ascii: "I"):
                try expect("Infinity"); return .json(float: .infinity)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try parseNumber()
            default:
                throw fail("unexpected character")
            }
        }

        /// An object's members in file order (repeated keys kept; the tree resolves them).
        mutating func parseMembers(depth: Int) throws -> [(String, Value)] {
            position += 1
            var members: [(String, Value)] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { position += 1; return members }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                skipWhitespace()
                if depth == 0 { topLevelKey = key }
                if depth == 1, topLevelKey == "model", captured == nil, let captureKey, key == captureKey,
                   peek() == UInt8(ascii: "{") {
                    guard depth + 1 < JSONReader.maximumDepth else { throw fail("nesting deeper than \(JSONReader.maximumDepth) levels") }
                    captured = try parseMembers(depth: depth + 1)
                    members.append((key, .jsonNull))
                } else {
                    members.append((key, try parseValue(depth: depth + 1)))
                }
                skipWhitespace()
                guard let next = peek() else { throw fail("unexpected end of data in an object") }
                position += 1
                if next == UInt8(ascii: "}") { return members }
                guard next == UInt8(ascii: ",") else { position -= 1; throw fail("expected ',' or '}'") }
            }
        }

        /// A number as Python's scanner reads one: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, each optional part
        /// taken only when complete (so `01` is `0` followed by extra data, and `1.` is `1` followed by a stray `.`).
        mutating func parseNumber() throws -> Value {
            let start = position
            let negative = peek() == UInt8(ascii: "-")
            if negative {
                position += 1
                if peek() == UInt8(ascii: "I") { try expect("Infinity"); return .json(float: -.infinity) }
            }
            func isDigit(_ byte: UInt8?) -> Bool { byte.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
            guard isDigit(peek()) else { position = start; throw fail("expected a value") }
            var magnitude: UInt64 = 0
            var fits = true
            if peek() == UInt8(ascii: "0") {
                position += 1
            } else {
                while let byte = peek(), isDigit(byte) {
                    let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
                    if o1 || o2 { fits = false } else { magnitude = sum }
                    position += 1
                }
            }
            var whole = true
            if peek() == UInt8(ascii: "."), position + 1 < bytes.count, isDigit(bytes[position + 1]) {
                whole = false
                position += 1
                while isDigit(peek()) { position += 1 }
            }
            if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
                var end = position + 1
                if end < bytes.count, bytes[end] == UInt8(ascii: "+") || bytes[end] == UInt8(ascii: "-") { end += 1 }
                if end < bytes.count, isDigit(bytes[end]) {
                    whole = false
                    position = end
                    while isDigit(peek()) { position += 1 }
                }
            }
            if whole, fits {
                if !negative, magnitude <= UInt64(Int64.max) { return .json(integer: Int64(magnitude)) }
                if negative, magnitude <= UInt64(Int64.max) + 1 {
                    return .json(integer: magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
                }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            guard let value = Double(text) else { position = start; throw fail("bad number \(text)") }
            return .json(float: value)
        }

        /// The offset of the first byte in `range` that does not belong to well-formed UTF-8 (Python's
        /// `UnicodeDecodeError.start`), or nil when the range is valid.
        func firstInvalidUTF8(_ range: Range<Int>) -> Int? {
            var index = range.lowerBound
            while index < range.upperBound {
                let lead = bytes[index]
                let length: Int, low: UInt8, high: UInt8
                switch lead {
                case 0x00...0x7F: index += 1; continue
                case 0xC2...0xDF: (length, low, high) = (2, 0x80, 0xBF)
                case 0xE0: (length, low, high) = (3, 0xA0, 0xBF)
                case 0xED: (length, low, high) = (3, 0x80, 0x9F)
                case 0xE1...0xEF: (length, low, high) = (3, 0x80, 0xBF)
                case 0xF0: (length, low, high) = (4, 0x90, 0xBF)
                case 0xF4: (length, low, high) = (4, 0x80, 0x8F)
                case 0xF1...0xF3: (length, low, high) = (4, 0x80, 0xBF)
                default: return index
                }
                guard index + 1 < range.upperBound, bytes[index + 1] >= low, bytes[index + 1] <= high else { return index }
                for next in index + 2..<index + length {
                    guard next < range.upperBound, bytes[next] & 0xC0 == 0x80 else { return index }
                }
                index += length
            }
            return nil
        }

        /// The error for a string that is not UTF-8, at its first bad byte.
        mutating func failUTF8(_ range: Range<Int>) -> MobileLLMError {
            position = firstInvalidUTF8(range) ?? range.lowerBound
            return fail("a string is not valid UTF-8")
        }

        mutating func parseHex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: throw fail("bad hex digit in \\u escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        mutating func parseString() throws -> String {
            let quote = position
            position += 1 // opening quote
            let start = position
            // Fast path: no escapes.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self) else {
                        throw failUTF8(start..<position)
                    }
                    position += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw fail("control character in a string") }
                position += 1
            }
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                if byte == UInt8(ascii: "\"") {
                    guard let text = String(validating: scratch, as: UTF8.self) else { throw failUTF8(start..<position - 1) }
                    return text
                }
                if byte < 0x20 { position -= 1; throw fail("control character in a string") }
                guard byte == UInt8(ascii: "\\") else { scratch.append(byte); continue }
                guard let escape = peek() else { break }
                let backslash = position - 1
                position += 1
                switch escape {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    let u = position - 1
                    guard var code = try? parseHex4() else { position = u; throw fail("bad \\uXXXX escape") }
                    if code >= 0xD800 && code < 0xDC00 {
                        // A high surrogate must be followed by \uDC00-\uDFFF; otherwise it becomes U+FFFD.
                        if position + 6 <= bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                            let save = position
                            position += 2
                            guard let low = try? parseHex4() else { position = save + 1; throw fail("bad \\uXXXX escape") }
                            if low >= 0xDC00 && low < 0xE000 {
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                position = save
                                code = 0xFFFD
                            }
                        } else {
                            code = 0xFFFD
                        }
                    } else if code >= 0xDC00 && code < 0xE000 {
                        code = 0xFFFD
                    }
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    UTF8.encode(scalar) { scratch.append($0) }
                default:
                    position = backslash
                    throw fail("bad escape \\\(Character(Unicode.Scalar(escape)))")
                }
            }
            position = quote
            throw fail("unterminated string starting here")
        }
    }
}

extension JSONValue: JSONTree {
    static var jsonNull: JSONValue { .null }
    static func json(_ flag: Bool) -> JSONValue { .bool(flag) }
    static func json(integer: Int64) -> JSONValue { .number(Double(integer)) }
    static func json(float: Double) -> JSONValue { .number(float) }
    static func json(_ text: String) -> JSONValue { .string(text) }
    static func json(array: [JSONValue]) -> JSONValue { .array(array) }
    static func json(object: [(String, JSONValue)]) -> JSONValue {
        var members: [String: JSONValue] = [:]
        members.reserveCapacity(object.count)
        for (key, value) in object { members[key] = value }
        return .object(members)
    }
}

extension TemplateValue: JSONTree {
    static var jsonNull: TemplateValue { .null }
    static func json(_ flag: Bool) -> TemplateValue { .bool(flag) }
    static func json(integer: Int64) -> TemplateValue { .int(Int(integer)) }
    static func json(float: Double) -> TemplateValue { .float(float) }
    static func json(_ text: String) -> TemplateValue { .string(text) }
    static func json(array: [TemplateValue]) -> TemplateValue { .array(array) }
    static func json(object: [(String, TemplateValue)]) -> TemplateValue {
        var members: [(key: String, value: TemplateValue)] = []
        members.reserveCapacity(object.count)
        var index: [String: Int] = [:]
        for (key, value) in object {
            if let existing = index[key] { members[existing].value = value } else {
                index[key] = members.count
                members.append((key: key, value: value))
            }
        }
        return .object(members)
    }
}
