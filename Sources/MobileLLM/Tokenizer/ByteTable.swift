/// An open-addressing hash map from byte strings to `Int32`, storing keys in one contiguous arena. Used for the
/// vocabulary (raw token bytes → id) and the per-call BPE cache; it avoids Swift `String` hashing (which is
/// Unicode-aware and much slower) on the hot path.
struct ByteTable {
    /// One stored key: its place in the arena and its value.
    struct Entry {
        var start: UInt32
        var length: UInt32
        var value: Int32
    }

    /// Per slot: hash in the high 32 bits, entry index + 1 in the low 32 bits; 0 = empty. One cache line per probe.
    private var slots: [UInt64]
    private var entries: [Entry]
    private var arena: [UInt8]
    private var mask: Int

    /// Number of keys stored.
    var count: Int { entries.count }

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: 0, count: size)
        mask = size - 1
        entries = []
        entries.reserveCapacity(capacity)
        arena = []
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

    /// The slot holding `key`, or the empty slot where it would go, and whether it was found.
    @inline(__always)
    private func find(_ key: UnsafeBufferPointer<UInt8>, _ h: UInt32) -> (slot: Int, entry: Int) {
        var slot = Int(h) & mask
        return slots.withUnsafeBufferPointer { slotBuffer in
            entries.withUnsafeBufferPointer { entryBuffer in
                arena.withUnsafeBufferPointer { arenaBuffer in
                    while true {
                        let stored = slotBuffer[slot]
                        if stored == 0 { return (slot, -1) }
                        if UInt32(truncatingIfNeeded: stored >> 32) == h {
                            let index = Int(truncatingIfNeeded: stored & 0xFFFF_FFFF) - 1
                            let entry = entryBuffer[index]
                            if Int(entry.length) == key.count {
                                let start = Int(entry.start)
                                var equal = true
                                var position = 0
                                while position < key.count {
                                    if arenaBuffer[start + position] != key[position] { equal = false; break }
                                    position += 1
                                }
                                if equal { return (slot, index) }
                            }
                        }
                        slot = (slot + 1) & mask
                    }
                }
            }
        }
    }

    /// The value stored for `key`, if any.
    @inline(__always)
    func get(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let found = find(key, Self.hash(key))
        return found.entry >= 0 ? entries[found.entry].value : nil
    }

    /// The value stored for `key`, if any.
    func get(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { get($0) }
    }

    /// Stores `value` for `key` unless the key is present; returns false when it was already present.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Bool {
        if (entries.count + 1) * 2 > slots.count { grow() }
        let h = Self.hash(key)
        let found = find(key, h)
        if found.entry >= 0 { return false }
        entries.append(Entry(start: UInt32(arena.count), length: UInt32(key.count), value: value))
        slots[found.slot] = UInt64(h) << 32 | UInt64(entries.count)
        arena.append(contentsOf: key)
        return true
    }

    /// Stores `value` for `key` unless the key is present.
    @discardableResult
    mutating func insert(_ key: [UInt8], value: Int32) -> Bool {
        key.withUnsafeBufferPointer { insert($0, value: value) }
    }

    /// Removes everything, keeping the table size.
    mutating func removeAll() {
        for index in slots.indices { slots[index] = 0 }
        entries.removeAll(keepingCapacity: true)
        arena.removeAll(keepingCapacity: true)
    }

    /// Bytes of the key arena (to bound cache memory).
    var arenaBytes: Int { arena.count }

    private mutating func grow() {
        let size = slots.count * 2
        var newSlots = [UInt64](repeating: 0, count: size)
        let newMask = size - 1
        for stored in slots where stored != 0 {
            var slot = Int(truncatingIfNeeded: stored >> 32) & newMask
            while newSlots[slot] != 0 { slot = (slot + 1) & newMask }
            newSlots[slot] = stored
        }
        slots = newSlots
        mask = newMask
    }
}

/// An open-addressing hash map from a pair of token ids to the merge (rank, resulting id).
struct MergeTable {
    struct Slot {
        var key: UInt64
        var rank: Int32
        var result: Int32
    }

    private var slots: [Slot]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size * 3 < capacity * 5 { size <<= 1 }   // load factor at most 0.6
        slots = Array(repeating: Slot(key: Self.empty, rank: 0, result: 0), count: size)
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
        var index = Self.slot(key, mask)
        return slots.withUnsafeBufferPointer { buffer in
            while true {
                let stored = buffer[index]
                if stored.key == key { return (stored.rank, stored.result) }
                if stored.key == Self.empty { return nil }
                index = (index + 1) & mask
            }
        }
    }

    /// Stores a merge; a pair listed twice keeps its last entry, as HF's map built from the merges list does.
    mutating func insert(_ left: Int32, _ right: Int32, rank: Int32, result: Int32) {
        if (count + 1) * 5 > slots.count * 3 { grow() }
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var index = Self.slot(key, mask)
        while true {
            let stored = slots[index].key
            if stored == key { slots[index].rank = rank; slots[index].result = result; return }
            if stored == Self.empty { break }
            index = (index + 1) & mask
        }
        slots[index] = Slot(key: key, rank: rank, result: result)
        count += 1
    }

    private mutating func grow() {
        let old = slots
        let size = slots.count * 2
        slots = Array(repeating: Slot(key: Self.empty, rank: 0, result: 0), count: size)
        mask = size - 1
        count = 0
        for slot in old where slot.key != Self.empty {
            insert(Int32(bitPattern: UInt32(truncatingIfNeeded: slot.key >> 32)),
                   Int32(bitPattern: UInt32(truncatingIfNeeded: slot.key)), rank: slot.rank, result: slot.result)
        }
    }
}

/// A load-time index from token spellings (UTF-8 bytes) to ids, over spellings stored in id order. Keys of up to
/// 8 bytes are kept inside the 16-byte slot, so most lookups touch one cache line.
struct SpellingIndex {
    struct Slot {
        var word: UInt64     // the key's first 8 bytes, zero-padded
        var tag: UInt32      // hash << 8 | min(length, 255); 0 = empty (keys are never empty)
        var id: Int32
    }

    private var slots: [Slot]
    private let mask: Int
    /// Spelling bytes of every id: `arena[offsets[id]..<offsets[id + 1]]`.
    let arena: [UInt8]
    let offsets: [Int]

    /// Indexes `arena`/`offsets` (ids without a spelling have an empty range and are left out).
    init(arena: [UInt8], offsets: [Int]) {
        self.arena = arena
        self.offsets = offsets
        let count = offsets.count - 1
        var size = 16
        while size < count * 2 { size <<= 1 }
        mask = size - 1
        slots = Array(repeating: Slot(word: 0, tag: 0, id: 0), count: size)
        arena.withUnsafeBufferPointer { buffer in
            for id in 0..<max(count, 0) where offsets[id + 1] > offsets[id] {
                let key = UnsafeBufferPointer(rebasing: buffer[offsets[id]..<offsets[id + 1]])
                let (word, tag) = Self.signature(key)
                var slot = Int(tag >> 8) & mask
                var duplicate = false
                while slots[slot].tag != 0 {
                    if slots[slot].tag == tag && equal(key, word, slots[slot]) { duplicate = true; break }
                    slot = (slot + 1) & mask
                }
                if !duplicate { slots[slot] = Slot(word: word, tag: tag, id: Int32(id)) }
            }
        }
    }

    @inline(__always)
    static func signature(_ key: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt32) {
        var word: UInt64 = 0
        for index in 0..<min(key.count, 8) { word |= UInt64(key[index]) << (8 * UInt64(index)) }
        let hash = ByteTable.hash(key)
        return (word, (hash << 8) | UInt32(min(key.count, 255)))
    }

    @inline(__always)
    private func equal(_ key: UnsafeBufferPointer<UInt8>, _ word: UInt64, _ slot: Slot) -> Bool {
        guard slot.word == word else { return false }
        if key.count <= 8 { return true }
        let id = Int(slot.id)
        let start = offsets[id]
        guard offsets[id + 1] - start == key.count else { return false }
        for index in 8..<key.count where arena[start + index] != key[index] { return false }
        return true
    }

    /// The id spelled `key`, if any.
    @inline(__always)
    func get(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard !key.isEmpty else { return nil }
        let (word, tag) = Self.signature(key)
        var slot = Int(tag >> 8) & mask
        while true {
            let stored = slots[slot]
            if stored.tag == 0 { return nil }
            if stored.tag == tag && equal(key, word, stored) { return stored.id }
            slot = (slot + 1) & mask
        }
    }
}
