/// Builds the syntax tree from tokens, following jinja2's parser rule for rule (precedence, tuples,
/// test arguments without parentheses, `if` expressions) so that the same templates parse the same way.
struct Parser {
    private let tokens: [Token]
    private var index = 0
    private var depth = 0
    /// jinja2's "soft frame": inside an `if` statement or an inline if-expression, an unknown filter or test is
    /// an error only when it runs; elsewhere it is a compile-time error. `for` and macro bodies are hard again.
    private var soft = false

    /// Deepest nesting of statements plus expressions; beyond it parsing stops with an error.
    static let maximumDepth = 200

    init(tokens: [Token]) {
        self.tokens = tokens
    }

    // MARK: token stream

    private var current: Token { tokens[min(index, tokens.count - 1)] }
    private var look: Token { tokens[min(index + 1, tokens.count - 1)] }

    private mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    private func fail(_ message: String, _ token: Token? = nil) -> TemplateError {
        TemplateError(position: (token ?? current).position, message: message)
    }

    private func isName(_ name: String, _ token: Token? = nil) -> Bool {
        if case let .name(value) = (token ?? current).kind { return value == name }
        return false
    }

    private func isOp(_ op: String, _ token: Token? = nil) -> Bool {
        if case let .op(value) = (token ?? current).kind { return value == op }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        if isName(name) { advance(); return true }
        return false
    }

    private mutating func skipOp(_ op: String) -> Bool {
        if isOp(op) { advance(); return true }
        return false
    }

    private mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw fail("expected '\(op)', got \(current.describe)") }
    }

    private mutating func expectName() throws -> String {
        guard case let .name(name) = current.kind else { throw fail("expected a name, got \(current.describe)") }
        advance()
        return name
    }

    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = current.kind else { throw fail("expected end of statement block, got \(current.describe)") }
        advance()
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw fail("template nested too deeply (more than \(Self.maximumDepth) levels)") }
    }

    // MARK: statements

    /// Parses the whole template.
    mutating func parseTemplate() throws -> [Node] {
        let (body, _) = try subparse(endTags: [])
        guard case .eof = current.kind else { throw fail("unexpected \(current.describe)") }
        return body
    }

    /// Parses nodes until a block tag whose name is in `endTags` (left as the current token) or the end.
    private mutating func subparse(endTags: Set<String>) throws -> ([Node], String?) {
        var body: [Node] = []
        while true {
            switch current.kind {
            case let .data(text):
                body.append(.text(text))
                advance()
            case .variableBegin:
                advance()
                let expr = try parseTuple()
                guard case .variableEnd = current.kind else { throw fail("expected end of print statement, got \(current.describe)") }
                advance()
                body.append(.output(expr))
            case .blockBegin:
                advance()
                if case let .name(name) = current.kind, endTags.contains(name) { return (body, name) }
                body.append(try parseStatement())
                try expectBlockEnd()
            case .eof:
                return (body, nil)
            default:
                throw fail("unexpected \(current.describe)")
            }
        }
    }

    /// `{% tag ... %}` body `{% end... %}`: expects the opening tag's end, parses up to one of `endTags`.
    private mutating func parseStatements(_ endTags: Set<String>, opener: String, openerToken: Token, dropNeedle: Bool) throws -> ([Node], String) {
        try enter()
        defer { depth -= 1 }
        _ = skipOp(":")
        try expectBlockEnd()
        let (body, end) = try subparse(endTags: endTags)
        guard let end else {
            let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
            throw fail("unexpected end of template: looking for \(expected) to close the '\(opener)' tag at line \(openerToken.position.line) column \(openerToken.position.column)")
        }
        if dropNeedle { advance() }
        return (body, end)
    }

    private mutating func parseStatement() throws -> Node {
        let token = current
        guard case let .name(tag) = token.kind else { throw fail("tag name expected, got \(token.describe)") }
        switch tag {
        case "for": return try parseFor()
        case "if": return try parseIf()
        case "set": return try parseSet()
        case "macro": return try parseMacro()
        case "filter":
            advance()
            let filters = try parseFilterChain(startInline: true)
            let (body, _) = try parseStatements(["endfilter"], opener: "filter", openerToken: token, dropNeedle: true)
            return .filterBlock(filters: filters, body: body)
        case "generation":
            advance()
            let (body, _) = try parseStatements(["endgeneration"], opener: "generation", openerToken: token, dropNeedle: true)
            return .generation(body: body)
        case "break":
            advance()
            return .breakLoop(token.position)
        case "continue":
            advance()
            return .continueLoop(token.position)
        case "call", "block", "extends", "include", "import", "from", "with", "autoescape", "raw", "print":
            throw fail("unsupported tag '\(tag)'", token)
        default:
            throw fail("unknown tag '\(tag)'", token)
        }
    }

    private mutating func parseFor() throws -> Node {
        let token = current
        advance()
        let savedSoft = soft
        defer { soft = savedSoft }
        let target = try parseAssignTarget(extraEnd: ["in"], withNamespace: false)
        guard skipName("in") else { throw fail("expected 'in', got \(current.describe)") }
        let iterable = try parseTuple(withCondExpr: false, extraEnd: ["recursive"])
        var filter: Expr? = nil
        if skipName("if") { filter = try parseExpression() }
        if isName("recursive") { throw fail("unsupported: recursive for loops") }
        soft = false
        let (body, end) = try parseStatements(["endfor", "else"], opener: "for", openerToken: token, dropNeedle: true)
        var otherwise: [Node] = []
        if end == "else" {
            (otherwise, _) = try parseStatements(["endfor"], opener: "for", openerToken: token, dropNeedle: true)
        }
        return .forLoop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, position: token.position)
    }

    private mutating func parseIf() throws -> Node {
        let token = current
        advance()
        let savedSoft = soft
        soft = true
        defer { soft = savedSoft }
        var branches: [(condition: Expr, body: [Node])] = []
        var condition = try parseTuple(withCondExpr: false)
        var otherwise: [Node] = []
        while true {
            let (body, end) = try parseStatements(["elif", "else", "endif"], opener: "if", openerToken: token, dropNeedle: true)
            branches.append((condition: condition, body: body))
            if end == "elif" {
                condition = try parseTuple(withCondExpr: false)
                continue
            }
            if end == "else" {
                (otherwise, _) = try parseStatements(["endif"], opener: "if", openerToken: token, dropNeedle: true)
            }
            break
        }
        return .conditional(branches: branches, otherwise: otherwise)
    }

    private mutating func parseSet() throws -> Node {
        let token = current
        advance()
        let target = try parseAssignTarget(extraEnd: [], withNamespace: true)
        if skipOp("=") {
            let value = try parseTuple()
            return .assign(target: target, value: value, position: token.position)
        }
        var filters: [FilterCall] = []
        if isOp("|") { filters = try parseFilterChain(startInline: false) }
        let (body, _) = try parseStatements(["endset"], opener: "set", openerToken: token, dropNeedle: true)
        return .assignBlock(target: target, filters: filters, body: body, position: token.position)
    }

    private mutating func parseMacro() throws -> Node {
        let token = current
        advance()
        let savedSoft = soft
        soft = false
        defer { soft = savedSoft }
        let name = try expectName()
        try expectOp("(")
        var parameters: [MacroParameter] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let parameter = try expectName()
            if skipOp("=") {
                parameters.append(MacroParameter(name: parameter, defaultValue: try parseExpression()))
            } else {
                if parameters.contains(where: { $0.defaultValue != nil }) { throw fail("non-default argument follows default argument") }
                parameters.append(MacroParameter(name: parameter, defaultValue: nil))
            }
        }
        try expectOp(")")
        let (body, _) = try parseStatements(["endmacro"], opener: "macro", openerToken: token, dropNeedle: true)
        return .macro(name: name, parameters: parameters, body: body, position: token.position)
    }

    private mutating func parseAssignTarget(extraEnd: Set<String>, withNamespace: Bool) throws -> AssignTarget {
        let token = current
        if withNamespace, case let .name(object) = current.kind, isOp(".", look) {
            advance()
            advance()
            let attribute = try expectName()
            return .attribute(object, attribute)
        }
        var names: [String] = []
        var isTuple = false
        let parenthesized = skipOp("(")
        while true {
            if !names.isEmpty {
                guard skipOp(",") else { break }
                isTuple = true
            }
            if case .blockEnd = current.kind { break }
            if case let .name(name) = current.kind, extraEnd.contains(name) { break }
            if isOp(")") || isOp("=") || isOp("|") { break }
            guard case let .name(name) = current.kind else { throw fail("can't assign to \(current.describe)") }
            if ["true", "false", "none", "True", "False", "None"].contains(name) { throw fail("can't assign to '\(name)'") }
            names.append(name)
            advance()
        }
        if parenthesized { try expectOp(")"); isTuple = true }
        guard !names.isEmpty else { throw fail("expected an assignment target, got \(current.describe)", token) }
        return isTuple ? .tuple(names) : .name(names[0])
    }

    private mutating func parseFilterChain(startInline: Bool) throws -> [FilterCall] {
        var filters: [FilterCall] = []
        var inline = startInline
        while inline || isOp("|") {
            if !inline { advance() }
            inline = false
            let token = current
            var name = try expectName()
            while skipOp(".") { name += "." + (try expectName()) }
            try checkFilter(name, token)
            var arguments: [Expr] = []
            var keywords: [KeywordArgument] = []
            if isOp("(") { (arguments, keywords) = try parseCallArguments() }
            filters.append(FilterCall(name: name, arguments: arguments, keywords: keywords, position: token.position))
        }
        return filters
    }

    private func checkFilter(_ name: String, _ token: Token) throws {
        guard soft || JinjaNames.filters.contains(name) else { throw fail("no filter named '\(name)'", token) }
    }

    // MARK: expressions

    /// A comma-separated tuple or a single expression (jinja2's `parse_tuple`).
    private mutating func parseTuple(simplified: Bool = false, withCondExpr: Bool = true, extraEnd: Set<String> = [], explicitParentheses: Bool = false) throws -> Expr {
        let start = current
        var items: [Expr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            switch current.kind {
            case .variableEnd, .blockEnd, .eof: break
            case .op(")"): break
            case let .name(name) where extraEnd.contains(name): break
            default:
                items.append(simplified ? try parsePrimary() : try parseExpression(withCondExpr: withCondExpr))
                if isOp(",") { isTuple = true; continue }
            }
            break
        }
        if !isTuple {
            if let first = items.first { return first }
            if !explicitParentheses { throw fail("expected an expression, got \(current.describe)") }
        }
        return Expr(kind: .tuple(items), position: start.position)
    }

    private mutating func parseExpression(withCondExpr: Bool = true) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        if !withCondExpr { return try parseOr() }
        let savedSoft = soft
        defer { soft = savedSoft }
        var expr = try parseOr()
        while isName("if") {
            let token = current
            advance()
            soft = true
            let condition = try parseOr()
            var otherwise: Expr? = nil
            if skipName("else") { otherwise = try parseExpression() }
            expr = Expr(kind: .conditional(then: expr, condition: condition, otherwise: otherwise), position: token.position)
        }
        return expr
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while isName("or") {
            let token = current
            advance()
            left = Expr(kind: .or(left, try parseAnd()), position: token.position)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while isName("and") {
            let token = current
            advance()
            left = Expr(kind: .and(left, try parseNot()), position: token.position)
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            let token = current
            advance()
            try enter()
            defer { depth -= 1 }
            return Expr(kind: .not(try parseNot()), position: token.position)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let start = current
        let expr = try parseMath1()
        var operations: [(op: String, operand: Expr)] = []
        while true {
            if case let .op(op) = current.kind, ["==", "!=", "<", "<=", ">", ">="].contains(op) {
                advance()
                operations.append((op: op, operand: try parseMath1()))
            } else if skipName("in") {
                operations.append((op: "in", operand: try parseMath1()))
            } else if isName("not"), isName("in", look) {
                advance()
                advance()
                operations.append((op: "not in", operand: try parseMath1()))
            } else {
                break
            }
        }
        if operations.isEmpty { return expr }
        return Expr(kind: .compare(expr, operations), position: start.position)
    }

    private mutating func parseMath1() throws -> Expr {
        var left = try parseConcat()
        while case let .op(op) = current.kind, op == "+" || op == "-" {
            let token = current
            advance()
            left = Expr(kind: .binary(op, left, try parseConcat()), position: token.position)
        }
        return left
    }

    private mutating func parseConcat() throws -> Expr {
        var left = try parseMath2()
        while isOp("~") {
            let token = current
            advance()
            left = Expr(kind: .binary("~", left, try parseMath2()), position: token.position)
        }
        return left
    }

    private mutating func parseMath2() throws -> Expr {
        var left = try parsePow()
        while case let .op(op) = current.kind, ["*", "/", "//", "%"].contains(op) {
            let token = current
            advance()
            left = Expr(kind: .binary(op, left, try parsePow()), position: token.position)
        }
        return left
    }

    private mutating func parsePow() throws -> Expr {
        var left = try parseUnary()
        while isOp("**") {
            let token = current
            advance()
            left = Expr(kind: .binary("**", left, try parseUnary()), position: token.position)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let token = current
        var node: Expr
        if isOp("-") {
            advance()
            node = Expr(kind: .negate(try parseUnary(withFilter: false)), position: token.position)
        } else if isOp("+") {
            advance()
            node = Expr(kind: .plus(try parseUnary(withFilter: false)), position: token.position)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let token = current
        switch token.kind {
        case let .name(name):
            advance()
            switch name {
            case "true", "True": return Expr(kind: .bool(true), position: token.position)
            case "false", "False": return Expr(kind: .bool(false), position: token.position)
            case "none", "None": return Expr(kind: .none, position: token.position)
            default: return Expr(kind: .name(name), position: token.position)
            }
        case var .string(text):
            advance()
            while case let .string(more) = current.kind {
                text += more
                advance()
            }
            return Expr(kind: .string(text), position: token.position)
        case let .integer(number):
            advance()
            return Expr(kind: .int(number), position: token.position)
        case let .float(number):
            advance()
            return Expr(kind: .float(number), position: token.position)
        case .op("("):
            advance()
            try enter()
            defer { depth -= 1 }
            let expr = try parseTuple(explicitParentheses: true)
            try expectOp(")")
            return expr
        case .op("["):
            advance()
            try enter()
            defer { depth -= 1 }
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(kind: .list(items), position: token.position)
        case .op("{"):
            advance()
            try enter()
            defer { depth -= 1 }
            var items: [(key: Expr, value: Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                items.append((key: key, value: try parseExpression()))
            }
            try expectOp("}")
            return Expr(kind: .dict(items), position: token.position)
        default:
            throw fail("expected an expression, got \(token.describe)")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpression(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp("|") {
                for filter in try parseFilterChain(startInline: false) {
                    node = Expr(kind: .filter(node, name: filter.name, filter.arguments, filter.keywords), position: filter.position)
                }
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ node: Expr) throws -> Expr {
        let token = current
        if skipOp(".") {
            let attributeToken = current
            switch attributeToken.kind {
            case let .name(name):
                advance()
                return Expr(kind: .attribute(node, name), position: attributeToken.position)
            case let .integer(number):
                advance()
                return Expr(kind: .index(node, Expr(kind: .int(number), position: attributeToken.position)), position: attributeToken.position)
            default:
                throw fail("expected name or number after '.', got \(attributeToken.describe)")
            }
        }
        try expectOp("[")
        try enter()
        defer { depth -= 1 }
        var arguments: [Expr] = []
        while !isOp("]") {
            if !arguments.isEmpty { try expectOp(",") }
            arguments.append(try parseSubscribed(node))
        }
        try expectOp("]")
        guard !arguments.isEmpty else { throw fail("expected an index between '[' and ']'", token) }
        if arguments.count == 1 {
            if case .slice = arguments[0].kind { return arguments[0] }
            return Expr(kind: .index(node, arguments[0]), position: token.position)
        }
        return Expr(kind: .index(node, Expr(kind: .tuple(arguments), position: token.position)), position: token.position)
    }

    private mutating func parseSubscribed(_ node: Expr) throws -> Expr {
        let token = current
        var start: Expr? = nil
        if !isOp(":") {
            let expr = try parseExpression()
            guard isOp(":") else { return expr }
            start = expr
        }
        advance()  // ':'
        var stop: Expr? = nil
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        var step: Expr? = nil
        if skipOp(":") {
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return Expr(kind: .slice(node, start: start, stop: stop, step: step), position: token.position)
    }

    private mutating func parseCallArguments() throws -> ([Expr], [KeywordArgument]) {
        try expectOp("(")
        var arguments: [Expr] = []
        var keywords: [KeywordArgument] = []
        var requireComma = false
        while !isOp(")") {
            if requireComma {
                try expectOp(",")
                if isOp(")") { break }
            }
            if isOp("*") || isOp("**") { throw fail("unsupported: *args and **kwargs in calls") }
            if case let .name(name) = current.kind, isOp("=", look) {
                advance()
                advance()
                keywords.append(KeywordArgument(name: name, value: try parseExpression()))
            } else {
                if !keywords.isEmpty { throw fail("positional argument follows keyword argument") }
                arguments.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return (arguments, keywords)
    }

    private mutating func parseCall(_ node: Expr) throws -> Expr {
        let token = current
        try enter()
        defer { depth -= 1 }
        let (arguments, keywords) = try parseCallArguments()
        return Expr(kind: .call(node, arguments, keywords), position: token.position)
    }

    private mutating func parseTest(_ node: Expr) throws -> Expr {
        let token = current
        advance()  // 'is'
        let negated = skipName("not")
        let nameToken = current
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        guard soft || JinjaNames.tests.contains(name) else { throw fail("no test named '\(name)'", nameToken) }
        var arguments: [Expr] = []
        var keywords: [KeywordArgument] = []
        if isOp("(") {
            (arguments, keywords) = try parseCallArguments()
        } else {
            var startsArgument = false
            switch current.kind {
            case let .name(next): startsArgument = !["else", "or", "and"].contains(next)
            case .string, .integer, .float, .op("("), .op("["), .op("{"): startsArgument = true
            default: break
            }
            if startsArgument {
                if isName("is") { throw fail("you cannot chain multiple tests with 'is'") }
                arguments = [try parsePostfix(try parsePrimary())]
            }
        }
        return Expr(kind: .test(node, name: name, arguments, keywords, negated: negated), position: token.position)
    }
}
