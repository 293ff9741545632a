/// An expression node with its source position.
struct Expr: Sendable {
    var kind: ExprKind
    var position: SourcePosition
}

/// A keyword argument in a call, filter or test.
struct KeywordArgument: Sendable {
    var name: String
    var value: Expr
}

/// What an expression is. Mirrors jinja2's expression nodes.
indirect enum ExprKind: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(key: Expr, value: Expr)])
    case attribute(Expr, String)
    case index(Expr, Expr)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
    case call(Expr, [Expr], [KeywordArgument])
    case filter(Expr, name: String, [Expr], [KeywordArgument])
    case test(Expr, name: String, [Expr], [KeywordArgument], negated: Bool)
    case not(Expr)
    case negate(Expr)
    case plus(Expr)
    case binary(String, Expr, Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case compare(Expr, [(op: String, operand: Expr)])
    case conditional(then: Expr, condition: Expr, otherwise: Expr?)
}

/// An assignment target of `set` or `for`.
enum AssignTarget: Sendable {
    case name(String)
    case tuple([String])
    case attribute(String, String)
}

/// A filter application in `{% filter %}` or `{% set x | f %}`.
struct FilterCall: Sendable {
    var name: String
    var arguments: [Expr]
    var keywords: [KeywordArgument]
    var position: SourcePosition
}

/// A macro parameter with its optional default.
struct MacroParameter: Sendable {
    var name: String
    var defaultValue: Expr?
}

/// A template statement (or text / output).
indirect enum Node: Sendable {
    case text(String)
    case output(Expr)
    case conditional(branches: [(condition: Expr, body: [Node])], otherwise: [Node])
    case forLoop(target: AssignTarget, iterable: Expr, filter: Expr?, body: [Node], otherwise: [Node], position: SourcePosition)
    case assign(target: AssignTarget, value: Expr, position: SourcePosition)
    case assignBlock(target: AssignTarget, filters: [FilterCall], body: [Node], position: SourcePosition)
    case macro(name: String, parameters: [MacroParameter], body: [Node], position: SourcePosition)
    case filterBlock(filters: [FilterCall], body: [Node])
    case generation(body: [Node])
    case breakLoop(SourcePosition)
    case continueLoop(SourcePosition)
}

/// Names jinja2 knows, so that a filter or test it lacks fails at compile time as it does in jinja2.
enum JinjaNames {
    static let filters: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
        "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
        "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount",
        "wordwrap", "xmlattr",
    ]
    static let tests: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
        "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lessthan", "lt", "mapping",
        "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper",
        "==", "!=", "<", "<=", ">", ">=",
    ]
}
