/// Finding `\boxed{...}` answers in model output, as math evaluation harnesses do (Qwen2.5-Math's, which
/// MobileLLM-R1's evaluation adapts): the *last* `\boxed` (or `\fbox`) wins, its argument is read with balanced
/// braces, and the space form `\boxed 5` runs to the next `$` or line end.
public enum BoxedAnswer {
    /// The content of the last `\boxed{...}` (or `\fbox{...}`, `\boxed x`) in `text`, or nil when there is none
    /// or the last one never closes.
    ///
    /// Braces are counted as characters (a `\{` counts too), the way the reference harness counts them.
    public static func lastBoxedContent(in text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        guard let keywordEnd = lastKeywordEnd(in: scalars) else { return nil }
        var index = keywordEnd
        if index < scalars.count, scalars[index] == "{" {
            var depth = 0
            var content = String.UnicodeScalarView()
            while index < scalars.count {
                let scalar = scalars[index]
                if scalar == "{" {
                    depth += 1
                    if depth == 1 { index += 1; continue }
                } else if scalar == "}" {
                    depth -= 1
                    if depth == 0 { return String(content) }
                }
                content.append(scalar)
                index += 1
            }
            return nil
        }
        // `\boxed 5`: needs at least one space, then runs to `$` or the end of the line.
        guard index < scalars.count, scalars[index] == " " else { return nil }
        var content = String.UnicodeScalarView()
        while index < scalars.count, scalars[index] != "$", scalars[index] != "\n" {
            content.append(scalars[index])
            index += 1
        }
        let trimmed = String(content).trimmingSpaces()
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The index just past the last `\boxed` in `scalars`, or past the last `\fbox` when there is no `\boxed`.
    private static func lastKeywordEnd(in scalars: [Unicode.Scalar]) -> Int? {
        for keyword in ["\\boxed", "\\fbox"] {
            let key = Array(keyword.unicodeScalars)
            guard scalars.count >= key.count else { continue }
            var start = scalars.count - key.count
            while start >= 0 {
                if scalars[start] == key[0], Array(scalars[start..<(start + key.count)]) == key { return start + key.count }
                start -= 1
            }
        }
        return nil
    }
}

/// Watches streamed text and reports when a `\boxed{...}` has closed (braces balanced), so generation can stop
/// there (`generate --stop-at-boxed`). Pieces may split `\boxed` or the braces anywhere.
public struct BoxedCloseDetector: Sendable {
    private static let keyword = Array("\\boxed".unicodeScalars)
    /// How many scalars of the keyword the text seen so far ends with (while not inside a box).
    private var matched = 0
    /// Brace depth inside a box; nil while outside one; 0 right after the keyword, before its `{`.
    private var depth: Int?
    /// True once a box has closed.
    public private(set) var closed = false

    /// A detector that has seen no text.
    public init() {}

    /// Feeds the next piece of text; returns true once a `\boxed{...}` has closed (and stays true).
    public mutating func push(_ piece: String) -> Bool {
        for scalar in piece.unicodeScalars where !closed { step(scalar) }
        return closed
    }

    /// Feeds the next piece of text; when the box closes inside it, returns the piece up to and including the
    /// closing brace (the rest of the piece is not looked at), otherwise nil.
    public mutating func prefixThroughClose(of piece: String) -> String? {
        guard !closed else { return nil }
        var prefix = String.UnicodeScalarView()
        for scalar in piece.unicodeScalars {
            prefix.append(scalar)
            step(scalar)
            if closed { return String(prefix) }
        }
        return nil
    }

    /// Advances over one scalar.
    private mutating func step(_ scalar: Unicode.Scalar) {
        if let current = depth {
            if scalar == "{" {
                depth = current + 1
            } else if scalar == "}" {
                if current == 1 {
                    closed = true
                }
                depth = current > 1 ? current - 1 : nil  // at 0 a `}` before any `{`: not a box
            } else if current == 0, scalar != " " {
                depth = nil  // `\boxed` not followed by `{`: not a box we can close
                matched = 0
            }
            return
        }
        if scalar == Self.keyword[matched] {
            matched += 1
            if matched == Self.keyword.count { depth = 0; matched = 0 }
        } else {
            matched = scalar == Self.keyword[0] ? 1 : 0
        }
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmingSpaces() -> String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, first == " " || first == "\t" || first == "\n" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\n" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
