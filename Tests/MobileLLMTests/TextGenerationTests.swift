import Foundation
import Testing
@testable import MobileLLM

/// `Session.generateText`: stop strings in the engine, over the r1like-chat fixture (a real byte-level tokenizer).
@Suite("Text generation with stop strings")
struct TextGenerationTests {
    static let path = Fixtures.packageRoot.appendingPathComponent("Tests/Fixtures/r1like-chat").path

    @Test("the streamed pieces concatenate to the decode of the tokens, cut before the first stop string")
    func stopStrings() throws {
        let model = try Model(path: Self.path)
        let tokenizer = try model.tokenizer()
        let prompt = try model.makeSession(contextLength: 256).promptTokens("Hello there, how are")
        // The whole greedy text without stops: the oracle.
        let plain = try model.makeSession(contextLength: 256).generate(prompt: prompt, options: GenerationOptions(maxTokens: 40, ignoreEOS: true))
        let full = try tokenizer.decode(plain.tokens, skipSpecial: false)
        let scalars = Array(full.unicodeScalars)
        #expect(scalars.count > 12, "the fixture must produce some text: \(full.debugDescription)")
        // Stop strings taken from the middle of the text (2 and 3 scalars), so they span token boundaries.
        for (start, length) in [(5, 2), (9, 3), (1, 1)] where start + length <= scalars.count {
            var stop = String.UnicodeScalarView()
            stop.append(contentsOf: scalars[start..<(start + length)])
            let stopString = String(stop)
            let expectedEnd = full.range(of: stopString).map { full[..<$0.lowerBound] }.map(String.init) ?? full
            var pieces: [String] = []
            var finalCalls = 0
            let result = try model.makeSession(contextLength: 256).generateText(
                prompt: prompt, options: GenerationOptions(maxTokens: 40, ignoreEOS: true, stopStrings: [stopString])) { token, piece in
                    if token == nil { finalCalls += 1 }
                    pieces.append(piece)
                    return true
                }
            #expect(result.generation.stopReason == .stopString, "\(stopString.debugDescription)")
            #expect(result.text == expectedEnd, "\(stopString.debugDescription)")
            #expect(pieces.joined() == result.text)
            #expect(finalCalls == 0, "a matched stop string ends the text: no final piece")
            #expect(result.generation.tokens == Array(plain.tokens.prefix(result.generation.tokens.count)))
        }
        // A stop string that never appears: the whole text, its held-back tail in one final piece.
        var pieces: [String] = []
        let none = try model.makeSession(contextLength: 256).generateText(
            prompt: prompt, options: GenerationOptions(maxTokens: 40, ignoreEOS: true, stopStrings: ["\u{1F600}never"])) { _, piece in
                pieces.append(piece)
                return true
            }
        #expect(none.generation.stopReason == .maxTokens)
        #expect(none.text == full && pieces.joined() == full)
    }

    @Test("the async stream carries the engine's text: stop strings, reasoning channels and logprobs as generateText")
    func asyncStreamMatchesGenerateText() async throws {
        let model = try Model(path: Self.path)
        let prompt = try model.makeSession(contextLength: 256).promptTokens("Question: 2+2?\n<think>\n")
        // A stop string that never matches still holds text back at every "\u{1F600}"-like prefix; the budget ends the
        // thought after 5 tokens.
        let options = GenerationOptions(maxTokens: 30, ignoreEOS: true, stopStrings: ["\n\n\u{1F600}never"],
                                        reasoning: ReasoningOptions(budget: 5, closing: "</think>\n\n"), logprobs: 2)
        let expected = try model.makeSession(contextLength: 256).generateText(prompt: prompt, options: options) { _ in true }
        var text = "", reasoning = "", answer = "", logprobs: [TokenLogprob] = [], tokens: [Int32] = []
        for try await piece in try model.makeSession(contextLength: 256).generate(prompt, options: options) {
            text += piece.text
            #expect(piece.pieces.map(\.text).joined() == piece.text)
            for part in piece.pieces where part.channel == .reasoning { reasoning += part.text }
            for part in piece.pieces where part.channel == .answer { answer += part.text }
            if let logprob = piece.logprob { logprobs.append(logprob) }
            if piece.token >= 0 { tokens.append(piece.token) }
        }
        #expect(text == expected.text && reasoning == expected.reasoning && answer == expected.answer)
        #expect(expected.reasoningTokenCount == 5 && !expected.reasoning.isEmpty)
        #expect(tokens == expected.generation.tokens.filter { !model.eosTokenIDs.contains(Int($0)) })
        #expect(logprobs == Array(expected.generation.logprobs.prefix(logprobs.count)) && logprobs.count == tokens.count)
    }

    @Test("the prompt rule: BOS on an empty session unless the text starts with it, none on a continuation")
    func promptRule() throws {
        let model = try Model(path: Self.path)
        let tokenizer = try model.tokenizer()
        let session = try model.makeSession(contextLength: 256)
        let bos = try #require(tokenizer.bosToken)
        let withBOS = try session.promptTokens("Hi")
        #expect(withBOS == tokenizer.encode("Hi", addSpecial: true, parseSpecial: true))
        #expect(try session.promptTokens(bos + "Hi") == tokenizer.encode(bos + "Hi", addSpecial: false, parseSpecial: true))
        _ = try session.feed(withBOS)
        #expect(try session.promptTokens("Hi") == tokenizer.encode("Hi", addSpecial: false, parseSpecial: true))
    }

    @Test("a model parses tokenizer_config.json once, for the tokenizer and the chat template")
    func tokenizerConfigParsedOnce() throws {
        let directory = try TemporaryDirectory()
        // r1like-chat links its weights from llama4-r1like-bf16-sharded: copy the files, not the links.
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.path) {
            let data = try Data(contentsOf: URL(fileURLWithPath: Self.path + "/" + file).resolvingSymlinksInPath())
            try data.write(to: URL(fileURLWithPath: directory.path + "/" + file))
        }
        let model = try Model(path: directory.path)
        let bos = try model.tokenizer().bosToken
        // Break the file after the tokenizer read it: the chat template must come from the same parse.
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: directory.path + "/tokenizer_config.json"))
        let template = try model.chatTemplate()
        #expect(template.bosToken == bos)
        #expect(try !model.applyChatTemplate([ChatMessage(role: "user", content: "Hi")]).isEmpty)
        // A fresh load of the broken file fails, naming it: the check above is not vacuous.
        #expect(throws: MobileLLMError.self) { try Model(path: directory.path).tokenizer() }
    }
}
