#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Variables visible at one point of rendering. jinja2 scoping: a `for` body gets a fresh scope per iteration,
/// a macro call gets a scope under the scope the macro was defined in, `if` makes none.
final class Scope {
    var variables: [String: Value] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var scope: Scope? = self
        while let current = scope {
            if let value = current.variables[name] { return value }
            scope = current.parent
        }
        return nil
    }
}

/// Where control goes after a statement list.
enum Flow {
    case normal
    case breakLoop
    case continueLoop
}

/// Limits that keep a hostile template from exhausting memory, stack or time. Real chat templates stay far below
/// them (a 1,000-message conversation through a large tool-calling template takes ~10^5 steps); a render that passes
/// one throws a template error instead. One operation also never builds a string over `Builtins.maximumText`.
struct RenderLimits: Sendable {
    /// Most bytes of text written, across all nested captures.
    var maximumOutputBytes = 64 << 20
    /// Most loop iterations in one render.
    var maximumIterations = 200_000
    /// Most steps in one render: expressions evaluated and loop iterations (bounds the time of loops and of macros
    /// that call themselves more than once, which the call depth alone does not).
    var maximumSteps = 2_000_000
    /// Most bytes built in one render by operators, filters and calls (strings by length, containers at 16 bytes an
    /// item): bounds the time spent copying, e.g. appending to a string or list in a loop.
    var maximumBuiltBytes = 1 << 30
    /// Deepest macro / filter-block / set-block nesting at run time.
    var maximumCallDepth = 64
    /// Longest list `range()` may build.
    var maximumRange = 1_000_000
}

/// Walks the syntax tree, producing text with jinja2's semantics.
final class Interpreter {
    let limits: RenderLimits
    let now: Date
    private var writtenBytes = 0
    private var iterations = 0
    private var steps = 0
    private var builtBytes = 0
    private(set) var callDepth = 0
    private var loopDepth = 0
    /// Objects that can form reference cycles during a render: scopes that define macros (the macro captures its
    /// defining scope, which holds the macro) and namespaces (which may hold themselves). `releaseCycles` empties
    /// them when the render is over, so every render frees what it made.
    private var macroScopes: [Scope] = []
    private var namespaces: [Namespace] = []

    init(limits: RenderLimits, now: Date) {
        self.limits = limits
        self.now = now
    }

    // MARK: statements

    /// Renders `nodes` in `scope`; afterwards (also on error) releases the cycles the render made.
    func render(_ nodes: [Node], scope: Scope) throws -> String {
        defer { releaseCycles() }
        var out = ""
        let flow = try execute(nodes, scope: scope, into: &out)
        _ = flow
        return out
    }

    private func write(_ text: String, into out: inout String, at position: SourcePosition) throws {
        writtenBytes += text.utf8.count
        guard writtenBytes <= limits.maximumOutputBytes else {
            throw TemplateError(position: position, message: "output too large (more than \(limits.maximumOutputBytes) bytes)")
        }
        out += text
    }

    func enterCall(at position: SourcePosition) throws {
        callDepth += 1
        guard callDepth <= limits.maximumCallDepth else {
            callDepth -= 1
            throw TemplateError(position: position, message: "macro calls nested too deeply (more than \(limits.maximumCallDepth) levels)")
        }
    }

    func leaveCall() { callDepth -= 1 }

    /// Counts one step of work; throws past `limits.maximumSteps`.
    private func step(at position: SourcePosition) throws {
        steps += 1
        guard steps <= limits.maximumSteps else {
            throw TemplateError(position: position, message: "template too expensive: more than \(limits.maximumSteps) steps (expressions evaluated and loop iterations)")
        }
    }

    /// Counts the bytes of a value an operator, filter or call built; throws past `limits.maximumBuiltBytes`.
    private func account(_ value: Value, at position: SourcePosition) throws {
        switch value {
        case let .string(text), let .markup(text): builtBytes += text.utf8.count
        case let .list(items), let .tuple(items): builtBytes += 16 * items.count
        case let .dict(dict): builtBytes += 32 * dict.count
        default: return
        }
        guard builtBytes <= limits.maximumBuiltBytes else {
            throw TemplateError(position: position, message: "template too expensive: it built more than \(limits.maximumBuiltBytes) bytes of strings and lists")
        }
    }

    /// `str(value)` for output, after checking its size.
    private func printable(_ value: Value, at position: SourcePosition) throws -> String {
        do { try Builtins.checkPrintable(value) } catch let error as TemplateRuntimeError {
            throw TemplateError(position: position, message: error.message)
        }
        return PythonText.str(value)
    }

    /// Records a namespace made by `namespace()` for `releaseCycles`.
    func track(_ namespace: Namespace) { namespaces.append(namespace) }

    /// Breaks the reference cycles a render may have made (see `macroScopes`); `render` calls it when it finishes.
    private func releaseCycles() {
        for scope in macroScopes { scope.variables.removeAll() }
        for namespace in namespaces { namespace.attributes = OrderedDict() }
        macroScopes.removeAll()
        namespaces.removeAll()
    }

    func execute(_ nodes: [Node], scope: Scope, into out: inout String) throws -> Flow {
        for node in nodes {
            switch node {
            case let .text(text):
                writtenBytes += text.utf8.count
                guard writtenBytes <= limits.maximumOutputBytes else {
                    throw TemplateError(position: SourcePosition(line: 1, column: 1), message: "output too large (more than \(limits.maximumOutputBytes) bytes)")
                }
                out += text
            case let .output(expr):
                let value = try evaluate(expr, scope: scope)
                try write(try printable(value, at: expr.position), into: &out, at: expr.position)
            case let .conditional(branches, otherwise):
                var taken = false
                for branch in branches {
                    guard try evaluate(branch.condition, scope: scope).truthy else { continue }
                    taken = true
                    let flow = try execute(branch.body, scope: scope, into: &out)
                    if case .normal = flow {} else { return flow }
                    break
                }
                if !taken {
                    let flow = try execute(otherwise, scope: scope, into: &out)
                    if case .normal = flow {} else { return flow }
                }
            case let .forLoop(target, iterable, filter, body, otherwise, position):
                try executeFor(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise,
                               position: position, scope: scope, into: &out)
            case let .assign(target, valueExpr, position):
                let value = try evaluate(valueExpr, scope: scope)
                try assign(target, value, scope: scope, position: position)
            case let .assignBlock(target, filters, body, position):
                try enterCall(at: position)
                defer { leaveCall() }
                var captured = ""
                _ = try execute(body, scope: scope, into: &captured)
                var value = Value.string(captured)
                for filter in filters {
                    value = try applyFilter(filter.name, value, arguments: filter.arguments, keywords: filter.keywords, scope: scope, position: filter.position)
                }
                try assign(target, value, scope: scope, position: position)
            case let .macro(name, parameters, body, position):
                scope.variables[name] = .callable(makeMacro(name: name, parameters: parameters, body: body, definingScope: scope, position: position))
                macroScopes.append(scope)
            case let .filterBlock(filters, body):
                try enterCall(at: filters.first?.position ?? SourcePosition(line: 1, column: 1))
                defer { leaveCall() }
                var captured = ""
                let flow = try execute(body, scope: scope, into: &captured)
                var value = Value.string(captured)
                for filter in filters {
                    value = try applyFilter(filter.name, value, arguments: filter.arguments, keywords: filter.keywords, scope: scope, position: filter.position)
                }
                try write(try printable(value, at: filters.first?.position ?? SourcePosition(line: 1, column: 1)), into: &out,
                          at: filters.first?.position ?? SourcePosition(line: 1, column: 1))
                if case .normal = flow {} else { return flow }
            case let .generation(body):
                let flow = try execute(body, scope: scope, into: &out)
                if case .normal = flow {} else { return flow }
            case let .breakLoop(position):
                guard loopDepth > 0 else { throw TemplateError(position: position, message: "'break' outside of a loop") }
                return .breakLoop
            case let .continueLoop(position):
                guard loopDepth > 0 else { throw TemplateError(position: position, message: "'continue' outside of a loop") }
                return .continueLoop
            }
        }
        return .normal
    }

    private func assign(_ target: AssignTarget, _ value: Value, scope: Scope, position: SourcePosition) throws {
        switch target {
        case let .name(name):
            scope.variables[name] = value
        case let .tuple(names):
            let items = try unpack(value, count: names.count, position: position)
            for (name, item) in zip(names, items) { scope.variables[name] = item }
        case let .attribute(object, attribute):
            guard case let .namespace(namespace)? = scope.lookup(object) else {
                throw TemplateError(position: position, message: "can't assign to attribute '\(attribute)' of '\(object)': it is not a namespace() object")
            }
            if attribute.hasPrefix("_") {
                throw TemplateError(position: position, message: "chat templates cannot store underscore-prefixed attributes on a namespace ('\(attribute)')")
            }
            namespace.attributes[attribute] = value
            do { try Builtins.checkNesting(.namespace(namespace)) } catch let error as TemplateRuntimeError {
                namespace.attributes[attribute] = Value.none
                throw TemplateError(position: position, message: error.message)
            }
        }
    }

    private func unpack(_ value: Value, count: Int, position: SourcePosition) throws -> [Value] {
        let items: [Value]
        do { items = try Builtins.iterate(value) } catch let error as TemplateRuntimeError {
            throw TemplateError(position: position, message: error.message)
        }
        guard items.count == count else {
            throw TemplateError(position: position, message: items.count < count ? "not enough values to unpack (expected \(count), got \(items.count))" : "too many values to unpack (expected \(count))")
        }
        return items
    }

    private func executeFor(target: AssignTarget, iterable: Expr, filter: Expr?, body: [Node], otherwise: [Node],
                            position: SourcePosition, scope: Scope, into out: inout String) throws {
        let sequence = try evaluate(iterable, scope: scope)
        var items: [Value]
        do { items = try Builtins.iterate(sequence) } catch let error as TemplateRuntimeError {
            throw TemplateError(position: iterable.position, message: error.message)
        }
        if let filter {
            var kept: [Value] = []
            for item in items {
                let filterScope = Scope(parent: scope)
                try assign(target, item, scope: filterScope, position: position)
                if try evaluate(filter, scope: filterScope).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try execute(otherwise, scope: scope, into: &out)
            return
        }
        loopDepth += 1
        defer { loopDepth -= 1 }
        let length = items.count
        // The loop variable's keys are hashed once per loop, in its four shapes (previtem and nextitem exist only
        // where there is such an item); each iteration copies a shape and sets values by position, so a hostile
        // template's 200,000 iterations stay well under a second.
        func shape(previous: Bool, next: Bool) -> OrderedDict {
            var loop = OrderedDict()
            for key in ["index", "index0", "revindex", "revindex0", "first", "last"] { loop[key] = Value.none }
            loop["length"] = .int(length)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            if previous { loop["previtem"] = Value.none }
            if next { loop["nextitem"] = Value.none }
            loop["cycle"] = Value.none
            return loop
        }
        let shapes = [shape(previous: false, next: false), shape(previous: false, next: true),
                      shape(previous: true, next: false), shape(previous: true, next: true)]
        for (index, item) in items.enumerated() {
            iterations += 1
            try step(at: position)
            guard iterations <= limits.maximumIterations else {
                throw TemplateError(position: position, message: "too many loop iterations (more than \(limits.maximumIterations))")
            }
            let iterationScope = Scope(parent: scope)
            let hasPrevious = index > 0, hasNext = index + 1 < length
            var loop = shapes[(hasPrevious ? 2 : 0) + (hasNext ? 1 : 0)]
            loop.replaceValue(at: 0, with: .int(index + 1))
            loop.replaceValue(at: 1, with: .int(index))
            loop.replaceValue(at: 2, with: .int(length - index))
            loop.replaceValue(at: 3, with: .int(length - index - 1))
            loop.replaceValue(at: 4, with: .bool(index == 0))
            loop.replaceValue(at: 5, with: .bool(index == length - 1))
            var next = 9
            if hasPrevious {
                loop.replaceValue(at: next, with: items[index - 1])
                next += 1
            }
            if hasNext {
                loop.replaceValue(at: next, with: items[index + 1])
                next += 1
            }
            loop.replaceValue(at: next, with: .callable(Callable(name: "loop.cycle") { _, arguments in
                guard !arguments.positional.isEmpty else { throw TemplateRuntimeError("no items for cycling given") }
                return arguments.positional[index % arguments.positional.count]
            }))
            iterationScope.variables["loop"] = .dict(loop)
            try assign(target, item, scope: iterationScope, position: position)
            let flow = try execute(body, scope: iterationScope, into: &out)
            if case .breakLoop = flow { break }
        }
    }

    private func makeMacro(name: String, parameters: [MacroParameter], body: [Node], definingScope: Scope, position: SourcePosition) -> Callable {
        Callable(name: name) { interpreter, arguments in
            guard arguments.positional.count <= parameters.count else {
                throw TemplateRuntimeError("macro '\(name)' takes not more than \(parameters.count) argument(s)")
            }
            for keyword in arguments.keyword where !parameters.contains(where: { $0.name == keyword.0 }) {
                throw TemplateRuntimeError("macro '\(name)' takes no keyword argument '\(keyword.0)'")
            }
            try interpreter.enterCall(at: position)
            defer { interpreter.leaveCall() }
            let callScope = Scope(parent: definingScope)
            for (index, parameter) in parameters.enumerated() {
                if index < arguments.positional.count {
                    callScope.variables[parameter.name] = arguments.positional[index]
                } else if let value = arguments.keywordValue(parameter.name) {
                    callScope.variables[parameter.name] = value
                } else if let defaultValue = parameter.defaultValue {
                    callScope.variables[parameter.name] = try interpreter.evaluate(defaultValue, scope: callScope)
                } else {
                    callScope.variables[parameter.name] = .undefined(hint: "parameter '\(parameter.name)' was not provided")
                }
            }
            let savedLoopDepth = interpreter.loopDepth
            interpreter.loopDepth = 0
            defer { interpreter.loopDepth = savedLoopDepth }
            var out = ""
            _ = try interpreter.execute(body, scope: callScope, into: &out)
            return .string(out)
        }
    }

    // MARK: expressions

    func evaluate(_ expr: Expr, scope: Scope) throws -> Value {
        try step(at: expr.position)
        do {
            let value = try evaluateUnwrapped(expr, scope: scope)
            switch expr.kind {
            case .binary, .filter, .call: try account(value, at: expr.position)
            default: break
            }
            return value
        } catch let error as TemplateRuntimeError {
            throw TemplateError(position: expr.position, message: error.message)
        }
    }

    private func evaluateUnwrapped(_ expr: Expr, scope: Scope) throws -> Value {
        switch expr.kind {
        case .none: return .none
        case let .bool(flag): return .bool(flag)
        case let .int(number): return .int(number)
        case let .float(number): return .float(number)
        case let .string(text): return .string(text)
        case let .name(name):
            if let value = scope.lookup(name) { return value }
            return .undefined(hint: "'\(name)' is undefined")
        case let .list(items):
            let value = Value.list(try items.map { try evaluate($0, scope: scope) })
            try Builtins.checkNesting(value)
            return value
        case let .tuple(items):
            let value = Value.tuple(try items.map { try evaluate($0, scope: scope) })
            try Builtins.checkNesting(value)
            return value
        case let .dict(items):
            var dict = OrderedDict()
            for item in items {
                let key = try evaluate(item.key, scope: scope)
                let value = try evaluate(item.value, scope: scope)
                do { try dict.set(key, value) } catch let error as TemplateRuntimeError {
                    throw TemplateError(position: item.key.position, message: error.message)
                }
            }
            try Builtins.checkNesting(.dict(dict))
            return .dict(dict)
        case let .attribute(object, name):
            return try Builtins.attribute(try evaluate(object, scope: scope), name)
        case let .index(object, index):
            return try Builtins.item(try evaluate(object, scope: scope), try evaluate(index, scope: scope))
        case let .slice(object, start, stop, step):
            let value = try evaluate(object, scope: scope)
            let startValue = try start.map { try evaluate($0, scope: scope) }
            let stopValue = try stop.map { try evaluate($0, scope: scope) }
            let stepValue = try step.map { try evaluate($0, scope: scope) }
            return try Builtins.slice(value, startValue, stopValue, stepValue)
        case let .call(callee, arguments, keywords):
            let function = try evaluate(callee, scope: scope)
            let evaluated = try evaluateArguments(arguments, keywords, scope: scope)
            return try call(function, evaluated)
        case let .filter(value, name, arguments, keywords):
            return try applyFilter(name, try evaluate(value, scope: scope), arguments: arguments, keywords: keywords, scope: scope, position: expr.position)
        case let .test(value, name, arguments, keywords, negated):
            let subject = try evaluate(value, scope: scope)
            let evaluated = try evaluateArguments(arguments, keywords, scope: scope)
            let result = try Builtins.test(name, subject, evaluated, interpreter: self)
            return .bool(negated ? !result : result)
        case let .not(value):
            return .bool(!(try evaluate(value, scope: scope)).truthy)
        case let .negate(value):
            return try Builtins.negate(try evaluate(value, scope: scope))
        case let .plus(value):
            let operand = try evaluate(value, scope: scope)
            switch operand {
            case .int, .float: return operand
            case let .bool(flag): return .int(flag ? 1 : 0)
            default: throw Builtins.operandError("unary +", operand)
            }
        case let .binary(op, left, right):
            let leftValue = try evaluate(left, scope: scope)
            let rightValue = try evaluate(right, scope: scope)
            return try Builtins.binary(op, leftValue, rightValue)
        case let .and(left, right):
            let leftValue = try evaluate(left, scope: scope)
            return leftValue.truthy ? try evaluate(right, scope: scope) : leftValue
        case let .or(left, right):
            let leftValue = try evaluate(left, scope: scope)
            return leftValue.truthy ? leftValue : try evaluate(right, scope: scope)
        case let .compare(first, operations):
            var left = try evaluate(first, scope: scope)
            for operation in operations {
                let right = try evaluate(operation.operand, scope: scope)
                guard try Builtins.compare(operation.op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .conditional(then, condition, otherwise):
            if try evaluate(condition, scope: scope).truthy { return try evaluate(then, scope: scope) }
            if let otherwise { return try evaluate(otherwise, scope: scope) }
            return .undefined(hint: "the inline if-expression evaluated to false and has no else section")
        }
    }

    func evaluateArguments(_ arguments: [Expr], _ keywords: [KeywordArgument], scope: Scope) throws -> Arguments {
        Arguments(positional: try arguments.map { try evaluate($0, scope: scope).plain },
                  keyword: try keywords.map { ($0.name, try evaluate($0.value, scope: scope).plain) })
    }

    func call(_ function: Value, _ arguments: Arguments) throws -> Value {
        switch function {
        case let .callable(callable):
            return try callable.body(self, arguments)
        case let .unsafe(message):
            throw TemplateRuntimeError("SecurityError: \(message)")
        case let .undefined(hint):
            throw TemplateRuntimeError(hint)
        default:
            throw TemplateRuntimeError("'\(function.typeName)' object is not callable")
        }
    }

    func applyFilter(_ name: String, _ value: Value, arguments: [Expr], keywords: [KeywordArgument], scope: Scope, position: SourcePosition) throws -> Value {
        let evaluated = try evaluateArguments(arguments, keywords, scope: scope)
        do {
            return try Builtins.filter(name, value, evaluated, interpreter: self)
        } catch let error as TemplateRuntimeError {
            throw TemplateError(position: position, message: error.message)
        }
    }
}
