import Synchronization

/// What a `BatchGenerator` step reports.
public enum BatchEvent: Sendable, Equatable {
    /// Sequence `sequence` produced `token` (not an end-of-sequence token that ends it; forced tokens of a reasoning
    /// budget's closing text are reported too). `text` is the text that can be shown now when the sequence streams
    /// text (whole UTF-8 characters, stop-string and marker candidates held back; possibly empty), and "" otherwise.
    /// `pieces` is that text split by channel, as `Session.generateText(prompt:options:onPiece:)` gives it: at least
    /// one piece, the first carrying the token and its log-probability (`GenerationOptions.logprobs`), later ones
    /// (another channel) `token == nil`; their texts concatenate to `text`.
    case token(sequence: Int, token: Int32, text: String, pieces: [GeneratedPiece])
    /// Sequence `sequence` ended. `rest` is the held-back text released at the end (nil when there is none to
    /// report), `restPieces` the same text split by channel (pieces without a token; empty when `rest` is nil or
    /// empty), and `result` its tokens, text and stop reason.
    case finished(sequence: Int, rest: String?, restPieces: [GeneratedPiece], result: BatchResult)
}

/// The outcome of one batched sequence.
public struct BatchResult: Sendable, Equatable {
    /// Generated token ids (an end-of-sequence token that stopped generation is included, and so are forced tokens).
    public var tokens: [Int32]
    /// Why it stopped (`.cancelled` after `BatchGenerator.cancel`).
    public var stopReason: StopReason
    /// Prompt tokens fed for it (0 for a fork that shared another sequence's prompt; see `add(prompt:samples:)`).
    public var promptTokenCount: Int
    /// The generated text when the sequence streamed text (as `Session.generateText` gives it), else "".
    public var text: String
    /// The text inside thoughts, markers excluded (streamed text with `GenerationOptions.reasoning` only, else "").
    public var reasoning: String = ""
    /// The text outside thoughts, markers excluded (all of `text` without `GenerationOptions.reasoning`).
    public var answer: String = ""
    /// Generated tokens read while a thought was open (see `ReasoningOptions`).
    public var reasoningTokenCount: Int = 0
    /// One entry per token of `tokens` when `GenerationOptions.logprobs` is set, else empty.
    public var logprobs: [TokenLogprob] = []
    /// What happened along the way without ending the sequence (a reasoning budget running out).
    public var events: [GenerationEvent] = []

    /// A result.
    public init(tokens: [Int32], stopReason: StopReason, promptTokenCount: Int, text: String, reasoning: String = "",
                answer: String? = nil, reasoningTokenCount: Int = 0, logprobs: [TokenLogprob] = [], events: [GenerationEvent] = []) {
        self.tokens = tokens
        self.stopReason = stopReason
        self.promptTokenCount = promptTokenCount
        self.text = text
        self.reasoning = reasoning
        self.answer = answer ?? text
        self.reasoningTokenCount = reasoningTokenCount
        self.logprobs = logprobs
        self.events = events
    }
}

/// Advances many sequences of one model together: each `step()` is one forward pass that reads every weight block
/// once for all of its rows — one decode token per running sequence plus prefill chunks of sequences still reading
/// their prompts (continuous batching: a sequence added while others decode joins at the next step, and its prompt
/// is fed in chunks so the others keep producing tokens).
///
/// Every sequence runs on its own `Session` (its KV cache and position), and every row's arithmetic is independent
/// of the rows it shares a pass with, so results are those of running it alone: bit-identical for float weights and
/// in the int8 mode. Quantized weights in the exact mode use a tile kernel for passes of several rows (as a
/// single-sequence prefill does) whose logits agree with the one-row decode kernel's to float rounding (about 1e-5
/// of the largest logit; the same greedy tokens on the fixtures and SmolLM2, see BatchTests). `add(prompt:samples:)` prefills a prompt once and forks its
/// cache for each sample (`Session.fork()`: the prefix's pages are shared, not copied).
///
/// Threading: `add`, `step` and `run` may be called from one thread at a time (calls from a second thread wait);
/// `cancel` and `cancelAll` from any thread. A session given to `add(session:…)` belongs to the batch until its
/// sequence finishes: using it elsewhere meanwhile waits for the running step. Forward passes of every batch and
/// session in the process take turns on the shared compute pool (`ComputePool.passes`).
public final class BatchGenerator: @unchecked Sendable {
    /// The model every sequence runs.
    public let model: Model
    /// Most rows (tokens) one step computes: every running sequence's decode token, plus prefill chunks up to this.
    public let maxRowsPerStep: Int

    /// One sequence's state.
    private final class Sequence {
        let id: Int
        var session: Session?
        let options: GenerationOptions
        /// Sampling, stop rules, text, reasoning and constraints (shared with `Session.generate*`).
        var decoder: SequenceDecoder
        /// Tokens still to feed: the prompt's remainder, then each emitted token (several after forced ones).
        var pending: [Int32]
        var promptTokenCount: Int
        /// Sequences (samples) waiting to fork this one's session once its prompt is in.
        var followers: [Sequence] = []
        /// Set for a follower until its leader forks it.
        var waitingForLeader = false
        init(id: Int, session: Session?, options: GenerationOptions, decoder: SequenceDecoder, pending: [Int32],
             promptTokenCount: Int) {
            self.id = id
            self.session = session
            self.options = options
            self.decoder = decoder
            self.pending = pending
            self.promptTokenCount = promptTokenCount
        }
    }

    /// Guards `sequences` and `nextID` (held by `add`, `step` and `run` for their whole duration).
    private let lock = PosixLock(recursive: true)
    private var sequences: [Sequence] = []
    /// Ids issued so far (ids are 0, 1, 2, … in the order sequences were added).
    private let issued = Atomic<Int>(0)
    /// Sequences asked to stop (any thread): these ids, every id below `below`, and whether the running pass should
    /// end early.
    private let cancellations = Mutex<(ids: Set<Int>, below: Int, abortPass: Bool)>(([], 0, false))
    private let scratch = Scratch()
    /// The logits each sequence sampled from in the latest step, by id (filled only while `keepsLogits`).
    private var keptLogits: [Int: [Float]] = [:]

    /// Whether each step keeps the logits every sequence sampled its token from, for `logits(of:)` (default false:
    /// keeping them copies one vocabulary row per sequence and step). Set it between steps.
    public var keepsLogits: Bool {
        get { lock.lock(); defer { lock.unlock() }; return keeping }
        set { lock.lock(); defer { lock.unlock() }; keeping = newValue }
    }
    private var keeping = false

    /// The threads this batch's forward passes run on: the model's pool or a view of it on fewer threads.
    private var pool: ComputePool?

    /// Threads this batch's forward passes use: 1 ... `model.threadCount` (the model's pool, which it starts at).
    /// Results do not depend on it (see `Session.threadCount`). Reading it waits for a running step.
    public var threadCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return pool?.threadCount ?? model.pool.threadCount
    }

    /// Makes later steps run on `threads` threads of the model's pool (1 ... `model.threadCount`); throws
    /// `invalidArgument` naming `threadCount` otherwise. Waits for a running step.
    public func setThreadCount(_ threads: Int) throws {
        let view = try model.pool(limitedTo: threads)
        lock.lock()
        defer { lock.unlock() }
        pool = view
    }

    /// The logits sequence `id` sampled its token from in the latest step (a fork's are its leader's prompt logits),
    /// or nil when it sampled nothing then or `keepsLogits` was off. Cleared at the start of every step.
    public func logits(of id: Int) -> [Float]? {
        lock.lock()
        defer { lock.unlock() }
        return keptLogits[id]
    }

    /// A batch for `model`; `maxRowsPerStep` (1...`Session.batchLimit`, default that limit) bounds the rows of one
    /// forward pass and so its scratch memory and the time one step takes.
    public init(model: Model, maxRowsPerStep: Int = Session.batchLimit) throws {
        guard maxRowsPerStep >= 1, maxRowsPerStep <= Session.batchLimit else {
            throw MobileLLMError.invalidArgument(name: "maxRowsPerStep", problem: "expected 1...\(Session.batchLimit), found \(maxRowsPerStep)")
        }
        self.model = model
        self.maxRowsPerStep = maxRowsPerStep
    }

    /// Sequences not yet finished.
    public var activeCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return sequences.count
    }

    /// The session sequence `id` runs on (nil once it finished, or for a sample not yet forked).
    public func session(of id: Int) -> Session? {
        lock.lock()
        defer { lock.unlock() }
        return sequences.first { $0.id == id }?.session
    }

    /// Adds a sequence that feeds `prompt` to a new session and then generates as `options` say; returns its id.
    /// `contextLength` and `kvCacheType` are `Model.makeSession`'s. With `streamText` the sequence's events carry its
    /// text and stop strings apply (needs a tokenizer). Throws `invalidArgument` (ids outside the vocabulary, bad
    /// options, an empty prompt), `contextFull` when the prompt does not fit; nothing is added then.
    @discardableResult
    public func add(prompt: [Int32], options: GenerationOptions = GenerationOptions(), contextLength: Int? = nil,
                    kvCacheType: KVCacheType? = nil, streamText: Bool = false) throws -> Int {
        try add(prompt: prompt, samples: 1, options: options, contextLength: contextLength, kvCacheType: kvCacheType,
                streamText: streamText)[0]
    }

    /// Adds `samples` sequences that continue one prompt: the prompt is fed once, on the first sequence's session,
    /// and the others fork it (sharing the prompt's KV pages) and sample their first token from the same logits.
    /// With a seed in `options.sampling`, sample `i` uses seed + i (so sample 0 matches a single run with the seed).
    /// Returns the ids in sample order. Throws as `add(prompt:)` does, and `invalidArgument` for `samples < 1`.
    @discardableResult
    public func add(prompt: [Int32], samples: Int, options: GenerationOptions = GenerationOptions(), contextLength: Int? = nil,
                    kvCacheType: KVCacheType? = nil, streamText: Bool = false) throws -> [Int] {
        guard samples >= 1 else {
            throw MobileLLMError.invalidArgument(name: "samples", problem: "expected a count >= 1, found \(samples)")
        }
        let session = try model.makeSession(contextLength: contextLength, kvCacheType: kvCacheType)
        lock.lock()
        defer { lock.unlock() }
        let first = issued.load(ordering: .relaxed)
        let leader = try makeSequence(id: first, session: session, prompt: prompt, options: options, streamText: streamText)
        var added = [leader]
        for index in 1..<samples {
            // A sample copies the leader's decoder (same prompt, same rules) with a sampler of its own seed.
            var sampleOptions = options
            sampleOptions.sampling.seed = options.sampling.seed.map { $0 &+ UInt64(index) }
            let follower = Sequence(id: first + index, session: nil, options: sampleOptions,
                                    decoder: try leader.decoder.forked(sampling: sampleOptions.sampling), pending: [],
                                    promptTokenCount: 0)
            follower.waitingForLeader = true
            leader.followers.append(follower)
            added.append(follower)
        }
        sequences.append(contentsOf: added)
        issued.store(first + samples, ordering: .sequentiallyConsistent)
        return added.map(\.id)
    }

    /// Adds a sequence that feeds `prompt` to `session` (an empty prompt continues from its last token, as
    /// `Session.generate` does) and then generates; returns its id. Throws as `add(prompt:)` does, and
    /// `invalidArgument` when the session belongs to another model or already runs in this batch.
    @discardableResult
    public func add(session: Session, prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                    streamText: Bool = false) throws -> Int {
        guard session.model === model else {
            throw MobileLLMError.invalidArgument(name: "session", problem: "belongs to another model than the batch's")
        }
        lock.lock()
        defer { lock.unlock() }
        guard !sequences.contains(where: { $0.session === session }) else {
            throw MobileLLMError.invalidArgument(name: "session", problem: "already runs a sequence of this batch")
        }
        let id = issued.load(ordering: .relaxed)
        let sequence = try makeSequence(id: id, session: session, prompt: prompt, options: options, streamText: streamText)
        sequences.append(sequence)
        issued.store(id + 1, ordering: .sequentiallyConsistent)
        return id
    }

    /// Validates a request and builds its sequence (`session` holds its history, prompt not yet fed).
    private func makeSequence(id: Int, session: Session, prompt: [Int32], options: GenerationOptions, streamText: Bool) throws -> Sequence {
        var pending = prompt
        let c = model.configuration
        for (index, token) in prompt.enumerated() where token < 0 || Int(token) >= c.vocabularySize {
            throw MobileLLMError.invalidArgument(name: "tokens[\(index)]", problem: "token id \(token) is outside the vocabulary (0..<\(c.vocabularySize))")
        }
        session.useLock.lock()
        defer { session.useLock.unlock() }
        let decoder = try SequenceDecoder(model: model, options: options, context: session.tokens + prompt, streamText: streamText)
        if prompt.isEmpty {
            guard let last = session.tokens.last else {
                throw MobileLLMError.invalidArgument(name: "prompt", problem: "empty, and the session holds no tokens to continue from")
            }
            // Continue from the cache: the last position is recomputed for its logits (same token, same position).
            try session.rewind(to: session.position - 1)
            pending = [last]
        } else if prompt.count > session.capacity - session.position {
            throw MobileLLMError.contextFull(capacity: session.capacity, position: session.position, requested: prompt.count)
        }
        return Sequence(id: id, session: session, options: options, decoder: decoder, pending: pending, promptTokenCount: prompt.count)
    }

    /// Asks sequence `id` to stop: it finishes with `.cancelled` at the next step. Unknown or finished ids are
    /// ignored. Safe from any thread, also during a step.
    public func cancel(_ id: Int) {
        _ = cancellations.withLock { $0.ids.insert(id) }
    }

    /// Asks every sequence to stop: a running step ends within one layer's work, and every sequence finishes with
    /// `.cancelled` (what each had generated is kept). Sequences added later are not affected. Safe from any thread.
    public func cancelAll() {
        let below = issued.load(ordering: .sequentiallyConsistent)
        cancellations.withLock { state in
            state.below = max(state.below, below)
            state.abortPass = true
        }
    }

    /// Runs one forward pass over every running sequence and returns what happened, in sequence order per kind:
    /// tokens produced and sequences finished. Returns no events when no sequence is left. Throws when a forward pass
    /// fails; the sequences are then as they were before the step.
    public func step() throws -> [BatchEvent] {
        lock.lock()
        defer { lock.unlock() }
        var events: [BatchEvent] = []
        keptLogits = [:]
        finishCancelled(into: &events)

        // Rows: one decode token per sequence first, then prompt chunks (oldest first) within the row budget.
        var parts: [ForwardPart] = []
        var owners: [(sequence: Sequence, count: Int, wantsLogits: Bool)] = []
        var rows = 0
        let running = sequences.filter { !$0.waitingForLeader && $0.session != nil && !$0.pending.isEmpty }
        func schedule(_ sequence: Sequence, count: Int) {
            guard let session = sequence.session else { return }
            let wantsLogits = count == sequence.pending.count && sequence.options.maxTokens > 0
            parts.append(ForwardPart(cache: session.cache, tokens: Array(sequence.pending[0..<count]), start: session.position,
                                     logits: wantsLogits ? .last : .none))
            owners.append((sequence, count, wantsLogits))
            rows += count
        }
        for sequence in running where sequence.pending.count == 1 { schedule(sequence, count: 1) }
        // Prompts share what the decode rows leave of the budget; with none left, one chunk of 16 still goes in.
        var budget = maxRowsPerStep - rows
        for sequence in running where sequence.pending.count > 1 {
            let allowance = budget > 0 ? budget : (parts.count == rows ? 16 : 0)
            guard allowance > 0 else { break }
            let count = min(allowance, sequence.pending.count)
            schedule(sequence, count: count)
            budget -= count
        }
        guard !parts.isEmpty else {
            finishIdle(into: &events)
            return events
        }

        // The pass, holding every participating session (so no host call interleaves with it).
        let sessions = owners.compactMap(\.sequence.session)
        for session in sessions { session.useLock.lock() }
        defer { for session in sessions { session.useLock.unlock() } }
        var logits: [Float] = []
        do {
            try model.forward(parts, scratch: scratch, pool: pool, checkCancelled: {
                if self.cancellations.withLock({ $0.abortPass }) { throw MobileLLMError.cancelled }
            }, into: &logits)
        } catch MobileLLMError.cancelled {
            finishCancelled(into: &events)
            return events
        }

        // Commit the fed tokens, then sample where logits came back.
        let vocabulary = model.vocabularySize
        var row = 0
        for owner in owners {
            let sequence = owner.sequence
            guard let session = sequence.session else { continue }
            session.tokens.append(contentsOf: sequence.pending[0..<owner.count])
            session.cache.advance(to: session.tokens.count)
            sequence.pending.removeSubrange(0..<owner.count)
            if owner.wantsLogits {
                let values = logits[(row * vocabulary)..<((row + 1) * vocabulary)]
                row += 1
                // Samples waiting for this prompt fork it now, before any of them feeds a token of its own.
                for follower in sequence.followers {
                    follower.session = session.fork()
                    follower.waitingForLeader = false
                    sample(follower, logits: values, into: &events)
                }
                sequence.followers = []
                sample(sequence, logits: values, into: &events)
            } else if sequence.pending.isEmpty {
                // A prompt fed for maxTokens == 0 (its waiting samples end with it).
                finish(sequence, .maxTokens, into: &events)
            }
        }
        sequences.removeAll { $0.session == nil && !$0.waitingForLeader }
        return events
    }

    /// Runs steps until every sequence has finished, calling `onEvent` for each event; returning false from it
    /// cancels everything (the remaining sequences finish with `.cancelled`, reported too). Throws what `step` and
    /// `onEvent` throw.
    public func run(onEvent: (BatchEvent) throws -> Bool) throws {
        lock.lock()
        defer { lock.unlock() }
        while !sequences.isEmpty {
            for event in try step() where try !onEvent(event) {
                cancelAll()
            }
        }
    }

    // MARK: - Helpers (called holding `lock`)

    /// Chooses the sequence's next token from `logits` (and any forced tokens after it) with its `SequenceDecoder`,
    /// which applies every stop rule as `Session.generate` does.
    private func sample(_ sequence: Sequence, logits: ArraySlice<Float>, into events: inout [BatchEvent]) {
        guard let session = sequence.session else { return }
        if keeping { keptLogits[sequence.id] = Array(logits) }
        let (feed, stop) = sequence.decoder.turn(logits: logits, history: session.tokens,
                                                 room: session.capacity - session.position) { step in
            events.append(.token(sequence: sequence.id, token: step.token ?? -1, text: step.pieces.map(\.text).joined(),
                                 pieces: step.pieces))
            return true
        }
        if let stop {
            finish(sequence, stop, into: &events)
        } else {
            sequence.pending = feed
        }
    }

    /// Ends a sequence: reports its result and detaches its session.
    private func finish(_ sequence: Sequence, _ reason: StopReason, into events: inout [BatchEvent]) {
        let (rest, restPieces) = reason == .stopString ? (nil, []) : sequence.decoder.finish()
        let decoder = sequence.decoder
        let stopReason = decoder.stoppedByString ? .stopString : reason
        let result = BatchResult(tokens: decoder.tokens, stopReason: stopReason, promptTokenCount: sequence.promptTokenCount,
                                 text: decoder.text, reasoning: decoder.reasoning, answer: decoder.answer,
                                 reasoningTokenCount: decoder.reasoningTokenCount, logprobs: decoder.logprobs,
                                 events: decoder.events)
        events.append(.finished(sequence: sequence.id, rest: rest, restPieces: restPieces, result: result))
        for follower in sequence.followers { finish(follower, reason, into: &events) }
        sequence.followers = []
        sequence.session = nil
        sequence.waitingForLeader = false
        sequence.pending = []
    }

    /// Finishes the sequences asked to stop (and their waiting samples).
    private func finishCancelled(into events: inout [BatchEvent]) {
        let (ids, below) = cancellations.withLock { state -> (Set<Int>, Int) in
            defer {
                state.ids = []
                state.abortPass = false
            }
            return (state.ids, state.below)
        }
        for sequence in sequences where sequence.id < below || ids.contains(sequence.id) {
            guard sequence.session != nil || sequence.waitingForLeader else { continue }
            if sequence.waitingForLeader {
                // A sample cancelled before its fork: its leader no longer forks it.
                for leader in sequences { leader.followers.removeAll { $0 === sequence } }
            } else if !sequence.followers.isEmpty {
                // A prompt's first sample cancelled while the others wait for the prompt: the next one takes over.
                let heir = sequence.followers.removeFirst()
                heir.session = sequence.session
                heir.pending = sequence.pending
                heir.promptTokenCount = sequence.promptTokenCount
                heir.followers = sequence.followers
                heir.waitingForLeader = false
                sequence.followers = []
            }
            finish(sequence, .cancelled, into: &events)
        }
        sequences.removeAll { $0.session == nil && !$0.waitingForLeader }
    }

    /// Ends sequences with nothing left to feed (none should remain; a safety net so `run` always terminates).
    private func finishIdle(into events: inout [BatchEvent]) {
        for sequence in sequences where sequence.session != nil && sequence.pending.isEmpty {
            finish(sequence, .maxTokens, into: &events)
        }
        sequences.removeAll { $0.session == nil && !$0.waitingForLeader }
    }
}
