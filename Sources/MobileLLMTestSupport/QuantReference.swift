import MobileLLM

/// Scalar Swift reference implementations of the quantized formats, written from the format definitions.
///
/// These are slow and simple on purpose: the C kernels are tested against them. Quantization repeats ggml's
/// reference algorithms (`quantize_row_*_ref`) float operation by float operation (Swift never fuses a
/// multiply and an add), so the bytes equal ggml's and gguf-py's. Every function returns nil on invalid input
/// (a row length that is not a multiple of the block size, or a byte count that does not match).
public enum QuantReference {
    // MARK: - Quantization

    /// Quantizes one row of weights into `type`'s blocks (ggml reference rounding); nil if `x.count` is not a
    /// multiple of the block size or the type cannot be written (`canQuantize`: IQ4_NL, Q2_K, Q3_K).
    public static func quantize(_ x: [Float], type: QuantType) -> [UInt8]? {
        guard type.canQuantize, let bytes = type.rowBytes(x.count) else { return nil }
        var out = [UInt8](repeating: 0, count: bytes)
        switch type {
        case .f32:
            for (t, v) in x.enumerated() { store32(v.bitPattern, &out, 4 * t) }
        case .f16:
            for (t, v) in x.enumerated() { store16(halfBits(v), &out, 2 * t) }
        case .bf16:
            for (t, v) in x.enumerated() { store16(bfloatBits(v), &out, 2 * t) }
        case .q4_0:
            for b in 0..<(x.count / 32) { quantizeQ4_0(x, b * 32, &out, b * 18) }
        case .q4_1:
            for b in 0..<(x.count / 32) { quantizeQ4_1(x, b * 32, &out, b * 20) }
        case .q5_0:
            for b in 0..<(x.count / 32) { quantizeQ5_0(x, b * 32, &out, b * 22) }
        case .q5_1:
            for b in 0..<(x.count / 32) { quantizeQ5_1(x, b * 32, &out, b * 24) }
        case .q8_0:
            for b in 0..<(x.count / 32) { quantizeQ8_0(x, b * 32, &out, b * 34) }
        case .q4_K:
            for b in 0..<(x.count / 256) { quantizeQ4_K(Array(x[(b * 256)..<(b * 256 + 256)]), &out, b * 144) }
        case .q5_K:
            for b in 0..<(x.count / 256) { quantizeQ5_K(Array(x[(b * 256)..<(b * 256 + 256)]), &out, b * 176) }
        case .q6_K:
            for b in 0..<(x.count / 256) { quantizeQ6_K(Array(x[(b * 256)..<(b * 256 + 256)]), &out, b * 210) }
        case .iq4_nl, .q2_K, .q3_K:
            return nil
        }
        return out
    }

    // MARK: - Dequantization

    /// Dequantizes one row of `count` weights with ggml's float operations; nil if the sizes do not match.
    public static func dequantize(_ bytes: [UInt8], type: QuantType, count: Int) -> [Float]? {
        guard let expected = type.rowBytes(count), expected == bytes.count else { return nil }
        var y = [Float](repeating: 0, count: count)
        switch type {
        case .f32:
            for t in 0..<count { y[t] = Float(bitPattern: load32(bytes, 4 * t)) }
        case .f16:
            for t in 0..<count { y[t] = half(bytes, 2 * t) }
        case .bf16:
            for t in 0..<count { y[t] = Float(bitPattern: UInt32(load16(bytes, 2 * t)) << 16) }
        case .q4_0:
            for b in 0..<(count / 32) {
                let o = b * 18, d = half(bytes, o)
                for j in 0..<16 {
                    y[32 * b + j] = Float(Int(bytes[o + 2 + j] & 0xF) - 8) * d
                    y[32 * b + j + 16] = Float(Int(bytes[o + 2 + j] >> 4) - 8) * d
                }
            }
        case .q4_1:
            for b in 0..<(count / 32) {
                let o = b * 20, d = half(bytes, o), m = half(bytes, o + 2)
                for j in 0..<16 {
                    y[32 * b + j] = Float(bytes[o + 4 + j] & 0xF) * d + m
                    y[32 * b + j + 16] = Float(bytes[o + 4 + j] >> 4) * d + m
                }
            }
        case .q5_0:
            for b in 0..<(count / 32) {
                let o = b * 22, d = half(bytes, o)
                for j in 0..<32 { y[32 * b + j] = Float(q5Code(bytes, o + 2, o + 6, j) - 16) * d }
            }
        case .q5_1:
            for b in 0..<(count / 32) {
                let o = b * 24, d = half(bytes, o), m = half(bytes, o + 2)
                for j in 0..<32 { y[32 * b + j] = Float(q5Code(bytes, o + 4, o + 8, j)) * d + m }
            }
        case .q8_0:
            for b in 0..<(count / 32) {
                let o = b * 34, d = half(bytes, o)
                for j in 0..<32 { y[32 * b + j] = Float(Int8(bitPattern: bytes[o + 2 + j])) * d }
            }
        case .iq4_nl:
            for b in 0..<(count / 32) {
                let o = b * 18, d = half(bytes, o)
                for j in 0..<16 {
                    y[32 * b + j] = d * Float(iq4nlLevels[Int(bytes[o + 2 + j] & 0xF)])
                    y[32 * b + j + 16] = d * Float(iq4nlLevels[Int(bytes[o + 2 + j] >> 4)])
                }
            }
        case .q2_K:
            for b in 0..<(count / 256) {
                let o = b * 84, d = half(bytes, o + 80), dmin = half(bytes, o + 82)
                for e in 0..<256 {
                    let sc = bytes[o + e / 16]
                    let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                    y[256 * b + e] = dl * Float(q2KCode(bytes, o + 16, e)) - ml
                }
            }
        case .q3_K:
            for b in 0..<(count / 256) {
                let o = b * 110, d = half(bytes, o + 108)
                for e in 0..<256 {
                    let dl = d * Float(q3KScale(e / 16, bytes, o + 96))
                    y[256 * b + e] = dl * Float(q3KCode(bytes, o, e))
                }
            }
        case .q4_K:
            for b in 0..<(count / 256) {
                let o = b * 144, d = half(bytes, o), dmin = half(bytes, o + 2)
                for j in 0..<8 {
                    let (sc, m) = q4KScaleMin(j, bytes, o + 4)
                    let d1 = d * Float(sc), m1 = dmin * Float(m)
                    for l in 0..<32 {
                        let q = q4KCode(bytes, o, j, l)
                        y[256 * b + 32 * j + l] = d1 * Float(q) - m1
                    }
                }
            }
        case .q5_K:
            for b in 0..<(count / 256) {
                let o = b * 176, d = half(bytes, o), dmin = half(bytes, o + 2)
                for j in 0..<8 {
                    let (sc, m) = q4KScaleMin(j, bytes, o + 4)
                    let d1 = d * Float(sc), m1 = dmin * Float(m)
                    for l in 0..<32 { y[256 * b + 32 * j + l] = d1 * Float(q5KCode(bytes, o, j, l)) - m1 }
                }
            }
        case .q6_K:
            for b in 0..<(count / 256) {
                let o = b * 210, d = half(bytes, o + 208)
                for e in 0..<256 {
                    let sc = Float(Int8(bitPattern: bytes[o + 192 + e / 16]))
                    y[256 * b + e] = d * sc * Float(q6KCode(bytes, o, e) - 32)
                }
            }
        }
        return y
    }

    // MARK: - Activations and dot products

    /// One activation row in the kernels' Q8A format: per 32-block a float scale and int8 codes, plus the
    /// scaled code sums the kernels use to fold weight offsets.
    public struct Activations: Sendable, Equatable {
        /// int8 codes, `x ≈ d[t / 32] * q[t]`.
        public var q: [Int8]
        /// Per 32-block scale `max|x| / 127`.
        public var d: [Float]
        /// Per 32-block `d * sum(q)`.
        public var s: [Float]
        /// Per 16-half `d * sum(q)`.
        public var s16: [Float]

        /// The row's bytes exactly as `mlk_q_quantize_activations` lays them out.
        public var bytes: [UInt8] {
            var out = q.map { UInt8(bitPattern: $0) }
            out.reserveCapacity(q.count + 4 * (d.count + s.count + s16.count))
            for v in d + s + s16 { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            return out
        }

        /// The dequantized values `d * q`, exactly, in Double.
        public var values: [Double] { q.indices.map { Double(d[$0 / 32]) * Double(q[$0]) } }
    }

    /// Quantizes one activation row (32-blocks, scale `max|x| / 127`, codes rounded half to even);
    /// nil if `x.count` is not a multiple of 32.
    public static func quantizeActivations(_ x: [Float]) -> Activations? {
        guard x.count % 32 == 0 else { return nil }
        let blocks = x.count / 32
        var a = Activations(q: [Int8](repeating: 0, count: x.count), d: [Float](repeating: 0, count: blocks),
                            s: [Float](repeating: 0, count: blocks), s16: [Float](repeating: 0, count: 2 * blocks))
        for b in 0..<blocks {
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(x[32 * b + j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 127 / amax : 0
            var sums = [0, 0]
            for j in 0..<32 {
                var v = (x[32 * b + j] * id).rounded(.toNearestOrEven)
                if !(v >= -127) { v = v.isNaN ? 0 : -127 }
                if v > 127 { v = 127 }
                a.q[32 * b + j] = Int8(v)
                sums[j / 16] += Int(v)
            }
            a.d[b] = d
            a.s[b] = d * Float(sums[0] + sums[1])
            a.s16[2 * b] = d * Float(sums[0])
            a.s16[2 * b + 1] = d * Float(sums[1])
        }
        return a
    }

    /// The exact dot product (in Double) of a weight row with an activation row, both as their blocks define
    /// them (weights `d*(q-8)`, `d*q+m`, `d*sc*q - dmin*m`, ... with no intermediate rounding; activations
    /// `d*q`), and `magnitude`: the same sum over absolute values of the terms the kernels add (codes times
    /// scales and the offset terms), which bounds the float32 rounding error of any summation order.
    /// Nil if the sizes do not match or the type has no quantized matmul.
    public static func dot(weights: [UInt8], type: QuantType, activations a: Activations) -> (value: Double, magnitude: Double)? {
        let k = a.q.count
        guard type.hasQuantizedMatmul, type.rowBytes(k) == weights.count, k % type.blockSize == 0 else { return nil }
        let w = weights
        var value = 0.0, magnitude = 0.0
        func add(_ t: Int, scale: Double, code: Int, offset: Double) {
            let av = Double(a.d[t / 32]) * Double(a.q[t])
            value += (scale * Double(code) + offset) * av
            magnitude += (abs(scale * Double(code)) + abs(offset)) * abs(av)
        }
        switch type {
        case .q4_0:
            for b in 0..<(k / 32) {
                let d = Double(half(w, 18 * b))
                for j in 0..<16 {
                    add(32 * b + j, scale: d, code: Int(w[18 * b + 2 + j] & 0xF), offset: -8 * d)
                    add(32 * b + j + 16, scale: d, code: Int(w[18 * b + 2 + j] >> 4), offset: -8 * d)
                }
            }
        case .q4_1:
            for b in 0..<(k / 32) {
                let d = Double(half(w, 20 * b)), m = Double(half(w, 20 * b + 2))
                for j in 0..<16 {
                    add(32 * b + j, scale: d, code: Int(w[20 * b + 4 + j] & 0xF), offset: m)
                    add(32 * b + j + 16, scale: d, code: Int(w[20 * b + 4 + j] >> 4), offset: m)
                }
            }
        case .q5_0:
            for b in 0..<(k / 32) {
                let d = Double(half(w, 22 * b))
                for j in 0..<32 { add(32 * b + j, scale: d, code: q5Code(w, 22 * b + 2, 22 * b + 6, j), offset: -16 * d) }
            }
        case .q5_1:
            for b in 0..<(k / 32) {
                let d = Double(half(w, 24 * b)), m = Double(half(w, 24 * b + 2))
                for j in 0..<32 { add(32 * b + j, scale: d, code: q5Code(w, 24 * b + 4, 24 * b + 8, j), offset: m) }
            }
        case .q8_0:
            for b in 0..<(k / 32) {
                let d = Double(half(w, 34 * b))
                for j in 0..<32 { add(32 * b + j, scale: d, code: Int(Int8(bitPattern: w[34 * b + 2 + j])), offset: 0) }
            }
        case .iq4_nl:
            for b in 0..<(k / 32) {
                let d = Double(half(w, 18 * b))
                for j in 0..<16 {
                    add(32 * b + j, scale: d, code: iq4nlLevels[Int(w[18 * b + 2 + j] & 0xF)], offset: 0)
                    add(32 * b + j + 16, scale: d, code: iq4nlLevels[Int(w[18 * b + 2 + j] >> 4)], offset: 0)
                }
            }
        case .q2_K:
            for b in 0..<(k / 256) {
                let o = 84 * b, d = Double(half(w, o + 80)), dmin = Double(half(w, o + 82))
                for e in 0..<256 {
                    let sc = w[o + e / 16]
                    add(256 * b + e, scale: d * Double(sc & 0xF), code: q2KCode(w, o + 16, e), offset: -dmin * Double(sc >> 4))
                }
            }
        case .q3_K:
            for b in 0..<(k / 256) {
                let o = 110 * b, d = Double(half(w, o + 108))
                for e in 0..<256 {
                    // The kernels add codes 0...7 and fold the -4 into the offset; so does the magnitude here.
                    let scale = d * Double(q3KScale(e / 16, w, o + 96))
                    add(256 * b + e, scale: scale, code: q3KCode(w, o, e) + 4, offset: -4 * scale)
                }
            }
        case .q4_K:
            for b in 0..<(k / 256) {
                let o = 144 * b, d = Double(half(w, o)), dmin = Double(half(w, o + 2))
                for j in 0..<8 {
                    let (sc, m) = q4KScaleMin(j, w, o + 4)
                    for l in 0..<32 {
                        add(256 * b + 32 * j + l, scale: d * Double(sc), code: q4KCode(w, o, j, l), offset: -dmin * Double(m))
                    }
                }
            }
        case .q5_K:
            for b in 0..<(k / 256) {
                let o = 176 * b, d = Double(half(w, o)), dmin = Double(half(w, o + 2))
                for j in 0..<8 {
                    let (sc, m) = q4KScaleMin(j, w, o + 4)
                    for l in 0..<32 {
                        add(256 * b + 32 * j + l, scale: d * Double(sc), code: q5KCode(w, o, j, l), offset: -dmin * Double(m))
                    }
                }
            }
        case .q6_K:
            for b in 0..<(k / 256) {
                let o = 210 * b, d = Double(half(w, o + 208))
                for e in 0..<256 {
                    let scale = d * Double(Int8(bitPattern: w[o + 192 + e / 16]))
                    add(256 * b + e, scale: scale, code: q6KCode(w, o, e), offset: -32 * scale)
                }
            }
        case .f32, .f16, .bf16:
            return nil
        }
        return (value, magnitude)
    }

    // MARK: - Block helpers

    /// Q4_K: the 6-bit scale and minimum of sub-block `j` from the 12 packed bytes at `o`.
    static func q4KScaleMin(_ j: Int, _ q: [UInt8], _ o: Int) -> (Int, Int) {
        if j < 4 { return (Int(q[o + j] & 63), Int(q[o + j + 4] & 63)) }
        return (Int(q[o + j + 4] & 0xF) | Int(q[o + j - 4] >> 6) << 4, Int(q[o + j + 4] >> 4) | Int(q[o + j] >> 6) << 4)
    }

    /// Q4_K: the 4-bit code of element `l` of sub-block `j` of the super-block at `o`.
    static func q4KCode(_ w: [UInt8], _ o: Int, _ j: Int, _ l: Int) -> Int {
        let byte = w[o + 16 + 32 * (j / 2) + l]
        return Int(j % 2 == 0 ? byte & 0xF : byte >> 4)
    }

    /// Q2_K / Q3_K: the 2-bit code (0...3) of element `e` (0...255) of a super-block whose qs[64] is at `qs`:
    /// element 128h + 32j + l sits at bits 2j of qs[32h + l].
    static func q2KCode(_ w: [UInt8], _ qs: Int, _ e: Int) -> Int {
        Int((w[qs + 32 * (e / 128) + e % 32] >> UInt8(2 * ((e % 128) / 32))) & 3)
    }

    /// Q3_K: the signed code (-4...3) of element `e` of the super-block at `o`: the 2-bit code (qs at o + 32), minus 4
    /// unless bit e / 32 of hmask[e % 32] is set.
    static func q3KCode(_ w: [UInt8], _ o: Int, _ e: Int) -> Int {
        let high = (w[o + e % 32] >> UInt8(e / 32)) & 1
        return q2KCode(w, o + 32, e) - (high == 1 ? 0 : 4)
    }

    /// Q3_K: the signed 6-bit scale (-32...31) of sub-block `s` (0...15) from the 12 packed bytes at `o`.
    static func q3KScale(_ s: Int, _ w: [UInt8], _ o: Int) -> Int {
        let low = s < 8 ? w[o + s] & 0xF : w[o + s - 8] >> 4
        let high = (w[o + 8 + s % 4] >> UInt8(2 * (s / 4))) & 3
        return Int(low | high << 4) - 32
    }

    /// IQ4_NL: the 16 levels a 4-bit index selects (ggml's kvalues_iq4nl).
    static let iq4nlLevels: [Int] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// Q5_0 / Q5_1: the 5-bit code (0...31) of weight `j` of a block whose 32-bit high-bit field is at `qh` and
    /// whose 16 nibble bytes are at `qs` (weight j < 16: low nibble of qs[j]; otherwise high nibble of qs[j - 16]).
    static func q5Code(_ w: [UInt8], _ qh: Int, _ qs: Int, _ j: Int) -> Int {
        let nibble = j < 16 ? w[qs + j] & 0xF : w[qs + j - 16] >> 4
        let high = (w[qh + j / 8] >> (j % 8)) & 1
        return Int(nibble | high << 4)
    }

    /// Q5_K: the 5-bit code (0...31) of element `l` of sub-block `j` of the super-block at `o`: Q4_K's nibble at
    /// qs (offset 48) plus bit `j` of qh[l] (offset 16).
    static func q5KCode(_ w: [UInt8], _ o: Int, _ j: Int, _ l: Int) -> Int {
        let byte = w[o + 48 + 32 * (j / 2) + l]
        let nibble = j % 2 == 0 ? byte & 0xF : byte >> 4
        return Int(nibble | ((w[o + 16 + l] >> j) & 1) << 4)
    }

    /// Q6_K: the unsigned 6-bit code (0...63) of element `e` of the super-block at `o`.
    static func q6KCode(_ w: [UInt8], _ o: Int, _ e: Int) -> Int {
        let half = e / 128, quarter = (e % 128) / 32, l = e % 32
        let low = w[o + 64 * half + l + (quarter & 1) * 32]
        let nibble = quarter < 2 ? low & 0xF : low >> 4
        let high = (w[o + 128 + 32 * half + l] >> (2 * quarter)) & 3
        return Int(nibble | high << 4)
    }

    // MARK: - ggml's rounding helpers

    /// ggml's nearest_int: round half to even through the 1.5 * 2^23 trick.
    static func nearestInt(_ f: Float) -> Int {
        let v = f + 12_582_912
        return Int(Int32(bitPattern: v.bitPattern & 0x007F_FFFF)) - 0x0040_0000
    }

    /// IEEE half bits, round to nearest even.
    static func halfBits(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7E00 }
        return Float16(f).bitPattern
    }

    /// bfloat16 bits, round to nearest even, NaN quieted as ggml does.
    static func bfloatBits(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if u & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: u >> 16) | 64 }
        return UInt16(truncatingIfNeeded: (UInt64(u) + UInt64(0x7FFF + ((u >> 16) & 1))) >> 16)
    }

    static func half(_ bytes: [UInt8], _ o: Int) -> Float { Float(Float16(bitPattern: load16(bytes, o))) }
    static func load16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func load32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
    static func store16(_ v: UInt16, _ b: inout [UInt8], _ o: Int) {
        b[o] = UInt8(v & 0xFF)
        b[o + 1] = UInt8(v >> 8)
    }
    static func store32(_ v: UInt32, _ b: inout [UInt8], _ o: Int) {
        for i in 0..<4 { b[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xFF) }
    }

    /// ggml's MIN(15, (int8_t)v) for v >= 0, defined for every input.
    static func truncNibble(_ v: Float) -> UInt8 {
        if !(v >= 0) { return 0 }
        if v >= 15 { return 15 }
        return UInt8(v)
    }

    /// ggml's MIN(31, (int8_t)v) (Q5_0) and (uint8_t)v (Q5_1, whose argument stays below 32) for v >= 0,
    /// defined for every input.
    static func truncQ5(_ v: Float) -> UInt8 {
        if !(v >= 0) { return 0 }
        if v >= 31 { return 31 }
        return UInt8(v)
    }

    /// Q5_0 / Q5_1: packs 32 codes (0...31): nibbles at `qs` as Q4_0 does, bit 4 of code i into bit i of the
    /// little-endian u32 at `qh`.
    static func packQ5(_ q: [UInt8], _ y: inout [UInt8], qh: Int, qs: Int) {
        var h: UInt32 = 0
        for j in 0..<16 {
            y[qs + j] = (q[j] & 0xF) | (q[j + 16] & 0xF) << 4
            h |= UInt32(q[j] >> 4) << UInt32(j)
            h |= UInt32(q[j + 16] >> 4) << UInt32(j + 16)
        }
        store32(h, &y, qh)
    }

    // MARK: - Per-format quantizers (ggml's *_ref algorithms)

    static func quantizeQ5_0(_ x: [Float], _ i: Int, _ y: inout [UInt8], _ o: Int) {
        var amax: Float = 0, maxv: Float = 0
        for j in 0..<32 where amax < abs(x[i + j]) {
            amax = abs(x[i + j])
            maxv = x[i + j]
        }
        let d = maxv / -16
        let id: Float = d != 0 ? 1 / d : 0
        store16(halfBits(d), &y, o)
        packQ5((0..<32).map { truncQ5(x[i + $0] * id + 16.5) }, &y, qh: o + 2, qs: o + 6)
    }

    static func quantizeQ5_1(_ x: [Float], _ i: Int, _ y: inout [UInt8], _ o: Int) {
        var minv = Float.greatestFiniteMagnitude, maxv = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[i + j] < minv { minv = x[i + j] }
            if x[i + j] > maxv { maxv = x[i + j] }
        }
        let d = (maxv - minv) / 31
        let id: Float = d != 0 ? 1 / d : 0
        store16(halfBits(d), &y, o)
        store16(halfBits(minv), &y, o + 2)
        packQ5((0..<32).map { truncQ5((x[i + $0] - minv) * id + 0.5) }, &y, qh: o + 4, qs: o + 8)
    }

    static func quantizeQ4_0(_ x: [Float], _ i: Int, _ y: inout [UInt8], _ o: Int) {
        var amax: Float = 0, maxv: Float = 0
        for j in 0..<32 where amax < abs(x[i + j]) {
            amax = abs(x[i + j])
            maxv = x[i + j]
        }
        let d = maxv / -8
        let id: Float = d != 0 ? 1 / d : 0
        store16(halfBits(d), &y, o)
        for j in 0..<16 {
            let lo = truncNibble(x[i + j] * id + 8.5), hi = truncNibble(x[i + j + 16] * id + 8.5)
            y[o + 2 + j] = lo | hi << 4
        }
    }

    static func quantizeQ4_1(_ x: [Float], _ i: Int, _ y: inout [UInt8], _ o: Int) {
        var minv = Float.greatestFiniteMagnitude, maxv = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[i + j] < minv { minv = x[i + j] }
            if x[i + j] > maxv { maxv = x[i + j] }
        }
        let d = (maxv - minv) / 15
        let id: Float = d != 0 ? 1 / d : 0
        store16(halfBits(d), &y, o)
        store16(halfBits(minv), &y, o + 2)
        for j in 0..<16 {
            let lo = truncNibble((x[i + j] - minv) * id + 0.5), hi = truncNibble((x[i + j + 16] - minv) * id + 0.5)
            y[o + 4 + j] = lo | hi << 4
        }
    }

    static func quantizeQ8_0(_ x: [Float], _ i: Int, _ y: inout [UInt8], _ o: Int) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[i + j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        store16(halfBits(d), &y, o)
        for j in 0..<32 {
            var v = (x[i + j] * id).rounded()
            if !(v >= -128) { v = v.isNaN ? 0 : -128 }
            if v > 127 { v = 127 }
            y[o + 2 + j] = UInt8(bitPattern: Int8(v))
        }
    }

    /// ggml's make_qkx2_quants (squared error, no MAD): codes L in 0...nmax, returns (scale, -min).
    static func makeQkx2Quants(_ x: ArraySlice<Float>, weights: [Float], nmax: Int, rmin: Float, rdelta: Float, nstep: Int,
                               L: inout [UInt8], at lo: Int) -> (scale: Float, theMin: Float) {
        let x = Array(x), n = x.count
        var minv = x[0], maxv = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < minv { minv = x[i] }
            if x[i] > maxv { maxv = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if minv > 0 { minv = 0 }
        if maxv == minv {
            for i in 0..<n { L[lo + i] = 0 }
            return (0, -minv)
        }
        var iscale = Float(nmax) / (maxv - minv)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = nearestInt(iscale * (x[i] - minv))
            L[lo + i] = UInt8(max(0, min(nmax, l)))
            var diff = scale * Float(L[lo + i]) + minv - x[i]
            diff = diff * diff
            bestError += weights[i] * diff
        }
        var laux = [UInt8](repeating: 0, count: n)
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (maxv - minv)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = max(0, min(nmax, nearestInt(iscale * (x[i] - minv))))
                laux[i] = UInt8(l)
                let w = weights[i]
                sumL += w * Float(l)
                sumL2 += w * Float(l) * Float(l)
                sumXL += w * Float(l) * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            if D > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / D
                var thisMin = (sumL2 * sumX - sumL * sumXL) / D
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var curError: Float = 0
                for i in 0..<n {
                    var diff = thisScale * Float(laux[i]) + thisMin - x[i]
                    diff = diff * diff
                    curError += weights[i] * diff
                }
                if curError < bestError {
                    for i in 0..<n { L[lo + i] = laux[i] }
                    bestError = curError
                    scale = thisScale
                    minv = thisMin
                }
            }
        }
        return (scale, -minv)
    }

    static func quantizeQ4_K(_ x: [Float], _ y: inout [UInt8], _ o: Int) {
        let L = quantizeKScales(x, &y, o, nmax: 15, rmin: -1, nstep: 20)
        for c in 0..<4 {
            for l in 0..<32 { y[o + 16 + 32 * c + l] = L[64 * c + l] | L[64 * c + l + 32] << 4 }
        }
    }

    /// ggml's quantize_row_q5_K_ref: Q4_K's search with 5-bit codes, the fifth bits packed into qh.
    static func quantizeQ5_K(_ x: [Float], _ y: inout [UInt8], _ o: Int) {
        let L = quantizeKScales(x, &y, o, nmax: 31, rmin: -0.5, nstep: 15)
        for i in 0..<32 { y[o + 16 + i] = 0 }
        for c in 0..<4 {
            for l in 0..<32 {
                let l1 = L[64 * c + l], l2 = L[64 * c + l + 32]
                y[o + 16 + l] |= (l1 >> 4) << UInt8(2 * c) | (l2 >> 4) << UInt8(2 * c + 1)
                y[o + 48 + 32 * c + l] = (l1 & 0xF) | (l2 & 0xF) << 4
            }
        }
    }

    /// The shared first part of ggml's Q4_K / Q5_K reference quantizers: per sub-block scale/min search
    /// (make_qkx2_quants with `nmax`, `rmin`, step 0.1, `nstep`), the 6-bit scales and mins packed at o + 4 and
    /// the f16 d / dmin at o / o + 2; returns the final codes (0...nmax) of the 256 weights.
    static func quantizeKScales(_ x: [Float], _ y: inout [UInt8], _ o: Int, nmax: Int, rmin: Float, nstep: Int) -> [UInt8] {
        var L = [UInt8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            var sumX2: Float = 0
            for l in 0..<32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
            let avX = (sumX2 / 32).squareRoot()
            let weights = (0..<32).map { avX + abs(x[32 * j + $0]) }
            let r = makeQkx2Quants(x[(32 * j)..<(32 * j + 32)], weights: weights, nmax: nmax, rmin: rmin, rdelta: 0.1, nstep: nstep,
                                   L: &L, at: 32 * j)
            scales[j] = r.scale
            mins[j] = r.theMin
            if scales[j] > maxScale { maxScale = scales[j] }
            if mins[j] > maxMin { maxMin = mins[j] }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        var sc = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
            let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
            if j < 4 {
                sc[j] = ls
                sc[j + 4] = lm
            } else {
                sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                sc[j - 4] |= (ls >> 4) << 6
                sc[j] |= (lm >> 4) << 6
            }
        }
        store16(halfBits(maxScale / 63), &y, o)
        store16(halfBits(maxMin / 63), &y, o + 2)
        for i in 0..<12 { y[o + 4 + i] = sc[i] }
        let dd = half(y, o), dmin = half(y, o + 2)
        for j in 0..<8 {
            let (s, m) = q4KScaleMin(j, sc, 0)
            let d = dd * Float(s)
            if d == 0 { continue }
            let dm = dmin * Float(m)
            for ii in 0..<32 { L[32 * j + ii] = UInt8(max(0, min(nmax, nearestInt((x[32 * j + ii] + dm) / d)))) }
        }
        return L
    }

    /// ggml's make_qx_quants with rmse_type 1 (weights x^2) and no importance matrix; L holds codes + nmax.
    static func makeQxQuants(_ x: ArraySlice<Float>, nmax: Int, L: inout [Int8], at lo: Int) -> Float {
        let x = Array(x), n = x.count
        var maxv: Float = 0, amax: Float = 0
        for i in 0..<n where abs(x[i]) > amax {
            amax = abs(x[i])
            maxv = x[i]
        }
        if amax < 1e-15 {
            for i in 0..<n { L[lo + i] = 0 }
            return 0
        }
        var iscale = -Float(nmax) / maxv
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
            L[lo + i] = Int8(l + nmax)
            let w = x[i] * x[i]
            sumlx += w * x[i] * Float(l)
            suml2 += w * Float(l) * Float(l)
        }
        var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(step)) / maxv
            sumlx = 0
            suml2 = 0
            for i in 0..<n {
                let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
                let w = x[i] * x[i]
                sumlx += w * x[i] * Float(l)
                suml2 += w * Float(l) * Float(l)
            }
            if suml2 > 0 && sumlx * sumlx > best * suml2 {
                for i in 0..<n { L[lo + i] = Int8(nmax + max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))) }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
    }

    static func quantizeQ6_K(_ x: [Float], _ y: inout [UInt8], _ o: Int) {
        var L = [Int8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 16)
        var maxScale: Float = 0, maxAbsScale: Float = 0
        for ib in 0..<16 {
            let scale = makeQxQuants(x[(16 * ib)..<(16 * ib + 16)], nmax: 32, L: &L, at: 16 * ib)
            scales[ib] = scale
            if abs(scale) > maxAbsScale {
                maxAbsScale = abs(scale)
                maxScale = scale
            }
        }
        if maxAbsScale < 1e-15 {
            for i in 0..<210 { y[o + i] = 0 }
            return
        }
        let iscale: Float = -128 / maxScale
        store16(halfBits(1 / iscale), &y, o + 208)
        for ib in 0..<16 { y[o + 192 + ib] = UInt8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[ib]))) }
        let dd = half(y, o + 208)
        for j in 0..<16 {
            let d = dd * Float(Int8(bitPattern: y[o + 192 + j]))
            if d == 0 { continue }
            for ii in 0..<16 { L[16 * j + ii] = Int8(max(-32, min(31, nearestInt(x[16 * j + ii] / d))) + 32) }
        }
        for h in 0..<2 {
            for l in 0..<32 {
                let base = 128 * h
                let q1 = UInt8(L[base + l]), q2 = UInt8(L[base + l + 32]), q3 = UInt8(L[base + l + 64]), q4 = UInt8(L[base + l + 96])
                y[o + 64 * h + l] = (q1 & 0xF) | (q3 & 0xF) << 4
                y[o + 64 * h + l + 32] = (q2 & 0xF) | (q4 & 0xF) << 4
                y[o + 128 + 32 * h + l] = (q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6
            }
        }
    }
}
