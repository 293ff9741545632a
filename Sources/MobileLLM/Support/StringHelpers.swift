// The few Foundation string conveniences the engine used, written once over Unicode scalars so the engine needs only
// FoundationEssentials. Matching is literal (scalar by scalar), as Foundation's is for the ASCII patterns used here.

extension String {
    /// Every non-overlapping occurrence of `target`, searched left to right, replaced by `replacement`
    /// (Foundation's `replacingOccurrences(of:with:)`).
    func replacingEvery(_ target: String, with replacement: String) -> String {
        let pattern = Array(target.unicodeScalars)
        guard !pattern.isEmpty else { return self }
        let scalars = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            if index + pattern.count <= scalars.count, scalars[index] == pattern[0],
               scalars[index..<(index + pattern.count)].elementsEqual(pattern) {
                out.append(contentsOf: replacement.unicodeScalars)
                index += pattern.count
            } else {
                out.append(scalars[index])
                index += 1
            }
        }
        return String(out)
    }

    /// The range of the last occurrence of `target` (Foundation's `range(of:options: .backwards)`); nil when
    /// `target` is empty or absent.
    func lastRange(of target: String) -> Range<String.Index>? {
        let view = unicodeScalars
        let pattern = Array(target.unicodeScalars)
        guard !pattern.isEmpty else { return nil }
        var end = view.endIndex
        var available = view.count
        while available >= pattern.count {
            let first = view.index(end, offsetBy: -pattern.count)
            if view[first..<end].elementsEqual(pattern) { return first..<end }
            end = view.index(before: end)
            available -= 1
        }
        return nil
    }

    /// Whether `target` occurs in the string, scalar by scalar (the standard library's `contains(_:)` for strings
    /// lives in _StringProcessing, whose regex engine and Unicode tables would add about 1.5 MB to the C library).
    func contains(literal target: String) -> Bool {
        target.isEmpty || lastRange(of: target) != nil
    }

    /// The string without the leading and trailing scalars in `set` (Foundation's `trimmingCharacters(in:)`).
    func trimmingScalars(in set: Set<Unicode.Scalar>) -> String {
        let view = unicodeScalars
        guard let first = view.firstIndex(where: { !set.contains($0) }),
              let last = view.lastIndex(where: { !set.contains($0) }) else { return "" }
        return String(view[first...last])
    }

    /// `%XX` escapes decoded as UTF-8 bytes (Foundation's `removingPercentEncoding`): nil when a `%` is not followed
    /// by two hexadecimal digits or the bytes are not valid UTF-8.
    var percentDecoded: String? {
        var bytes: [UInt8] = []
        let utf8 = Array(self.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%") {
                guard index + 2 < utf8.count, let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2]) else {
                    return nil
                }
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// The value of one ASCII hexadecimal digit.
private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// `value` in lowercase hexadecimal, zero-padded to at least `width` digits (C's `%0<width>x`).
func lowercaseHex<T: BinaryInteger>(_ value: T, width: Int) -> String {
    let digits = String(value, radix: 16, uppercase: false)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
