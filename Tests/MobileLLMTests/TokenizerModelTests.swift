import Foundation
import Testing
@testable import MobileLLM

@Suite("Model tokenizer")
struct TokenizerModelTests {
    @Test("A model directory without tokenizer files loads; its text interface throws tokenizerMissing")
    func missing() throws {
        let path = TokenizerFixtures.root.appendingPathComponent("Tests/Fixtures/llama-f16").path
        let model = try Model(path: path, options: ModelLoadOptions(threadCount: 1))
        #expect(throws: MobileLLMError.tokenizerMissing(path: path)) { try model.tokenizer() }
        #expect(throws: MobileLLMError.tokenizerMissing(path: path)) { try model.tokenizer() }
    }

    @Test("A model directory with tokenizer.json loads it once, lazily")
    func present() throws {
        guard let tokenizerDirectory = TokenizerFixtures.requireAsset(TokenizerFixtures.llama3Directory) else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-tok-model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let fixture = TokenizerFixtures.root.appendingPathComponent("Tests/Fixtures/llama-f16")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) {
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: tokenizerDirectory + "/" + name, toPath: directory.appendingPathComponent(name).path)
        }
        let model = try Model(path: directory.path, options: ModelLoadOptions(threadCount: 1))
        let first = try model.tokenizer()
        #expect(first === (try model.tokenizer()))
        #expect(first.encode("Hello world", addSpecial: true, parseSpecial: true) == [128000, 9906, 1917])
        #expect(first.bosToken == "<|begin_of_text|>" && first.eosToken == "<|end_of_text|>")
        #expect(first.eosTokenID == 128001)
    }
}
