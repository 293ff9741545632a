#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

extension Builtins {
    /// jinja2's `soft_str`: `str(value)`, with undefined as "".
    static func softString(_ value: Value) throws -> String {
        if case let .unsafe(message) = value { throw TemplateRuntimeError("SecurityError: \(message)") }
        try checkPrintable(value)
        return PythonText.str(value)
    }

    private static func boolArgument(_ value: Value?) -> Bool { value?.truthy ?? false }

    /// jinja2's attribute getter for `map(attribute=)`, `selectattr`, `sort(attribute=)`: dotted parts, each an
    /// item lookup (integers for digit parts).
    static func attributePath(_ value: Value, _ path: Value) throws -> Value {
        switch path {
        case let .string(text):
            var current = value
            for part in text.split(separator: ".", omittingEmptySubsequences: false) {
                let key: Value = Int(part).map { .int($0) } ?? .string(String(part))
                current = try item(current, key)
            }
            return current
        case .int:
            return try item(value, path)
        default:
            throw TemplateRuntimeError("attribute must be a string or an integer, found \(path.typeName)")
        }
    }

    /// A sort key that lower-cases strings unless `caseSensitive`.
    private static func sortKey(_ value: Value, caseSensitive: Bool) -> Value {
        if !caseSensitive, case let .string(text) = value { return .string(text.lowercased()) }
        return value
    }

    private static func sorted(_ items: [Value], key: (Value) throws -> Value, reverse: Bool) throws -> [Value] {
        let keyed = try items.map { (key: try key($0), value: $0) }
        var failure: Error?
        // Insertion-stable merge sort via indices keeps Python's stable order.
        let permutation = Array(keyed.indices).sorted { a, b in
            if failure != nil { return a < b }
            do {
                let comparison = try Builtins.order(keyed[a].key, keyed[b].key, "<")
                if comparison == 0 { return a < b }
                return reverse ? comparison > 0 : comparison < 0
            } catch {
                failure = error
                return a < b
            }
        }
        if let failure { throw failure }
        return permutation.map { keyed[$0].value }
    }

    // MARK: filters

    /// Applies the jinja2 filter `name` (transformers' `tojson`).
    static func filter(_ name: String, _ value: Value, _ arguments: Arguments, interpreter: Interpreter) throws -> Value {
        switch name {
        case "safe": return .markup(try softString(value))
        case "e", "escape", "forceescape":
            if case .unsafe = value { _ = try softString(value) }
            try checkText(bytes: textBound(value).bytes, "the escaped text")
            return .markup(escapeHTML(value))
        case "string":
            if case .markup = value { return value }
            return .string(try softString(value))
        default: break
        }
        let value = value.plain
        switch name {
        case "trim":
            let chars = try stringArgumentValue(arguments.value(0, "chars"))
            return .string(PyString.strip(try softString(value), chars, left: true, right: true))
        case "length", "count":
            return .int(try length(value))
        case "tojson":
            return .string(try toJSON(value, arguments))
        case "upper": return .string(try softString(value).uppercased())
        case "lower": return .string(try softString(value).lowercased())
        case "capitalize": return .string(PyString.capitalize(try softString(value)))
        case "title": return .string(PyString.jinjaTitle(try softString(value)))
        case "replace":
            guard let old = arguments.value(0, "old"), let new = arguments.value(1, "new") else {
                throw TemplateRuntimeError("replace filter needs 'old' and 'new' arguments")
            }
            var count = -1
            if let countValue = arguments.value(2, "count"), !(countValue.isNone) {
                guard let number = repeatCount(countValue) else { throw TemplateRuntimeError("replace count must be an integer") }
                count = number
            }
            let (text, oldText, newText) = (try softString(value), try softString(old), try softString(new))
            try checkReplace(text, oldText, newText, count: count)
            return .string(PyString.replace(text, oldText, newText, count: count))
        case "join":
            var items = try iterate(value)
            if let attribute = arguments.value(1, "attribute"), !attribute.isNone {
                items = try items.map { try attributePath($0, attribute) }
            }
            let separator = try softString(arguments.value(0, "d") ?? .string(""))
            let parts = try items.map(softString)
            try checkJoin(parts, separator: separator)
            return .string(parts.joined(separator: separator))
        case "default", "d":
            let fallback = arguments.value(0, "default_value") ?? .string("")
            if value.isUndefined || (boolArgument(arguments.value(1, "boolean")) && !value.truthy) { return fallback }
            return value
        case "first":
            if case let .unsafe(message) = value { throw TemplateRuntimeError("SecurityError: \(message)") }
            return try iterate(value).first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            switch value {
            case .list, .tuple, .string, .dict:
                return try iterate(value).last ?? .undefined(hint: "No last item, sequence was empty.")
            case let .undefined(hint): throw TemplateRuntimeError(hint)
            default: throw TemplateRuntimeError("'\(value.typeName)' object is not reversible")
            }
        case "list":
            return .list(try iterate(value))
        case "items":
            switch value {
            case .undefined: return .generator([])
            case let .dict(dict): return .generator(dict.pairs.map { .tuple([$0.0, $0.1]) })
            default: throw TemplateRuntimeError("Can only get item pairs from a mapping.")
            }
        case "dictsort":
            guard case let .dict(dict) = value else {
                if let error = undefinedError(value) { throw error }
                throw TemplateRuntimeError("dictsort: expected a mapping, found \(value.typeName)")
            }
            let caseSensitive = boolArgument(arguments.value(0, "case_sensitive"))
            let byValue: Bool
            switch arguments.value(1, "by") {
            case nil, .string("key")?: byValue = false
            case .string("value")?: byValue = true
            default: throw TemplateRuntimeError("You can only sort by either 'key' or 'value'")
            }
            let pairs: [Value] = dict.pairs.map { .tuple([$0.0, $0.1]) }
            return .list(try sorted(pairs, key: { pair in
                guard case let .tuple(parts) = pair else { return pair }
                return sortKey(parts[byValue ? 1 : 0], caseSensitive: caseSensitive)
            }, reverse: boolArgument(arguments.value(2, "reverse"))))
        case "sort":
            let reverse = boolArgument(arguments.value(0, "reverse"))
            let caseSensitive = boolArgument(arguments.value(1, "case_sensitive"))
            let attribute = arguments.value(2, "attribute")
            return .list(try sorted(try iterate(value), key: { item in
                let keyed = try attribute.flatMap { $0.isNone ? nil : try attributePath(item, $0) } ?? item
                return sortKey(keyed, caseSensitive: caseSensitive)
            }, reverse: reverse))
        case "unique":
            let caseSensitive = boolArgument(arguments.value(0, "case_sensitive"))
            let attribute = arguments.value(1, "attribute")
            var seen: [Value] = []
            var result: [Value] = []
            for item in try iterate(value) {
                let keyed = try attribute.flatMap { $0.isNone ? nil : try attributePath(item, $0) } ?? item
                let key = sortKey(keyed, caseSensitive: caseSensitive)
                if !seen.contains(where: { equal($0, key) }) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .generator(result)
        case "min", "max":
            let caseSensitive = boolArgument(arguments.value(0, "case_sensitive"))
            let attribute = arguments.value(1, "attribute")
            let items = try iterate(value)
            guard !items.isEmpty else { return .undefined(hint: "No aggregated item, sequence was empty.") }
            var best = items[0]
            func key(_ item: Value) throws -> Value {
                sortKey(try attribute.flatMap { $0.isNone ? nil : try attributePath(item, $0) } ?? item, caseSensitive: caseSensitive)
            }
            for item in items.dropFirst() {
                let comparison = try order(try key(item), try key(best), name == "min" ? "<" : ">")
                if name == "min" ? comparison < 0 : comparison > 0 { best = item }
            }
            return best
        case "sum":
            var total = arguments.value(1, "start") ?? .int(0)
            let attribute = arguments.value(0, "attribute")
            for item in try iterate(value) {
                let addend = try attribute.flatMap { $0.isNone ? nil : try attributePath(item, $0) } ?? item
                total = try binary("+", total, addend)
            }
            return total
        case "reverse":
            switch value {
            case let .string(text): return .string(PyString.make(text.unicodeScalars.reversed()))
            case .list, .tuple, .dict: return .generator(try iterate(value).reversed())  // a reverse iterator
            default: return .list(try iterate(value).reversed())
            }
        case "abs":
            switch value {
            case let .int(number):
                guard number != Int.min else { throw TemplateRuntimeError("integer overflow") }
                return .int(abs(number))
            case let .float(number): return .float(abs(number))
            case let .bool(flag): return .int(flag ? 1 : 0)
            default: throw operandError("abs()", value)
            }
        case "round":
            let precision = repeatCount(arguments.value(0, "precision") ?? .int(0)) ?? 0
            let method: String
            if case let .string(text)? = arguments.value(1, "method") { method = text } else { method = "common" }
            guard let number = number(value) else { throw operandError("round()", value) }
            let scale = pow(10.0, Double(precision))
            switch method {
            case "common":
                if case let .int(integer) = number, arguments.value(0, "precision") == nil || precision >= 0 {
                    if arguments.value(0, "precision") == nil { return .int(integer) }
                    return .int(integer)
                }
                return .float((number.double * scale).rounded(.toNearestOrEven) / scale)
            case "ceil": return .float((number.double * scale).rounded(.up) / scale)
            case "floor": return .float((number.double * scale).rounded(.down) / scale)
            default: throw TemplateRuntimeError("method must be common, ceil or floor")
            }
        case "int":
            let fallback = arguments.value(0, "default") ?? .int(0)
            let base = repeatCount(arguments.value(1, "base") ?? .int(10)) ?? 10
            switch value {
            case let .int(number): return .int(number)
            case let .bool(flag): return .int(flag ? 1 : 0)
            case let .float(number):
                guard number.isFinite, abs(number) < 9.2e18 else { return fallback }
                return .int(Int(number))
            case let .string(text):
                let trimmed = PyString.strip(text, nil, left: true, right: true)
                let cleaned = trimmed.replacingEvery("_", with: "")
                if !cleaned.isEmpty, !trimmed.hasPrefix("_"), !trimmed.hasSuffix("_"), let number = Int(cleaned, radix: base) { return .int(number) }
                if let number = Double(trimmed), number.isFinite, abs(number) < 9.2e18 { return .int(Int(number)) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = arguments.value(0, "default") ?? .float(0)
            switch value {
            case let .int(number): return .float(Double(number))
            case let .bool(flag): return .float(flag ? 1 : 0)
            case .float: return value
            case let .string(text):
                let trimmed = PyString.strip(text, nil, left: true, right: true)
                let lowered = trimmed.lowercased()
                if ["inf", "+inf", "infinity", "+infinity"].contains(lowered) { return .float(.infinity) }
                if ["-inf", "-infinity"].contains(lowered) { return .float(-.infinity) }
                if ["nan", "+nan", "-nan"].contains(lowered) { return .float(.nan) }
                return Double(trimmed).map { .float($0) } ?? fallback
            default: return fallback
            }
        case "indent":
            return .string(try indent(value, arguments))
        case "center":
            let text = try softString(value)
            let width = repeatCount(arguments.value(0, "width") ?? .int(80)) ?? 80
            try checkWidth(width)
            let count = text.unicodeScalars.count
            guard width > count else { return .string(text) }
            let margin = width - count
            let left = margin / 2 + (margin & width & 1)
            return .string(String(repeating: " ", count: left) + text + String(repeating: " ", count: margin - left))
        case "wordcount":
            var count = 0, inWord = false
            for scalar in try softString(value).unicodeScalars {
                let isWord = scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType != nil
                if isWord && !inWord { count += 1 }
                inWord = isWord
            }
            return .int(count)
        case "attr":
            guard case let .string(attributeName)? = arguments.value(0, "name") else { throw TemplateRuntimeError("attr filter needs a name") }
            if let error = undefinedError(value) { throw error }
            if case let .namespace(namespace) = value, let found = namespace.attributes[attributeName] { return found }
            return method(value, attributeName) ?? .undefined(hint: "'\(value.typeName) object' has no attribute '\(attributeName)'")
        case "map":
            // jinja2 maps and selects only over a truthy sequence (`if value: for item in value`).
            let items = value.truthy ? try iterate(value) : []
            if let attribute = arguments.keywordValue("attribute") {
                let fallback = arguments.keywordValue("default")
                return .generator(try items.map { item in
                    let found = try attributePath(item, attribute)
                    if found.isUndefined, let fallback { return fallback }
                    return found
                })
            }
            guard case let .string(filterName)? = arguments.positional.first else {
                throw TemplateRuntimeError("map requires a filter argument")
            }
            guard JinjaNames.filters.contains(filterName) else { throw TemplateRuntimeError("No filter named '\(filterName)'.") }
            let rest = Arguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword)
            return .generator(try items.map { try filter(filterName, $0, rest, interpreter: interpreter) })
        case "select", "reject":
            let items = value.truthy ? try iterate(value) : []
            let keep = name == "select"
            guard case let .string(testName)? = arguments.positional.first else {
                return .generator(items.filter { $0.truthy == keep })
            }
            guard JinjaNames.tests.contains(testName) else { throw TemplateRuntimeError("No test named '\(testName)'.") }
            let rest = Arguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword)
            return .generator(try items.filter { try test(testName, $0, rest, interpreter: interpreter) == keep })
        case "selectattr", "rejectattr":
            let items = value.truthy ? try iterate(value) : []
            let keep = name == "selectattr"
            guard let attribute = arguments.positional.first else { throw TemplateRuntimeError("\(name) requires an attribute argument") }
            if arguments.positional.count < 2 {
                return .generator(try items.filter { try attributePath($0, attribute).truthy == keep })
            }
            guard case let .string(testName) = arguments.positional[1] else { throw TemplateRuntimeError("\(name): the test name must be a string") }
            guard JinjaNames.tests.contains(testName) else { throw TemplateRuntimeError("No test named '\(testName)'.") }
            let rest = Arguments(positional: Array(arguments.positional.dropFirst(2)), keyword: arguments.keyword)
            return .generator(try items.filter { try test(testName, try attributePath($0, attribute), rest, interpreter: interpreter) == keep })
        default:
            if !JinjaNames.filters.contains(name) { throw TemplateRuntimeError("no filter named '\(name)' found") }
            throw TemplateRuntimeError("unsupported filter '\(name)'")
        }
    }

    private static func stringArgumentValue(_ value: Value?) throws -> String? {
        guard let value, !value.isNone else { return nil }
        guard case let .string(text) = value else { throw TemplateRuntimeError("strip arg must be None or str") }
        return text
    }

    /// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
    static func toJSON(_ value: Value, _ arguments: Arguments) throws -> String {
        let ensureASCII = arguments.value(0, "ensure_ascii")?.truthy ?? false
        var indent: String? = nil
        switch arguments.value(1, "indent") {
        case nil, .none?: indent = nil
        case let .int(count)?:
            try checkWidth(count)
            indent = String(repeating: " ", count: max(count, 0))
        case let .string(text)?: indent = text
        case let other?: throw TemplateRuntimeError("tojson: indent must be an integer or a string, found \(other.typeName)")
        }
        var itemSeparator = indent == nil ? ", " : ","
        var keySeparator = ": "
        if let separators = arguments.value(2, "separators"), !separators.isNone {
            let parts = try iterate(separators)
            guard parts.count == 2, case let .string(item) = parts[0], case let .string(key) = parts[1] else {
                throw TemplateRuntimeError("tojson: separators must be a pair of strings")
            }
            itemSeparator = item
            keySeparator = key
        }
        // Each value may be preceded by a separator, a line break and one indentation per nesting level.
        let perValue = (indent?.utf8.count ?? 0) * (maximumNesting + 1) + itemSeparator.utf8.count + keySeparator.utf8.count + 1
        try checkPrintable(value, perValue: perValue)
        let dumper = JSONDumper(indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                                sortKeys: arguments.value(3, "sort_keys")?.truthy ?? false)
        let text = try dumper.dump(value)
        guard ensureASCII else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.isASCII { out.unicodeScalars.append(scalar); continue }
            for unit in String(scalar).utf16 { out += "\\u" + lowercaseHex(unit, width: 4) }
        }
        return out
    }

    /// jinja2's `indent(s, width=4, first=False, blank=False)`.
    static func indent(_ value: Value, _ arguments: Arguments) throws -> String {
        if let error = undefinedError(value) { throw error }
        let indentation: String
        switch arguments.value(0, "width") {
        case nil: indentation = "    "
        case let .string(text)?: indentation = text
        case let other?:
            guard let width = repeatCount(other) else { throw TemplateRuntimeError("indent width must be an integer or a string") }
            try checkWidth(width)
            indentation = String(repeating: " ", count: max(width, 0))
        }
        let first = arguments.value(1, "first")?.truthy ?? false
        let blank = arguments.value(2, "blank")?.truthy ?? false
        let text = try softString(value) + "\n"
        var lines = PyString.splitLines(text)
        let (padding, overflow) = (lines.count + 1).multipliedReportingOverflow(by: indentation.utf8.count)
        try checkText(bytes: overflow ? -1 : text.utf8.count + padding, "the indented text")
        var result: String
        if blank {
            result = lines.joined(separator: "\n" + indentation)
        } else {
            result = lines.isEmpty ? "" : lines.removeFirst()
            if !lines.isEmpty {
                result += "\n" + lines.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n")
            }
        }
        if first { result = indentation + result }
        return result
    }

    // MARK: tests

    /// Applies the jinja2 test `name`.
    static func test(_ name: String, _ value: Value, _ arguments: Arguments, interpreter: Interpreter) throws -> Bool {
        let value = value.plain
        let argument = arguments.positional.first
        func needArgument() throws -> Value {
            guard let argument else { throw TemplateRuntimeError("test '\(name)' needs an argument") }
            return argument
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .float = value { return true } else { return false }
        case "number": return number(value) != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "sequence":
            switch value {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "iterable":
            switch value {
            case .string, .list, .tuple, .dict, .undefined, .generator: return true
            default: return false
            }
        case "callable":
            switch value {
            case .callable, .unsafe: return true
            default: return false
            }
        case "escaped": return false
        case "sameas":
            let other = try needArgument()
            switch (value, other) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.namespace(a), .namespace(b)): return a === b
            case let (.callable(a), .callable(b)): return a === b
            case let (.int(a), .int(b)): return a == b && (-5...256).contains(a)
            default: return false
            }
        case "odd", "even":
            guard let number = repeatCount(value) else {
                if let error = undefinedError(value) { throw error }
                throw TemplateRuntimeError("test '\(name)' needs an integer, found \(value.typeName)")
            }
            return (number % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let number = repeatCount(value), let divisor = repeatCount(try needArgument()) else {
                throw TemplateRuntimeError("divisibleby needs integers")
            }
            guard divisor != 0 else { throw TemplateRuntimeError("integer division or modulo by zero") }
            return number % divisor == 0
        case "lower", "upper":
            guard case let .string(text) = value else { return false }
            let hasCased = text.unicodeScalars.contains(where: PyString.isCased)
            return hasCased && (name == "lower" ? text.lowercased() == text : text.uppercased() == text)
        case "in": return try contains(try needArgument(), value)
        case "eq", "equalto", "==": return equal(value, try needArgument())
        case "ne", "!=": return !equal(value, try needArgument())
        case "lt", "lessthan", "<": return try order(value, try needArgument(), "<") < 0
        case "le", "<=": return try order(value, try needArgument(), "<=") <= 0
        case "gt", "greaterthan", ">": return try order(value, try needArgument(), ">") > 0
        case "ge", ">=": return try order(value, try needArgument(), ">=") >= 0
        case "filter":
            guard case let .string(filterName) = value else { return false }
            return JinjaNames.filters.contains(filterName)
        case "test":
            guard case let .string(testName) = value else { return false }
            return JinjaNames.tests.contains(testName)
        default:
            if !JinjaNames.tests.contains(name) { throw TemplateRuntimeError("no test named '\(name)' found") }
            throw TemplateRuntimeError("unsupported test '\(name)'")
        }
    }
}

extension Value {
    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}
