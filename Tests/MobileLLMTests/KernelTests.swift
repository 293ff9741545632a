import CMobileLLMKernels
import Foundation
import Testing
@testable import MobileLLM
@testable import MobileLLMTestSupport

/// Every SIMD matrix kernel against a double-precision Swift reference, on odd sizes and all element types.
@Suite("Matrix kernels")
struct KernelTests {
    static let shapes: [(n: Int, k: Int, m: Int)] = [(1, 1, 1), (1, 17, 5), (3, 33, 9), (4, 64, 8), (5, 100, 13), (9, 129, 7), (2, 7, 4), (16, 48, 32)]

    func reference(x: [Float], w: [Float], n: Int, k: Int, m: Int) -> [Double] {
        var y = [Double](repeating: 0, count: n * m)
        for i in 0..<n { for j in 0..<m { for t in 0..<k { y[i * m + j] += Double(x[i * k + t]) * Double(w[j * k + t]) } } }
        return y
    }

    /// Rounds values to what the stored type can hold, and returns the stored bytes.
    func store(_ values: [Float], as dtype: mlk_dtype) -> (rounded: [Float], bytes: [UInt8]) {
        switch dtype {
        case MLK_DTYPE_F16:
            let halves = values.map { Float16($0) }
            return (halves.map { Float($0) }, halves.withUnsafeBytes { Array($0) })
        case MLK_DTYPE_BF16:
            let bits = values.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
            return (bits.map { Float(bitPattern: UInt32($0) << 16) }, bits.withUnsafeBytes { Array($0) })
        default:
            return (values, values.withUnsafeBytes { Array($0) })
        }
    }

    @Test("matmul equals the reference for every ISA and dtype")
    func matmul() {
        let best = mlk_detect_isa()
        var generator = SeededGenerator(seed: 99)
        func random() -> Float { Float(Int(generator.next() % 2001) - 1000) / 500 }
        var isas = [MLK_ISA_SCALAR]
        if best.rawValue >= MLK_ISA_AVX2.rawValue { isas.append(MLK_ISA_AVX2) }
        if best.rawValue >= MLK_ISA_AVX512.rawValue { isas.append(MLK_ISA_AVX512) }
        for isa in isas {
            for dtype in [MLK_DTYPE_F32, MLK_DTYPE_F16, MLK_DTYPE_BF16] {
                for shape in Self.shapes {
                    let x = (0..<(shape.n * shape.k)).map { _ in random() }
                    let (w, bytes) = store((0..<(shape.m * shape.k)).map { _ in random() }, as: dtype)
                    let expected = reference(x: x, w: w, n: shape.n, k: shape.k, m: shape.m)
                    var y = [Float](repeating: .nan, count: shape.n * shape.m)
                    bytes.withUnsafeBytes { wb in
                        x.withUnsafeBufferPointer { xb in
                            y.withUnsafeMutableBufferPointer { yb in
                                // Two calls over split row ranges, as threads do.
                                let split = Int64(shape.m / 2)
                                mlk_matmul_rows_isa(isa, xb.baseAddress, Int64(shape.n), Int64(shape.k), wb.baseAddress, dtype, 0, split, yb.baseAddress, Int64(shape.m))
                                mlk_matmul_rows_isa(isa, xb.baseAddress, Int64(shape.n), Int64(shape.k), wb.baseAddress, dtype, split, Int64(shape.m), yb.baseAddress, Int64(shape.m))
                            }
                        }
                    }
                    let worst = zip(y, expected).map { abs(Double($0) - $1) }.max() ?? .nan
                    #expect(worst <= 1e-4 * Double(shape.k), "isa \(isa.rawValue) dtype \(dtype.rawValue) shape \(shape): error \(worst)")
                }
            }
        }
    }

    @Test("f16 and bf16 conversion handle subnormals, infinities and signs")
    func conversion() {
        let halves: [Float16] = [0, -0, 1, -2.5, 65504, .infinity, -.infinity, Float16(bitPattern: 0x0001), Float16(bitPattern: 0x03FF), 0.000061035156]
        var out = [Float](repeating: 0, count: halves.count)
        halves.withUnsafeBytes { source in
            out.withUnsafeMutableBufferPointer { mlk_convert_to_f32(source.baseAddress, MLK_DTYPE_F16, Int64(halves.count), $0.baseAddress) }
        }
        #expect(out == halves.map { Float($0) })
        let nan = [Float16.nan]
        var nanOut: [Float] = [0]
        nan.withUnsafeBytes { source in nanOut.withUnsafeMutableBufferPointer { mlk_convert_to_f32(source.baseAddress, MLK_DTYPE_F16, 1, $0.baseAddress) } }
        #expect(nanOut[0].isNaN)
    }
}

/// The attention kernel against a double-precision reference, for f32 and f16 caches, GQA groups and odd head sizes.
@Suite("Attention kernel")
struct AttentionKernelTests {
    /// `keys` and `values` ([length, d] f32) as KV-cache rows of each type that takes head size d: f32, f16 and (d % 32
    /// == 0) Q8_0.
    static func cacheRows(keys: [Float], values: [Float], length: Int, d: Int) -> [(mlk_dtype, [UInt8], [UInt8])] {
        var stored: [(mlk_dtype, [UInt8], [UInt8])] = [
            (MLK_DTYPE_F32, keys.withUnsafeBytes { Array($0) }, values.withUnsafeBytes { Array($0) }),
            (MLK_DTYPE_F16, keys.map { Float16($0) }.withUnsafeBytes { Array($0) }, values.map { Float16($0) }.withUnsafeBytes { Array($0) })]
        if d % 32 == 0 {
            func q8(_ x: [Float]) -> [UInt8] { (0..<length).flatMap { QuantReference.quantize(Array(x[($0 * d)..<(($0 + 1) * d)]), type: .q8_0) ?? [] } }
            stored.append((MLK_DTYPE_Q8_0, q8(keys), q8(values)))
        }
        return stored
    }

    @Test("attention of several rows over one K/V segment is bit-identical to each row alone (f32, f16, Q8_0)",
          arguments: [(3, 64, [1, 2, 3, 9, 16, 17, 40]), (4, 32, [7, 8]), (1, 96, [30, 31, 32, 33, 34, 35, 36, 256]), (2, 40, [5, 13])])
    func attentionRows(group: Int, d: Int, lengths: [Int]) {
        var generator = SeededGenerator(seed: UInt64(group * 7 + d + lengths.count))
        func random() -> Float { Float(Int(generator.next() % 2001) - 1000) / 400 }
        let rows = lengths.count, length = lengths.max() ?? 0
        let q = (0..<(rows * group * d)).map { _ in random() }
        let keys = (0..<(length * d)).map { _ in random() }, values = (0..<(length * d)).map { _ in random() }
        let scale = Float(1 / Double(d).squareRoot())
        let stored = Self.cacheRows(keys: keys, values: values, length: length, d: d)
        let stride = group * (d + 2), scoresStride = group * length
        for (dtype, k, v) in stored {
            var together = [Float](repeating: .nan, count: rows * stride), alone = together
            var scores = [Float](repeating: 0, count: rows * scoresStride)
            let counts = lengths.map(Int64.init)
            k.withUnsafeBytes { kb in v.withUnsafeBytes { vb in
                mlk_attention_partial_rows(Int64(rows), q, Int64(group * d), counts, Int64(group), Int64(d), kb.baseAddress, vb.baseAddress,
                                           dtype, scale, &scores, Int64(scoresStride), &together, Int64(stride))
                alone.withUnsafeMutableBufferPointer { a in
                    for r in 0..<rows {
                        let partial = a.baseAddress! + r * stride
                        q.withUnsafeBufferPointer { qb in
                            mlk_attention_partial(qb.baseAddress! + r * group * d, Int64(group), Int64(d), kb.baseAddress, vb.baseAddress, dtype,
                                                  Int64(lengths[r]), scale, &scores, partial, partial + group * d, partial + group * d + group)
                        }
                    }
                }
            } }
            #expect(together.map(\.bitPattern) == alone.map(\.bitPattern), "dtype \(dtype.rawValue) group \(group) d \(d) lengths \(lengths)")
            #expect(!together.contains { $0.isNaN })
        }
    }

    @Test("on AVX-512 the AVX2 attention kernel's numbers come from 512-bit registers bit for bit (f32, f16, Q8_0)",
          arguments: [(3, 64), (4, 64), (6, 40), (1, 96), (5, 256), (2, 8), (7, 128)])
    func attentionPairs512(group: Int, d: Int) {
        guard mlk_detect_isa() == MLK_ISA_AVX512 || mlk_detect_isa() == MLK_ISA_AVX512_VNNI else { return }
        var generator = SeededGenerator(seed: UInt64(group * 131 + d))
        func random() -> Float { Float(Int(generator.next() % 2001) - 1000) / 400 }
        for length in [1, 2, 7, 33, 256] {
            let q = (0..<(group * d)).map { _ in random() }
            let keys = (0..<(length * d)).map { _ in random() }, values = (0..<(length * d)).map { _ in random() }
            let stored = Self.cacheRows(keys: keys, values: values, length: length, d: d)
            for (dtype, k, v) in stored {
                #expect(mlk_attention_kernel(MLK_ISA_AVX512, dtype, Int64(d)) == MLK_KERNEL_AVX2)
                var narrow = [Float](repeating: .nan, count: group * d), wide = narrow
                var scores = [Float](repeating: 0, count: group * length)
                k.withUnsafeBytes { kb in v.withUnsafeBytes { vb in
                    mlk_attention_isa(MLK_ISA_AVX2, q, Int64(group), Int64(d), kb.baseAddress, vb.baseAddress, dtype, Int64(length),
                                      0.125, &scores, &narrow)
                    mlk_attention_isa(MLK_ISA_AVX512, q, Int64(group), Int64(d), kb.baseAddress, vb.baseAddress, dtype, Int64(length),
                                      0.125, &scores, &wide)
                } }
                #expect(wide.map(\.bitPattern) == narrow.map(\.bitPattern), "dtype \(dtype.rawValue) group \(group) d \(d) length \(length)")
                #expect(!wide.contains { $0.isNaN })
            }
        }
    }

    @Test("the attention kernel choice: AVX2 where its sizes fit (on AVX-512 too), AVX-512 or scalar beyond")
    func attentionKernelChoice() {
        #expect(mlk_attention_kernel(MLK_ISA_SCALAR, MLK_DTYPE_F32, 64) == MLK_KERNEL_SCALAR)
        #expect(mlk_attention_kernel(MLK_ISA_SCALAR, MLK_DTYPE_F32, 0) == MLK_KERNEL_NONE)
        if MLK_ISA_AVX2.rawValue <= mlk_detect_isa().rawValue && mlk_detect_isa() != MLK_ISA_NEON_DOTPROD {
            #expect(mlk_attention_kernel(MLK_ISA_AVX2, MLK_DTYPE_F16, 64) == MLK_KERNEL_AVX2)
            #expect(mlk_attention_kernel(MLK_ISA_AVX2, MLK_DTYPE_F16, 320) == MLK_KERNEL_SCALAR)
        }
        if MLK_ISA_AVX512.rawValue <= mlk_detect_isa().rawValue && mlk_detect_isa() != MLK_ISA_NEON_DOTPROD {
            #expect(mlk_attention_kernel(MLK_ISA_AVX512, MLK_DTYPE_Q8_0, 64) == MLK_KERNEL_AVX2)
            #expect(mlk_attention_kernel(MLK_ISA_AVX512, MLK_DTYPE_F32, 36) == MLK_KERNEL_AVX512)
            #expect(mlk_attention_kernel(MLK_ISA_AVX512, MLK_DTYPE_Q8_0, 40) == MLK_KERNEL_NONE)
            #expect(mlk_attention_kernel(MLK_ISA_AVX512, MLK_DTYPE_F32, 320) == MLK_KERNEL_AVX512)
        }
    }

    @Test("grouped attention equals the reference", arguments: [(1, 16, 1), (4, 64, 37), (3, 24, 5), (6, 40, 130), (2, 128, 9), (4, 300, 3)])
    func attention(group: Int, d: Int, length: Int) {
        var generator = SeededGenerator(seed: UInt64(group * 1000 + d + length))
        func random() -> Float { Float(Int(generator.next() % 2001) - 1000) / 400 }
        let q = (0..<(group * d)).map { _ in random() }
        let keys = (0..<(length * d)).map { _ in Float(Float16(random())) }
        let values = (0..<(length * d)).map { _ in Float(Float16(random())) }
        let scale = Float(1 / Double(d).squareRoot())
        var expected = [Double](repeating: 0, count: group * d)
        for g in 0..<group {
            let scores = (0..<length).map { p in (0..<d).reduce(0.0) { $0 + Double(q[g * d + $1]) * Double(keys[p * d + $1]) } * Double(scale) }
            let maximum = scores.max() ?? 0
            let weights = scores.map { exp($0 - maximum) }
            let total = weights.reduce(0, +)
            for p in 0..<length { for t in 0..<d { expected[g * d + t] += weights[p] / total * Double(values[p * d + t]) } }
        }
        let halves = (keys.map { Float16($0) }, values.map { Float16($0) })
        // Q8_0 rows (head sizes that are multiples of 32) against the reference on their dequantized values.
        if d % 32 == 0 {
            var keyBlocks: [UInt8] = [], valueBlocks: [UInt8] = []
            var dequantizedKeys: [Float] = [], dequantizedValues: [Float] = []
            for p in 0..<length {
                let k = QuantReference.quantize(Array(keys[(p * d)..<((p + 1) * d)]), type: .q8_0) ?? []
                let v = QuantReference.quantize(Array(values[(p * d)..<((p + 1) * d)]), type: .q8_0) ?? []
                keyBlocks += k
                valueBlocks += v
                dequantizedKeys += QuantReference.dequantize(k, type: .q8_0, count: d) ?? []
                dequantizedValues += QuantReference.dequantize(v, type: .q8_0, count: d) ?? []
            }
            var reference = [Double](repeating: 0, count: group * d)
            for g in 0..<group {
                let scores = (0..<length).map { p in (0..<d).reduce(0.0) { $0 + Double(q[g * d + $1]) * Double(dequantizedKeys[p * d + $1]) } * Double(scale) }
                let maximum = scores.max() ?? 0
                let weights = scores.map { exp($0 - maximum) }
                let total = weights.reduce(0, +)
                for p in 0..<length { for t in 0..<d { reference[g * d + t] += weights[p] / total * Double(dequantizedValues[p * d + t]) } }
            }
            for isa in [MLK_ISA_SCALAR, MLK_ISA_AVX2, MLK_ISA_AVX512] where isa.rawValue <= mlk_detect_isa().rawValue {
                var out = [Float](repeating: .nan, count: group * d)
                var scores = [Float](repeating: 0, count: group * length)
                keyBlocks.withUnsafeBytes { k in valueBlocks.withUnsafeBytes { v in
                    mlk_attention_isa(isa, q, Int64(group), Int64(d), k.baseAddress, v.baseAddress, MLK_DTYPE_Q8_0, Int64(length), scale, &scores, &out)
                } }
                let worst = zip(out, reference).map { abs(Double($0) - $1) }.max() ?? .nan
                #expect(worst < 1e-4, "Q8_0 isa \(isa.rawValue) group \(group) d \(d) length \(length): \(worst)")
            }
        }
        for isa in [MLK_ISA_SCALAR, MLK_ISA_AVX2, MLK_ISA_AVX512] where isa.rawValue <= mlk_detect_isa().rawValue {
            for dtype in [MLK_DTYPE_F32, MLK_DTYPE_F16] {
                var out = [Float](repeating: .nan, count: group * d)
                var scores = [Float](repeating: 0, count: group * length)
                func run(_ k: UnsafeRawPointer?, _ v: UnsafeRawPointer?) {
                    mlk_attention_isa(isa, q, Int64(group), Int64(d), k, v, dtype, Int64(length), scale, &scores, &out)
                }
                if dtype == MLK_DTYPE_F32 {
                    keys.withUnsafeBytes { k in values.withUnsafeBytes { v in run(k.baseAddress, v.baseAddress) } }
                } else {
                    halves.0.withUnsafeBytes { k in halves.1.withUnsafeBytes { v in run(k.baseAddress, v.baseAddress) } }
                }
                let worst = zip(out, expected).map { abs(Double($0) - $1) }.max() ?? .nan
                #expect(worst < 1e-4, "isa \(isa.rawValue) dtype \(dtype.rawValue) group \(group) d \(d) length \(length): \(worst)")
            }
        }
    }
}
