/// What ends a generation.
public enum StopReason: String, Sendable {
    /// An end-of-sequence token was produced (it is included in the tokens).
    case endOfSequence = "eos"
    /// `maxTokens` tokens were produced.
    case maxTokens = "max_tokens"
    /// The session's KV cache is full.
    case contextFull = "context_full"
    /// The token callback asked to stop.
    case callback = "callback"
    /// A stop string appeared in the text (`generateText` and batch sequences that stream text; the text ends before it).
    case stopString = "stop"
    /// The sequence was cancelled (`BatchGenerator.cancel`; a cancelled `Session` call throws `cancelled` instead).
    case cancelled = "cancelled"
    /// The grammar (`GenerationOptions.grammar`) matched a whole string and nothing more could follow, or no token
    /// was allowed next.
    case grammar = "grammar"
}

/// Settings of one generation.
public struct GenerationOptions: Sendable {
    /// Most tokens to produce.
    public var maxTokens: Int
    /// How tokens are chosen.
    public var sampling: SamplingParameters
    /// Tokens that end generation (nil: the model's EOS ids).
    public var stopTokenIDs: [Int]?
    /// Keep going past end-of-sequence tokens.
    public var ignoreEOS: Bool
    /// Strings that end generation when they appear in the text (empty strings are ignored). The text ends just
    /// before the first one to complete, wherever token and UTF-8 boundaries fall. They match anywhere in the text,
    /// reasoning included.
    public var stopStrings: [String]
    /// How thoughts are recognized, split off and bounded (nil: no split; all text is answer). Needs a tokenizer.
    public var reasoning: ReasoningOptions?
    /// A grammar the generated text must follow (nil: none). Tokens the grammar does not allow next are masked
    /// (-inf) before sampling; generation ends with `.grammar` when the grammar is complete and nothing more may
    /// follow (or nothing at all is allowed). End-of-sequence tokens are allowed exactly when the grammar may end.
    /// With `reasoning` set, the grammar constrains only the answer: it starts with the first token after the one
    /// that completes the end marker (the thought itself, and any text of that same token after the marker, are
    /// unconstrained). Needs a tokenizer.
    public var grammar: Grammar?
    /// Added to a token's logit before sampling, by token id; `-Float.infinity` bans the token.
    public var logitBias: [Int32: Float]
    /// Like `logitBias`, by piece: applies to every token whose vocabulary spelling (`Tokenizer.tokenPiece`, such as
    /// `Ġthe`) or whose decoded text (such as ` the`) equals the key. A key that matches no token is an
    /// `invalidArgument` error. When an id gets a bias from both, the two add up.
    public var logitBiasPieces: [String: Float]
    /// Log-probabilities of the generated tokens (nil: off; 0: only the chosen token's; 1...20: also the top n
    /// alternatives). See `TokenLogprob` for the distribution they come from.
    public var logprobs: Int?
    /// Compute log-probabilities from the raw logits (log-softmax before bias, bans, grammar, penalties and
    /// temperature) instead of from the distribution sampled from.
    public var rawLogprobs: Bool
    /// Leave special tokens' text (`<|im_end|>`, `<|eot_id|>`, …) out of the text a sequence streams, as
    /// transformers' `decode(skip_special_tokens=True)` and vLLM's default do (default false: the text keeps them, so
    /// reasoning markers that are special tokens are seen). Turn it on only when the reasoning markers, if any, are
    /// plain text.
    public var skipsSpecialText = false

    /// Options; greedy decoding of up to 256 tokens unless told otherwise.
    public init(maxTokens: Int = 256, sampling: SamplingParameters = .greedy, stopTokenIDs: [Int]? = nil, ignoreEOS: Bool = false,
                stopStrings: [String] = [], reasoning: ReasoningOptions? = nil, grammar: Grammar? = nil,
                logitBias: [Int32: Float] = [:], logitBiasPieces: [String: Float] = [:], logprobs: Int? = nil,
                rawLogprobs: Bool = false) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
        self.stopStrings = stopStrings
        self.reasoning = reasoning
        self.grammar = grammar
        self.logitBias = logitBias
        self.logitBiasPieces = logitBiasPieces
        self.logprobs = logprobs
        self.rawLogprobs = rawLogprobs
    }

    /// Test hook: builds the token constraint instead of `grammar` (a test double of `GrammarConstraint`).
    var constraintFactory: (@Sendable (Tokenizer, Set<Int32>) throws -> any TokenConstraint)?
}

/// The result of a generation with its text (`Session.generateText`).
public struct TextGenerationResult: Sendable {
    /// The tokens and why generation stopped (`.stopString` when a stop string ended it).
    public var generation: GenerationResult
    /// The generated text (special tokens as their text), without an end-of-sequence token that stopped generation
    /// and cut before a stop string. It is `reasoning`, `answer` and the markers interleaved as generated.
    public var text: String
    /// The text inside thoughts, markers excluded ("" without `GenerationOptions.reasoning`).
    public var reasoning: String
    /// The text outside thoughts, markers excluded (all of `text` without `GenerationOptions.reasoning`).
    public var answer: String
    /// Generated tokens read while a thought was open (see `ReasoningOptions` for how markers count).
    public var reasoningTokenCount: Int { generation.reasoningTokenCount }
    /// What happened along the way without ending generation (a reasoning budget running out).
    public var events: [GenerationEvent] { generation.events }

    /// A result.
    public init(generation: GenerationResult, text: String, reasoning: String = "", answer: String? = nil) {
        self.generation = generation
        self.text = text
        self.reasoning = reasoning
        self.answer = answer ?? text
    }
}

/// The result of a generation.
public struct GenerationResult: Sendable {
    /// Generated token ids, in order (an end-of-sequence token that stopped generation is included, and so are
    /// forced tokens of a reasoning budget's closing text).
    public var tokens: [Int32]
    /// Why generation stopped.
    public var stopReason: StopReason
    /// Prompt tokens fed.
    public var promptTokenCount: Int
    /// One entry per token of `tokens` when `GenerationOptions.logprobs` is set (forced tokens get logprob 0), else
    /// empty.
    public var logprobs: [TokenLogprob] = []
    /// Generated tokens read while a thought was open (0 without `GenerationOptions.reasoning`).
    public var reasoningTokenCount: Int = 0
    /// What happened along the way without ending generation (a reasoning budget running out).
    public var events: [GenerationEvent] = []

    /// A result.
    public init(tokens: [Int32], stopReason: StopReason, promptTokenCount: Int, logprobs: [TokenLogprob] = [],
                reasoningTokenCount: Int = 0, events: [GenerationEvent] = []) {
        self.tokens = tokens
        self.stopReason = stopReason
        self.promptTokenCount = promptTokenCount
        self.logprobs = logprobs
        self.reasoningTokenCount = reasoningTokenCount
        self.events = events
    }
}

extension Session {
    /// Feeds `prompt` and produces up to `options.maxTokens` tokens. `onToken` sees each token as it is chosen (but not
    /// an end-of-sequence token that ends generation; forced tokens of a reasoning budget's closing text too) and
    /// returns false to stop. The session keeps the prompt and every generated token but the last one in its cache,
    /// so a follow-up `feed` should start with `result.tokens.last`.
    ///
    /// Throws what `feed` throws (`invalidArgument`, `contextFull` when the prompt alone does not fit, `cancelled`; the
    /// session then holds what was fed before), `invalidArgument` for bad options, and `tokenizerMissing` when
    /// reasoning, a grammar or piece biases need a tokenizer the model lacks.
    @discardableResult
    public func generate(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                         onToken: (Int32) throws -> Bool = { _ in true }) throws -> GenerationResult {
        try run {
            try generateRunning(prompt: prompt, options: options, streamText: false) { step in try onToken(step.token ?? -1) }.result
        }
    }

    /// The generation loop every `generate*` call runs: feeds the prompt, then asks a `SequenceDecoder` for tokens
    /// and feeds them until it stops. `onStep` sees every emitted token but a stopping end-of-sequence token.
    private func generateRunning(prompt: [Int32], options: GenerationOptions, streamText: Bool,
                                 onStep: (DecodeStep) throws -> Bool) throws -> (result: GenerationResult, decoder: SequenceDecoder) {
        guard !prompt.isEmpty || position > 0 else {
            throw MobileLLMError.invalidArgument(name: "prompt", problem: "empty, and the session holds no tokens to continue from")
        }
        var decoder = try SequenceDecoder(model: model, options: options, context: tokens + prompt, streamText: streamText)
        var logits: Logits
        if prompt.isEmpty {
            // Continue from the cache: recompute the last position's logits. A failed recomputation (a cancel) leaves
            // that position's cache entries as they were (the same token at the same position), so it is kept.
            let last = tokens[tokens.count - 1]
            tokens.removeLast()
            do {
                logits = try feed([last])
            } catch {
                tokens.append(last)
                throw error
            }
        } else {
            logits = try feed(prompt)
        }
        var stopReason = StopReason.maxTokens
        while options.maxTokens > 0 {
            let (pending, stop) = try decoder.turn(logits: logits.last, history: tokens, room: capacity - position, onStep: onStep)
            if let stop {
                stopReason = stop
                break
            }
            logits = try feed(pending)
        }
        let result = GenerationResult(tokens: decoder.tokens, stopReason: stopReason, promptTokenCount: prompt.count,
                                      logprobs: decoder.logprobs, reasoningTokenCount: decoder.reasoningTokenCount,
                                      events: decoder.events)
        return (result, decoder)
    }

    /// Generates like `generate` and streams the text as pieces (see `GeneratedPiece`): for each generated token but
    /// an end-of-sequence token that ends generation, one or more pieces (the first carries the token and its
    /// logprob; a token whose text spans channels gives one piece per channel); text held back for a stop string or
    /// a reasoning marker comes last in pieces without a token. Returning false stops generation (`.callback`) after
    /// the token's remaining pieces. The concatenated pieces equal the result's `text`; those of channel `reasoning`
    /// its `reasoning`, those of channel `answer` its `answer`.
    ///
    /// Throws what `generate` throws, and `unsupported` when the model has no tokenizer.
    @discardableResult
    public func generateText(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                             onPiece: (GeneratedPiece) throws -> Bool) throws -> TextGenerationResult {
        try generateTextRunning(prompt: prompt, options: options, onToken: { step in
            var go = true
            for piece in step.pieces where try !onPiece(piece) { go = false }
            return go
        }, onRest: { _, pieces in
            for piece in pieces { _ = try onPiece(piece) }
        })
    }

    /// Generates like `generate` and streams the text: `onText(token, piece)` gets, for each generated token but an
    /// end-of-sequence token that ends generation, the text that can be shown now. A piece holds whole UTF-8
    /// characters only, and text that could begin a stop string (or a reasoning marker) is held back until it is known
    /// not to (so a piece may be empty). The held-back rest comes last, as `onText(nil, rest)`, when generation ends
    /// without a stop string. Returning false stops generation (`.callback`). The concatenated pieces equal the
    /// result's `text`. `generateText(prompt:options:onPiece:)` gives the same text split by channel.
    ///
    /// Throws what `generate` throws, and `unsupported` when the model has no tokenizer.
    @discardableResult
    public func generateText(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                             onText: (Int32?, String) throws -> Bool = { _, _ in true }) throws -> TextGenerationResult {
        try generateTextRunning(prompt: prompt, options: options, onToken: { step in
            try onText(step.token, step.pieces.map(\.text).joined())
        }, onRest: { rest, _ in
            if let rest { _ = try onText(nil, rest) }
        })
    }

    /// Generates like `generateText(prompt:options:onPiece:)`, but hands over each generated token's pieces in one
    /// call: `onToken(pieces)` once per generated token but an end-of-sequence token that ends generation (at least
    /// one piece; the first carries the token), returning false to stop (`.callback`); then `onRest(rest, pieces)`
    /// once with the held-back text released at the end (`rest` as `generateText(prompt:options:onText:)` reports
    /// it, nil when there is nothing to report) and the same text split by channel. Hosts that stream both per-token
    /// text and channel pieces (the C ABI) use it.
    @discardableResult
    public func generateText(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                             onTokenPieces: ([GeneratedPiece]) throws -> Bool,
                             onRest: (String?, [GeneratedPiece]) throws -> Void) throws -> TextGenerationResult {
        try generateTextRunning(prompt: prompt, options: options, onToken: { step in try onTokenPieces(step.pieces) },
                                onRest: onRest)
    }

    private func generateTextRunning(prompt: [Int32], options: GenerationOptions, onToken: (DecodeStep) throws -> Bool,
                                     onRest: (String?, [GeneratedPiece]) throws -> Void) throws -> TextGenerationResult {
        _ = try model.tokenizer()
        var (generation, decoder) = try run {
            try generateRunning(prompt: prompt, options: options, streamText: true, onStep: onToken)
        }
        let (rest, pieces) = decoder.finish()
        if decoder.stoppedByString { generation.stopReason = .stopString }
        try onRest(rest, pieces)
        return TextGenerationResult(generation: generation, text: decoder.text, reasoning: decoder.reasoning, answer: decoder.answer)
    }
}
