import Foundation
import Testing
@testable import MobileLLM

/// A real llama.cpp release whose tensors mix the quant types: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (asset
/// qwen25-coder of scripts/fetch_assets.py) stores the token embedding and most projections as Q5_0, the output as
/// Q8_0, the rest as Q4_K / Q6_K, vectors as F32. The reference (Tests/Fixtures/qwen25coder/reference.json, made by
/// scripts/make_qwen_quant_reference.py) is transformers run in float32 on the weights gguf-py dequantizes, fed token
/// ids (so no tokenizer is involved here).
@Suite("Qwen2.5-Coder Q4_K_M GGUF (Q5_0 / Q8_0 / Q4_K / Q6_K) against transformers", .serialized)
struct QwenQuantGGUFTests {
    struct Reference: Decodable {
        struct Position: Decodable {
            let argmax: Int
            let margin: Float
            let top_ids: [Int]
            let top_logits: [Float]
        }
        let tokens: [Int32]
        let positions: [Position]
    }

    static let path = TokenizerFixtures.assets.appendingPathComponent("qwen25-coder/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").path

    /// The asset's path; nil (skipping, and saying so) when it is absent because MOBILELLM_SKIP_LARGE_ASSETS=1 asked
    /// fetch_assets.py to leave it out, nil with a recorded failure when it is absent otherwise.
    static func asset() -> String? {
        if !FileManager.default.fileExists(atPath: path), ProcessInfo.processInfo.environment["MOBILELLM_SKIP_LARGE_ASSETS"] == "1" {
            print("QwenQuantGGUFTests: skipped, MOBILELLM_SKIP_LARGE_ASSETS=1 and \(path) is absent")
            return nil
        }
        return TokenizerFixtures.requireAsset(path)
    }

    static func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("qwen25coder/reference.json"))))
    }

    @Test("the file's tensor types are the ones this suite is about: Q5_0 embedding, Q8_0 output, Q4_K, Q6_K, F32")
    func types() throws {
        guard let path = Self.asset() else { return }
        let file = try GGUFFile(path: path)
        let counts = Dictionary(grouping: file.tensors, by: \.rawType).mapValues(\.count)
        #expect(Set(counts.keys) == Set([QuantType.f32, .q5_0, .q8_0, .q4_K, .q6_K].map { UInt32($0.rawValue) }), "\(counts)")
        #expect(file.tensors.first { $0.name == "token_embd.weight" }?.rawType == UInt32(QuantType.q5_0.rawValue))
        #expect(file.tensors.first { $0.name == "output.weight" }?.rawType == UInt32(QuantType.q8_0.rawValue))
    }

    /// Exact mode computes transformers' float32 model on the same dequantized weights, so only summation order
    /// separates them: the worst top-32 logit difference measured over 20 positions is 0.02 (logits reach about
    /// 20). The int8 activations of the fast mode add about 0.65 at worst. The bounds leave 2.5-3x headroom.
    @Test("exact and int8 activations: top-32 logits and arg-max at every position match transformers",
          arguments: [ActivationPrecision.exact, .int8])
    func logits(precision: ActivationPrecision) throws {
        guard let path = Self.asset() else { return }
        let reference = try Self.reference()
        let model = try Model(path: path, options: ModelLoadOptions(activationPrecision: precision))
        #expect(model.configuration.modelType == "qwen2" && model.isQuantized)
        let logits = try model.makeSession(contextLength: 64).feed(reference.tokens, logits: .all)
        let (tolerance, margin): (Float, Float) = precision == .exact ? (0.06, 0.05) : (1.5, 1.5)
        var worst: Float = 0
        for (position, expected) in reference.positions.enumerated() {
            let row = Array(logits.row(position)) // indexed from 0
            for (id, value) in zip(expected.top_ids, expected.top_logits) {
                let difference = abs(row[id] - value)
                worst = max(worst, difference)
                #expect(difference <= tolerance, "position \(position) token \(id): \(row[id]) vs transformers \(value)")
            }
            if expected.margin > margin {
                #expect(Sampler.argmax(row) == expected.argmax, "position \(position): arg-max (transformers' margin \(expected.margin))")
            }
        }
        print("Qwen2.5-Coder Q4_K_M \(precision): worst top-32 |Δlogit| vs transformers = \(worst)")
    }
}
