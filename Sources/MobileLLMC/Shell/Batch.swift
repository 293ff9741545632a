// The batched-generation half of the C ABI: mobilellm_batch_* over the engine's BatchGenerator. The engine owns
// every policy (scheduling, sampling, stop rules, forks, cancellation); this file only translates handles,
// arguments, events and results, and keeps event texts alive for the documented time.
import CMobileLLMABI
import MobileLLM
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// Most samples one mobilellm_batch_add() call accepts: a larger n_samples is a caller bug (an uninitialised
/// count), refused before anything is allocated for it.
let maximumBatchSamples = 4096

/// A BatchGenerator plus what the C ABI keeps between calls. Keeps its model alive.
final class BatchBox: Exclusive, @unchecked Sendable {
    let generator: BatchGenerator
    let owner: ModelBox
    /// Context length and KV cache type of the sessions `mobilellm_batch_add` creates (nil: the engine's defaults).
    let contextLength: Int?
    let kvCacheType: KVCacheType?
    /// Whether sequences stream text (mobilellm_batch_params.stream_text).
    let streamText: Bool
    /// Ids issued so far and FINISHED events delivered so far (read from any thread by cancel and active_count).
    let issued = Atomic<Int>(0)
    let finishedDelivered = Atomic<Int>(0)

    // Touched only exclusively (add, step, result, forget, logits):
    /// Events of the latest step not yet delivered, with their texts.
    var queue: [(event: mobilellm_batch_event, text: String?, pieces: [GeneratedPiece]?)] = []
    var queueStart = 0
    /// Texts handed out by the latest mobilellm_batch_step call (valid until the next call or free).
    var delivered: [UnsafeMutablePointer<CChar>] = []
    /// The pieces of the events the latest mobilellm_batch_step call delivered (nil: an event without text), and
    /// their C copies handed out by mobilellm_batch_event_pieces (valid until the next step call or free).
    var deliveredPieces: [[GeneratedPiece]?] = []
    let publishedPieces = PublishedPieces()
    /// Results of finished sequences not yet forgotten.
    var results: [Int: BatchResult] = [:]
    /// Tokens produced so far by running sequences.
    var tokenCounts: [Int: Int32] = [:]
    /// Running sequences whose events carry text.
    var streaming: Set<Int> = []

    init(generator: BatchGenerator, owner: ModelBox, contextLength: Int?, kvCacheType: KVCacheType?, streamText: Bool) {
        self.generator = generator
        self.owner = owner
        self.contextLength = contextLength
        self.kvCacheType = kvCacheType
        self.streamText = streamText
        super.init(kind: "mobilellm_batch")
    }

    deinit { releaseDelivered() }

    /// Frees the texts of the previous step call.
    func releaseDelivered() {
        for pointer in delivered { pointer.deallocate() }
        delivered = []
        deliveredPieces = []
        publishedPieces.release()
    }

    /// A NUL-terminated copy of `text` that lives until `releaseDelivered`.
    func publish(_ text: String) -> (UnsafePointer<CChar>, Int) {
        let bytes = Array(text.utf8CString)
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        pointer.initialize(from: bytes, count: bytes.count)
        delivered.append(pointer)
        return (UnsafePointer(pointer), bytes.count - 1)
    }

    /// Records new sequences.
    func register(_ ids: [Int], streams: Bool) {
        for id in ids {
            tokenCounts[id] = 0
            if streams { streaming.insert(id) }
        }
        issued.store((ids.last ?? -1) + 1, ordering: .sequentiallyConsistent)
    }

    /// Turns one step's engine events into queued C events (results kept for mobilellm_batch_result).
    func enqueue(_ events: [BatchEvent]) {
        if queueStart > 0 {
            queue.removeFirst(queueStart)
            queueStart = 0
        }
        for event in events {
            var value = mobilellm_batch_event()
            switch event {
            case let .token(sequence, token, text, pieces):
                let produced = (tokenCounts[sequence] ?? 0) + 1
                tokenCounts[sequence] = produced
                value.type = Int32(MOBILELLM_BATCH_EVENT_TOKEN.rawValue)
                value.sequence = Int32(truncatingIfNeeded: sequence)
                value.token = token
                value.n_tokens = produced
                let streams = streaming.contains(sequence)
                queue.append((value, streams ? text : nil, streams ? pieces : nil))
            case let .finished(sequence, rest, restPieces, result):
                value.type = Int32(MOBILELLM_BATCH_EVENT_FINISHED.rawValue)
                value.sequence = Int32(truncatingIfNeeded: sequence)
                value.token = -1
                value.stop_reason = stopReasonCode(result.stopReason)
                value.n_tokens = Int32(truncatingIfNeeded: result.tokens.count)
                value.n_prompt_tokens = Int32(truncatingIfNeeded: result.promptTokenCount)
                let streams = streaming.contains(sequence)
                queue.append((value, streams ? (rest ?? "") : nil, streams ? restPieces : nil))
                results[sequence] = result
                tokenCounts[sequence] = nil
                streaming.remove(sequence)
            }
        }
    }

    /// The kept result of finished sequence `id`, or INVALID_ARGUMENT.
    func result(_ id: Int32) throws -> BatchResult {
        guard let result = results[Int(id)] else {
            let issuedCount = issued.load(ordering: .sequentiallyConsistent)
            let state = id < 0 || Int(id) >= issuedCount ? "was never issued by this batch (ids 0..<\(issuedCount))"
                : tokenCounts[Int(id)] != nil ? "has not finished" : "has not finished (or its result was forgotten)"
            throw ABIError.invalidArgument("id", "sequence \(id) \(state)")
        }
        return result
    }
}

let batchTable = HandleTable<BatchBox>(kind: "mobilellm_batch", tag: 5)

extension mobilellm_batch_params {
    static var defaults: mobilellm_batch_params {
        var params = mobilellm_batch_params()
        params.struct_size = UInt32(MemoryLayout<mobilellm_batch_params>.size)
        params.kv_cache_type = Int32(MOBILELLM_KV_AUTO.rawValue)
        return params
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_params_init")
public func mobilellm_batch_params_init(_ params: UnsafeMutablePointer<mobilellm_batch_params>?) {
    params?.pointee = .defaults
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_create")
public func mobilellm_batch_create(_ model: OpaquePointer?, _ params: UnsafePointer<mobilellm_batch_params>?,
                                   _ outBatch: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded("mobilellm_batch_create") {
        let box = try modelTable.lookup(model, "model")
        guard let outBatch else { throw ABIError.null("out_batch") }
        let p = try readParams(params, defaults: .defaults, minimumSize: VersionOneSize.batchParams, name: "params")
        let contextLength = try contextLengthArgument(p.n_ctx, "params->n_ctx")
        let type = try kvCacheTypeArgument(p.kv_cache_type, "params->kv_cache_type")
        let generator = try translatingArguments(["maxRowsPerStep": "params->max_rows_per_step"]) {
            p.max_rows_per_step == 0 ? try BatchGenerator(model: box.model)
                : try BatchGenerator(model: box.model, maxRowsPerStep: Int(p.max_rows_per_step))
        }
        generator.keepsLogits = readBool(p, \.keep_logits)
        outBatch.pointee = batchTable.insert(BatchBox(generator: generator, owner: box, contextLength: contextLength,
                                                      kvCacheType: type, streamText: readBool(p, \.stream_text)))
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_set_threads")
public func mobilellm_batch_set_threads(_ batch: OpaquePointer?, _ threads: Int32) -> Int32 {
    guarded("mobilellm_batch_set_threads") {
        let box = try batchTable.lookup(batch, "batch")
        let count = try threadCount(threads, of: box.generator.model)
        try box.exclusively { try box.generator.setThreadCount(count) }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_free")
public func mobilellm_batch_free(_ batch: OpaquePointer?) -> Int32 {
    guarded("mobilellm_batch_free") { try batchTable.remove(batch, "batch") }
}

/// A generate request for a batch: the callback is refused (tokens arrive as events).
private func batchRequest(_ samplerParams: UnsafePointer<mobilellm_sampler_params>?,
                          _ params: UnsafePointer<mobilellm_generate_params>?) throws -> GenerateRequest {
    let request = try generateRequest(samplerParams, params)
    guard request.callback == nil else {
        throw ABIError.invalidArgument("params->callback", "expected NULL: a batch reports tokens as mobilellm_batch_step() events")
    }
    guard request.pieceCallback == nil else {
        throw ABIError.invalidArgument("params->piece_callback", "expected NULL: a batch reports pieces with mobilellm_batch_event_pieces()")
    }
    return request
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_add")
public func mobilellm_batch_add(_ batch: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ nPrompt: Int,
                                _ samplerParams: UnsafePointer<mobilellm_sampler_params>?,
                                _ params: UnsafePointer<mobilellm_generate_params>?, _ nSamples: Int32,
                                _ outIDs: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded("mobilellm_batch_add") {
        let box = try batchTable.lookup(batch, "batch")
        guard nSamples >= 1, Int(nSamples) <= maximumBatchSamples else {
            throw ABIError.invalidArgument("n_samples", "expected 1...\(maximumBatchSamples), found \(nSamples)")
        }
        guard let outIDs else { throw ABIError.null("out_ids") }
        let request = try batchRequest(samplerParams, params)
        let n = try count(nPrompt, "n_prompt")
        // Bounded before a byte is read: a prompt longer than the context cannot fit (the engine reports that as
        // CONTEXT_FULL); a larger count is a caller bug.
        let capacity = box.contextLength ?? box.owner.model.defaultContextLength
        guard n <= capacity else {
            throw MobileLLMError.contextFull(capacity: capacity, position: 0, requested: n)
        }
        var input: [Int32] = []
        if n > 0 {
            guard let prompt else { throw ABIError.null("prompt") }
            input = Array(UnsafeBufferPointer(start: prompt, count: n))
        }
        let streams = box.streamText || request.streamsText
        try box.exclusively {
            guard box.issued.load(ordering: .relaxed) + Int(nSamples) <= Int(Int32.max) else {
                throw ABIError.invalidArgument("n_samples", "the batch has issued \(box.issued.load(ordering: .relaxed)) ids; ids must stay below 2^31")
            }
            let ids = try translatingArguments(controlFieldNames) {
                try box.generator.add(prompt: input, samples: Int(nSamples), options: request.options,
                                      contextLength: box.contextLength, kvCacheType: box.kvCacheType, streamText: streams)
            }
            box.register(ids, streams: streams)
            for (index, id) in ids.enumerated() { outIDs[index] = Int32(id) }
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_add_session")
public func mobilellm_batch_add_session(_ batch: OpaquePointer?, _ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?,
                                        _ nPrompt: Int, _ samplerParams: UnsafePointer<mobilellm_sampler_params>?,
                                        _ params: UnsafePointer<mobilellm_generate_params>?,
                                        _ outID: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded("mobilellm_batch_add_session") {
        let box = try batchTable.lookup(batch, "batch")
        let sessionBox = try sessionTable.lookup(session, "session")
        guard let outID else { throw ABIError.null("out_id") }
        let request = try batchRequest(samplerParams, params)
        let streams = box.streamText || request.streamsText
        try box.exclusively {
            guard box.issued.load(ordering: .relaxed) < Int(Int32.max) else {
                throw ABIError.invalidArgument("batch", "has issued 2^31 - 1 ids; ids must stay below 2^31")
            }
            try sessionBox.exclusively {
                let input = try tokenArgument(prompt, nPrompt, "prompt", session: sessionBox.session)
                let id = try translatingArguments(controlFieldNames) {
                    try box.generator.add(session: sessionBox.session, prompt: input, options: request.options,
                                          streamText: streams)
                }
                sessionBox.lastLogits = nil
                box.register([id], streams: streams)
                outID.pointee = Int32(id)
            }
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_step")
public func mobilellm_batch_step(_ batch: OpaquePointer?, _ events: UnsafeMutablePointer<mobilellm_batch_event>?, _ capacity: Int,
                                 _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_step") {
        let box = try batchTable.lookup(batch, "batch")
        guard let outCount else { throw ABIError.null("out_count") }
        let capacity = try count(capacity, "capacity")
        guard capacity >= 1 else {
            throw ABIError.invalidArgument("capacity", "expected room for at least 1 event (2 × the active count holds a whole step), found 0")
        }
        guard let events else { throw ABIError.null("events") }
        try box.exclusively {
            box.releaseDelivered()
            if box.queueStart == box.queue.count {
                box.enqueue(try box.generator.step())
            }
            var written = 0
            var finished = 0
            while written < capacity, box.queueStart < box.queue.count {
                var (value, text, pieces) = box.queue[box.queueStart]
                if let text { (value.text, value.text_length) = box.publish(text) }
                box.deliveredPieces.append(pieces)
                if value.type == Int32(MOBILELLM_BATCH_EVENT_FINISHED.rawValue) { finished += 1 }
                events[written] = value
                written += 1
                box.queueStart += 1
            }
            box.finishedDelivered.add(finished, ordering: .sequentiallyConsistent)
            outCount.pointee = written
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_active_count")
public func mobilellm_batch_active_count(_ batch: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_active_count") {
        let box = try batchTable.lookup(batch, "batch")
        guard let outCount else { throw ABIError.null("out_count") }
        // Every sequence reports exactly one FINISHED event; those not yet delivered are still active.
        let finished = box.finishedDelivered.load(ordering: .sequentiallyConsistent)
        outCount.pointee = max(0, box.issued.load(ordering: .sequentiallyConsistent) - finished)
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_cancel")
public func mobilellm_batch_cancel(_ batch: OpaquePointer?, _ id: Int32) -> Int32 {
    guarded("mobilellm_batch_cancel") {
        let box = try batchTable.lookup(batch, "batch")
        let issued = box.issued.load(ordering: .sequentiallyConsistent)
        guard id >= 0, Int(id) < issued else {
            throw ABIError.invalidArgument("id", "sequence \(id) was never issued by this batch (ids 0..<\(issued))")
        }
        box.generator.cancel(Int(id))
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_cancel_all")
public func mobilellm_batch_cancel_all(_ batch: OpaquePointer?) -> Int32 {
    guarded("mobilellm_batch_cancel_all") { try batchTable.lookup(batch, "batch").generator.cancelAll() }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_result")
public func mobilellm_batch_result(_ batch: OpaquePointer?, _ id: Int32, _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                   _ outCount: UnsafeMutablePointer<Int>?,
                                   _ result: UnsafeMutablePointer<mobilellm_generate_result>?) -> Int32 {
    guarded("mobilellm_batch_result") {
        let box = try batchTable.lookup(batch, "batch")
        guard outCount != nil else { throw ABIError.null("out_count") }
        let finished = try box.exclusively { try box.result(id) }
        if let result {
            var value = mobilellm_generate_result()
            value.stop_reason = stopReasonCode(finished.stopReason)
            value.n_prompt_tokens = Int32(truncatingIfNeeded: finished.promptTokenCount)
            value.n_tokens = Int32(truncatingIfNeeded: finished.tokens.count)
            value.n_reasoning_tokens = Int32(truncatingIfNeeded: finished.reasoningTokenCount)
            value.reasoning_budget_index = budgetIndex(finished.events)
            try writeOutput(value, to: result, minimumSize: VersionOneSize.generateResult, name: "result")
        }
        try copyOut(finished.tokens, to: tokens, capacity: capacity, count: outCount, name: "tokens", unit: "tokens")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_result_text")
public func mobilellm_batch_result_text(_ batch: OpaquePointer?, _ id: Int32, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                        _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_result_text") {
        let box = try batchTable.lookup(batch, "batch")
        guard outLength != nil else { throw ABIError.null("out_length") }
        let finished = try box.exclusively { try box.result(id) }
        try copyOut(text: finished.text, to: buffer, capacity: capacity, length: outLength, name: "buffer")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_forget")
public func mobilellm_batch_forget(_ batch: OpaquePointer?, _ id: Int32) -> Int32 {
    guarded("mobilellm_batch_forget") {
        let box = try batchTable.lookup(batch, "batch")
        try box.exclusively {
            _ = try box.result(id)
            box.results[Int(id)] = nil
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_logits")
public func mobilellm_batch_logits(_ batch: OpaquePointer?, _ id: Int32, _ logits: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                   _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_logits") {
        let box = try batchTable.lookup(batch, "batch")
        guard outCount != nil else { throw ABIError.null("out_count") }
        let values = try box.exclusively { () throws -> [Float] in
            guard box.generator.keepsLogits else {
                throw ABIError.invalidArgument("batch", "keeps no logits: create it with mobilellm_batch_params.keep_logits")
            }
            guard let values = box.generator.logits(of: Int(id)) else {
                throw ABIError.invalidArgument("id", "sequence \(id) sampled no token in the latest step")
            }
            return values
        }
        try copyOut(values, to: logits, capacity: capacity, count: outCount, name: "logits", unit: "floats")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_event_pieces")
public func mobilellm_batch_event_pieces(_ batch: OpaquePointer?, _ index: Int,
                                         _ outPieces: UnsafeMutablePointer<UnsafePointer<mobilellm_piece>?>?,
                                         _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_event_pieces") {
        let box = try batchTable.lookup(batch, "batch")
        guard let outPieces else { throw ABIError.null("out_pieces") }
        guard let outCount else { throw ABIError.null("out_count") }
        try box.exclusively {
            guard index >= 0, index < box.deliveredPieces.count else {
                throw ABIError.invalidArgument("index", "expected an event of the latest mobilellm_batch_step() call (0..<\(box.deliveredPieces.count)), found \(UInt(bitPattern: index))")
            }
            let pieces = box.deliveredPieces[index] ?? []
            outPieces.pointee = box.publishedPieces.publish(pieces)
            outCount.pointee = pieces.count
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_result_channel_text")
public func mobilellm_batch_result_channel_text(_ batch: OpaquePointer?, _ id: Int32, _ channel: Int32,
                                                _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                                _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_result_channel_text") {
        let box = try batchTable.lookup(batch, "batch")
        guard outLength != nil else { throw ABIError.null("out_length") }
        let text: KeyPath<BatchResult, String>
        switch channel {
        case Int32(MOBILELLM_CHANNEL_REASONING.rawValue): text = \.reasoning
        case Int32(MOBILELLM_CHANNEL_ANSWER.rawValue): text = \.answer
        default:
            throw ABIError.invalidArgument("channel", "expected MOBILELLM_CHANNEL_REASONING (1) or MOBILELLM_CHANNEL_ANSWER (0), found \(channel)")
        }
        let finished = try box.exclusively { try box.result(id) }
        try copyOut(text: finished[keyPath: text], to: buffer, capacity: capacity, length: outLength, name: "buffer")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_batch_result_logprobs")
public func mobilellm_batch_result_logprobs(_ batch: OpaquePointer?, _ id: Int32,
                                            _ logprobs: UnsafeMutablePointer<mobilellm_token_logprob>?, _ capacity: Int,
                                            _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_batch_result_logprobs") {
        let box = try batchTable.lookup(batch, "batch")
        guard outCount != nil else { throw ABIError.null("out_count") }
        let finished = try box.exclusively { try box.result(id) }
        try copyOut(finished.logprobs.map(cLogprob), to: logprobs, capacity: capacity, count: outCount, name: "logprobs",
                    unit: "entries")
    }
}
