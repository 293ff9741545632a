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

    /// Options; greedy decoding of up to 256 tokens unless told otherwise.
    public init(maxTokens: Int = 256, sampling: SamplingParameters = .greedy, stopTokenIDs: [Int]? = nil, ignoreEOS: Bool = false) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
    }
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
}
