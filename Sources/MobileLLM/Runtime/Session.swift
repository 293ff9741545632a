import CMobileLLMKernels
import Foundation
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
    let useLock = NSRecursiveLock()
    private let pool: ComputePool
    /// Element type of the KV cache.
    public var kvCacheType: KVCacheType { cache.type }
    /// The keys and values of `tokens`.
    let cache: KVCache
    /// Allocated last in `init`, after every check that can throw (a throwing init would leak it otherwise; found by
    /// scripts/sanitize.sh address).
    private var scratch: Scratch

    init(model: Model, capacity: Int, kvCacheType: KVCacheType) throws {
        let c = model.configuration
        guard capacity >= 1, capacity <= c.maxPositions else {
            throw MobileLLMError.invalidArgument(name: "contextLength", problem: "expected 1...\(c.maxPositions) (the model's max_position_embeddings), found \(capacity)")
        }
        self.model = model
        self.capacity = capacity
        pool = ComputePool(threadCount: model.threadCount)
        let scratchBytes = 4 * Attention.scratchFloats(configuration: c, capacity: capacity, threads: model.threadCount)
        cache = try KVCache(configuration: c, capacity: capacity, type: kvCacheType, extraBytes: scratchBytes)
        scratch = Scratch()
    }

    deinit {
        scratch.release()
    }

    /// Bytes the KV cache occupies.
    public var kvCacheBytes: Int { cache.byteCount }

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
                try forward(batch, at: start + offset, logits: rows, into: &output)
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

    // MARK: - Forward pass

    /// Runs `batch` (n tokens) at positions `start..<start+n` through every layer, writing K/V into the cache and
    /// appending the requested logits rows to `output`.
    private func forward(_ batch: [Int32], at start: Int, logits request: LogitsRequest, into output: inout [Float]) throws {
        let c = model.configuration
        let w = model.weights
        let n = batch.count, hidden = c.hiddenSize
        scratch.reserve(tokens: n, configuration: c)
        scratch.reserveScores(floats: Attention.scratchFloats(configuration: c, capacity: capacity, threads: pool.threadCount))
        let pass = ForwardPass(configuration: c, pool: pool, precision: model.activationPrecision, ropeFrequencies: model.ropeFrequencies,
                               rows: (0..<n).map { AttentionRow(sequence: 0, position: start + $0) }, caches: [cache], s: scratch)
        let s = scratch

        // x [n, hidden]: the residual stream, starting from the token embeddings.
        for (i, token) in batch.enumerated() { w.embedding.row(Int(token), into: s.x + i * hidden) }

        // Every decoder layer: attention and MLP blocks as the family's recipe composes them (DecoderLayer.swift).
        for (index, layer) in w.layers.enumerated() {
            try checkCancelled()
            layer.forward(layer: index, recipe: model.recipes[index], pass: pass)
        }
        try checkCancelled()

        // logits [rows, vocab] = RMSNorm(x) · W_outᵀ for the requested rows.
        guard request != .none else { return }
        let firstRow = request == .all ? 0 : n - 1
        let rows = n - firstRow
        w.finalNorm.withUnsafeBufferPointer { weight in
            Ops.rmsNorm(s.x + firstRow * hidden, rows: rows, width: hidden, weight: weight.baseAddress, epsilon: c.rmsNormEpsilon, into: s.h)
        }
        let vocabulary = c.vocabularySize
        let previous = output.count
        output.append(contentsOf: repeatElement(0, count: rows * vocabulary))
        let input = pass.prepare(s.h, count: rows, columns: hidden, for: [w.output])
        output.withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress {
                pool.project([w.output], input: input, outputs: [base + previous])
            }
        }
    }
}

/// Per-session scratch buffers for one forward batch, grown on demand.
struct Scratch {
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

    mutating func reserve(tokens n: Int, configuration c: ModelConfiguration) {
        guard n > tokens else { return }
        releaseTokenBuffers()
        tokens = n
        let qWidth = c.headCount * c.headDimension, kvWidth = c.kvHeadCount * c.headDimension
        x = .allocate(capacity: n * c.hiddenSize)
        h = .allocate(capacity: n * max(c.hiddenSize, qWidth))
        q = .allocate(capacity: n * qWidth)
        k = .allocate(capacity: n * kvWidth)
        v = .allocate(capacity: n * kvWidth)
        attention = .allocate(capacity: n * qWidth)
        gate = .allocate(capacity: n * c.intermediateSize)
        up = .allocate(capacity: n * c.intermediateSize)
        activations = .allocate(byteCount: n * 2 * max(c.hiddenSize, qWidth, c.intermediateSize) + 64, alignment: 64)
    }

    /// Makes room for `floats` of attention scratch (see `Attention.scratchFloats`).
    mutating func reserveScores(floats: Int) {
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

    /// Frees everything.
    func release() {
        releaseTokenBuffers()
        scores.deallocate()
    }
}
