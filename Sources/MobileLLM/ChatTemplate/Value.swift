
/// A dictionary key as Python hashes it: `1`, `1.0` and `True` are the same key.
enum DictKey: Hashable {
    case none
    case int(Int)
    case float(UInt64)
    case string(String)

    /// The key for `value`, or nil when Python could not hash it (lists, dicts, undefined).
    init?(_ value: Value) {
        switch value {
        case .none: self = .none
        case let .bool(flag): self = .int(flag ? 1 : 0)
        case let .int(number): self = .int(number)
        case let .float(number):
            if number.rounded() == number, abs(number) < 9.2e18 { self = .int(Int(number)) } else { self = .float(number.bitPattern) }
        case let .string(text), let .markup(text): self = .string(text)
        default: return nil
        }
    }
}

/// An ordered dictionary (Python dicts keep insertion order) with Python-hashable keys.
struct OrderedDict {
    private(set) var entries: [(key: Value, value: Value)] = []
    private var index: [DictKey: Int] = [:]

    init() {}
    init(_ pairs: [(String, Value)]) {
        for (key, value) in pairs { self[key] = value }
    }

    var count: Int { entries.count }
    var keys: [Value] { entries.map(\.key) }
    var values: [Value] { entries.map(\.value) }
    var pairs: [(Value, Value)] { entries.map { ($0.key, $0.value) } }
    /// The keys that are strings (namespace attributes, JSON objects).
    var stringKeys: [String] { entries.compactMap { if case let .string(key) = $0.key { return key } else { return nil } } }

    subscript(key: String) -> Value? {
        get { index[.string(key)].map { entries[$0].value } }
        set {
            if let newValue { set(.string(key), newValue, hashed: .string(key)) }
        }
    }

    /// The value for `key`; nil when absent or unhashable.
    func lookup(_ key: Value) -> Value? {
        guard let hashed = DictKey(key), let position = index[hashed] else { return nil }
        return entries[position].value
    }

    /// Sets `key` (keeping the first key object and position, as Python does); throws when unhashable.
    mutating func set(_ key: Value, _ value: Value) throws {
        guard let hashed = DictKey(key) else { throw TemplateRuntimeError("unhashable type: '\(key.typeName)'") }
        set(key, value, hashed: hashed)
    }

    /// Replaces the value of the entry at `position` (in insertion order) without hashing its key.
    mutating func replaceValue(at position: Int, with value: Value) {
        entries[position].value = value
    }

    private mutating func set(_ key: Value, _ value: Value, hashed: DictKey) {
        if let position = index[hashed] {
            entries[position].value = value
        } else {
            index[hashed] = entries.count
            entries.append((key: key, value: value))
        }
    }
}

/// A `namespace()` object: the one mutable value templates have.
final class Namespace {
    var attributes: OrderedDict
    /// Set while `repr` prints it, to cut cycles (`{% set ns.me = [ns] %}`).
    var printing = false
    init(_ attributes: OrderedDict) { self.attributes = attributes }
}

/// A callable value: a macro, a global function or a bound method.
final class Callable {
    let name: String
    let body: (_ interpreter: Interpreter, _ arguments: Arguments) throws -> Value
    init(name: String, body: @escaping (_ interpreter: Interpreter, _ arguments: Arguments) throws -> Value) {
        self.name = name
        self.body = body
    }
}

/// Evaluated call arguments.
struct Arguments {
    var positional: [Value] = []
    var keyword: [(String, Value)] = []

    func keywordValue(_ name: String) -> Value? { keyword.last(where: { $0.0 == name })?.1 }

    /// Positional argument `index`, or keyword `name`, or nil.
    func value(_ index: Int, _ name: String) -> Value? {
        if index < positional.count { return positional[index] }
        return keywordValue(name)
    }
}

/// A value during rendering: Python's types as jinja2 sees them.
enum Value {
    /// jinja2's `Undefined`; `hint` says what was missing, for errors.
    case undefined(hint: String)
    /// Python `None`.
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(OrderedDict)
    case namespace(Namespace)
    case callable(Callable)
    /// A method jinja2's immutable sandbox refuses (e.g. `list.append`): an undefined that raises when called.
    case unsafe(message: String)
    /// markupsafe's `Markup` (from `|safe`, `|escape`): a string that HTML-escapes what `+` adds to it.
    case markup(String)
    /// A one-pass iterator (what `map`, `select`, `selectattr`, `unique`, `items`, `reverse` return in jinja2):
    /// always truthy, no `len()`, not JSON serializable.
    case generator([Value])

    init(_ value: TemplateValue) {
        switch value {
        case .null: self = .none
        case let .bool(flag): self = .bool(flag)
        case let .int(number): self = .int(number)
        case let .float(number): self = .float(number)
        case let .string(text): self = .string(text)
        case let .array(items): self = .list(items.map(Value.init))
        case let .object(members): self = .dict(OrderedDict(members.map { ($0.key, Value($0.value)) }))
        }
    }

    /// The value with `Markup` turned into a plain string (where Python treats both alike).
    var plain: Value {
        if case let .markup(text) = self { return .string(text) }
        return self
    }

    var isUndefined: Bool {
        switch self {
        case .undefined, .unsafe: return true
        default: return false
        }
    }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .unsafe, .none: return false
        case let .bool(flag): return flag
        case let .int(number): return number != 0
        case let .float(number): return number != 0
        case let .string(text), let .markup(text): return !text.isEmpty
        case .generator: return true
        case let .list(items), let .tuple(items): return !items.isEmpty
        case let .dict(dict): return dict.count > 0
        case .namespace, .callable: return true
        }
    }

    /// The Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined, .unsafe: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .generator: return "generator"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }
}

// MARK: - Python text conversions

enum PythonText {
    /// Python's `str(value)` (jinja2's output conversion).
    static func str(_ value: Value) -> String {
        switch value {
        case .undefined, .unsafe: return ""
        case let .string(text), let .markup(text): return text
        default: return repr(value)
        }
    }

    /// Python's `repr(value)`.
    static func repr(_ value: Value) -> String {
        switch value {
        case .undefined, .unsafe: return "Undefined"
        case .none: return "None"
        case let .bool(flag): return flag ? "True" : "False"
        case let .int(number): return String(number)
        case let .float(number): return floatRepr(number)
        case let .string(text): return stringRepr(text)
        case let .markup(text): return "Markup(" + stringRepr(text) + ")"
        case .generator: return "<generator object>"
        case let .list(items): return "[" + items.map(repr).joined(separator: ", ") + "]"
        case let .tuple(items):
            if items.count == 1 { return "(" + repr(items[0]) + ",)" }
            return "(" + items.map(repr).joined(separator: ", ") + ")"
        case let .dict(dict):
            return "{" + dict.pairs.map { repr($0.0) + ": " + repr($0.1) }.joined(separator: ", ") + "}"
        case let .namespace(namespace):
            // Python's recursion guard prints a dict already being printed as {...}.
            if namespace.printing { return "<Namespace {...}>" }
            namespace.printing = true
            defer { namespace.printing = false }
            return "<Namespace " + repr(.dict(namespace.attributes)) + ">"
        case let .callable(callable): return "<function \(callable.name)>"
        }
    }

    /// Python's `repr(float)`: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
    static func floatRepr(_ number: Double) -> String {
        if number.isNaN { return "nan" }
        if number.isInfinite { return number < 0 ? "-inf" : "inf" }
        if number == 0 { return number.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description gives the shortest round-trip digits; re-layout them the Python way.
        let description = "\(number.magnitude)"
        var mantissa = description
        var exponent = 0
        if let e = description.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(description[description.startIndex..<e])
            exponent = Int(description[description.index(after: e)...]) ?? 0
        }
        var integerPart = mantissa
        var fractionPart = ""
        if let dot = mantissa.firstIndex(of: ".") {
            integerPart = String(mantissa[mantissa.startIndex..<dot])
            fractionPart = String(mantissa[mantissa.index(after: dot)...])
        }
        var digits = integerPart + fractionPart
        var pointPosition = integerPart.count + exponent  // digits before the decimal point
        while digits.count > 1, digits.first == "0" { digits.removeFirst(); pointPosition -= 1 }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let decimalExponent = pointPosition - 1  // scientific exponent
        let sign = number < 0 ? "-" : ""
        if decimalExponent >= -4 && decimalExponent < 16 {
            if pointPosition <= 0 {
                return sign + "0." + String(repeating: "0", count: -pointPosition) + digits
            } else if pointPosition >= digits.count {
                return sign + digits + String(repeating: "0", count: pointPosition - digits.count) + ".0"
            } else {
                let index = digits.index(digits.startIndex, offsetBy: pointPosition)
                return sign + digits[digits.startIndex..<index] + "." + digits[index...]
            }
        }
        var out = sign + String(digits.prefix(1))
        if digits.count > 1 { out += "." + digits.dropFirst() }
        let magnitude = abs(decimalExponent)
        out += "e" + (decimalExponent < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") + String(magnitude)
        return out
    }

    /// Python's `repr(str)`.
    static func stringRepr(_ text: String) -> String {
        let useDouble = text.unicodeScalars.contains("'") && !text.unicodeScalars.contains("\"")
        let quote: Unicode.Scalar = useDouble ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case quote: out.append("\\"); out.append(scalar)
            default:
                if isPrintable(scalar) {
                    out.append(scalar)
                } else if scalar.value < 0x100 {
                    out.append(contentsOf: ("\\x" + lowercaseHex(scalar.value, width: 2)).unicodeScalars)
                } else if scalar.value < 0x10000 {
                    out.append(contentsOf: ("\\u" + lowercaseHex(scalar.value, width: 4)).unicodeScalars)
                } else {
                    out.append(contentsOf: ("\\U" + lowercaseHex(scalar.value, width: 8)).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    /// Python's `str.isprintable()` for one character (approximately: not a control, format, separator other
    /// than the ASCII space, surrogate, private-use or unassigned code point).
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// Python's `str.isspace()` for one character.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}

// MARK: - JSON output (Python's json.dumps with ensure_ascii=False)

struct JSONDumper {
    var indent: String?
    var itemSeparator: String
    var keySeparator: String
    var sortKeys: Bool

    func dump(_ value: Value, level: Int = 0) throws -> String {
        switch value {
        case .none: return "null"
        case let .bool(flag): return flag ? "true" : "false"
        case let .int(number): return String(number)
        case let .float(number):
            if number.isNaN { return "NaN" }
            if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
            return PythonText.floatRepr(number)
        case let .string(text), let .markup(text): return Self.quote(text)
        case let .list(items), let .tuple(items):
            if items.isEmpty { return "[]" }
            return try container(open: "[", close: "]", parts: items.map { try dump($0, level: level + 1) }, level: level)
        case let .dict(dict):
            if dict.count == 0 { return "{}" }
            var pairs = try dict.pairs.map { (try Self.keyString($0.0), $0.1) }
            if sortKeys { pairs.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) { $0.value < $1.value } } }
            let parts = try pairs.map { Self.quote($0.0) + keySeparator + (try dump($0.1, level: level + 1)) }
            return container(open: "{", close: "}", parts: parts, level: level)
        case .undefined, .unsafe:
            throw TemplateRuntimeError("Object of type Undefined is not JSON serializable")
        case .namespace, .callable, .generator:
            throw TemplateRuntimeError("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private func container(open: String, close: String, parts: [String], level: Int) -> String {
        guard let indent else { return open + parts.joined(separator: itemSeparator) + close }
        let inner = "\n" + String(repeating: indent, count: level + 1)
        let outer = "\n" + String(repeating: indent, count: level)
        return open + inner + parts.joined(separator: itemSeparator + inner) + outer + close
    }

    /// json.dumps turns int, float, bool and None keys into strings.
    static func keyString(_ key: Value) throws -> String {
        switch key {
        case let .string(text): return text
        case let .int(number): return String(number)
        case let .float(number): return PythonText.floatRepr(number)
        case let .bool(flag): return flag ? "true" : "false"
        case .none: return "null"
        default: throw TemplateRuntimeError("keys must be str, int, float, bool or None, not \(key.typeName)")
        }
    }

    static func quote(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": out.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": out.append(contentsOf: "\\f".unicodeScalars)
            default:
                if scalar.value < 0x20 {
                    out.append(contentsOf: ("\\u" + lowercaseHex(scalar.value, width: 4)).unicodeScalars)
                } else {
                    out.append(scalar)
                }
            }
        }
        out.append("\"")
        return String(out)
    }
}

/// A failure while rendering, before a source position is attached.
struct TemplateRuntimeError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
