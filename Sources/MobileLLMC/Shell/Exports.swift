// The exported C functions of include/mobilellm.h. Each body runs inside `guarded`, validates every argument
// before the engine sees it, and turns every failure into a status and a thread-local message.
import CMobileLLMABI
import MobileLLM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// The version string of this build.
let libraryVersion = "0.1.0"

nonisolated(unsafe) private let versionCString: UnsafePointer<CChar> = makeStaticCString(libraryVersion)

private func makeStaticCString(_ text: String) -> UnsafePointer<CChar> {
    let bytes = Array(text.utf8CString)
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    pointer.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(pointer)
}

nonisolated(unsafe) private let statusNames: [UnsafePointer<CChar>] = [
    "MOBILELLM_OK", "MOBILELLM_ERROR_INVALID_ARGUMENT", "MOBILELLM_ERROR_INVALID_HANDLE", "MOBILELLM_ERROR_FILE_NOT_FOUND",
    "MOBILELLM_ERROR_INVALID_FILE", "MOBILELLM_ERROR_UNSUPPORTED", "MOBILELLM_ERROR_BUFFER_TOO_SMALL",
    "MOBILELLM_ERROR_CONTEXT_FULL", "MOBILELLM_ERROR_CANCELLED", "MOBILELLM_ERROR_INVALID_UTF8",
    "MOBILELLM_ERROR_NO_TOKENIZER", "MOBILELLM_ERROR_BUSY", "MOBILELLM_ERROR_IO", "MOBILELLM_ERROR_OUT_OF_MEMORY",
    "MOBILELLM_ERROR_INTERNAL", "MOBILELLM_ERROR_TEMPLATE", "MOBILELLM_ERROR_GRAMMAR",
].map(makeStaticCString)

nonisolated(unsafe) private let unknownStatusName = makeStaticCString("unknown status")

// MARK: - Versions, errors, logging

/// See include/mobilellm.h.
@_cdecl("mobilellm_abi_version")
public func mobilellm_abi_version() -> UInt32 { UInt32(MOBILELLM_ABI_VERSION) }

/// See include/mobilellm.h.
@_cdecl("mobilellm_version_string")
public func mobilellm_version_string() -> UnsafePointer<CChar>? { versionCString }

/// See include/mobilellm.h.
@_cdecl("mobilellm_status_name")
public func mobilellm_status_name(_ status: Int32) -> UnsafePointer<CChar>? {
    status >= 0 && Int(status) < statusNames.count ? statusNames[Int(status)] : unknownStatusName
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_last_error")
public func mobilellm_last_error() -> UnsafePointer<CChar>? { LastError.current }

/// See include/mobilellm.h.
@_cdecl("mobilellm_set_log_callback")
public func mobilellm_set_log_callback(_ callback: mobilellm_log_callback?, _ maxLevel: Int32, _ userData: UnsafeMutableRawPointer?) -> Int32 {
    guarded("mobilellm_set_log_callback") {
        guard (0...4).contains(maxLevel) else {
            throw ABIError.invalidArgument("max_level", "expected 0 (none) ... 4 (debug), found \(maxLevel)")
        }
        guard let callback, let level = LogLevel(rawValue: Int(maxLevel)) else {
            MobileLLMLog.setSink(level: nil, nil)
            return
        }
        let box = CallbackBox(function: callback, userData: userData)
        MobileLLMLog.setSink(level: level) { level, message in
            message.withCString { box.function(Int32(level.rawValue), $0, box.userData) }
        }
    }
}

// MARK: - Models

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_params_init")
public func mobilellm_model_params_init(_ params: UnsafeMutablePointer<mobilellm_model_params>?) {
    params?.pointee = .defaults
}

/// The C fields of the engine's load options, for error messages.
private let modelLoadFields = ["defaultContextLength": "params->default_context_length", "threadCount": "params->n_threads",
                               "lockMemory": "params->use_mlock", "contextLength": "n_ctx"]

/// Reads and checks C model params (NULL: defaults) as the engine's load options.
private func modelLoadOptions(_ params: UnsafePointer<mobilellm_model_params>?) throws -> (ModelLoadOptions, mobilellm_model_params) {
    let p = try readParams(params, defaults: .defaults, minimumSize: VersionOneSize.modelParams, name: "params")
    guard (0...1024).contains(p.n_threads) else {
        throw ABIError.invalidArgument("params->n_threads", "expected 0 (every core) ... 1024, found \(p.n_threads)")
    }
    guard p.default_context_length >= 0 else {
        throw ABIError.invalidArgument("params->default_context_length", "expected 0 (automatic) or a positive count, found \(p.default_context_length)")
    }
    var quantize: QuantType?
    if let pointer = p.quantize {
        let name = try string(pointer, "params->quantize")
        if !name.isEmpty {
            guard let type = QuantType(name: name) else {
                throw ABIError.invalidArgument("params->quantize", "unknown type \"\(name)\" (expected NULL, \"\" or one of \(QuantType.allCases.map(\.name).joined(separator: ", ")))")
            }
            quantize = type
        }
    }
    // use_mlock was appended: read only when the caller's struct has it (readParams keeps the default otherwise).
    var options = ModelLoadOptions(threadCount: p.n_threads == 0 ? nil : Int(p.n_threads), quantize: quantize,
                                   defaultContextLength: p.default_context_length == 0 ? nil : Int(p.default_context_length),
                                   lockMemory: readBool(p, \mobilellm_model_params.use_mlock))
    // activations too; NULL or "" keeps the engine's own default (ModelLoadOptions' initializer decides it).
    if let precision = try activationPrecision(p) { options.activationPrecision = precision }
    return (options, p)
}

/// params->activations as the engine's precision: nil for NULL, "" or a struct_size that does not cover the whole
/// field (an older caller); INVALID_ARGUMENT naming the field and the engine's names for anything else.
private func activationPrecision(_ p: mobilellm_model_params) throws -> ActivationPrecision? {
    let end = (MemoryLayout<mobilellm_model_params>.offset(of: \.activations) ?? Int.max)
        + MemoryLayout<UnsafePointer<CChar>?>.size
    guard Int(p.struct_size) >= end, let pointer = p.activations else { return nil }
    let name = try string(pointer, "params->activations")
    if name.isEmpty { return nil }
    guard let precision = ActivationPrecision(rawValue: name) else {
        let names = ActivationPrecision.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        throw ABIError.invalidArgument("params->activations", "unknown precision \"\(name)\" (expected NULL, \"\" or one of \(names))")
    }
    return precision
}

/// The engine's activation precisions as static C strings (mobilellm_model_info.activations), valid forever.
nonisolated(unsafe) private let activationPrecisionNames: [ActivationPrecision: UnsafePointer<CChar>] =
    Dictionary(uniqueKeysWithValues: ActivationPrecision.allCases.map { ($0, makeStaticCString($0.rawValue)) })

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_load")
public func mobilellm_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<mobilellm_model_params>?,
                                 _ outModel: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded("mobilellm_model_load") {
        guard let outModel else { throw ABIError.null("out_model") }
        let path = try string(path, "path")
        let (options, p) = try modelLoadOptions(params)
        let started = ContinuousClock.now
        let model: Model
        if let callback = p.progress_callback {
            let userData = p.progress_user_data
            model = try explainingCancel("the progress callback returned false; nothing was loaded") {
                try translatingArguments(modelLoadFields) {
                    try Model(path: path, options: options) { fraction in callback(Float(fraction), userData) }
                }
            }
        } else {
            model = try translatingArguments(modelLoadFields) { try Model(path: path, options: options) }
        }
        let box = ModelBox(model: model)
        MobileLLMLog.log(.info, "loaded \(path): \(model.configuration.modelType), \(model.configuration.layerCount) layers, vocabulary \(model.vocabularySize), \(model.threadCount) threads, in \(Int((ContinuousClock.now - started) / .milliseconds(1))) ms")
        outModel.pointee = modelTable.insert(box)
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_estimate_memory")
public func mobilellm_model_estimate_memory(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<mobilellm_model_params>?,
                                            _ contextLength: Int32, _ out: UnsafeMutablePointer<mobilellm_memory_estimate>?) -> Int32 {
    guarded("mobilellm_model_estimate_memory") {
        let path = try string(path, "path")
        guard out != nil else { throw ABIError.null("out") }
        let (options, _) = try modelLoadOptions(params)
        let length = try contextLengthArgument(contextLength, "n_ctx")
        let estimate = try translatingArguments(modelLoadFields) {
            try Model.estimateMemory(path: path, options: options, contextLength: length)
        }
        var value = mobilellm_memory_estimate()
        value.n_ctx = Int32(clamping: estimate.contextLength)
        switch estimate.kvCacheType {
        case .f32: value.kv_cache_type = Int32(MOBILELLM_KV_F32.rawValue)
        case .f16: value.kv_cache_type = Int32(MOBILELLM_KV_F16.rawValue)
        case .q8_0: value.kv_cache_type = Int32(MOBILELLM_KV_Q8_0.rawValue)
        }
        value.n_threads = Int32(clamping: estimate.threadCount)
        value.weights_mapped_bytes = UInt64(estimate.mappedWeightBytes)
        value.weights_anonymous_bytes = UInt64(estimate.anonymousWeightBytes)
        value.kv_bytes_per_position = UInt64(estimate.kvBytesPerPosition)
        value.kv_bytes = UInt64(estimate.kvBytes)
        value.scratch_bytes = UInt64(estimate.scratchBytes)
        value.total_bytes = UInt64(estimate.totalBytes)
        try writeOutput(value, to: out, minimumSize: VersionOneSize.memoryEstimate, name: "out")
    }
}

nonisolated(unsafe) private let systemInfoCString: UnsafePointer<CChar> = makeStaticCString(MobileLLMSystem.info)

/// See include/mobilellm.h.
@_cdecl("mobilellm_system_info")
public func mobilellm_system_info() -> UnsafePointer<CChar>? { systemInfoCString }

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_free")
public func mobilellm_model_free(_ model: OpaquePointer?) -> Int32 {
    guarded("mobilellm_model_free") { try modelTable.remove(model, "model") }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_get_info")
public func mobilellm_model_get_info(_ model: OpaquePointer?, _ info: UnsafeMutablePointer<mobilellm_model_info>?) -> Int32 {
    guarded("mobilellm_model_get_info") {
        let box = try modelTable.lookup(model, "model")
        let m = box.model, c = m.configuration
        var value = mobilellm_model_info()
        value.vocab_size = Int32(m.vocabularySize)
        value.context_length = Int32(c.maxPositions)
        value.default_context_length = Int32(box.model.defaultContextLength)
        value.n_layers = Int32(c.layerCount)
        value.hidden_size = Int32(c.hiddenSize)
        value.n_heads = Int32(c.headCount)
        value.n_kv_heads = Int32(c.kvHeadCount)
        value.head_dim = Int32(c.headDimension)
        value.n_threads = Int32(m.threadCount)
        value.bos_token_id = Int32(c.bosTokenID ?? -1)
        value.n_eos_token_ids = Int32(m.eosTokenIDs.count)
        value.has_tokenizer = m.tokenizerFile != nil
        value.has_chat_template = (try? m.chatTemplate())?.isBuiltInDefault == false
        value.is_quantized = m.isQuantized
        // Appended: writeOutput copies it only when the caller's struct_size covers it.
        value.activations = activationPrecisionNames[m.activationPrecision]
        try writeOutput(value, to: info, minimumSize: VersionOneSize.modelInfo, name: "info")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_eos_token_ids")
public func mobilellm_model_eos_token_ids(_ model: OpaquePointer?, _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                          _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_model_eos_token_ids") {
        let box = try modelTable.lookup(model, "model")
        try copyOut(box.model.eosTokenIDs.map { Int32($0) }, to: ids, capacity: capacity, count: outCount, name: "ids", unit: "ids")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_get_metadata")
public func mobilellm_model_get_metadata(_ model: OpaquePointer?, _ key: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<CChar>?,
                                         _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_model_get_metadata") {
        let box = try modelTable.lookup(model, "model")
        let key = try string(key, "key")
        let value: String
        switch key {
        case "architecture": value = box.model.configuration.modelType
        case "path": value = box.model.path
        case "kv_cache_type": value = box.model.isQuantized ? "f16" : "f32"
        case "bos_token": value = try box.model.chatTemplate().bosToken ?? ""
        case "eos_token": value = try box.model.chatTemplate().eosToken ?? ""
        case "chat_template":
            let template = try box.model.chatTemplate()
            value = template.isBuiltInDefault ? "" : template.template.source
        default:
            throw ABIError.invalidArgument("key", "unknown metadata key \"\(key)\" (expected architecture, path, kv_cache_type, bos_token, eos_token or chat_template)")
        }
        try copyOut(text: value, to: buffer, capacity: capacity, length: outLength, name: "buffer")
    }
}

// MARK: - Sessions

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_params_init")
public func mobilellm_session_params_init(_ params: UnsafeMutablePointer<mobilellm_session_params>?) {
    params?.pointee = .defaults
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_create")
public func mobilellm_session_create(_ model: OpaquePointer?, _ params: UnsafePointer<mobilellm_session_params>?,
                                     _ outSession: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded("mobilellm_session_create") {
        let box = try modelTable.lookup(model, "model")
        guard let outSession else { throw ABIError.null("out_session") }
        let p = try readParams(params, defaults: .defaults, minimumSize: VersionOneSize.sessionParams, name: "params")
        let contextLength = try contextLengthArgument(p.n_ctx, "params->n_ctx")
        let type = try kvCacheTypeArgument(p.kv_cache_type, "params->kv_cache_type")
        let session = try translatingArguments(["contextLength": "params->n_ctx"]) {
            try box.model.makeSession(contextLength: contextLength, kvCacheType: type)
        }
        MobileLLMLog.log(.debug, "session created: \(session.capacity) positions, \(session.kvCacheType.rawValue) KV cache of \(session.kvCacheBytes) bytes")
        outSession.pointee = sessionTable.insert(SessionBox(session: session, owner: box))
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_set_threads")
public func mobilellm_session_set_threads(_ session: OpaquePointer?, _ threads: Int32) -> Int32 {
    guarded("mobilellm_session_set_threads") {
        let box = try sessionTable.lookup(session, "session")
        let count = try threadCount(threads, of: box.session.model)
        try box.exclusively { try box.session.setThreadCount(count) }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_free")
public func mobilellm_session_free(_ session: OpaquePointer?) -> Int32 {
    guarded("mobilellm_session_free") { try sessionTable.remove(session, "session") }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_reset")
public func mobilellm_session_reset(_ session: OpaquePointer?) -> Int32 {
    guarded("mobilellm_session_reset") {
        let box = try sessionTable.lookup(session, "session")
        try box.exclusively {
            box.session.reset()
            box.lastLogits = nil
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_rewind")
public func mobilellm_session_rewind(_ session: OpaquePointer?, _ position: Int32) -> Int32 {
    guarded("mobilellm_session_rewind") {
        let box = try sessionTable.lookup(session, "session")
        try box.exclusively {
            guard position >= 0, Int(position) <= box.session.position else {
                throw ABIError.invalidArgument("position", "expected 0...\(box.session.position) (the current position), found \(position)")
            }
            try box.session.rewind(to: Int(position))
            box.lastLogits = nil
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_position")
public func mobilellm_session_position(_ session: OpaquePointer?, _ outPosition: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded("mobilellm_session_position") {
        let box = try sessionTable.lookup(session, "session")
        guard let outPosition else { throw ABIError.null("out_position") }
        outPosition.pointee = try box.exclusively { Int32(box.session.position) }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_context_length")
public func mobilellm_session_context_length(_ session: OpaquePointer?, _ outLength: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded("mobilellm_session_context_length") {
        let box = try sessionTable.lookup(session, "session")
        guard let outLength else { throw ABIError.null("out_n_ctx") }
        outLength.pointee = Int32(box.session.capacity)
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_tokens")
public func mobilellm_session_tokens(_ session: OpaquePointer?, _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                     _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_session_tokens") {
        let box = try sessionTable.lookup(session, "session")
        let current = try box.exclusively { box.session.tokens }
        try copyOut(current, to: tokens, capacity: capacity, count: outCount, name: "tokens", unit: "tokens")
    }
}

/// A C n_ctx (0: the model's default, nil to the engine); negative counts are refused naming `name`.
func contextLengthArgument(_ value: Int32, _ name: String) throws -> Int? {
    guard value >= 0 else {
        throw ABIError.invalidArgument(name, "expected 0 (the model default) or a positive count, found \(value)")
    }
    return value == 0 ? nil : Int(value)
}

/// A C mobilellm_kv_cache_type as the engine's (nil: automatic); unknown values are refused naming `name`.
func kvCacheTypeArgument(_ value: Int32, _ name: String) throws -> KVCacheType? {
    switch value {
    case Int32(MOBILELLM_KV_AUTO.rawValue): return nil
    case Int32(MOBILELLM_KV_F32.rawValue): return .f32
    case Int32(MOBILELLM_KV_F16.rawValue): return .f16
    case Int32(MOBILELLM_KV_Q8_0.rawValue): return .q8_0
    default: throw ABIError.invalidArgument(name, "expected 0 (auto), 1 (f32), 2 (f16) or 3 (q8_0), found \(value)")
    }
}

/// Checks a token array argument against the session's free space, then copies it.
func tokenArgument(_ tokens: UnsafePointer<Int32>?, _ rawCount: Int, _ name: String, session: Session) throws -> [Int32] {
    let n = try count(rawCount, "n_\(name)")
    guard n <= session.capacity - session.position else {
        throw MobileLLMError.contextFull(capacity: session.capacity, position: session.position, requested: n)
    }
    guard n > 0 else { return [] }
    guard let tokens else { throw ABIError.null(name) }
    return Array(UnsafeBufferPointer(start: tokens, count: n))
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_eval")
public func mobilellm_session_eval(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ mode: Int32,
                                   _ logits: UnsafeMutablePointer<Float>?, _ logitsCapacity: Int) -> Int32 {
    guarded("mobilellm_session_eval") {
        let box = try sessionTable.lookup(session, "session")
        try box.exclusively {
            let request: LogitsRequest
            switch mode {
            case Int32(MOBILELLM_LOGITS_NONE.rawValue): request = .none
            case Int32(MOBILELLM_LOGITS_LAST.rawValue): request = .last
            case Int32(MOBILELLM_LOGITS_ALL.rawValue): request = .all
            default: throw ABIError.invalidArgument("mode", "expected 0 (none), 1 (last) or 2 (all), found \(mode)")
            }
            let session = box.session
            let input = try tokenArgument(tokens, nTokens, "tokens", session: session)
            if input.isEmpty {
                guard request == .none else {
                    throw ABIError.invalidArgument("n_tokens", "expected at least 1 token when logits are requested, found 0")
                }
                return
            }
            let vocabulary = session.model.vocabularySize
            let needed = (request == .all ? input.count : 1) * vocabulary
            if request != .none {
                let capacity = try count(logitsCapacity, "logits_capacity")
                guard capacity >= needed else {
                    throw ABIError.bufferTooSmall("logits", needed: needed, capacity: capacity, unit: "floats")
                }
                guard logits != nil else { throw ABIError.null("logits") }
            }
            // A failure leaves the session as it was (feed restores the position), the latest logits included.
            let output = try explainingCancel("mobilellm_session_cancel() was called; nothing was fed") {
                try session.feed(input, logits: request)
            }
            box.lastLogits = nil
            guard request != .none, let logits else { return }
            output.values.withUnsafeBufferPointer { source in
                if let base = source.baseAddress { logits.update(from: base, count: min(needed, source.count)) }
            }
            box.lastLogits = Array(output.last)
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_logits")
public func mobilellm_session_logits(_ session: OpaquePointer?, _ logits: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                     _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_session_logits") {
        let box = try sessionTable.lookup(session, "session")
        let last = try box.exclusively { box.lastLogits }
        guard let last else {
            throw ABIError.invalidArgument("session", "has no logits: evaluate tokens with MOBILELLM_LOGITS_LAST or _ALL first")
        }
        try copyOut(last, to: logits, capacity: capacity, count: outCount, name: "logits", unit: "floats")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_cancel")
public func mobilellm_session_cancel(_ session: OpaquePointer?) -> Int32 {
    guarded("mobilellm_session_cancel") {
        try sessionTable.lookup(session, "session").session.cancel()
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_state_size")
public func mobilellm_session_state_size(_ session: OpaquePointer?, _ outSize: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_session_state_size") {
        let box = try sessionTable.lookup(session, "session")
        guard let outSize else { throw ABIError.null("out_size") }
        outSize.pointee = try box.exclusively { box.session.stateByteCount }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_save_state")
public func mobilellm_session_save_state(_ session: OpaquePointer?, _ buffer: UnsafeMutableRawPointer?, _ capacity: Int,
                                         _ outSize: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_session_save_state") {
        let box = try sessionTable.lookup(session, "session")
        guard let outSize else { throw ABIError.null("out_size") }
        let capacity = try count(capacity, "capacity")
        try box.exclusively {
            let size = box.session.stateByteCount
            guard capacity >= size else {
                outSize.pointee = size
                throw ABIError.bufferTooSmall("buffer", needed: size, capacity: capacity, unit: "bytes")
            }
            guard let buffer else { throw ABIError.null("buffer") }
            _ = try box.session.saveState(into: UnsafeMutableRawBufferPointer(start: buffer, count: size))
            outSize.pointee = size
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_load_state")
public func mobilellm_session_load_state(_ session: OpaquePointer?, _ buffer: UnsafeRawPointer?, _ size: Int) -> Int32 {
    guarded("mobilellm_session_load_state") {
        let box = try sessionTable.lookup(session, "session")
        let size = try count(size, "size")
        guard let buffer else { throw ABIError.null("buffer") }
        try box.exclusively {
            try box.session.restoreState(UnsafeRawBufferPointer(start: buffer, count: size))
            box.lastLogits = nil
        }
    }
}

// MARK: - Sampling

/// See include/mobilellm.h.
@_cdecl("mobilellm_sampler_params_init")
public func mobilellm_sampler_params_init(_ params: UnsafeMutablePointer<mobilellm_sampler_params>?) {
    params?.pointee = .defaults
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_sampler_create")
public func mobilellm_sampler_create(_ params: UnsafePointer<mobilellm_sampler_params>?, _ outSampler: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded("mobilellm_sampler_create") {
        guard let outSampler else { throw ABIError.null("out_sampler") }
        let p = try readParams(params, defaults: .defaults, minimumSize: VersionOneSize.samplerParams, name: "params")
        let sampler = try Sampler(try p.engineParameters())
        outSampler.pointee = samplerTable.insert(SamplerBox(sampler: sampler))
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_sampler_free")
public func mobilellm_sampler_free(_ sampler: OpaquePointer?) -> Int32 {
    guarded("mobilellm_sampler_free") { try samplerTable.remove(sampler, "sampler") }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_sampler_sample")
public func mobilellm_sampler_sample(_ sampler: OpaquePointer?, _ session: OpaquePointer?, _ outToken: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded("mobilellm_sampler_sample") {
        let samplerBox = try samplerTable.lookup(sampler, "sampler")
        let sessionBox = try sessionTable.lookup(session, "session")
        guard let outToken else { throw ABIError.null("out_token") }
        let (logits, history) = try sessionBox.exclusively { (sessionBox.lastLogits, sessionBox.session.tokens) }
        guard let logits else {
            throw ABIError.invalidArgument("session", "has no logits: evaluate tokens with MOBILELLM_LOGITS_LAST or _ALL first")
        }
        outToken.pointee = try samplerBox.exclusively { samplerBox.sampler.sample(logits, history: history) }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_sampler_sample_logits")
public func mobilellm_sampler_sample_logits(_ sampler: OpaquePointer?, _ logits: UnsafePointer<Float>?, _ nLogits: Int,
                                            _ history: UnsafePointer<Int32>?, _ nHistory: Int,
                                            _ outToken: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded("mobilellm_sampler_sample_logits") {
        let box = try samplerTable.lookup(sampler, "sampler")
        guard let outToken else { throw ABIError.null("out_token") }
        let n = try count(nLogits, "n_logits")
        guard n > 0, n <= 1 << 26 else { throw ABIError.invalidArgument("n_logits", "expected 1...\(1 << 26), found \(n)") }
        guard let logits else { throw ABIError.null("logits") }
        let h = try count(nHistory, "n_history")
        guard h <= 1 << 26 else { throw ABIError.invalidArgument("n_history", "expected at most \(1 << 26), found \(h)") }
        var past: [Int32] = []
        if h > 0 {
            guard let history else { throw ABIError.null("history") }
            past = Array(UnsafeBufferPointer(start: history, count: h))
        }
        let scores = UnsafeBufferPointer(start: logits, count: n)
        outToken.pointee = try box.exclusively { box.sampler.sample(scores, history: past) }
    }
}

// MARK: - Generation

/// See include/mobilellm.h.
@_cdecl("mobilellm_generate_params_init")
public func mobilellm_generate_params_init(_ params: UnsafeMutablePointer<mobilellm_generate_params>?) {
    // Programs built before fields were appended have a first-release-size struct: write only that much.
    writeDefaults(.defaults, to: params, size: VersionOneSize.generateParams)
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_generate_params_init_sized")
public func mobilellm_generate_params_init_sized(_ params: UnsafeMutablePointer<mobilellm_generate_params>?, _ size: Int) {
    guard size >= VersionOneSize.generateParams else { return }
    writeDefaults(.defaults, to: params, size: size)
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_generate")
public func mobilellm_session_generate(_ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ nPrompt: Int,
                                       _ samplerParams: UnsafePointer<mobilellm_sampler_params>?,
                                       _ params: UnsafePointer<mobilellm_generate_params>?,
                                       _ outTokens: UnsafeMutablePointer<Int32>?, _ outCapacity: Int,
                                       _ result: UnsafeMutablePointer<mobilellm_generate_result>?) -> Int32 {
    guarded("mobilellm_session_generate") {
        let box = try sessionTable.lookup(session, "session")
        let request = try generateRequest(samplerParams, params)
        let options = request.options
        let capacity = try count(outCapacity, "out_capacity")
        if capacity > 0, outTokens == nil { throw ABIError.null("out_tokens") }
        if let result {
            let size = Int(UnsafeRawPointer(result).loadUnaligned(as: UInt32.self))
            guard size >= VersionOneSize.generateResult, size <= 65536 else {
                throw ABIError.invalidArgument("result->struct_size", "expected at least \(VersionOneSize.generateResult) (set it to sizeof(mobilellm_generate_result)), found \(size)")
            }
        }
        let callback = request.callback
        let pieceCallback = request.pieceCallback
        let streamsText = request.streamsText
        // Text pieces for the token callback, when the model has a tokenizer that loads (when the engine streams
        // text itself — stop strings, reasoning, a piece callback — pieces come from it).
        var detokenizer: StreamingDetokenizer?
        if callback != nil, !streamsText, box.session.model.tokenizerFile != nil {
            do {
                detokenizer = try box.session.model.tokenizer().makeStreamingDetokenizer(skipSpecial: false)
            } catch {
                MobileLLMLog.log(.warning, "mobilellm_session_generate: no text pieces, the tokenizer does not load: \(error)")
            }
        }
        let published = PublishedPieces()
        let generated = try box.exclusively {
            let session = box.session
            let input = try tokenArgument(prompt, nPrompt, "prompt", session: session)
            let before = session.position
            // The latest logits go once the session changes: on success, or a failure after something was fed.
            defer { if session.position != before || input.isEmpty { box.lastLogits = nil } }
            return try explainingCancel("mobilellm_session_cancel() was called; the session holds what was fed before") {
                try translatingArguments(controlFieldNames) {
                    if !streamsText {
                        return try generateTokens()
                    }
                    // The engine streams the text (holding back stop-string and marker candidates) as pieces: each
                    // goes to the piece callback, and `text` (when there is some to report) to the token callback.
                    func deliver(_ pieces: [GeneratedPiece], token: Int32, text: String?) -> Bool {
                        var go = true
                        if let pieceCallback {
                            for piece in pieces {
                                var value = published.publish(piece)
                                go = pieceCallback.function(&value, pieceCallback.userData) && go
                            }
                            published.release()
                        }
                        if let callback, let text {
                            go = text.withCString { callback.function(token, $0, strlen($0), callback.userData) } && go
                        }
                        return go
                    }
                    let result = try session.generateText(prompt: input, options: options, onTokenPieces: { pieces in
                        deliver(pieces, token: pieces.first?.token ?? -1, text: pieces.map(\.text).joined())
                    }, onRest: { rest, pieces in
                        _ = deliver(pieces, token: -1, text: rest)
                    })
                    return result.generation
                }
            }
            func generateTokens() throws -> GenerationResult {
                try session.generate(prompt: input, options: options) { token in
                    guard let callback else { return true }
                    guard detokenizer != nil, let piece = try? detokenizer?.push(token) else {
                        return callback.function(token, nil, 0, callback.userData)
                    }
                    return piece.withCString { callback.function(token, $0, strlen($0), callback.userData) }
                }
            }
        }
        if let outTokens {
            let n = min(capacity, generated.tokens.count)
            generated.tokens.withUnsafeBufferPointer { source in
                if let base = source.baseAddress { outTokens.update(from: base, count: n) }
            }
        }
        if let out = request.logprobsOut, !generated.logprobs.isEmpty {
            for (index, entry) in generated.logprobs.prefix(out.capacity).enumerated() { out.pointer[index] = cLogprob(entry) }
        }
        if let result {
            var value = mobilellm_generate_result()
            value.stop_reason = stopReasonCode(generated.stopReason)
            value.n_prompt_tokens = Int32(generated.promptTokenCount)
            value.n_tokens = Int32(generated.tokens.count)
            value.n_reasoning_tokens = Int32(truncatingIfNeeded: generated.reasoningTokenCount)
            value.reasoning_budget_index = budgetIndex(generated.events)
            try writeOutput(value, to: result, minimumSize: VersionOneSize.generateResult, name: "result")
        }
    }
}

/// A generation request read from a caller's sampler and generate params (NULL: the defaults), every field
/// validated and named as the C field it came from. Shared by mobilellm_session_generate and the batch adds.
struct GenerateRequest {
    /// The engine's options.
    let options: GenerationOptions
    /// The caller's token callback, when it set one.
    let callback: CallbackBox<mobilellm_token_callback>?

    /// The caller's piece callback, when it set one.
    let pieceCallback: CallbackBox<mobilellm_piece_callback>?
    /// Where mobilellm_session_generate writes the tokens' log-probabilities (params->out_logprobs), if anywhere.
    var logprobsOut: (pointer: UnsafeMutablePointer<mobilellm_token_logprob>, capacity: Int)?

    /// Whether a non-empty stop string is watched (the engine then streams text itself).
    var usesStopStrings: Bool { options.stopStrings.contains { !$0.isEmpty } }

    /// Whether the engine streams the text: stop strings, reasoning tracking and piece callbacks need it.
    var streamsText: Bool { usesStopStrings || options.reasoning != nil || pieceCallback != nil }
}

/// The index where a reasoning budget ran out, or -1 (mobilellm_generate_result.reasoning_budget_index).
func budgetIndex(_ events: [GenerationEvent]) -> Int32 {
    guard let event = events.first(where: { $0.kind == .reasoningBudget }) else { return -1 }
    return Int32(truncatingIfNeeded: event.tokenIndex)
}

/// Reads and validates `samplerParams` and `params` (see `GenerateRequest`).
func generateRequest(_ samplerParams: UnsafePointer<mobilellm_sampler_params>?,
                     _ params: UnsafePointer<mobilellm_generate_params>?) throws -> GenerateRequest {
    let sampling = try readParams(samplerParams, defaults: .defaults, minimumSize: VersionOneSize.samplerParams, name: "sampler_params")
        .engineParameters()
    let p = try readParams(params, defaults: .defaults, minimumSize: VersionOneSize.generateParams, name: "params")
    guard p.max_tokens >= 0 else {
        throw ABIError.invalidArgument("params->max_tokens", "expected a count >= 0, found \(p.max_tokens)")
    }
    let nStops = try count(p.n_stop_token_ids, "params->n_stop_token_ids")
    guard nStops <= 1 << 20 else { throw ABIError.invalidArgument("params->n_stop_token_ids", "expected at most \(1 << 20), found \(nStops)") }
    var stops: [Int]?
    if let pointer = p.stop_token_ids {
        stops = UnsafeBufferPointer(start: pointer, count: nStops).map { Int($0) }
    } else if nStops > 0 {
        throw ABIError.null("params->stop_token_ids")
    }
    let nStrings = try count(p.n_stop_strings, "params->n_stop_strings")
    guard nStrings <= 1024 else { throw ABIError.invalidArgument("params->n_stop_strings", "expected at most 1024, found \(nStrings)") }
    var stopStrings: [String] = []
    if nStrings > 0 {
        guard let pointer = p.stop_strings else { throw ABIError.null("params->stop_strings") }
        stopStrings = try (0..<nStrings).map { try string(pointer[$0], "params->stop_strings[\($0)]") }
    }
    var options = GenerationOptions(maxTokens: Int(p.max_tokens), sampling: sampling, stopTokenIDs: stops,
                                    ignoreEOS: readBool(p, \.ignore_eos), stopStrings: stopStrings)
    try readControl(p, into: &options)
    let logprobsCapacity = try count(p.out_logprobs_capacity, "params->out_logprobs_capacity")
    if logprobsCapacity > 0, p.out_logprobs == nil { throw ABIError.null("params->out_logprobs") }
    return GenerateRequest(options: options, callback: p.callback.map { CallbackBox(function: $0, userData: p.user_data) },
                           pieceCallback: p.piece_callback.map { CallbackBox(function: $0, userData: p.user_data) },
                           logprobsOut: p.out_logprobs.map { ($0, logprobsCapacity) })
}

/// The mobilellm_stop_reason of an engine stop reason.
func stopReasonCode(_ reason: StopReason) -> Int32 {
    switch reason {
    case .endOfSequence: return Int32(MOBILELLM_STOP_EOS.rawValue)
    case .maxTokens: return Int32(MOBILELLM_STOP_MAX_TOKENS.rawValue)
    case .contextFull: return Int32(MOBILELLM_STOP_CONTEXT_FULL.rawValue)
    case .callback: return Int32(MOBILELLM_STOP_CALLBACK.rawValue)
    case .stopString: return Int32(MOBILELLM_STOP_STRING.rawValue)
    case .cancelled: return Int32(MOBILELLM_STOP_CANCELLED.rawValue)
    // Placeholder until the C ABI defines MOBILELLM_STOP_GRAMMAR (the integrator's half): the next free value.
    case .grammar: return Int32(MOBILELLM_STOP_GRAMMAR.rawValue)
    }
}
