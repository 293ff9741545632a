/// Parses one math expression written in LaTeX (`\frac{1}{2}`, `2\sqrt{3}`, `\pi r^2`, `\binom{5}{2}`) or plain
/// text (`1/2`, `2*sqrt(3)`, `x**2`) into a `MathExpression`.
///
/// Supported: decimal numbers; single-letter variables (implicit multiplication `2xy`), subscripted variables
/// (`x_1`, `a_{n}`) and Greek letters; `+ - * / ^ **`, `\cdot \times \div`, implicit multiplication; `( )`, `[ ]`
/// and `{ }` as grouping; `|x|`; `n!`; `\frac \dfrac \tfrac` (braced or single-character arguments: `\frac12`),
/// `\sqrt`, `\sqrt[n]`, `\binom`; `\pi`, `\infty`; trigonometric and hyperbolic functions, `\ln`, `\log`, `\log_b`,
/// `\exp` (LaTeX or plain names); `\text{...}`/`\mathrm{...}` around an expression. A multi-digit exponent without
/// braces (`2^10`) is read as the whole number. Anything else (relations, commas, unknown commands) makes `parse`
/// return nil, so callers fall back to comparing text.
public struct MathParser {
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var depth = 0

    /// Deepest nesting accepted; deeper input is rejected rather than risking the stack.
    private static let maxDepth = 64
    /// Longest input accepted.
    public static let maxLength = 2000

    private static let functionNames: [String: MathFunction] = {
        var names: [String: MathFunction] = [:]
        for function in MathFunction.allCases where function != .abs { names[function.rawValue] = function }
        names["log"] = .ln
        return names
    }()
    private static let greekLetters: Set<String> = [
        "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
        "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega",
        "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
    ]
    /// Commands that only format their argument.
    private static let wrappers: Set<String> = ["text", "textbf", "mathrm", "mathbf", "mathit", "boldsymbol", "operatorname", "displaystyle"]

    /// Parses `text`; nil when it is not a single expression this parser understands.
    public static func parse(_ text: String) -> MathExpression? {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count <= maxLength else { return nil }
        var parser = MathParser(scalars: scalars)
        guard let expression = parser.parseSum() else { return nil }
        parser.skipSpaces()
        return parser.index == scalars.count ? expression : nil
    }

    private init(scalars: [Unicode.Scalar]) {
        self.scalars = scalars
    }

    // MARK: Grammar

    /// sum := product (('+' | '-') product)*
    private mutating func parseSum() -> MathExpression? {
        guard var result = parseProduct() else { return nil }
        while true {
            skipSpaces()
            guard let c = peek(), c == "+" || c == "-" else { return result }
            index += 1
            guard let next = parseProduct() else { return nil }
            result = .binary(c == "+" ? .add : .subtract, result, next)
        }
    }

    /// product := unary (('*' | '/' | \cdot | \times | \div | implicit) unary)*
    private mutating func parseProduct() -> MathExpression? {
        guard var result = parseUnary() else { return nil }
        while true {
            skipSpaces()
            let op: MathOperator
            if peek() == "*" && peek(1) != "*" {
                index += 1
                op = .multiply
            } else if peek() == "/" {
                index += 1
                op = .divide
            } else if let command = peekCommand(), ["cdot", "times", "ast"].contains(command) {
                index += command.unicodeScalars.count + 1
                op = .multiply
            } else if peekCommand() == "div" {
                index += 4
                op = .divide
            } else if startsImplicitFactor() {
                op = .multiply
            } else {
                return result
            }
            guard let next = parseUnary() else { return nil }
            result = .binary(op, result, next)
        }
    }

    /// unary := ('-' | '+') unary | power
    private mutating func parseUnary() -> MathExpression? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= MathParser.maxDepth else { return nil }
        skipSpaces()
        if peek() == "-" {
            index += 1
            return parseUnary().map { .negate($0) }
        }
        if peek() == "+" {
            index += 1
            return parseUnary()
        }
        return parsePower()
    }

    /// power := postfix (('^' | '**') exponent)?
    private mutating func parsePower() -> MathExpression? {
        guard let base = parsePostfix() else { return nil }
        return parseExponent(of: base)
    }

    /// Applies a following `^e` / `**e` to `base`, if there is one.
    private mutating func parseExponent(of base: MathExpression) -> MathExpression? {
        skipSpaces()
        if peek() == "^" {
            index += 1
        } else if peek() == "*" && peek(1) == "*" {
            index += 2
        } else {
            return base
        }
        skipSpaces()
        let exponent: MathExpression?
        if peek() == "{" || peek() == "(" {
            exponent = parseAtom()
        } else if peek() == "-" {
            index += 1
            exponent = parsePostfix().map { .negate($0) }
        } else {
            exponent = parsePostfix()
        }
        return exponent.map { .binary(.power, base, $0) }
    }

    /// postfix := atom '!'*
    private mutating func parsePostfix() -> MathExpression? {
        guard var result = parseAtom() else { return nil }
        while peek() == "!" {
            index += 1
            result = .factorial(result)
        }
        return result
    }

    private mutating func parseAtom() -> MathExpression? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= MathParser.maxDepth else { return nil }
        skipSpaces()
        guard let c = peek() else { return nil }
        switch c {
        case "0"..."9", ".":
            return parseNumber()
        case "(":
            return parseGroup(closing: ")")
        case "[":
            return parseGroup(closing: "]")
        case "{":
            return parseGroup(closing: "}")
        case "|":
            return parseGroup(closing: "|").map { .function(.abs, $0) }
        case "\\":
            return parseCommand()
        case "π":
            index += 1
            return .constant(.pi)
        case "∞":
            index += 1
            return .constant(.infinity)
        case "√":
            index += 1
            return parseArgument().map { .root($0, index: .number(Rational.two)) }
        case _ where c.properties.isAlphabetic && c.isASCII:
            return parseWord()
        default:
            return nil
        }
    }

    /// A decimal literal (digits with at most one '.').
    private mutating func parseNumber() -> MathExpression? {
        let start = index
        var sawPoint = false
        while let c = peek(), ("0"..."9").contains(c) || (c == "." && !sawPoint && peek(1).map { ("0"..."9").contains($0) } ?? false) {
            if c == "." { sawPoint = true }
            index += 1
        }
        guard index > start else { return nil }
        let text = String(String.UnicodeScalarView(scalars[start..<index]))
        if let exact = Rational(decimal: Substring(text)) { return .number(exact) }
        return Double(text).map { .approximateNumber($0) }
    }

    /// `( expr )` and the like; `|x|` too.
    private mutating func parseGroup(closing: Unicode.Scalar) -> MathExpression? {
        index += 1
        guard let inner = parseSum() else { return nil }
        skipSpaces()
        guard peek() == closing else { return nil }
        index += 1
        return inner
    }

    /// Plain-text names (`sqrt`, `pi`, `sin`, `infinity`) or a single-letter variable (with an optional subscript).
    private mutating func parseWord() -> MathExpression? {
        var end = index
        while end < scalars.count, scalars[end].isASCII, scalars[end].properties.isAlphabetic { end += 1 }
        let word = String(String.UnicodeScalarView(scalars[index..<end]))
        guard let name = MathParser.knownName(startingWord: word) else {
            let letter = String(Character(scalars[index]))
            index += 1
            return parseSubscript(on: letter)
        }
        index += name.unicodeScalars.count
        switch name {
        case "pi": return .constant(.pi)
        case "infinity", "infty": return .constant(.infinity)
        case "sqrt": return parseArgument().map { .root($0, index: .number(Rational.two)) }
        default: return MathParser.functionNames[name].flatMap { parseFunctionArgument($0) }
        }
    }

    /// The plain-text name `word` is or starts with (`sinx` is sin x); two-letter names must match the whole word,
    /// so `pix` stays p·i·x.
    private static func knownName(startingWord word: String) -> String? {
        let names = ["infinity", "arcsin", "arccos", "arctan", "infty", "sqrt", "sinh", "cosh", "tanh", "sin", "cos",
                     "tan", "sec", "csc", "cot", "log", "exp", "pi", "ln"]
        return names.first { word == $0 || ($0.count >= 3 && word.hasPrefix($0)) }
    }

    /// `name` with an optional `_x` or `_{...}` subscript, as one variable.
    private mutating func parseSubscript(on name: String) -> MathExpression? {
        guard peek() == "_" else { return .variable(name) }
        index += 1
        if peek() == "{" {
            let start = index + 1
            guard let close = matchingBrace(from: index) else { return nil }
            index = close + 1
            return .variable(name + "_" + String(String.UnicodeScalarView(scalars[start..<close])))
        }
        guard let c = peek(), c.properties.isAlphabetic || ("0"..."9").contains(c) else { return nil }
        index += 1
        return .variable(name + "_" + String(c))
    }

    /// `\command ...`.
    private mutating func parseCommand() -> MathExpression? {
        guard let name = peekCommand() else { return nil }
        index += name.unicodeScalars.count + 1
        switch name {
        case "frac", "dfrac", "tfrac", "cfrac":
            guard let top = parseArgument(), let bottom = parseArgument() else { return nil }
            return .binary(.divide, top, bottom)
        case "binom", "dbinom", "tbinom":
            guard let top = parseArgument(), let bottom = parseArgument() else { return nil }
            return .binomial(top, bottom)
        case "sqrt":
            skipSpaces()
            var degree = MathExpression.number(Rational.two)
            if peek() == "[" {
                guard let inner = parseGroup(closing: "]") else { return nil }
                degree = inner
            }
            return parseArgument().map { .root($0, index: degree) }
        case "pi":
            return .constant(.pi)
        case "infty":
            return .constant(.infinity)
        case "log":
            skipSpaces()
            if peek() == "_" {
                index += 1
                guard let base = parseArgument(), let argument = parseFunctionOperand() else { return nil }
                return .logarithm(base: base, argument)
            }
            return parseFunctionArgument(.ln)
        case "lvert", "vert":
            guard let inner = parseSum() else { return nil }
            skipSpaces()
            guard let closing = peekCommand(), closing == "rvert" || closing == "vert" else { return nil }
            index += closing.unicodeScalars.count + 1
            return .function(.abs, inner)
        case _ where MathParser.wrappers.contains(name):
            return parseArgument()
        case _ where MathParser.greekLetters.contains(name):
            return parseSubscript(on: name)
        default:
            guard let function = MathParser.functionNames[name] else { return nil }
            return parseFunctionArgument(function)
        }
    }

    /// A function's argument, with an optional power written before it (`\sin^2 x`).
    private mutating func parseFunctionArgument(_ function: MathFunction) -> MathExpression? {
        skipSpaces()
        if peek() == "^" {
            index += 1
            guard let exponent = parseArgument(), let argument = parseFunctionOperand() else { return nil }
            return .binary(.power, .function(function, argument), exponent)
        }
        return parseFunctionOperand().map { .function(function, $0) }
    }

    /// `(x)`, `{x}` or a single factor with its power (`\sin 2x` reads as sin(2)·x, as sympy does).
    private mutating func parseFunctionOperand() -> MathExpression? {
        skipSpaces()
        return parsePower()
    }

    /// A LaTeX macro argument: a braced group, one character (`\frac12`) or one command (`\frac\pi2`); or a
    /// parenthesized group (plain-text `sqrt(2)`).
    private mutating func parseArgument() -> MathExpression? {
        skipSpaces()
        guard let c = peek() else { return nil }
        if c == "{" { return parseGroup(closing: "}") }
        if c == "(" { return parseGroup(closing: ")") }  // plain text: sqrt(2)
        if c == "\\" { return parseCommand() }
        index += 1
        if ("0"..."9").contains(c) { return Rational(Int64(c.value - 48)).map { .number($0) } }
        if c.isASCII && c.properties.isAlphabetic { return .variable(String(c)) }
        return nil
    }

    // MARK: Scanning

    private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    private mutating func skipSpaces() {
        while let c = peek() {
            if c == " " || c == "\t" || c == "\n" || c == "~" {
                index += 1
            } else if c == "\\", let next = peek(1), next == "," || next == ";" || next == ":" || next == "!" || next == " " {
                index += 2
            } else if let command = peekCommand(), ["left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr", "quad", "qquad"].contains(command) {
                index += command.unicodeScalars.count + 1
                if command == "left" || command == "right", peek() == "." { index += 1 }
            } else {
                return
            }
        }
    }

    /// The letters of a `\command` starting at the cursor, or nil when the cursor is not on one.
    private func peekCommand() -> String? {
        guard peek() == "\\" else { return nil }
        var end = index + 1
        while end < scalars.count, scalars[end].isASCII, scalars[end].properties.isAlphabetic { end += 1 }
        guard end > index + 1 else { return nil }
        return String(String.UnicodeScalarView(scalars[(index + 1)..<end]))
    }

    /// The index of the `}` matching the `{` at `open`.
    private func matchingBrace(from open: Int) -> Int? {
        var level = 0
        var position = open
        while position < scalars.count {
            if scalars[position] == "{" { level += 1 }
            if scalars[position] == "}" { level -= 1; if level == 0 { return position } }
            position += 1
        }
        return nil
    }

    /// True when the next character can begin a factor multiplied implicitly (`2x`, `3(x+1)`, `2\pi`).
    private func startsImplicitFactor() -> Bool {
        guard let c = peek() else { return false }
        if ("0"..."9").contains(c) || c == "(" || c == "{" || c == "π" || c == "." { return true }
        if c.isASCII && c.properties.isAlphabetic { return true }
        if let command = peekCommand() {
            return !["cdot", "times", "div", "ast", "le", "ge", "ne", "leq", "geq", "neq", "lt", "gt", "in", "cup", "cap",
                     "to", "pm", "mp", "rvert", "vert", "right", "end", "approx", "equiv", "quad", "qquad"].contains(command)
        }
        return false
    }
}
