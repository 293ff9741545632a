/// Ends streamed model output at stop strings and, optionally, right after the first closed `\boxed{...}`
/// (`GenerationOptions.stopStrings`; the CLI's `generate --stop STRING`, `--stop-at-boxed`).
///
/// Stop strings are matched over the decoded text, so a match may span any number of pieces (tokens). While
/// streaming, text that could be the start of a stop string is held back until it is known not to be; the output
/// ends just before the first stop string to complete (so the result does not depend on how the text was split). Matching compares Unicode scalars (the same as comparing UTF-8 bytes),
/// not grapheme clusters, so a stop string is found even when it begins with a combining mark.
public struct TextStopper: Sendable {
    /// Why the text ended.
    public enum Reason: String, Sendable {
        /// A stop string appeared (it is not part of the output).
        case stopString = "stop_string"
        /// A `\boxed{...}` closed (the output ends with its closing brace).
        case boxed = "boxed"
    }

    private let stops: [[Unicode.Scalar]]
    private var boxed: BoxedCloseDetector?
    /// Text received but not yet released: it may be the start of a stop string.
    private var held: [Unicode.Scalar] = []
    /// Set once the text has ended; later pushes return nothing.
    public private(set) var reason: Reason?

    /// A stopper for `stopStrings` (empty strings are ignored) and, when `stopAtBoxed`, the first closed box.
    public init(stopStrings: [String], stopAtBoxed: Bool = false) {
        stops = stopStrings.map { Array($0.unicodeScalars) }.filter { !$0.isEmpty }
        boxed = stopAtBoxed ? BoxedCloseDetector() : nil
    }

    /// True when there is nothing to watch for (every piece passes through at once).
    public var isInactive: Bool { stops.isEmpty && boxed == nil }

    /// Feeds the next piece; returns the text that can be shown now (possibly empty). Once `reason` is set the
    /// text has ended: the returned text is the last, and later pieces are ignored.
    public mutating func push(_ piece: String) -> String {
        guard reason == nil else { return "" }
        var piece = piece
        var boxClosed = false
        if boxed != nil, let prefix = boxed?.prefixThroughClose(of: piece) {
            piece = prefix
            boxClosed = true
        }
        held.append(contentsOf: piece.unicodeScalars)
        if let start = earliestMatch() {
            reason = .stopString
            return release(upTo: start, keepRest: false)
        }
        if boxClosed {
            reason = .boxed
            return release(upTo: held.count, keepRest: false)
        }
        return release(upTo: safeLength(), keepRest: true)
    }

    /// The held-back text, at the end of generation (nothing when the text already ended at a stop).
    public mutating func finish() -> String {
        guard reason == nil else { return "" }
        return release(upTo: held.count, keepRest: false)
    }

    /// Returns `held[..<end]` as text and keeps the rest (or drops it).
    private mutating func release(upTo end: Int, keepRest: Bool) -> String {
        var text = String.UnicodeScalarView()
        text.append(contentsOf: held[..<end])
        if keepRest { held.removeFirst(end) } else { held.removeAll() }
        return String(text)
    }

    /// The start of the first stop string to complete in `held` (of several ending at the same place, the longest).
    /// Choosing by end rather than start makes the result independent of how the text was split into pieces.
    private func earliestMatch() -> Int? {
        guard !stops.isEmpty, !held.isEmpty else { return nil }
        for end in 1...held.count {
            let starts = stops.compactMap { stop in
                stop.count <= end && held[(end - stop.count)..<end].elementsEqual(stop) ? end - stop.count : nil
            }
            if let start = starts.min() { return start }
        }
        return nil
    }

    /// How much of `held` cannot begin a stop string: everything before the earliest suffix that is a proper
    /// prefix of one.
    private func safeLength() -> Int {
        for start in held.indices {
            let tail = held[start...]
            if stops.contains(where: { $0.count > tail.count && $0.starts(with: tail) }) { return start }
        }
        return held.count
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
