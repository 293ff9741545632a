/// One added token (`added_tokens` in tokenizer.json, or a control/user-defined token of a GGUF vocabulary).
public struct AddedToken: Sendable, Equatable {
    /// The token id.
    public var id: Int32
    /// The text it matches.
    public var content: String
    /// Special tokens are skipped by `decode(skipSpecial: true)` and matched in text only with `parseSpecial`.
    public var special: Bool
    /// Only matches when not preceded or followed by a letter or digit.
    public var singleWord: Bool
    /// A match swallows the whitespace before it.
    public var lstrip: Bool
    /// A match swallows the whitespace after it.
    public var rstrip: Bool
    /// Matched after normalization (second pass), instead of on the raw text (first pass).
    public var normalized: Bool

    /// An added token with the given flags.
    public init(id: Int32, content: String, special: Bool, singleWord: Bool = false, lstrip: Bool = false,
                rstrip: Bool = false, normalized: Bool = false) {
        self.id = id
        self.content = content
        self.special = special
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
    }
}

/// Finds added tokens in text the way HF's `AddedVocabulary` does: leftmost-longest matches over the raw text for
/// tokens with `normalized: false`, then over the remaining pieces for `normalized: true`; `single_word`, `lstrip`
/// and `rstrip` applied per match; special tokens dropped from matching when `parseSpecial` is false
/// (`encode_special_tokens`).
struct AddedTokenMatcher: Sendable {
    struct Entry: Sendable {
        let bytes: [UInt8]
        let token: AddedToken
    }

    /// Per first byte, candidate entries, longest first; separately for the two passes.
    private let rawByFirstByte: [[Entry]]
    private let normalizedByFirstByte: [[Entry]]
    let isEmpty: Bool

    /// Tokens with `normalized: true` are matched against normalized text, so their content is normalized with
    /// `normalizer` too (as HF does).
    init(_ tokens: [AddedToken], normalizer: TextNormalizer? = nil) {
        var raw = [[Entry]](repeating: [], count: 256)
        var normalized = [[Entry]](repeating: [], count: 256)
        for token in tokens {
            var bytes = Array(token.content.utf8)
            if token.normalized, normalizer == .nfc, let nfc = bytes.withUnsafeBufferPointer({ buffer in
                buffer.baseAddress.flatMap { UnicodeNormalization.nfc($0, 0, buffer.count) }
            }) {
                bytes = nfc
            }
            guard let first = bytes.first else { continue }
            if token.normalized {
                normalized[Int(first)].append(Entry(bytes: bytes, token: token))
            } else {
                raw[Int(first)].append(Entry(bytes: bytes, token: token))
            }
        }
        for index in 0..<256 {
            raw[index].sort { $0.bytes.count > $1.bytes.count }
            normalized[index].sort { $0.bytes.count > $1.bytes.count }
        }
        rawByFirstByte = raw
        normalizedByFirstByte = normalized
        isEmpty = tokens.isEmpty
    }

    /// A piece of the split text: either text bytes `[start, end)` or an added token.
    enum Segment: Equatable {
        case text(Int, Int)
        case token(Int32)
    }

    /// Splits `bytes` into text and added-token segments (both passes, for a tokenizer without a normalizer).
    func split(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Segment] {
        if isEmpty { return bytes.isEmpty ? [] : [.text(0, bytes.count)] }
        var first: [Segment] = []
        splitPass(bytes, 0, bytes.count, table: rawByFirstByte, parseSpecial: parseSpecial, into: &first)
        var out: [Segment] = []
        out.reserveCapacity(first.count)
        for segment in first {
            if case let .text(start, end) = segment {
                splitPass(bytes, start, end, table: normalizedByFirstByte, parseSpecial: parseSpecial, into: &out)
            } else {
                out.append(segment)
            }
        }
        return out
    }

    /// The first pass alone: tokens with `normalized: false`, matched on the raw text `bytes[start..<end]`.
    func splitRaw(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, parseSpecial: Bool, into out: inout [Segment]) {
        if isEmpty {
            if start < end { out.append(.text(start, end)) }
            return
        }
        splitPass(bytes, start, end, table: rawByFirstByte, parseSpecial: parseSpecial, into: &out)
    }

    /// The second pass alone: tokens with `normalized: true`, matched on (normalized) text `bytes[start..<end]`.
    func splitNormalized(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, parseSpecial: Bool,
                         into out: inout [Segment]) {
        if isEmpty {
            if start < end { out.append(.text(start, end)) }
            return
        }
        splitPass(bytes, start, end, table: normalizedByFirstByte, parseSpecial: parseSpecial, into: &out)
    }

    private func splitPass(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, table: [[Entry]],
                           parseSpecial: Bool, into out: inout [Segment]) {
        var offset = start        // end of the last emitted piece
        var index = start
        while index < end {
            let candidates = table[Int(bytes[index])]
            var found: Entry?
            if !candidates.isEmpty {
                for entry in candidates where entry.bytes.count <= end - index {
                    var equal = true
                    for k in 1..<max(entry.bytes.count, 1) where bytes[index + k] != entry.bytes[k] {
                        equal = false
                        break
                    }
                    if equal { found = entry; break }
                }
            }
            guard let entry = found else { index += 1; continue }
            var matchStart = index
            var matchEnd = index + entry.bytes.count
            index = matchEnd
            let token = entry.token
            if token.special && !parseSpecial { continue }
            if token.singleWord {
                let startOK = matchStart == start || !Self.endsWithWord(bytes, upTo: matchStart)
                let stopOK = matchEnd == end || !Self.startsWithWord(bytes, from: matchEnd, upper: end)
                if !startOK || !stopOK { continue }
            }
            if token.lstrip {
                matchStart = max(Self.trailingWhitespaceStart(bytes, lower: start, upTo: matchStart), offset)
            }
            if token.rstrip {
                matchEnd = Self.leadingWhitespaceEnd(bytes, from: matchEnd, upper: end)
                index = matchEnd
            }
            if offset < matchStart { out.append(.text(offset, matchStart)) }
            out.append(.token(token.id))
            offset = matchEnd
        }
        if offset < end { out.append(.text(offset, end)) }
    }

    private static func scalarBefore(_ bytes: UnsafeBufferPointer<UInt8>, _ position: Int) -> Unicode.Scalar? {
        var start = position - 1
        while start > 0 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0, let base = bytes.baseAddress else { return nil }
        return Unicode.Scalar(decodeScalar(base, start, position).value)
    }

    private static func endsWithWord(_ bytes: UnsafeBufferPointer<UInt8>, upTo position: Int) -> Bool {
        guard position > 0, let scalar = scalarBefore(bytes, position) else { return false }
        return CharacterClass.isAlphanumeric(scalar)
    }

    private static func startsWithWord(_ bytes: UnsafeBufferPointer<UInt8>, from position: Int, upper: Int) -> Bool {
        guard position < upper, let base = bytes.baseAddress,
              let scalar = Unicode.Scalar(decodeScalar(base, position, upper).value) else { return false }
        return CharacterClass.isAlphanumeric(scalar)
    }

    private static func trailingWhitespaceStart(_ bytes: UnsafeBufferPointer<UInt8>, lower: Int, upTo position: Int) -> Int {
        var current = position
        while current > lower {
            var start = current - 1
            while start > lower && bytes[start] & 0xC0 == 0x80 { start -= 1 }
            guard let base = bytes.baseAddress, let scalar = Unicode.Scalar(decodeScalar(base, start, current).value),
                  scalar.properties.isWhitespace else { break }
            current = start
        }
        return current
    }

    private static func leadingWhitespaceEnd(_ bytes: UnsafeBufferPointer<UInt8>, from position: Int, upper: Int) -> Int {
        var current = position
        while current < upper, let base = bytes.baseAddress {
            let (value, length) = decodeScalar(base, current, upper)
            guard let scalar = Unicode.Scalar(value), scalar.properties.isWhitespace else { break }
            current += length
        }
        return current
    }
}
