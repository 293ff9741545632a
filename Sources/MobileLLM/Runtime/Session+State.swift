
/// Saving and restoring a session's tokens and KV cache, so a prompt prefix computed once can be reused.
///
/// Layout (little-endian): the 8-byte magic `MLLMKV01`; u32 format version (1), u32 KV type (0 f32, 1 f16),
/// u32 layers, u32 KV heads, u32 head dimension, u32 vocabulary size, u64 model fingerprint, u32 token count n,
/// u32 zero; n × i32 tokens; then for every layer its keys and then its values as [kvHeads, n, headDim] elements.
extension Session {
    private static let stateMagic: [UInt8] = Array("MLLMKV01".utf8)
    private static let stateHeaderSize = 48

    /// Bytes `saveState` writes for the current position.
    public var stateByteCount: Int {
        return Self.stateHeaderSize + 4 * position + cache.serializedByteCount(positions: position)
    }

    /// The tokens and the used part of the KV cache as bytes.
    public func saveState() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: stateByteCount)
        bytes.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress { writeState(to: base) }
        }
        return bytes
    }

    /// Writes the state into `buffer`, which must hold at least `stateByteCount` bytes; returns the bytes written.
    /// Throws `invalidArgument` when the buffer is too small.
    public func saveState(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        useLock.lock()
        defer { useLock.unlock() }
        let size = stateByteCount
        guard let base = buffer.baseAddress, buffer.count >= size else {
            throw MobileLLMError.invalidArgument(name: "buffer", problem: "needs \(size) bytes, has \(buffer.count)")
        }
        writeState(to: base)
        return size
    }

    private func writeState(to base: UnsafeMutableRawPointer) {
        let c = model.configuration
        var offset = 0
        func put<T: FixedWidthInteger>(_ value: T) {
            base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
            offset += MemoryLayout<T>.size
        }
        for byte in Self.stateMagic { put(byte) }
        put(UInt32(1))
        put(KVCacheType.stateCode(kvCacheType))
        put(UInt32(c.layerCount))
        put(UInt32(c.kvHeadCount))
        put(UInt32(c.headDimension))
        put(UInt32(c.vocabularySize))
        put(model.fingerprint)
        put(UInt32(position))
        put(UInt32(0))
        for token in tokens { put(token) }
        _ = cache.write(positions: position, to: base + offset)
    }

    /// Replaces the tokens and KV cache with a state saved from a session of the same model (same weights and KV
    /// cache type). Throws `invalidArgument` naming the field when the bytes are not such a state or hold more
    /// tokens than this session's capacity; the session is unchanged then.
    public func restoreState(_ bytes: UnsafeRawBufferPointer) throws {
        useLock.lock()
        defer { useLock.unlock() }
        let c = model.configuration
        func bad(_ field: String, _ problem: String) -> MobileLLMError {
            .invalidArgument(name: "state.\(field)", problem: problem)
        }
        guard let base = bytes.baseAddress, bytes.count >= Self.stateHeaderSize else {
            throw bad("size", "expected at least \(Self.stateHeaderSize) bytes (a saved session state), found \(bytes.count)")
        }
        var offset = 0
        func get<T: FixedWidthInteger>(_: T.Type) -> T {
            let value = base.loadUnaligned(fromByteOffset: offset, as: T.self)
            offset += MemoryLayout<T>.size
            return T(littleEndian: value)
        }
        let magic = (0..<8).map { _ in get(UInt8.self) }
        guard magic == Self.stateMagic else { throw bad("magic", "expected \"MLLMKV01\" (bytes from mobilellm_session_save_state), found other bytes") }
        let version = get(UInt32.self)
        guard version == 1 else { throw bad("version", "expected 1, found \(version)") }
        let type = get(UInt32.self)
        let expectedType = KVCacheType.stateCode(kvCacheType)
        guard type == expectedType else {
            throw bad("kv_cache_type", "expected \(kvCacheType.rawValue) (this session's KV cache), found \(KVCacheType.allCases.first { KVCacheType.stateCode($0) == type }?.rawValue ?? String(type))")
        }
        for (field, expected) in [("n_layers", c.layerCount), ("n_kv_heads", c.kvHeadCount), ("head_dim", c.headDimension), ("vocab_size", c.vocabularySize)] {
            let found = get(UInt32.self)
            guard Int(found) == expected else { throw bad(field, "expected \(expected) (this model), found \(found): the state comes from another model") }
        }
        let fingerprint = get(UInt64.self)
        guard fingerprint == model.fingerprint else {
            throw bad("model_fingerprint", "expected \(model.fingerprint) (this model's weights), found \(fingerprint): the state comes from another model")
        }
        let count = Int(get(UInt32.self))
        _ = get(UInt32.self)
        guard count <= capacity else {
            throw bad("n_tokens", "\(count) tokens do not fit in this session's context of \(capacity)")
        }
        let expectedSize = Self.stateHeaderSize + 4 * count + cache.serializedByteCount(positions: count)
        guard bytes.count == expectedSize else {
            throw bad("size", "expected \(expectedSize) bytes for \(count) tokens, found \(bytes.count)")
        }
        var restored: [Int32] = []
        restored.reserveCapacity(count)
        for index in 0..<count {
            let token = get(Int32.self)
            guard token >= 0, Int(token) < c.vocabularySize else {
                throw bad("tokens[\(index)]", "token id \(token) is outside the vocabulary (0..<\(c.vocabularySize))")
            }
            restored.append(token)
        }
        cache.read(positions: count, from: base + offset)
        tokens = restored
    }
}

extension Model {
    /// A 64-bit FNV-1a hash of the configuration's shape and the first and last embedding rows: different weights
    /// of the same shape give different fingerprints, so a saved session state is not restored into another model.
    public var fingerprint: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: UnsafeRawBufferPointer) {
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
        }
        let c = configuration
        for value in [c.vocabularySize, c.hiddenSize, c.layerCount, c.headCount, c.kvHeadCount, c.headDimension, c.intermediateSize] {
            withUnsafeBytes(of: Int64(value).littleEndian) { mix($0) }
        }
        Array(c.modelType.utf8).withUnsafeBytes { mix($0) }
        let embedding = weights.embedding
        embedding.withStoredRow(0) { mix($0) }
        embedding.withStoredRow(embedding.rows - 1) { mix($0) }
        return hash
    }

}
