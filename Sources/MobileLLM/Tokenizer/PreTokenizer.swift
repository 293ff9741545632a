/// The split patterns we implement by hand, each exactly equivalent to the Oniguruma regex HF `tokenizers` runs.
enum SplitPattern: Sendable, Equatable {
    /// Llama-3 (`digitRun` = 3): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`; Qwen2 is the same with `\p{N}` (`digitRun` = 1).
    case llama3(digitRun: Int)
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// A single `\p{N}` (one digit per match), as llama.cpp's first smollm/starcoder regex.
    case singleNumber

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The pattern for a regex source text, or nil when we do not implement it.
    static func forRegex(_ source: String) -> SplitPattern? {
        switch source {
        case llama3Regex: return .llama3(digitRun: 3)
        case qwen2Regex: return .llama3(digitRun: 1)
        case gpt2Regex, #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#: return .gpt2
        case #"\p{N}"#: return .singleNumber
        default: return nil
        }
    }
}

/// One stage of the pre-tokenizer pipeline (HF applies a `Sequence` stage by stage, each splitting every piece the
/// previous stage produced).
enum PreTokenizerStage: Sendable, Equatable {
    /// `Split` with a regex pattern; `removeMatches` is behaviour `Removed`, otherwise `Isolated`.
    case split(SplitPattern, removeMatches: Bool)
    /// `ByteLevel`; with `useRegex` it splits with the GPT-2 pattern. (The byte mapping itself is implicit: we work on
    /// raw bytes throughout.) `addPrefixSpace` is handled by the encoder for a leading ByteLevel stage.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Digits`: numbers (Rust `char::is_numeric`, i.e. `\p{N}`) isolated one by one or in runs.
    case digits(individual: Bool)
}

/// Runs the pre-tokenizer stages over UTF-8 bytes. Pieces are kept as flat [start, end, start, end, ...] offsets.
struct PreTokenizer: Sendable {
    let stages: [PreTokenizerStage]

    /// Whether the first stage asks for a prefix space.
    var addsPrefixSpace: Bool {
        if case let .byteLevel(addPrefixSpace, _)? = stages.first { return addPrefixSpace }
        return false
    }

    /// Splits `[start, end)` of `bytes` into pre-tokens, appended to `output` as start/end pairs.
    /// `scratch` is a reusable buffer.
    func split(_ bytes: UnsafePointer<UInt8>, start: Int, end: Int, table: UnsafePointer<UInt8>,
               output: inout [Int], scratch: inout [Int]) {
        if stages.isEmpty {
            output.append(start); output.append(end)
            return
        }
        if stages.count == 1 {
            Self.apply(stages[0], bytes, start, end, table, &output)
            return
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(start); scratch.append(end)
        var current: [Int] = []
        for (index, stage) in stages.enumerated() {
            let last = index == stages.count - 1
            var next: [Int] = []
            let source = index == 0 ? scratch : current
            var pair = 0
            while pair < source.count {
                if last {
                    Self.apply(stage, bytes, source[pair], source[pair + 1], table, &output)
                } else {
                    Self.apply(stage, bytes, source[pair], source[pair + 1], table, &next)
                }
                pair += 2
            }
            current = next
        }
    }

    @inline(__always)
    static func apply(_ stage: PreTokenizerStage, _ bytes: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                      _ table: UnsafePointer<UInt8>, _ output: inout [Int]) {
        switch stage {
        case let .split(pattern, removeMatches):
            splitWith(pattern, removeMatches: removeMatches, bytes, start, end, table, &output)
        case let .byteLevel(_, useRegex):
            if useRegex {
                splitWith(.gpt2, removeMatches: false, bytes, start, end, table, &output)
            } else if start < end {
                output.append(start); output.append(end)
            }
        case let .digits(individual):
            digits(individual: individual, bytes, start, end, table, &output)
        }
    }

    static func splitWith(_ pattern: SplitPattern, removeMatches: Bool, _ bytes: UnsafePointer<UInt8>, _ start: Int,
                          _ end: Int, _ table: UnsafePointer<UInt8>, _ output: inout [Int]) {
        var index = start
        var gapStart = start
        while index < end {
            let matchEnd: Int
            switch pattern {
            case let .llama3(digitRun): matchEnd = matchLlama3(bytes, index, end, table, digitRun)
            case .gpt2: matchEnd = matchGPT2(bytes, index, end, table)
            case .singleNumber:
                let (value, length) = decodeScalar(bytes, index, end)
                matchEnd = CharacterClass.of(value, table: table) & CharacterClass.number != 0 ? index + length : index
            }
            if matchEnd > index {
                if gapStart < index { output.append(gapStart); output.append(index) }
                if !removeMatches { output.append(index); output.append(matchEnd) }
                index = matchEnd
                gapStart = index
            } else {
                index += decodeScalar(bytes, index, end).length
            }
        }
        if gapStart < end { output.append(gapStart); output.append(end) }
    }

    static func digits(individual: Bool, _ bytes: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                       _ table: UnsafePointer<UInt8>, _ output: inout [Int]) {
        var index = start
        var runStart = start
        var runIsNumber = false
        while index < end {
            let (value, length) = decodeScalar(bytes, index, end)
            let isNumber = CharacterClass.of(value, table: table) & CharacterClass.number != 0
            if index > runStart && (isNumber != runIsNumber || (isNumber && individual)) {
                output.append(runStart); output.append(index)
                runStart = index
            }
            runIsNumber = isNumber
            index += length
        }
        if runStart < end { output.append(runStart); output.append(end) }
    }

    // MARK: - Hand-written matchers. Each returns the end of the match at `index`, or `index` for no match.

    /// The end of the run of characters whose class intersects `mask`, starting at `index`.
    @inline(__always)
    static func run(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, _ table: UnsafePointer<UInt8>,
                    _ mask: UInt8, limit: Int = Int.max) -> Int {
        var position = index
        var count = 0
        while position < end && count < limit {
            let (value, length) = decodeScalar(bytes, position, end)
            guard CharacterClass.of(value, table: table) & mask != 0 else { break }
            position += length
            count += 1
        }
        return position
    }

    /// The end of the run of "other" characters (`[^\s\p{L}\p{N}]`) starting at `index`.
    @inline(__always)
    static func otherRun(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, _ table: UnsafePointer<UInt8>) -> Int {
        var position = index
        while position < end {
            let (value, length) = decodeScalar(bytes, position, end)
            guard CharacterClass.of(value, table: table) & (CharacterClass.letter | CharacterClass.number | CharacterClass.space) == 0 else { break }
            position += length
        }
        return position
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitively (Unicode simple case folding: only U+017F LONG S folds onto
    /// one of these ASCII letters) or not. Returns the match end or `index`.
    @inline(__always)
    static func contraction(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, ignoreCase: Bool) -> Int {
        guard bytes[index] == UInt8(ascii: "'"), index + 1 < end else { return index }
        let fold: (UInt8) -> UInt8 = { ignoreCase && $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        let first = fold(bytes[index + 1])
        switch first {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            return index + 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"):
            if index + 2 < end, fold(bytes[index + 2]) == UInt8(ascii: "e") { return index + 3 }
        case UInt8(ascii: "l"):
            if index + 2 < end, fold(bytes[index + 2]) == UInt8(ascii: "l") { return index + 3 }
        case 0xC5:
            // U+017F LATIN SMALL LETTER LONG S case-folds to "s".
            if ignoreCase, index + 2 < end, bytes[index + 2] == 0xBF { return index + 3 }
        default:
            break
        }
        return index
    }

    /// The Llama-3 pattern (see `SplitPattern.llama3`).
    static func matchLlama3(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, _ table: UnsafePointer<UInt8>,
                            _ digitRun: Int) -> Int {
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        let contractionEnd = contraction(bytes, index, end, ignoreCase: true)
        if contractionEnd > index { return contractionEnd }
        let (value0, length0) = decodeScalar(bytes, index, end)
        let class0 = CharacterClass.of(value0, table: table)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if class0 & CharacterClass.letter != 0 {
            return run(bytes, index, end, table, CharacterClass.letter)
        }
        if class0 & (CharacterClass.newline | CharacterClass.letter | CharacterClass.number) == 0, index + length0 < end {
            let (value1, _) = decodeScalar(bytes, index + length0, end)
            if CharacterClass.of(value1, table: table) & CharacterClass.letter != 0 {
                return run(bytes, index + length0, end, table, CharacterClass.letter)
            }
        }
        // \p{N}{1,3}
        if class0 & CharacterClass.number != 0 {
            return run(bytes, index, end, table, CharacterClass.number, limit: digitRun)
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        var otherStart = index
        if bytes[index] == 0x20 { otherStart = index + 1 }
        if otherStart < end {
            let (value, _) = decodeScalar(bytes, otherStart, end)
            if CharacterClass.of(value, table: table) & (CharacterClass.letter | CharacterClass.number | CharacterClass.space) == 0 {
                var position = otherRun(bytes, otherStart, end, table)
                while position < end && (bytes[position] == 0x0A || bytes[position] == 0x0D) { position += 1 }
                return position
            }
        }
        guard class0 & CharacterClass.space != 0 else { return index }
        // \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
        var position = index
        var lastNewlineEnd = -1
        var lastCharStart = index
        while position < end {
            let (value, length) = decodeScalar(bytes, position, end)
            guard CharacterClass.of(value, table: table) & CharacterClass.space != 0 else { break }
            if value == 0x0A || value == 0x0D { lastNewlineEnd = position + length }
            lastCharStart = position
            position += length
        }
        if lastNewlineEnd > 0 { return lastNewlineEnd }
        // \s+(?!\S) : the whole run at the end of the text, else all but its last character.
        if position == end { return position }
        if lastCharStart > index { return lastCharStart }
        // \s+
        return position
    }

    /// The GPT-2 pattern (see `SplitPattern.gpt2`).
    static func matchGPT2(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, _ table: UnsafePointer<UInt8>) -> Int {
        let contractionEnd = contraction(bytes, index, end, ignoreCase: false)
        if contractionEnd > index { return contractionEnd }
        //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
        var start = index
        if bytes[index] == 0x20 && index + 1 < end { start = index + 1 }
        let (value, _) = decodeScalar(bytes, start, end)
        let cls = CharacterClass.of(value, table: table)
        if cls & CharacterClass.letter != 0 { return run(bytes, start, end, table, CharacterClass.letter) }
        if cls & CharacterClass.number != 0 { return run(bytes, start, end, table, CharacterClass.number) }
        if cls & CharacterClass.space == 0 { return otherRun(bytes, start, end, table) }
        // Here the character at `index` is whitespace (a lone space followed by whitespace lands here too).
        var position = index
        var lastCharStart = index
        while position < end {
            let (scalar, length) = decodeScalar(bytes, position, end)
            guard CharacterClass.of(scalar, table: table) & CharacterClass.space != 0 else { break }
            lastCharStart = position
            position += length
        }
        if position == end { return position }
        if lastCharStart > index { return lastCharStart }
        return position
    }
}
