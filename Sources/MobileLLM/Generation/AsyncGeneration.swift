import Synchronization

/// One step of a streamed generation: a generated token and the text it releases.
public struct GenerationPiece: Sendable, Equatable {
    /// The generated token id; -1 for the final piece that releases text held back at the end (for a stop string or
    /// a reasoning marker).
    public let token: Int32
    /// Its text as complete UTF-8 (empty while a character is split across tokens, while text that could begin a stop
    /// string or a marker is held back, or when the model has no tokenizer).
    public let text: String
    /// `text` split by channel (`GenerationOptions.reasoning`: reasoning, answer, marker; otherwise one answer
    /// piece), as `Session.generateText(prompt:options:onPiece:)` gives it; empty without a tokenizer.
    public let pieces: [GeneratedPiece]
    /// The token's log-probability (with `GenerationOptions.logprobs`), else nil.
    public let logprob: TokenLogprob?

    /// A piece.
    public init(token: Int32, text: String, pieces: [GeneratedPiece] = [], logprob: TokenLogprob? = nil) {
        self.token = token
        self.text = text
        self.pieces = pieces
        self.logprob = logprob
    }
}

/// Shared between a generation's worker thread and the stream's termination handler.
private final class StreamControl: Sendable {
    let stopRequested = Atomic<Bool>(false)
    let running = Atomic<Bool>(true)
}

extension Session {
    /// Generates from `prompt` on a thread of its own and delivers each token as it is chosen:
    ///
    /// ```swift
    /// for try await piece in session.generate([128000, 791, 6864], options: GenerationOptions(maxTokens: 32)) {
    ///     print(piece.token)
    /// }
    /// ```
    ///
    /// Each piece carries the token and, when the model has a tokenizer, the text it releases through the engine's
    /// text stream (`generateText`: whole UTF-8 characters; stop strings and reasoning markers held back and applied;
    /// the text split by channel in `pieces`; the logprob with `options.logprobs`); held-back text comes last in a
    /// piece with token -1. The stream ends after the last token (a final end-of-sequence token is not delivered)
    /// and throws what `generate(prompt:options:onToken:)` throws. Ending the iteration
    /// early, or cancelling the consuming task, stops the generation (during prefill too) and leaves the session
    /// usable. Use the session for nothing else until the stream has finished.
    public func generate(_ prompt: [Int32], options: GenerationOptions = GenerationOptions()) -> AsyncThrowingStream<GenerationPiece, Error> {
        let (stream, continuation) = AsyncThrowingStream<GenerationPiece, Error>.makeStream()
        let control = StreamControl()
        continuation.onTermination = { [self] termination in
            guard case .cancelled = termination else { return }
            control.stopRequested.store(true, ordering: .sequentiallyConsistent)
            if control.running.load(ordering: .sequentiallyConsistent) { cancel() }
        }
        let started = Platform.startThread { [self] in
            do {
                _ = try run {
                    // Checked inside the run: a stop request is either seen here or finds the run going and cancels it.
                    guard !control.stopRequested.load(ordering: .sequentiallyConsistent) else { throw MobileLLMError.cancelled }
                    guard model.tokenizerFile != nil, (try? model.tokenizer()) != nil else {
                        // No tokenizer: tokens only.
                        return try generate(prompt: prompt, options: options) { token in
                            if control.stopRequested.load(ordering: .sequentiallyConsistent) { return false }
                            continuation.yield(GenerationPiece(token: token, text: ""))
                            return true
                        }
                    }
                    // The engine's text stream: stop strings, reasoning channels and logprobs apply as everywhere.
                    return try generateText(prompt: prompt, options: options, onTokenPieces: { pieces in
                        if control.stopRequested.load(ordering: .sequentiallyConsistent) { return false }
                        continuation.yield(GenerationPiece(token: pieces.first?.token ?? -1, text: pieces.map(\.text).joined(),
                                                           pieces: pieces, logprob: pieces.first?.logprob))
                        return true
                    }, onRest: { rest, pieces in
                        if let rest, !rest.isEmpty { continuation.yield(GenerationPiece(token: -1, text: rest, pieces: pieces)) }
                    }).generation
                }
                control.running.store(false, ordering: .sequentiallyConsistent)
                continuation.finish()
            } catch {
                control.running.store(false, ordering: .sequentiallyConsistent)
                continuation.finish(throwing: error)
            }
        }
        if !started {
            continuation.finish(throwing: MobileLLMError.io(path: "(thread)", reason: "cannot start the generation thread"))
        }
        return stream
    }
}

extension Session {
    /// Generates from text: `prompt` is tokenized with the model's tokenizer (special tokens such as
    /// `<|eot_id|>` written in it are parsed, so chat-template output works; BOS is added on an empty session unless
    /// the text already starts with it), then streamed like `generate(_:options:)` with the text of each piece.
    ///
    /// ```swift
    /// let prompt = try model.applyChatTemplate([ChatMessage(role: "user", content: "Hi!")])
    /// for try await piece in try session.generate(prompt) { print(piece.text, terminator: "") }
    /// ```
    ///
    /// Throws `tokenizerMissing` at once when the model has no tokenizer.
    public func generate(_ prompt: String, options: GenerationOptions = GenerationOptions()) throws -> AsyncThrowingStream<GenerationPiece, Error> {
        generate(try promptTokens(prompt), options: options)
    }

    /// The ids of `prompt` as the next input of this session: tokenized with the model's tokenizer, special tokens
    /// written in the text parsed (so chat-template output works), and BOS added when the session is empty unless the
    /// text already starts with the BOS token. This is the prompt rule of every host (C, Python, the CLI).
    ///
    /// Throws `tokenizerMissing` when the model has no tokenizer.
    public func promptTokens(_ prompt: String) throws -> [Int32] {
        let tokenizer = try model.tokenizer()
        let startsWithBOS = tokenizer.bosToken.map { !$0.isEmpty && prompt.hasPrefix($0) } ?? false
        return tokenizer.encode(prompt, addSpecial: position == 0 && !startsWithBOS, parseSpecial: true)
    }
}
