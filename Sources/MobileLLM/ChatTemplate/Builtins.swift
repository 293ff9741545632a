#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// Python-style operations on scalar arrays (Python indexes strings by code point).
enum PyString {
    static func scalars(_ text: String) -> [Unicode.Scalar] { Array(text.unicodeScalars) }
    static func make<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static func equal(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

    static func find(_ haystack: [Unicode.Scalar], _ needle: [Unicode.Scalar], from start: Int = 0) -> Int? {
        if needle.isEmpty { return start <= haystack.count ? start : nil }
        guard haystack.count >= needle.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0] && haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    static func rfind(_ haystack: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.count - needle.count
        while index >= 0 {
            if haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index -= 1
        }
        return nil
    }

    static func contains(_ haystack: String, _ needle: String) -> Bool {
        find(scalars(haystack), scalars(needle)) != nil
    }

    static func strip(_ text: String, _ chars: String?, left: Bool, right: Bool) -> String {
        let source = scalars(text)
        let set = chars.map { Set($0.unicodeScalars) }
        func stripped(_ scalar: Unicode.Scalar) -> Bool { set.map { $0.contains(scalar) } ?? PythonText.isSpace(scalar) }
        var start = 0, end = source.count
        if left { while start < end, stripped(source[start]) { start += 1 } }
        if right { while end > start, stripped(source[end - 1]) { end -= 1 } }
        return make(source[start..<end])
    }

    static func split(_ text: String, _ separator: String?, maxSplit: Int) throws -> [String] {
        let source = scalars(text)
        var parts: [String] = []
        if let separator {
            let needle = scalars(separator)
            guard !needle.isEmpty else { throw TemplateRuntimeError("ValueError: empty separator") }
            var start = 0
            while maxSplit < 0 || parts.count < maxSplit, let found = find(source, needle, from: start) {
                parts.append(make(source[start..<found]))
                start = found + needle.count
            }
            parts.append(make(source[start...]))
            return parts
        }
        var index = 0
        while true {
            while index < source.count, PythonText.isSpace(source[index]) { index += 1 }
            if index >= source.count { break }
            if maxSplit >= 0 && parts.count >= maxSplit {
                var end = source.count
                while end > index, PythonText.isSpace(source[end - 1]) { end -= 1 }
                parts.append(make(source[index..<end]))
                break
            }
            let start = index
            while index < source.count, !PythonText.isSpace(source[index]) { index += 1 }
            parts.append(make(source[start..<index]))
        }
        return parts
    }

    static func rsplit(_ text: String, _ separator: String?, maxSplit: Int) throws -> [String] {
        if maxSplit < 0 { return try split(text, separator, maxSplit: -1) }
        let reversedText = make(scalars(text).reversed())
        let reversedSeparator = separator.map { make(scalars($0).reversed()) }
        return try split(reversedText, reversedSeparator, maxSplit: maxSplit).reversed().map { make(scalars($0).reversed()) }
    }

    static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
        let source = scalars(text), needle = scalars(old), replacement = scalars(new)
        var out: [Unicode.Scalar] = []
        var done = 0
        if needle.isEmpty {
            for (index, scalar) in source.enumerated() {
                if count < 0 || done < count { out += replacement; done += 1 }
                out.append(scalar)
                _ = index
            }
            if count < 0 || done < count { out += replacement }
            return make(out)
        }
        var start = 0
        while count < 0 || done < count, let found = find(source, needle, from: start) {
            out += source[start..<found]
            out += replacement
            start = found + needle.count
            done += 1
        }
        out += source[start...]
        return make(out)
    }

    static func splitLines(_ text: String) -> [String] {
        let source = scalars(text)
        var lines: [String] = []
        var start = 0, index = 0
        while index < source.count {
            let scalar = source[index]
            switch scalar.value {
            case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
                lines.append(make(source[start..<index]))
                index += 1
                start = index
            case 0x0D:
                lines.append(make(source[start..<index]))
                index += (index + 1 < source.count && source[index + 1] == "\n") ? 2 : 1
                start = index
            default:
                index += 1
            }
        }
        if start < source.count { lines.append(make(source[start...])) }
        return lines
    }

    static func isCased(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter: return true
        default: return false
        }
    }

    /// Python's `str.title()`.
    static func title(_ text: String) -> String {
        var out = ""
        var previousCased = false
        for scalar in text.unicodeScalars {
            if isCased(scalar) || scalar.properties.changesWhenTitlecased || scalar.properties.changesWhenLowercased {
                out += previousCased ? String(scalar).lowercased() : scalar.properties.titlecaseMapping
                previousCased = isCased(scalar)
            } else {
                out.unicodeScalars.append(scalar)
                previousCased = isCased(scalar)
            }
        }
        return out
    }

    /// Python's `str.capitalize()` (first character title-cased, the rest lower-cased).
    static func capitalize(_ text: String) -> String {
        guard let first = text.unicodeScalars.first else { return "" }
        return first.properties.titlecaseMapping + make(text.unicodeScalars.dropFirst()).lowercased()
    }

    /// jinja2's `title` filter: capitalise each word, words split at whitespace and `-([{<`.
    static func jinjaTitle(_ text: String) -> String {
        var out = ""
        var word = String.UnicodeScalarView()
        func flush() {
            if !word.isEmpty { out += capitalize(String(word)) }
            word = String.UnicodeScalarView()
        }
        var inSeparator = false
        for scalar in text.unicodeScalars {
            let isSeparator = PythonText.isSpace(scalar) || "-([{<".unicodeScalars.contains(scalar)
            if isSeparator != inSeparator {
                if inSeparator { out += String(word); word = String.UnicodeScalarView() } else { flush() }
                inSeparator = isSeparator
            }
            word.append(scalar)
        }
        if inSeparator { out += String(word) } else { flush() }
        return out
    }
}

/// Filters, tests, operators, attribute access and globals, each following jinja2/Python semantics.
enum Builtins {
    static func operandError(_ op: String, _ value: Value) -> TemplateRuntimeError {
        if case let .undefined(hint) = value { return TemplateRuntimeError(hint) }
        return TemplateRuntimeError("bad operand type for \(op): '\(value.typeName)'")
    }

    static func undefinedError(_ value: Value) -> TemplateRuntimeError? {
        switch value {
        case let .undefined(hint): return TemplateRuntimeError(hint)
        case let .unsafe(message): return TemplateRuntimeError("SecurityError: \(message)")
        default: return nil
        }
    }

    /// Deepest nesting a value built at run time may have. Values are freed and printed recursively, so a
    /// template such as `{% set ns.x = [ns.x] %}` in a long loop must stop here rather than exhaust the stack.
    static let maximumNesting = 200

    /// Throws when `value` nests deeper than `maximumNesting` (namespaces count, cycles through them stop).
    static func checkNesting(_ value: Value) throws {
        var visiting = Set<ObjectIdentifier>()
        if nesting(value, 0, &visiting) > maximumNesting {
            throw TemplateRuntimeError("value nested too deeply (more than \(maximumNesting) levels)")
        }
    }

    private static func nesting(_ value: Value, _ depth: Int, _ visiting: inout Set<ObjectIdentifier>) -> Int {
        if depth > maximumNesting { return depth }
        var deepest = depth
        switch value {
        case let .list(items), let .tuple(items), let .generator(items):
            for item in items { deepest = max(deepest, nesting(item, depth + 1, &visiting)); if deepest > maximumNesting { break } }
        case let .dict(dict):
            for item in dict.values { deepest = max(deepest, nesting(item, depth + 1, &visiting)); if deepest > maximumNesting { break } }
        case let .namespace(namespace):
            let id = ObjectIdentifier(namespace)
            guard !visiting.contains(id) else { return depth }
            visiting.insert(id)
            defer { visiting.remove(id) }
            for item in namespace.attributes.values { deepest = max(deepest, nesting(item, depth + 1, &visiting)); if deepest > maximumNesting { break } }
        default: break
        }
        return deepest
    }

    // MARK: iteration, attributes, items

    /// Python's `list(iter(value))`.
    static func iterate(_ value: Value) throws -> [Value] {
        switch value.plain {
        case let .generator(items): return items
        case let .list(items), let .tuple(items): return items
        case let .string(text): return text.unicodeScalars.map { .string(String($0)) }
        case let .dict(dict): return dict.keys
        case .undefined: return []
        case let .unsafe(message): throw TemplateRuntimeError("SecurityError: \(message)")
        default: throw TemplateRuntimeError("'\(value.typeName)' object is not iterable")
        }
    }

    static let mutatingDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    static let mutatingListMethods: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"]

    /// jinja2's sandboxed `getattr(obj, name)`: a Python attribute first, then the item.
    static func attribute(_ value: Value, _ name: String) throws -> Value {
        let value = value.plain
        if let error = undefinedError(value) { throw error }
        if name.hasPrefix("_") {
            if case let .dict(dict) = value, let found = dict[name] { return found }
            if case let .namespace(namespace) = value, let found = namespace.attributes[name] { return found }
            return .undefined(hint: "'\(value.typeName) object' has no attribute '\(name)'")
        }
        if let method = method(value, name) { return method }
        switch value {
        case let .dict(dict):
            if let found = dict[name] { return found }
        case let .namespace(namespace):
            if let found = namespace.attributes[name] { return found }
        default: break
        }
        return .undefined(hint: "'\(value.typeName) object' has no attribute '\(name)'")
    }

    /// jinja2's sandboxed `getitem(obj, key)`: the item first, then (for a string key) the attribute.
    static func item(_ value: Value, _ key: Value) throws -> Value {
        let value = value.plain, key = key.plain
        if let error = undefinedError(value) { throw error }
        switch (value, key) {
        case let (.dict(dict), _):
            if let found = dict.lookup(key) { return found }
        case let (.list(items), .int(index)), let (.tuple(items), .int(index)):
            let resolved = index < 0 ? index + items.count : index
            if resolved >= 0 && resolved < items.count { return items[resolved] }
            return .undefined(hint: "list index \(index) is out of range")
        case let (.list(items), .bool(flag)), let (.tuple(items), .bool(flag)):
            let index = flag ? 1 : 0
            if index < items.count { return items[index] }
        case let (.string(text), .int(index)):
            let scalars = PyString.scalars(text)
            let resolved = index < 0 ? index + scalars.count : index
            if resolved >= 0 && resolved < scalars.count { return .string(String(scalars[resolved])) }
            return .undefined(hint: "string index \(index) is out of range")
        case let (.namespace, .string(name)):
            return try attribute(value, name)
        default: break
        }
        if case let .string(name) = key, !name.hasPrefix("_"), let method = method(value, name) { return method }
        return .undefined(hint: "'\(value.typeName) object' has no attribute \(PythonText.repr(key))")
    }

    private static func sliceIndex(_ value: Value?) throws -> Int? {
        guard let value else { return nil }
        switch value {
        case .none: return nil
        case let .int(number): return number
        case let .bool(flag): return flag ? 1 : 0
        default: throw TemplateRuntimeError("slice indices must be integers or None")
        }
    }

    /// Python slicing `value[start:stop:step]`.
    static func slice(_ value: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws -> Value {
        let value = value.plain
        if let error = undefinedError(value) { throw error }
        let stepValue = try sliceIndex(step) ?? 1
        guard stepValue != 0 else { throw TemplateRuntimeError("slice step cannot be zero") }
        func indices(count: Int) throws -> [Int] {
            var lower: Int, upper: Int
            if stepValue > 0 {
                lower = try sliceIndex(start).map { $0 < 0 ? max($0 + count, 0) : min($0, count) } ?? 0
                upper = try sliceIndex(stop).map { $0 < 0 ? max($0 + count, 0) : min($0, count) } ?? count
                return lower < upper ? Array(stride(from: lower, to: upper, by: stepValue)) : []
            }
            lower = try sliceIndex(start).map { $0 < 0 ? max($0 + count, -1) : min($0, count - 1) } ?? count - 1
            upper = try sliceIndex(stop).map { $0 < 0 ? max($0 + count, -1) : min($0, count - 1) } ?? -1
            return lower > upper ? Array(stride(from: lower, to: upper, by: stepValue)) : []
        }
        switch value {
        case let .list(items): return .list(try indices(count: items.count).map { items[$0] })
        case let .tuple(items): return .tuple(try indices(count: items.count).map { items[$0] })
        case let .string(text):
            let scalars = PyString.scalars(text)
            return .string(PyString.make(try indices(count: scalars.count).map { scalars[$0] }))
        default:
            throw TemplateRuntimeError("'\(value.typeName)' object is not subscriptable")
        }
    }

    // MARK: numbers and operators

    enum Number {
        case int(Int)
        case float(Double)
        var double: Double {
            switch self {
            case let .int(value): return Double(value)
            case let .float(value): return value
            }
        }
    }

    static func number(_ value: Value) -> Number? {
        switch value {
        case let .int(number): return .int(number)
        case let .float(number): return .float(number)
        case let .bool(flag): return .int(flag ? 1 : 0)
        default: return nil
        }
    }

    static func negate(_ value: Value) throws -> Value {
        switch number(value) {
        case let .int(number)?:
            let (result, overflow) = (0).subtractingReportingOverflow(number)
            guard !overflow else { throw TemplateRuntimeError("integer overflow") }
            return .int(result)
        case let .float(number)?: return .float(-number)
        case nil: throw operandError("unary -", value)
        }
    }

    private static func typeError(_ op: String, _ left: Value, _ right: Value) -> TemplateRuntimeError {
        if let error = undefinedError(left) ?? undefinedError(right) { return error }
        if op == "+", case .string = left {
            return TemplateRuntimeError("can only concatenate str (not \"\(right.typeName)\") to str")
        }
        return TemplateRuntimeError("unsupported operand type(s) for \(op): '\(left.typeName)' and '\(right.typeName)'")
    }

    private static func intOp(_ a: Int, _ b: Int, _ op: (Int, Int) -> (Int, Bool)) throws -> Value {
        let (result, overflow) = op(a, b)
        guard !overflow else { throw TemplateRuntimeError("integer overflow") }
        return .int(result)
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    private static func pyMod(_ a: Double, _ b: Double) -> Double {
        let remainder = fmod(a, b)
        if remainder != 0 && (remainder < 0) != (b < 0) { return remainder + b }
        return remainder
    }

    static func repeatCount(_ value: Value) -> Int? {
        switch value {
        case let .int(count): return count
        case let .bool(flag): return flag ? 1 : 0
        default: return nil
        }
    }

    /// Longest string `*` may build, in bytes.
    static let maximumRepeat = 16 << 20
    /// Longest list or tuple `*` and `+` may build.
    static let maximumListItems = 1 << 20

    /// markupsafe's `escape` of a value added to a `Markup`.
    static func escapeHTML(_ value: Value) -> String {
        if case let .markup(text) = value { return text }
        var out = ""
        for scalar in PythonText.str(value).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func binary(_ op: String, _ left: Value, _ right: Value) throws -> Value {
        if op == "~" {
            try checkPrintable(left)
            try checkPrintable(right)
            let (a, b) = (PythonText.str(left), PythonText.str(right))
            try checkText(bytes: a.utf8.count + b.utf8.count, "the concatenated string")
            return .string(a + b)
        }
        // Markup + str escapes the str; str + Markup too (Markup.__radd__ wins as the subclass).
        switch (op, left, right) {
        case let ("+", .markup(text), .string), let ("+", .markup(text), .markup):
            return .markup(text + escapeHTML(right))
        case let ("+", .string, .markup(text)):
            return .markup(escapeHTML(left) + text)
        case let ("*", .markup(text), other), let ("*", other, .markup(text)):
            if case let .string(result) = try binary("*", .string(text), other) { return .markup(result) }
        default: break
        }
        let left = left.plain, right = right.plain
        switch (op, left, right) {
        case let ("+", .string(a), .string(b)):
            try checkText(bytes: a.utf8.count + b.utf8.count, "the concatenated string")
            return .string(a + b)
        case let ("+", .list(a), .list(b)):
            guard a.count + b.count <= maximumListItems else { throw TemplateRuntimeError("list concatenation too large (more than \(maximumListItems) items)") }
            return .list(a + b)
        case let ("+", .tuple(a), .tuple(b)):
            guard a.count + b.count <= maximumListItems else { throw TemplateRuntimeError("tuple concatenation too large (more than \(maximumListItems) items)") }
            return .tuple(a + b)
        case let ("*", .string(text), other), let ("*", other, .string(text)):
            guard let count = repeatCount(other) else { break }
            let (size, overflow) = count.multipliedReportingOverflow(by: max(text.utf8.count, 1))
            guard !overflow, size <= maximumRepeat else { throw TemplateRuntimeError("string repetition too large (more than \(maximumRepeat) bytes)") }
            return .string(count <= 0 ? "" : String(repeating: text, count: count))
        case let ("*", .list(items), other), let ("*", other, .list(items)):
            guard let count = repeatCount(other) else { break }
            let (size, overflow) = count.multipliedReportingOverflow(by: max(items.count, 1))
            guard !overflow, size <= maximumListItems else { throw TemplateRuntimeError("list repetition too large (more than \(maximumListItems) items)") }
            return .list(count <= 0 ? [] : Array([[Value]](repeating: items, count: count).joined()))
        case ("%", .string, _):
            throw TemplateRuntimeError("unsupported: printf-style '%' string formatting")
        default: break
        }
        guard let a = number(left), let b = number(right) else { throw typeError(op, left, right) }
        if case let .int(x) = a, case let .int(y) = b {
            switch op {
            case "+": return try intOp(x, y) { $0.addingReportingOverflow($1) }
            case "-": return try intOp(x, y) { $0.subtractingReportingOverflow($1) }
            case "*": return try intOp(x, y) { $0.multipliedReportingOverflow(by: $1) }
            case "/":
                guard y != 0 else { throw TemplateRuntimeError("division by zero") }
                return .float(Double(x) / Double(y))
            case "//":
                guard y != 0 else { throw TemplateRuntimeError("integer division or modulo by zero") }
                if x == Int.min && y == -1 { throw TemplateRuntimeError("integer overflow") }
                return .int(floorDiv(x, y))
            case "%":
                guard y != 0 else { throw TemplateRuntimeError("integer division or modulo by zero") }
                if y == -1 { return .int(0) }
                let remainder = x % y
                return .int(remainder != 0 && (remainder < 0) != (y < 0) ? remainder + y : remainder)
            case "**":
                if y < 0 { return .float(pow(Double(x), Double(y))) }
                var result = 1, base = x, exponent = y
                while exponent > 0 {
                    if exponent & 1 == 1 {
                        let (product, overflow) = result.multipliedReportingOverflow(by: base)
                        guard !overflow else { throw TemplateRuntimeError("integer overflow") }
                        result = product
                    }
                    exponent >>= 1
                    if exponent > 0 {
                        let (square, overflow) = base.multipliedReportingOverflow(by: base)
                        guard !overflow else { throw TemplateRuntimeError("integer overflow") }
                        base = square
                    }
                }
                return .int(result)
            default: break
            }
        }
        let x = a.double, y = b.double
        switch op {
        case "+": return .float(x + y)
        case "-": return .float(x - y)
        case "*": return .float(x * y)
        case "/":
            guard y != 0 else { throw TemplateRuntimeError("float division by zero") }
            return .float(x / y)
        case "//":
            guard y != 0 else { throw TemplateRuntimeError("float floor division by zero") }
            return .float((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw TemplateRuntimeError("float modulo") }
            return .float(pyMod(x, y))
        case "**": return .float(pow(x, y))
        default: throw typeError(op, left, right)
        }
    }

    /// Python `==`.
    static func equal(_ left: Value, _ right: Value) -> Bool {
        let left = left.plain, right = right.plain
        if let a = number(left), let b = number(right) {
            if case let .int(x) = a, case let .int(y) = b { return x == y }
            return a.double == b.double
        }
        switch (left, right) {
        case (.none, .none): return true
        case let (.string(a), .string(b)): return PyString.equal(a, b)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            return a.count == b.count && zip(a, b).allSatisfy { equal($0, $1) }
        case let (.dict(a), .dict(b)):
            guard a.count == b.count else { return false }
            for (key, value) in a.pairs {
                guard let other = b.lookup(key), equal(value, other) else { return false }
            }
            return true
        case (.undefined, .undefined): return true
        case let (.namespace(a), .namespace(b)): return a === b
        case let (.callable(a), .callable(b)): return a === b
        default: return false
        }
    }

    /// Python ordering `<`: -1, 0, 1; throws for types Python cannot order.
    static func order(_ left: Value, _ right: Value, _ op: String) throws -> Int {
        let left = left.plain, right = right.plain
        if let error = undefinedError(left) ?? undefinedError(right) { throw error }
        if let a = number(left), let b = number(right) {
            if case let .int(x) = a, case let .int(y) = b { return x < y ? -1 : (x > y ? 1 : 0) }
            let x = a.double, y = b.double
            return x < y ? -1 : (x > y ? 1 : 0)
        }
        switch (left, right) {
        case let (.string(a), .string(b)):
            if a.unicodeScalars.elementsEqual(b.unicodeScalars) { return 0 }
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value } ? -1 : 1
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            for (x, y) in zip(a, b) where !equal(x, y) { return try order(x, y, op) }
            return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
        default:
            throw TemplateRuntimeError("'\(op)' not supported between instances of '\(left.typeName)' and '\(right.typeName)'")
        }
    }

    static func contains(_ container: Value, _ item: Value) throws -> Bool {
        let container = container.plain, item = item.plain
        switch container {
        case let .generator(items): return items.contains { equal($0, item) }
        case let .string(text):
            guard case let .string(needle) = item else {
                if let error = undefinedError(item) { throw error }
                throw TemplateRuntimeError("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return PyString.contains(text, needle)
        case let .list(items), let .tuple(items): return items.contains { equal($0, item) }
        case let .dict(dict):
            return dict.lookup(item) != nil
        case .undefined: return false
        case let .unsafe(message): throw TemplateRuntimeError("SecurityError: \(message)")
        default: throw TemplateRuntimeError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    static func compare(_ op: String, _ left: Value, _ right: Value) throws -> Bool {
        switch op {
        case "==": return equal(left, right)
        case "!=": return !equal(left, right)
        case "<": return try order(left, right, op) < 0
        case "<=": return try order(left, right, op) <= 0
        case ">": return try order(left, right, op) > 0
        case ">=": return try order(left, right, op) >= 0
        case "in": return try contains(right, left)
        case "not in": return !(try contains(right, left))
        default: throw TemplateRuntimeError("unknown comparison '\(op)'")
        }
    }

    static func length(_ value: Value) throws -> Int {
        switch value.plain {
        case let .string(text): return text.unicodeScalars.count
        case let .list(items), let .tuple(items): return items.count
        case let .dict(dict): return dict.count
        case .undefined: return 0
        default: throw TemplateRuntimeError("object of type '\(value.typeName)' has no len()")
        }
    }

    // MARK: methods

    private static func stringArgument(_ value: Value?, _ what: String) throws -> String? {
        guard let value else { return nil }
        switch value {
        case .none: return nil
        case let .string(text): return text
        default: throw TemplateRuntimeError("\(what) must be str or None, not \(value.typeName)")
        }
    }

    private static func intArgument(_ value: Value?, default defaultValue: Int) throws -> Int {
        guard let value else { return defaultValue }
        switch value {
        case let .int(number): return number
        case let .bool(flag): return flag ? 1 : 0
        default: throw TemplateRuntimeError("'\(value.typeName)' object cannot be interpreted as an integer")
        }
    }

    private static func bound(_ name: String, _ body: @escaping (Arguments) throws -> Value) -> Value {
        .callable(Callable(name: name) { _, arguments in try body(arguments) })
    }

    /// A bound Python method of `value` named `name`, or nil when the type has no such method.
    static func method(_ value: Value, _ name: String) -> Value? {
        switch value.plain {
        case let .string(text): return stringMethod(text, name)
        case let .dict(dict):
            if mutatingDictMethods.contains(name) { return .unsafe(message: "access to attribute '\(name)' of 'dict' object is unsafe.") }
            switch name {
            case "get":
                return bound("dict.get") { arguments in
                    guard let key = arguments.value(0, "key") else { throw TemplateRuntimeError("get expected at least 1 argument, got 0") }
                    if let found = dict.lookup(key) { return found }
                    return arguments.value(1, "default") ?? .none
                }
            case "items": return bound("dict.items") { _ in .list(dict.pairs.map { .tuple([$0.0, $0.1]) }) }
            case "keys": return bound("dict.keys") { _ in .list(dict.keys) }
            case "values": return bound("dict.values") { _ in .list(dict.values) }
            case "copy": return bound("dict.copy") { _ in .dict(dict) }
            default: return nil
            }
        case let .list(items), let .tuple(items):
            let typeName = value.typeName
            if case .list = value, mutatingListMethods.contains(name) {
                return .unsafe(message: "access to attribute '\(name)' of 'list' object is unsafe.")
            }
            switch name {
            case "count": return bound("\(typeName).count") { arguments in
                guard let item = arguments.value(0, "value") else { throw TemplateRuntimeError("count() takes exactly one argument") }
                return .int(items.filter { equal($0, item) }.count)
            }
            case "index": return bound("\(typeName).index") { arguments in
                guard let item = arguments.value(0, "value") else { throw TemplateRuntimeError("index expected at least 1 argument") }
                guard let found = items.firstIndex(where: { equal($0, item) }) else { throw TemplateRuntimeError("ValueError: \(PythonText.repr(item)) is not in list") }
                return .int(found)
            }
            case "copy" where typeName == "list": return bound("list.copy") { _ in .list(items) }
            default: return nil
            }
        default:
            return nil
        }
    }

    private static func prefixes(_ value: Value?) throws -> [String] {
        switch value {
        case let .string(text)?: return [text]
        case let .tuple(items)?, let .list(items)?:
            return try items.map {
                guard case let .string(text) = $0 else { throw TemplateRuntimeError("tuple for startswith/endswith must only contain str") }
                return text
            }
        default: throw TemplateRuntimeError("startswith/endswith first arg must be str or a tuple of str")
        }
    }

    private static func stringMethod(_ text: String, _ name: String) -> Value? {
        switch name {
        case "strip", "lstrip", "rstrip":
            return bound("str.\(name)") { arguments in
                let chars = try stringArgument(arguments.value(0, "chars"), "\(name) arg")
                return .string(PyString.strip(text, chars, left: name != "rstrip", right: name != "lstrip"))
            }
        case "split", "rsplit":
            return bound("str.\(name)") { arguments in
                let separator = try stringArgument(arguments.value(0, "sep"), "separator")
                let maxSplit = try intArgument(arguments.value(1, "maxsplit"), default: -1)
                let parts = name == "split" ? try PyString.split(text, separator, maxSplit: maxSplit) : try PyString.rsplit(text, separator, maxSplit: maxSplit)
                return .list(parts.map { .string($0) })
            }
        case "splitlines":
            return bound("str.splitlines") { _ in .list(PyString.splitLines(text).map { .string($0) }) }
        case "startswith", "endswith":
            return bound("str.\(name)") { arguments in
                let candidates = try prefixes(arguments.value(0, "prefix"))
                let scalars = PyString.scalars(text)
                for candidate in candidates {
                    let needle = PyString.scalars(candidate)
                    if name == "startswith" ? scalars.starts(with: needle) : scalars.reversed().starts(with: needle.reversed()) { return .bool(true) }
                }
                return .bool(false)
            }
        case "upper": return bound("str.upper") { _ in .string(text.uppercased()) }
        case "lower": return bound("str.lower") { _ in .string(text.lowercased()) }
        case "title": return bound("str.title") { _ in .string(PyString.title(text)) }
        case "capitalize": return bound("str.capitalize") { _ in .string(PyString.capitalize(text)) }
        case "replace":
            return bound("str.replace") { arguments in
                guard case let .string(old)? = arguments.value(0, "old"), case let .string(new)? = arguments.value(1, "new") else {
                    throw TemplateRuntimeError("replace() arguments must be str")
                }
                let count = try intArgument(arguments.value(2, "count"), default: -1)
                try checkReplace(text, old, new, count: count)
                return .string(PyString.replace(text, old, new, count: count))
            }
        case "find", "rfind", "index", "rindex", "count":
            return bound("str.\(name)") { arguments in
                guard case let .string(sub)? = arguments.value(0, "sub") else { throw TemplateRuntimeError("\(name)() argument must be str") }
                let haystack = PyString.scalars(text), needle = PyString.scalars(sub)
                if name == "count" {
                    if needle.isEmpty { return .int(haystack.count + 1) }
                    var count = 0, start = 0
                    while let found = PyString.find(haystack, needle, from: start) { count += 1; start = found + needle.count }
                    return .int(count)
                }
                let found = name.hasPrefix("r") ? PyString.rfind(haystack, needle) : PyString.find(haystack, needle)
                if let found { return .int(found) }
                if name.hasSuffix("index") { throw TemplateRuntimeError("ValueError: substring not found") }
                return .int(-1)
            }
        case "join":
            return bound("str.join") { arguments in
                let items = try iterate(arguments.value(0, "iterable") ?? .list([]))
                let parts = try items.map {
                    guard case let .string(item) = $0 else { throw TemplateRuntimeError("sequence item: expected str instance, \($0.typeName) found") }
                    return item
                }
                try checkJoin(parts, separator: text)
                return .string(parts.joined(separator: text))
            }
        case "isdigit", "isalpha", "isspace", "isalnum", "isupper", "islower", "isnumeric", "isdecimal":
            return bound("str.\(name)") { _ in
                let scalars = PyString.scalars(text)
                switch name {
                case "isspace": return .bool(!scalars.isEmpty && scalars.allSatisfy(PythonText.isSpace))
                case "isdigit", "isdecimal", "isnumeric": return .bool(!scalars.isEmpty && scalars.allSatisfy { $0.properties.numericType != nil })
                case "isalpha": return .bool(!scalars.isEmpty && scalars.allSatisfy { $0.properties.isAlphabetic })
                case "isalnum": return .bool(!scalars.isEmpty && scalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
                case "isupper": return .bool(scalars.contains(where: PyString.isCased) && text.uppercased() == text)
                default: return .bool(scalars.contains(where: PyString.isCased) && text.lowercased() == text)
                }
            }
        case "format":
            return bound("str.format") { arguments in .string(try format(text, arguments)) }
        default:
            return nil
        }
    }

    /// Python's `str.format` for `{}`, `{0}`, `{name}`, `{{`, `}}` (no format specs or conversions).
    static func format(_ text: String, _ arguments: Arguments) throws -> String {
        let scalars = PyString.scalars(text)
        var out = String.UnicodeScalarView()
        var index = 0, automatic = 0, written = text.utf8.count
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "{" {
                if index + 1 < scalars.count, scalars[index + 1] == "{" { out.append("{"); index += 2; continue }
                guard let close = scalars[index...].firstIndex(of: "}") else { throw TemplateRuntimeError("ValueError: Single '{' encountered in format string") }
                let field = PyString.make(scalars[(index + 1)..<close])
                if field.contains(":") || field.contains("!") || field.contains(".") || field.contains("[") {
                    throw TemplateRuntimeError("unsupported: format field '{\(field)}' (only {}, {0} and {name} are supported)")
                }
                let value: Value?
                if field.isEmpty {
                    value = automatic < arguments.positional.count ? arguments.positional[automatic] : nil
                    automatic += 1
                } else if let position = Int(field) {
                    value = position < arguments.positional.count ? arguments.positional[position] : nil
                } else {
                    value = arguments.keywordValue(field)
                }
                guard let value else { throw TemplateRuntimeError("format: missing argument for '{\(field)}'") }
                try checkPrintable(value)
                let piece = PythonText.str(value)
                written += piece.utf8.count
                try checkText(bytes: written, "the formatted string")
                out.append(contentsOf: piece.unicodeScalars)
                index = close + 1
            } else if scalar == "}" {
                guard index + 1 < scalars.count, scalars[index + 1] == "}" else { throw TemplateRuntimeError("ValueError: Single '}' encountered in format string") }
                out.append("}")
                index += 2
            } else {
                out.append(scalar)
                index += 1
            }
        }
        return String(out)
    }

    // MARK: globals

    static func globals() -> [String: Value] {
        var globals: [String: Value] = [:]
        globals["range"] = .callable(Callable(name: "range") { interpreter, arguments in
            let values = try arguments.positional.map { value -> Int in
                guard let number = repeatCount(value) else { throw TemplateRuntimeError("'\(value.typeName)' object cannot be interpreted as an integer") }
                return number
            }
            let start: Int, stop: Int, step: Int
            switch values.count {
            case 1: (start, stop, step) = (0, values[0], 1)
            case 2: (start, stop, step) = (values[0], values[1], 1)
            case 3: (start, stop, step) = (values[0], values[1], values[2])
            default: throw TemplateRuntimeError("range expected 1 to 3 arguments, got \(values.count)")
            }
            guard step != 0 else { throw TemplateRuntimeError("range() arg 3 must not be zero") }
            let count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0) : (start > stop ? (start - stop - step - 1) / -step : 0)
            guard count <= interpreter.limits.maximumRange else {
                throw TemplateRuntimeError("range too big (\(count) items; the limit is \(interpreter.limits.maximumRange))")
            }
            return .list((0..<count).map { .int(start + $0 * step) })
        })
        globals["namespace"] = .callable(Callable(name: "namespace") { interpreter, arguments in
            var attributes = OrderedDict()
            for value in arguments.positional {
                guard case let .dict(dict) = value else { throw TemplateRuntimeError("namespace() positional arguments must be mappings") }
                for (key, item) in dict.pairs {
                    guard case let .string(name) = key else { throw TemplateRuntimeError("namespace() attribute names must be strings") }
                    attributes[name] = item
                }
            }
            for (key, item) in arguments.keyword { attributes[key] = item }
            for key in attributes.stringKeys where key.hasPrefix("_") {
                throw TemplateRuntimeError("SecurityError: chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(key)'")
            }
            let object = Namespace(attributes)
            interpreter.track(object)
            let namespace = Value.namespace(object)
            try checkNesting(namespace)
            return namespace
        })
        globals["dict"] = .callable(Callable(name: "dict") { _, arguments in
            var result = OrderedDict()
            for value in arguments.positional {
                switch value {
                case let .dict(dict): for (key, item) in dict.pairs { try result.set(key, item) }
                default:
                    for pair in try iterate(value) {
                        let items = try iterate(pair)
                        guard items.count == 2 else { throw TemplateRuntimeError("dictionary update sequence element has length \(items.count); 2 is required") }
                        try result.set(items[0], items[1])
                    }
                }
            }
            for (key, item) in arguments.keyword { result[key] = item }
            try checkNesting(.dict(result))
            return .dict(result)
        })
        globals["raise_exception"] = .callable(Callable(name: "raise_exception") { _, arguments in
            let message = arguments.value(0, "message") ?? .none
            try checkPrintable(message)
            throw TemplateRuntimeError("raise_exception: " + PythonText.str(message).prefix(1000))
        })
        globals["strftime_now"] = .callable(Callable(name: "strftime_now") { interpreter, arguments in
            guard case let .string(format)? = arguments.value(0, "format") else { throw TemplateRuntimeError("strftime_now() needs a format string") }
            return .string(try strftime(format, interpreter.now))
        })
        for name in ["lipsum", "cycler", "joiner"] {
            globals[name] = .callable(Callable(name: name) { _, _ in throw TemplateRuntimeError("unsupported global function '\(name)'") })
        }
        return globals
    }

    /// C `strftime` in the local time zone (what Python's `datetime.now().strftime` gives).
    static func strftime(_ format: String, _ date: Date) throws -> String {
        guard let text = Platform.formatLocalTime(format, secondsSince1970: Int(date.timeIntervalSince1970.rounded(.down))) else {
            throw TemplateRuntimeError("strftime_now: cannot convert the current time")
        }
        return text
    }
}
