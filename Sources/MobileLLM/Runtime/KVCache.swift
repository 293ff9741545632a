import CMobileLLMKernels
import Foundation

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

    /// The type's code in saved session states.
    static func stateCode(_ type: KVCacheType) -> UInt32 {
        switch type {
        case .f32: return 0
        case .f16: return 1
        case .q8_0: return 2
        }
    }
}

/// The keys and values one sequence has cached: per layer, K and V of `[kvHeads, capacity, headDim]` in `type`.
///
/// A cache has a fixed capacity and a `length`: positions `0..<length` hold the sequence so far. The forward pass
/// `store`s rows at positions from `length` on and the owner then `advance`s or `rewind`s. Addressed per position
/// and head, so attention over a batch of (sequence, position) rows can read each row's own cache. Not thread-safe
/// for writes: one forward pass at a time writes a cache (attention threads only read it).
public final class KVCache: @unchecked Sendable {
    /// Element type.
    public let type: KVCacheType
    /// Positions it holds at most.
    public let capacity: Int
    /// Positions stored so far.
    public private(set) var length = 0
    /// Layers, KV heads and head dimension (the cached row shape).
    let layerCount: Int, kvHeadCount: Int, headDimension: Int
    /// Bytes of one cached head row.
    let rowBytes: Int
    private let keys: [UnsafeMutableRawPointer]
    private let values: [UnsafeMutableRawPointer]

    /// A cache of `capacity` positions for a model of configuration `c`, after checking that it and `extraBytes` of
    /// other scratch fit in this machine's memory (a huge context then fails with an error naming the largest that
    /// fits, instead of an allocation failure that would end the process).
    init(configuration c: ModelConfiguration, capacity: Int, type: KVCacheType, extraBytes: Int = 0) throws {
        guard type.rowBytes(c.headDimension) > 0 else {
            throw MobileLLMError.invalidArgument(name: "kvCacheType", problem: "\(type.rawValue) needs a head dimension that is a multiple of 32, found \(c.headDimension)")
        }
        let perPosition = Self.bytesPerPosition(configuration: c, type: type)
        let (bytes, overflow) = perPosition.multipliedReportingOverflow(by: capacity)
        let memory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard !overflow, bytes <= memory - extraBytes else {
            throw MobileLLMError.invalidArgument(
                name: "contextLength",
                problem: "a KV cache of \(capacity) positions needs \(overflow ? "more than \(Int.max)" : "\(bytes)") bytes, more than this machine's \(memory) bytes of memory (expected at most \(max(0, memory - extraBytes) / max(perPosition, 1)) positions)")
        }
        self.type = type
        self.capacity = capacity
        layerCount = c.layerCount
        kvHeadCount = c.kvHeadCount
        headDimension = c.headDimension
        rowBytes = type.rowBytes(c.headDimension)
        let layerBytes = bytes / (2 * c.layerCount)
        keys = (0..<c.layerCount).map { _ in UnsafeMutableRawPointer.allocate(byteCount: layerBytes, alignment: 64) }
        values = (0..<c.layerCount).map { _ in UnsafeMutableRawPointer.allocate(byteCount: layerBytes, alignment: 64) }
    }

    deinit {
        for buffer in keys { buffer.deallocate() }
        for buffer in values { buffer.deallocate() }
    }

    /// Bytes of K and V, over all layers, for one position.
    static func bytesPerPosition(configuration c: ModelConfiguration, type: KVCacheType) -> Int {
        2 * c.layerCount * c.kvHeadCount * type.rowBytes(c.headDimension)
    }

    /// Bytes the cache occupies.
    public var byteCount: Int { 2 * layerCount * kvHeadCount * rowBytes * capacity }

    /// Writes one position's K and V (`[kvHeads, headDim]` f32 each) of `layer`, converted to the cache's type.
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        for head in 0..<kvHeadCount {
            let offset = (head * capacity + position) * rowBytes
            convert(key + head * headDimension, into: keys[layer] + offset)
            convert(value + head * headDimension, into: values[layer] + offset)
        }
    }

    private func convert(_ source: UnsafePointer<Float>, into destination: UnsafeMutableRawPointer) {
        switch type {
        case .f32: destination.assumingMemoryBound(to: Float.self).update(from: source, count: headDimension)
        case .f16: mlk_convert_f32_to_f16(source, Int64(headDimension), destination.assumingMemoryBound(to: UInt16.self))
        case .q8_0: mlk_q_quantize_rows(QuantType.q8_0.rawValue, source, 1, Int64(headDimension), destination)
        }
    }

    /// The cached K (or V) rows of `layer` for KV head `head` from `position` on: consecutive rows of `rowBytes`.
    func keys(layer: Int, head: Int, from position: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(keys[layer] + (head * capacity + position) * rowBytes)
    }

    /// See `keys(layer:head:from:)`.
    func values(layer: Int, head: Int, from position: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(values[layer] + (head * capacity + position) * rowBytes)
    }

    /// Marks positions up to `newLength` as stored (after a forward pass wrote them).
    func advance(to newLength: Int) { length = min(capacity, max(length, newLength)) }

    /// Forgets every position from `newLength` on (their bytes are overwritten by the next stores).
    func rewind(to newLength: Int) { length = max(0, min(length, newLength)) }

    // MARK: - Serialization

    /// Bytes `write(positions:to:)` writes for `positions` positions.
    func serializedByteCount(positions: Int) -> Int { 2 * layerCount * kvHeadCount * positions * rowBytes }

    /// Writes the first `positions` positions (per layer K then V, per head its rows) to `base`; returns the bytes.
    func write(positions: Int, to base: UnsafeMutableRawPointer) -> Int {
        var offset = 0
        let used = positions * rowBytes
        for layer in 0..<layerCount {
            for cache in [keys[layer], values[layer]] {
                for head in 0..<kvHeadCount {
                    (base + offset).copyMemory(from: cache + head * capacity * rowBytes, byteCount: used)
                    offset += used
                }
            }
        }
        return offset
    }

    /// Reads `positions` positions in `write`'s layout from `base` (which must hold
    /// `serializedByteCount(positions:)` bytes) and sets the length to them.
    func read(positions: Int, from base: UnsafeRawPointer) {
        var offset = 0
        let used = positions * rowBytes
        for layer in 0..<layerCount {
            for cache in [keys[layer], values[layer]] {
                for head in 0..<kvHeadCount {
                    (cache + head * capacity * rowBytes).copyMemory(from: base + offset, byteCount: used)
                    offset += used
                }
            }
        }
        length = positions
    }
}
