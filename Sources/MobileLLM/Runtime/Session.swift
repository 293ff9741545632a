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

/// Element type of the KV cache.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// Exact (4 bytes per value): bit-for-bit what the f32 forward pass computes.
    case f32
    /// Half precision (2 bytes per value): half the memory and bandwidth, ~1e-3 relative rounding of K and V.
    case f16
    /// ggml Q8_0 blocks (34 bytes per 32 values): about a quarter of f32, ~0.4% rounding of K and V. Needs a head
    /// dimension that is a multiple of 32.
    case q8_0 = "q8_0"

    var kernelType: mlk_dtype {
        switch self {
        case .f32: return MLK_DTYPE_F32
        case .f16: return MLK_DTYPE_F16
        case .q8_0: return MLK_DTYPE_Q8_0
        }
    }

    /// Bytes of one cached row of `headDimension` values (0 when Q8_0 blocks do not divide it).
    func rowBytes(_ headDimension: Int) -> Int { mlk_row_bytes(kernelType, Int64(headDimension)) }
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

    /// Positions per attention segment: longer contexts are attended in segments whose partial softmax results are
    /// combined, which lets decode spread one token's attention over threads.
    public static let attentionSegment = 256

    /// Floats of attention scratch: per thread, scores of one segment plus two sets of segment partials; then the
    /// partials of every KV head for split decode.
    static func attentionScratchFloats(configuration c: ModelConfiguration, capacity: Int, threads: Int) -> Int {
        let maxSegments = (capacity + attentionSegment - 1) / attentionSegment
        let partialStride = c.groupSize * (c.headDimension + 2)
        let perThread = c.groupSize * attentionSegment + 2 * maxSegments * partialStride
        return threads * perThread + c.kvHeadCount * maxSegments * partialStride
    }

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
    public let kvCacheType: KVCacheType
    // KV cache, per layer: [kvHeads, capacity, headDim] of `kvCacheType`.
    let keys: [UnsafeMutableRawPointer]
    let values: [UnsafeMutableRawPointer]
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
        self.kvCacheType = kvCacheType
        pool = ComputePool(threadCount: model.threadCount)
        guard kvCacheType.rowBytes(c.headDimension) > 0 else {
            throw MobileLLMError.invalidArgument(name: "kvCacheType", problem: "\(kvCacheType.rawValue) needs a head dimension that is a multiple of 32, found \(c.headDimension)")
        }
        let layerBytes = try Self.checkMemory(configuration: c, capacity: capacity, kvCacheType: kvCacheType, threads: model.threadCount)
        keys = (0..<c.layerCount).map { _ in UnsafeMutableRawPointer.allocate(byteCount: layerBytes, alignment: 64) }
        values = (0..<c.layerCount).map { _ in UnsafeMutableRawPointer.allocate(byteCount: layerBytes, alignment: 64) }
        scratch = Scratch()
    }

    /// Bytes of one layer's K (or V) cache, after checking that the whole cache and the attention scratch of a
    /// `capacity`-position session fit in this machine's memory: a huge `max_position_embeddings` or context length
    /// then fails here with an error instead of an allocation failure that would end the process.
    static func checkMemory(configuration c: ModelConfiguration, capacity: Int, kvCacheType: KVCacheType, threads: Int) throws -> Int {
        let perPosition = kvBytesPerPosition(configuration: c, kvCacheType: kvCacheType)
        let (kvBytes, overflow) = perPosition.multipliedReportingOverflow(by: capacity)
        let scratchBytes = 4 * attentionScratchFloats(configuration: c, capacity: capacity, threads: threads)
        let memory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard !overflow, kvBytes <= memory - scratchBytes else {
            throw MobileLLMError.invalidArgument(
                name: "contextLength",
                problem: "a KV cache of \(capacity) positions needs \(overflow ? "more than \(Int.max)" : "\(kvBytes)") bytes, more than this machine's \(memory) bytes of memory (expected at most \(max(0, memory - scratchBytes) / max(perPosition, 1)) positions)")
        }
        return kvBytes / (2 * c.layerCount)
    }

    deinit {
        for buffer in keys { buffer.deallocate() }
        for buffer in values { buffer.deallocate() }
        scratch.release()
    }

    /// Writes one head's `count` values into cache row `row` (rows are [kvHeads, capacity]), converting to the
    /// cache's type.
    private func store(_ source: UnsafePointer<Float>, into cache: UnsafeMutableRawPointer, row: Int, count: Int) {
        let destination = cache + row * kvCacheType.rowBytes(count)
        switch kvCacheType {
        case .f32: destination.assumingMemoryBound(to: Float.self).update(from: source, count: count)
        case .f16: mlk_convert_f32_to_f16(source, Int64(count), destination.assumingMemoryBound(to: UInt16.self))
        case .q8_0: mlk_q_quantize_rows(QuantType.q8_0.rawValue, source, 1, Int64(count), destination)
        }
    }

    /// Bytes the KV cache occupies.
    public var kvCacheBytes: Int {
        Self.kvBytesPerPosition(configuration: model.configuration, kvCacheType: kvCacheType) * capacity
    }

    /// Bytes of K and V, over all layers, for one position.
    static func kvBytesPerPosition(configuration c: ModelConfiguration, kvCacheType: KVCacheType) -> Int {
        2 * c.layerCount * c.kvHeadCount * kvCacheType.rowBytes(c.headDimension)
    }

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
    }

    /// Drops every position from `newPosition` on, so the next token fed goes to `newPosition`.
    public func rewind(to newPosition: Int) throws {
        useLock.lock()
        defer { useLock.unlock() }
        guard newPosition >= 0, newPosition <= position else {
            throw MobileLLMError.invalidArgument(name: "position", problem: "expected 0...\(position) (the current position), found \(newPosition)")
        }
        tokens.removeSubrange(newPosition...)
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
                offset += count
            }
        } catch {
            tokens.removeSubrange(start...)
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
        let n = batch.count
        let hidden = c.hiddenSize
        let headDim = c.headDimension
        let qWidth = c.headCount * headDim
        let kvWidth = c.kvHeadCount * headDim
        scratch.reserve(tokens: n, configuration: c, capacity: capacity)
        scratch.reserveScores(floats: Self.attentionScratchFloats(configuration: c, capacity: capacity, threads: pool.threadCount))
        let s = scratch

        // x: [n, hidden] — the residual stream, starting from the token embeddings.
        for (i, token) in batch.enumerated() { w.embedding.row(Int(token), into: s.x + i * hidden) }

        let attentionScale = Float(1.0 / Double(headDim).squareRoot())
        for (layerIndex, layer) in w.layers.enumerated() {
            try checkCancelled()
            let spec = c.layers[layerIndex]
            // h = RMSNorm(x); q [n, heads*headDim], k/v [n, kvHeads*headDim].
            layer.attentionNorm.withUnsafeBufferPointer { weight in
                Ops.rmsNorm(s.x, rows: n, width: hidden, weight: weight.baseAddress, epsilon: c.rmsNormEpsilon, into: s.h)
            }
            pool.project([layer.query, layer.key, layer.value], input: prepare(s.h, count: n, columns: hidden, for: [layer.query]),
                         outputs: [s.q, s.k, s.v])

            for i in 0..<n {
                let position = start + i
                let q = s.q + i * qWidth, k = s.k + i * kvWidth
                if spec.usesRoPE {
                    Ops.rope(q, heads: c.headCount, dimension: headDim, position: position, inverseFrequencies: model.ropeFrequencies, pairing: c.ropePairing)
                    Ops.rope(k, heads: c.kvHeadCount, dimension: headDim, position: position, inverseFrequencies: model.ropeFrequencies, pairing: c.ropePairing)
                }
                if spec.qkNorm {
                    Ops.rmsNorm(q, rows: c.headCount, width: headDim, weight: nil, epsilon: c.rmsNormEpsilon, into: q)
                    Ops.rmsNorm(k, rows: c.kvHeadCount, width: headDim, weight: nil, epsilon: c.rmsNormEpsilon, into: k)
                }
                if spec.temperatureTuning {
                    let floorScale = Float(c.attentionFloorScale)
                    let scale = log1p(((Float(position) + 1) / floorScale).rounded(.down)) * Float(c.attentionTemperatureScale) + 1
                    for t in 0..<qWidth { q[t] *= scale }
                }
                // Cache K/V: layer cache is [kvHeads, capacity, headDim].
                for head in 0..<c.kvHeadCount {
                    let row = head * capacity + position
                    store(k + head * headDim, into: keys[layerIndex], row: row, count: headDim)
                    store(s.v + i * kvWidth + head * headDim, into: values[layerIndex], row: row, count: headDim)
                }
            }

            // attention output: [n, heads*headDim]. Each (token, KV head) covers its query-head group, so a cached K/V
            // row is read once per group, and its visible positions are split into fixed segments of
            // `attentionSegment` whose partial softmax results are combined in segment order. The arithmetic is the
            // same however the work is scheduled: decode (one token) spreads the segments over threads, prefill gives
            // each thread whole (token, KV head) items — so prefill and decode stay bit-identical.
            nonisolated(unsafe) let layerKeys = UnsafeRawPointer(keys[layerIndex])
            nonisolated(unsafe) let layerValues = UnsafeRawPointer(values[layerIndex])
            let capacity = self.capacity, group = c.groupSize, kvHeads = c.kvHeadCount, segment = Self.attentionSegment
            let kvType = kvCacheType.kernelType, rowBytes = kvCacheType.rowBytes(headDim)
            let partialStride = group * (headDim + 2)
            // Visible positions of token i: first...position.
            func window(_ i: Int) -> (first: Int, length: Int) {
                let position = start + i
                let first = spec.chunkSize.map { (position / $0) * $0 } ?? 0
                return (first, position - first + 1)
            }
            // One segment's partial result into `partial` ([group][d] outputs, then group maxes, then group sums).
            func attendSegment(token i: Int, kvHead: Int, segment index: Int, scores: UnsafeMutablePointer<Float>,
                               partial: UnsafeMutablePointer<Float>) {
                let (first, length) = window(i)
                let begin = first + index * segment
                let count = min(segment, length - index * segment)
                let base = (kvHead * capacity + begin) * rowBytes
                mlk_attention_partial(s.q + i * qWidth + kvHead * group * headDim, Int64(group), Int64(headDim),
                                      layerKeys + base, layerValues + base, kvType, Int64(count), attentionScale, scores,
                                      partial, partial + group * headDim, partial + group * headDim + group)
            }
            // Combines `segments` partials laid out with `partialStride` into token i's output rows for the KV head.
            func combine(token i: Int, kvHead: Int, segments: Int, partials: UnsafeMutablePointer<Float>,
                         work: UnsafeMutablePointer<Float>) {
                // Regroup [segment][out | maxes | sums] into the combine layout: outs, then maxes, then sums.
                let outs = work, maxes = work + segments * group * headDim, sums = maxes + segments * group
                for index in 0..<segments {
                    let partial = partials + index * partialStride
                    (outs + index * group * headDim).update(from: partial, count: group * headDim)
                    (maxes + index * group).update(from: partial + group * headDim, count: group)
                    (sums + index * group).update(from: partial + group * headDim + group, count: group)
                }
                mlk_attention_combine(Int64(segments), Int64(group), Int64(headDim), outs, maxes, sums,
                                      s.attention + i * qWidth + kvHead * group * headDim)
            }
            let maxSegments = (capacity + segment - 1) / segment
            let perThread = group * segment + 2 * maxSegments * partialStride
            nonisolated(unsafe) let threadScratch = s.scores
            let decodeSegments = n == 1 ? (window(0).length + segment - 1) / segment : 1
            if n == 1 && decodeSegments > 1 {
                nonisolated(unsafe) let shared = s.scores + pool.threadCount * perThread
                pool.forEach(kvHeads * decodeSegments) { range, thread in
                    let scores = threadScratch + thread * perThread
                    for item in range {
                        let kvHead = item / decodeSegments, index = item % decodeSegments
                        attendSegment(token: 0, kvHead: kvHead, segment: index, scores: scores,
                                      partial: shared + (kvHead * maxSegments + index) * partialStride)
                    }
                }
                let work = threadScratch + group * segment
                for kvHead in 0..<kvHeads {
                    combine(token: 0, kvHead: kvHead, segments: decodeSegments, partials: shared + kvHead * maxSegments * partialStride, work: work)
                }
            } else {
                pool.forEach(n * kvHeads, minimumPerThread: 2) { range, thread in
                    let scores = threadScratch + thread * perThread
                    let partials = scores + group * segment
                    let work = partials + maxSegments * partialStride
                    for item in range {
                        let i = item / kvHeads, kvHead = item % kvHeads
                        let segments = (window(i).length + segment - 1) / segment
                        for index in 0..<segments {
                            attendSegment(token: i, kvHead: kvHead, segment: index, scores: scores, partial: partials + index * partialStride)
                        }
                        combine(token: i, kvHead: kvHead, segments: segments, partials: partials, work: work)
                    }
                }
            }
            pool.project([layer.output], input: prepare(s.attention, count: n, columns: qWidth, for: [layer.output]), outputs: [s.h])
            Ops.add(s.x, s.h, count: n * hidden)

            // MLP: x += down(silu(gate(h)) * up(h)), h = RMSNorm(x).
            layer.mlpNorm.withUnsafeBufferPointer { weight in
                Ops.rmsNorm(s.x, rows: n, width: hidden, weight: weight.baseAddress, epsilon: c.rmsNormEpsilon, into: s.h)
            }
            // gate = silu(gate) * up, applied by each thread to the rows it just computed.
            let width = c.intermediateSize
            pool.project([layer.gate, layer.up], input: prepare(s.h, count: n, columns: hidden, for: [layer.gate, layer.up]),
                         outputs: [s.gate, s.up]) { rows in
                for i in 0..<n { Ops.swiGLU(s.gate + i * width + rows.lowerBound, s.up + i * width + rows.lowerBound, count: rows.count) }
            }
            pool.project([layer.down], input: prepare(s.gate, count: n, columns: c.intermediateSize, for: [layer.down]), outputs: [s.h])
            Ops.add(s.x, s.h, count: n * hidden)
        }
        try checkCancelled()

        guard request != .none else { return }
        let firstRow = request == .all ? 0 : n - 1
        let rows = n - firstRow
        w.finalNorm.withUnsafeBufferPointer { weight in
            Ops.rmsNorm(s.x + firstRow * hidden, rows: rows, width: hidden, weight: weight.baseAddress, epsilon: c.rmsNormEpsilon, into: s.h)
        }
        let vocabulary = c.vocabularySize
        let previous = output.count
        output.append(contentsOf: repeatElement(0, count: rows * vocabulary))
        let input = prepare(s.h, count: rows, columns: hidden, for: [w.output])
        output.withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress {
                pool.project([w.output], input: input, outputs: [base + previous])
            }
        }
    }

    /// Wraps `count` rows of `columns` f32 values as a projection input; in the int8-activation mode, when one of
    /// `linears` is quantized, the rows are also quantized (once, split across threads for prefill) to the Q8A activation format into scratch memory.
    private func prepare(_ x: UnsafeMutablePointer<Float>, count: Int, columns: Int, for linears: [Linear]) -> ProjectionInput {
        guard model.activationPrecision == .int8, let quantized = linears.first(where: { $0.weight.isQuantized })?.weight.type else {
            return ProjectionInput(x: x, count: count, quantized: nil)
        }
        let rowBytes = quantized.activationRowBytes(columns) ?? 0
        nonisolated(unsafe) let destination = scratch.activations
        nonisolated(unsafe) let source = x
        pool.forEach(count, minimumPerThread: 8) { range in
            mlk_q_quantize_activations(quantized.rawValue, source + range.lowerBound * columns, Int64(range.count), Int64(columns),
                                       destination + range.lowerBound * rowBytes)
        }
        return ProjectionInput(x: x, count: count, quantized: UnsafeRawPointer(destination))
    }
}

/// Per-session scratch buffers for one forward batch, grown on demand.
private struct Scratch {
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

    mutating func reserve(tokens n: Int, configuration c: ModelConfiguration, capacity: Int) {
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

    /// Makes room for `floats` of attention scratch (see `Session.attentionScratchFloats`).
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
