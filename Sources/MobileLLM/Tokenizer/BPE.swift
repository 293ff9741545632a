/// Byte-level BPE: a vocabulary of raw byte strings and ranked merges of id pairs. Works on raw bytes (the
/// byte-level spelling is a bijection, decoded once at load), so the hot path never builds Swift strings.
struct BytePairModel: Sendable {
    /// Raw token bytes → id, for tokens spelled entirely in the byte-level alphabet.
    let vocabulary: ByteTable
    /// The id of each single byte, -1 when the vocabulary lacks it (HF then drops the byte: no unk token).
    let byteIDs: [Int32]
    /// (left id, right id) → (rank, merged id).
    let merges: MergeTable
    /// A pre-token that is already a vocabulary entry becomes that one token without merging (`ignore_merges`).
    let ignoreMerges: Bool

    /// Appends the ids of one pre-token to `output`. `work` is reusable scratch space.
    @inline(__always)
    func encode(_ piece: UnsafeBufferPointer<UInt8>, into output: inout [Int32], work: inout BPEWork) {
        if piece.count == 1 {
            let id = byteIDs[Int(piece[0])]
            if id >= 0 { output.append(id) }
            return
        }
        if ignoreMerges, let id = vocabulary.get(piece) {
            output.append(id)
            return
        }
        work.symbols.removeAll(keepingCapacity: true)
        for byte in piece {
            let id = byteIDs[Int(byte)]
            if id >= 0 { work.symbols.append(id) }
        }
        if work.symbols.count > 48 {
            mergeWithHeap(&work)
        } else {
            mergeByScan(&work)
        }
        output.append(contentsOf: work.symbols)
    }

    /// Repeatedly merges the best-ranked adjacent pair (leftmost on ties), keeping each pair's rank in an array
    /// so a step costs two lookups plus a scan. O(n²) in the worst case; used for short pieces.
    func mergeByScan(_ work: inout BPEWork) {
        let count = work.symbols.count
        if count < 2 { return }
        work.ranks.removeAll(keepingCapacity: true)
        work.results.removeAll(keepingCapacity: true)
        for index in 0..<(count - 1) {
            if let merge = merges.get(work.symbols[index], work.symbols[index + 1]) {
                work.ranks.append(merge.rank); work.results.append(merge.result)
            } else {
                work.ranks.append(Int32.max); work.results.append(-1)
            }
        }
        work.symbols.withUnsafeMutableBufferPointer { symbols in
            work.ranks.withUnsafeMutableBufferPointer { ranks in
                work.results.withUnsafeMutableBufferPointer { results in
                    var n = count
                    while n > 1 {
                        var best = Int32.max
                        var bestIndex = -1
                        for index in 0..<(n - 1) where ranks[index] < best {
                            best = ranks[index]
                            bestIndex = index
                        }
                        if bestIndex < 0 { break }
                        symbols[bestIndex] = results[bestIndex]
                        // Remove symbol bestIndex+1 and pair bestIndex (the pair slot bestIndex is recomputed).
                        var index = bestIndex + 1
                        while index < n - 1 {
                            symbols[index] = symbols[index + 1]
                            index += 1
                        }
                        index = bestIndex
                        while index < n - 2 {
                            ranks[index] = ranks[index + 1]
                            results[index] = results[index + 1]
                            index += 1
                        }
                        n -= 1
                        if bestIndex < n - 1 {
                            if let merge = merges.get(symbols[bestIndex], symbols[bestIndex + 1]) {
                                ranks[bestIndex] = merge.rank; results[bestIndex] = merge.result
                            } else {
                                ranks[bestIndex] = Int32.max; results[bestIndex] = -1
                            }
                        }
                        if bestIndex > 0 {
                            if let merge = merges.get(symbols[bestIndex - 1], symbols[bestIndex]) {
                                ranks[bestIndex - 1] = merge.rank; results[bestIndex - 1] = merge.result
                            } else {
                                ranks[bestIndex - 1] = Int32.max; results[bestIndex - 1] = -1
                            }
                        }
                    }
                    work.length = n
                }
            }
        }
        work.symbols.removeLast(count - work.length)
    }

    /// The same merge order with a binary heap of (rank, position) over a linked list of symbols, as HF's
    /// `Word::merge_all`: O(n log n) for long pieces (a CJK paragraph is one pre-token).
    func mergeWithHeap(_ work: inout BPEWork) {
        let count = work.symbols.count
        work.next = Array(1...count)
        work.previous = Array(-1..<(count - 1))
        work.heap.removeAll(keepingCapacity: true)
        for index in 0..<(count - 1) {
            if let merge = merges.get(work.symbols[index], work.symbols[index + 1]) {
                work.heapPush(UInt64(UInt32(merge.rank)) << 32 | UInt64(index))
            }
        }
        var alive = [Bool](repeating: true, count: count)
        while let top = work.heapPop() {
            let rank = Int32(truncatingIfNeeded: top >> 32)
            let position = Int(top & 0xFFFF_FFFF)
            guard alive[position] else { continue }
            let right = work.next[position]
            guard right < count else { continue }
            guard let merge = merges.get(work.symbols[position], work.symbols[right]), merge.rank == rank else { continue }
            work.symbols[position] = merge.result
            alive[right] = false
            let afterRight = work.next[right]
            work.next[position] = afterRight
            if afterRight < count { work.previous[afterRight] = position }
            let left = work.previous[position]
            if left >= 0, let newMerge = merges.get(work.symbols[left], work.symbols[position]) {
                work.heapPush(UInt64(UInt32(newMerge.rank)) << 32 | UInt64(left))
            }
            if afterRight < count, let newMerge = merges.get(work.symbols[position], work.symbols[afterRight]) {
                work.heapPush(UInt64(UInt32(newMerge.rank)) << 32 | UInt64(position))
            }
        }
        var merged: [Int32] = []
        var index = 0
        while index < count {
            merged.append(work.symbols[index])
            index = work.next[index]
        }
        work.symbols = merged
    }
}

/// Scratch buffers for BPE, reused across pieces of one encode call.
struct BPEWork {
    var symbols: [Int32] = []
    var ranks: [Int32] = []
    var results: [Int32] = []
    var length = 0
    var next: [Int] = []
    var previous: [Int] = []
    var heap: [UInt64] = []

    mutating func heapPush(_ value: UInt64) {
        heap.append(value)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent] <= heap[child] { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    mutating func heapPop() -> UInt64? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = parent * 2 + 1
            if left >= heap.count { break }
            var smallest = left
            if left + 1 < heap.count && heap[left + 1] < heap[left] { smallest = left + 1 }
            if heap[parent] <= heap[smallest] { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
