// A tokenizer's vocabulary as a byte trie laid out in depth-first order, for computing token masks, and the masks.

/// The vocabulary of one tokenizer as a trie of token byte strings, in preorder: node i has one byte, a depth
/// (1 for the first byte of a token), `nodeNext[i]` (the first node after its subtree) and the tokens whose bytes end
/// at it. Special tokens and tokens without bytes are left out: a grammar never allows them. Immutable and shared by
/// every grammar used with the tokenizer.
final class TokenTrie: Sendable {
    let vocabularySize: Int
    let nodeBytes: [UInt8]
    let nodeDepth: [UInt16]
    let nodeNext: [Int32]
    /// Tokens of node i: `tokenIDs[tokenStart[i]..<tokenStart[i + 1]]`.
    let tokenStart: [Int32]
    let tokenIDs: [Int32]
    let maximumDepth: Int
    /// Each token's bytes: `bytes[offsets[id]..<offsets[id + 1]]`.
    let bytes: [UInt8]
    let offsets: [Int32]
    /// Special tokens (never allowed unless they are end tokens).
    let special: [Bool]

    init(tokenizer: Tokenizer) {
        let count = tokenizer.vocabularySize
        vocabularySize = count
        bytes = tokenizer.decodedBytes
        offsets = tokenizer.decodedOffsets
        special = (0..<count).map { tokenizer.specialFlags[$0] || !tokenizer.present[$0] }
        let bytes = self.bytes, offsets = self.offsets
        // Tokens sorted by their bytes; equal strings stay together.
        // Tokens longer than a depth can count are left out too (no real vocabulary has one).
        var order = (0..<Int32(count)).filter {
            let length = offsets[Int($0) + 1] - offsets[Int($0)]
            return !tokenizer.specialFlags[Int($0)] && tokenizer.present[Int($0)] && length > 0 && length <= Int32(UInt16.max)
        }
        bytes.withUnsafeBufferPointer { buffer in
            order.sort { a, b in
                let aStart = Int(offsets[Int(a)]), aEnd = Int(offsets[Int(a) + 1])
                let bStart = Int(offsets[Int(b)]), bEnd = Int(offsets[Int(b) + 1])
                let common = min(aEnd - aStart, bEnd - bStart)
                for index in 0..<common {
                    let x = buffer[aStart + index], y = buffer[bStart + index]
                    if x != y { return x < y }
                }
                return aEnd - aStart < bEnd - bStart || (aEnd - aStart == bEnd - bStart && a < b)
            }
        }
        var nodeBytes: [UInt8] = [], nodeDepth: [UInt16] = [], nodeNext: [Int32] = [], tokenStart: [Int32] = []
        var tokenIDs: [Int32] = []
        tokenIDs.reserveCapacity(order.count)
        // The nodes along the current path (path[d] is the node at depth d + 1).
        var path: [Int] = []
        var previous: (start: Int, end: Int) = (0, 0)
        var deepest = 0
        for token in order {
            let start = Int(offsets[Int(token)]), end = Int(offsets[Int(token) + 1])
            let length = end - start
            var common = 0
            let limit = min(length, previous.end - previous.start, path.count)
            while common < limit, bytes[start + common] == bytes[previous.start + common] { common += 1 }
            // Close the nodes below the common prefix.
            while path.count > common {
                nodeNext[path.removeLast()] = Int32(nodeBytes.count)
            }
            for depth in common..<length {
                path.append(nodeBytes.count)
                nodeBytes.append(bytes[start + depth])
                nodeDepth.append(UInt16(depth + 1))
                nodeNext.append(0)
                tokenStart.append(Int32(tokenIDs.count))
            }
            tokenIDs.append(token)
            deepest = max(deepest, length)
            previous = (start, start + length)
        }
        while let node = path.popLast() { nodeNext[node] = Int32(nodeBytes.count) }
        tokenStart.append(Int32(tokenIDs.count))
        self.nodeBytes = nodeBytes
        self.nodeDepth = nodeDepth
        self.nodeNext = nodeNext
        self.tokenStart = tokenStart
        self.tokenIDs = tokenIDs
        maximumDepth = deepest
    }

    /// The bytes of token `id` (empty for ids outside the vocabulary).
    func tokenBytes(_ id: Int32) -> ArraySlice<UInt8> {
        guard id >= 0, Int(id) < vocabularySize else { return [] }
        return bytes[Int(offsets[Int(id)])..<Int(offsets[Int(id) + 1])]
    }

    /// The trie of `tokenizer`, built once per tokenizer object and shared while it lives.
    static func shared(for tokenizer: Tokenizer) -> TokenTrie {
        let id = ObjectIdentifier(tokenizer)
        if let trie = cache.withLock({ entries -> TokenTrie? in
            guard let entry = entries[id], entry.tokenizer === tokenizer else { return nil }
            return entry.trie
        }) {
            return trie
        }
        let trie = TokenTrie(tokenizer: tokenizer)
        return cache.withLock { entries in
            // Forget tries whose tokenizer is gone.
            entries = entries.filter { $0.value.tokenizer != nil }
            if let entry = entries[id], entry.tokenizer === tokenizer { return entry.trie }
            entries[id] = CacheEntry(tokenizer: tokenizer, trie: trie)
            return trie
        }
    }

    private struct CacheEntry {
        weak var tokenizer: Tokenizer?
        let trie: TokenTrie
    }

    private static let cache = Locked<[ObjectIdentifier: CacheEntry]>([:])
}

/// The tokens allowed at one matcher position: a bitset over the vocabulary, with the allowed ids listed too when
/// there are few of them (then applying it touches only those).
final class TokenMask: Sendable {
    let words: [UInt64]
    let allowedCount: Int
    let vocabularySize: Int
    /// The allowed ids in increasing order when there are at most `sparseLimit`; nil otherwise.
    let sparse: [Int32]?

    static let sparseLimit = 4096

    init(words: [UInt64], allowedCount: Int, vocabularySize: Int) {
        self.words = words
        self.allowedCount = allowedCount
        self.vocabularySize = vocabularySize
        if allowedCount <= TokenMask.sparseLimit {
            var ids: [Int32] = []
            ids.reserveCapacity(allowedCount)
            for (index, word) in words.enumerated() where word != 0 {
                var bits = word
                while bits != 0 {
                    ids.append(Int32(index * 64 + bits.trailingZeroBitCount))
                    bits &= bits - 1
                }
            }
            sparse = ids
        } else {
            sparse = nil
        }
    }

    var byteCount: Int { words.count * 8 + (sparse?.count ?? 0) * 4 + 64 }

    @inline(__always) func allows(_ token: Int) -> Bool {
        token >= 0 && token < vocabularySize && words[token >> 6] >> UInt64(token & 63) & 1 != 0
    }

    /// Clears `allowed[t]` for every t this mask does not allow (ids past the vocabulary included).
    func apply(to allowed: inout [Bool]) {
        allowed.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let count = buffer.count
            if let sparse {
                // Keep the allowed entries' values, clear everything, put them back.
                var kept = [Bool](repeating: false, count: sparse.count)
                for (slot, id) in sparse.enumerated() where Int(id) < count { kept[slot] = base[Int(id)] }
                buffer.update(repeating: false)
                for (slot, id) in sparse.enumerated() where Int(id) < count { base[Int(id)] = kept[slot] }
                return
            }
            words.withUnsafeBufferPointer { words in
                let covered = min(count, vocabularySize)
                var index = 0
                while index < covered {
                    let word = words[index >> 6]
                    let end = min(index + 64, covered)
                    if word == .max {
                        index = end
                        continue
                    }
                    if word == 0 {
                        (base + index).update(repeating: false, count: end - index)
                        index = end
                        continue
                    }
                    while index < end {
                        if word >> UInt64(index & 63) & 1 == 0 { base[index] = false }
                        index += 1
                    }
                }
                if count > covered { (base + covered).update(repeating: false, count: count - covered) }
            }
        }
    }
}
