import CMobileLLMKernels

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

    /// The type a session gets when it names none: f32 for float weights (exact), f16 for block-quantized weights
    /// (whose own rounding dominates).
    static func automatic(quantizedWeights: Bool) -> KVCacheType { quantizedWeights ? .f16 : .f32 }

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

/// One block of `KVCache.pagePositions` consecutive positions: for every layer its K and then its V rows, each
/// `[kvHeads, pagePositions, rowBytes]`. Pages are shared by forked caches (read-only prefix blocks) and copied by
/// the first cache that writes into a shared one.
final class KVPage: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int) {
        self.byteCount = byteCount
        base = .allocate(byteCount: byteCount, alignment: 64)
    }

    /// A copy of `other`'s bytes.
    init(copying other: KVPage) {
        byteCount = other.byteCount
        base = .allocate(byteCount: byteCount, alignment: 64)
        base.copyMemory(from: other.base, byteCount: byteCount)
    }

    deinit { base.deallocate() }
}

/// The keys and values one sequence has cached, in pages of `pagePositions` positions allocated as the sequence
/// grows: a session of capacity 32K that has used 1K positions holds 4 pages, not 32K positions of memory.
///
/// A cache has a fixed capacity and a `length`: positions `0..<length` hold the sequence so far. The forward pass
/// `reserve`s and `store`s rows at positions from `length` on and the owner then `advance`s or `rewind`s. Addressed
/// per position and head, so attention over a batch of (sequence, position) rows can read each row's own cache.
/// `fork()` shares every page with the copy; a write into a shared page copies it first (copy on write), so a
/// forked prefix costs no memory until one side rewinds into it. Not thread-safe for writes: one forward pass at a
/// time writes a cache (attention threads only read it).
public final class KVCache: @unchecked Sendable {
    /// Positions per page, equal to the attention segment so that a segment's rows are contiguous in one page.
    static let pagePositions = Attention.segment

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
    /// Bytes of one page.
    let pageBytes: Int
    /// Allocated pages, in position order; page `i` holds positions `i * pagePositions ..< (i + 1) * pagePositions`.
    private var pages: [KVPage] = []

    /// A cache of `capacity` positions for a model of configuration `c`, after checking that it and `extraBytes` of
    /// other scratch would fit in this machine's memory when full (a huge context then fails with an error naming the
    /// largest that fits, instead of an allocation failure that would end the process). Memory is allocated page by
    /// page as positions are reserved.
    init(configuration c: ModelConfiguration, capacity: Int, type: KVCacheType, extraBytes: Int = 0) throws {
        guard type.rowBytes(c.headDimension) > 0 else {
            throw MobileLLMError.invalidArgument(name: "kvCacheType", problem: "\(type.rawValue) needs a head dimension that is a multiple of 32, found \(c.headDimension)")
        }
        let perPosition = Self.bytesPerPosition(configuration: c, type: type)
        let (bytes, overflow) = perPosition.multipliedReportingOverflow(by: capacity)
        let memory = Int(clamping: Platform.physicalMemory)
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
        pageBytes = Self.pageBytes(configuration: c, type: type)
    }

    /// Bytes of one page: `pagePositions` positions of `bytesPerPosition`.
    static func pageBytes(configuration c: ModelConfiguration, type: KVCacheType) -> Int {
        Self.pagePositions * bytesPerPosition(configuration: c, type: type)
    }

    /// Pages that positions `0..<positions` occupy.
    static func pageCount(positions: Int) -> Int { (max(0, positions) + pagePositions - 1) / pagePositions }

    /// A cache holding the same positions as `other`, sharing its pages until either side writes into one.
    private init(sharing other: KVCache) {
        type = other.type
        capacity = other.capacity
        length = other.length
        layerCount = other.layerCount
        kvHeadCount = other.kvHeadCount
        headDimension = other.headDimension
        rowBytes = other.rowBytes
        pageBytes = other.pageBytes
        pages = other.pages
    }

    /// A copy of the cache that shares its pages (see the type's discussion).
    func fork() -> KVCache { KVCache(sharing: self) }

    /// Bytes of K and V, over all layers, for one position: layers × 2 × KV heads × the bytes of one head row of
    /// `type` (head dimension × bytes per element, or Q8_0 blocks).
    public static func bytesPerPosition(configuration c: ModelConfiguration, type: KVCacheType) -> Int {
        2 * c.layerCount * c.kvHeadCount * type.rowBytes(c.headDimension)
    }

    /// Bytes of K and V the attention of one token at `position` reads from a cache of `type`, over all layers: a
    /// layer reads every position `0...position`, or, with a chunked-attention window (Llama-4 `chunkSize`), only
    /// the positions of the token's own chunk up to it; each position is 2 (K and V) × KV heads × one head row.
    public static func bytesRead(configuration c: ModelConfiguration, type: KVCacheType, position: Int) -> Int {
        let perLayer = 2 * c.kvHeadCount * type.rowBytes(c.headDimension)
        var positions = 0
        for layer in 0..<c.layerCount {
            let chunk = layer < c.layers.count ? c.layers[layer].chunkSize : nil
            positions += chunk.map { $0 > 0 ? position % $0 + 1 : position + 1 } ?? position + 1
        }
        return positions * perLayer
    }

    /// Bytes the allocated pages occupy (pages shared with a fork count in both).
    public var byteCount: Int { pages.count * pageBytes }

    /// Bytes the cache would occupy with every position allocated.
    public var capacityByteCount: Int { 2 * layerCount * kvHeadCount * rowBytes * capacity }

    /// Allocates the pages positions `0..<end` need (`end` at most `capacity`), so that `store` can write them.
    func reserve(through end: Int) {
        let needed = Self.pageCount(positions: min(end, capacity))
        while pages.count < needed { pages.append(KVPage(byteCount: pageBytes)) }
    }

    /// Offset of (layer, K or V, head, position) inside its page.
    @inline(__always)
    private func offset(layer: Int, value: Bool, head: Int, position: Int) -> Int {
        (((layer * 2 + (value ? 1 : 0)) * kvHeadCount + head) * Self.pagePositions + position % Self.pagePositions) * rowBytes
    }

    /// Writes one position's K and V (`[kvHeads, headDim]` f32 each) of `layer`, converted to the cache's type. The
    /// position's page must be reserved; a page shared with a fork is copied first.
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let index = position / Self.pagePositions
        if !isKnownUniquelyReferenced(&pages[index]) { pages[index] = KVPage(copying: pages[index]) }
        let base = pages[index].base
        for head in 0..<kvHeadCount {
            convert(key + head * headDimension, into: base + offset(layer: layer, value: false, head: head, position: position))
            convert(value + head * headDimension, into: base + offset(layer: layer, value: true, head: head, position: position))
        }
    }

    private func convert(_ source: UnsafePointer<Float>, into destination: UnsafeMutableRawPointer) {
        switch type {
        case .f32: destination.assumingMemoryBound(to: Float.self).update(from: source, count: headDimension)
        case .f16: mlk_convert_f32_to_f16(source, Int64(headDimension), destination.assumingMemoryBound(to: UInt16.self))
        case .q8_0: mlk_q_quantize_rows(QuantType.q8_0.rawValue, source, 1, Int64(headDimension), destination)
        }
    }

    /// The cached K rows of `layer` for KV head `head` from `position` on: consecutive rows of `rowBytes`, valid up
    /// to the end of `position`'s page (attention segments never cross a page).
    func keys(layer: Int, head: Int, from position: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(pages[position / Self.pagePositions].base + offset(layer: layer, value: false, head: head, position: position))
    }

    /// See `keys(layer:head:from:)`.
    func values(layer: Int, head: Int, from position: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(pages[position / Self.pagePositions].base + offset(layer: layer, value: true, head: head, position: position))
    }

    /// Marks positions up to `newLength` as stored (after a forward pass wrote them).
    func advance(to newLength: Int) { length = min(capacity, max(length, newLength)) }

    /// Forgets every position from `newLength` on (their bytes are overwritten by the next stores), and frees the
    /// pages no position below `newLength` uses.
    func rewind(to newLength: Int) {
        length = max(0, min(length, newLength))
        let kept = (length + Self.pagePositions - 1) / Self.pagePositions
        if pages.count > kept { pages.removeSubrange(kept...) }
    }

    // MARK: - Serialization

    /// Bytes `write(positions:to:)` writes for `positions` positions.
    func serializedByteCount(positions: Int) -> Int { 2 * layerCount * kvHeadCount * positions * rowBytes }

    /// Calls `body(layer, isValue, head, rows, count)` for every run of consecutive cached rows of the first
    /// `positions` positions, in serialization order (per layer K then V, per head its positions).
    private func forEachRun(positions: Int, _ body: (UnsafeMutableRawPointer, Int) -> Void) {
        for layer in 0..<layerCount {
            for isValue in [false, true] {
                for head in 0..<kvHeadCount {
                    var position = 0
                    while position < positions {
                        let count = min(positions - position, Self.pagePositions - position % Self.pagePositions)
                        body(pages[position / Self.pagePositions].base + offset(layer: layer, value: isValue, head: head, position: position), count)
                        position += count
                    }
                }
            }
        }
    }

    /// Writes the first `positions` positions (per layer K then V, per head its rows) to `base`; returns the bytes.
    func write(positions: Int, to base: UnsafeMutableRawPointer) -> Int {
        var offset = 0
        forEachRun(positions: positions) { rows, count in
            (base + offset).copyMemory(from: rows, byteCount: count * rowBytes)
            offset += count * rowBytes
        }
        return offset
    }

    /// Reads `positions` positions in `write`'s layout from `base` (which must hold
    /// `serializedByteCount(positions:)` bytes) and sets the length to them.
    func read(positions: Int, from base: UnsafeRawPointer) {
        rewind(to: 0)
        reserve(through: positions)
        var offset = 0
        forEachRun(positions: positions) { rows, count in
            rows.copyMemory(from: base + offset, byteCount: count * rowBytes)
            offset += count * rowBytes
        }
        length = positions
    }
}
