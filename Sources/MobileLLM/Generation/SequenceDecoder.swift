
/// What a token constraint must do (`GrammarConstraint` conforms; tests use doubles): restrict the next token, follow
/// the chosen one, and say when the constrained text is complete.
protocol TokenConstraint: Sendable {
    /// Sets `allowed[t] = false` for every token `t` that may not come next (arrives all true, one entry per id).
    func restrict(_ allowed: inout [Bool])
    /// Advances over `token`; false (unchanged) when it may not come next.
    mutating func accept(_ token: Int32) -> Bool
    /// True when nothing more may follow.
    var isFinished: Bool { get }
    /// True when the text so far is complete (an end token is allowed now).
    var canEnd: Bool { get }
}

extension GrammarConstraint: TokenConstraint {}

/// One token a `SequenceDecoder` emitted (or the reason it emitted none).
struct DecodeStep {
    /// The token (nil when generation ended without one: no token was allowed).
    var token: Int32?
    /// True for a forced token (a reasoning budget's closing text): fed, but not sampled.
    var forced = false
    /// Its log-probability, when `GenerationOptions.logprobs` is set.
    var logprob: TokenLogprob?
    /// The text released with it (at least one piece, possibly empty; none for an end-of-sequence token that ends
    /// generation, whose text is not part of the output).
    var pieces: [GeneratedPiece] = []
    /// Set when generation ends here. The token, if any, belongs to the output but is not fed. An end-of-sequence
    /// token (`.endOfSequence`) is not reported to callbacks.
    var stop: StopReason?
}

/// The per-sequence decode state that `Session.generate*` and `BatchGenerator` share, so every rule lives once: the
/// sampler, the stop ids, logit bias and bans, the grammar, log-probabilities, the text stream with its stop
/// strings, the reasoning tracker and its budget, and `maxTokens`/context limits.
///
/// A loop calls `next(logits:history:room:)` with the logits of the last fed position and feeds the returned token;
/// while `needsLogits` is false (forced tokens queued after a reasoning budget ran out) it calls `next` again first
/// (the logits are then ignored) and feeds all the tokens together. It is a value: copying it (a forked sample)
/// gives an independent state.
struct SequenceDecoder {
    let options: GenerationOptions
    private var sampler: Sampler
    private let stops: Set<Int>
    private let vocabularySize: Int
    /// Logit bias by id (bans are -inf), sorted by id.
    private let bias: [(index: Int, value: Float)]
    private var constraint: (any TokenConstraint)?
    /// Text: the detokenizer (when text is streamed or reasoning tracked), the tracker of thoughts over the raw
    /// text (budget, grammar scope, counting), and for streamed text the stop strings then the display splitter.
    private var detokenizer: StreamingDetokenizer?
    private var tracker: ChannelSplitter?
    private var stopper: TextStopper?
    private var display: ChannelSplitter?
    private let streamsText: Bool
    /// The tokens of `reasoning.closing`.
    private let closingTokens: [Int32]
    /// Forced tokens still to emit.
    private var forced: [Int32] = []
    /// Set once a forced closing left the thought open (the closing did not decode to the end marker): no more forcing.
    private var closingFailed = false
    /// Scratch buffers for processed logits and the grammar mask.
    private var scratch: [Float] = []
    private var allowed: [Bool] = []

    /// Every token emitted so far (forced ones included; a final end-of-sequence token too).
    private(set) var tokens: [Int32] = []
    /// One per token of `tokens` when logprobs are on.
    private(set) var logprobs: [TokenLogprob] = []
    /// Generated tokens read while a thought was open.
    private(set) var reasoningTokenCount = 0
    /// Reasoning budget notes.
    private(set) var events: [GenerationEvent] = []
    /// The streamed text released so far, and its reasoning and answer channels.
    private(set) var text = ""
    private(set) var reasoning = ""
    private(set) var answer = ""
    /// True once a stop string ended the text.
    var stoppedByString: Bool { stopper?.reason != nil }

    /// A decoder for `options` on `model`, continuing `context` (every token the sequence holds before generating,
    /// prompt included; used to tell whether it ends inside a thought). `streamText` makes it release text pieces
    /// and apply stop strings. Throws `invalidArgument` for bad options (naming the field), `tokenizerMissing` when
    /// text, reasoning, a grammar or piece biases need a tokenizer and the model has none, and grammar errors.
    init(model: Model, options: GenerationOptions, context: [Int32], streamText: Bool) throws {
        guard options.maxTokens >= 0 else {
            throw MobileLLMError.invalidArgument(name: "maxTokens", problem: "expected a count >= 0, found \(options.maxTokens)")
        }
        self.options = options
        sampler = try Sampler(options.sampling)
        stops = Set(options.stopTokenIDs ?? model.eosTokenIDs)
        vocabularySize = model.vocabularySize
        streamsText = streamText
        if let n = options.logprobs, !(0...20).contains(n) {
            throw MobileLLMError.invalidArgument(name: "logprobs", problem: "expected 0...20 alternatives, found \(n)")
        }
        try options.reasoning?.validate()
        let needsTokenizer = streamText || options.reasoning != nil || options.grammar != nil
            || options.constraintFactory != nil || !options.logitBiasPieces.isEmpty
        let tokenizer = needsTokenizer ? try model.tokenizer() : nil

        // Bias: by id, then by piece.
        var combined: [Int: Float] = [:]
        func check(_ value: Float, _ name: String) throws {
            guard value.isFinite || value == -.infinity else {
                throw MobileLLMError.invalidArgument(name: name, problem: "expected a finite bias or -inf (a ban), found \(value)")
            }
        }
        for (id, value) in options.logitBias {
            guard id >= 0, Int(id) < model.vocabularySize else {
                throw MobileLLMError.invalidArgument(name: "logitBias", problem: "token id \(id) is outside the vocabulary (0..<\(model.vocabularySize))")
            }
            try check(value, "logitBias[\(id)]")
            combined[Int(id), default: 0] += value
        }
        if let tokenizer, !options.logitBiasPieces.isEmpty {
            let matches = Self.tokens(matching: Array(options.logitBiasPieces.keys), in: tokenizer)
            for (piece, value) in options.logitBiasPieces {
                try check(value, "logitBiasPieces[\(String(reflecting: piece))]")
                guard let ids = matches[piece], !ids.isEmpty else {
                    throw MobileLLMError.invalidArgument(name: "logitBiasPieces",
                                                         problem: "no token's piece or text is \(String(reflecting: piece))")
                }
                for id in ids { combined[Int(id), default: 0] += value }
            }
        }
        if combined.count == model.vocabularySize, combined.values.allSatisfy({ $0 == -.infinity }) {
            throw MobileLLMError.invalidArgument(name: "logitBias", problem: "bans every token of the vocabulary")
        }
        bias = combined.map { (index: $0.key, value: $0.value) }.sorted { $0.index < $1.index }

        // Text and reasoning.
        var open = false
        if let tokenizer {
            detokenizer = tokenizer.makeStreamingDetokenizer(skipSpecial: options.skipsSpecialText)
            if let reasoning = options.reasoning {
                let decoded = (try? tokenizer.decode(context, skipSpecial: false)) ?? ""
                open = ChannelSplitter.endsInsideThought(decoded, reasoning)
                tracker = ChannelSplitter(reasoning, open: open)
                closingTokens = tokenizer.encode(reasoning.closing, addSpecial: false, parseSpecial: true)
            } else {
                closingTokens = []
            }
            if streamText {
                stopper = TextStopper(stopStrings: options.stopStrings)
                display = options.reasoning.map { ChannelSplitter($0, open: open) }
            }
        } else {
            closingTokens = []
        }
        if let reasoning = options.reasoning, reasoning.budget == 0, open, options.maxTokens > 0 {
            beginClosing()
        }

        // The grammar.
        let endTokens: Set<Int32> = options.ignoreEOS ? [] : Set(stops.compactMap { Int32(exactly: $0) })
        if let tokenizer, let factory = options.constraintFactory {
            constraint = try factory(tokenizer, endTokens)
        } else if let tokenizer, let grammar = options.grammar {
            constraint = try grammar.constraint(tokenizer: tokenizer, endTokens: endTokens)
        }
    }

    /// The same decoder for a forked sample whose sampler uses `sampling` (another seed).
    func forked(sampling: SamplingParameters) throws -> SequenceDecoder {
        var copy = self
        copy.sampler = try Sampler(sampling)
        return copy
    }

    /// False while forced tokens are queued: call `next` again before feeding (its logits are ignored).
    var needsLogits: Bool { forced.isEmpty }

    /// Whether the grammar applies now: always without reasoning, else only outside a thought.
    private var constrains: Bool { constraint != nil && !(tracker?.isOpen ?? false) }

    /// Emits the next token: a queued forced token, or one sampled from `logits` (the last fed position's) with
    /// `history` (every token the sequence holds, for the penalties). `room` is how many more tokens the sequence's
    /// cache can take, counting the tokens emitted since the last feed.
    mutating func next(logits: ArraySlice<Float>, history: [Int32], room: Int) -> DecodeStep {
        if !forced.isEmpty {
            let token = forced.removeFirst()
            return emit(token, forced: true, logprob: options.logprobs == nil ? nil : TokenLogprob(token: token, logprob: 0), room: room)
        }
        guard tokens.count < options.maxTokens else { return DecodeStep(stop: .maxTokens) }
        var logits = logits
        if logits.count > vocabularySize { logits = logits.prefix(vocabularySize) }

        // Bias, bans and the grammar mask, on a copy.
        let constrained = constrains
        if !bias.isEmpty || constrained {
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: logits)
            for (index, value) in bias where index < scratch.count { scratch[index] += value }
            if constrained, let constraint {
                if allowed.count != scratch.count { allowed = [Bool](repeating: true, count: scratch.count) }
                for index in allowed.indices { allowed[index] = true }
                constraint.restrict(&allowed)
                var any = false
                for index in scratch.indices {
                    if !allowed[index] { scratch[index] = -.infinity } else if scratch[index] > -.infinity { any = true }
                }
                if !any { return DecodeStep(stop: .grammar) }
            }
        }
        let processed = !bias.isEmpty || constrained
        let token = processed ? sampler.sample(scratch, history: history) : sampler.sample(logits, history: history)
        var logprob: TokenLogprob?
        if let top = options.logprobs {
            if options.rawLogprobs {
                logprob = sampler.logprob(of: token, in: logits, history: history, top: top, raw: true)
            } else if processed {
                logprob = sampler.logprob(of: token, in: scratch, history: history, top: top, raw: false)
            } else {
                logprob = sampler.logprob(of: token, in: logits, history: history, top: top, raw: false)
            }
        }
        let isStop = !options.ignoreEOS && stops.contains(Int(token))
        if constrained, !isStop {
            guard constraint?.accept(token) == true else { return DecodeStep(stop: .grammar) }
        }
        if isStop {
            tokens.append(token)
            if let logprob { logprobs.append(logprob) }
            return DecodeStep(token: token, logprob: logprob, stop: .endOfSequence)
        }
        return emit(token, forced: false, logprob: logprob, room: room, constrained: constrained)
    }

    /// One decode turn from `logits` (the last fed position's): the sampled token and any forced tokens queued behind
    /// it, which are to be fed together, or the reason generation ends here. `room` is how many more tokens the
    /// sequence's cache can take. `onStep` sees every emitted token but a stopping end-of-sequence token; returning
    /// false ends generation with `.callback` (that token is kept in `tokens` but not fed).
    mutating func turn(logits: ArraySlice<Float>, history: [Int32], room: Int,
                       onStep: (DecodeStep) throws -> Bool) rethrows -> (feed: [Int32], stop: StopReason?) {
        var feed: [Int32] = []
        repeat {
            let step = next(logits: logits, history: history, room: room - feed.count)
            if let token = step.token, step.stop != .endOfSequence {
                if try !onStep(step) { return (feed, .callback) }
                feed.append(token)
            }
            if let stop = step.stop { return (feed, stop) }
        } while !needsLogits
        return (feed, nil)
    }

    /// Records an emitted token (not a stopping end-of-sequence token): its text, the reasoning count and budget,
    /// and the stop rules after it.
    private mutating func emit(_ token: Int32, forced isForced: Bool, logprob: TokenLogprob?, room: Int,
                               constrained: Bool = false) -> DecodeStep {
        tokens.append(token)
        if let logprob { logprobs.append(logprob) }
        var step = DecodeStep(token: token, forced: isForced, logprob: logprob)
        let wasOpen = tracker?.isOpen ?? false
        if wasOpen, !isForced { reasoningTokenCount += 1 }

        // The text: the raw text goes to the tracker; streamed text through the stop strings to the display split.
        var segments: [(channel: TextChannel, text: String)] = []
        if detokenizer != nil {
            let raw = (try? detokenizer?.push(token)) ?? ""
            _ = tracker?.push(raw)
            if streamsText, stopper != nil {
                let shown = stopper!.push(raw)
                segments = split(shown)
                if stopper!.reason != nil, display != nil { segments += display!.finish() }
            }
        }
        step.pieces = pieces(segments, token: token, logprob: logprob, forced: isForced)

        if stoppedByString {
            step.stop = .stopString
            forcedClear()
            return step
        }
        if constrained, constraint?.isFinished == true {
            step.stop = .grammar
            return step
        }
        // The budget: a thought still open after `budget` reasoning tokens is closed by force.
        if let tracker, tracker.isOpen, forced.isEmpty, !closingFailed, let budget = options.reasoning?.budget,
           reasoningTokenCount >= budget {
            if isForced {
                closingFailed = true  // the whole closing went in and the thought is still open
            } else {
                beginClosing()
            }
        }
        if tokens.count >= options.maxTokens {
            step.stop = .maxTokens
        } else if room < 1 {
            step.stop = .contextFull
        }
        if step.stop != nil { forcedClear() }
        return step
    }

    /// Queues the closing text's tokens (as many as `maxTokens` leaves room for) and notes the event.
    private mutating func beginClosing() {
        guard !closingTokens.isEmpty else { return }
        events.append(GenerationEvent(kind: .reasoningBudget, tokenIndex: tokens.count))
        forced = Array(closingTokens.prefix(max(0, options.maxTokens - tokens.count)))
    }

    private mutating func forcedClear() { forced.removeAll() }

    /// Streamed text split into channels (all answer without reasoning).
    private mutating func split(_ shown: String) -> [(channel: TextChannel, text: String)] {
        if display != nil { return display!.push(shown) }
        return shown.isEmpty ? [] : [(.answer, shown)]
    }

    /// Turns segments into pieces (at least one; the first carries the token) and adds them to the texts.
    private mutating func pieces(_ segments: [(channel: TextChannel, text: String)], token: Int32?, logprob: TokenLogprob?,
                                 forced: Bool) -> [GeneratedPiece] {
        var result: [GeneratedPiece] = []
        for (index, segment) in segments.enumerated() {
            result.append(GeneratedPiece(token: index == 0 ? token : nil, text: segment.text, channel: segment.channel,
                                         logprob: index == 0 ? logprob : nil, forced: forced))
            text += segment.text
            switch segment.channel {
            case .reasoning: reasoning += segment.text
            case .answer: answer += segment.text
            case .marker: break
            }
        }
        if result.isEmpty, token != nil {
            result.append(GeneratedPiece(token: token, text: "", channel: display?.channel ?? tracker?.channel ?? .answer,
                                         logprob: logprob, forced: forced))
        }
        return result
    }

    /// Ends the text: returns the held-back rest as one string (nil when there is nothing to report: no rest and no
    /// stop strings watched, or a stop string already ended the text) and as pieces by channel (`token` nil).
    mutating func finish() -> (rest: String?, pieces: [GeneratedPiece]) {
        guard streamsText, var stopper, !stoppedByString else { return (nil, []) }
        let flushed = detokenizer?.flush() ?? ""
        _ = tracker?.push(flushed)
        let shown = stopper.push(flushed) + stopper.finish()
        self.stopper = stopper
        var segments = split(shown)
        if display != nil { segments += display!.finish() }
        let rest = segments.map(\.text).joined()
        let restPieces = pieces(segments, token: nil, logprob: nil, forced: false)
        let watched = !options.stopStrings.isEmpty
        return (!rest.isEmpty || watched ? rest : nil, restPieces)
    }

    /// For each key, the ids whose vocabulary spelling or decoded text equals it.
    static func tokens(matching keys: [String], in tokenizer: Tokenizer) -> [String: [Int32]] {
        var result: [String: [Int32]] = [:]
        var byBytes: [[UInt8]: [String]] = [:]
        for key in keys {
            if let id = tokenizer.tokenID(forPiece: key) { result[key, default: []].append(id) }
            byBytes[Array(key.utf8), default: []].append(key)
        }
        let lengths = Set(byBytes.keys.map(\.count))
        for id in 0..<tokenizer.vocabularySize where tokenizer.present[id] {
            let start = Int(tokenizer.decodedOffsets[id]), end = Int(tokenizer.decodedOffsets[id + 1])
            guard lengths.contains(end - start), let keys = byBytes[Array(tokenizer.decodedBytes[start..<end])] else { continue }
            for key in keys where !(result[key]?.contains(Int32(id)) ?? false) { result[key, default: []].append(Int32(id)) }
        }
        return result
    }
}
