import Foundation
import MobileLLM

/// Raw DEFLATE decompression (RFC 1951: stored, fixed-Huffman and dynamic-Huffman blocks), streaming with bounded
/// memory: a 64 KiB input buffer and a 32 KiB window plus a 256 KiB output buffer, whatever the data's size.
///
/// Every malformed stream — a bad block type, an over-subscribed or incomplete Huffman code, a distance before
/// the start of the output, a stored block whose length check fails, data that ends early — throws
/// `MobileLLMError.invalidFile` naming the stream and what was wrong; nothing traps.
public enum Inflate {
    /// What one stream used and produced.
    public struct Result: Sendable, Equatable {
        /// Compressed bytes the stream occupied (up to and including the byte holding its last bit).
        public var inputBytes: Int
        /// Decompressed bytes written.
        public var outputBytes: Int
    }

    /// Decompresses one raw DEFLATE stream.
    ///
    /// - Parameters:
    ///   - name: Names the stream in error messages (a file, or `archive.zip: member`).
    ///   - read: Fills the buffer with the next compressed bytes and returns how many; 0 means the data ended.
    ///     Bytes after the end of the stream may be read but are not used.
    ///   - write: Receives the decompressed bytes in order, in pieces of up to 256 KiB.
    /// - Throws: `MobileLLMError.invalidFile` for a malformed or truncated stream; whatever `read`/`write` throw.
    public static func inflate(name: String,
                               read: (UnsafeMutableRawBufferPointer) throws -> Int,
                               write: (UnsafeRawBufferPointer) throws -> Void) throws -> Result {
        try withoutActuallyEscaping(read) { read in
            try withoutActuallyEscaping(write) { write in
                var state = InflateState(name: name, read: read, write: write)
                defer { state.deallocate() }
                return try state.run()
            }
        }
    }

    /// Decompresses a whole raw DEFLATE stream held in memory.
    /// - Parameter limit: The most output to accept (throws beyond it), a guard against decompression bombs.
    /// - Throws: `MobileLLMError.invalidFile` for a malformed stream or output over `limit`.
    public static func inflate(_ compressed: [UInt8], name: String = "deflate stream", limit: Int = 1 << 30) throws -> [UInt8] {
        var output: [UInt8] = []
        var offset = 0
        _ = try inflate(name: name, read: { buffer in
            let n = min(buffer.count, compressed.count - offset)
            compressed.withUnsafeBytes { source in
                if n > 0, let base = source.baseAddress { buffer.copyMemory(from: UnsafeRawBufferPointer(start: base + offset, count: n)) }
            }
            offset += n
            return n
        }, write: { piece in
            guard output.count + piece.count <= limit else {
                throw MobileLLMError.invalidFile(path: name, field: "deflate stream", problem: "decompresses to more than \(limit) bytes")
            }
            output.append(contentsOf: piece)
        })
        return output
    }
}

/// A canonical Huffman decoding table: a direct lookup of the first `fastBits` bits for short codes, and the
/// code-length counts plus symbols in canonical order for longer codes (decoded bit by bit, as RFC 1951 3.2.2
/// assigns them).
struct HuffmanTable {
    /// Bits resolved by one lookup.
    static let fastBits = 10
    /// Entry for the next `fastBits` input bits: symbol << 4 | code length, or 0 for a code longer than
    /// `fastBits` (or no code).
    let fast: UnsafeMutablePointer<UInt16>
    /// counts[n]: how many codes have length n (1...15).
    let counts: UnsafeMutablePointer<UInt16>
    /// Symbols sorted by code length, then by value.
    let symbols: UnsafeMutablePointer<UInt16>

    init() {
        fast = .allocate(capacity: 1 << Self.fastBits)
        counts = .allocate(capacity: 16)
        symbols = .allocate(capacity: 320)
    }

    func deallocate() {
        fast.deallocate()
        counts.deallocate()
        symbols.deallocate()
    }

    /// Builds the table from code lengths (0 = symbol unused). `incompleteAllowed`: whether a code with fewer
    /// codes than the lengths could hold is accepted — as zlib, only when a single code of length 1 is defined
    /// (or none at all for distances); an incomplete code-length code is always an error.
    /// Returns a problem description, or nil on success.
    func build(lengths: UnsafePointer<UInt8>, count: Int, incompleteAllowed: Bool) -> String? {
        counts.initialize(repeating: 0, count: 16)
        for symbol in 0..<count { counts[Int(lengths[symbol])] += 1 }
        counts[0] = 0
        var left = 1
        var maxLength = 0
        for length in 1...15 {
            left <<= 1
            left -= Int(counts[length])
            if left < 0 { return "over-subscribed Huffman code (more codes of length \(length) than fit)" }
            if counts[length] > 0 { maxLength = length }
        }
        if left > 0 {
            let single = maxLength == 1 && counts[1] == 1
            guard incompleteAllowed, maxLength == 0 || single else { return "incomplete Huffman code" }
        }
        // Symbols in canonical order.
        var offsets = [Int](repeating: 0, count: 16)
        for length in 1..<15 { offsets[length + 1] = offsets[length] + Int(counts[length]) }
        for symbol in 0..<count where lengths[symbol] != 0 {
            let length = Int(lengths[symbol])
            symbols[offsets[length]] = UInt16(symbol)
            offsets[length] += 1
        }
        // The direct table: each code, bit-reversed (DEFLATE sends Huffman codes first bit first), repeated for
        // every value of the bits after it.
        fast.initialize(repeating: 0, count: 1 << Self.fastBits)
        var code = 0
        var index = 0
        for length in 1...Self.fastBits {
            for _ in 0..<Int(counts[length]) {
                var reversed = 0
                for bit in 0..<length where code & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
                let entry = UInt16(truncatingIfNeeded: Int(symbols[index]) << 4 | length)
                var slot = reversed
                while slot < 1 << Self.fastBits {
                    fast[slot] = entry
                    slot += 1 << length
                }
                code += 1
                index += 1
            }
            code <<= 1
        }
        return nil
    }
}

/// The decoder's state. Buffers are allocated once per stream; `deallocate()` frees them.
private struct InflateState {
    static let windowSize = 32768
    static let outputChunk = 1 << 18
    static let inputCapacity = 1 << 16
    /// Length symbols 257...285: base lengths and extra bits.
    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    /// Distance symbols 0...29: base distances and extra bits.
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                      4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    /// The order code-length code lengths are sent in (RFC 1951 3.2.7).
    static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    let name: String
    let read: (UnsafeMutableRawBufferPointer) throws -> Int
    let write: (UnsafeRawBufferPointer) throws -> Void

    // Input.
    let input: UnsafeMutablePointer<UInt8>
    var inputPosition = 0
    var inputEnd = 0
    var totalRead = 0
    var inputEnded = false
    /// Zero bytes appended past the end of the data so the bit buffer can be filled; using any of their bits
    /// means the stream was truncated.
    var paddingBytes = 0
    /// Bits not yet used, first bit in bit 0. Bits at and above `bitCount` may hold copies of the next input
    /// byte's bits (refill ORs whole words in); they are never read.
    var bitBuffer: UInt64 = 0
    var bitCount = 0

    // Output: [0, position) is the window plus not-yet-written output starting at `flushed`.
    let output: UnsafeMutablePointer<UInt8>
    var position = 0
    var flushed = 0
    var totalWritten = 0

    // Tables and scratch for dynamic blocks.
    let literals = HuffmanTable()
    let distances = HuffmanTable()
    let codeLengths = HuffmanTable()
    let lengths: UnsafeMutablePointer<UInt8>

    init(name: String, read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int,
         write: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.name = name
        self.read = read
        self.write = write
        input = .allocate(capacity: Self.inputCapacity)
        // Slack after the chunk: one match (258 bytes) plus the 8-byte copy overshoot.
        output = .allocate(capacity: Self.windowSize + Self.outputChunk + 512)
        lengths = .allocate(capacity: 320)
    }

    func deallocate() {
        input.deallocate()
        output.deallocate()
        lengths.deallocate()
        literals.deallocate()
        distances.deallocate()
        codeLengths.deallocate()
    }

    /// Compressed bytes used so far (a partly used byte counts).
    var consumedBytes: Int {
        totalRead - (inputEnd - inputPosition) - max(0, bitCount - 8 * paddingBytes) / 8
    }

    func fail(_ problem: String) -> MobileLLMError {
        .invalidFile(path: name, field: "deflate stream", problem: "\(problem) (near compressed byte \(max(0, consumedBytes)))")
    }

    mutating func run() throws -> Inflate.Result {
        var final = false
        while !final {
            try refill()
            final = take(1) == 1
            switch take(2) {
            case 0: try storedBlock()
            case 1:
                try buildFixedTables()
                try compressedBlock()
            case 2:
                try buildDynamicTables()
                try compressedBlock()
            default: throw fail("invalid block type 3")
            }
        }
        if bitCount < 8 * paddingBytes { throw fail("the compressed data ended inside the final block") }
        try flush()
        return Inflate.Result(inputBytes: consumedBytes, outputBytes: totalWritten)
    }

    // MARK: Bits

    /// Ensures at least 56 bits are buffered (zero padding past the end of the data).
    @inline(__always) mutating func refill() throws {
        if bitCount > 56 { return }
        if inputEnd - inputPosition >= 8 {
            let word = UnsafeRawPointer(input + inputPosition).loadUnaligned(as: UInt64.self).littleEndian
            bitBuffer |= word << UInt64(bitCount)
            inputPosition += (63 - bitCount) >> 3
            bitCount |= 56
        } else {
            try slowRefill()
        }
    }

    mutating func slowRefill() throws {
        bitBuffer &= bitCount == 0 ? 0 : ~UInt64(0) >> UInt64(64 - bitCount)
        while bitCount <= 56 {
            if inputPosition == inputEnd, !inputEnded { try fillInput() }
            if inputPosition < inputEnd {
                bitBuffer |= UInt64(input[inputPosition]) << UInt64(bitCount)
                inputPosition += 1
            } else {
                // More than 8 padding bytes means at least one padding bit was used.
                paddingBytes += 1
                if paddingBytes > 8 { throw fail("the compressed data ended before the end of the stream") }
            }
            bitCount += 8
        }
    }

    mutating func fillInput() throws {
        let n = try read(UnsafeMutableRawBufferPointer(start: input, count: Self.inputCapacity))
        guard n >= 0, n <= Self.inputCapacity else { throw fail("the reader returned \(n) bytes") }
        inputPosition = 0
        inputEnd = n
        totalRead += n
        if n == 0 { inputEnded = true }
    }

    /// Takes `count` (≤ 32) bits; the caller has refilled.
    @inline(__always) mutating func take(_ count: Int) -> Int {
        let value = Int(truncatingIfNeeded: bitBuffer & ((1 << UInt64(count)) - 1))
        bitBuffer >>= UInt64(count)
        bitCount -= count
        return value
    }

    /// Decodes one symbol with `table`; the caller has refilled (at least 15 bits buffered).
    @inline(__always) mutating func decode(_ table: HuffmanTable) throws -> Int {
        let entry = Int(table.fast[Int(truncatingIfNeeded: bitBuffer) & ((1 << HuffmanTable.fastBits) - 1)])
        if entry != 0 {
            let length = entry & 15
            bitBuffer >>= UInt64(length)
            bitCount -= length
            return entry >> 4
        }
        // A code longer than the direct table: walk the canonical code one bit at a time.
        var code = 0, first = 0, index = 0
        for length in 1...15 {
            code |= Int(truncatingIfNeeded: (bitBuffer >> UInt64(length - 1)) & 1)
            let count = Int(table.counts[length])
            if code - first < count {
                bitBuffer >>= UInt64(length)
                bitCount -= length
                return Int(table.symbols[index + code - first])
            }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw fail("invalid Huffman code")
    }

    // MARK: Output

    /// Writes the finished output and keeps the last 32 KiB as the window.
    mutating func flush() throws {
        if position > flushed {
            try write(UnsafeRawBufferPointer(start: output + flushed, count: position - flushed))
            totalWritten += position - flushed
        }
        if position > Self.windowSize {
            output.update(from: output + position - Self.windowSize, count: Self.windowSize)
            position = Self.windowSize
        }
        flushed = position
    }

    // MARK: Blocks

    mutating func storedBlock() throws {
        // Skip to a byte boundary; LEN and NLEN follow.
        _ = take(bitCount & 7)
        try refill()
        let length = take(16)
        let complement = take(16)
        guard length == ~complement & 0xFFFF else {
            throw fail("stored block length \(length) does not match its complement \(complement)")
        }
        var remaining = length
        while remaining > 0 {
            if position >= Self.windowSize + Self.outputChunk { try flush() }
            let room = Self.windowSize + Self.outputChunk - position
            if bitCount >= 8 {
                // Whole bytes still in the bit buffer come first.
                if bitCount - 8 < 8 * paddingBytes { throw fail("the compressed data ended inside a stored block") }
                output[position] = UInt8(truncatingIfNeeded: take(8))
                position += 1
                remaining -= 1
                continue
            }
            bitBuffer = 0
            if inputPosition == inputEnd {
                if inputEnded { throw fail("the compressed data ended inside a stored block") }
                try fillInput()
                continue
            }
            let n = min(remaining, room, inputEnd - inputPosition)
            (output + position).update(from: input + inputPosition, count: n)
            inputPosition += n
            position += n
            remaining -= n
        }
    }

    mutating func buildFixedTables() throws {
        for symbol in 0..<288 { lengths[symbol] = symbol < 144 ? 8 : symbol < 256 ? 9 : symbol < 280 ? 7 : 8 }
        if let problem = literals.build(lengths: lengths, count: 288, incompleteAllowed: false) { throw fail(problem) }
        for symbol in 0..<32 { lengths[symbol] = 5 }
        if let problem = distances.build(lengths: lengths, count: 32, incompleteAllowed: false) { throw fail(problem) }
    }

    mutating func buildDynamicTables() throws {
        try refill()
        let literalCount = take(5) + 257
        let distanceCount = take(5) + 1
        let codeLengthCount = take(4) + 4
        guard literalCount <= 286 else { throw fail("\(literalCount) literal/length codes (at most 286)") }
        guard distanceCount <= 30 else { throw fail("\(distanceCount) distance codes (at most 30)") }
        for index in 0..<19 {
            if index % 8 == 0 { try refill() }
            lengths[Self.codeLengthOrder[index]] = index < codeLengthCount ? UInt8(take(3)) : 0
        }
        if let problem = codeLengths.build(lengths: lengths, count: 19, incompleteAllowed: false) {
            throw fail("code-length code: \(problem)")
        }
        let total = literalCount + distanceCount
        var index = 0
        while index < total {
            try refill()
            let symbol = try decode(codeLengths)
            if symbol < 16 {
                lengths[index] = UInt8(symbol)
                index += 1
                continue
            }
            var value: UInt8 = 0
            let repeats: Int
            switch symbol {
            case 16:
                guard index > 0 else { throw fail("code length repeat (16) with no previous length") }
                value = lengths[index - 1]
                repeats = 3 + take(2)
            case 17: repeats = 3 + take(3)
            default: repeats = 11 + take(7)
            }
            guard index + repeats <= total else { throw fail("code length repeats run past the \(total) lengths") }
            for _ in 0..<repeats {
                lengths[index] = value
                index += 1
            }
        }
        guard lengths[256] != 0 else { throw fail("no code for end-of-block (symbol 256)") }
        if let problem = literals.build(lengths: lengths, count: literalCount, incompleteAllowed: true) {
            throw fail("literal/length code: \(problem)")
        }
        if let problem = distances.build(lengths: lengths + literalCount, count: distanceCount, incompleteAllowed: true) {
            throw fail("distance code: \(problem)")
        }
    }

    /// Decodes a Huffman-coded block up to its end-of-block symbol.
    mutating func compressedBlock() throws {
        let limit = Self.windowSize + Self.outputChunk
        while true {
            if position >= limit { try flush() }
            try refill()
            let symbol = try decode(literals)
            if symbol < 256 {
                output[position] = UInt8(truncatingIfNeeded: symbol)
                position += 1
                continue
            }
            if symbol == 256 { return }
            let lengthIndex = symbol - 257
            guard lengthIndex < 29 else { throw fail("invalid length symbol \(symbol)") }
            // 5 extra length bits + 15 distance code bits + 13 extra distance bits fit in one refill (≥ 56 bits).
            let length = Self.lengthBase[lengthIndex] + take(Self.lengthExtra[lengthIndex])
            let distanceSymbol = try decode(distances)
            guard distanceSymbol < 30 else { throw fail("invalid distance symbol \(distanceSymbol)") }
            let distance = Self.distanceBase[distanceSymbol] + take(Self.distanceExtra[distanceSymbol])
            guard distance <= position else {
                throw fail("distance \(distance) reaches before the start of the output (\(totalWritten + position - flushed) bytes so far)")
            }
            copyMatch(length: length, distance: distance)
        }
    }

    /// Appends `length` bytes copied from `distance` bytes back (the regions may overlap).
    @inline(__always) mutating func copyMatch(length: Int, distance: Int) {
        let destination = output + position
        let source = destination - distance
        if distance >= 8 {
            // Eight bytes at a time; may write up to 7 bytes past the match, into the buffer's slack.
            var done = 0
            while done < length {
                UnsafeMutableRawPointer(destination + done).storeBytes(
                    of: UnsafeRawPointer(source + done).loadUnaligned(as: UInt64.self), as: UInt64.self)
                done += 8
            }
        } else if distance == 1 {
            destination.update(repeating: source[0], count: length)
        } else {
            for index in 0..<length { destination[index] = source[index] }
        }
        position += length
    }
}
