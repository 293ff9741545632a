
// JSON Schema (a subset) to GBNF. The grammar accepts JSON text, with limited whitespace between tokens, whose value
// the schema accepts, under these choices (see README.md, "JSON Schema"):
// - object members come in the order of `properties` (each optional one may be left out); other members, when
//   `additionalProperties` allows them, come after those and never use a declared name;
// - numbers with bounds are written without an exponent, and the bounds are exact on those; integers are written
//   as integers (no "1.0" for an integer);
// - `enum`/`const` strings match as json.dumps writes them (raw or \u-escaped non-ASCII characters), numbers by value
//   in plain decimal notation, objects with their members in the listed order;
// - `oneOf` is `anyOf` (exact when the branches do not overlap);
// - string lengths count characters and escape sequences as one each (a surrogate-pair escape counts two).
// Every keyword outside the subset, and every malformed value, is an error naming the JSON pointer of the value.

/// Translates a JSON Schema into GBNF.
enum JSONSchemaTranslator {
    struct Translation {
        /// The grammar, start rule `root`.
        var gbnf: String
        /// The schema location (JSON pointer) each rule came from, for errors the grammar compiler finds.
        var pointers: [String: String]
    }

    /// Deepest nesting of schemas, $ref chains included.
    static let maximumDepth = 128
    /// Most rules a schema may produce.
    static let maximumRules = 100_000

    static func translate(_ text: String) throws -> Translation {
        let document: TemplateValue
        do {
            document = try TemplateValue.parse(Array(text.utf8), path: "schema")
        } catch let MobileLLMError.invalidFile(_, _, problem) {
            throw MobileLLMError.jsonSchema(pointer: "", message: "the schema is not valid JSON: \(problem)")
        }
        var builder = SchemaBuilder(document: document)
        let root = try builder.compile(document, pointer: "", hint: "root")
        switch root {
        case let .empty(pointer, reason):
            throw MobileLLMError.jsonSchema(pointer: pointer, message: "no JSON value satisfies the schema: \(reason)")
        case let .grammar(expression):
            var text = "root ::= \(expression)\n"
            for (name, body) in builder.rules { text += "\(name) ::= \(body)\n" }
            var pointers = builder.pointers
            pointers["root"] = ""
            return Translation(gbnf: text, pointers: pointers)
        }
    }
}

/// The recursive translation of one schema document.
private struct SchemaBuilder {
    /// A translated schema: a GBNF expression, or no value at all (with where and why).
    enum Result {
        case grammar(String)
        case empty(pointer: String, reason: String)
    }

    let document: TemplateValue
    private(set) var rules: [(name: String, body: String)] = []
    private(set) var pointers: [String: String] = [:]
    private var used: Set<String> = []
    private var referenceRules: [String: String] = [:]
    private var primitives: Set<String> = []
    private var depth = 0
    private var counter = 0

    init(document: TemplateValue) {
        self.document = document
        used = ["root", "ws", "value", "object", "array", "string", "string-rest", "char", "number", "integer",
                "boolean", "null", "date", "time", "date-time", "uuid", "hex", "year", "leap-year", "month-day",
                "time-hour", "time-minute"]
    }

    // MARK: rules

    private mutating func add(_ name: String, _ body: String, pointer: String) throws {
        guard rules.count < JSONSchemaTranslator.maximumRules else {
            throw MobileLLMError.jsonSchema(pointer: pointer, message: "the schema needs more than \(JSONSchemaTranslator.maximumRules) grammar rules")
        }
        rules.append((name, body))
        used.insert(name)
        pointers[name] = pointer
    }

    /// A rule name from a hint (letters, digits and '-'), unique.
    private mutating func name(_ hint: String) -> String {
        var base = ""
        for scalar in hint.unicodeScalars {
            let c = scalar.value
            if (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) {
                base.unicodeScalars.append(scalar)
            } else if !base.hasSuffix("-") {
                base += "-"
            }
        }
        while base.hasSuffix("-") { base.removeLast() }
        if base.count > 48 { base = String(base.prefix(48)) }
        if base.isEmpty { base = "rule" }
        var candidate = base
        var suffix = 2
        while used.contains(candidate) {
            candidate = "\(base)-\(suffix)"
            suffix += 1
        }
        used.insert(candidate)
        return candidate
    }

    /// A fresh prefix for machine-made rule families (numbers, key sets): no hint-made name starts like it.
    private mutating func family(_ kind: String) -> String {
        counter += 1
        let prefix = "\(kind)\(counter)"
        used.insert(prefix)
        return prefix
    }

    /// Adds a shared rule (and the ones it needs) once; returns its name.
    private mutating func primitive(_ name: String) -> String {
        guard !primitives.contains(name) else { return name }
        primitives.insert(name)
        let body: String
        switch name {
        case "ws": body = #"( " " | "\n" [ \t]{0,40} )?"#
        case "value": body = "\(primitive("object")) | \(primitive("array")) | \(primitive("string")) | \(primitive("number")) | \(primitive("boolean")) | \(primitive("null"))"
        case "object":
            let ws = primitive("ws"), string = primitive("string"), value = primitive("value")
            body = #""{" \#(ws) ( \#(string) \#(ws) ":" \#(ws) \#(value) \#(ws) ( "," \#(ws) \#(string) \#(ws) ":" \#(ws) \#(value) \#(ws) )* )? "}""#
        case "array":
            let ws = primitive("ws"), value = primitive("value")
            body = #""[" \#(ws) ( \#(value) \#(ws) ( "," \#(ws) \#(value) \#(ws) )* )? "]""#
        case "string": body = #""\"" \#(primitive("string-rest"))"#
        case "string-rest": body = #"\#(primitive("char"))* "\"""#
        case "char": body = #"[^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )"#
        // Digit counts are capped as llama.cpp's json-schema-to-grammar caps them (16 integral, 16 fraction, and
        // here 3 exponent digits), so that a model cannot loop on digits; every capped number is still valid JSON.
        case "number": body = #""-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?"#
        case "integer": body = #""-"? ( "0" | [1-9] [0-9]{0,15} )"#
        case "boolean": body = #""true" | "false""#
        case "null": body = #""null""#
        case "hex": body = "[0-9a-fA-F]"
        case "year": body = #"[1-9] [0-9]{3} | "0" [1-9] [0-9]{2} | "00" [1-9] [0-9] | "000" [1-9]"#
        case "leap-year":
            body = #"[0-9] [0-9] ( "0" [48] | [2468] [048] | [13579] [26] ) | ( "0" [48] | [2468] [048] | [13579] [26] ) "00""#
        case "month-day":
            body = #"( "01" | "03" | "05" | "07" | "08" | "10" | "12" ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "04" | "06" | "09" | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] )"#
        case "date": body = #"\#(primitive("year")) "-" \#(primitive("month-day")) | \#(primitive("leap-year")) "-02-29""#
        case "time-hour": body = #"[01] [0-9] | "2" [0-3]"#
        case "time-minute": body = "[0-5] [0-9]"
        case "time":
            let hour = primitive("time-hour"), minute = primitive("time-minute")
            body = #"\#(hour) ":" \#(minute) ":" \#(minute) ( "." [0-9]+ )? ( [Zz] | [+-] \#(hour) ":" \#(minute) )"#
        case "date-time": body = #"\#(primitive("date")) [Tt] \#(primitive("time"))"#
        case "uuid":
            let hex = primitive("hex")
            body = #"\#(hex){8} "-" \#(hex){4} "-" \#(hex){4} "-" \#(hex){4} "-" \#(hex){12}"#
        default: body = "[]"
        }
        rules.append((name, body))
        pointers[name] = ""
        return name
    }

    // MARK: schema values

    private static let annotations: Set<String> = ["title", "description", "$schema", "$id", "default", "examples"]
    private static let containers: Set<String> = ["$defs", "definitions"]
    private static let constraintKeywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum", "const",
        "anyOf", "oneOf", "minLength", "maxLength", "format", "$ref", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum",
    ]
    private static let typeNames = ["null", "boolean", "object", "array", "string", "number", "integer"]

    static func escape(_ token: String) -> String {
        token.replacingEvery("~", with: "~0").replacingEvery("/", with: "~1")
    }

    private func fail(_ pointer: String, _ message: String) -> MobileLLMError {
        .jsonSchema(pointer: pointer, message: message)
    }

    /// Translates the schema at `pointer`.
    mutating func compile(_ schema: TemplateValue, pointer: String, hint: String) throws -> Result {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JSONSchemaTranslator.maximumDepth else {
            throw fail(pointer, "schemas (and $ref chains) nested more than \(JSONSchemaTranslator.maximumDepth) deep")
        }
        switch schema {
        case let .bool(flag):
            return flag ? .grammar(primitive("value")) : .empty(pointer: pointer, reason: "the schema is false")
        case let .object(members):
            return try compileObjectSchema(members, pointer: pointer, hint: hint)
        default:
            throw fail(pointer, "a schema must be an object or a boolean, found \(describe(schema))")
        }
    }

    private func describe(_ value: TemplateValue) -> String { value.kindDescription }

    private mutating func compileObjectSchema(_ members: [(key: String, value: TemplateValue)], pointer: String, hint: String) throws -> Result {
        var keywords: [String: TemplateValue] = [:]
        for (key, value) in members {
            let memberPointer = pointer + "/" + SchemaBuilder.escape(key)
            if SchemaBuilder.annotations.contains(key) { continue }
            if SchemaBuilder.containers.contains(key) {
                guard case .object = value else { throw fail(memberPointer, "'\(key)' must be an object of schemas") }
                continue
            }
            guard SchemaBuilder.constraintKeywords.contains(key) else {
                throw fail(memberPointer, "unsupported keyword '\(key)'")
            }
            keywords[key] = value
        }
        func at(_ key: String) -> String { pointer + "/" + SchemaBuilder.escape(key) }

        // $ref, anyOf/oneOf, enum/const stand alone (other constraints beside them would be a conjunction).
        for exclusive in ["$ref", "anyOf", "oneOf"] where keywords[exclusive] != nil {
            let others = keywords.keys.filter { $0 != exclusive }.sorted()
            if !others.isEmpty {
                throw fail(at(others[0]), "'\(others[0])' beside '\(exclusive)' is not supported (it would need the intersection of both); move it into the '\(exclusive)' branches")
            }
        }
        if let reference = keywords["$ref"] {
            return try compileReference(reference, pointer: at("$ref"))
        }
        for keyword in ["anyOf", "oneOf"] {
            guard let branches = keywords[keyword] else { continue }
            guard case let .array(items) = branches, !items.isEmpty else { throw fail(at(keyword), "'\(keyword)' must be a non-empty array of schemas") }
            var alternatives: [String] = []
            var firstEmpty: Result? = nil
            for (index, item) in items.enumerated() {
                switch try compile(item, pointer: at(keyword) + "/\(index)", hint: hint + "-\(index)") {
                case let .grammar(expression): alternatives.append(expression)
                case let empty: firstEmpty = firstEmpty ?? empty
                }
            }
            guard !alternatives.isEmpty else { return firstEmpty ?? .empty(pointer: at(keyword), reason: "no branch admits a value") }
            if alternatives.count == 1 { return .grammar(alternatives[0]) }
            let rule = name(hint)
            try add(rule, alternatives.joined(separator: " | "), pointer: pointer)
            return .grammar(rule)
        }

        let types = try parseTypes(keywords["type"], pointer: at("type"))
        if keywords["enum"] != nil || keywords["const"] != nil {
            let others = keywords.keys.filter { $0 != "enum" && $0 != "const" && $0 != "type" }.sorted()
            if !others.isEmpty {
                throw fail(at(others[0]), "'\(others[0])' beside 'enum'/'const' is not supported; list only the values that satisfy it")
            }
            if keywords["enum"] != nil, keywords["const"] != nil {
                throw fail(at("const"), "'const' beside 'enum' is not supported; use one of them")
            }
            var values: [TemplateValue]
            if let constant = keywords["const"] {
                values = [constant]
            } else {
                guard case let .array(items) = keywords["enum"] ?? .null else { throw fail(at("enum"), "'enum' must be an array") }
                values = items
            }
            if let types {
                values = values.filter { value in types.contains { SchemaBuilder.value(value, hasType: $0) } }
            }
            guard !values.isEmpty else {
                return .empty(pointer: keywords["const"] != nil ? at("const") : at("enum"), reason: "no listed value has the schema's type")
            }
            var alternatives: [String] = []
            var seen: Set<String> = []
            // Many strings share prefixes: one trie of them keeps the grammar's fan-out small.
            let strings = values.compactMap { value -> String? in if case let .string(text) = value { return text } else { return nil } }
            if strings.count > 64 {
                alternatives.append(try stringTrie(strings, pointer: at("enum")))
                values = values.filter { if case .string = $0 { return false } else { return true } }
            }
            for (index, value) in values.enumerated() {
                let expression = try literal(value, pointer: keywords["const"] != nil ? at("const") : at("enum") + "/\(index)")
                if seen.insert(expression).inserted { alternatives.append(expression) }
            }
            if alternatives.count == 1 { return .grammar(alternatives[0]) }
            let rule = name(hint)
            try add(rule, alternatives.joined(separator: " | "), pointer: pointer)
            return .grammar(rule)
        }

        // Validate every keyword's value, whether or not the types use it.
        let lengths = (try count(keywords["minLength"], at("minLength")), try count(keywords["maxLength"], at("maxLength")))
        let itemCounts = (try count(keywords["minItems"], at("minItems")), try count(keywords["maxItems"], at("maxItems")))
        let bounds = try numberBounds(keywords, at)
        var format: String? = nil
        if let value = keywords["format"] {
            guard case let .string(text) = value else { throw fail(at("format"), "'format' must be a string") }
            guard ["date", "time", "date-time", "uuid"].contains(text) else {
                throw fail(at("format"), "format '\(text)' is not supported (supported: date, time, date-time, uuid)")
            }
            if lengths.0 != nil || lengths.1 != nil {
                throw fail(at("format"), "'format' together with 'minLength'/'maxLength' is not supported")
            }
            format = text
        }

        let selected = types ?? ["null", "boolean", "object", "array", "string", "number"]
        var alternatives: [String] = []
        var firstEmpty: Result? = nil
        func collect(_ result: Result) {
            switch result {
            case let .grammar(expression): alternatives.append(expression)
            case let empty: firstEmpty = firstEmpty ?? empty
            }
        }
        for type in SchemaBuilder.typeNames where selected.contains(type) {
            switch type {
            case "null": collect(.grammar(primitive("null")))
            case "boolean": collect(.grammar(primitive("boolean")))
            case "object": collect(try compileObject(keywords, pointer: pointer, hint: hint, at: at))
            case "array": collect(try compileArray(keywords, counts: itemCounts, pointer: pointer, hint: hint, at: at))
            case "string": collect(try compileString(lengths: lengths, format: format, pointer: pointer, hint: hint))
            case "number": collect(try compileNumber(bounds, syntax: .decimal, pointer: pointer, hint: hint))
            case "integer" where !selected.contains("number"):
                collect(try compileNumber(bounds, syntax: .integer, pointer: pointer, hint: hint))
            default: break
            }
        }
        guard !alternatives.isEmpty else { return firstEmpty ?? .empty(pointer: pointer, reason: "no value of the allowed types qualifies") }
        if alternatives.count == 1 { return .grammar(alternatives[0]) }
        // Everything unconstrained: the generic value.
        let rule = name(hint)
        try add(rule, alternatives.joined(separator: " | "), pointer: pointer)
        return .grammar(rule)
    }

    private func parseTypes(_ value: TemplateValue?, pointer: String) throws -> [String]? {
        guard let value else { return nil }
        var names: [String] = []
        switch value {
        case let .string(name): names = [name]
        case let .array(items):
            guard !items.isEmpty else { throw fail(pointer, "'type' must not be an empty array") }
            for (index, item) in items.enumerated() {
                guard case let .string(name) = item else { throw fail(pointer + "/\(index)", "a type name must be a string") }
                names.append(name)
            }
        default: throw fail(pointer, "'type' must be a string or an array of strings")
        }
        for (index, name) in names.enumerated() where !SchemaBuilder.typeNames.contains(name) {
            throw fail(value == .string(name) ? pointer : pointer + "/\(index)", "unknown type '\(name)'")
        }
        return names
    }

    /// Whether a JSON value has a JSON Schema type (integers include floats without a fraction, as in draft 6+).
    static func value(_ value: TemplateValue, hasType type: String) -> Bool {
        switch (value, type) {
        case (.null, "null"), (.bool, "boolean"), (.string, "string"), (.array, "array"), (.object, "object"): return true
        case (.int, "integer"), (.int, "number"), (.float, "number"): return true
        case let (.float(number), "integer"): return number.isFinite && number.rounded() == number
        default: return false
        }
    }

    /// A non-negative integer keyword (integral floats accepted).
    private func count(_ value: TemplateValue?, _ pointer: String) throws -> Int? {
        guard let value else { return nil }
        let number: Double
        switch value {
        case let .int(integer): number = Double(integer)
        case let .float(float): number = float
        default: throw fail(pointer, "expected a non-negative integer, found \(describe(value))")
        }
        guard number >= 0, number.rounded() == number, number.isFinite else { throw fail(pointer, "expected a non-negative integer") }
        guard number <= Double(GrammarLimits.maximumRepetition) else {
            // Above the grammar's repetition limit; a minimum that large is refused, a maximum that large means "any".
            if pointer.hasSuffix("/maxLength") || pointer.hasSuffix("/maxItems") { return Int.max }
            throw fail(pointer, "values above \(GrammarLimits.maximumRepetition) are not supported")
        }
        return Int(number)
    }

    private struct Bounds {
        var lower: NumberBound?
        var upper: NumberBound?
        var pointer: String
    }

    private func numberBounds(_ keywords: [String: TemplateValue], _ at: (String) -> String) throws -> Bounds {
        func decimal(_ key: String) throws -> DecimalConstant? {
            guard let value = keywords[key] else { return nil }
            switch value {
            case let .int(integer): return DecimalConstant(integer)
            case let .float(float):
                guard let constant = DecimalConstant(float) else { throw fail(at(key), "'\(key)' must be a finite number") }
                return constant
            case .bool where key.hasPrefix("exclusive"):
                throw fail(at(key), "boolean '\(key)' (draft 4) is not supported; give the bound as a number")
            default: throw fail(at(key), "'\(key)' must be a number, found \(describe(value))")
            }
        }
        var lower = try decimal("minimum").map { NumberBound(value: $0, inclusive: true) }
        if let exclusive = try decimal("exclusiveMinimum") {
            if lower == nil || exclusive.compare(lower?.value ?? exclusive) >= 0 { lower = NumberBound(value: exclusive, inclusive: false) }
        }
        var upper = try decimal("maximum").map { NumberBound(value: $0, inclusive: true) }
        if let exclusive = try decimal("exclusiveMaximum") {
            if upper == nil || exclusive.compare(upper?.value ?? exclusive) <= 0 { upper = NumberBound(value: exclusive, inclusive: false) }
        }
        let pointer = ["minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"].first { keywords[$0] != nil }.map(at) ?? ""
        return Bounds(lower: lower, upper: upper, pointer: pointer)
    }

    // MARK: types

    private mutating func compileNumber(_ bounds: Bounds, syntax: NumberGrammarBuilder.Syntax, pointer: String, hint: String) throws -> Result {
        if bounds.lower == nil, bounds.upper == nil { return .grammar(primitive(syntax == .integer ? "integer" : "number")) }
        let prefix = family(syntax == .integer ? "int" : "num")
        var emitted: [(String, String)] = []
        let start: String?
        do {
            start = try NumberGrammarBuilder.signed(prefix: prefix, syntax: syntax, lower: bounds.lower, upper: bounds.upper) { emitted.append(($0, $1)) }
        } catch {
            throw fail(bounds.pointer, "the bounds have too many digits to express exactly")
        }
        guard let start else {
            return .empty(pointer: bounds.pointer, reason: "no \(syntax == .integer ? "integer" : "number") lies within the bounds")
        }
        for (rule, body) in emitted { try add(rule, body, pointer: bounds.pointer) }
        return .grammar(start)
    }

    private mutating func compileString(lengths: (Int?, Int?), format: String?, pointer: String, hint: String) throws -> Result {
        if let format {
            let rule = name(hint + "-" + format)
            try add(rule, #""\"" \#(primitive(format)) "\"""#, pointer: pointer)
            return .grammar(rule)
        }
        let minimum = lengths.0 ?? 0
        let maximum = lengths.1 == Int.max ? nil : lengths.1
        if minimum == 0, maximum == nil { return .grammar(primitive("string")) }
        if let maximum, maximum < minimum {
            return .empty(pointer: pointer, reason: "minLength \(minimum) is above maxLength \(maximum)")
        }
        let repetition = maximum.map { $0 == minimum ? "{\(minimum)}" : "{\(minimum),\($0)}" } ?? "{\(minimum),}"
        let rule = name(hint + "-string")
        try add(rule, #""\"" \#(primitive("char"))\#(repetition) "\"""#, pointer: pointer)
        return .grammar(rule)
    }

    private mutating func compileArray(_ keywords: [String: TemplateValue], counts: (Int?, Int?), pointer: String, hint: String,
                                       at: (String) -> String) throws -> Result {
        let minimum = counts.0 ?? 0
        let maximum = counts.1 == Int.max ? nil : counts.1
        if let maximum, maximum < minimum {
            return .empty(pointer: pointer, reason: "minItems \(minimum) is above maxItems \(maximum)")
        }
        var item: String? = nil
        if let items = keywords["items"] {
            if case .array = items {
                throw fail(at("items"), "'items' as an array (tuple form) is not supported; give one schema for every item")
            }
            switch try compile(items, pointer: at("items"), hint: hint + "-item") {
            case let .grammar(expression): item = expression
            case let .empty(emptyPointer, reason):
                if minimum > 0 { return .empty(pointer: emptyPointer, reason: reason) }
            }
        } else {
            item = primitive("value")
        }
        if keywords["items"] == nil, minimum == 0, maximum == nil { return .grammar(primitive("array")) }
        let ws = primitive("ws")
        let rule = name(hint + "-array")
        guard let item, maximum != 0 else {
            try add(rule, #""[" \#(ws) "]""#, pointer: pointer)
            return .grammar(rule)
        }
        let more: String
        let restMinimum = max(minimum - 1, 0)
        if let maximum {
            more = maximum - 1 == 0 ? "" : (maximum - 1 == restMinimum ? "{\(restMinimum)}" : "{\(restMinimum),\(maximum - 1)}")
        } else {
            more = restMinimum == 0 ? "*" : "{\(restMinimum),}"
        }
        let tail = more.isEmpty ? "" : #" ( "," \#(ws) \#(item) \#(ws) )\#(more)"#
        let items = "\(item) \(ws)\(tail)"
        try add(rule, minimum == 0 ? #""[" \#(ws) ( \#(items) )? "]""# : #""[" \#(ws) \#(items) "]""#, pointer: pointer)
        return .grammar(rule)
    }

    private mutating func compileObject(_ keywords: [String: TemplateValue], pointer: String, hint: String,
                                        at: (String) -> String) throws -> Result {
        // Declared properties in order.
        var declared: [(name: String, schema: TemplateValue, pointer: String)] = []
        if let properties = keywords["properties"] {
            guard case let .object(members) = properties else { throw fail(at("properties"), "'properties' must be an object of schemas") }
            for (key, value) in members { declared.append((key, value, at("properties") + "/" + SchemaBuilder.escape(key))) }
        }
        var required: [String] = []
        if let value = keywords["required"] {
            guard case let .array(items) = value else { throw fail(at("required"), "'required' must be an array of strings") }
            for (index, item) in items.enumerated() {
                guard case let .string(name) = item else { throw fail(at("required") + "/\(index)", "a required name must be a string") }
                if !required.contains(name) { required.append(name) }
            }
        }
        // Members not declared: forbidden, any value, or values of a schema.
        var extraValue: String? = nil
        var extraEmpty: Result? = nil
        switch keywords["additionalProperties"] {
        case nil, .bool(true)?: extraValue = primitive("value")
        case .bool(false)?: extraValue = nil
        case let schema?:
            switch try compile(schema, pointer: at("additionalProperties"), hint: hint + "-additional") {
            case let .grammar(expression): extraValue = expression
            case let empty: extraEmpty = empty
            }
        }
        if declared.isEmpty, required.isEmpty, keywords["additionalProperties"] == nil { return .grammar(primitive("object")) }

        let ws = primitive("ws")
        // The members that may appear, in order: (key literal, value expression, required).
        var members: [(key: String, value: String, required: Bool)] = []
        let declaredNames = declared.map(\.name)
        for property in declared {
            let isRequired = required.contains(property.name)
            switch try compile(property.schema, pointer: property.pointer, hint: hint + "-" + property.name) {
            case let .grammar(expression):
                members.append((stringLiteral(property.name), expression, isRequired))
            case let .empty(emptyPointer, reason):
                if isRequired { return .empty(pointer: emptyPointer, reason: "required property '\(property.name)': \(reason)") }
            }
        }
        for (index, name) in required.enumerated() where !declaredNames.contains(name) {
            guard let extraValue else {
                if let extraEmpty { return extraEmpty }
                return .empty(pointer: at("required") + "/\(index)", reason: "property '\(name)' is required but additionalProperties is false")
            }
            members.append((stringLiteral(name), extraValue, true))
        }
        let extraKey: String? = extraValue == nil ? nil : try keyExcluding(declaredNames + required, pointer: pointer)

        // A(i): members i... with nothing written yet; B(i): with something written (a comma comes first).
        let base = name(hint + "-object")
        let count = members.count
        func a(_ index: Int) -> String { "\(base)-a\(index)" }
        func b(_ index: Int) -> String { "\(base)-b\(index)" }
        func member(_ index: Int) -> String { "\(members[index].key) \(ws) \":\" \(ws) \(members[index].value) \(ws)" }
        let extraMember = extraKey.map { key in "\(key) \(ws) \":\" \(ws) \(extraValue ?? "") \(ws)" }
        for index in 0...count { used.insert(a(index)); used.insert(b(index)) }
        for index in 0..<count {
            let first = "\(member(index)) \(b(index + 1))"
            try add(a(index), members[index].required ? first : "\(first) | \(a(index + 1))", pointer: pointer)
            let next = "\",\" \(ws) \(member(index)) \(b(index + 1))"
            try add(b(index), members[index].required ? next : "\(next) | \(b(index + 1))", pointer: pointer)
        }
        if let extraMember {
            try add(a(count), "\(extraMember) \(b(count)) | \"\"", pointer: pointer)
            try add(b(count), "( \",\" \(ws) \(extraMember) )*", pointer: pointer)
        } else {
            try add(a(count), "\"\"", pointer: pointer)
            try add(b(count), "\"\"", pointer: pointer)
        }
        try add(base, "\"{\" \(ws) \(a(0)) \"}\"", pointer: pointer)
        return .grammar(base)
    }

    /// A JSON string (with its quotes) whose raw characters do not spell any of `names`: a trie of the names, each
    /// node continuing with a name's next character or leaving the trie with any other. Escape sequences leave the
    /// trie (except the short escapes the names themselves need), so a name spelled with \u escapes is not excluded.
    private mutating func keyExcluding(_ names: [String], pointer: String) throws -> String {
        if names.isEmpty { return primitive("string") }
        let prefix = family("key")
        let rest = primitive("string-rest")
        // Trie nodes: children by scalar, and whether a name ends there.
        var children: [[UInt32: Int]] = [[:]]
        var terminal: [Bool] = [false]
        for name in names {
            var node = 0
            for scalar in name.unicodeScalars {
                if let child = children[node][scalar.value] {
                    node = child
                } else {
                    children.append([:])
                    terminal.append(false)
                    children[node][scalar.value] = children.count - 1
                    node = children.count - 1
                }
            }
            terminal[node] = true
        }
        let shortEscapes: [UInt32: String] = [0x22: "\"", 0x5C: "\\\\", 0x2F: "/", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t"]
        for node in 0..<children.count {
            var alternatives: [String] = []
            var rawExcluded: [UInt32] = []
            var escapesUsed: Set<String> = []
            for (scalar, child) in children[node].sorted(by: { $0.key < $1.key }) {
                let target = "\(prefix)-\(child)"
                if scalar == 0x22 || scalar == 0x5C || scalar < 0x20 {
                    guard let letter = shortEscapes[scalar] else { continue }
                    escapesUsed.insert(letter)
                    alternatives.append("\"\\\\\" \"\(letter == "\"" ? "\\\"" : letter)\" \(target)")
                } else {
                    rawExcluded.append(scalar)
                    alternatives.append("\"\(GrammarText.escaped(scalar, inClass: false))\" \(target)")
                }
            }
            let excludedClass = rawExcluded.map { GrammarText.escaped($0, inClass: true) }.joined()
            alternatives.append("[^\"\\\\\\x00-\\x1F\(excludedClass)] \(rest)")
            let letters = ["\"", "\\\\", "/", "b", "f", "n", "r", "t"].filter { !escapesUsed.contains($0) }
            let letterClass = letters.map { $0 == "\"" ? "\\\"" : $0 }.joined()
            alternatives.append("\"\\\\\" ( [\(letterClass)] | \"u\" [0-9a-fA-F]{4} ) \(rest)")
            if !terminal[node] { alternatives.append("\"\\\"\"") }
            try add("\(prefix)-\(node)", alternatives.joined(separator: " | "), pointer: pointer)
        }
        let rule = "\(prefix)"
        try add(rule, "\"\\\"\" \(prefix)-0", pointer: pointer)
        return rule
    }

    // MARK: $ref

    private mutating func compileReference(_ value: TemplateValue, pointer: String) throws -> Result {
        guard case let .string(reference) = value else { throw fail(pointer, "'$ref' must be a string") }
        // JSON pointers are sequences of code points: '/' followed by a combining mark is still a separator, so the
        // reference is taken apart by Unicode scalars, not by Swift characters (grapheme clusters).
        guard reference.unicodeScalars.first == "#" else {
            throw fail(pointer, "only references inside the schema ('#/$defs/...', '#/definitions/...', '#') are supported, not '\(reference)'")
        }
        let rest = String(String.UnicodeScalarView(reference.unicodeScalars.dropFirst()))
        let fragment = rest.percentDecoded ?? rest
        if let rule = referenceRules[fragment] { return .grammar(rule) }
        guard fragment.isEmpty || fragment.unicodeScalars.first == "/" else {
            throw fail(pointer, "'\(reference)' is not a JSON pointer (anchors are not supported)")
        }
        var target = document
        if !fragment.isEmpty {
            let tokens = fragment.unicodeScalars.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
                .map { String(String.UnicodeScalarView($0)) }
            for token in tokens {
                let key = String(token).replacingEvery("~1", with: "/").replacingEvery("~0", with: "~")
                switch target {
                case let .object(members):
                    guard let member = members.last(where: { $0.key == key }) else {
                        throw fail(pointer, "'\(reference)' does not resolve: no member '\(key)'")
                    }
                    target = member.value
                case let .array(items):
                    guard let index = Int(key), index >= 0, index < items.count else {
                        throw fail(pointer, "'\(reference)' does not resolve: no item '\(key)'")
                    }
                    target = items[index]
                default:
                    throw fail(pointer, "'\(reference)' does not resolve")
                }
            }
        }
        let last = fragment.split(separator: "/").last.map(String.init) ?? "root"
        let rule = name("def-" + last)
        referenceRules[fragment] = rule
        switch try compile(target, pointer: fragment, hint: "def-" + last) {
        case let .grammar(expression):
            try add(rule, expression, pointer: fragment)
            return .grammar(rule)
        case let .empty(emptyPointer, reason):
            // Rules already referring to it (recursion) see a rule that never matches; the compiler reports it.
            try add(rule, "[]", pointer: emptyPointer)
            return .empty(pointer: emptyPointer, reason: reason)
        }
    }

    // MARK: literal values (enum, const)

    /// A grammar for one JSON value as enum/const compare it: strings as json.dumps writes them, numbers by value,
    /// arrays and objects member by member.
    private mutating func literal(_ value: TemplateValue, pointer: String) throws -> String {
        let ws = primitive("ws")
        switch value {
        case .null: return "\"null\""
        case let .bool(flag): return flag ? "\"true\"" : "\"false\""
        case let .int(integer):
            return try exactNumber(DecimalConstant(integer), pointer: pointer)
        case let .float(number):
            guard let constant = DecimalConstant(number) else { throw fail(pointer, "a non-finite number cannot be matched") }
            return try exactNumber(constant, pointer: pointer)
        case let .string(text): return stringLiteral(text)
        case let .array(items):
            if items.isEmpty { return "\"[\" \(ws) \"]\"" }
            var parts: [String] = []
            for (index, item) in items.enumerated() { parts.append(try literal(item, pointer: pointer + "/\(index)") + " \(ws)") }
            return "( \"[\" \(ws) " + parts.joined(separator: " \",\" \(ws) ") + " \"]\" )"
        case let .object(members):
            if members.isEmpty { return "\"{\" \(ws) \"}\"" }
            var parts: [String] = []
            for (key, member) in members {
                parts.append("\(stringLiteral(key)) \(ws) \":\" \(ws) " + (try literal(member, pointer: pointer + "/" + SchemaBuilder.escape(key))) + " \(ws)")
            }
            return "( \"{\" \(ws) " + parts.joined(separator: " \",\" \(ws) ") + " \"}\" )"
        }
    }

    private mutating func exactNumber(_ constant: DecimalConstant, pointer: String) throws -> String {
        let bound = NumberBound(value: constant, inclusive: true)
        let prefix = family("const")
        var emitted: [(String, String)] = []
        let start: String?
        do {
            start = try NumberGrammarBuilder.signed(prefix: prefix, syntax: .decimal, lower: bound, upper: bound) { emitted.append(($0, $1)) }
        } catch {
            throw fail(pointer, "the number has too many digits to match exactly")
        }
        for (rule, body) in emitted { try add(rule, body, pointer: pointer) }
        return start ?? "[]"
    }

    /// One character of a JSON string as GBNF, as json.dumps writes it: printable ASCII raw (`"` and `\\` escaped),
    /// control characters as short or \\u escapes, other characters raw or \\u-escaped (either case of hex digit).
    private func characterGrammar(_ c: UInt32) -> String {
        func hexAlternatives(_ value: UInt32) -> String {
            let hex = String(value, radix: 16)
            let digits = String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            return digits.map { c -> String in
                c.isLetter ? "[\(c.lowercased())\(c.uppercased())]" : "\"\(c)\""
            }.joined(separator: " ")
        }
        switch c {
        case 0x22: return "\"\\\\\\\"\""
        case 0x5C: return "\"\\\\\\\\\""
        case 0x0A: return "\"\\\\n\""
        case 0x0D: return "\"\\\\r\""
        case 0x09: return "\"\\\\t\""
        case 0x08: return "\"\\\\b\""
        case 0x0C: return "\"\\\\f\""
        case 0..<0x20: return "\"\\\\u\" " + hexAlternatives(c)
        case 0x20..<0x7F: return "\"" + GrammarText.escaped(c, inClass: false) + "\""
        case 0x7F..<0x10000:
            return "( \"\(GrammarText.escaped(c, inClass: false))\" | \"\\\\u\" \(hexAlternatives(c)) )"
        default:
            let high = 0xD800 + ((c - 0x10000) >> 10), low = 0xDC00 + ((c - 0x10000) & 0x3FF)
            return "( \"\(GrammarText.escaped(c, inClass: false))\" | \"\\\\u\" \(hexAlternatives(high)) \"\\\\u\" \(hexAlternatives(low)) )"
        }
    }

    /// A JSON string literal for `text` as GBNF (see `characterGrammar`), printable ASCII runs as one literal.
    private func stringLiteral(_ text: String) -> String {
        var parts: [String] = []
        var run = "\\\""
        for scalar in text.unicodeScalars {
            let c = scalar.value
            if c >= 0x20, c < 0x7F, c != 0x22, c != 0x5C {
                run += GrammarText.escaped(c, inClass: false)
            } else if c < 0x20 || c == 0x22 || c == 0x5C, let short = [0x22: "\\\\\\\"", 0x5C: "\\\\\\\\", 0x0A: "\\\\n", 0x0D: "\\\\r",
                                                                      0x09: "\\\\t", 0x08: "\\\\b", 0x0C: "\\\\f"][c] {
                run += short
            } else {
                if !run.isEmpty { parts.append("\"" + run + "\""); run = "" }
                parts.append(characterGrammar(c))
            }
        }
        run += "\\\""
        parts.append("\"" + run + "\"")
        return parts.count == 1 ? parts[0] : "( " + parts.joined(separator: " ") + " )"
    }

    /// One rule family matching any of `strings` (as JSON strings, quotes included): a trie, so that the grammar
    /// branches on each character once however many strings there are.
    private mutating func stringTrie(_ strings: [String], pointer: String) throws -> String {
        let prefix = family("enum")
        var children: [[(UInt32, Int)]] = [[]]
        var terminal: [Bool] = [false]
        for text in Set(strings).sorted() {
            var node = 0
            for scalar in text.unicodeScalars {
                if let child = children[node].first(where: { $0.0 == scalar.value })?.1 {
                    node = child
                } else {
                    children.append([])
                    terminal.append(false)
                    children[node].append((scalar.value, children.count - 1))
                    node = children.count - 1
                }
            }
            terminal[node] = true
        }
        for node in 0..<children.count {
            var alternatives = children[node].map { "\(characterGrammar($0.0)) \(prefix)-\($0.1)" }
            if terminal[node] { alternatives.append("\"\\\"\"") }
            try add("\(prefix)-\(node)", alternatives.joined(separator: " | "), pointer: pointer)
        }
        try add(prefix, "\"\\\"\" \(prefix)-0", pointer: pointer)
        return prefix
    }
}
