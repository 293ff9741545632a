import CMobileLLMKernels
import Foundation
import Testing
@testable import MobileLLM
@testable import MobileLLMTestSupport

/// The exact (f32-activation) quantized kernels against the Swift reference: dequantize with `QuantReference`
/// (byte-identical to gguf-py), then a double-precision dot product.
@Suite("Exact quantized kernels")
struct QuantExactKernelTests {
    @Test("every type, ISA, tile shape and odd row range equals dequantize-then-dot",
          arguments: QuantTestSupport.matmulTypes)
    func matchesReference(type: QuantType) throws {
        var generator = SeededGenerator(seed: UInt64(type.rawValue) * 7919)
        func random() -> Float { Float(Int(generator.next() % 20001) - 10000) / 5000 }
        // 61 rows, split as threads split them (below): the GEMMs' full 32-row panel, a 9-row one, one row alone, and
        // 19 rows (a partly masked 32-row AVX-512 panel).
        let rows = 61
        // 1792: two k-blocks of the AVX-512 GEMM (1536, then 256), whose second continues the first's sums.
        for k in [type.blockSize, type.blockSize * 3, type.blockSize == 256 ? 768 : 576, 1792] {
            let weights = (0..<(rows * k)).map { _ in random() }
            var bytes: [UInt8] = []
            var dequantized: [Float] = []
            let rowBytes = try #require(type.rowBytes(k))
            // Types this library cannot write (IQ4_NL) get random codes and scales instead.
            let unquantizable = type.canQuantize ? [] : QuantTestSupport.weightBytes(type: type, rows: rows, k: k, seed: UInt64(k), scale: 2)
            for r in 0..<rows {
                let row = Array(weights[(r * k)..<((r + 1) * k)])
                let block = type.canQuantize ? try #require(QuantReference.quantize(row, type: type))
                                             : Array(unquantizable[(r * rowBytes)..<((r + 1) * rowBytes)])
                bytes += block
                dequantized += try #require(QuantReference.dequantize(block, type: type, count: k))
            }
            // 16 and 53: the AVX-512 GEMM (one tile of 12 and 4; 4 tiles of 12 and 5); 53 also the AVX2 GEMM (8 tiles of
            // 6 tokens, then 5).
            for n in [1, 2, 3, 4, 5, 8, 16, 53] {
                let x = (0..<(n * k)).map { _ in random() }
                var expected = [Double](repeating: 0, count: n * rows)
                var magnitude = [Double](repeating: 0, count: n * rows)
                for i in 0..<n { for j in 0..<rows { for t in 0..<k {
                    let term = Double(x[i * k + t]) * Double(dequantized[j * k + t])
                    expected[i * rows + j] += term
                    magnitude[i * rows + j] += abs(term)
                } } }
                for isa in [MLK_ISA_SCALAR, MLK_ISA_AVX2, MLK_ISA_AVX512] where isa.rawValue <= mlk_detect_isa().rawValue {
                    var y = [Float](repeating: .nan, count: n * rows)
                    bytes.withUnsafeBytes { w in
                        // Split the rows unevenly, as threads do: [0, 41), [41, 42), [42, 61).
                        for (j0, j1) in [(0, 41), (41, 42), (42, rows)] {
                            mlk_qf32_matmul_rows_isa(isa, type.rawValue, x, Int64(n), Int64(k), w.baseAddress, Int64(j0), Int64(j1), &y, Int64(rows))
                        }
                    }
                    for index in 0..<(n * rows) {
                        let error = abs(Double(y[index]) - expected[index])
                        #expect(error <= 1e-5 * magnitude[index] + 1e-6,
                                "\(type) isa \(isa.rawValue) k \(k) n \(n) element \(index): \(y[index]) vs \(expected[index])")
                    }
                }
            }
        }
    }

    @Test("the 16-bit prefill GEMM (AVX-512 VNNI) stays within its activation-rounding bound of dequantize-then-dot",
          arguments: [QuantType.q4_0, .q4_1, .q8_0])
    func preparedWithinRoundingBound(type: QuantType) throws {
        var generator = SeededGenerator(seed: UInt64(type.rawValue) * 104_729)
        func random() -> Float { Float(Int(generator.next() % 20001) - 10000) / 5000 }
        let rows = 61
        for k in [32, 96, 576, 1792] {
            for n in [16, 17, 53] {
                guard mlk_qf32_prepared_kernel(mlk_detect_isa(), type.rawValue, Int64(n)) == MLK_KERNEL_AVX512_VNNI_I16_GEMM else {
                    // Below AVX-512 VNNI there is no prepared kernel: nothing to prepare, and NULL runs the f32 path.
                    #expect(mlk_qf32_prepared_bytes(type.rawValue, Int64(n), Int64(k)) == 0)
                    continue
                }
                let weights = (0..<(rows * k)).map { _ in random() }
                var bytes: [UInt8] = [], dequantized: [Float] = []
                for r in 0..<rows {
                    let block = try #require(QuantReference.quantize(Array(weights[(r * k)..<((r + 1) * k)]), type: type))
                    bytes += block
                    dequantized += try #require(QuantReference.dequantize(block, type: type, count: k))
                }
                // Every fifth block 40x larger: an outlier block sets its own scale and no other block's.
                let x = (0..<(n * k)).map { i in random() * ((i / 32) % 5 == 2 ? 40 : 1) }
                var expected = [Double](repeating: 0, count: n * rows), bound = expected
                for i in 0..<n { for j in 0..<rows {
                    for b in 0..<(k / 32) {
                        var largest = 0.0, weight = 0.0
                        for t in (32 * b)..<(32 * b + 32) {
                            let term = Double(x[i * k + t]) * Double(dequantized[j * k + t])
                            expected[i * rows + j] += term
                            bound[i * rows + j] += 1e-5 * abs(term)
                            largest = max(largest, abs(Double(x[i * k + t])))
                            weight += abs(Double(dequantized[j * k + t]))
                        }
                        // Each activation moves by at most half a step, largest / 32767 / 2.
                        bound[i * rows + j] += largest / 65534 * weight
                    }
                    bound[i * rows + j] += 1e-6
                } }
                let byteCount = mlk_qf32_prepared_bytes(type.rawValue, Int64(n), Int64(k))
                #expect(byteCount == n * (2 * k + k / 4))
                var prepared = [UInt8](repeating: 0, count: byteCount)
                mlk_qf32_prepare(x, Int64(n), Int64(k), &prepared)
                var y = [Float](repeating: .nan, count: n * rows), unprepared = y, f32 = y
                bytes.withUnsafeBytes { w in
                    for (j0, j1) in [(0, 41), (41, 42), (42, rows)] {
                        mlk_qf32_matmul_rows_prepared(type.rawValue, x, prepared, Int64(n), Int64(k), w.baseAddress, Int64(j0), Int64(j1), &y, Int64(rows))
                        mlk_qf32_matmul_rows_prepared(type.rawValue, x, nil, Int64(n), Int64(k), w.baseAddress, Int64(j0), Int64(j1), &unprepared, Int64(rows))
                        mlk_qf32_matmul_rows(type.rawValue, x, Int64(n), Int64(k), w.baseAddress, Int64(j0), Int64(j1), &f32, Int64(rows))
                    }
                }
                #expect(unprepared == f32, "without prepared rows the f32 kernels run")
                var widest = 0.0
                for index in 0..<(n * rows) {
                    let error = abs(Double(y[index]) - expected[index])
                    widest = max(widest, error / bound[index])
                    #expect(error <= bound[index], "\(type) k \(k) n \(n) element \(index): \(y[index]) vs \(expected[index]) (bound \(bound[index]))")
                }
                // The bound is not vacuous: the rounding really moves the results (a kernel that ignored the scales
                // would be far outside it; one in f32 would sit near 0).
                #expect(widest > 0.01, "\(type) k \(k) n \(n): errors at most \(widest) of the bound")
            }
        }
    }

    @Test("short prefill (a dequantized panel per 4 rows, 4x3 tiles: 3 <= n < 48) gives exactly the floats of pairs of inputs dequantizing as they go",
          arguments: QuantTestSupport.matmulTypes)
    func panelMatchesPairs(type: QuantType) throws {
        let rows = 13, k = type.blockSize == 256 ? 512 : 160
        let bytes = QuantTestSupport.weightBytes(type: type, rows: rows, k: k, seed: 31, scale: 0.5)
        // 3 (one tile), 7 (tiles of 3, 3 and 1), 47 (15 tiles and 2); from 48 rows the GEMM path runs (checked
        // against the reference in matchesReference, to float rounding).
        for n in [3, 7, 47] {
            let x = QuantTestSupport.normals(n * k, seed: 32)
            // The AVX2 kernel (the one with panels) and the scalar one; the AVX-512 kernels tile inputs differently.
            for isa in [MLK_ISA_SCALAR, MLK_ISA_AVX2] where isa.rawValue <= mlk_detect_isa().rawValue {
                var together = [Float](repeating: .nan, count: n * rows), pairs = together
                bytes.withUnsafeBytes { w in
                    mlk_qf32_matmul_rows_isa(isa, type.rawValue, x, Int64(n), Int64(k), w.baseAddress, 0, Int64(rows), &together, Int64(rows))
                    for i in stride(from: 0, to: n, by: 2) {
                        let count = min(2, n - i)
                        x.withUnsafeBufferPointer { xb in
                            pairs.withUnsafeMutableBufferPointer { yb in
                                mlk_qf32_matmul_rows_isa(isa, type.rawValue, xb.baseAddress! + i * k, Int64(count), Int64(k), w.baseAddress,
                                                         0, Int64(rows), yb.baseAddress! + i * rows, Int64(rows))
                            }
                        }
                    }
                }
                #expect(together.map(\.bitPattern) == pairs.map(\.bitPattern), "\(type) isa \(isa.rawValue) n \(n)")
            }
        }
    }

    @Test("invalid arguments do nothing")
    func invalidArguments() {
        var y: [Float] = [7]
        let x: [Float] = [1]
        mlk_qf32_matmul_rows(99, x, 1, 32, nil, 0, 1, &y, 1)
        mlk_qf32_matmul_rows(QuantType.q4_0.rawValue, x, 1, 31, nil, 0, 1, &y, 1)
        mlk_qf32_matmul_rows(QuantType.q4_0.rawValue, x, 1, 32, nil, 1, 0, &y, 1)
        #expect(y == [7])
        #expect(mlk_qf32_supported(QuantType.q4_K.rawValue) == 1 && mlk_qf32_supported(QuantType.f16.rawValue) == 0)
    }
}
