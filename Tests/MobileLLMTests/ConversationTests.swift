import Foundation
import Synchronization
import Testing
@testable import MobileLLM

/// Multi-turn conversations: each turn must feed only what the KV cache lacks, and produce exactly what a fresh
/// session given the whole rendered conversation produces (the renderings themselves are checked against jinja2 by
/// the chat template suites).
@Suite("Conversation", .serialized)
struct ConversationTests {
    /// The R1-shaped random-weight fixture with a 384-id tokenizer and chat template (Tests/Fixtures/r1like-chat).
    static let chatFixture = Fixtures.packageRoot.appendingPathComponent("Tests/Fixtures/r1like-chat").path

    /// The conversation's messages rendered by the model's template and tokenized as `apply_chat_template` does,
    /// independently of `Conversation`.
    static func rendered(_ model: Model, _ messages: [ChatMessage], template: ModelChatTemplate? = nil) throws -> [Int32] {
        let text = try (template ?? model.chatTemplate()).render(messages: messages, addGenerationPrompt: true)
        return try model.tokenizer().encode(text, addSpecial: false, parseSpecial: true)
    }

    /// Checks the conversation's last turn against a fresh session: the same prompt gives the same tokens, and the
    /// logits at the last cached position agree within `tolerance` (0 for float weights: prefill and decode are
    /// bit-identical; quantized weights round differently in the prefill and decode kernels).
    static func expectMatchesFreshSession(_ conversation: Conversation, _ turn: ConversationTurn, options: GenerationOptions,
                                          template: ModelChatTemplate? = nil, tolerance: Float = 0, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let model = conversation.session.model
        let prompt = try rendered(model, Array(conversation.messages.dropLast()), template: template)
        #expect(prompt.count == turn.promptTokenCount, sourceLocation: sourceLocation)
        let fresh = try model.makeSession(contextLength: conversation.session.capacity, kvCacheType: conversation.session.kvCacheType)
        let result = try fresh.generate(prompt: prompt, options: options)
        #expect(result.tokens == turn.tokens, sourceLocation: sourceLocation)
        #expect(result.stopReason == turn.stopReason, sourceLocation: sourceLocation)
        #expect(fresh.tokens == conversation.session.tokens, sourceLocation: sourceLocation)
        // Recompute the last cached position's logits in both: it attends to every cached key and value.
        func lastLogits(_ session: Session) throws -> Logits {
            let last = session.tokens[session.tokens.count - 1]
            try session.rewind(to: session.position - 1)
            return try session.feed([last])
        }
        let expected = try lastLogits(fresh), actual = try lastLogits(conversation.session)
        #expect(expected.values.count == actual.values.count, sourceLocation: sourceLocation)
        #expect(maxAbsDifference(expected.values, actual.values) <= tolerance, sourceLocation: sourceLocation)
    }

    @Test("r1like-chat: the second turn feeds only its new tokens and equals a fresh session on the whole conversation")
    func secondTurnReusesTheCache() throws {
        let model = try Model(path: Self.chatFixture)
        let conversation = try Conversation(model: model, contextLength: 256, system: "Be brief.")
        let options = GenerationOptions(maxTokens: 12)
        var streamed = ""
        let first = try conversation.send("Hello world!", options: options) { streamed += $0; return true }
        #expect(streamed == first.reply)
        #expect(first.tokens.count > 2, "a reply to reuse")
        #expect(first.reusedTokenCount == 0 && first.fedTokenCount == first.promptTokenCount)
        #expect(first.promptTokenCount == (try Self.rendered(model, [ChatMessage(role: "system", content: "Be brief."),
                                                                     ChatMessage(role: "user", content: "Hello world!")])).count)
        try Self.expectMatchesFreshSession(conversation, first, options: options)

        let second = try conversation.send("The quick brown fox", options: options)
        // Everything of turn one is reused: its prompt and reply, except the reply's last token, which generate
        // leaves unfed.
        #expect(second.reusedTokenCount == first.promptTokenCount + first.tokens.count - 1)
        #expect(second.fedTokenCount == second.promptTokenCount - second.reusedTokenCount)
        #expect(second.fedTokenCount < second.promptTokenCount - first.promptTokenCount)
        #expect(conversation.messages.map(\.role) == ["system", "user", "assistant", "user", "assistant"])
        try Self.expectMatchesFreshSession(conversation, second, options: options)
    }

    @Test("a template that re-renders earlier replies differently rewinds the cache to the common prefix")
    func reRenderedRepliesRewind() throws {
        let model = try Model(path: Self.chatFixture)
        // Like the fixture's template, but earlier assistant replies are cut to their first 3 characters (as
        // reasoning templates drop <think> content from past turns).
        let source = "{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n"
            + "{% if m['role'] == 'assistant' %}{{ m['content'][:3] }}{% else %}{{ m['content'] }}{% endif %}<|eot_id|>{% endfor %}"
            + "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
        let base = try model.chatTemplate()
        let template = try ModelChatTemplate(source: source, name: "cut-replies", bosToken: base.bosToken, eosToken: base.eosToken)
        let conversation = try Conversation(model: model, contextLength: 256, template: template)
        let options = GenerationOptions(maxTokens: 10, ignoreEOS: true)
        let first = try conversation.send("Hello world!", options: options)
        #expect(first.reply.count > 3, "the reply must be longer than what the template keeps")
        let second = try conversation.send("The quick brown fox", options: options)
        #expect(second.reusedTokenCount >= first.promptTokenCount)
        #expect(second.reusedTokenCount < first.promptTokenCount + first.tokens.count - 1)
        try Self.expectMatchesFreshSession(conversation, second, options: options, template: template)
    }

    @Test("SmolLM2 GGUF: two turns reuse the cache and equal a fresh session")
    func smolLM2TwoTurns() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path)
        let conversation = try Conversation(model: model, contextLength: 512)
        let options = GenerationOptions(maxTokens: 24)
        let first = try conversation.send("What is the capital of France?", options: options)
        #expect(first.reply.contains("Paris"))
        try Self.expectMatchesFreshSession(conversation, first, options: options, tolerance: 0.02)
        let second = try conversation.send("And of Germany?", options: options)
        #expect(second.reusedTokenCount == first.promptTokenCount + first.tokens.count - 1)
        #expect(second.fedTokenCount == second.promptTokenCount - second.reusedTokenCount)
        #expect(second.fedTokenCount < 20, "only the end of turn one and the new user message are fed")
        try Self.expectMatchesFreshSession(conversation, second, options: options, tolerance: 0.02)
    }

    @Test("cancel keeps the partial reply, and the next turn is not cancelled and still exact")
    func cancelMidReply() throws {
        let model = try Model(path: Self.chatFixture)
        let conversation = try Conversation(model: model, contextLength: 256)
        let options = GenerationOptions(maxTokens: 40, ignoreEOS: true)
        var pieces = 0
        var shown = ""
        let cancelled = try conversation.send("Hello world!", options: options) { piece in
            pieces += 1
            shown += piece
            if pieces == 3 { conversation.cancel() }
            return true
        }
        #expect(cancelled.cancelled && cancelled.stopReason == .callback)
        #expect(shown == cancelled.reply, "the kept reply is what was shown")
        // The cache holds the prompt and the kept reply; its last token may have been cut off while being fed.
        let kept = cancelled.promptTokenCount + cancelled.tokens.count
        #expect((kept - 1...kept).contains(conversation.session.tokens.count))
        #expect(cancelled.tokens.count < 40 && !cancelled.tokens.isEmpty)
        #expect(conversation.messages.last == ChatMessage(role: "assistant", content: cancelled.reply))
        let next = try conversation.send("The quick brown fox", options: options)
        #expect(!next.cancelled && next.stopReason == .maxTokens)
        #expect(next.reusedTokenCount > cancelled.promptTokenCount)
        try Self.expectMatchesFreshSession(conversation, next, options: options)

        // cancel() while no turn runs does nothing.
        conversation.cancel()
        let after = try conversation.send("Hi", options: GenerationOptions(maxTokens: 2, ignoreEOS: true))
        #expect(!after.cancelled && after.tokens.count == 2)
    }

    @Test("a cancelled prefill leaves no trace of the user message, and the next turn runs")
    func cancelDuringPrefill() throws {
        final class Flag: Sendable { let value = Atomic<Bool>(false) }
        let model = try Model(path: Self.chatFixture)
        let conversation = try Conversation(model: model, contextLength: 1024)
        let done = Flag()
        // cancel() only acts while a turn runs, so keep calling it from another thread during a long prefill.
        let thread = Thread { while !done.value.load(ordering: .relaxed) { conversation.cancel() } }
        thread.start()
        var turn: ConversationTurn?
        for _ in 0..<20 {
            turn = try conversation.send(String(repeating: "The quick brown fox ", count: 40), options: GenerationOptions(maxTokens: 0))
            if turn?.cancelled == true { break }
        }
        done.value.store(true, ordering: .relaxed)
        while !thread.isFinished { usleep(100) }
        #expect(turn?.cancelled == true && turn?.tokens.isEmpty == true)
        #expect(conversation.messages.isEmpty)
        let next = try conversation.send("Hi", options: GenerationOptions(maxTokens: 2, ignoreEOS: true))
        #expect(!next.cancelled && next.tokens.count == 2)
    }

    @Test("overflow: oldest turns are dropped to make room, or .fail throws contextFull and changes nothing")
    func contextOverflow() throws {
        let model = try Model(path: Self.chatFixture)
        let conversation = try Conversation(model: model, contextLength: 64, system: "sys")
        let options = GenerationOptions(maxTokens: 8, ignoreEOS: true)
        var dropped = 0
        for text in ["Hello world!", "The quick brown fox", "Hello again", "The quick brown fox"] {
            let turn = try conversation.send(text, options: options)
            #expect(turn.promptTokenCount + min(8, 32) <= 64)
            dropped += turn.droppedMessageCount
        }
        #expect(dropped > 0 && dropped % 2 == 0, "whole turns (user + assistant) are dropped")
        #expect(conversation.messages.first?.role == "system" && conversation.messages[1].role == "user")

        conversation.overflowPolicy = .fail
        let before = conversation.messages
        #expect(throws: MobileLLMError.self) { try conversation.send(String(repeating: "The quick brown fox ", count: 20), options: options) }
        #expect(conversation.messages == before)
        // A reply longer than the room left ends context_full.
        conversation.reset()
        let short = try conversation.send("Hi", options: GenerationOptions(maxTokens: 64, ignoreEOS: true))
        #expect(short.droppedMessageCount == 0 && short.stopReason == .contextFull)
    }

    @Test("setSystem and reset: the system prompt's tokens stay reused")
    func systemAndReset() throws {
        let model = try Model(path: Self.chatFixture)
        let conversation = try Conversation(model: model, contextLength: 256)
        #expect(conversation.system == nil)
        conversation.setSystem("Be brief.")
        conversation.setSystem("Be very brief.")
        #expect(conversation.messages == [ChatMessage(role: "system", content: "Be very brief.")])
        let options = GenerationOptions(maxTokens: 4, ignoreEOS: true)
        try conversation.send("Hello world!", options: options)
        conversation.reset()
        #expect(conversation.messages == [ChatMessage(role: "system", content: "Be very brief.")])
        let cached = conversation.session.tokens
        let turn = try conversation.send("The quick brown fox", options: options)
        let prompt = try Self.rendered(model, Array(conversation.messages.dropLast()))
        #expect(turn.reusedTokenCount == zip(cached, prompt).prefix { $0 == $1 }.count)
        let systemPart = try model.tokenizer().encode("<|begin_of_text|><|start|>system\nBe very brief.<|eot_id|>", addSpecial: false, parseSpecial: true)
        #expect(turn.reusedTokenCount >= systemPart.count)
        try Self.expectMatchesFreshSession(conversation, turn, options: options)
        conversation.setSystem(nil)
        #expect(conversation.system == nil && conversation.messages.count == 2)
    }
}
