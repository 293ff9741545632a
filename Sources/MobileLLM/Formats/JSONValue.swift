
/// A parsed JSON document, kept as plain values so that readers can report precisely which field is wrong.
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    /// Parses `bytes` (`Data`, `[UInt8]`, …) as strict RFC 8259 JSON; `path` names the source in errors, which give the byte offset and the
    /// problem (nesting is limited to 512 levels). A repeated object key keeps its last value, as Python's
    /// `json.loads` (which reads config.json in transformers) does; `JSONDecoder` would keep the first.
    public static func parse(_ bytes: some Collection<UInt8>, path: String) throws -> JSONValue {
        try FastJSON.parse(bytes, path: path)
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws -> JSONValue {
        try parse(readWholeFile(path), path: path)
    }

    /// The same value in the keyed form: ints become numbers, members a dictionary (their keys are already unique).
    public init(_ value: TemplateValue) {
        switch value {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .int(number): self = .number(Double(number))
        case let .float(number): self = .number(number)
        case let .string(text): self = .string(text)
        case let .array(items): self = .array(items.map(JSONValue.init))
        case let .object(members):
            self = .object(Dictionary(members.map { ($0.key, JSONValue($0.value)) }, uniquingKeysWith: { _, last in last }))
        }
    }

    /// A short, human-readable name of the JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The value for an error message: numbers and short strings as written, other values by their type.
    public var summary: String {
        switch self {
        case let .number(number):
            return number.rounded() == number && abs(number) < 1e18 ? String(Int64(number)) : "\(number)"
        case let .string(text): return text.count <= 40 ? "\"\(text)\"" : "a string"
        case let .bool(flag): return "\(flag)"
        default: return typeName
        }
    }
}

/// Typed, error-reporting access to the fields of one JSON object from one file.
public struct JSONObjectReader: Sendable {
    /// The file the object came from.
    public let path: String
    /// A prefix for field names in errors (e.g. `rope_scaling.`).
    public let prefix: String
    /// The object's members.
    public let members: [String: JSONValue]

    /// Wraps `value`, which must be an object.
    public init(_ value: JSONValue, path: String, prefix: String = "") throws {
        guard case let .object(members) = value else {
            throw MobileLLMError.invalidFile(path: path, field: prefix.isEmpty ? "(document)" : String(prefix.dropLast()),
                                             problem: "expected a JSON object, found \(value.typeName)")
        }
        self.path = path
        self.prefix = prefix
        self.members = members
    }

    /// True when the key exists and is not null.
    public func has(_ key: String) -> Bool {
        if let value = members[key], value != .null { return true }
        return false
    }

    func fail(_ key: String, _ problem: String) -> MobileLLMError {
        .invalidFile(path: path, field: prefix + key, problem: problem)
    }

    /// An integer field; nil when absent or null.
    public func optionalInt(_ key: String) throws -> Int? {
        guard let value = members[key], value != .null else { return nil }
        guard case let .number(number) = value else { throw fail(key, "expected an integer, found \(value.typeName)") }
        guard number.rounded() == number else { throw fail(key, "expected an integer, found \(number)") }
        guard abs(number) <= 9.0e15 else { throw fail(key, "integer \(number) is out of range") }
        return Int(number)
    }

    /// A required integer field.
    public func int(_ key: String) throws -> Int {
        guard let value = try optionalInt(key) else { throw fail(key, "missing (expected an integer)") }
        return value
    }

    /// A required integer field that must lie in `range`.
    public func int(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        let value = try int(key)
        guard range.contains(value) else { throw fail(key, "expected a value in \(range.lowerBound)...\(range.upperBound), found \(value)") }
        return value
    }

    /// A number field; nil when absent or null.
    public func optionalDouble(_ key: String) throws -> Double? {
        guard let value = members[key], value != .null else { return nil }
        guard case let .number(number) = value else { throw fail(key, "expected a number, found \(value.typeName)") }
        guard number.isFinite else { throw fail(key, "expected a finite number") }
        return number
    }

    /// A boolean field; nil when absent or null.
    public func optionalBool(_ key: String) throws -> Bool? {
        guard let value = members[key], value != .null else { return nil }
        guard case let .bool(flag) = value else { throw fail(key, "expected true or false, found \(value.typeName)") }
        return flag
    }

    /// A string field; nil when absent or null.
    public func optionalString(_ key: String) throws -> String? {
        guard let value = members[key], value != .null else { return nil }
        guard case let .string(text) = value else { throw fail(key, "expected a string, found \(value.typeName)") }
        return text
    }

    /// An array of integers; nil when absent or null.
    public func optionalIntArray(_ key: String) throws -> [Int]? {
        guard let value = members[key], value != .null else { return nil }
        guard case let .array(items) = value else { throw fail(key, "expected an array of integers, found \(value.typeName)") }
        return try items.enumerated().map { index, item in
            guard case let .number(number) = item else {
                throw fail("\(key)[\(index)]", "expected an integer, found \(item.typeName)")
            }
            guard number.rounded() == number else { throw fail("\(key)[\(index)]", "expected an integer, found \(number)") }
            guard abs(number) <= 9.0e15 else { throw fail("\(key)[\(index)]", "integer \(number) is out of range") }
            return Int(number)
        }
    }

    /// An array of strings; nil when absent or null.
    public func optionalStringArray(_ key: String) throws -> [String]? {
        guard let value = members[key], value != .null else { return nil }
        guard case let .array(items) = value else { throw fail(key, "expected an array of strings, found \(value.typeName)") }
        return try items.enumerated().map { index, item in
            guard case let .string(text) = item else { throw fail("\(key)[\(index)]", "expected a string, found \(item.typeName)") }
            return text
        }
    }

    /// An integer or an array of integers (as HF writes `eos_token_id`); empty when absent or null.
    public func intOrIntArray(_ key: String) throws -> [Int] {
        guard let value = members[key], value != .null else { return [] }
        if case .number = value, let single = try optionalInt(key) { return [single] }
        if case .array = value { return try optionalIntArray(key) ?? [] }
        throw fail(key, "expected an integer or an array of integers, found \(value.typeName)")
    }

    /// A nested object; nil when absent or null.
    public func optionalObject(_ key: String) throws -> JSONObjectReader? {
        guard let value = members[key], value != .null else { return nil }
        return try JSONObjectReader(value, path: path, prefix: prefix + key + ".")
    }
}
