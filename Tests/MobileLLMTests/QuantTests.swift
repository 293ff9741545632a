import CMobileLLMKernels
import Foundation
import Testing
@testable import MobileLLM
@testable import MobileLLMTestSupport

/// Test data helpers for the quantized formats.
enum QuantTestSupport {
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/quant/quant_reference.json")

    static let matmulTypes: [QuantType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    /// Byte offsets of the f16 scale fields in one block of each type this library cannot write.
    static let scaleFields: [QuantType: [Int]] = [.iq4_nl: [0], .q2_K: [80, 82], .q3_K: [108]]

    /// `rows` rows of k weights in `type`: the C quantization of Gaussian values (scale `scale`), or, for a type
    /// this library cannot write (IQ4_NL, Q2_K, Q3_K), random codes with random f16 scales of the same order of
    /// magnitude.
    static func weightBytes(type: QuantType, rows: Int, k: Int, seed: UInt64, scale: Float = 0.05) -> [UInt8] {
        if type.canQuantize { return cQuantize(normals(rows * k, seed: seed, scale: scale), type: type, rows: rows, k: k) }
        var g = SeededGenerator(seed: seed)
        var bytes = (0..<(rows * (type.rowBytes(k) ?? 0))).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        let fields = scaleFields[type] ?? []
        let blocks = bytes.count / type.blockBytes
        let scales = normals(blocks * fields.count, seed: seed ^ 0x5EED, scale: 2 * scale / 127)
        for b in 0..<blocks {
            for (f, offset) in fields.enumerated() {
                QuantReference.store16(Float16(scales[b * fields.count + f]).bitPattern, &bytes, b * type.blockBytes + offset)
            }
        }
        return bytes
    }

    /// The instruction-set levels this CPU can run, lowest first.
    static var isas: [mlk_isa] {
        let best = mlk_detect_isa()
        if best == MLK_ISA_NEON_DOTPROD { return [MLK_ISA_SCALAR, MLK_ISA_NEON_DOTPROD] }
        return [MLK_ISA_SCALAR, MLK_ISA_AVX2, MLK_ISA_AVX512, MLK_ISA_AVX512_VNNI].filter { $0.rawValue <= best.rawValue }
    }

    static func hex(_ s: String) -> [UInt8] {
        var out = [UInt8](), chars = Array(s.utf8)
        out.reserveCapacity(chars.count / 2)
        var i = 0
        func nibble(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c - 48 }
        while i + 1 < chars.count {
            out.append(nibble(chars[i]) << 4 | nibble(chars[i + 1]))
            i += 2
        }
        return out
    }

    static func floats(_ s: String) -> [Float] {
        let b = hex(s)
        return (0..<(b.count / 4)).map { Float(bitPattern: QuantReference.load32(b, 4 * $0)) }
    }

    /// Deterministic roughly normal values (Box-Muller over SeededGenerator).
    static func normals(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            let u1 = (Double(g.next() >> 11) + 1) / 9_007_199_254_740_993.0
            let u2 = Double(g.next() >> 11) / 9_007_199_254_740_992.0
            return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)) * scale
        }
    }

    /// C quantization of `rows` rows of k floats.
    static func cQuantize(_ x: [Float], type: QuantType, rows: Int, k: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0xAA, count: rows * (type.rowBytes(k) ?? 0))
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBytes { ob in mlk_q_quantize_rows(type.rawValue, xb.baseAddress, Int64(rows), Int64(k), ob.baseAddress) }
        }
        return out
    }

    static func cDequantize(_ bytes: [UInt8], type: QuantType, k: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: k)
        bytes.withUnsafeBytes { bb in
            out.withUnsafeMutableBufferPointer { ob in mlk_q_dequantize_row(type.rawValue, bb.baseAddress, Int64(k), ob.baseAddress) }
        }
        return out
    }

    /// The Swift reference's dot product (value and magnitude) of each of the n activation rows `x` ([n, k]) with
    /// each of the `rows` weight rows `weights` of `type`, activation-major.
    static func referenceDots(weights: [UInt8], type: QuantType, rows: Int, k: Int, x: [Float], n: Int) throws -> [(value: Double, magnitude: Double)] {
        let rb = try #require(type.rowBytes(k))
        let acts = try (0..<n).map { try #require(QuantReference.quantizeActivations(Array(x[($0 * k)..<($0 * k + k)]))) }
        return try (0..<(n * rows)).map { index in
            let (i, j) = (index / rows, index % rows)
            return try #require(QuantReference.dot(weights: Array(weights[(j * rb)..<(j * rb + rb)]), type: type, activations: acts[i]))
        }
    }

    /// Expects each y[i * ldy + j] (n activation rows, m weight rows) within `QuantKernelTests.tolerance` of the
    /// reference relative to its magnitude, and the columns m..<ldy untouched (NaN); returns the worst relative error.
    static func expectDots(_ y: [Float], ldy: Int, equal reference: [(value: Double, magnitude: Double)], n: Int, m: Int,
                           label: String) -> Double {
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<m {
                let ref = reference[i * m + j]
                let err = abs(Double(y[i * ldy + j]) - ref.value) / max(ref.magnitude, 1e-30)
                worst = max(worst, err)
                #expect(err <= QuantKernelTests.tolerance, "\(label) row \(j) act \(i): \(y[i * ldy + j]) vs \(ref.value)")
            }
            for j in m..<ldy { #expect(y[i * ldy + j].isNaN, "\(label): wrote outside [j0, j1)") }
        }
        return worst
    }

    /// `rows` rows of k weights of `type` interleaved by `mlk_q_r8_pack`.
    static func r8Packed(_ weights: [UInt8], type: QuantType, rows: Int, k: Int) -> [UInt8] {
        var packed = [UInt8](repeating: 0, count: weights.count)
        weights.withUnsafeBytes { src in
            packed.withUnsafeMutableBytes { mlk_q_r8_pack(type.rawValue, src.baseAddress, Int64(rows), Int64(k), $0.baseAddress) }
        }
        return packed
    }

    static func cActivations(_ x: [Float], type: QuantType, rows: Int, k: Int, isa: mlk_isa) -> [UInt8] {
        let rb = Int(mlk_q_act_row_bytes(type.rawValue, Int64(k)))
        var out = [UInt8](repeating: 0xAA, count: rows * rb)
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBytes { ob in
                mlk_q_quantize_activations_isa(isa, type.rawValue, xb.baseAddress, Int64(rows), Int64(k), ob.baseAddress)
            }
        }
        return out
    }
}

/// The JSON written by scripts/make_quant_fixtures.py.
struct QuantFixture: Decodable {
    struct Row: Decodable {
        let bytes: String
        let dequantized: String
    }
    struct RandomBlocks: Decodable {
        let count: Int
        let bytes: String
        let dequantized: String
    }
    struct TypeEntry: Decodable {
        let type_id: Int32
        let quantized_by: String
        let rows: [Row]
        let random_blocks: RandomBlocks
    }
    let k: Int
    let rows: [String]
    let types: [String: TypeEntry]

    static func load() throws -> QuantFixture {
        try JSONDecoder().decode(QuantFixture.self, from: Data(contentsOf: QuantTestSupport.fixtureURL))
    }
}

@Suite("Quantized formats")
struct QuantFormatTests {
    @Test("type ids, block sizes and row bytes match ggml and the C API")
    func sizes() {
        let expected: [(QuantType, Int32, Int, Int)] = [
            (.f32, 0, 1, 4), (.f16, 1, 1, 2), (.q4_0, 2, 32, 18), (.q4_1, 3, 32, 20), (.q5_0, 6, 32, 22),
            (.q5_1, 7, 32, 24), (.q8_0, 8, 32, 34), (.q4_K, 12, 256, 144), (.q5_K, 13, 256, 176), (.q6_K, 14, 256, 210),
            (.iq4_nl, 20, 32, 18), (.q2_K, 10, 256, 84), (.q3_K, 11, 256, 110), (.bf16, 30, 1, 2),
        ]
        #expect(Set(expected.map(\.0)) == Set(QuantType.allCases), "every case is listed")
        for (type, id, block, bytes) in expected {
            #expect(type.rawValue == id)
            // GGUF's reader knows the same geometry for the same ggml id.
            let ggml = GGMLType(rawValue: UInt32(id))
            #expect(ggml?.blockSize == block && ggml?.blockBytes == bytes, "\(type) vs GGMLType")
            #expect(mlk_q_is_supported(id) == 1)
            #expect(mlk_q_can_quantize(id) == (type.canQuantize ? 1 : 0))
            #expect(QuantType(name: type.name) == type && QuantType(name: type.name.uppercased()) == type)
            #expect(mlk_q_has_matmul(id) == (type.hasQuantizedMatmul ? 1 : 0))
            #expect(mlk_qf32_supported(id) == (type.hasQuantizedMatmul ? 1 : 0), "exact kernel for every int8 type")
            #expect(type.blockSize == block)
            #expect(type.blockBytes == bytes)
            #expect(mlk_q_block_size(id) == Int64(block))
            #expect(mlk_q_row_bytes(id, 512) == 512 / block * bytes)
            #expect(type.rowBytes(512) == 512 / block * bytes)
            #expect(Int(mlk_q_act_row_bytes(id, 512)) == (type.activationRowBytes(512) ?? 0))
        }
    }

    @Test("invalid type ids and sizes give 0 / nil / no writes, never a crash")
    func invalidInput() {
        for bad: Int32 in [-1, 4, 5, 9, 15, 16, 21, 23, 29, 31, 1000] {
            #expect(mlk_q_row_bytes(bad, 256) == 0)
            #expect(mlk_q_block_size(bad) == 0)
            #expect(mlk_q_act_row_bytes(bad, 256) == 0)
            #expect(mlk_q_is_supported(bad) == 0)
        }
        #expect(mlk_q_row_bytes(QuantType.q4_0.rawValue, 33) == 0)
        #expect(mlk_q_row_bytes(QuantType.q4_K.rawValue, 32) == 0)
        #expect(mlk_q_row_bytes(QuantType.q4_K.rawValue, -256) == 0)
        #expect(mlk_q_act_row_bytes(QuantType.f16.rawValue, 256) == 0)
        #expect(QuantType.q6_K.rowBytes(100) == nil)
        #expect(QuantReference.quantize([1, 2, 3], type: .q8_0) == nil)
        #expect(QuantReference.dequantize([1, 2, 3], type: .q8_0, count: 32) == nil)
        #expect(QuantReference.quantizeActivations([Float](repeating: 1, count: 33)) == nil)

        // Functions with outputs leave them untouched on invalid input.
        var y = [Float](repeating: 7, count: 8)
        let x = [Float](repeating: 1, count: 64)
        let w = [UInt8](repeating: 0, count: 64)
        x.withUnsafeBufferPointer { xb in
            w.withUnsafeBytes { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    mlk_q_matmul_rows(99, xb.baseAddress, 1, 64, wb.baseAddress, 0, 2, yb.baseAddress, 8)        // bad type
                    mlk_q_matmul_rows(2, xb.baseAddress, 1, 48, wb.baseAddress, 0, 2, yb.baseAddress, 8)         // k % 32
                    mlk_q_matmul_rows(2, xb.baseAddress, 2, 32, wb.baseAddress, 0, 2, yb.baseAddress, 1)         // ldy < j1
                    mlk_q_matmul_rows(2, xb.baseAddress, 1, 32, wb.baseAddress, 3, 2, yb.baseAddress, 8)         // j1 < j0
                    mlk_q_matmul_rows(2, nil, 1, 32, wb.baseAddress, 0, 2, yb.baseAddress, 8)                    // null
                    mlk_q_dequantize_row(77, wb.baseAddress, 32, yb.baseAddress)
                    mlk_q_quantize_rows(12, xb.baseAddress, 1, 64, nil)
                }
            }
        }
        #expect(y.allSatisfy { $0 == 7 })
    }

    @Test("Swift and C quantizers give gguf's bytes; both dequantizers give gguf's floats bit for bit")
    func fixtures() throws {
        let fixture = try QuantFixture.load()
        let inputs = fixture.rows.map(QuantTestSupport.floats)
        #expect(inputs.count >= 10)
        // Every block-quantized type has an entry, and the 32-block types' bytes come from gguf-py's quantizer.
        for type in QuantType.allCases where type.blockSize > 1 {
            let entry = fixture.types.values.first { $0.type_id == type.rawValue }
            #expect(entry != nil, "no fixture for \(type)")
            if type.blockSize == 32 && type.canQuantize { #expect(entry?.quantized_by == "gguf", "\(type)") }
            // gguf-py has no K-quant quantizer: those bytes come from ggml's quantize_row_*_ref.
            if type.blockSize == 256 && type.canQuantize { #expect(entry?.quantized_by == "ggml", "\(type)") }
            if !type.canQuantize {
                #expect((entry?.random_blocks.count ?? 0) >= 2048, "\(type): dequantization-only fixture")
                #expect(QuantTestSupport.scaleFields[type] != nil, "\(type): test weights need its scale fields")
            }
        }
        for (name, entry) in fixture.types.sorted(by: { $0.key < $1.key }) {
            let type = try #require(QuantType(rawValue: entry.type_id), "\(name)")
            for (i, row) in entry.rows.enumerated() {
                let expectedBytes = QuantTestSupport.hex(row.bytes)
                let expectedFloats = QuantTestSupport.floats(row.dequantized)
                let swiftBytes = try #require(QuantReference.quantize(inputs[i], type: type))
                #expect(swiftBytes == expectedBytes, "\(name) row \(i): Swift quantize differs from \(entry.quantized_by)")
                let cBytes = QuantTestSupport.cQuantize(inputs[i], type: type, rows: 1, k: fixture.k)
                #expect(cBytes == expectedBytes, "\(name) row \(i): C quantize differs from \(entry.quantized_by)")
                let swiftFloats = try #require(QuantReference.dequantize(expectedBytes, type: type, count: fixture.k))
                #expect(swiftFloats.map(\.bitPattern) == expectedFloats.map(\.bitPattern), "\(name) row \(i): Swift dequantize")
                let cFloats = QuantTestSupport.cDequantize(expectedBytes, type: type, k: fixture.k)
                #expect(cFloats.map(\.bitPattern) == expectedFloats.map(\.bitPattern), "\(name) row \(i): C dequantize")
            }
            let random = entry.random_blocks
            let bytes = QuantTestSupport.hex(random.bytes)
            let expected = QuantTestSupport.floats(random.dequantized).map(\.bitPattern)
            #expect(try #require(QuantReference.dequantize(bytes, type: type, count: random.count)).map(\.bitPattern) == expected,
                    "\(name) random blocks: Swift dequantize")
            #expect(QuantTestSupport.cDequantize(bytes, type: type, k: random.count).map(\.bitPattern) == expected,
                    "\(name) random blocks: C dequantize")
        }
    }

    @Test("C quantization equals the Swift reference on many rows, every type")
    func cEqualsSwift() throws {
        let k = 512, rows = 24
        var x = QuantTestSupport.normals(k * rows, seed: 5)
        for r in 0..<rows { for t in 0..<k { x[r * k + t] *= Float(1 << (r % 8)) / 16 } }
        for t in 0..<64 { x[3 * k + t] = 0 }
        for type in QuantType.allCases where !type.canQuantize {
            // Read-only types: neither quantizer writes anything.
            #expect(QuantReference.quantize(Array(x[0..<k]), type: type) == nil)
            #expect(QuantTestSupport.cQuantize(x, type: type, rows: rows, k: k).allSatisfy { $0 == 0xAA }, "\(type)")
        }
        for type in QuantType.allCases where type.canQuantize {
            let c = QuantTestSupport.cQuantize(x, type: type, rows: rows, k: k)
            let rb = try #require(type.rowBytes(k))
            for r in 0..<rows {
                let swift = try #require(QuantReference.quantize(Array(x[(r * k)..<(r * k + k)]), type: type))
                #expect(Array(c[(r * rb)..<(r * rb + rb)]) == swift, "\(type) row \(r)")
            }
        }
    }

    @Test("activation quantization: every ISA gives the Swift reference's bytes")
    func activations() throws {
        let k = 320, rows = 5
        var x = QuantTestSupport.normals(k * rows, seed: 11, scale: 3)
        for t in 0..<32 { x[t] = 0 }                    // all-zero block
        for t in 32..<64 { x[t] = Float(t % 5) - 2 }    // exact ties
        x[70] = 1e6
        let expected = try (0..<rows).flatMap { r in
            try #require(QuantReference.quantizeActivations(Array(x[(r * k)..<(r * k + k)]))).bytes
        }
        for isa in QuantTestSupport.isas {
            for type in [QuantType.q4_0, .q8_0, .q4_1] {
                #expect(QuantTestSupport.cActivations(x, type: type, rows: rows, k: k, isa: isa) == expected, "isa \(isa.rawValue) \(type)")
            }
        }
    }
}

@Suite("Quantized matmul kernels")
struct QuantKernelTests {
    /// Relative tolerance against the magnitude (sum of |terms|) of the exact dot product. Each kernel adds
    /// per-block products of three float32 roundings (int->float is exact: |isum| < 2^24) in some summation
    /// order; the observed worst case is reported by the test and is about 1e-7 of the magnitude.
    static let tolerance = 2e-6

    @Test("every fast kernel equals the Swift reference dot product", arguments: QuantTestSupport.matmulTypes)
    func kernels(type: QuantType) throws {
        let ks = type.blockSize == 256 ? [256, 512, 1280] : [32, 64, 96, 160, 544, 1056]
        let ns = [1, 2, 3, 5, 8, 17]
        let m = 17
        var worst = 0.0
        for k in ks {
            let w = QuantTestSupport.weightBytes(type: type, rows: m, k: k, seed: UInt64(k))
            for n in ns {
                let x = QuantTestSupport.normals(n * k, seed: UInt64(1000 + n * k))
                let xq = QuantTestSupport.cActivations(x, type: type, rows: n, k: k, isa: mlk_detect_isa())
                let reference = try QuantTestSupport.referenceDots(weights: w, type: type, rows: m, k: k, x: x, n: n)
                for isa in QuantTestSupport.isas {
                    let ldy = m + 3
                    var y = [Float](repeating: .nan, count: n * ldy)
                    xq.withUnsafeBytes { xb in
                        w.withUnsafeBytes { wb in
                            y.withUnsafeMutableBufferPointer { yb in
                                // Calls over split row ranges (9 = 8 + 1, 1, 3 and 4 rows: every tile shape of
                                // the drivers), as threads do.
                                for (j0, j1) in [(0, 9), (9, 10), (10, 14), (14, m)] {
                                    mlk_q_matmul_rows_isa(isa, type.rawValue, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress,
                                                          Int64(j0), Int64(j1), yb.baseAddress, Int64(ldy))
                                }
                            }
                        }
                    }
                    worst = max(worst, QuantTestSupport.expectDots(y, ldy: ldy, equal: reference, n: n, m: m,
                                                                   label: "\(type) isa \(isa.rawValue) k \(k) n \(n)"))
                }
            }
        }
        print("quant kernels \(type): worst |fast - reference| / magnitude = \(worst)")
    }

    @Test("random block bytes (any scales, NaN and infinite included) never crash; finite results agree across ISAs")
    func randomBytes() throws {
        var g = SeededGenerator(seed: 4242)
        for type in QuantTestSupport.matmulTypes {
            let k = 512, m = 9, n = 3
            let rb = try #require(type.rowBytes(k))
            let w = (0..<(m * rb)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            let x = QuantTestSupport.normals(n * k, seed: 9)
            let xq = QuantTestSupport.cActivations(x, type: type, rows: n, k: k, isa: mlk_detect_isa())
            var results = [[Float]]()
            for isa in QuantTestSupport.isas {
                var y = [Float](repeating: 0, count: n * m)
                xq.withUnsafeBytes { xb in
                    w.withUnsafeBytes { wb in
                        y.withUnsafeMutableBufferPointer { yb in
                            mlk_q_matmul_rows_isa(isa, type.rawValue, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress, 0, Int64(m), yb.baseAddress, Int64(m))
                        }
                    }
                }
                results.append(y)
            }
            for y in results.dropFirst() {
                for (a, b) in zip(results[0], y) where a.isFinite && b.isFinite {
                    #expect(abs(a - b) <= 1e-4 * max(1, abs(a)), "\(type): \(a) vs \(b)")
                }
            }
            for j in 0..<m {
                let row = Array(w[(j * rb)..<(j * rb + rb)])
                let c = QuantTestSupport.cDequantize(row, type: type, k: k)
                let swift = try #require(QuantReference.dequantize(row, type: type, count: k))
                #expect(c.map(\.bitPattern) == swift.map(\.bitPattern) || zip(c, swift).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(type) row \(j)")
            }
        }
    }

    /// Expected relative RMS error of a quantized matmul against float32 on Gaussian data: the weight format's
    /// rounding error (4-bit: about 7-9 %, 6-bit: about 2 %, 8-bit: about 0.5 %) plus the 8-bit activations
    /// (about 0.5 %). The bounds leave roughly 1.5x headroom over the measured values.
    static let errorBounds: [QuantType: Double] = [.q4_0: 0.13, .q4_1: 0.12, .q5_0: 0.065, .q5_1: 0.052, .q4_K: 0.1,
                                                   .q5_K: 0.05, .q6_K: 0.035, .q8_0: 0.015]

    @Test("quantized matmul stays within the format's error bound of the float32 matmul",
          arguments: QuantTestSupport.matmulTypes.filter(\.canQuantize))
    func quantizationError(type: QuantType) throws {
        let k = 1024, m = 48, n = 3
        let wf = QuantTestSupport.normals(m * k, seed: 77, scale: 0.02)
        let x = QuantTestSupport.normals(n * k, seed: 78)
        let w = QuantTestSupport.cQuantize(wf, type: type, rows: m, k: k)
        let xq = QuantTestSupport.cActivations(x, type: type, rows: n, k: k, isa: mlk_detect_isa())
        var y = [Float](repeating: 0, count: n * m)
        xq.withUnsafeBytes { xb in
            w.withUnsafeBytes { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    mlk_q_matmul_rows(type.rawValue, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress, 0, Int64(m), yb.baseAddress, Int64(m))
                }
            }
        }
        var errSq = 0.0, refSq = 0.0
        for i in 0..<n {
            for j in 0..<m {
                var exact = 0.0
                for t in 0..<k { exact += Double(x[i * k + t]) * Double(wf[j * k + t]) }
                errSq += (Double(y[i * m + j]) - exact) * (Double(y[i * m + j]) - exact)
                refSq += exact * exact
            }
        }
        let relative = (errSq / refSq).squareRoot()
        print("quant error \(type): relative RMS vs float32 = \(relative)")
        let bound = try #require(Self.errorBounds[type])
        #expect(relative <= bound, "\(type): \(relative)")
    }
}

@Suite("Interleaved (r8) int8 kernels")
struct QuantR8KernelTests {
    static let types: [QuantType] = [.q4_0, .q4_1, .q8_0]

    @Test("the layout covers exactly Q4_0, Q4_1 and Q8_0; the worthwhile rule needs rows % 8 == 0 and a SIMD kernel")
    func coverage() {
        for type in QuantType.allCases {
            let kernel = mlk_q_r8_kernel(MLK_ISA_SCALAR, type.rawValue)
            #expect((kernel != MLK_KERNEL_NONE) == Self.types.contains(type), "\(type)")
        }
        let simd = mlk_q_r8_kernel(mlk_active_isa(), QuantType.q4_0.rawValue) != MLK_KERNEL_SCALAR
        #expect(mlk_q_r8_worthwhile(QuantType.q4_0.rawValue, 64, 256) == (simd ? 1 : 0))
        #expect(mlk_q_r8_worthwhile(QuantType.q4_0.rawValue, 60, 256) == 0)
        #expect(mlk_q_r8_worthwhile(QuantType.q4_0.rawValue, 64, 48) == 0)
        #expect(mlk_q_r8_worthwhile(QuantType.q6_K.rawValue, 64, 256) == 0)
    }

    @Test("pack then unpack gives back every row's stored bytes; a packed group fills its own rows' bytes", arguments: types)
    func roundTrip(type: QuantType) throws {
        let k = 96, m = 24
        let rb = try #require(type.rowBytes(k))
        let w = QuantTestSupport.weightBytes(type: type, rows: m, k: k, seed: 5)
        let packed = QuantTestSupport.r8Packed(w, type: type, rows: m, k: k)
        #expect(packed != w)
        for j in 0..<m {
            var row = [UInt8](repeating: 0, count: rb)
            packed.withUnsafeBytes { p in row.withUnsafeMutableBytes { mlk_q_r8_unpack_row(type.rawValue, p.baseAddress, Int64(k), Int64(j), $0.baseAddress) } }
            #expect(row == Array(w[(j * rb)..<(j * rb + rb)]), "\(type) row \(j)")
            // The group of row j holds exactly the bytes of rows 8(j/8) ..< 8(j/8) + 8, rearranged.
            if j % 8 == 0 {
                let range = (j * rb)..<((j + 8) * rb)
                #expect(Array(packed[range]).sorted() == Array(w[range]).sorted())
            }
        }
        // Invalid shapes write nothing.
        var untouched = [UInt8](repeating: 7, count: w.count)
        w.withUnsafeBytes { src in untouched.withUnsafeMutableBytes { mlk_q_r8_pack(type.rawValue, src.baseAddress, Int64(m - 1), Int64(k), $0.baseAddress) } }
        #expect(untouched.allSatisfy { $0 == 7 })
    }

    /// Multiplies the interleaved `packed` (layout `layout`, the [m, k] `type` matrix `w`) with n activation rows at
    /// every ISA over split row ranges and expects the Swift reference dots; returns the worst relative error.
    static func expectR8Dots(packed: [UInt8], layout: Int32, weights w: [UInt8], type: QuantType, m: Int, k: Int, n: Int,
                             label: String) throws -> Double {
        let x = QuantTestSupport.normals(n * k, seed: UInt64(2000 + n * k))
        let xq = QuantTestSupport.cActivations(x, type: type, rows: n, k: k, isa: mlk_detect_isa())
        let reference = try QuantTestSupport.referenceDots(weights: w, type: type, rows: m, k: k, x: x, n: n)
        var worst = 0.0
        for isa in QuantTestSupport.isas {
            let ldy = m + 5
            var y = [Float](repeating: .nan, count: n * ldy)
            xq.withUnsafeBytes { xb in
                packed.withUnsafeBytes { wb in
                    y.withUnsafeMutableBufferPointer { yb in
                        for (j0, j1) in [(0, 8), (8, 32), (32, m)] {
                            mlk_q_r8_matmul_rows_isa(isa, layout, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress,
                                                     Int64(j0), Int64(j1), yb.baseAddress, Int64(ldy))
                        }
                        // Ranges off the 8-row grid are refused without writing.
                        mlk_q_r8_matmul_rows_isa(isa, layout, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress,
                                                 4, Int64(m), yb.baseAddress! + m, Int64(ldy))
                    }
                }
            }
            worst = max(worst, QuantTestSupport.expectDots(y, ldy: ldy, equal: reference, n: n, m: m,
                                                           label: "\(label) isa \(isa.rawValue) k \(k) n \(n)"))
            // One 8-row group per call (so the x86 drivers' 8-row tiles, where the ranges above also ran their 16-row
            // tiles over pairs of groups): the same floats, bit for bit.
            var single = [Float](repeating: .nan, count: n * ldy)
            xq.withUnsafeBytes { xb in
                packed.withUnsafeBytes { wb in
                    single.withUnsafeMutableBufferPointer { yb in
                        for j0 in stride(from: 0, to: m, by: 8) {
                            mlk_q_r8_matmul_rows_isa(isa, layout, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress,
                                                     Int64(j0), Int64(j0 + 8), yb.baseAddress, Int64(ldy))
                        }
                    }
                }
            }
            for i in 0..<n {
                let row = (i * ldy)..<(i * ldy + m)
                #expect(Array(single[row]).map(\.bitPattern) == Array(y[row]).map(\.bitPattern),
                        "\(label) isa \(isa.rawValue) k \(k) n \(n) row \(i): group pairs and single groups differ")
            }
        }
        return worst
    }

    @Test("every r8 kernel equals the Swift reference dot product, on odd sizes and split row ranges", arguments: types)
    func kernels(type: QuantType) throws {
        let m = 40
        var worst = 0.0
        for k in [32, 64, 96, 160, 544, 1056] {
            let w = QuantTestSupport.weightBytes(type: type, rows: m, k: k, seed: UInt64(k))
            let packed = QuantTestSupport.r8Packed(w, type: type, rows: m, k: k)
            for n in [1, 2, 3, 4, 5, 7, 8, 17] {
                worst = max(worst, try Self.expectR8Dots(packed: packed, layout: type.rawValue, weights: w, type: type, m: m, k: k, n: n,
                                                         label: "r8 \(type)"))
            }
        }
        print("r8 kernels \(type): worst |fast - reference| / magnitude = \(worst)")
    }

    @Test("Q4_1 in pairs (MLX 4-bit, group 64): detected, packed at Q4_0's density, unpacked to the same rows, multiplied exactly")
    func q4_1Pairs() throws {
        let type = QuantType.q4_1, m = 40
        let pairs = Int32(MLK_R8_Q4_1_PAIRS)
        var worst = 0.0
        for k in [64, 128, 576, 1088] {
            let rb = try #require(type.rowBytes(k))
            var w = QuantTestSupport.weightBytes(type: type, rows: m, k: k, seed: UInt64(7 + k))
            #expect(w.withUnsafeBytes { mlk_q_r8_pairs_shared($0.baseAddress, Int64(m), Int64(k)) } == 0, "random Q4_1 blocks do not pair")
            for r in 0..<m { for b in stride(from: 0, to: k / 32, by: 2) { for i in 0..<4 { w[r * rb + (b + 1) * 20 + i] = w[r * rb + b * 20 + i] } } }
            #expect(w.withUnsafeBytes { mlk_q_r8_pairs_shared($0.baseAddress, Int64(m), Int64(k)) } == 1)
            #expect(mlk_q_r8_bytes(pairs, Int64(m), Int64(k)) == m * k / 64 * 36)
            #expect(mlk_q_r8_bytes(pairs, Int64(m), 96) == 0, "k must hold whole pairs")
            var packed = [UInt8](repeating: 0, count: m * k / 64 * 36)
            w.withUnsafeBytes { src in packed.withUnsafeMutableBytes { mlk_q_r8_pack(pairs, src.baseAddress, Int64(m), Int64(k), $0.baseAddress) } }
            for j in 0..<m {
                var row = [UInt8](repeating: 0, count: rb)
                packed.withUnsafeBytes { p in row.withUnsafeMutableBytes { mlk_q_r8_unpack_row(pairs, p.baseAddress, Int64(k), Int64(j), $0.baseAddress) } }
                #expect(row == Array(w[(j * rb)..<(j * rb + rb)]), "k \(k) row \(j)")
            }
            for n in [1, 3, 4, 8, 9] {
                worst = max(worst, try Self.expectR8Dots(packed: packed, layout: pairs, weights: w, type: type, m: m, k: k, n: n,
                                                         label: "r8 q4_1 pairs"))
            }
        }
        print("r8 q4_1 pairs: worst |fast - reference| / magnitude = \(worst)")
    }

    @Test("Q4_1 pairs compacted row-major (MLX 4-bit, group 64, exact mode): the same rows and bit-identical f32 results")
    func q4_1PairsRows() throws {
        let m = 40
        for k in [64, 192, 1088] {
            let rb = try #require(QuantType.q4_1.rowBytes(k))
            var w = QuantTestSupport.weightBytes(type: .q4_1, rows: m, k: k, seed: UInt64(11 + k))
            for r in 0..<m { for b in stride(from: 0, to: k / 32, by: 2) { for i in 0..<4 { w[r * rb + (b + 1) * 20 + i] = w[r * rb + b * 20 + i] } } }
            var compact = w  // in place, as the loader does
            compact.withUnsafeMutableBytes { mlk_q4_1_pairs_compact($0.baseAddress, Int64(m), Int64(k), $0.baseAddress) }
            for j in 0..<m {
                var row = [UInt8](repeating: 0, count: rb)
                compact.withUnsafeBytes { c in row.withUnsafeMutableBytes { mlk_q4_1_pairs_expand_row(c.baseAddress, Int64(k), Int64(j), $0.baseAddress) } }
                #expect(row == Array(w[(j * rb)..<(j * rb + rb)]), "k \(k) row \(j)")
            }
            // 1 row (the AVX-512 GEMV), 5 (the tiles), 20 (the AVX-512 GEMM); 40 weight rows: a full 32-row panel and 8.
            for n in [1, 5, 20] {
                let x = QuantTestSupport.normals(n * k, seed: UInt64(k))
                for isa in [MLK_ISA_SCALAR, MLK_ISA_AVX2, mlk_detect_isa()] where isa.rawValue <= mlk_detect_isa().rawValue {
                    var plain = [Float](repeating: .nan, count: n * m), pairs = plain
                    x.withUnsafeBufferPointer { xb in
                        w.withUnsafeBytes { wb in plain.withUnsafeMutableBufferPointer {
                            mlk_qf32_matmul_rows_isa(isa, QuantType.q4_1.rawValue, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress, 0, Int64(m), $0.baseAddress, Int64(m))
                        } }
                        compact.withUnsafeBytes { wb in pairs.withUnsafeMutableBufferPointer {
                            mlk_qf32_matmul_rows_isa(isa, Int32(MLK_Q4_1_PAIRS_ROWS), xb.baseAddress, Int64(n), Int64(k), wb.baseAddress, 0, Int64(m), $0.baseAddress, Int64(m))
                        } }
                    }
                    #expect(pairs == plain, "k \(k) n \(n) isa \(isa.rawValue): the compact layout computes what plain Q4_1 computes")
                }
            }
        }
    }

    @Test("random block bytes (NaN and infinite scales included) never crash; finite results agree with the row-major kernel")
    func randomBytes() throws {
        var g = SeededGenerator(seed: 99)
        for type in Self.types {
            let k = 512, m = 16, n = 5
            let rb = try #require(type.rowBytes(k))
            let w = (0..<(m * rb)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            let packed = QuantTestSupport.r8Packed(w, type: type, rows: m, k: k)
            let x = QuantTestSupport.normals(n * k, seed: 10)
            let xq = QuantTestSupport.cActivations(x, type: type, rows: n, k: k, isa: mlk_detect_isa())
            var rowMajor = [Float](repeating: 0, count: n * m), interleaved = rowMajor
            xq.withUnsafeBytes { xb in
                w.withUnsafeBytes { wb in
                    rowMajor.withUnsafeMutableBufferPointer {
                        mlk_q_matmul_rows_isa(MLK_ISA_SCALAR, type.rawValue, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress, 0, Int64(m), $0.baseAddress, Int64(m))
                    }
                }
                packed.withUnsafeBytes { wb in
                    interleaved.withUnsafeMutableBufferPointer {
                        mlk_q_r8_matmul_rows(type.rawValue, xb.baseAddress, Int64(n), Int64(k), wb.baseAddress, 0, Int64(m), $0.baseAddress, Int64(m))
                    }
                }
            }
            for (a, b) in zip(rowMajor, interleaved) where a.isFinite && b.isFinite {
                #expect(abs(a - b) <= 1e-4 * max(1, abs(a)), "\(type): \(a) vs \(b)")
            }
        }
    }
}

@Suite("Interleaved weights in a loaded model")
struct InterleavedModelTests {
    @Test("int8 loads interleave Q4_0/Q8_0 matrices (the tied embedding too); rows and the fingerprint see the stored bytes; logits equal the row-major int8 kernels'",
          arguments: [QuantType.q4_0, .q8_0])
    func model(type: QuantType) throws {
        let path = Fixtures.path("llama-f16")
        let exact = try Model(path: path, options: ModelLoadOptions(activationPrecision: .exact, quantize: type))
        let int8 = try Model(path: path, options: ModelLoadOptions(activationPrecision: .int8, quantize: type))
        var rowMajorOptions = ModelLoadOptions(activationPrecision: .int8, quantize: type)
        rowMajorOptions.interleavesWeights = false
        let rowMajor = try Model(path: path, options: rowMajorOptions)
        let simd = mlk_q_r8_worthwhile(type.rawValue, 64, 64) != 0
        #expect(int8.weights.matrices.allSatisfy { $0.interleaved == simd })
        #expect(int8.weights.embedding.interleaved == simd, "the tied embedding is the output projection")
        #expect(!exact.weights.matrices.contains(where: \.interleaved) && !rowMajor.weights.matrices.contains(where: \.interleaved))
        #expect(exact.fingerprint == int8.fingerprint)
        let columns = int8.weights.embedding.columns
        for index in [0, 1, 7, 8, 300, int8.vocabularySize - 1] {
            var a = [Float](repeating: 0, count: columns), b = a
            a.withUnsafeMutableBufferPointer { exact.weights.embedding.row(index, into: $0.baseAddress!) }
            b.withUnsafeMutableBufferPointer { int8.weights.embedding.row(index, into: $0.baseAddress!) }
            #expect(a == b, "embedding row \(index)")
        }
        let prompt: [Int32] = [1, 17, 200, 33, 4, 99, 311, 8, 45]
        let interleavedLogits = try int8.makeSession().feed(prompt, logits: .all)
        let rowMajorLogits = try rowMajor.makeSession().feed(prompt, logits: .all)
        let exactLogits = try exact.makeSession().feed(prompt, logits: .all)
        let difference = maxAbsDifference(interleavedLogits.values, rowMajorLogits.values)
        let scale = rowMajorLogits.values.map(abs).max() ?? 1
        #expect(difference <= 1e-4 * max(1, scale), "interleaved vs row-major int8: \(difference) (logit scale \(scale))")
        // And int8 stays near exact (the activation rounding): a loose sanity bound.
        #expect(maxAbsDifference(interleavedLogits.values, exactLogits.values) <= 0.05 * max(1, scale))
    }
}
