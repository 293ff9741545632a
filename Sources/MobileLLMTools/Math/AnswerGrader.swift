import Foundation
import MobileLLM

/// Decides whether a predicted answer equals a reference answer, following the Qwen2.5-Math harness's `math_equal`
/// (used by MobileLLM-R1's evaluation). Both are cleaned by `AnswerNormalizer` first; then, in order:
///
/// 1. the same text, ignoring case and spaces → equal;
/// 2. a reference that is a choice letter A–E → the prediction's last stand-alone letter A–E must be it;
/// 3. both plain decimal numbers → equal when the prediction is within a relative 1e-4 of the reference, of
///    reference ÷ 100 or of reference × 100 (the harness's percentage rule: `10` matches `0.1`); this verdict is final;
/// 4. both `pmatrix` matrices → same shape and every entry equal;
/// 5. lists: `(a, b)` and `[a, b]` are ordered (tuples, points, intervals — the brackets must match, so `[1, 2)` is
///    not `(1, 2]`); bare `a, b`, sets `{a, b}` and `a \pm b` (a + b, a - b) are unordered; same length and every
///    element equal;
/// 6. equations: both `A = B` → `A - B` is a nonzero constant multiple of `C - D`; `x = 5` against `5` (a name of
///    at most two characters on the left) → compare the right side;
/// 7. otherwise both are parsed (`MathParser`) and evaluated: without variables, exactly or within a relative 1e-4
///    (the harness's `numeric_equal` on sympy's numeric value), so `0.5`, `1/2` and `\frac{1}{2}` agree and
///    `\sqrt{8}` equals `2\sqrt{2}`; with variables, at twelve pseudo-random points in [-3, 3] within a relative
///    1e-6, skipping points where either side is undefined (at least three must remain); the harness asks
///    sympy whether `simplify(a - b) == 0`, which is exact.
///
/// Deliberate differences from the harness (each a harness quirk that scores wrong answers right or the reverse):
/// interval brackets must match; unordered answer lists compare as sets; `1,2` is not the number 12; `2x+3 = y`
/// equals `y = 2x + 3` and `2x + 2y = 10` equals `x + y = 5`; `90°` is 90 like `90^\circ`.
public enum AnswerGrader {
    /// The relative tolerance for numbers (the harness's `math.isclose(rel_tol=1e-4)`).
    public static let relativeTolerance = 1e-4
    /// The relative tolerance when comparing expressions with variables at sample points.
    static let symbolicTolerance = 1e-6

    /// Answers longer than this (say, the rest of a response after a box that never closed) are compared only as
    /// exact text, so scoring stays fast whatever a model writes.
    public static let maxAnswerLength = 4096

    /// True when `prediction` and `reference` are the same answer (see the type's documentation).
    public static func isEquivalent(_ prediction: String, _ reference: String) -> Bool {
        guard prediction.utf8.count <= maxAnswerLength, reference.utf8.count <= maxAnswerLength else {
            return !prediction.isEmpty && prediction == reference
        }
        return matches(AnswerNormalizer.normalize(prediction), AnswerNormalizer.normalize(reference), depth: 0)
    }

    /// Compares two normalized answers.
    static func matches(_ prediction: String, _ reference: String, depth: Int) -> Bool {
        let p = prediction.trimmingSpaces(), r = reference.trimmingSpaces()
        let pc = p.replacingOccurrences(ofAll: [" ": ""]), rc = r.replacingOccurrences(ofAll: [" ": ""])
        guard !pc.isEmpty, !rc.isEmpty, depth <= 8 else { return false }
        if pc.lowercased() == rc.lowercased() { return true }
        if rc.count == 1, let letter = rc.first, "ABCDE".contains(letter) { return choiceLetter(in: pc) == letter }
        if let a = plainNumber(pc), let b = plainNumber(rc) {
            return [b / 100, b, b * 100].contains { isClose($0, a, relative: relativeTolerance) }
        }
        if let a = matrix(pc), let b = matrix(rc) {
            return a.count == b.count && zip(a, b).allSatisfy { rowA, rowB in
                rowA.count == rowB.count && zip(rowA, rowB).allSatisfy { matches($0, $1, depth: depth + 1) }
            }
        }
        let listP = list(p), listR = list(r)
        if listP != nil || listR != nil {
            guard let a = listP, let b = listR, a.items.count == b.items.count else { return false }
            switch (a.ordered, b.ordered) {
            case (true, true):
                return a.open == b.open && a.close == b.close
                    && zip(a.items, b.items).allSatisfy { matches($0, $1, depth: depth + 1) }
            case (false, false):
                return sameElements(a.items, b.items, depth: depth + 1)
            default:
                return false
            }
        }
        let equationP = equation(p), equationR = equation(r)
        switch (equationP, equationR) {
        case let (pe?, re?):
            guard let pl = MathParser.parse(pe.lhs), let pr = MathParser.parse(pe.rhs),
                  let rl = MathParser.parse(re.lhs), let rr = MathParser.parse(re.rhs) else { return false }
            return equationsMatch(.binary(.subtract, pl, pr), .binary(.subtract, rl, rr))
        case let (pe?, nil):
            return isShortName(pe.lhs) && !r.contains("=") && matches(pe.rhs, r, depth: depth + 1)
        case let (nil, re?):
            return isShortName(re.lhs) && !p.contains("=") && matches(p, re.rhs, depth: depth + 1)
        case (nil, nil):
            guard !p.contains("="), !r.contains("="), let a = MathParser.parse(p), let b = MathParser.parse(r) else { return false }
            return expressionsMatch(a, b)
        }
    }

    /// True when two expressions have the same value (constants) or agree at sample points (with variables).
    public static func expressionsMatch(_ a: MathExpression, _ b: MathExpression) -> Bool {
        let names = a.variables.union(b.variables)
        if names.isEmpty {
            guard let x = a.evaluate(), let y = b.evaluate() else { return false }
            if let rx = x.rational, let ry = y.rational, rx == ry { return true }
            return isClose(x.doubleValue, y.doubleValue, relative: relativeTolerance)
        }
        // Points on both sides of 0 tell sqrt(x^2) from x; a point where either side is undefined is skipped.
        var agreeing = 0
        for values in samplePoints(names, seed: 0x6D61_7468) {
            guard let x = a.evaluate(values)?.doubleValue, let y = b.evaluate(values)?.doubleValue else { continue }
            guard isClose(x, y, relative: symbolicTolerance, absolute: 1e-9) else { return false }
            agreeing += 1
        }
        return agreeing >= 3
    }

    /// True when `a = 0` and `b = 0` are the same equation: `a` is a nonzero constant multiple of `b`
    /// (`2x + 2y = 10` is `x + y = 5`; the harness accepts only the multiples ±1).
    static func equationsMatch(_ a: MathExpression, _ b: MathExpression) -> Bool {
        if expressionsMatch(a, b) || expressionsMatch(.negate(a), b) { return true }
        // Find the ratio where b is clearly nonzero, then check a = ratio · b everywhere.
        let names = a.variables.union(b.variables)
        guard !names.isEmpty else { return false }
        for values in samplePoints(names, seed: 0x6571_6E73) {
            guard let x = a.evaluate(values)?.doubleValue, let y = b.evaluate(values)?.doubleValue,
                  Swift.abs(y) > 1e-6, x.isFinite, y.isFinite else { continue }
            let ratio = x / y
            guard ratio != 0, ratio.isFinite else { return false }
            return expressionsMatch(a, .binary(.multiply, .approximateNumber(ratio), b))
        }
        return false
    }

    /// Twelve pseudo-random points in [-3, 3] for each of `names`, the same for the same seed.
    private static func samplePoints(_ names: Set<String>, seed: UInt64) -> [[String: Double]] {
        var generator = SeededGenerator(seed: seed)
        return (0..<12).map { _ in
            var values: [String: Double] = [:]
            for name in names.sorted() { values[name] = -3 + 6 * Double(generator.next() >> 11) / Double(1 << 53) }
            return values
        }
    }

    /// Python's `math.isclose`: |a - b| <= max(relative · max(|a|, |b|), absolute); equal infinities are close.
    static func isClose(_ a: Double, _ b: Double, relative: Double, absolute: Double = 0) -> Bool {
        if a == b { return true }
        guard a.isFinite, b.isFinite else { return false }
        return Swift.abs(a - b) <= max(relative * max(Swift.abs(a), Swift.abs(b)), absolute)
    }

    /// The value of a plain decimal number (`-12`, `3.5`, `.5`, `1e-3`), as Python's `float()` reads one.
    static func plainNumber(_ text: String) -> Double? {
        guard text.wholeMatch(of: #/[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/#) != nil else { return nil }
        return Double(text)
    }

    /// The last stand-alone capital letter A–E (after upper-casing), as the harness's choice cleaner finds it.
    private static func choiceLetter(in text: String) -> Character? {
        let words = text.uppercased().split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") })
        return words.last(where: { $0.count == 1 && "ABCDE".contains($0) })?.first
    }

    /// Rows of cells of a `\begin{pmatrix} ... \end{pmatrix}` (compact text).
    private static func matrix(_ text: String) -> [[String]]? {
        let begin = "\\begin{pmatrix}", end = "\\end{pmatrix}"
        guard text.hasPrefix(begin), text.hasSuffix(end), text.count >= begin.count + end.count else { return nil }
        let inner = text.dropFirst(begin.count).dropLast(end.count)
        let rows = inner.components(separatedBy: "\\\\").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        return rows.map { $0.split(separator: "&", omittingEmptySubsequences: false).map(String.init) }
    }

    /// A comma-separated answer: its brackets (nil for a bare list), whether order matters, and its items.
    private struct AnswerList {
        let open: Character?
        let close: Character?
        let items: [String]
        var ordered: Bool { open == "(" || open == "[" }
    }

    /// `text` as a list when it has a comma outside brackets, or is one bracketed group with commas inside.
    private static func list(_ text: String) -> AnswerList? {
        if let first = text.first, let last = text.last, "([{".contains(first), ")]}".contains(last),
           text.count >= 2, closesAtEnd(text) {
            let items = splitTopLevel(String(text.dropFirst().dropLast()), on: ",")
            if items.count >= 2 { return AnswerList(open: first, close: last, items: items) }
            // An interval or point needs two items; `{5}` is just 5.
            return nil
        }
        let items = splitTopLevel(text, on: ",")
        if items.count >= 2 { return AnswerList(open: nil, close: nil, items: items) }
        // `a \pm b` is the pair of solutions a + b, a - b.
        let parts = text.components(separatedBy: "\\pm")
        if parts.count == 2, let rest = parts.last, !rest.trimmingSpaces().isEmpty {
            return AnswerList(open: nil, close: nil, items: [parts[0] + " + " + rest, parts[0] + " - " + rest].map { $0.trimmingSpaces() })
        }
        return nil
    }

    /// True when the bracket opening `text` closes at its last character (so `(1)+(2)` is not one group).
    private static func closesAtEnd(_ text: String) -> Bool {
        var level = 0
        for (offset, c) in text.enumerated() {
            if "([{".contains(c) { level += 1 }
            if ")]}".contains(c) { level -= 1 }
            if level == 0 { return offset == text.count - 1 }
        }
        return false
    }

    /// `text` split at `separator` characters outside any brackets; items are trimmed.
    static func splitTopLevel(_ text: String, on separator: Character) -> [String] {
        var items: [String] = []
        var current = ""
        var level = 0
        for c in text {
            if "([{".contains(c) { level += 1 }
            if ")]}".contains(c) { level -= 1 }
            if c == separator && level <= 0 {
                items.append(current.trimmingSpaces())
                current = ""
            } else {
                current.append(c)
            }
        }
        items.append(current.trimmingSpaces())
        return items
    }

    /// True when every item of `a` pairs with a different, equal item of `b`.
    private static func sameElements(_ a: [String], _ b: [String], depth: Int) -> Bool {
        var unused = b
        for item in a {
            guard let match = unused.firstIndex(where: { matches(item, $0, depth: depth) }) else { return false }
            unused.remove(at: match)
        }
        return true
    }

    /// `lhs = rhs` when `text` has exactly one `=` outside brackets.
    private static func equation(_ text: String) -> (lhs: String, rhs: String)? {
        let sides = splitTopLevel(text, on: "=")
        guard sides.count == 2, !sides[0].isEmpty, !sides[1].isEmpty else { return nil }
        return (sides[0], sides[1])
    }

    /// A left-hand side short enough to be a name (`x`, `k`, `a_1` is not), as the harness's two-character rule.
    private static func isShortName(_ text: String) -> Bool {
        text.replacingOccurrences(ofAll: [" ": ""]).count <= 2
    }
}
