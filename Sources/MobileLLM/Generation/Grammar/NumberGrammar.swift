// Exact numeric bounds as grammar rules. The decimal strings whose value lies in an interval form a regular
// language; this builds its automaton directly (a small product of "compare with the lower bound", "compare with the
// upper bound" and JSON number syntax, read left to right), drops the states that cannot reach acceptance, and writes
// one GBNF rule per state. Exponents are not part of the language when a bound is present: "a digit string with an
// exponent lies below 100" relates the length of the digits to the exponent's value, which no finite automaton can
// check, so bounded numbers are written in plain decimal notation.

/// An exact decimal number: sign, integer digits (no leading zeros; `[0]` for numbers below one) and fraction digits
/// (no trailing zeros).
struct DecimalConstant: Sendable, Equatable {
    var negative: Bool
    var integer: [UInt8]
    var fraction: [UInt8]

    var isZero: Bool { integer == [0] && fraction.isEmpty }

    init(negative: Bool, integer: [UInt8], fraction: [UInt8]) {
        var integer = integer, fraction = fraction
        while integer.count > 1, integer.first == 0 { integer.removeFirst() }
        if integer.isEmpty { integer = [0] }
        while fraction.last == 0 { fraction.removeLast() }
        self.negative = negative && !(integer == [0] && fraction.isEmpty)
        self.integer = integer
        self.fraction = fraction
    }

    init(_ value: Int) {
        let digits = String(value.magnitude).utf8.map { $0 - 0x30 }
        self.init(negative: value < 0, integer: digits, fraction: [])
    }

    /// The shortest decimal that reads back as `value` (what `repr` prints, and what the schema's author wrote);
    /// nil for infinities and NaN.
    init?(_ value: Double) {
        guard value.isFinite else { return nil }
        let text = "\(value.magnitude)"  // shortest round-trip digits, maybe with an exponent
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[text.startIndex..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var integerDigits = mantissa, fractionDigits = Substring("")
        if let dot = mantissa.firstIndex(of: ".") {
            integerDigits = mantissa[mantissa.startIndex..<dot]
            fractionDigits = mantissa[mantissa.index(after: dot)...]
        }
        let digits = (integerDigits + fractionDigits).utf8.map { $0 - 0x30 }
        let point = integerDigits.count + exponent  // digits before the decimal point
        let integer: [UInt8], fraction: [UInt8]
        if point <= 0 {
            integer = [0]
            fraction = [UInt8](repeating: 0, count: -point) + digits
        } else if point >= digits.count {
            integer = digits + [UInt8](repeating: 0, count: point - digits.count)
            fraction = []
        } else {
            integer = Array(digits[..<point])
            fraction = Array(digits[point...])
        }
        self.init(negative: value < 0, integer: integer, fraction: fraction)
    }

    var magnitude: DecimalConstant { DecimalConstant(negative: false, integer: integer, fraction: fraction) }
    var negated: DecimalConstant { DecimalConstant(negative: !negative, integer: integer, fraction: fraction) }

    /// Plain decimal text.
    var text: String {
        (negative ? "-" : "") + String(decoding: integer.map { $0 + 0x30 }, as: UTF8.self)
            + (fraction.isEmpty ? "" : "." + String(decoding: fraction.map { $0 + 0x30 }, as: UTF8.self))
    }

    /// -1, 0 or 1 as `self` is below, equal to or above `other`.
    func compare(_ other: DecimalConstant) -> Int {
        if negative != other.negative { return negative ? -1 : 1 }
        let sign = negative ? -1 : 1
        if integer.count != other.integer.count { return integer.count < other.integer.count ? -sign : sign }
        for (a, b) in zip(integer, other.integer) where a != b { return a < b ? -sign : sign }
        for index in 0..<max(fraction.count, other.fraction.count) {
            let a = index < fraction.count ? fraction[index] : 0
            let b = index < other.fraction.count ? other.fraction[index] : 0
            if a != b { return a < b ? -sign : sign }
        }
        return 0
    }
}

/// One end of an interval.
struct NumberBound: Sendable, Equatable {
    var value: DecimalConstant
    var inclusive: Bool
}

/// Writes grammar rules for bounded numbers. `emit(name, body)` receives each rule; names start with `prefix`.
struct NumberGrammarBuilder {
    /// More automaton states than this (bounds with hundreds of digits) is refused.
    static let maximumStates = 20_000

    enum Syntax { case integer, decimal }

    /// Comparison of the digits read so far with one bound.
    private struct Tracker: Hashable {
        var inFraction: Bool
        /// Integer digits read (capped at the bound's count + 1), or fraction digits compared so far.
        var count: Int
        /// -1, 0, 1: the digits so far compare below, equal to, above the bound's digits so far.
        var relation: Int8
    }

    private struct State: Hashable {
        /// 0 start, 1 after a leading "0", 2 in integer digits, 3 after ".", 4 in fraction digits.
        var phase: UInt8
        var lower: Tracker?
        var upper: Tracker?
    }

    /// The relation of an integer part (tracked by `tracker`) to `bound`'s integer part, once it is complete.
    private static func integerRelation(_ tracker: Tracker, _ bound: DecimalConstant) -> Int8 {
        if tracker.count < bound.integer.count { return -1 }
        if tracker.count > bound.integer.count { return 1 }
        return tracker.relation
    }

    private static func digit(_ tracker: Tracker, _ d: UInt8, _ bound: DecimalConstant) -> Tracker {
        var next = tracker
        if !tracker.inFraction {
            if tracker.count < bound.integer.count {
                if tracker.relation == 0 { next.relation = d < bound.integer[tracker.count] ? -1 : d > bound.integer[tracker.count] ? 1 : 0 }
                next.count += 1
            } else {
                next.count = bound.integer.count + 1
                next.relation = 1
            }
            return next
        }
        if tracker.relation != 0 { return tracker }
        let boundDigit = tracker.count < bound.fraction.count ? bound.fraction[tracker.count] : 0
        next.relation = d < boundDigit ? -1 : d > boundDigit ? 1 : 0
        next.count = next.relation != 0 ? 0 : min(tracker.count + 1, bound.fraction.count)
        return next
    }

    private static func dot(_ tracker: Tracker, _ bound: DecimalConstant) -> Tracker {
        let relation = integerRelation(tracker, bound)
        return Tracker(inFraction: true, count: 0, relation: relation)
    }

    /// The final relation of the whole number to `bound`.
    private static func end(_ tracker: Tracker, _ bound: DecimalConstant) -> Int8 {
        if !tracker.inFraction {
            let relation = integerRelation(tracker, bound)
            if relation != 0 { return relation }
            return bound.fraction.isEmpty ? 0 : -1
        }
        if tracker.relation != 0 { return tracker.relation }
        return tracker.count < bound.fraction.count ? -1 : 0
    }

    /// Rules for the non-negative numbers (digits without sign) of `syntax` within `lower`/`upper` (non-negative
    /// bounds; nil for none). Returns the start rule's name, or nil when no number qualifies.
    static func magnitude(prefix: String, syntax: Syntax, lower: NumberBound?, upper: NumberBound?,
                          emit: (String, String) -> Void) throws(NumberGrammarTooLarge) -> String? {
        let start = State(phase: 0, lower: lower.map { _ in Tracker(inFraction: false, count: 0, relation: 0) },
                          upper: upper.map { _ in Tracker(inFraction: false, count: 0, relation: 0) })
        var states = [start]
        var index: [State: Int] = [start: 0]
        // Transitions: (from, symbol 0-9 or 10 for ".", to).
        var transitions: [(from: Int, symbol: Int, to: Int)] = []
        var accepting: [Bool] = []
        var cursor = 0
        while cursor < states.count {
            let state = states[cursor]
            // Acceptance.
            var accepts = state.phase == 1 || state.phase == 2 || state.phase == 4
            if accepts, let lower, let tracker = state.lower {
                let relation = end(tracker, lower.value)
                accepts = relation > 0 || (relation == 0 && lower.inclusive)
            }
            if accepts, let upper, let tracker = state.upper {
                let relation = end(tracker, upper.value)
                accepts = relation < 0 || (relation == 0 && upper.inclusive)
            }
            accepting.append(accepts)
            for symbol in 0...10 {
                var next = state
                if symbol == 10 {
                    guard syntax == .decimal, state.phase == 1 || state.phase == 2 else { continue }
                    next.phase = 3
                    if let lower, let tracker = state.lower { next.lower = dot(tracker, lower.value) }
                    if let upper, let tracker = state.upper { next.upper = dot(tracker, upper.value) }
                } else {
                    switch state.phase {
                    case 0: next.phase = symbol == 0 ? 1 : 2
                    case 1: continue
                    case 2: next.phase = 2
                    default: next.phase = 4
                    }
                    let d = UInt8(symbol)
                    if let lower, let tracker = state.lower { next.lower = digit(tracker, d, lower.value) }
                    if let upper, let tracker = state.upper {
                        let moved = digit(tracker, d, upper.value)
                        // Past the upper bound for good: no continuation can come back below it.
                        if !moved.inFraction, moved.count > upper.value.integer.count { continue }
                        if moved.inFraction, moved.relation > 0 { continue }
                        next.upper = moved
                    }
                }
                let target: Int
                if let existing = index[next] {
                    target = existing
                } else {
                    guard states.count < maximumStates else { throw NumberGrammarTooLarge() }
                    target = states.count
                    index[next] = target
                    states.append(next)
                }
                transitions.append((cursor, symbol, target))
            }
            cursor += 1
        }
        // Keep the states from which an accepting state can be reached.
        var incoming = [[Int]](repeating: [], count: states.count)
        for transition in transitions { incoming[transition.to].append(transition.from) }
        var live = accepting
        var work = (0..<states.count).filter { accepting[$0] }
        while let state = work.popLast() {
            for from in incoming[state] where !live[from] {
                live[from] = true
                work.append(from)
            }
        }
        guard live[0] else { return nil }
        var outgoing = [[(symbol: Int, to: Int)]](repeating: [], count: states.count)
        for transition in transitions where live[transition.to] { outgoing[transition.from].append((transition.symbol, transition.to)) }
        // Number the live states in discovery order and write their rules.
        var names = [String?](repeating: nil, count: states.count)
        var order: [Int] = [0]
        names[0] = prefix
        var position = 0
        while position < order.count {
            for (_, to) in outgoing[order[position]] where names[to] == nil {
                names[to] = "\(prefix)-\(order.count)"
                order.append(to)
            }
            position += 1
        }
        for state in order {
            var alternatives: [String] = []
            var targets: [Int] = []
            for (_, to) in outgoing[state] where !targets.contains(to) { targets.append(to) }
            for to in targets {
                let symbols = outgoing[state].filter { $0.to == to }.map(\.symbol)
                var digits = symbols.filter { $0 < 10 }
                if !digits.isEmpty {
                    alternatives.append(digitClass(&digits) + " " + (names[to] ?? ""))
                }
                if symbols.contains(10) { alternatives.append("\".\" " + (names[to] ?? "")) }
            }
            if accepting[state] { alternatives.append("\"\"") }
            emit(names[state] ?? prefix, alternatives.joined(separator: " | "))
        }
        return prefix
    }

    /// A GBNF class for a set of digits, e.g. `[0-35-9]`.
    private static func digitClass(_ digits: inout [Int]) -> String {
        digits.sort()
        if digits.count == 1 { return "\"\(digits[0])\"" }
        var out = "["
        var index = 0
        while index < digits.count {
            var end = index
            while end + 1 < digits.count, digits[end + 1] == digits[end] + 1 { end += 1 }
            out += end > index ? "\(digits[index])-\(digits[end])" : "\(digits[index])"
            index = end + 1
        }
        return out + "]"
    }

    /// Rules for the numbers of `syntax` (optional minus sign, no exponent) whose value lies within the bounds.
    /// Returns the start rule, or nil when none does.
    static func signed(prefix: String, syntax: Syntax, lower: NumberBound?, upper: NumberBound?,
                       emit: (String, String) -> Void) throws(NumberGrammarTooLarge) -> String? {
        // Non-negative numbers: magnitude m with m >= max(lower, 0) and m <= upper.
        var branches: [String] = []
        let zero = DecimalConstant(0)
        var positiveLower: NumberBound? = nil
        if let lower, lower.value.compare(zero) >= 0 { positiveLower = lower }
        var positivePossible = true
        if let upper, upper.value.compare(zero) < 0 { positivePossible = false }
        if positivePossible,
           let rule = try magnitude(prefix: prefix + "-p", syntax: syntax, lower: positiveLower, upper: upper, emit: emit) {
            branches.append(rule)
        }
        // Negative numbers "-m", value -m: m in [-upper, -lower], and -m <= 0 always.
        var negativePossible = true
        var magnitudeLower: NumberBound? = nil
        var magnitudeUpper: NumberBound? = nil
        if let upper, upper.value.compare(zero) <= 0 { magnitudeLower = NumberBound(value: upper.value.magnitude, inclusive: upper.inclusive) }
        if let lower {
            if lower.value.compare(zero) > 0 { negativePossible = false }
            magnitudeUpper = NumberBound(value: lower.value.magnitude, inclusive: lower.inclusive)
            if lower.value.compare(zero) > 0 { magnitudeUpper = nil }
        }
        if negativePossible,
           let rule = try magnitude(prefix: prefix + "-n", syntax: syntax, lower: magnitudeLower, upper: magnitudeUpper, emit: emit) {
            branches.append("\"-\" " + rule)
        }
        guard !branches.isEmpty else { return nil }
        emit(prefix, branches.joined(separator: " | "))
        return prefix
    }
}

/// A bound whose automaton would be too large (hundreds of significant digits).
struct NumberGrammarTooLarge: Error {}
