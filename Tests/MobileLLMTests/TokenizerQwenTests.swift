import Foundation
import Testing
@testable import MobileLLM

/// Qwen2 / Qwen2.5 / Qwen3 tokenization (NFC + the Qwen2 split + ByteLevel, Qwen's added tokens) against HF
/// `tokenizers`, from the committed tokenizer.json fixture and from the Qwen2.5-Coder GGUF asset
/// (scripts/make_qwen_tokenizer_fixture.py).
@Suite("Tokenizer Qwen2.5 conformance with Hugging Face")
struct TokenizerQwenTests {
    static let qwen2Stages: [PreTokenizerStage] = [.split(.llama3(digitRun: 1), removeMatches: false),
                                                   .byteLevel(addPrefixSpace: false, useRegex: false)]

    @Test("Qwen2.5 tokenizer.json: NFC, the Qwen2 split and Qwen's added tokens are recognized")
    func jsonStructure() throws {
        let tokenizer = try TokenizerFixtures.qwen25JSONTokenizer()
        #expect(tokenizer.normalizer == .nfc)
        #expect(tokenizer.preTokenizer.stages == Self.qwen2Stages)
        #expect(tokenizer.vocabularySize == 151_936)
        #expect(tokenizer.eosToken == "<|im_end|>")
        #expect(tokenizer.bosTokenID == nil)
        #expect(tokenizer.chatTemplate?.contains("<|im_start|>") == true)
        for name in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                     "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_call>", "</tool_call>"] {
            #expect(tokenizer.tokenID(forPiece: name) != nil, "\(name)")
        }
        #expect(tokenizer.encode("<|im_start|>user\nhi<|im_end|>", addSpecial: true, parseSpecial: true)
                == [151_644, 872, 198, 6023, 151_645])
        // <tool_call> is USER_DEFINED in the GGUF (a plain added token: always matched, never skipped); the
        // CONTROL tokens are special (matched only with parseSpecial, skipped by skipSpecial).
        #expect(tokenizer.isSpecial(151_644) && tokenizer.isSpecial(151_659) && !tokenizer.isSpecial(151_657))
        #expect(tokenizer.encode("<tool_call>", addSpecial: false, parseSpecial: false) == [151_657])
        #expect(tokenizer.encode("<|im_start|>", addSpecial: false, parseSpecial: false).count > 1)
        #expect(tokenizer.encode("<|fim_prefix|>", addSpecial: false, parseSpecial: true) == [151_659])
        #expect(try tokenizer.decode([151_644, 151_657, 151_645], skipSpecial: true) == "<tool_call>")
        #expect(try tokenizer.decode([151_644, 151_657, 151_645], skipSpecial: false) == "<|im_start|><tool_call><|im_end|>")
        // Digits one by one (the difference from Llama-3's \p{N}{1,3}).
        let digits = tokenizer.encode("12345", addSpecial: false, parseSpecial: true)
        #expect(digits.count == 5)
        #expect(try tokenizer.decode(digits, skipSpecial: false) == "12345")
    }

    @Test("Qwen2.5 tokenizer.json: ids, specials, decode and streaming identical to HF on the corpus and the extras")
    func jsonCorpus() throws {
        try TokenizerConformanceTests().runCorpus(tokenizer: try TokenizerFixtures.qwen25JSONTokenizer(),
                                                  expectedFile: "qwen25.expected.jsonl")
    }

    @Test("Qwen2.5 tokenizer.json: random id sequences decode as HF decodes them, whole and streamed")
    func jsonDecodeCases() throws {
        try TokenizerConformanceTests().runDecodeCases(file: "qwen25.decode_cases.json",
                                                       tokenizers: [("qwen25", try TokenizerFixtures.qwen25JSONTokenizer())])
    }

    @Test("Qwen2.5 GGUF vocabulary (tokenizer.ggml.pre qwen2): ids, specials, decode and streaming identical to HF",
          .enabled(if: TokenizerFixtures.hasQwen25GGUF, TokenizerFixtures.qwen25Missing))
    func ggufCorpus() throws {
        let tokenizer = try TokenizerFixtures.tokenizer(TokenizerFixtures.qwen25GGUF)
        #expect(tokenizer.normalizer == .nfc)
        #expect(tokenizer.preTokenizer.stages == Self.qwen2Stages)
        try TokenizerConformanceTests().runCorpus(tokenizer: tokenizer, expectedFile: "qwen25.expected.jsonl")
        try TokenizerConformanceTests().runDecodeCases(file: "qwen25.decode_cases.json", tokenizers: [("qwen25", tokenizer)])
    }

    @Test("the GGUF vocabulary and the tokenizer.json fixture agree token for token and on every added token",
          .enabled(if: TokenizerFixtures.hasQwen25GGUF, TokenizerFixtures.qwen25Missing))
    func ggufMatchesJSON() throws {
        let gguf = try TokenizerFixtures.tokenizer(TokenizerFixtures.qwen25GGUF)
        let json = try TokenizerFixtures.qwen25JSONTokenizer()
        #expect(gguf.addedTokens.map(\.content) == json.addedTokens.map(\.content))
        #expect(gguf.addedTokens.map(\.special) == json.addedTokens.map(\.special))
        #expect(gguf.eosTokenID == json.eosTokenID)
        var differing = 0
        for id in 0..<min(gguf.vocabularySize, json.vocabularySize) where (try? gguf.tokenBytes(Int32(id))) != (try? json.tokenBytes(Int32(id))) {
            differing += 1
        }
        #expect(differing == 0)
    }

    @Test("GGUF export writes tokenizer.ggml.pre qwen2 and reloads to the same tokenizer")
    func ggufExport() throws {
        let tokenizer = try TokenizerFixtures.qwen25JSONTokenizer()
        #expect(tokenizer.ggufPreTokenizerName?.name == "qwen2")
        #expect(tokenizer.ggufPreTokenizerName?.exact == true)
        let json = try TokenizerFixtures.qwen25JSONTokenizer()
        let merges = try qwenMerges()
        let exported = try tokenizer.ggufMetadata(vocabularySize: 151_936, merges: merges, location: "test")
        #expect(exported.notes.isEmpty, "\(exported.notes)")
        var writer = try GGUFWriter()
        try writer.set("general.architecture", .string("qwen2"))
        for (key, value) in exported.metadata { try writer.set(key, value) }
        try writer.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(json.eosTokenID ?? 0)))
        let directory = try TemporaryDirectory()
        let path = directory.path + "/vocab.gguf"
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(try file.string("tokenizer.ggml.pre") == "qwen2")
        let types = try file.integerArray("tokenizer.ggml.token_type") ?? []
        #expect(types.count == 151_936)
        #expect(types[151_644] == 3, "<|im_start|> is CONTROL")
        let restored = try Tokenizer(gguf: file)
        #expect(restored.normalizer == .nfc)
        #expect(restored.addedTokens.map(\.content) == tokenizer.addedTokens.map(\.content))
        let corpus = try TokenizerFixtures.corpus().prefix(600)
        var differing = 0
        for text in corpus where restored.encode(text, addSpecial: true, parseSpecial: true) != tokenizer.encode(text, addSpecial: true, parseSpecial: true) {
            differing += 1
            if differing <= 3 { Issue.record("exported GGUF encodes differently: \(text.debugDescription.prefix(80))") }
        }
        #expect(differing == 0)
    }

    @Test("a Qwen2-style split without Qwen's NFC still exports as qwen2, with a note about normalization")
    func ggufExportWithoutNFC() throws {
        let pre = #"""
        {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
          {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}
        """#
        let plain = try Tokenizer.load(path: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON(pre: pre)))
        #expect(plain.preTokenizer.stages == Self.qwen2Stages)
        #expect(plain.ggufPreTokenizerName?.name == "qwen2")
        #expect(plain.ggufPreTokenizerName?.exact == false)
        let notes = try plain.ggufMetadata(vocabularySize: plain.vocabularySize, merges: TinyVocabulary.merges, location: "x").notes
        #expect(notes.count == 1 && notes[0].contains("NFC"), "\(notes)")
        let nfc = try Tokenizer.load(path: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON(pre: pre, normalizer: #"{"type": "NFC"}"#)))
        #expect(nfc.ggufPreTokenizerName?.exact == true)
        // Single digits: "2024" is four pieces.
        #expect(nfc.encode("2024", addSpecial: false, parseSpecial: true).count == 4)
    }

    /// The fixture tokenizer.json's merges, from the zip.
    private func qwenMerges() throws -> [String] {
        let directory = try TemporaryDirectory()
        return try Tokenizer.mergeStrings(tokenizerJSON: try TokenizerFixtures.extractQwen25("tokenizer.json", to: directory.path))
    }
}
