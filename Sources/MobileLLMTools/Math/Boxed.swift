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

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmingSpaces() -> String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, first == " " || first == "\t" || first == "\n" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\n" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
