import Foundation

/// A JSON-like value handed to a chat template (messages, tools, extra variables).
///
/// Unlike `JSONValue`, it keeps integers and floats apart and keeps object members in order, because a template
/// prints `3` for an int and `3.0` for a float, and `tojson`/`items()` follow insertion order, as Python does.
public enum TemplateValue: Sendable, Equatable {
    /// JSON `null` (Python `None`).
    case null
    /// A boolean.
    case bool(Bool)
    /// An integer (Python `int`).
    case int(Int)
    /// A floating-point number (Python `float`).
    case float(Double)
    /// A string.
    case string(String)
    /// A list.
    case array([TemplateValue])
    /// An object whose members keep their order.
    case object([(key: String, value: TemplateValue)])

    /// Compares structurally, including member order.
    public static func == (lhs: TemplateValue, rhs: TemplateValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.float(a), .float(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// Converts a `JSONValue`. `JSONValue` keeps numbers as `Double`, so a whole number within ±2^53 becomes an
    /// `.int` (what Python's `json.loads` gives for `3`); object members are sorted by key, since `JSONValue`
    /// does not keep their order. Use `TemplateValue.parse(_:path:)` to keep both exactly.
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .number(number):
            if number.rounded() == number, abs(number) <= 9_007_199_254_740_992 { self = .int(Int(number)) } else { self = .float(number) }
        case let .string(text): self = .string(text)
        case let .array(items): self = .array(items.map(TemplateValue.init))
        case let .object(members): self = .object(members.keys.sorted().map { (key: $0, value: TemplateValue(members[$0] ?? .null)) })
        }
    }

    /// A message as a template sees it: `{"role": role, "content": content}`.
    public static func message(role: String, content: String) -> TemplateValue {
        .object([(key: "role", value: .string(role)), (key: "content", value: .string(content))])
    }

    /// Parses JSON text exactly as Python's `json.loads` would: ints stay ints (`3`), floats stay floats (`3.0`),
    /// object members keep their order (a repeated key keeps its last value at its first position).
    /// Throws `MobileLLMError.invalidFile` naming `path`, line and column when the text is not valid JSON.
    public static func parse(_ data: Data, path: String) throws -> TemplateValue {
        var parser = JSONTextParser(bytes: Array(data), path: path)
        return try parser.parseDocument()
    }

    /// Reads and parses the JSON file at `path` (see `parse(_:path:)`).
    public static func load(path: String) throws -> TemplateValue {
        try parse(readWholeFile(path), path: path)
    }

    /// The member named `key` of an object; nil for other values or a missing key.
    public subscript(key: String) -> TemplateValue? {
        guard case let .object(members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }
}

/// A strict JSON parser over UTF-8 bytes that keeps int/float and member order.
struct JSONTextParser {
    let bytes: [UInt8]
    let path: String
    var position = 0
    var depth = 0
    static let maximumDepth = 128

    init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    func fail(_ problem: String) -> MobileLLMError {
        var line = 1, column = 1
        for byte in bytes[0..<min(position, bytes.count)] {
            if byte == 0x0A { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
        }
        return .invalidFile(path: path, field: "(document)", problem: "not valid JSON at line \(line) column \(column): \(problem)")
    }

    mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    mutating func parseDocument() throws -> TemplateValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw fail("unexpected text after the JSON value") }
        return value
    }

    mutating func expect(_ literal: String, _ value: TemplateValue) throws -> TemplateValue {
        let utf8 = Array(literal.utf8)
        guard position + utf8.count <= bytes.count, Array(bytes[position..<position + utf8.count]) == utf8 else {
            throw fail("unexpected character")
        }
        position += utf8.count
        return value
    }

    mutating func parseValue() throws -> TemplateValue {
        skipWhitespace()
        guard position < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else { throw fail("nested more than \(Self.maximumDepth) levels deep") }
            position += 1
            var members: [(key: String, value: TemplateValue)] = []
            var index: [String: Int] = [:]
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                let value = try parseValue()
                if let existing = index[key] { members[existing].value = value } else {
                    index[key] = members.count
                    members.append((key: key, value: value))
                }
                skipWhitespace()
                guard position < bytes.count else { throw fail("unexpected end of input in an object") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else { throw fail("nested more than \(Self.maximumDepth) levels deep") }
            position += 1
            var items: [TemplateValue] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            while true {
                items.append(try parseValue())
                skipWhitespace()
                guard position < bytes.count else { throw fail("unexpected end of input in an array") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "N"): return try expect("NaN", .float(.nan))
        case UInt8(ascii: "I"): return try expect("Infinity", .float(.infinity))
        default:
            return try parseNumber()
        }
    }

    mutating func parseNumber() throws -> TemplateValue {
        let start = position
        var isFloat = false
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "I") { return try expect("Infinity", .float(-.infinity)) }
        }
        let digitsStart = position
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
        guard position > digitsStart else { throw fail("unexpected character") }
        guard position - digitsStart == 1 || bytes[digitsStart] != UInt8(ascii: "0") else { throw fail("a number with a leading zero") }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isFloat = true
            position += 1
            let fractionStart = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
            guard position > fractionStart else { throw fail("expected digits after '.'") }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            isFloat = true
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            let exponentStart = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
            guard position > exponentStart else { throw fail("expected exponent digits") }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if !isFloat, let value = Int(text) { return .int(value) }
        guard let value = Double(text) else { throw fail("bad number '\(text)'") }
        return .float(value)
    }

    mutating func parseHex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            position += 1
            value <<= 4
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value |= UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value |= UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value |= UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail("bad \\u escape")
            }
        }
        return value
    }

    mutating func parseString() throws -> String {
        position += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[position]
            position += 1
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw fail("control character in a string") }
            if byte != UInt8(ascii: "\\") { out.append(byte); continue }
            guard position < bytes.count else { throw fail("unterminated string") }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code), position + 6 <= bytes.count,
                   bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                    let save = position
                    position += 2
                    let low = try parseHex4()
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        position = save
                    }
                }
                // A lone surrogate cannot live in a Swift string; Python would keep it. Use U+FFFD.
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default: throw fail("bad escape")
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
        return text
    }
}
