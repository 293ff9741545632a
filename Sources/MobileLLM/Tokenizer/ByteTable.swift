/// An open-addressing hash map from byte strings to `Int32`, storing keys in one contiguous arena. Used for the
/// vocabulary (raw token bytes → id) and the per-call BPE cache; it avoids Swift `String` hashing (which is
/// Unicode-aware and much slower) on the hot path.
struct ByteTable {
    private var slots: [Int32]          // index into entries, -1 = empty
    private var hashes: [UInt32]
    private var starts: [Int32]
    private var lengths: [Int32]
    private var values: [Int32]
    private var arena: [UInt8]
    private var mask: Int

    /// Number of keys stored.
    private(set) var count = 0

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        mask = size - 1
        hashes = []; starts = []; lengths = []; values = []; arena = []
        hashes.reserveCapacity(capacity); starts.reserveCapacity(capacity)
        lengths.reserveCapacity(capacity); values.reserveCapacity(capacity)
    }

    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt32 {
        // FNV-1a, then a final avalanche.
        var h: UInt32 = 2_166_136_261
        for byte in key { h = (h ^ UInt32(byte)) &* 16_777_619 }
        h ^= h >> 15
        h = h &* 0x2C1B_3C6D
        h ^= h >> 12
        return h
    }

    /// The value stored for `key`, if any.
    @inline(__always)
    func get(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let h = Self.hash(key)
        var slot = Int(h) & mask
        return arena.withUnsafeBufferPointer { arenaBuffer -> Int32? in
            while true {
                let entry = Int(slots[slot])
                if entry < 0 { return nil }
                if hashes[entry] == h && Int(lengths[entry]) == key.count {
                    let start = Int(starts[entry])
                    var equal = true
                    var index = 0
                    while index < key.count {
                        if arenaBuffer[start + index] != key[index] { equal = false; break }
                        index += 1
                    }
                    if equal { return values[entry] }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// The value stored for `key`, if any.
    func get(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { get($0) }
    }

    /// Stores `value` for `key` unless the key is present; returns false when it was already present.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Bool {
        if (count + 1) * 2 > slots.count { grow() }
        let h = Self.hash(key)
        var slot = Int(h) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { break }
            if hashes[entry] == h && Int(lengths[entry]) == key.count {
                let start = Int(starts[entry])
                if arena.withUnsafeBufferPointer({ a in (0..<key.count).allSatisfy { a[start + $0] == key[$0] } }) {
                    return false
                }
            }
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(count)
        hashes.append(h)
        starts.append(Int32(arena.count))
        lengths.append(Int32(key.count))
        values.append(value)
        arena.append(contentsOf: key)
        count += 1
        return true
    }

    /// Stores `value` for `key` unless the key is present.
    @discardableResult
    mutating func insert(_ key: [UInt8], value: Int32) -> Bool {
        key.withUnsafeBufferPointer { insert($0, value: value) }
    }

    /// Removes everything, keeping the table size.
    mutating func removeAll() {
        for index in slots.indices { slots[index] = -1 }
        hashes.removeAll(keepingCapacity: true); starts.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true); values.removeAll(keepingCapacity: true)
        arena.removeAll(keepingCapacity: true)
        count = 0
    }

    /// Bytes of the key arena (to bound cache memory).
    var arenaBytes: Int { arena.count }

    private mutating func grow() {
        let size = slots.count * 2
        slots = Array(repeating: -1, count: size)
        mask = size - 1
        for entry in 0..<count {
            var slot = Int(hashes[entry]) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(entry)
        }
    }
}

/// An open-addressing hash map from a pair of token ids to the merge (rank, resulting id).
struct MergeTable {
    private var keys: [UInt64]
    private var ranks: [Int32]
    private var results: [Int32]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: Self.empty, count: size)
        ranks = Array(repeating: 0, count: size)
        results = Array(repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h) & mask
    }

    /// The merge of `left` followed by `right`, if the merges list has it.
    @inline(__always)
    func get(_ left: Int32, _ right: Int32) -> (rank: Int32, result: Int32)? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var slot = Self.slot(key, mask)
        while true {
            let stored = keys[slot]
            if stored == key { return (ranks[slot], results[slot]) }
            if stored == Self.empty { return nil }
            slot = (slot + 1) & mask
        }
    }

    /// Stores a merge; a pair listed twice keeps its last entry, as HF's map built from the merges list does.
    mutating func insert(_ left: Int32, _ right: Int32, rank: Int32, result: Int32) {
        if (count + 1) * 2 > keys.count { grow() }
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var slot = Self.slot(key, mask)
        while true {
            let stored = keys[slot]
            if stored == key { ranks[slot] = rank; results[slot] = result; return }
            if stored == Self.empty { break }
            slot = (slot + 1) & mask
        }
        keys[slot] = key
        ranks[slot] = rank
        results[slot] = result
        count += 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldRanks = ranks, oldResults = results
        let size = keys.count * 2
        keys = Array(repeating: Self.empty, count: size)
        ranks = Array(repeating: 0, count: size)
        results = Array(repeating: 0, count: size)
        mask = size - 1
        count = 0
        for index in oldKeys.indices where oldKeys[index] != Self.empty {
            let left = Int32(bitPattern: UInt32(truncatingIfNeeded: oldKeys[index] >> 32))
            let right = Int32(bitPattern: UInt32(truncatingIfNeeded: oldKeys[index]))
            insert(left, right, rank: oldRanks[index], result: oldResults[index])
        }
    }
}
