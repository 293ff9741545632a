import Foundation
import Testing
@testable import MobileLLM

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by scripts/fetch_assets.py) re-quantized by the GGUF writer and
/// quantized on load: metadata carried over, and the greedy chat answer still right.
@Suite("Re-quantizing the SmolLM2 GGUF", .serialized)
struct QuantizeRealModelTests {
    static func answer(_ model: Model) throws -> String {
        let text = try model.applyChatTemplate([ChatMessage(role: "user", content: "What is the capital of France?")])
        let prompt = try model.tokenizer().encode(text, addSpecial: false, parseSpecial: true)
        let result = try model.makeSession().generate(prompt: prompt, options: GenerationOptions(maxTokens: 24))
        return try model.tokenizer().decode(result.tokens, skipSpecial: true)
    }

    @Test("Q4_1 GGUF -> Q8_0 GGUF: same tokenizer metadata and configuration, same chat answer")
    func requantizeToQ8() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let directory = try TemporaryDirectory()
        let out = directory.path + "/smollm2.q8_0.gguf"
        let report = try GGUFExport.write(modelAt: path, to: out, options: GGUFExportOptions(type: .q8_0))
        #expect(report.typeCounts["q8_0"] == 211)
        let source = try GGUFFile(path: path), written = try GGUFFile(path: out)
        for key in source.metadataKeys where key.hasPrefix("tokenizer.") {
            #expect(written.metadata[key] == source.metadata[key], "\(key)")
        }
        #expect(written.metadata["general.name"] == source.metadata["general.name"])
        let model = try Model(path: out)
        #expect(model.configuration == (try Model(path: path)).configuration)
        #expect(try Self.answer(model) == "The capital of France is Paris.")
    }

    @Test("quantize on load from the GGUF (Q4_1 -> Q8_0) equals the re-quantized file")
    func quantizeOnLoadFromGGUF() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let directory = try TemporaryDirectory()
        let out = directory.path + "/smollm2.q8_0.gguf"
        try GGUFExport.write(modelAt: path, to: out, options: GGUFExportOptions(type: .q8_0))
        let file = try Model(path: out)
        let loaded = try Model(path: path, options: ModelLoadOptions(quantize: .q8_0))
        let tokens: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2]
        let a = try file.makeSession().feed(tokens, logits: .all)
        let b = try loaded.makeSession().feed(tokens, logits: .all)
        #expect(a == b)
    }
}
