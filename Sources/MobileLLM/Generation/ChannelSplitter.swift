
/// Splits streamed text into reasoning, marker and answer segments at a start and an end marker
/// (`ReasoningOptions`). Text that could still become the marker being watched for is held back until it is known
/// either way, so a marker is never split across segments, wherever the pieces were cut. Matching compares Unicode
/// scalars, as `TextStopper` does; segments hold whole scalars.
struct ChannelSplitter: Sendable {
    private let start: [Unicode.Scalar]
    private let end: [Unicode.Scalar]
    /// True while a thought is open (the next marker to look for is `end`).
    private(set) var isOpen: Bool
    /// Text received but not yet released: a proper prefix of the watched marker, at the end of the text.
    private var held: [Unicode.Scalar] = []

    /// A splitter for the markers of `options`; `open` when the text starts inside a thought.
    init(_ options: ReasoningOptions, open: Bool) {
        start = Array(options.start.unicodeScalars)
        end = Array(options.end.unicodeScalars)
        isOpen = open
    }

    /// The channel of text read now.
    var channel: TextChannel { isOpen ? .reasoning : .answer }

    /// Feeds the next text; returns the segments that can be released now (non-empty texts, adjacent segments of one
    /// channel merged), in order.
    mutating func push(_ text: String) -> [(channel: TextChannel, text: String)] {
        guard !text.isEmpty else { return [] }
        held.append(contentsOf: text.unicodeScalars)
        var out: [(channel: TextChannel, text: String)] = []
        while true {
            let marker = isOpen ? end : start
            if let at = Self.firstMatch(of: marker, in: held) {
                Self.append(channel, held[..<at], to: &out)
                Self.append(.marker, held[at..<(at + marker.count)], to: &out)
                held.removeFirst(at + marker.count)
                isOpen.toggle()
                continue
            }
            let safe = Self.safeLength(held, marker: marker)
            Self.append(channel, held[..<safe], to: &out)
            held.removeFirst(safe)
            return out
        }
    }

    /// Releases the held-back text (at the end of the stream) as the current channel.
    mutating func finish() -> [(channel: TextChannel, text: String)] {
        var out: [(channel: TextChannel, text: String)] = []
        Self.append(channel, held[...], to: &out)
        held.removeAll()
        return out
    }

    private static func append(_ channel: TextChannel, _ scalars: ArraySlice<Unicode.Scalar>,
                               to out: inout [(channel: TextChannel, text: String)]) {
        guard !scalars.isEmpty else { return }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        let text = String(view)
        if channel != .marker, let last = out.last, last.channel == channel {
            out[out.count - 1].text += text
        } else {
            out.append((channel, text))
        }
    }

    /// The offset of the first occurrence of `marker` in `text`.
    private static func firstMatch(of marker: [Unicode.Scalar], in text: [Unicode.Scalar]) -> Int? {
        guard marker.count <= text.count else { return nil }
        for at in 0...(text.count - marker.count) where text[at] == marker[0] {
            if text[at..<(at + marker.count)].elementsEqual(marker) { return at }
        }
        return nil
    }

    /// How much of `text` cannot begin `marker`: everything before the earliest suffix that is a proper prefix of it.
    private static func safeLength(_ text: [Unicode.Scalar], marker: [Unicode.Scalar]) -> Int {
        for at in max(0, text.count - marker.count + 1)..<text.count where text[at] == marker[0] {
            if marker.starts(with: text[at...]) { return at }
        }
        return text.count
    }

    /// Whether text ends inside an open thought: its last `start` comes after its last `end`.
    static func endsInsideThought(_ text: String, _ options: ReasoningOptions) -> Bool {
        guard let opened = text.lastRange(of: options.start) else { return false }
        guard let closed = text.lastRange(of: options.end) else { return true }
        return opened.lowerBound > closed.lowerBound
    }
}
