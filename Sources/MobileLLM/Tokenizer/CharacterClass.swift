/// Character classes the pre-tokenizer regexes use, as bit flags: `\p{L}`, `\p{N}`, `\s` (Unicode White_Space, as
/// Oniguruma defines `\s`), and `[\r\n]`. Computed from Swift's Unicode tables (`generalCategory`, `isWhitespace`).
enum CharacterClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    static let newline: UInt8 = 8

    /// Classes of U+0000...U+FFFF, computed once (about 64 KB).
    static let basicPlane: [UInt8] = (0..<0x10000).map { classify(UInt32($0)) }

    /// Classes of one scalar value (surrogate code points and out-of-range values are "other").
    static func classify(_ value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return 0 }
        if value == 0x0A || value == 0x0D { return space | newline }
        let properties = scalar.properties
        var flags: UInt8 = 0
        if properties.isWhitespace { flags |= space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            flags |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            flags |= number
        default:
            break
        }
        return flags
    }

    /// The class of a scalar value, using the precomputed table below U+10000.
    @inline(__always)
    static func of(_ value: UInt32, table: UnsafePointer<UInt8>) -> UInt8 {
        value < 0x10000 ? table[Int(value)] : classify(value)
    }

    /// Whether `scalar` is alphanumeric the way Rust's `char::is_alphanumeric` decides (Alphabetic or a number),
    /// which HF uses for `single_word` added tokens.
    static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.properties.isAlphabetic { return true }
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
}

/// Decodes the UTF-8 scalar starting at `index` (which must be `< end`); returns its value and byte length. Bytes that
/// do not form a valid sequence decode as one byte of value 0xFFFD (encode only sees valid UTF-8 from Swift strings).
@inline(__always)
func decodeScalar(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int) -> (value: UInt32, length: Int) {
    let lead = bytes[index]
    if lead < 0x80 { return (UInt32(lead), 1) }
    if lead >= 0xC2 && lead < 0xE0, index + 1 < end {
        return (UInt32(lead & 0x1F) << 6 | UInt32(bytes[index + 1] & 0x3F), 2)
    }
    if lead >= 0xE0 && lead < 0xF0, index + 2 < end {
        return (UInt32(lead & 0x0F) << 12 | UInt32(bytes[index + 1] & 0x3F) << 6 | UInt32(bytes[index + 2] & 0x3F), 3)
    }
    if lead >= 0xF0 && lead < 0xF5, index + 3 < end {
        return (UInt32(lead & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12
                | UInt32(bytes[index + 2] & 0x3F) << 6 | UInt32(bytes[index + 3] & 0x3F), 4)
    }
    return (0xFFFD, 1)
}

/// GPT-2's reversible map between bytes and printable characters ("bytes_to_unicode"), which byte-level BPE
/// vocabularies are spelled in.
enum ByteLevelAlphabet {
    /// The character each byte is spelled as.
    static let characterOfByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The byte each alphabet character stands for (index: scalar value < 324; -1 = not in the alphabet).
    static let byteOfCharacter: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for byte in 0..<256 { table[Int(characterOfByte[byte])] = Int16(byte) }
        return table
    }()

    /// The raw bytes a byte-level spelling stands for, or nil when a character is outside the alphabet.
    static func decode(_ spelling: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(spelling.utf8.count)
        for scalar in spelling.unicodeScalars {
            let value = Int(scalar.value)
            guard value < byteOfCharacter.count else { return nil }
            let byte = byteOfCharacter[value]
            guard byte >= 0 else { return nil }
            out.append(UInt8(byte))
        }
        return out
    }

    /// The byte-level spelling of raw bytes.
    static func encode(_ bytes: [UInt8]) -> String {
        var out = String.UnicodeScalarView()
        for byte in bytes {
            if let scalar = Unicode.Scalar(characterOfByte[Int(byte)]) { out.append(scalar) }
        }
        return String(out)
    }
}
