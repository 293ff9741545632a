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
        // Tests/Fixtures/r1like-chat: an R1-style model with its own 384-token tokenizer; expected ids from HF tokenizers
        // (reference_text.json, scripts/make_abi_text_fixture.py).
        let directory = TokenizerFixtures.root.appendingPathComponent("Tests/Fixtures/r1like-chat").path
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/reference_text.json"))) as? [String: Any]
        let encodings = reference?["encodings"] as? [[String: Any]] ?? []
        let model = try Model(path: directory, options: ModelLoadOptions(threadCount: 1))
        let first = try model.tokenizer()
        #expect(first === (try model.tokenizer()))
        #expect(!encodings.isEmpty)
        for encoding in encodings {
            guard let text = encoding["text"] as? String, let addSpecial = encoding["add_special"] as? Bool,
                  let parseSpecial = encoding["parse_special"] as? Bool, let ids = encoding["ids"] as? [Int] else {
                Issue.record("malformed reference encoding \(encoding)")
                continue
            }
            #expect(first.encode(text, addSpecial: addSpecial, parseSpecial: parseSpecial).map(Int.init) == ids, "\(text)")
        }
    }

    @Test("A tokenizer with ids beyond the model's embedding rows is refused, naming tokenizer.json")
    func tooLarge() throws {
        guard let tokenizerDirectory = TokenizerFixtures.requireAsset(TokenizerFixtures.llama3Directory) else { return }
        let directory = try TemporaryDirectory()
        try directory.copyFixture("llama-f16")
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: tokenizerDirectory + "/" + name, toPath: directory.path + "/" + name)
        }
        let model = try Model(path: directory.path, options: ModelLoadOptions(threadCount: 1))
        #expect { try model.tokenizer() } throws: { error in
            guard case let .invalidFile(path, field, problem)? = error as? MobileLLMError else { return false }
            return path == directory.path + "/tokenizer.json" && field == "added_tokens"
                && problem.contains("outside the model's vocabulary (expected ids below 512")
        }
    }
}
