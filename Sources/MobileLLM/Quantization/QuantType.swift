/// A tensor element type the quantized kernels understand, numbered with ggml's type ids so a GGUF tensor's
/// type field maps directly (`QuantType(rawValue: ggmlType)`).
///
/// Block layouts are ggml's, byte for byte (see `Sources/CMobileLLMKernels/include/mobilellm_quant.h`):
/// Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 hold 32 weights per block with an f16 scale (and an f16 minimum for Q4_1 and
/// Q5_1; Q5_0/Q5_1 add a fifth bit per weight in a 32-bit field); Q4_K, Q5_K and Q6_K hold 256 weights per
/// super-block with 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) sub-block scales. IQ4_NL holds 32 weights per block as
/// 4-bit indices into a fixed non-linear table times an f16 scale; Q2_K and Q3_K hold 256 weights with 2-bit
/// (plus a high bit for Q3_K) codes in 16 sub-blocks of 16. These three can be read and multiplied but not written
/// (`canQuantize` is false).
public enum QuantType: Int32, Sendable, CaseIterable {
    /// 32-bit IEEE float.
    case f32 = 0
    /// 16-bit IEEE half.
    case f16 = 1
    /// 4-bit symmetric blocks of 32: `w = d * (q - 8)`.
    case q4_0 = 2
    /// 4-bit blocks of 32 with a minimum: `w = d * q + m`.
    case q4_1 = 3
    /// 5-bit symmetric blocks of 32: `w = d * (q - 16)`.
    case q5_0 = 6
    /// 5-bit blocks of 32 with a minimum: `w = d * q + m`.
    case q5_1 = 7
    /// 8-bit symmetric blocks of 32: `w = d * q`.
    case q8_0 = 8
    /// 2-bit super-blocks of 256 with 16 sub-blocks of 16, 4-bit scales and mins (read-only: no quantizer).
    case q2_K = 10
    /// 3-bit super-blocks of 256 with 16 sub-blocks of 16 and 6-bit signed scales (read-only: no quantizer).
    case q3_K = 11
    /// 4-bit non-linear blocks of 32: `w = d * kvalues_iq4nl[q]` (read-only: no quantizer).
    case iq4_nl = 20
    /// 4-bit super-blocks of 256 with 8 sub-blocks of 32, 6-bit scales and mins.
    case q4_K = 12
    /// 5-bit super-blocks of 256 with 8 sub-blocks of 32, 6-bit scales and mins (Q4_K plus a high bit).
    case q5_K = 13
    /// 6-bit super-blocks of 256 with 16 sub-blocks of 16 and 8-bit scales.
    case q6_K = 14
    /// bfloat16.
    case bf16 = 30

    /// Weights per block: 32, 256, or 1 for the float types.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0, .iq4_nl: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        }
    }

    /// True for the block-quantized types, which `mlk_q_matmul_rows` multiplies with quantized activations.
    public var hasQuantizedMatmul: Bool {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: return true
        case .f32, .f16, .bf16: return false
        }
    }

    /// True if this library can write the type (`mlk_q_quantize_rows`; the test-support `QuantReference.quantize`, `mobilellm
    /// quantize`, quantize-on-load): every type but IQ4_NL, Q2_K and Q3_K, whose ggml quantizers are searches this
    /// library does not repeat. Stored tensors of those types are read and multiplied like the others.
    public var canQuantize: Bool {
        switch self {
        case .iq4_nl, .q2_K, .q3_K: return false
        default: return true
        }
    }

    /// Bytes of one row of `k` weights, or nil when `k` is negative or not a multiple of `blockSize`.
    public func rowBytes(_ k: Int) -> Int? {
        guard k >= 0, k % blockSize == 0 else { return nil }
        return k / blockSize * blockBytes
    }

    /// Bytes of one activation row of `k` values in the Q8A format the kernels use (1.5 * k), or nil when this
    /// type has no quantized matmul or `k` is not a multiple of `blockSize`.
    public func activationRowBytes(_ k: Int) -> Int? {
        guard hasQuantizedMatmul, k >= 0, k % blockSize == 0 else { return nil }
        return k + k / 32 * 8 + k / 16 * 4
    }
}
