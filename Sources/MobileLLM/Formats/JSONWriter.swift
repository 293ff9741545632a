/// Writes JSON text the way Python's `json.dumps(value, ensure_ascii=False)` does: members in the order given, ints
/// as ints, floats in Python's shortest `repr` (`NaN`, `Infinity` and `-Infinity` as Python writes them), strings with
/// Python's escapes. It is the writer behind the CLI's `--json` output and the template filter `tojson`, so every
/// JSON the project writes follows one set of rules.
public struct JSONWriter: Sendable {
    /// Indentation per nesting level; nil writes one line.
    public var indent: String?
    /// Sort object members by key (Python's `sort_keys=True`).
    public var sortKeys: Bool

    /// A writer: one line with `", "` and `": "` separators unless `indent` is set (then `","` and `": "`).
    public init(indent: String? = nil, sortKeys: Bool = false) {
        self.indent = indent
        self.sortKeys = sortKeys
    }

    /// The JSON text of `value`.
    public func write(_ value: TemplateValue) -> String {
        let dumper = JSONDumper(indent: indent, itemSeparator: indent == nil ? ", " : ",", keySeparator: ": ",
                                sortKeys: sortKeys)
        // A TemplateValue holds only JSON types, which the dumper always serializes.
        return (try? dumper.dump(Value(value))) ?? "null"
    }

    /// A JSON string literal of `text`.
    public static func quote(_ text: String) -> String {
        JSONDumper.quote(text)
    }
}

extension TemplateValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
                         ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    /// A string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An int.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// A boolean.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// A float.
    public init(floatLiteral value: Double) { self = .float(value) }
    /// A list.
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    /// An object with the members in the order written.
    public init(dictionaryLiteral elements: (String, TemplateValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
    /// A string, or `null` for nil.
    public static func string(_ text: String?) -> TemplateValue { text.map { .string($0) } ?? .null }

    /// A list of ints.
    public static func ints<S: Sequence>(_ values: S) -> TemplateValue where S.Element: BinaryInteger {
        .array(values.map { .int(Int($0)) })
    }

    /// A float of `value`, or `null` when it is not finite (strict JSON readers refuse `NaN`).
    public static func finite(_ value: Double) -> TemplateValue { value.isFinite ? .float(value) : .null }

    /// `value` rounded to `places` decimals (written as Python's repr of the rounded float), `null` when nil or not
    /// finite.
    public static func rounded(_ value: Double?, places: Int) -> TemplateValue {
        guard let value, value.isFinite else { return .null }
        var scale = 1.0
        for _ in 0..<max(0, places) { scale *= 10 }
        return .float((value * scale).rounded() / scale)
    }

    /// The JSON text (one line, Python's `json.dumps` format).
    public var jsonText: String { JSONWriter().write(self) }
}
