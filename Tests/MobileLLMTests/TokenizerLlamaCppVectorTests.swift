import Foundation
import Testing
@testable import MobileLLM

/// llama.cpp's own tokenizer test vectors (models/ggml-vocab-*.gguf with .inp/.out, from the llama-cpp-python
/// 0.3.36 source archive). Format: the .inp file holds the test strings, each followed by
/// "\n__ggml_vocab_test__\n"; line k of the .out file holds the ids of string k (HF, add_special_tokens=False),
/// space-separated.
@Suite("llama.cpp tokenizer test vectors")
struct TokenizerLlamaCppVectorTests {
    static let separator = "\n__ggml_vocab_test__\n"

    func run(_ ggufPath: String) throws {
        guard let gguf = TokenizerFixtures.requireAsset(ggufPath),
              let inputPath = TokenizerFixtures.requireAsset(ggufPath + ".inp"),
              let outputPath = TokenizerFixtures.requireAsset(ggufPath + ".out") else { return }
        let tokenizer = try Tokenizer.load(path: gguf)
        let input = try String(contentsOfFile: inputPath, encoding: .utf8)
        let output = try String(contentsOfFile: outputPath, encoding: .utf8)
        var tests = input.components(separatedBy: Self.separator)
        if tests.last == "" { tests.removeLast() }
        let lines = output.components(separatedBy: "\n")
        try #require(lines.count >= tests.count, "the .out file has fewer lines than the .inp file has tests")
        var passed = 0
        for (index, text) in tests.enumerated() {
            let want = lines[index].split(separator: " ").compactMap { Int32($0) }
            let got = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            if got == want {
                passed += 1
            } else {
                Issue.record("\(ggufPath) test \(index) \(text.debugDescription): ours \(got) want \(want)")
            }
            #expect(try tokenizer.decode(got, skipSpecial: false) == text)
        }
        print("[\((ggufPath as NSString).lastPathComponent)] \(passed)/\(tests.count) vectors pass")
        #expect(tests.count >= 40)
        #expect(passed == tests.count)
    }

    @Test("ggml-vocab-llama-bpe.gguf vectors")
    func llamaBPE() throws { try run(TokenizerFixtures.llamaBPEGGUF) }

    @Test("ggml-vocab-gpt-2.gguf vectors")
    func gpt2() throws { try run(TokenizerFixtures.gpt2GGUF) }
}
