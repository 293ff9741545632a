
extension Tokenizer {
    /// The `tokenizer.ggml.pre` name whose pipeline (as `Tokenizer(gguf:)` and llama.cpp implement it) equals this
    /// tokenizer's pre-tokenizer, or nil when no known name matches. A name whose `ignore_merges` setting and
    /// normalizer also match is preferred; `exact` is false when only the pre-tokenizer stages match (e.g. a Llama-3
    /// tokenizer.json with `ignore_merges: false`, which llama.cpp also calls llama-bpe, or a Qwen2-style split
    /// without Qwen's NFC normalizer).
    var ggufPreTokenizerName: (name: String, exact: Bool)? {
        let names = ["llama-bpe", "smollm", "gpt-2", "qwen2"]
        let matching = names.filter { Self.ggufPreTokenizer($0)?.stages == preTokenizer.stages }
        if let exact = matching.first(where: {
            Self.ggufPreTokenizer($0)?.ignoreMerges == model.ignoreMerges && Self.ggufPreTokenizer($0)?.normalizer == normalizer
        }) {
            return (exact, true)
        }
        return matching.first.map { ($0, false) }
    }

    /// The merges of a `tokenizer.json` in rank order, as GGUF stores them ("left right").
    static func mergeStrings(tokenizerJSON path: String) throws -> [String] {
        let parsed = try FastJSON.parse(try readWholeFile(path), path: path, captureKey: "vocab")
        let root = try JSONObjectReader(parsed.value, path: path)
        guard let model = try root.optionalObject("model"), case let .array(items)? = model.members["merges"] else {
            throw MobileLLMError.invalidFile(path: path, field: "model.merges", problem: "missing or not an array")
        }
        return try items.enumerated().map { index, item in
            switch item {
            case let .string(text):
                return text
            case let .array(pair):
                if pair.count == 2, case let .string(left) = pair[0], case let .string(right) = pair[1] { return left + " " + right }
                throw MobileLLMError.invalidFile(path: path, field: "model.merges[\(index)]", problem: "expected \"left right\" or a pair of strings")
            default:
                throw MobileLLMError.invalidFile(path: path, field: "model.merges[\(index)]", problem: "expected \"left right\" or a pair of strings")
            }
        }
    }

    /// GGUF tokenizer metadata in llama.cpp's layout: `tokenizer.ggml.model` "gpt2", the pre-tokenizer name, one
    /// token and type per id up to `vocabularySize` (ids the tokenizer lacks become `[PAD<id>]` of type UNUSED; added
    /// special tokens are CONTROL, other added tokens USER_DEFINED), the merges and whether BOS/EOS are added. The
    /// caller adds `tokenizer.ggml.bos_token_id` / `eos_token_id` (they depend on the model's configuration too);
    /// with them `Tokenizer(gguf:)` rebuilds an equivalent tokenizer.
    ///
    /// Throws `unsupported` naming `location` when the pre-tokenizer has no GGUF name, when the post-processor adds
    /// something other than a single BOS / EOS, or when the tokenizer has more ids than `vocabularySize`.
    ///
    /// `notes` says when the GGUF pipeline differs in `ignore_merges` from this tokenizer (rare words may then split
    /// differently, as they do in llama.cpp for the same file).
    func ggufMetadata(vocabularySize: Int, merges: [String], location: String) throws -> (metadata: [(String, GGUFValue)], notes: [String]) {
        guard let (pre, exact) = ggufPreTokenizerName else {
            throw MobileLLMError.unsupported(path: location, feature: "pre_tokenizer \(preTokenizer.stages) has no GGUF tokenizer.ggml.pre name (known: llama-bpe, smollm, gpt-2, qwen2)")
        }
        guard spellings.count <= vocabularySize else {
            throw MobileLLMError.unsupported(path: location, feature: "the tokenizer has \(spellings.count) ids but the model's vocabulary has \(vocabularySize) rows")
        }
        guard prefixIDs.isEmpty || (bosTokenID != nil && prefixIDs == [bosTokenID!]) else {
            throw MobileLLMError.unsupported(path: location, feature: "post_processor adds \(prefixIDs) before the text (GGUF can only say: add BOS)")
        }
        guard suffixIDs.isEmpty || (eosTokenID != nil && suffixIDs == [eosTokenID!]) else {
            throw MobileLLMError.unsupported(path: location, feature: "post_processor adds \(suffixIDs) after the text (GGUF can only say: add EOS)")
        }
        var tokens: [String] = []
        var types: [Int32] = []
        tokens.reserveCapacity(vocabularySize)
        types.reserveCapacity(vocabularySize)
        var addedByID: [Int32: AddedToken] = [:]
        for token in addedTokens { addedByID[token.id] = token }
        for id in 0..<vocabularySize {
            if id < spellings.count, present[id] {
                tokens.append(spellings[id])
                if let added = addedByID[Int32(id)] {
                    types.append(added.special ? 3 : 4)
                } else {
                    types.append(1)
                }
            } else {
                tokens.append("[PAD\(id)]")
                types.append(5)
            }
        }
        var metadata: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(.string(tokens))),
            ("tokenizer.ggml.token_type", .array(.int32(types))),
            ("tokenizer.ggml.merges", .array(.string(merges))),
        ]
        metadata.append(("tokenizer.ggml.add_bos_token", .bool(!prefixIDs.isEmpty)))
        metadata.append(("tokenizer.ggml.add_eos_token", .bool(!suffixIDs.isEmpty)))
        var notes: [String] = []
        if !exact, let pipeline = Self.ggufPreTokenizer(pre) {
            if pipeline.ignoreMerges != model.ignoreMerges {
                notes.append("\(location): tokenizer.ggml.pre \"\(pre)\" implies ignore_merges \(pipeline.ignoreMerges) but the tokenizer has \(model.ignoreMerges); a few words may tokenize differently from tokenizer.json (llama.cpp's converter writes the same name)")
            }
            if pipeline.normalizer != normalizer {
                let implied = pipeline.normalizer.map { "\($0)".uppercased() } ?? "no"
                let has = normalizer.map { "\($0)".uppercased() } ?? "no"
                notes.append("\(location): tokenizer.ggml.pre \"\(pre)\" implies \(implied) normalization but the tokenizer has \(has) normalizer; text that is not already in NFC may tokenize differently from tokenizer.json")
            }
        }
        return (metadata, notes)
    }
}
