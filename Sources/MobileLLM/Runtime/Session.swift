import CMobileLLMKernels
import Synchronization

/// Which positions' logits a call to `Session.feed` returns.
public enum LogitsRequest: Sendable {
    /// None (the tokens only extend the KV cache).
    case none
    /// The last fed position's.
    case last
    /// One row for every fed position.
    case all
}

/// Logits rows, each `vocabularySize` long, stored contiguously.
public struct Logits: Sendable, Equatable {
    /// Length of each row.
    public let vocabularySize: Int
    /// Row-major values: `rowCount × vocabularySize`.
    public let values: [Float]

    /// Number of rows.
    public var rowCount: Int { vocabularySize == 0 ? 0 : values.count / vocabularySize }

    /// Row `index`.
    public func row(_ index: Int) -> ArraySlice<Float> {
        values[(index * vocabularySize)..<((index + 1) * vocabularySize)]
    }

    /// The last row (empty when there are none).
    public var last: ArraySlice<Float> { rowCount == 0 ? [] : row(rowCount - 1) }
}

/// One conversation's state: a KV cache of fixed capacity, the tokens fed so far and scratch buffers.
///
/// A session is used by one thread at a time; `cancel()` alone may be called from any thread. Calls that arrive
/// from a second thread while one is running wait for it (they never interleave or corrupt the cache).
public final class Session: @unchecked Sendable {
    /// The model this session runs.
    public let model: Model
    /// Positions the KV cache holds.
    public let capacity: Int
    /// Tokens fed so far (the KV cache holds exactly these).
    public internal(set) var tokens: [Int32] = []
    /// Number of positions in the KV cache.
    public var position: Int { tokens.count }

    /// Largest number of tokens one forward pass computes at once during prefill (bounds scratch memory).
    public static let batchLimit = 256

    /// Positions per attention segment (see `Attention`): longer contexts are attended in segments whose partial
    /// softmax results are combined, which lets decode spread one token's attention over threads.
    public static let attentionSegment = Attention.segment

    /// Whether a `feed` or generation is running, and whether it was asked to stop: `RunState` raw values. Only the
    /// thread holding `useLock` starts or ends a run; `cancel()` may flip running to cancelled from anywhere.
    private let runState = Atomic<Int>(RunState.idle.rawValue)
    /// Nesting depth of running calls (`generate` runs `feed`); touched only under `useLock`.
    private var runDepth = 0
    /// Serialises use of the session: a second thread entering `feed`, `generate`, `reset`, `rewind` or state
    /// save/restore waits until the first is done (recursive, so `generate` may call `feed`). `cancel()` never waits.
    let useLock = PosixLock(recursive: true)
    /// Element type of the KV cache.
    public var kvCacheType: KVCacheType { cache.type }
    /// The keys and values of `tokens`.
    let cache: KVCache
    /// This session's forward-pass buffers.
    private let scratch = Scratch()
    /// The threads this session's forward passes run on: the model's pool or a view of it on fewer threads.
    private var pool: ComputePool

    /// Threads this session's forward passes use: 1 ... `model.threadCount` (the size of the model's pool), which it
    /// starts at. Change it with `setThreadCount(_:)`. Results do not depend on it: work is split by output rows and
    /// fixed attention segments, never by summation order, so every thread count gives bit-identical logits.
    /// Reading it waits for a call running on this session to finish.
    public var threadCount: Int {
        useLock.lock()
        defer { useLock.unlock() }
        return pool.threadCount
    }

    /// Makes later forward passes of this session run on `threads` threads of the model's pool (1 ...
    /// `model.threadCount`; the pool is shared by the process and never grows). Throws `invalidArgument` naming
    /// `threadCount` for a value outside that range. Waits for a call running on this session to finish.
    public func setThreadCount(_ threads: Int) throws {
        let view = try model.pool(limitedTo: threads)
        useLock.lock()
        defer { useLock.unlock() }
        pool = view
    }

    init(model: Model, capacity: Int, kvCacheType: KVCacheType) throws {
        let c = model.configuration
        guard capacity >= 1, capacity <= c.maxPositions else {
            throw MobileLLMError.invalidArgument(name: "contextLength", problem: "expected 1...\(c.maxPositions) (the model's max_position_embeddings), found \(capacity)")
        }
        self.model = model
        self.capacity = capacity
        pool = model.pool
        let scratchBytes = 4 * Attention.scratchFloats(configuration: c, capacity: capacity, threads: model.threadCount)
        cache = try KVCache(configuration: c, capacity: capacity, type: kvCacheType, extraBytes: scratchBytes)
    }

    /// A session continuing from `other`'s tokens, sharing its cached prefix (see `fork()`).
    private init(forking other: Session) {
        model = other.model
        capacity = other.capacity
        tokens = other.tokens
        cache = other.cache.fork()
        pool = other.pool
    }

    /// A new session holding the same tokens and KV cache as this one, for sampling several continuations of one
    /// prompt that was prefilled once. The two share the cached positions' memory (pages of
    /// `KVCache.pagePositions` positions) until one of them writes into a shared page (after a `rewind` into the
    /// prefix, or while both extend the last, partly filled page), which then copies that page: a fork costs at most
    /// one page of copying, and no memory for the prefix. Waits for a call running on this session to finish.
    public func fork() -> Session {
        useLock.lock()
        defer { useLock.unlock() }
        return Session(forking: self)
    }

    /// Bytes of KV cache memory this session holds: its allocated pages, which grow with the position (pages shared
    /// with a fork count in both). At most `kvCacheCapacityBytes`.
    public var kvCacheBytes: Int { cache.byteCount }

    /// Bytes of KV cache a full session holds (`capacity` positions).
    public var kvCacheCapacityBytes: Int { cache.capacityByteCount }

    /// Asks the `feed` or generation running on this session to stop: it throws `MobileLLMError.cancelled` within one
    /// layer's work. With nothing running this does nothing — a request never lingers to cancel a later call, so a
    /// cancel that races with the natural end of a call is harmless. Safe from any thread, and from `onToken`.
    public func cancel() {
        _ = runState.compareExchange(expected: RunState.running.rawValue, desired: RunState.cancelled.rawValue,
                                     ordering: .sequentiallyConsistent)
    }

    /// Empties the KV cache.
    public func reset() {
        useLock.lock()
        defer { useLock.unlock() }
        tokens.removeAll(keepingCapacity: true)
        cache.rewind(to: 0)
    }

    /// Drops every position from `newPosition` on, so the next token fed goes to `newPosition`.
    public func rewind(to newPosition: Int) throws {
        useLock.lock()
        defer { useLock.unlock() }
        guard newPosition >= 0, newPosition <= position else {
            throw MobileLLMError.invalidArgument(name: "position", problem: "expected 0...\(position) (the current position), found \(newPosition)")
        }
        tokens.removeSubrange(newPosition...)
        cache.rewind(to: newPosition)
    }

    /// States of `runState`.
    private enum RunState: Int {
        case idle, running, cancelled
    }

    /// Runs `body` holding the session as a cancellable run: `cancel()` affects it from the moment it starts until it
    /// returns (nested runs share the outermost one).
    func run<T>(_ body: () throws -> T) rethrows -> T {
        useLock.lock()
        if runDepth == 0 { runState.store(RunState.running.rawValue, ordering: .sequentiallyConsistent) }
        runDepth += 1
        defer {
            runDepth -= 1
            if runDepth == 0 { runState.store(RunState.idle.rawValue, ordering: .sequentiallyConsistent) }
            useLock.unlock()
        }
        return try body()
    }

    /// Throws `cancelled` (once) when the running call was asked to stop.
    func checkCancelled() throws {
        if runState.compareExchange(expected: RunState.cancelled.rawValue, desired: RunState.running.rawValue,
                                    ordering: .sequentiallyConsistent).exchanged {
            throw MobileLLMError.cancelled
        }
    }

    /// Feeds `newTokens` at the current position and returns the requested logits.
    ///
    /// Prefill (many tokens) and decode (one) give the same results. Throws `invalidArgument` for ids outside the
    /// vocabulary, `contextFull` when the tokens do not fit (nothing is fed), and `cancelled` after `cancel()` (the
    /// position is then back where it was before the call).
    @discardableResult
    public func feed(_ newTokens: [Int32], logits request: LogitsRequest = .last) throws -> Logits {
        try run { try feedRunning(newTokens, logits: request) }
    }

    private func feedRunning(_ newTokens: [Int32], logits request: LogitsRequest) throws -> Logits {
        let c = model.configuration
        for (index, token) in newTokens.enumerated() where token < 0 || Int(token) >= c.vocabularySize {
            throw MobileLLMError.invalidArgument(name: "tokens[\(index)]", problem: "token id \(token) is outside the vocabulary (0..<\(c.vocabularySize))")
        }
        guard newTokens.count <= capacity - position else {
            throw MobileLLMError.contextFull(capacity: capacity, position: position, requested: newTokens.count)
        }
        let start = position
        var output: [Float] = []
        do {
            var offset = 0
            while offset < newTokens.count {
                let count = min(Self.batchLimit, newTokens.count - offset)
                let isFinal = offset + count == newTokens.count
                let rows: LogitsRequest = request == .all ? .all : (isFinal ? request : .none)
                let batch = Array(newTokens[offset..<(offset + count)])
                try model.forward([ForwardPart(cache: cache, tokens: batch, start: start + offset, logits: rows)],
                                  scratch: scratch, pool: pool, checkCancelled: checkCancelled, into: &output)
                tokens.append(contentsOf: batch)
                cache.advance(to: tokens.count)
                offset += count
            }
        } catch {
            tokens.removeSubrange(start...)
            cache.rewind(to: start)
            throw error
        }
        return Logits(vocabularySize: request == .none || newTokens.isEmpty ? 0 : c.vocabularySize, values: output)
    }
}

/// Scratch buffers for one forward pass, grown on demand (a session's or a batch's own; never shared by two passes
/// at once).
final class Scratch {
    private(set) var tokens = 0
    var x = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var h = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var q = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var k = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var v = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var attention = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var gate = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    var up = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    /// Q8A activation rows (1.5 bytes per value) for quantized projections.
    var activations = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
    /// Attention scratch: per-thread scores and segment partials, then shared decode partials.
    var scores = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var scoreFloats = 0

    deinit {
        releaseTokenBuffers()
        scores.deallocate()
    }

    /// Sizes of the buffers for `n` rows: floats of each f32 buffer and bytes of the prepared activation rows.
    struct Layout {
        let x, h, q, kv, attention, mlp, activationBytes: Int

        init(tokens n: Int, configuration c: ModelConfiguration) {
            let qWidth = c.headCount * c.headDimension
            x = n * c.hiddenSize
            h = n * max(c.hiddenSize, qWidth)
            q = n * qWidth
            kv = n * c.kvHeadCount * c.headDimension
            attention = n * qWidth
            mlp = n * c.intermediateSize
            // The larger of the int8 mode's Q8A rows (1.5 bytes a value) and the exact mode's 16-bit rows (2.25).
            let width = max(c.hiddenSize, qWidth, c.intermediateSize)
            activationBytes = n * (2 * width + width / 4 + 8) + 64
        }

        /// Bytes of every buffer together (x, h, q, k, v, attention, gate, up and the activation rows).
        var byteCount: Int { 4 * (x + h + q + 2 * kv + attention + 2 * mlp) + activationBytes }
    }

    func reserve(tokens n: Int, configuration c: ModelConfiguration) {
        guard n > tokens else { return }
        releaseTokenBuffers()
        tokens = n
        let layout = Layout(tokens: n, configuration: c)
        x = .allocate(capacity: layout.x)
        h = .allocate(capacity: layout.h)
        q = .allocate(capacity: layout.q)
        k = .allocate(capacity: layout.kv)
        v = .allocate(capacity: layout.kv)
        attention = .allocate(capacity: layout.attention)
        gate = .allocate(capacity: layout.mlp)
        up = .allocate(capacity: layout.mlp)
        activations = .allocate(byteCount: layout.activationBytes, alignment: 64)
    }

    /// Makes room for `floats` of attention scratch (see `Attention.scratchFloats`).
    func reserveScores(floats: Int) {
        guard floats > scoreFloats else { return }
        scores.deallocate()
        scores = .allocate(capacity: floats)
        scoreFloats = floats
    }

    /// Frees the buffers sized by the batch length.
    private func releaseTokenBuffers() {
        for buffer in [x, h, q, k, v, attention, gate, up] { buffer.deallocate() }
        activations.deallocate()
    }
}
