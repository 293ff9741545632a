import Foundation

/// An exact fraction of 64-bit integers, always in lowest terms with a positive denominator. Arithmetic returns nil
/// on overflow, so callers fall back to floating point instead of trapping.
public struct Rational: Hashable, Sendable, CustomStringConvertible {
    /// The numerator (carries the sign).
    public let numerator: Int64
    /// The denominator (always > 0).
    public let denominator: Int64

    /// 0.
    public static let zero = Rational(unchecked: 0, 1)
    /// 1.
    public static let one = Rational(unchecked: 1, 1)
    /// 2.
    public static let two = Rational(unchecked: 2, 1)

    /// `numerator / denominator` in lowest terms; nil when the denominator is 0 or a value is `Int64.min`.
    public init?(_ numerator: Int64, _ denominator: Int64 = 1) {
        guard denominator != 0, numerator != .min, denominator != .min else { return nil }
        let divisor = Rational.gcd(numerator.magnitude, denominator.magnitude)
        let sign: Int64 = denominator < 0 ? -1 : 1
        self.numerator = sign * numerator / Int64(divisor)
        self.denominator = sign * denominator / Int64(divisor)
    }

    /// The exact value of a decimal literal such as `12`, `-0.375` or `.5`; nil when it is not one or needs more
    /// than 18 significant digits.
    public init?(decimal text: Substring) {
        var digits = text
        var negative = false
        if let first = digits.first, first == "-" || first == "+" {
            negative = first == "-"
            digits = digits.dropFirst()
        }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, parts.count <= 2, !(whole.isEmpty && parts.count == 1) else { return nil }
        let fraction = parts.count == 2 ? parts[1] : ""
        guard !(whole.isEmpty && fraction.isEmpty), (whole + fraction).allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let significant = (whole + fraction).drop(while: { $0 == "0" })
        guard significant.count <= 18, fraction.count <= 18 else { return nil }
        let value = Int64(significant) ?? 0
        var scale: Int64 = 1
        for _ in 0..<fraction.count { scale *= 10 }
        self.init(negative ? -value : value, scale)
    }

    /// The nearest `Double`.
    public var doubleValue: Double { Double(numerator) / Double(denominator) }

    /// True when the value is a whole number.
    public var isInteger: Bool { denominator == 1 }

    /// `n` or `n/d`.
    public var description: String { denominator == 1 ? "\(numerator)" : "\(numerator)/\(denominator)" }

    /// The sum, or nil on overflow.
    public static func + (a: Rational, b: Rational) -> Rational? {
        guard let left = multiply(a.numerator, b.denominator), let right = multiply(b.numerator, a.denominator),
              let denominator = multiply(a.denominator, b.denominator) else { return nil }
        let (sum, overflow) = left.addingReportingOverflow(right)
        return overflow ? nil : Rational(sum, denominator)
    }

    /// The negation.
    public static prefix func - (a: Rational) -> Rational {
        // numerator is never Int64.min, so its negation cannot overflow.
        Rational(unchecked: -a.numerator, a.denominator)
    }

    /// The product, or nil on overflow.
    public static func * (a: Rational, b: Rational) -> Rational? {
        // Cross-reduce first so products of fractions in lowest terms overflow as late as possible.
        let g1 = Int64(gcd(a.numerator.magnitude, b.denominator.magnitude))
        let g2 = Int64(gcd(b.numerator.magnitude, a.denominator.magnitude))
        guard let numerator = multiply(a.numerator / g1, b.numerator / g2),
              let denominator = multiply(a.denominator / g2, b.denominator / g1) else { return nil }
        return Rational(numerator, denominator)
    }

    /// The reciprocal, or nil for zero.
    public var reciprocal: Rational? { Rational(denominator, numerator) }

    /// `self` raised to an integer power, or nil on overflow, for 0^negative, or for |exponent| > 4096.
    public func power(_ exponent: Int) -> Rational? {
        guard exponent.magnitude <= 4096 else { return nil }
        var result = Rational.one
        var base = exponent < 0 ? reciprocal : self
        var remaining = exponent.magnitude
        while remaining > 0, let current = base {
            if remaining & 1 == 1 { guard let next = result * current else { return nil }; result = next }
            remaining >>= 1
            if remaining > 0 { base = current * current }
        }
        return base == nil ? nil : result
    }

    /// The exact `n`-th root when numerator and denominator are perfect `n`-th powers (n >= 1), else nil.
    public func root(_ n: Int) -> Rational? {
        guard n >= 1 else { return nil }
        if numerator < 0 && n % 2 == 0 { return nil }
        guard let top = Rational.integerRoot(numerator.magnitude, n), let bottom = Rational.integerRoot(denominator.magnitude, n) else { return nil }
        return Rational(numerator < 0 ? -Int64(top) : Int64(top), Int64(bottom))
    }

    private init(unchecked numerator: Int64, _ denominator: Int64) {
        self.numerator = numerator
        self.denominator = denominator
    }

    private static func multiply(_ a: Int64, _ b: Int64) -> Int64? {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow || product == .min ? nil : product
    }

    private static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return max(x, 1)
    }

    /// The exact integer n-th root of `value`, if there is one.
    private static func integerRoot(_ value: UInt64, _ n: Int) -> UInt64? {
        if value < 2 || n == 1 { return value }
        let guess = UInt64(pow(Double(value), 1 / Double(n)).rounded())
        for candidate in [guess &- 1, guess, guess &+ 1] where candidate > 0 {
            var product: UInt64 = 1
            var overflow = false
            for _ in 0..<n where !overflow {
                (product, overflow) = product.multipliedReportingOverflow(by: candidate)
            }
            if !overflow && product == value { return candidate }
        }
        return nil
    }
}
