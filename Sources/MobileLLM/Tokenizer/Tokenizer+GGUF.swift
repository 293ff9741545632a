extension Tokenizer {
    /// The tokenizer.json pipeline a `tokenizer.ggml.pre` name stands for.
    struct GGUFPipeline {
        var normalizer: TextNormalizer?
        var stages: [PreTokenizerStage]
        var ignoreMerges: Bool
        var addBOS: Bool
    }

    /// llama.cpp's `tokenizer.ggml.pre` names we implement, with the HF pipeline each stands for.
    static func ggufPreTokenizer(_ name: String) -> GGUFPipeline? {
        let qwen2Stages: [PreTokenizerStage] = [.split(.llama3(digitRun: 1), removeMatches: false),
                                                .byteLevel(addPrefixSpace: false, useRegex: false)]
        switch name {
        case "llama3", "llama-v3", "llama-bpe", "falcon3":
            return GGUFPipeline(stages: [.split(.llama3(digitRun: 3), removeMatches: false), .byteLevel(addPrefixSpace: false, useRegex: false)],
                                ignoreMerges: true, addBOS: true)
        case "gpt-2", "gpt2":
            return GGUFPipeline(stages: [.byteLevel(addPrefixSpace: false, useRegex: true)], ignoreMerges: false, addBOS: false)
        case "smollm", "starcoder", "refact":
            // SmolLM2's tokenizer.json: Digits(individual_digits) then ByteLevel with the GPT-2 regex.
            return GGUFPipeline(stages: [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)],
                                ignoreMerges: false, addBOS: false)
        case "qwen2":
            // Qwen2 / Qwen2.5 / Qwen3's tokenizer.json: NFC, then Split on the Qwen2 regex (single digits), then
            // ByteLevel without its regex. llama.cpp does not normalize; this follows the model's own tokenizer
            // (the two differ only on text that is not in NFC).
            return GGUFPipeline(normalizer: .nfc, stages: qwen2Stages, ignoreMerges: false, addBOS: false)
        case "deepseek-r1-qwen":
            return GGUFPipeline(stages: qwen2Stages, ignoreMerges: false, addBOS: false)
        default:
            return nil
        }
    }

    /// Loads the vocabulary of a GGUF file (`tokenizer.ggml.model` = `gpt2`: tokens, token types, merges, and the
    /// pre-tokenizer named by `tokenizer.ggml.pre`, with the normalizer of that model family's tokenizer.json, e.g. NFC
    /// for `qwen2`); BOS/EOS and `add_bos_token`/`add_eos_token` come from the file's
    /// metadata. Control tokens (type 3) become special added tokens and user-defined ones (type 4) plain added
    /// tokens, as transformers does when it builds a tokenizer from a GGUF.
    public convenience init(gguf: GGUFFile) throws {
        let path = gguf.path
        guard let model = try gguf.string("tokenizer.ggml.model") else {
            throw MobileLLMError.invalidFile(path: path, field: "tokenizer.ggml.model", problem: "missing: the file has no tokenizer")
        }
        guard model == "gpt2" else {
            throw MobileLLMError.unsupported(path: path, feature: "tokenizer.ggml.model \"\(model)\" (only byte-level BPE \"gpt2\" is implemented)")
        }
        guard let pre = try gguf.string("tokenizer.ggml.pre") else {
            throw MobileLLMError.unsupported(path: path, feature: "tokenizer.ggml.pre missing (the pre-tokenizer must be named)")
        }
        guard let pipeline = Self.ggufPreTokenizer(pre) else {
            throw MobileLLMError.unsupported(path: path, feature: "tokenizer.ggml.pre \"\(pre)\" (implemented: llama3/llama-bpe, gpt-2, smollm, starcoder, qwen2)")
        }
        guard let tokens = try gguf.stringArray("tokenizer.ggml.tokens"), !tokens.isEmpty else {
            throw MobileLLMError.invalidFile(path: path, field: "tokenizer.ggml.tokens", problem: "missing or empty (expected an array of strings)")
        }
        guard tokens.count < 16_777_216 else {
            throw MobileLLMError.invalidFile(path: path, field: "tokenizer.ggml.tokens", problem: "\(tokens.count) tokens is too many")
        }
        let types = try gguf.integerArray("tokenizer.ggml.token_type") ?? [Int](repeating: 1, count: tokens.count)
        guard types.count == tokens.count else {
            throw MobileLLMError.invalidFile(path: path, field: "tokenizer.ggml.token_type", problem: "\(types.count) entries for \(tokens.count) tokens")
        }
        guard let mergeStrings = try gguf.stringArray("tokenizer.ggml.merges") else {
            throw MobileLLMError.invalidFile(path: path, field: "tokenizer.ggml.merges", problem: "missing (a gpt2 vocabulary needs merges)")
        }
        var added: [AddedToken] = []
        for (index, type) in types.enumerated() where type == 3 || type == 4 {
            guard !tokens[index].isEmpty else { continue }
            added.append(AddedToken(id: Int32(index), content: tokens[index], special: type == 3))
        }
        let entries = tokens.enumerated().map { ($0.element, Int32($0.offset)) }
        let bpe = try Self.buildModel(tokens: entries, merges: .joined(mergeStrings), ignoreMerges: pipeline.ignoreMerges, path: path,
                                      mergesField: "tokenizer.ggml.merges")
        func tokenID(_ key: String) throws -> Int32? {
            guard let id = try gguf.integer(key) else { return nil }
            guard id >= 0, id < tokens.count else {
                throw MobileLLMError.invalidFile(path: path, field: key, problem: "token id \(id) is outside the vocabulary of \(tokens.count)")
            }
            return Int32(id)
        }
        var parts = Parts(path: path, spellings: tokens, present: [Bool](repeating: true, count: tokens.count),
                          addedTokens: added, preTokenizer: PreTokenizer(stages: pipeline.stages), model: bpe)
        parts.normalizer = pipeline.normalizer
        parts.bosTokenID = try tokenID("tokenizer.ggml.bos_token_id")
        parts.eosTokenID = try tokenID("tokenizer.ggml.eos_token_id")
        if try gguf.bool("tokenizer.ggml.add_bos_token") ?? pipeline.addBOS, let bos = parts.bosTokenID {
            parts.prefixIDs = [bos]
        }
        if try gguf.bool("tokenizer.ggml.add_eos_token") ?? false, let eos = parts.eosTokenID {
            parts.suffixIDs = [eos]
        }
        parts.chatTemplate = try gguf.string("tokenizer.chat_template")
        self.init(parts: parts)
    }
}
