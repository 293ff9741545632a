import Foundation

/// A number produced by evaluating a `MathExpression`: exact while every step stays rational, a `Double` after
/// the first irrational step (π, a square root that is not a perfect square, a variable's value) or on overflow.
public enum MathValue: Sendable, Equatable {
    /// An exact fraction.
    case exact(Rational)
    /// A floating-point approximation (may be ±infinity, never NaN).
    case approximate(Double)

    /// The value as a `Double`.
    public var doubleValue: Double {
        switch self {
        case .exact(let value): return value.doubleValue
        case .approximate(let value): return value
        }
    }

    /// The value as an exact rational, when it is one.
    public var rational: Rational? {
        if case .exact(let value) = self { return value }
        return nil
    }

    /// A value from a `Double`, or nil for NaN (an undefined result).
    static func approximate(checking value: Double) -> MathValue? {
        value.isNaN ? nil : .approximate(value)
    }
}

/// A constant name in a math expression.
public enum MathConstant: String, Sendable {
    /// π.
    case pi
    /// ∞ (`\infty`).
    case infinity
}

/// A one-argument function in a math expression.
public enum MathFunction: String, Sendable, CaseIterable {
    /// Trigonometric, inverse trigonometric and hyperbolic functions (radians).
    case sin, cos, tan, sec, csc, cot, arcsin, arccos, arctan, sinh, cosh, tanh
    /// Natural logarithm (`\ln`, and `\log` without a base, as sympy's LaTeX parser reads it).
    case ln
    /// e^x.
    case exp
    /// Absolute value (`|x|`, `\lvert x \rvert`).
    case abs

    func apply(_ x: Double) -> Double {
        switch self {
        case .sin: return Foundation.sin(x)
        case .cos: return Foundation.cos(x)
        case .tan: return Foundation.tan(x)
        case .sec: return 1 / Foundation.cos(x)
        case .csc: return 1 / Foundation.sin(x)
        case .cot: return 1 / Foundation.tan(x)
        case .arcsin: return Foundation.asin(x)
        case .arccos: return Foundation.acos(x)
        case .arctan: return Foundation.atan(x)
        case .sinh: return Foundation.sinh(x)
        case .cosh: return Foundation.cosh(x)
        case .tanh: return Foundation.tanh(x)
        case .ln: return x > 0 ? Foundation.log(x) : .nan
        case .exp: return Foundation.exp(x)
        case .abs: return Swift.abs(x)
        }
    }
}

/// A binary operator in a math expression.
public enum MathOperator: String, Sendable {
    /// The four arithmetic operations and exponentiation.
    case add = "+", subtract = "-", multiply = "*", divide = "/", power = "^"
}

/// An expression tree parsed from a LaTeX or plain-text answer (see `MathParser`).
public indirect enum MathExpression: Sendable, Equatable {
    /// An exact number literal.
    case number(Rational)
    /// A number literal too long to hold exactly.
    case approximateNumber(Double)
    /// π or ∞.
    case constant(MathConstant)
    /// A variable such as `x`, `x_1` or `theta`.
    case variable(String)
    /// `-x`.
    case negate(MathExpression)
    /// `a op b`.
    case binary(MathOperator, MathExpression, MathExpression)
    /// `f(x)`.
    case function(MathFunction, MathExpression)
    /// `\sqrt[index]{radicand}` (index 2 for a square root).
    case root(MathExpression, index: MathExpression)
    /// `\log_{base} x`.
    case logarithm(base: MathExpression, MathExpression)
    /// `n!`.
    case factorial(MathExpression)
    /// `\binom{n}{k}`.
    case binomial(MathExpression, MathExpression)

    /// Every variable name the expression uses.
    public var variables: Set<String> {
        switch self {
        case .number, .approximateNumber, .constant: return []
        case .variable(let name): return [name]
        case .negate(let x), .function(_, let x), .factorial(let x): return x.variables
        case .binary(_, let a, let b), .root(let a, let b), .logarithm(let a, let b), .binomial(let a, let b):
            return a.variables.union(b.variables)
        }
    }

    /// The value with `values` substituted for the variables; nil when a variable has no value or the result is
    /// undefined (division by zero, the square root of a negative number, ...).
    public func evaluate(_ values: [String: Double] = [:]) -> MathValue? {
        switch self {
        case .number(let value): return .exact(value)
        case .approximateNumber(let value): return .approximate(value)
        case .constant(.pi): return .approximate(Double.pi)
        case .constant(.infinity): return .approximate(Double.infinity)
        case .variable(let name): return values[name].map { .approximate($0) }
        case .negate(let x):
            guard let value = x.evaluate(values) else { return nil }
            if case .exact(let r) = value { return .exact(-r) }
            return .approximate(-value.doubleValue)
        case let .binary(op, a, b):
            guard let left = a.evaluate(values), let right = b.evaluate(values) else { return nil }
            return MathExpression.apply(op, left, right)
        case let .function(function, x):
            guard let value = x.evaluate(values) else { return nil }
            if function == .abs, case .exact(let r) = value { return .exact(r.numerator < 0 ? -r : r) }
            if value.rational?.numerator == 0, [.sin, .tan, .arcsin, .arctan, .sinh, .tanh].contains(function) { return .exact(Rational.zero) }
            return .approximate(checking: function.apply(value.doubleValue))
        case let .root(radicand, index):
            guard let x = radicand.evaluate(values), let n = index.evaluate(values) else { return nil }
            if let r = x.rational, let k = n.rational, k.isInteger, k.numerator >= 1, k.numerator <= 64, let exact = r.root(Int(k.numerator)) {
                return .exact(exact)
            }
            let degree = n.doubleValue
            let value = x.doubleValue
            // Odd roots of negative numbers are real: \sqrt[3]{-8} = -2.
            if value < 0, let k = n.rational, k.isInteger, k.numerator % 2 != 0 {
                return .approximate(-Foundation.pow(-value, 1 / degree))
            }
            return .approximate(checking: Foundation.pow(value, 1 / degree))
        case let .logarithm(base, x):
            guard let b = base.evaluate(values), let v = x.evaluate(values),
                  b.doubleValue > 0, b.doubleValue != 1, v.doubleValue > 0 else { return nil }
            let result = Foundation.log(v.doubleValue) / Foundation.log(b.doubleValue)
            // Exact when an integer power of a rational base gives the rational argument: log_2 8 = 3.
            let whole = result.rounded()
            if Swift.abs(whole) <= 4096, Swift.abs(result - whole) < 1e-9, let rb = b.rational, let rv = v.rational,
               rb.power(Int(whole)) == rv, let exact = Rational(Int64(whole)) {
                return .exact(exact)
            }
            return .approximate(checking: result)
        case .factorial(let x):
            guard let value = x.evaluate(values), let n = value.rational, n.isInteger, n.numerator >= 0 else { return nil }
            if n.numerator <= 20 {
                var product: Int64 = 1
                if n.numerator > 1 { for k in 2...n.numerator { product *= k } }
                return Rational(product).map { .exact($0) }
            }
            return .approximate(checking: n.numerator <= 170 ? Foundation.tgamma(Double(n.numerator) + 1) : .infinity)
        case let .binomial(top, bottom):
            guard let n = top.evaluate(values)?.rational, let k = bottom.evaluate(values)?.rational,
                  n.isInteger, k.isInteger, n.numerator >= 0 else { return nil }
            guard k.numerator >= 0, k.numerator <= n.numerator else { return .exact(Rational.zero) }
            var result = Rational.one
            let kk = min(k.numerator, n.numerator - k.numerator)
            var i: Int64 = 0
            while i < kk {
                guard let step = Rational(n.numerator - i, i + 1), let next = result * step else {
                    return .approximate(checking: Foundation.exp(Foundation.lgamma(Double(n.numerator) + 1) - Foundation.lgamma(Double(k.numerator) + 1) - Foundation.lgamma(Double(n.numerator - k.numerator) + 1)))
                }
                result = next
                i += 1
            }
            return .exact(result)
        }
    }

    /// One binary operation, exact when both sides are exact and the result is rational.
    static func apply(_ op: MathOperator, _ left: MathValue, _ right: MathValue) -> MathValue? {
        if let a = left.rational, let b = right.rational {
            switch op {
            case .add: if let r = a + b { return .exact(r) }
            case .subtract: if let r = a + -b { return .exact(r) }
            case .multiply: if let r = a * b { return .exact(r) }
            case .divide:
                guard b.numerator != 0 else { return nil }
                if let inverse = b.reciprocal, let r = a * inverse { return .exact(r) }
            case .power:
                if a.numerator == 0 && b.numerator <= 0 { return nil }
                // p/q exponents: exact when the q-th root is (8^{2/3} = 4).
                if b.denominator <= 64, let base = b.isInteger ? a : a.root(Int(b.denominator)),
                   b.numerator.magnitude <= 4096, let r = base.power(Int(b.numerator)) {
                    return .exact(r)
                }
            }
        }
        let a = left.doubleValue, b = right.doubleValue
        switch op {
        case .add: return .approximate(checking: a + b)
        case .subtract: return .approximate(checking: a - b)
        case .multiply: return .approximate(checking: a * b)
        case .divide: return b == 0 ? nil : .approximate(checking: a / b)
        case .power:
            // A negative base with an odd-denominator rational exponent: (-8)^{1/3} = -2.
            if a < 0, let q = right.rational, q.denominator % 2 == 1 {
                let magnitude = Foundation.pow(-a, b)
                return .approximate(q.numerator % 2 == 0 ? magnitude : -magnitude)
            }
            return .approximate(checking: Foundation.pow(a, b))
        }
    }
}
