
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
    public static func parse(_ bytes: some Collection<UInt8>, path: String) throws -> TemplateValue {
        try JSONReader<TemplateValue>.parse(bytes, path: path)
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


extension TemplateValue {
    /// The kind of value for messages: "null", "a boolean", "a number", "a string", "an array", "an object".
    var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .float: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
