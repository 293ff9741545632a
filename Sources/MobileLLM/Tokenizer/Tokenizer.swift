
/// A byte-level BPE tokenizer loaded from a Hugging Face `tokenizer.json` (plus `tokenizer_config.json`) or from the
/// vocabulary stored in a GGUF file. Encoding and decoding match HF `tokenizers` id for id and byte for byte.
/// Implemented pipelines: no normalizer or NFC (Qwen2/2.5/3); the Llama-3, Qwen2, GPT-2 and SmolLM (digits + GPT-2)
/// pre-tokenizers; byte-level BPE; added tokens special or not.
///
/// Immutable after loading: one instance may be used from any number of threads at once.
public final class Tokenizer: Sendable {
    /// Where the tokenizer was loaded from.
    public let path: String
    /// Number of token ids (highest id + 1), added tokens included.
    public let vocabularySize: Int
    /// The beginning-of-sequence token id, when the tokenizer names one.
    public let bosTokenID: Int32?
    /// The end-of-sequence token id, when the tokenizer names one.
    public let eosTokenID: Int32?
    /// The beginning-of-sequence token text (e.g. `<|begin_of_text|>`), for chat templates.
    public let bosToken: String?
    /// The end-of-sequence token text, for chat templates.
    public let eosToken: String?
    /// The model's Jinja chat template (tokenizer_config.json `chat_template` or GGUF `tokenizer.chat_template`).
    public let chatTemplate: String?
    /// Added tokens (special or not), in id order.
    public let addedTokens: [AddedToken]

    /// The normalizer applied to text between added tokens (nil: none).
    let normalizer: TextNormalizer?
    let preTokenizer: PreTokenizer
    let model: BytePairModel
    let matcher: AddedTokenMatcher
    /// Ids `encode(addSpecial: true)` puts before and after the text.
    let prefixIDs: [Int32]
    let suffixIDs: [Int32]
    /// The vocabulary spelling of each id ("" for ids without a token).
    let spellings: [String]
    /// Whether each id has a token.
    let present: [Bool]
    /// Whether each id is a special token.
    let specialFlags: [Bool]
    /// The bytes each id decodes to: `decodedBytes[decodedOffsets[id]..<decodedOffsets[id + 1]]`.
    let decodedBytes: [UInt8]
    let decodedOffsets: [Int32]
    /// Decoder `null`: HF joins token spellings with spaces instead of byte-level decoding.
    let joinsWithSpaces: Bool

    /// Everything a loader gathers; `Tokenizer.init(parts:)` turns it into the lookup tables.
    struct Parts {
        var path: String
        var spellings: [String]               // index = id; "" = absent
        var present: [Bool]
        var addedTokens: [AddedToken]
        var normalizer: TextNormalizer? = nil
        var preTokenizer: PreTokenizer
        var model: BytePairModel
        var prefixIDs: [Int32] = []
        var suffixIDs: [Int32] = []
        var bosTokenID: Int32?
        var eosTokenID: Int32?
        var chatTemplate: String?
        var byteLevelDecoder = true
    }

    init(parts: Parts) {
        path = parts.path
        vocabularySize = parts.spellings.count
        addedTokens = parts.addedTokens.sorted { $0.id < $1.id }
        normalizer = parts.normalizer
        preTokenizer = parts.preTokenizer
        model = parts.model
        matcher = AddedTokenMatcher(parts.addedTokens, normalizer: parts.normalizer)
        prefixIDs = parts.prefixIDs
        suffixIDs = parts.suffixIDs
        spellings = parts.spellings
        present = parts.present
        var special = [Bool](repeating: false, count: parts.spellings.count)
        for token in parts.addedTokens where token.special { special[Int(token.id)] = true }
        specialFlags = special
        joinsWithSpaces = !parts.byteLevelDecoder
        var bytes: [UInt8] = []
        bytes.reserveCapacity(parts.spellings.count * 8)
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(parts.spellings.count + 1)
        for spelling in parts.spellings {
            if parts.byteLevelDecoder, let raw = ByteLevelAlphabet.decode(spelling) {
                bytes.append(contentsOf: raw)
            } else {
                bytes.append(contentsOf: spelling.utf8)
            }
            offsets.append(Int32(bytes.count))
        }
        decodedBytes = bytes
        decodedOffsets = offsets
        bosTokenID = parts.bosTokenID
        eosTokenID = parts.eosTokenID
        bosToken = parts.bosTokenID.flatMap { Int($0) < parts.spellings.count ? parts.spellings[Int($0)] : nil }
        eosToken = parts.eosTokenID.flatMap { Int($0) < parts.spellings.count ? parts.spellings[Int($0)] : nil }
        chatTemplate = parts.chatTemplate
    }

    /// Loads a tokenizer from `path`: a directory holding `tokenizer.json` (and optionally `tokenizer_config.json`),
    /// a `tokenizer.json` file, or a `.gguf` file. Throws `tokenizerMissing` for a directory without tokenizer.json,
    /// `unsupported` naming the file and the `type` for pipeline stages we do not implement, and `invalidFile`
    /// naming the file and field for malformed content.
    public static func load(path: String) throws -> Tokenizer {
        let kind = pathKind(path)
        guard kind != .missing else {
            throw MobileLLMError.fileNotFound(path: path, reason: "no such file or directory")
        }
        if kind == .directory {
            let json = ModelDirectory.join(path, "tokenizer.json")
            guard fileExists(json) else { throw MobileLLMError.tokenizerMissing(path: path) }
            let config = ModelDirectory.join(path, "tokenizer_config.json")
            return try Tokenizer(tokenizerJSON: json,
                                 tokenizerConfig: fileExists(config) ? config : nil)
        }
        if try GGUFFile.hasMagic(path: path) {
            return try Tokenizer(gguf: try GGUFFile(path: path))
        }
        let config = ModelDirectory.join(ModelDirectory.parent(of: path), "tokenizer_config.json")
        return try Tokenizer(tokenizerJSON: path,
                             tokenizerConfig: fileExists(config) ? config : nil)
    }

    // MARK: - Encoding

    /// Token ids for `text`. With `addSpecial`, the post-processor's tokens (e.g. BOS) are added. With `parseSpecial`,
    /// special tokens written in the text (e.g. `<|eot_id|>`) become their ids, as HF's `encode` does; without it
    /// they are tokenized as plain text (what a chat UI must do with user input). Non-special added tokens are
    /// always matched. With a normalizer (NFC), the text between added tokens is normalized before it is
    /// pre-tokenized, as HF does. Never fails: every string has a tokenization.
    public func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        var text = text
        return text.withUTF8 { encode(bytes: $0, addSpecial: addSpecial, parseSpecial: parseSpecial) }
    }

    /// Token ids for each of `texts` (see `encode(_:addSpecial:parseSpecial:)`), on the calling thread, sharing one
    /// pre-token cache across the texts: faster than separate calls for many short texts.
    public func encodeBatch(_ texts: [String], addSpecial: Bool, parseSpecial: Bool) -> [[Int32]] {
        var state = EncodeState()
        return texts.map { text in
            var text = text
            return text.withUTF8 { encode(bytes: $0, addSpecial: addSpecial, parseSpecial: parseSpecial, state: &state) }
        }
    }

    /// Token ids for UTF-8 `bytes` (see `encode(_:addSpecial:parseSpecial:)`). Invalid UTF-8 is tokenized byte by byte.
    public func encode(bytes: UnsafeBufferPointer<UInt8>, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        var state = EncodeState()
        return encode(bytes: bytes, addSpecial: addSpecial, parseSpecial: parseSpecial, state: &state)
    }

    func encode(bytes: UnsafeBufferPointer<UInt8>, addSpecial: Bool, parseSpecial: Bool, state: inout EncodeState) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 4)
        if addSpecial { output.append(contentsOf: prefixIDs) }
        guard let normalizer else {
            for segment in matcher.split(bytes, parseSpecial: parseSpecial) {
                switch segment {
                case let .token(id): output.append(id)
                case let .text(start, end): encodeSegment(bytes, start, end, &state, &output)
                }
            }
            if addSpecial { output.append(contentsOf: suffixIDs) }
            return output
        }
        // As HF: added tokens matched on the raw text first, then each text piece between them normalized, then
        // the `normalized: true` added tokens matched on the normalized text.
        var raw: [AddedTokenMatcher.Segment] = []
        matcher.splitRaw(bytes, 0, bytes.count, parseSpecial: parseSpecial, into: &raw)
        var second: [AddedTokenMatcher.Segment] = []
        for segment in raw {
            switch segment {
            case let .token(id):
                output.append(id)
            case let .text(start, end):
                func encodeNormalized(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) {
                    second.removeAll(keepingCapacity: true)
                    matcher.splitNormalized(text, start, end, parseSpecial: parseSpecial, into: &second)
                    for piece in second {
                        switch piece {
                        case let .token(id): output.append(id)
                        case let .text(pieceStart, pieceEnd): encodeSegment(text, pieceStart, pieceEnd, &state, &output)
                        }
                    }
                }
                switch normalizer {
                case .nfc:
                    if let base = bytes.baseAddress, let normalized = UnicodeNormalization.nfc(base, start, end) {
                        normalized.withUnsafeBufferPointer { encodeNormalized($0, 0, $0.count) }
                    } else {
                        encodeNormalized(bytes, start, end)
                    }
                }
            }
        }
        if addSpecial { output.append(contentsOf: suffixIDs) }
        return output
    }

    /// Encodes one text segment (no added tokens in it): prefix space, pre-tokenizer, BPE.
    private func encodeSegment(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ state: inout EncodeState,
                               _ output: inout [Int32]) {
        guard start < end else { return }
        if preTokenizer.addsPrefixSpace && bytes[start] != 0x20 {
            var prefixed: [UInt8] = [0x20]
            prefixed.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
            prefixed.withUnsafeBufferPointer { encodeText($0, 0, $0.count, &state, &output) }
        } else {
            encodeText(bytes, start, end, &state, &output)
        }
    }

    /// Scratch state of one encode call: the pre-token cache and buffers.
    struct EncodeState {
        var cache = ByteTable(capacity: 64)
        var cachedIDs: [Int32] = []
        var pieces: [Int] = []
        var scratch: [Int] = []
        var work = BPEWork()
    }

    private func encodeText(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ state: inout EncodeState,
                            _ output: inout [Int32]) {
        guard start < end, let base = bytes.baseAddress else { return }
        state.pieces.removeAll(keepingCapacity: true)
        CharacterClass.basicPlane.withUnsafeBufferPointer { table in
            guard let tableBase = table.baseAddress else { return }
            preTokenizer.split(base, start: start, end: end, table: tableBase, output: &state.pieces, scratch: &state.scratch)
        }
        var index = 0
        let pieces = state.pieces
        while index < pieces.count {
            let piece = UnsafeBufferPointer(rebasing: bytes[pieces[index]..<pieces[index + 1]])
            index += 2
            if piece.count < 3 {
                model.encode(piece, into: &output, work: &state.work)
                continue
            }
            if let slot = state.cache.get(piece) {
                // A piece whose bytes the vocabulary lacks encodes to no ids at all: count may be 0.
                let count = Int(state.cachedIDs[Int(slot)])
                output.append(contentsOf: state.cachedIDs[(Int(slot) + 1)..<(Int(slot) + 1 + count)])
                continue
            }
            let before = output.count
            model.encode(piece, into: &output, work: &state.work)
            if state.cache.arenaBytes > (64 << 20) {
                state.cache.removeAll()
                state.cachedIDs.removeAll(keepingCapacity: true)
            }
            let slot = Int32(state.cachedIDs.count)
            state.cachedIDs.append(Int32(output.count - before))
            state.cachedIDs.append(contentsOf: output[before...])
            state.cache.insert(piece, value: slot)
        }
    }

    // MARK: - Decoding

    /// The text of `ids`, as HF's `decode` gives it (bytes joined, then invalid UTF-8 replaced by U+FFFD). With
    /// `skipSpecial`, special tokens are left out. Throws `invalidArgument` for an id outside the vocabulary.
    public func decode(_ ids: [Int32], skipSpecial: Bool) throws -> String {
        if joinsWithSpaces {
            var parts: [String] = []
            for id in ids {
                try check(id)
                if skipSpecial && specialFlags[Int(id)] { continue }
                parts.append(spellings[Int(id)])
            }
            return parts.joined(separator: " ")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            try check(id)
            if skipSpecial && specialFlags[Int(id)] { continue }
            appendBytes(of: id, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @inline(__always)
    func check(_ id: Int32) throws {
        guard id >= 0, Int(id) < vocabularySize, present[Int(id)] else {
            throw MobileLLMError.invalidArgument(name: "token id", problem: "\(id) is not a token of this vocabulary (0..<\(vocabularySize))")
        }
    }

    @inline(__always)
    func appendBytes(of id: Int32, to bytes: inout [UInt8]) {
        let start = Int(decodedOffsets[Int(id)]), end = Int(decodedOffsets[Int(id) + 1])
        bytes.append(contentsOf: decodedBytes[start..<end])
    }

    /// The vocabulary spelling of a token, as HF's `id_to_token` gives it (byte-level, e.g. `Ġhello`).
    /// Throws `invalidArgument` for an id outside the vocabulary.
    public func tokenPiece(_ id: Int32) throws -> String {
        try check(id)
        return spellings[Int(id)]
    }

    /// The raw bytes a token decodes to (may be part of a UTF-8 sequence). Throws for an id outside the vocabulary.
    public func tokenBytes(_ id: Int32) throws -> [UInt8] {
        try check(id)
        var bytes: [UInt8] = []
        appendBytes(of: id, to: &bytes)
        return bytes
    }

    /// Whether `id` is a special token (false for ids outside the vocabulary).
    public func isSpecial(_ id: Int32) -> Bool {
        id >= 0 && Int(id) < vocabularySize && specialFlags[Int(id)]
    }

    /// The id of a token given by its vocabulary spelling (added tokens by their content), if any.
    public func tokenID(forPiece piece: String) -> Int32? {
        if let added = addedTokens.first(where: { $0.content == piece }) { return added.id }
        if let raw = ByteLevelAlphabet.decode(piece), let id = model.vocabulary.get(raw) { return id }
        return nil
    }

    /// A detokenizer that turns ids into text one at a time without splitting UTF-8 sequences.
    public func makeStreamingDetokenizer(skipSpecial: Bool) -> StreamingDetokenizer {
        StreamingDetokenizer(tokenizer: self, skipSpecial: skipSpecial)
    }
}

/// Turns token ids into text incrementally. Each `push` returns the text that is now final; bytes of an incomplete
/// UTF-8 sequence are held back until the next token completes them (or `flush` emits them as U+FFFD). The pieces
/// concatenate to exactly `Tokenizer.decode` of the same ids.
public struct StreamingDetokenizer: Sendable {
    /// The tokenizer whose vocabulary decodes the ids.
    public let tokenizer: Tokenizer
    /// Whether special tokens are left out.
    public let skipSpecial: Bool
    private var pending: [UInt8] = []
    private var emittedAny = false

    /// A detokenizer over `tokenizer`'s vocabulary.
    public init(tokenizer: Tokenizer, skipSpecial: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Adds one token; returns the text that became complete (possibly empty). Throws `invalidArgument` for an id
    /// outside the vocabulary (the detokenizer is unchanged then).
    public mutating func push(_ id: Int32) throws -> String {
        try tokenizer.check(id)
        if skipSpecial && tokenizer.specialFlags[Int(id)] { return "" }
        if tokenizer.joinsWithSpaces {
            let text = (emittedAny ? " " : "") + tokenizer.spellings[Int(id)]
            emittedAny = true
            return text
        }
        tokenizer.appendBytes(of: id, to: &pending)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Emits whatever is held back (an incomplete sequence becomes U+FFFD, as in `decode`) and resets.
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// The length of the prefix of `bytes` whose decoding cannot change when more bytes follow: everything except a
    /// trailing, so far valid, incomplete multi-byte sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        var start = count - 1
        var continuation = 0
        while start >= 0 && continuation < 3 && bytes[start] & 0xC0 == 0x80 {
            start -= 1
            continuation += 1
        }
        guard start >= 0 else { return count }
        let lead = bytes[start]
        let needed: Int
        switch lead {
        case 0xC2...0xDF: needed = 2
        case 0xE0...0xEF: needed = 3
        case 0xF0...0xF4: needed = 4
        default: return count
        }
        let have = count - start
        guard have < needed else { return count }
        if have >= 2 {
            let second = bytes[start + 1]
            switch lead {
            case 0xE0: if second < 0xA0 { return count }
            case 0xED: if second > 0x9F { return count }
            case 0xF0: if second < 0x90 { return count }
            case 0xF4: if second > 0x8F { return count }
            default: break
            }
        }
        return start
    }
}
