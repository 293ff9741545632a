
extension Tokenizer {
    /// Loads a Hugging Face `tokenizer.json` (byte-level BPE), and from `tokenizerConfig` (tokenizer_config.json) the
    /// BOS/EOS token names and the chat template. Every `type` we do not implement throws `unsupported` naming the file
    /// and the type; malformed content throws `invalidFile` naming the file and field.
    public convenience init(tokenizerJSON path: String, tokenizerConfig configPath: String? = nil) throws {
        try self.init(tokenizerJSON: path, tokenizerConfig: configPath, parsedConfig: try configPath.map { try FastJSON.load(path: $0) })
    }

    /// The same, with tokenizer_config.json (at `configPath`, named in errors) already parsed as `parsedConfig`, so
    /// a model that also reads its chat template from the file parses it once.
    convenience init(tokenizerJSON path: String, tokenizerConfig configPath: String?, parsedConfig: JSONValue?) throws {
        let data = try readWholeFile(path)
        let parsed = try FastJSON.parse(data, path: path, captureKey: "vocab")
        let root = try JSONObjectReader(parsed.value, path: path)
        guard let modelReader = try root.optionalObject("model") else {
            throw MobileLLMError.invalidFile(path: path, field: "model", problem: "missing (expected the tokenizer model object)")
        }
        let modelType = try modelReader.optionalString("type") ?? (modelReader.has("merges") ? "BPE" : "(none)")
        guard modelType == "BPE" else {
            throw MobileLLMError.unsupported(path: path, feature: "model.type \"\(modelType)\" (only byte-level \"BPE\" is implemented)")
        }
        if let dropout = try modelReader.optionalDouble("dropout"), dropout != 0 {
            throw MobileLLMError.unsupported(path: path, feature: "model.dropout \(dropout)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = try modelReader.optionalString(key), !value.isEmpty {
                throw MobileLLMError.unsupported(path: path, feature: "model.\(key) \"\(value)\"")
            }
        }
        if try modelReader.optionalBool("byte_fallback") == true {
            throw MobileLLMError.unsupported(path: path, feature: "model.byte_fallback true")
        }
        let ignoreMerges = try modelReader.optionalBool("ignore_merges") ?? false

        // Normalizer: none or NFC.
        var normalizer: TextNormalizer?
        if let normalizerReader = try root.optionalObject("normalizer") {
            normalizer = try Self.normalizer(normalizerReader, path: path)
        }

        // Pre-tokenizer.
        guard let preReader = try root.optionalObject("pre_tokenizer") else {
            throw MobileLLMError.unsupported(path: path, feature: "pre_tokenizer null (a byte-level BPE needs a ByteLevel pre-tokenizer)")
        }
        let stages = try Self.preTokenizerStages(preReader, path: path)
        guard stages.contains(where: { if case .byteLevel = $0 { return true } else { return false } }) else {
            throw MobileLLMError.unsupported(path: path, feature: "pre_tokenizer without a ByteLevel stage (only byte-level BPE is implemented)")
        }
        if stages.dropFirst().contains(where: { if case .byteLevel(true, _) = $0 { return true } else { return false } }) {
            throw MobileLLMError.unsupported(path: path, feature: "pre_tokenizer ByteLevel with add_prefix_space after another stage")
        }

        // Vocabulary.
        let vocab: [(String, JSONValue)]
        if root.members["model"] != nil, let captured = parsed.captured, modelReader.members["vocab"] == .null {
            vocab = captured
        } else if case let .object(members)? = modelReader.members["vocab"] {
            vocab = members.map { ($0.key, $0.value) }
        } else {
            throw MobileLLMError.invalidFile(path: path, field: "model.vocab", problem: "missing or not an object of token → id")
        }
        var maxID = -1
        var entries: [(String, Int32)] = []
        entries.reserveCapacity(vocab.count)
        for (token, value) in vocab {
            guard case let .number(number) = value, number >= 0, number < 16_777_216, number.rounded() == number else {
                throw MobileLLMError.invalidFile(path: path, field: "model.vocab[\"\(token)\"]", problem: "expected a token id in 0..<16777216, found \(value.summary)")
            }
            entries.append((token, Int32(number)))
            maxID = max(maxID, Int(number))
        }

        // Added tokens.
        var added: [AddedToken] = []
        if let addedValue = root.members["added_tokens"], addedValue != .null {
            guard case let .array(items) = addedValue else {
                throw MobileLLMError.invalidFile(path: path, field: "added_tokens", problem: "expected an array, found \(addedValue.typeName)")
            }
            for (index, item) in items.enumerated() {
                let reader = try JSONObjectReader(item, path: path, prefix: "added_tokens[\(index)].")
                let id = try reader.int("id", in: 0...16_777_215)
                guard let content = try reader.optionalString("content"), !content.isEmpty else {
                    throw reader.fail("content", "missing or empty (expected the token text)")
                }
                added.append(AddedToken(id: Int32(id), content: content,
                                        special: try reader.optionalBool("special") ?? false,
                                        singleWord: try reader.optionalBool("single_word") ?? false,
                                        lstrip: try reader.optionalBool("lstrip") ?? false,
                                        rstrip: try reader.optionalBool("rstrip") ?? false,
                                        normalized: try reader.optionalBool("normalized") ?? false))
                maxID = max(maxID, id)
            }
        }
        // Tables are sized by the highest id: a few tokens with huge ids must not make them huge.
        guard maxID < entries.count + added.count + Self.maximumUnusedIDs else {
            let owner = added.contains { Int($0.id) == maxID } ? "added_tokens" : "model.vocab"
            throw MobileLLMError.invalidFile(path: path, field: owner,
                                             problem: "token id \(maxID) leaves more than \(Self.maximumUnusedIDs) ids unused (expected ids below \(entries.count + added.count + Self.maximumUnusedIDs) for \(entries.count + added.count) tokens)")
        }
        var spellings = [String](repeating: "", count: maxID + 1)
        var present = [Bool](repeating: false, count: maxID + 1)
        for (token, id) in entries {
            spellings[Int(id)] = token
            present[Int(id)] = true
        }
        for token in added {
            spellings[Int(token.id)] = token.content
            present[Int(token.id)] = true
        }

        // Merges.
        guard let mergesValue = modelReader.members["merges"], case let .array(mergeItems) = mergesValue else {
            throw MobileLLMError.invalidFile(path: path, field: "model.merges", problem: "missing or not an array")
        }
        let merges: MergeList
        if mergeItems.allSatisfy({ if case .string = $0 { return true } else { return false } }) {
            merges = .joined(mergeItems.map { if case let .string(text) = $0 { return text } else { return "" } })
        } else {
            var pairs: [(String, String)] = []
            pairs.reserveCapacity(mergeItems.count)
            for (index, item) in mergeItems.enumerated() {
                guard case let .array(pair) = item, pair.count == 2, case let .string(left) = pair[0], case let .string(right) = pair[1] else {
                    throw MobileLLMError.invalidFile(path: path, field: "model.merges[\(index)]", problem: "expected \"left right\" or a pair of strings, found \(item.typeName)")
                }
                pairs.append((left, right))
            }
            merges = .pairs(pairs)
        }
        let model = try Self.buildModel(tokens: entries, merges: merges, ignoreMerges: ignoreMerges, path: path, mergesField: "model.merges")

        var parts = Parts(path: path, spellings: spellings, present: present, addedTokens: added,
                          preTokenizer: PreTokenizer(stages: stages), model: model)
        parts.normalizer = normalizer

        // Post-processor.
        if let post = try root.optionalObject("post_processor") {
            let (prefix, suffix) = try Self.postProcessor(post, path: path)
            for id in prefix + suffix where id < 0 || Int(id) >= present.count || !present[Int(id)] {
                throw MobileLLMError.invalidFile(path: path, field: "post_processor", problem: "special token id \(id) is not in the vocabulary")
            }
            parts.prefixIDs = prefix
            parts.suffixIDs = suffix
        }

        // Decoder.
        if let decoder = try root.optionalObject("decoder") {
            try Self.checkDecoder(decoder, path: path)
        } else {
            parts.byteLevelDecoder = false
        }

        // tokenizer_config.json: token names and the chat template.
        if let configPath, let parsedConfig {
            let config = try JSONObjectReader(parsedConfig, path: configPath)
            func tokenName(_ key: String) throws -> String? {
                guard let value = config.members[key], value != .null else { return nil }
                if case let .string(text) = value { return text }
                if case .object = value { return try config.optionalObject(key)?.optionalString("content") }
                throw config.fail(key, "expected a string or an object with \"content\", found \(value.typeName)")
            }
            func idOf(_ name: String?) -> Int32? {
                guard let name else { return nil }
                if let token = added.first(where: { $0.content == name }) { return token.id }
                return entries.first(where: { $0.0 == name })?.1
            }
            // added_tokens_decoder repeats tokenizer.json's added tokens by id: it must agree with them.
            if let decoder = try config.optionalObject("added_tokens_decoder") {
                for (key, value) in decoder.members {
                    let field = "added_tokens_decoder.\(key)"
                    guard let id = Int(key), id >= 0 else { throw config.fail(field, "expected a token id as the key, found \"\(key)\"") }
                    guard let content = try JSONObjectReader(value, path: configPath, prefix: field + ".").optionalString("content") else {
                        throw config.fail(field + ".content", "missing (expected the token text)")
                    }
                    guard id < present.count, present[id], spellings[id] == content else {
                        let found = id < present.count && present[id] ? "\"\(spellings[id])\"" : "no token"
                        throw config.fail(field, "\"\(content)\" disagrees with tokenizer.json, which has \(found) with id \(id) (expected the same token)")
                    }
                }
            }
            parts.bosTokenID = idOf(try tokenName("bos_token"))
            parts.eosTokenID = idOf(try tokenName("eos_token"))
            if let template = config.members["chat_template"] {
                switch template {
                case let .string(text):
                    parts.chatTemplate = text
                case let .array(items):
                    // A list of {"name", "template"}: the one named "default".
                    for item in items {
                        if case let .object(members) = item, members["name"] == .string("default"),
                           case let .string(text)? = members["template"] {
                            parts.chatTemplate = text
                        }
                    }
                default:
                    break
                }
            }
        }
        self.init(parts: parts)
    }

    /// Most ids a tokenizer.json may leave without a token (real vocabularies are dense).
    static let maximumUnusedIDs = 65_536

    /// The normalizer a tokenizer.json `normalizer` object stands for: NFC, or nil for none (an empty `Sequence`).
    /// A `Sequence` may repeat NFC (it is idempotent). Every other type throws `unsupported` naming the file and type.
    static func normalizer(_ reader: JSONObjectReader, path: String) throws -> TextNormalizer? {
        let type = try reader.optionalString("type") ?? "(missing)"
        switch type {
        case "NFC":
            return .nfc
        case "Sequence":
            guard let items = reader.members["normalizers"], case let .array(list) = items else {
                throw reader.fail("normalizers", "missing or not an array")
            }
            var result: TextNormalizer?
            for (index, item) in list.enumerated() {
                let stage = try normalizer(try JSONObjectReader(item, path: path, prefix: reader.prefix + "normalizers[\(index)]."), path: path)
                result = result ?? stage
            }
            return result
        default:
            throw MobileLLMError.unsupported(path: path, feature: "\(reader.prefix)normalizer type \"\(type)\" (implemented: NFC, or none)")
        }
    }

    static func preTokenizerStages(_ reader: JSONObjectReader, path: String) throws -> [PreTokenizerStage] {
        guard let type = try reader.optionalString("type") else {
            throw reader.fail("type", "missing (expected the pre-tokenizer type)")
        }
        switch type {
        case "Sequence":
            guard let value = reader.members["pretokenizers"], case let .array(items) = value else {
                throw reader.fail("pretokenizers", "missing or not an array")
            }
            return try items.enumerated().flatMap { index, item in
                try preTokenizerStages(try JSONObjectReader(item, path: path, prefix: reader.prefix + "pretokenizers[\(index)]."), path: path)
            }
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: try reader.optionalBool("add_prefix_space") ?? true,
                               useRegex: try reader.optionalBool("use_regex") ?? true)]
        case "Digits":
            return [.digits(individual: try reader.optionalBool("individual_digits") ?? false)]
        case "Split":
            guard let pattern = try reader.optionalObject("pattern") else { throw reader.fail("pattern", "missing") }
            guard let regex = try pattern.optionalString("Regex") else {
                throw MobileLLMError.unsupported(path: path, feature: "\(reader.prefix)pattern: only {\"Regex\": ...} split patterns are implemented")
            }
            guard let split = SplitPattern.forRegex(regex) else {
                throw MobileLLMError.unsupported(path: path, feature: "\(reader.prefix)pattern.Regex \"\(regex)\" (implemented: the Llama-3, Qwen2 and GPT-2 patterns)")
            }
            if try reader.optionalBool("invert") == true {
                throw MobileLLMError.unsupported(path: path, feature: "\(reader.prefix)invert true")
            }
            let behavior = try reader.optionalString("behavior") ?? "Isolated"
            switch behavior {
            case "Isolated": return [.split(split, removeMatches: false)]
            case "Removed": return [.split(split, removeMatches: true)]
            default: throw MobileLLMError.unsupported(path: path, feature: "\(reader.prefix)behavior \"\(behavior)\"")
            }
        default:
            throw MobileLLMError.unsupported(path: path, feature: "pre_tokenizer type \"\(type)\"")
        }
    }

    /// The ids before and after the text for a single sequence.
    static func postProcessor(_ reader: JSONObjectReader, path: String) throws -> ([Int32], [Int32]) {
        guard let type = try reader.optionalString("type") else { throw reader.fail("type", "missing") }
        switch type {
        case "ByteLevel":
            return ([], [])
        case "Sequence":
            guard let value = reader.members["processors"], case let .array(items) = value else {
                throw reader.fail("processors", "missing or not an array")
            }
            var prefix: [Int32] = [], suffix: [Int32] = []
            for (index, item) in items.enumerated() {
                let (p, s) = try postProcessor(try JSONObjectReader(item, path: path, prefix: reader.prefix + "processors[\(index)]."), path: path)
                prefix += p
                suffix = s + suffix
            }
            return (prefix, suffix)
        case "TemplateProcessing":
            guard let value = reader.members["single"], case let .array(items) = value else {
                throw reader.fail("single", "missing or not an array")
            }
            var specials: [String: [Int32]] = [:]
            if let tokens = try reader.optionalObject("special_tokens") {
                for (name, entry) in tokens.members {
                    let entryReader = try JSONObjectReader(entry, path: path, prefix: tokens.prefix + name + ".")
                    guard let ids = try entryReader.optionalIntArray("ids") else { throw entryReader.fail("ids", "missing") }
                    specials[name] = ids.map { Int32(truncatingIfNeeded: $0) }
                }
            }
            var prefix: [Int32] = [], suffix: [Int32] = []
            var seenSequence = false
            for (index, item) in items.enumerated() {
                let itemReader = try JSONObjectReader(item, path: path, prefix: reader.prefix + "single[\(index)].")
                if let special = try itemReader.optionalObject("SpecialToken") {
                    guard let name = try special.optionalString("id"), let ids = specials[name] else {
                        throw itemReader.fail("SpecialToken", "names a token missing from special_tokens")
                    }
                    if seenSequence { suffix += ids } else { prefix += ids }
                } else if let sequence = try itemReader.optionalObject("Sequence") {
                    guard try sequence.optionalString("id") == "A", !seenSequence else {
                        throw MobileLLMError.unsupported(path: path, feature: "\(itemReader.prefix)Sequence other than one \"A\" in a single template")
                    }
                    seenSequence = true
                } else {
                    throw itemReader.fail("(item)", "expected SpecialToken or Sequence")
                }
            }
            return (prefix, suffix)
        default:
            throw MobileLLMError.unsupported(path: path, feature: "post_processor type \"\(type)\"")
        }
    }

    static func checkDecoder(_ reader: JSONObjectReader, path: String) throws {
        let type = try reader.optionalString("type") ?? "(missing)"
        guard type == "ByteLevel" else {
            throw MobileLLMError.unsupported(path: path, feature: "decoder type \"\(type)\" (only ByteLevel is implemented)")
        }
    }

    /// Merges as tokenizer.json (either format) or GGUF stores them.
    enum MergeList {
        /// "left right" strings.
        case joined([String])
        /// [left, right] pairs.
        case pairs([(String, String)])

        var count: Int {
            switch self {
            case let .joined(list): return list.count
            case let .pairs(list): return list.count
            }
        }
    }

    /// Builds the BPE tables from spelled tokens and merges. Tokens not spelled in the byte-level alphabet cannot come
    /// out of BPE on bytes and are left out of the lookup table (they stay decodable). Works on UTF-8 bytes
    /// throughout: Swift `String` hashing would dominate the load time.
    static func buildModel(tokens: [(String, Int32)], merges: MergeList, ignoreMerges: Bool, path: String,
                           mergesField: String) throws -> BytePairModel {
        var table = ByteTable(capacity: tokens.count)
        var byteIDs = [Int32](repeating: -1, count: 256)
        // Spellings in id order, for the merged-token guess below.
        var maxID = -1
        for (_, id) in tokens { maxID = max(maxID, Int(id)) }
        var spellingOfID = [String?](repeating: nil, count: maxID + 1)
        for (spelling, id) in tokens {
            let spelling = spelling
            spellingOfID[Int(id)] = spelling
            guard let raw = ByteLevelAlphabet.decode(spelling), !raw.isEmpty else { continue }
            table.insert(raw, value: id)
            if raw.count == 1 { byteIDs[Int(raw[0])] = id }
        }
        var arena: [UInt8] = []
        var offsets = [Int](repeating: 0, count: maxID + 2)
        for id in 0...max(maxID, 0) where id <= maxID {
            if var spelling = spellingOfID[id] { spelling.withUTF8 { arena.append(contentsOf: $0) } }
            offsets[id + 1] = arena.count
        }
        spellingOfID = []
        let bySpelling = SpellingIndex(arena: arena, offsets: offsets)
        /// Whether token `id` is spelled exactly `bytes`.
        func isSpelled(_ id: Int, _ bytes: [UInt8]) -> Bool {
            guard id >= 0, id <= maxID, offsets[id + 1] - offsets[id] == bytes.count else { return false }
            let start = offsets[id]
            for index in 0..<bytes.count where arena[start + index] != bytes[index] { return false }
            return true
        }
        // In BPE vocabularies merged ids mostly follow the merge order (the same id or the next one), so try those
        // two before a hash lookup: sequential memory instead of a cache miss per merge.
        var lastMerged = -1
        var mergeTable = MergeTable(capacity: merges.count)
        var joined: [UInt8] = []
        func add(_ rank: Int, _ left: UnsafeBufferPointer<UInt8>, _ right: UnsafeBufferPointer<UInt8>) throws {
            var field: String { "\(mergesField)[\(rank)]" }
            guard let leftID = bySpelling.get(left) else {
                throw MobileLLMError.invalidFile(path: path, field: field, problem: "token \"\(String(decoding: left, as: UTF8.self))\" is not in the vocabulary")
            }
            guard let rightID = bySpelling.get(right) else {
                throw MobileLLMError.invalidFile(path: path, field: field, problem: "token \"\(String(decoding: right, as: UTF8.self))\" is not in the vocabulary")
            }
            joined.removeAll(keepingCapacity: true)
            joined.append(contentsOf: left)
            joined.append(contentsOf: right)
            let mergedID: Int32
            if isSpelled(lastMerged, joined) {
                mergedID = Int32(lastMerged)
            } else if isSpelled(lastMerged + 1, joined) {
                mergedID = Int32(lastMerged + 1)
            } else if let found = joined.withUnsafeBufferPointer({ bySpelling.get($0) }) {
                mergedID = found
            } else {
                throw MobileLLMError.invalidFile(path: path, field: field, problem: "merged token \"\(String(decoding: joined, as: UTF8.self))\" is not in the vocabulary")
            }
            lastMerged = Int(mergedID)
            mergeTable.insert(leftID, rightID, rank: Int32(rank), result: mergedID)
        }
        switch merges {
        case let .joined(list):
            for (rank, original) in list.enumerated() {
                var text = original
                try text.withUTF8 { bytes in
                    var space = -1
                    for index in 0..<bytes.count where bytes[index] == 0x20 {
                        guard space < 0 else { space = -2; break }
                        space = index
                    }
                    guard space >= 0 else {
                        throw MobileLLMError.invalidFile(path: path, field: "\(mergesField)[\(rank)]", problem: "expected \"left right\", found \"\(original)\"")
                    }
                    try add(rank, UnsafeBufferPointer(rebasing: bytes[0..<space]), UnsafeBufferPointer(rebasing: bytes[(space + 1)...]))
                }
            }
        case let .pairs(list):
            for (rank, pair) in list.enumerated() {
                var left = pair.0, right = pair.1
                try left.withUTF8 { l in try right.withUTF8 { r in try add(rank, l, r) } }
            }
        }
        return BytePairModel(vocabulary: table, byteIDs: byteIDs, merges: mergeTable, ignoreMerges: ignoreMerges)
    }
}
