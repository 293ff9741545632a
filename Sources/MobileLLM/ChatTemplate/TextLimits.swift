/// Size checks made before a template operation builds text, so that no template (however hostile) makes the
/// engine allocate without bound: printing containers (`{{ list }}`, `~`, `string`, `tojson`, `format`), `join`,
/// `replace`, `center` and `indent` first check that their result stays within `maximumText` bytes.
extension Builtins {
    /// Largest string one template operation may build: 64 MiB, the render output's own limit.
    static let maximumText = 64 << 20

    /// An upper bound of the bytes `repr` or `tojson` (without indentation) writes for `value`, and the number of
    /// values it holds. Stops counting once the bound passes `maximumText`, so the walk is cheap whatever the value.
    static func textBound(_ value: Value) -> (bytes: Int, values: Int) {
        var bytes = 0, values = 0
        var visiting = Set<ObjectIdentifier>()
        func walk(_ value: Value) {
            guard bytes <= maximumText else { return }
            values += 1
            switch value {
            // Escaping writes at most 6 bytes per byte (\u00XX); quotes and Markup(...) add a few.
            case let .string(text), let .markup(text): bytes += 6 * text.utf8.count + 12
            case let .list(items), let .tuple(items):
                bytes += 3
                for item in items where bytes <= maximumText { bytes += 2; walk(item) }
            case let .dict(dict):
                bytes += 2
                for (key, item) in dict.pairs where bytes <= maximumText { bytes += 4; walk(key); walk(item) }
            case let .namespace(namespace):
                bytes += 16
                guard visiting.insert(ObjectIdentifier(namespace)).inserted else { return }
                walk(.dict(namespace.attributes))
                visiting.remove(ObjectIdentifier(namespace))
            case let .callable(callable): bytes += callable.name.utf8.count + 16
            default: bytes += 32
            }
        }
        walk(value)
        return (bytes, values)
    }

    /// Throws unless `bytes` (a result size computed before building it) is within `maximumText`.
    static func checkText(bytes: Int, _ what: String) throws {
        guard bytes >= 0, bytes <= maximumText else {
            throw TemplateRuntimeError("\(what) would be larger than \(maximumText) bytes (the limit of one template string)")
        }
    }

    /// Throws when `str(value)` could be larger than `maximumText` (a string is its own text; containers are bounded
    /// by `textBound`). `perValue` adds bytes for each value held (e.g. tojson indentation).
    static func checkPrintable(_ value: Value, perValue: Int = 0) throws {
        switch value {
        case let .string(text), let .markup(text):
            try checkText(bytes: text.utf8.count + perValue, "the text")
        case .none, .bool, .int, .float, .undefined, .unsafe:
            return
        default:
            let bound = textBound(value)
            let (extra, overflow) = bound.values.multipliedReportingOverflow(by: perValue)
            try checkText(bytes: overflow ? -1 : bound.bytes + extra, "printing this \(value.typeName)")
        }
    }

    /// Throws when joining `parts` with `separator` would exceed `maximumText`.
    static func checkJoin(_ parts: [String], separator: String) throws {
        var total = separator.utf8.count * max(parts.count - 1, 0)
        for part in parts where total <= maximumText { total += part.utf8.count }
        try checkText(bytes: total, "the joined string")
    }

    /// Throws when `text` with `old` replaced by `new` (at most `count` times when `count >= 0`) would exceed
    /// `maximumText`.
    static func checkReplace(_ text: String, _ old: String, _ new: String, count: Int) throws {
        let growth = new.utf8.count - old.utf8.count
        guard growth > 0 else { return }
        var occurrences = old.isEmpty ? text.unicodeScalars.count + 1 : 0
        if !old.isEmpty {
            let haystack = PyString.scalars(text), needle = PyString.scalars(old)
            var start = 0
            while let found = PyString.find(haystack, needle, from: start) { occurrences += 1; start = found + needle.count }
        }
        if count >= 0 { occurrences = min(occurrences, count) }
        let (extra, overflow) = occurrences.multipliedReportingOverflow(by: growth)
        try checkText(bytes: overflow ? -1 : text.utf8.count + extra, "the replaced string")
    }

    /// Throws unless a padding or indentation `width` is within `maximumText`.
    static func checkWidth(_ width: Int) throws {
        try checkText(bytes: width, "a width of \(width)")
    }
}
