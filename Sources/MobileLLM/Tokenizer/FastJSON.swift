import Foundation

/// The JSON parser behind `JSONValue.parse` (config, index and tokenizer files, safetensors headers): reads the bytes
/// directly (`JSONDecoder` takes most of a second on a 9 MB `tokenizer.json` and its errors give no position). It
/// accepts exactly RFC 8259 JSON (no comments, no trailing commas, no leading zeros, UTF-8 only), keeps the last
/// value of a repeated key as Python's `json` does, and never traps on bad input: every error is a
/// `MobileLLMError.invalidFile` naming the file and the byte offset.
enum FastJSON {
    /// Parses `data`; `path` names the source in errors.
    static func parse(_ data: Data, path: String) throws -> JSONValue {
        try parse(data, path: path, captureKey: nil).value
    }

    /// Parses `data`; the members of the object under `captureKey` inside the top-level `model` member (`model.vocab`) are
    /// returned in file order as pairs instead of being put in a dictionary (that value becomes `null` in the tree):
    /// building a 128k-entry `[String: JSONValue]` costs more than the rest of the parse.
    static func parse(_ data: Data, path: String, captureKey: String?) throws -> (value: JSONValue, captured: [(String, JSONValue)]?) {
        try data.withUnsafeBytes { raw in
            var parser = Parser(bytes: raw, path: path)
            parser.captureKey = captureKey
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.position == raw.count else { throw parser.fail("unexpected data after the JSON value") }
            return (value, parser.captured)
        }
    }

    /// Reads and parses the file at `path`.
    static func load(path: String) throws -> JSONValue {
        let data = try readWholeFile(path)
        return try parse(data, path: path)
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var position = 0
        var scratch: [UInt8] = []
        var captureKey: String?
        var topLevelKey = ""
        var captured: [(String, JSONValue)]?

        init(bytes: UnsafeRawBufferPointer, path: String) {
            self.bytes = bytes
            self.path = path
            scratch.reserveCapacity(256)
        }

        func fail(_ problem: String) -> MobileLLMError {
            .invalidFile(path: path, field: "(document)", problem: "not valid JSON at byte \(position): \(problem)")
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

        mutating func parseValue(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw fail("nesting deeper than 512 levels") }
            guard let byte = peek() else { throw fail("unexpected end of data") }
            switch byte {
            case UInt8(ascii: "{"):
                position += 1
                var members: [String: JSONValue] = [:]
                skipWhitespace()
                if peek() == UInt8(ascii: "}") { position += 1; return .object(members) }
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
                        captured = try parsePairs(depth: depth + 1)
                        members[key] = .null
                    } else {
                        members[key] = try parseValue(depth: depth + 1)
                    }
                    skipWhitespace()
                    guard let next = peek() else { throw fail("unexpected end of data in an object") }
                    position += 1
                    if next == UInt8(ascii: "}") { return .object(members) }
                    guard next == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
                }
            case UInt8(ascii: "["):
                position += 1
                var items: [JSONValue] = []
                skipWhitespace()
                if peek() == UInt8(ascii: "]") { position += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard let next = peek() else { throw fail("unexpected end of data in an array") }
                    position += 1
                    if next == UInt8(ascii: "]") { return .array(items) }
                    guard next == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
                }
            case UInt8(ascii: "\""):
                return .string(try parseString())
            case UInt8(ascii: "t"):
                try expect("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try parseNumber())
            default:
                throw fail("unexpected character")
            }
        }

        /// An object's members in file order (duplicates kept).
        mutating func parsePairs(depth: Int) throws -> [(String, JSONValue)] {
            position += 1
            var pairs: [(String, JSONValue)] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { position += 1; return pairs }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                skipWhitespace()
                pairs.append((key, try parseValue(depth: depth + 1)))
                skipWhitespace()
                guard let next = peek() else { throw fail("unexpected end of data in an object") }
                position += 1
                if next == UInt8(ascii: "}") { return pairs }
                guard next == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            }
        }

        mutating func parseNumber() throws -> Double {
            let start = position
            if peek() == UInt8(ascii: "-") { position += 1 }
            var integer: Int64 = 0
            var simple = true
            var digits = 0
            while let byte = peek(), byte >= 0x30, byte <= 0x39 {
                if digits < 15 { integer = integer * 10 + Int64(byte - 0x30) } else { simple = false }
                digits += 1
                position += 1
            }
            guard digits > 0 else { throw fail("expected digits") }
            guard digits == 1 || bytes[position - digits] != UInt8(ascii: "0") else { throw fail("a number with a leading zero") }
            if let byte = peek(), byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                simple = false
                if byte == UInt8(ascii: ".") {
                    position += 1
                    var fraction = 0
                    while let next = peek(), next >= 0x30, next <= 0x39 { position += 1; fraction += 1 }
                    guard fraction > 0 else { throw fail("expected digits after '.'") }
                }
                if let next = peek(), next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
                    position += 1
                    if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { position += 1 }
                    var exponent = 0
                    while let digit = peek(), digit >= 0x30, digit <= 0x39 { position += 1; exponent += 1 }
                    guard exponent > 0 else { throw fail("expected digits in the exponent") }
                }
            }
            if simple {
                return bytes[start] == UInt8(ascii: "-") ? -Double(integer) : Double(integer)
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            guard let value = Double(text) else { throw fail("bad number \(text)") }
            return value
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
            position += 1 // opening quote
            let start = position
            // Fast path: no escapes.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self) else {
                        throw fail("a string is not valid UTF-8")
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
                    guard let text = String(validating: scratch, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
                    return text
                }
                if byte < 0x20 { throw fail("control character in a string") }
                guard byte == UInt8(ascii: "\\") else { scratch.append(byte); continue }
                guard let escape = peek() else { break }
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
                    var code = try parseHex4()
                    if code >= 0xD800 && code < 0xDC00 {
                        // A high surrogate must be followed by \uDC00-\uDFFF; otherwise it becomes U+FFFD.
                        if position + 6 <= bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                            let save = position
                            position += 2
                            let low = try parseHex4()
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
                    scratch.append(contentsOf: UTF8.encode(scalar) ?? [0xEF, 0xBF, 0xBD])
                default:
                    throw fail("bad escape \\\(Character(Unicode.Scalar(escape)))")
                }
            }
            throw fail("unterminated string")
        }
    }
}

extension UTF8 {
    /// The UTF-8 bytes of one scalar.
    static func encode(_ scalar: Unicode.Scalar) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(4)
        UTF8.encode(scalar) { out.append($0) }
        return out
    }
}

extension JSONValue {
    /// The same as `parse` (kept for callers that name the fast parser). `path` names the source in errors.
    public static func parseFast(_ data: Data, path: String) throws -> JSONValue {
        try FastJSON.parse(data, path: path)
    }
}
