import Synchronization

/// What a `Conversation` does when the rendered conversation no longer fits its session's context.
public enum ContextOverflowPolicy: Sendable, Equatable {
    /// Drop the oldest turns (a user message and the messages after it up to the next user message; a leading
    /// system message always stays) until the prompt leaves room for the reply, keeping at least the newest user
    /// message. Dropping turns changes the rendering near its start, so the next turn re-feeds most of the prompt.
    case dropOldestTurns
    /// Throw `MobileLLMError.contextFull` when the prompt alone does not fit, and leave the conversation unchanged.
    case fail
}

/// The outcome of one `Conversation.send`.
public struct ConversationTurn: Sendable, Equatable {
    /// The assistant's reply as text (the generated tokens decoded without special tokens); also appended to
    /// `Conversation.messages`. With `GenerationOptions.reasoning` it is the answer alone (leading newlines trimmed),
    /// and the thought is in `reasoning`.
    public var reply: String
    /// With `GenerationOptions.reasoning`: the reply's reasoning (surrounding newlines trimmed), kept in the history as
    /// the message's `reasoningContent` (nil when empty) rather than in its content. "" otherwise.
    public var reasoning: String = ""
    /// Generated tokens read while a thought was open (see `ReasoningOptions`).
    public var reasoningTokenCount: Int = 0
    /// What happened along the way without ending the reply (a reasoning budget running out).
    public var events: [GenerationEvent] = []
    /// One entry per token of `tokens` when `GenerationOptions.logprobs` is set, else empty.
    public var logprobs: [TokenLogprob] = []
    /// The generated token ids (an end-of-sequence token that ended the reply is included).
    public var tokens: [Int32]
    /// Why the reply ended; `.callback` when the text callback returned false or the turn was cancelled.
    public var stopReason: StopReason
    /// True when `Conversation.cancel()` interrupted the turn.
    public var cancelled: Bool
    /// Tokens of the whole rendered conversation this turn answered (the prompt).
    public var promptTokenCount: Int
    /// Prompt tokens already in the KV cache from earlier turns (not computed again).
    public var reusedTokenCount: Int
    /// Prompt tokens fed this turn (`promptTokenCount - reusedTokenCount`).
    public var fedTokenCount: Int
    /// Messages dropped this turn to make room (see `ContextOverflowPolicy.dropOldestTurns`).
    public var droppedMessageCount: Int
    /// From the start of feeding the prompt to the first generated token (the whole turn when none was generated).
    public var timeToFirstToken: Duration
    /// From the start of feeding the prompt to the end of the turn.
    public var duration: Duration
}

/// A multi-turn chat on one `Session`: keeps the messages, renders them with the model's chat template before each
/// turn and feeds only the tokens the KV cache does not already hold.
///
/// Each turn renders the whole conversation (as transformers' `apply_chat_template(..., add_generation_prompt=True)`
/// does), tokenizes it with special tokens parsed and none added (the template writes BOS itself), keeps the longest
/// common prefix of those tokens and the session's cached tokens, rewinds the rest and feeds the remainder. So the
/// result is exactly what a fresh session given the whole rendered conversation computes, even when a template
/// renders earlier turns differently from how they were generated (for example dropping `<think>` content).
///
/// ```swift
/// let chat = try Conversation(model: model, system: "You are terse.")
/// let turn = try chat.send("What is the capital of France?") { piece in print(piece, terminator: ""); return true }
/// print(turn.reusedTokenCount, turn.fedTokenCount)
/// ```
///
/// Use a conversation from one thread at a time; `cancel()` alone may be called from any thread.
public final class Conversation: @unchecked Sendable {
    /// The session whose KV cache holds the conversation (use it for nothing else while the conversation lives).
    public let session: Session
    /// The chat template turns are rendered with.
    public let template: ModelChatTemplate
    /// The messages so far: an optional leading system message, then user and assistant messages.
    public private(set) var messages: [ChatMessage] = []
    /// Extra template variables for every rendering (for example `enable_thinking`).
    public var variables: [String: TemplateValue]
    /// What happens when the conversation outgrows the context.
    public var overflowPolicy: ContextOverflowPolicy

    private let tokenizer: Tokenizer
    /// `running`: a turn is in progress; `requested`: `cancel()` was called during it.
    private let control = Locked<(running: Bool, requested: Bool)>((false, false))

    /// A conversation on `session`, rendered with `template` (nil: the model's own, see `Model.chatTemplate()`),
    /// starting with an optional system message. Throws `tokenizerMissing` when the model has no tokenizer, or the
    /// template's load error.
    public init(session: Session, system: String? = nil, template: ModelChatTemplate? = nil,
                variables: [String: TemplateValue] = [:], overflowPolicy: ContextOverflowPolicy = .dropOldestTurns) throws {
        self.session = session
        tokenizer = try session.model.tokenizer()
        self.template = try template ?? session.model.chatTemplate()
        self.variables = variables
        self.overflowPolicy = overflowPolicy
        setSystem(system)
    }

    /// A conversation on a new session of `model` (see `Model.makeSession`).
    public convenience init(model: Model, contextLength: Int? = nil, kvCacheType: KVCacheType? = nil, system: String? = nil,
                            template: ModelChatTemplate? = nil, variables: [String: TemplateValue] = [:],
                            overflowPolicy: ContextOverflowPolicy = .dropOldestTurns) throws {
        try self.init(session: try model.makeSession(contextLength: contextLength, kvCacheType: kvCacheType), system: system,
                      template: template, variables: variables, overflowPolicy: overflowPolicy)
    }

    /// The system message, if any.
    public var system: String? {
        messages.first.flatMap { $0.role == "system" ? $0.content : nil }
    }

    /// Sets (or, with nil, removes) the system message; the other messages stay. The next turn re-feeds what the
    /// change invalidates.
    public func setSystem(_ text: String?) {
        if system != nil { messages.removeFirst() }
        if let text { messages.insert(ChatMessage(role: "system", content: text), at: 0) }
    }

    /// Forgets every message except the system message. The KV cache is kept: the next turn reuses whatever prefix
    /// it still shares with the new rendering (typically the system prompt).
    public func reset() {
        messages.removeAll { $0.role != "system" }
    }

    /// Stops the running turn (its prefill too); `send` then returns what was generated so far with `cancelled`
    /// set. Does nothing when no turn is running. Safe from any thread.
    public func cancel() {
        control.withLock { state in
            guard state.running else { return }
            state.requested = true
            session.cancel()
        }
    }

    /// The token ids of the conversation rendered with the generation prompt, as `send` feeds them.
    public func promptTokens() throws -> [Int32] {
        let text = try template.render(messages: messages, addGenerationPrompt: true, variables: variables)
        return tokenizer.encode(text, addSpecial: false, parseSpecial: true)
    }

    /// Adds a user message and generates the assistant's reply, which is appended to `messages`.
    ///
    /// `onText` receives the reply's text as it is generated (whole UTF-8 characters, special tokens left out) and
    /// returns false to end the reply there. Throws `contextFull` when the prompt cannot fit (see `overflowPolicy`),
    /// template errors, and what `onText` or the session throws; the conversation is then unchanged. A cancelled turn
    /// keeps its partial reply (or, when nothing was generated yet, drops the user message too).
    @discardableResult
    public func send(_ userText: String, options: GenerationOptions = GenerationOptions(),
                     onText: (String) throws -> Bool = { _ in true }) throws -> ConversationTurn {
        control.withLock { $0 = (running: true, requested: false) }
        defer {
            // Session.cancel() never lingers past the run it hit, so only this turn's own flag needs clearing.
            control.withLock { $0 = (running: false, requested: false) }
        }
        let saved = messages
        messages.append(ChatMessage(role: "user", content: userText))
        do {
            if options.reasoning != nil {
                return try answerWithChannels(options: options, onPiece: { piece in
                    piece.channel == .marker || piece.text.isEmpty ? true : try onText(piece.text)
                }, restoring: saved)
            }
            return try answer(options: options, onText: onText, restoring: saved)
        } catch {
            messages = saved
            throw error
        }
    }

    /// Like `send(_:options:onText:)`, streaming the reply as pieces tagged with their channel (see
    /// `Session.generateText(prompt:options:onPiece:)`; the pieces include special tokens' text and, with
    /// `options.reasoning`, the thought and its markers). With `options.reasoning`, the thought stays out of the
    /// message content: the assistant message stores the answer as its content and the thought as
    /// `reasoningContent` (rendered as `reasoning_content` by templates that use it, such as Qwen3's; others drop it).
    /// A template whose generation prompt opens `<think>` starts the reply inside the thought.
    @discardableResult
    public func send(_ userText: String, options: GenerationOptions = GenerationOptions(),
                     onPiece: (GeneratedPiece) throws -> Bool) throws -> ConversationTurn {
        control.withLock { $0 = (running: true, requested: false) }
        defer { control.withLock { $0 = (running: false, requested: false) } }
        let saved = messages
        messages.append(ChatMessage(role: "user", content: userText))
        do {
            return try answerWithChannels(options: options, onPiece: onPiece, restoring: saved)
        } catch {
            messages = saved
            throw error
        }
    }

    /// `answer` through `Session.generateText`'s pieces: the reply split into reasoning and answer.
    private func answerWithChannels(options: GenerationOptions, onPiece: (GeneratedPiece) throws -> Bool,
                                    restoring saved: [ChatMessage]) throws -> ConversationTurn {
        // The decoder sees the whole sequence (cached prefix included) to tell whether the prompt opened a thought.
        let (prompt, dropped, reused) = try preparePrompt(reply: options.maxTokens)

        let clock = ContinuousClock()
        let start = clock.now
        var firstToken: ContinuousClock.Instant?
        var generated: [Int32] = []
        var reasoning = "", answerText = ""
        var stopReason = StopReason.callback
        var finished: GenerationResult?
        var cancelled = false
        do {
            let result = try session.generateText(prompt: Array(prompt[reused...]), options: options) { piece in
                if let token = piece.token {
                    if firstToken == nil { firstToken = clock.now }
                    if control.withLock({ $0.requested }) {
                        cancelled = true
                        return false
                    }
                    generated.append(token)
                }
                if piece.channel == .reasoning { reasoning += piece.text }
                if piece.channel == .answer { answerText += piece.text }
                return try onPiece(piece)
            }
            generated = result.generation.tokens
            finished = result.generation
            reasoning = result.reasoning
            answerText = result.answer
            stopReason = cancelled ? .callback : result.generation.stopReason
        } catch MobileLLMError.cancelled {
            cancelled = true
        }
        if firstToken == nil, !generated.isEmpty { firstToken = clock.now }
        let end = clock.now
        let reply = options.reasoning == nil ? answerText : String(answerText.drop { $0 == "\n" })
        let thought = reasoning.trimmingScalars(in: ["\n"])
        if cancelled && generated.isEmpty {
            messages = saved
        } else {
            messages.append(ChatMessage(role: "assistant", content: reply,
                                        reasoningContent: options.reasoning == nil || thought.isEmpty ? nil : thought))
        }
        var turn = ConversationTurn(reply: reply, tokens: generated, stopReason: stopReason, cancelled: cancelled,
                                    promptTokenCount: prompt.count, reusedTokenCount: reused, fedTokenCount: prompt.count - reused,
                                    droppedMessageCount: dropped, timeToFirstToken: (firstToken ?? end) - start, duration: end - start)
        turn.reasoning = options.reasoning == nil ? "" : thought
        turn.reasoningTokenCount = finished?.reasoningTokenCount ?? 0
        turn.events = finished?.events ?? []
        turn.logprobs = finished?.logprobs ?? []
        return turn
    }

    /// Generates the reply to the conversation as it stands (its last message is the new user message); `saved` is
    /// the conversation to return to when a cancelled turn produced nothing.
    private func answer(options: GenerationOptions, onText: (String) throws -> Bool, restoring saved: [ChatMessage]) throws -> ConversationTurn {
        let (prompt, dropped, reused) = try preparePrompt(reply: options.maxTokens)

        let clock = ContinuousClock()
        let start = clock.now
        var firstToken: ContinuousClock.Instant?
        var generated: [Int32] = []
        var detokenizer = tokenizer.makeStreamingDetokenizer(skipSpecial: true)
        var stopReason = StopReason.callback
        var logprobs: [TokenLogprob] = []
        var cancelled = false
        do {
            let result = try session.generate(prompt: Array(prompt[reused...]), options: options) { token in
                if firstToken == nil { firstToken = clock.now }
                if control.withLock({ $0.requested }) {
                    cancelled = true  // this token is neither shown nor kept
                    return false
                }
                generated.append(token)
                let piece = try detokenizer.push(token)
                return piece.isEmpty ? true : try onText(piece)
            }
            if !cancelled { generated = result.tokens }  // with a final end-of-sequence token
            logprobs = Array(result.logprobs.prefix(generated.count))
            stopReason = result.stopReason
        } catch MobileLLMError.cancelled {
            cancelled = true
        }
        if firstToken == nil, !generated.isEmpty { firstToken = clock.now }  // an end-of-sequence first token
        let rest = detokenizer.flush()
        if !rest.isEmpty { _ = try onText(rest) }  // the pieces add up to `reply`
        let end = clock.now

        let reply = try tokenizer.decode(generated, skipSpecial: true)
        if cancelled && generated.isEmpty {
            messages = saved
        } else {
            messages.append(ChatMessage(role: "assistant", content: reply))
        }
        var turn = ConversationTurn(reply: reply, tokens: generated, stopReason: stopReason, cancelled: cancelled,
                                    promptTokenCount: prompt.count, reusedTokenCount: reused, fedTokenCount: prompt.count - reused,
                                    droppedMessageCount: dropped, timeToFirstToken: (firstToken ?? end) - start, duration: end - start)
        turn.logprobs = logprobs
        return turn
    }

    /// The prompt of the next reply (see `fittingPrompt`), with the session rewound to the longest prefix it already
    /// holds (all but the last prompt token at most: that one is fed to get its logits); the tokens still to feed
    /// are `prompt[reused...]`.
    private func preparePrompt(reply: Int) throws -> (prompt: [Int32], dropped: Int, reused: Int) {
        let (prompt, dropped) = try fittingPrompt(reply: reply)
        let reused = min(zip(prompt, session.tokens).prefix { $0 == $1 }.count, prompt.count - 1)
        try session.rewind(to: reused)
        return (prompt, dropped, reused)
    }

    /// The rendered prompt, after dropping old turns as `overflowPolicy` allows so that it leaves room for
    /// min(`reply`, half the context) generated tokens; and how many messages were dropped.
    private func fittingPrompt(reply: Int) throws -> (tokens: [Int32], dropped: Int) {
        let capacity = session.capacity
        let room = min(max(reply, 1), capacity / 2)
        var dropped = 0
        while true {
            let prompt = try promptTokens()
            guard !prompt.isEmpty else {
                throw MobileLLMError.invalidArgument(name: "messages", problem: "the chat template rendered no tokens")
            }
            if prompt.count + room <= capacity { return (prompt, dropped) }
            if overflowPolicy == .dropOldestTurns, let oldest = oldestTurn() {
                messages.removeSubrange(oldest)
                dropped += oldest.count
                continue
            }
            guard prompt.count <= capacity else {
                throw MobileLLMError.contextFull(capacity: capacity, position: 0, requested: prompt.count)
            }
            return (prompt, dropped)
        }
    }

    /// The messages of the oldest turn: the first user message after the system message up to the next user
    /// message; nil when the newest user message is the only one left.
    private func oldestTurn() -> Range<Int>? {
        let first = system == nil ? 0 : 1
        guard first < messages.count,
              let next = messages[(first + 1)...].firstIndex(where: { $0.role == "user" }) else { return nil }
        return first..<next
    }
}
