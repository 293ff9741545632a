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
    /// A stop string appeared in the text (`generateText` only; the text ends before it).
    case stopString = "stop"
    /// The sequence was cancelled (`BatchGenerator.cancel`; a cancelled `Session` call throws `cancelled` instead).
    case cancelled = "cancelled"
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
    /// Strings that end generation when they appear in the text (`generateText`; empty strings are ignored). The
    /// text ends just before the first one to complete, wherever token and UTF-8 boundaries fall.
    public var stopStrings: [String]

    /// Options; greedy decoding of up to 256 tokens unless told otherwise.
    public init(maxTokens: Int = 256, sampling: SamplingParameters = .greedy, stopTokenIDs: [Int]? = nil, ignoreEOS: Bool = false,
                stopStrings: [String] = []) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
        self.stopStrings = stopStrings
    }
}

/// The result of a generation with its text (`Session.generateText`).
public struct TextGenerationResult: Sendable {
    /// The tokens and why generation stopped (`.stopString` when a stop string ended it).
    public var generation: GenerationResult
    /// The generated text (special tokens as their text), without an end-of-sequence token that stopped generation
    /// and cut before a stop string.
    public var text: String
}

/// The result of a generation.
public struct GenerationResult: Sendable {
    /// Generated token ids, in order (an end-of-sequence token that stopped generation is included).
    public var tokens: [Int32]
    /// Why generation stopped.
    public var stopReason: StopReason
    /// Prompt tokens fed.
    public var promptTokenCount: Int
}

extension Session {
    /// Feeds `prompt` and produces up to `options.maxTokens` tokens. `onToken` sees each token as it is chosen (but not
    /// an end-of-sequence token that ends generation) and returns false to stop. The session keeps the prompt and every generated token but the last one in its cache,
    /// so a follow-up `feed` should start with `result.tokens.last`.
    ///
    /// Throws what `feed` throws (`invalidArgument`, `contextFull` when the prompt alone does not fit, `cancelled`; the
    /// session then holds what was fed before).
    @discardableResult
    public func generate(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                         onToken: (Int32) throws -> Bool = { _ in true }) throws -> GenerationResult {
        try run { try generateRunning(prompt: prompt, options: options, onToken: onToken) }
    }

    private func generateRunning(prompt: [Int32], options: GenerationOptions, onToken: (Int32) throws -> Bool) throws -> GenerationResult {
        guard options.maxTokens >= 0 else {
            throw MobileLLMError.invalidArgument(name: "maxTokens", problem: "expected a count >= 0, found \(options.maxTokens)")
        }
        var sampler = try Sampler(options.sampling)
        let stops = Set(options.stopTokenIDs ?? model.eosTokenIDs)
        guard !prompt.isEmpty || position > 0 else {
            throw MobileLLMError.invalidArgument(name: "prompt", problem: "empty, and the session holds no tokens to continue from")
        }
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
        var result = GenerationResult(tokens: [], stopReason: .maxTokens, promptTokenCount: prompt.count)
        while result.tokens.count < options.maxTokens {
            let token = sampler.sample(logits.last, history: tokens)
            result.tokens.append(token)
            if !options.ignoreEOS, stops.contains(Int(token)) {
                result.stopReason = .endOfSequence
                break
            }
            if try !onToken(token) {
                result.stopReason = .callback
                break
            }
            if result.tokens.count == options.maxTokens { break }
            if position >= capacity {
                result.stopReason = .contextFull
                break
            }
            logits = try feed([token])
        }
        return result
    }

    /// Generates like `generate` and streams the text: `onText(token, piece)` gets, for each generated token but an
    /// end-of-sequence token that ends generation, the text that can be shown now. A piece holds whole UTF-8
    /// characters only, and text that could begin a stop string is held back until it is known not to (so a piece
    /// may be empty). The held-back rest comes last, as `onText(nil, rest)`, when generation ends without a stop
    /// string. Returning false stops generation (`.callback`). The concatenated pieces equal the result's `text`.
    ///
    /// Throws what `generate` throws, and `unsupported` when the model has no tokenizer.
    @discardableResult
    public func generateText(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                             onText: (Int32?, String) throws -> Bool = { _, _ in true }) throws -> TextGenerationResult {
        var stream = try TextStream(model: model, stopStrings: options.stopStrings)
        var generation = try generate(prompt: prompt, options: options) { token in
            let shown = try stream.push(token)
            let go = try onText(token, shown)
            return go && !stream.stopped
        }
        let rest = stream.finish()
        if stream.stopped { generation.stopReason = .stopString }
        if let rest { _ = try onText(nil, rest) }
        return TextGenerationResult(generation: generation, text: stream.text)
    }
}

/// The text of one generation as it streams: a streaming detokenizer (special tokens as their text) followed by a
/// `TextStopper` for the stop strings. `Session.generateText` and `BatchGenerator` both stream through it, so pieces,
/// hold-back and the final text follow one rule.
struct TextStream {
    private var detokenizer: StreamingDetokenizer
    private var stopper: TextStopper
    private let hasStops: Bool
    /// Every piece released so far.
    private(set) var text = ""
    /// True once a stop string appeared (the text ends before it; later tokens add nothing).
    var stopped: Bool { stopper.reason != nil }

    /// A stream for `model`'s tokenizer; throws `tokenizerMissing` when the model has none.
    init(model: Model, stopStrings: [String]) throws {
        detokenizer = try model.tokenizer().makeStreamingDetokenizer(skipSpecial: false)
        stopper = TextStopper(stopStrings: stopStrings)
        hasStops = !stopStrings.isEmpty
    }

    /// Feeds a generated token (not an end-of-sequence token that ended generation); returns the text that can be
    /// shown now (whole UTF-8 characters, stop-string candidates held back; possibly empty).
    mutating func push(_ token: Int32) throws -> String {
        let shown = stopper.push(try detokenizer.push(token))
        text += shown
        return shown
    }

    /// Ends the stream: returns the held-back rest (text before a stop string completed by it included), or nil when
    /// there is nothing to report (no rest and no stop strings watched, or a stop string had already ended the text).
    mutating func finish() -> String? {
        guard !stopped else { return nil }
        let rest = stopper.push(detokenizer.flush()) + stopper.finish()
        text += rest
        return !rest.isEmpty || hasStops ? rest : nil
    }
}
