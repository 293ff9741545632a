/*
 * Quantized weight formats (GGUF/ggml block layouts) and their integer dot-product kernels.
 *
 * Weight types use ggml's type ids so GGUF tensor types map directly. Block layouts are byte-identical
 * to ggml's (all multi-byte fields little-endian, blocks packed with no padding):
 *
 *   Q8_0  (32 weights, 34 bytes):  f16 d | int8 q[32]                          w = d * q
 *   Q4_0  (32 weights, 18 bytes):  f16 d | u8 qs[16]                           w = d * (nibble - 8)
 *         qs[i] low nibble = weight i, high nibble = weight i + 16
 *   Q4_1  (32 weights, 20 bytes):  f16 d | f16 m | u8 qs[16]                   w = d * nibble + m
 *   Q5_0  (32 weights, 22 bytes):  f16 d | u8 qh[4] | u8 qs[16]                w = d * (q5 - 16)
 *   Q5_1  (32 weights, 24 bytes):  f16 d | f16 m | u8 qh[4] | u8 qs[16]        w = d * q5 + m
 *         q5 of weight i (0..31) = its nibble (as Q4_0: qs[i] low for i < 16, qs[i - 16] high otherwise)
 *         | bit i of the little-endian u32 qh, shifted to bit 4
 *   Q4_K  (256 weights, 144 bytes): f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
 *         8 sub-blocks of 32 with 6-bit scale sc_j and 6-bit min m_j:   w = d*sc_j*nibble - dmin*m_j
 *         qs[32c + l]: low nibble = weight 64c + l, high nibble = weight 64c + 32 + l
 *   IQ4_NL (32 weights, 18 bytes): f16 d | u8 qs[16]                           w = d * kvalues_iq4nl[nibble]
 *         nibbles as Q4_0; kvalues_iq4nl = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}
 *         (dequantize and matmul only: ggml's IQ4_NL, Q2_K and Q3_K quantizers are searches this library does
 *         not repeat)
 *   Q5_K  (256 weights, 176 bytes): f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
 *         scales, mins and nibbles as Q4_K; weight 32j + l (sub-block j) adds bit j of qh[l] as bit 4:
 *         w = d*sc_j*q5 - dmin*m_j
 *   Q2_K  (256 weights, 84 bytes):  u8 scales[16] | u8 qs[64] | f16 d | f16 dmin        (dequantize and matmul only)
 *         16 sub-blocks of 16; scales[s] low nibble = scale sc_s, high nibble = min m_s:  w = d*sc_s*q2 - dmin*m_s
 *         weight 128h + 32j + l (h 0..1, j 0..3, l 0..31): q2 = (qs[32h + l] >> 2j) & 3, sub-block s = (128h+32j+l)/16
 *   Q3_K  (256 weights, 110 bytes): u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d    (dequantize and matmul only)
 *         16 sub-blocks of 16 with 6-bit scales sc_s (stored + 32):  w = d*sc_s*(q2 + 4*hbit - 4)
 *         q2 as Q2_K; hbit = bit (4h + j) of hmask[l]; sc_s + 32 = low 4 bits (scales[s] for s < 8, else
 *         scales[s - 8] >> 4) | ((scales[8 + s % 4] >> (2 * (s / 4))) & 3) << 4
 *   Q6_K  (256 weights, 210 bytes): u8 ql[128] | u8 qh[64] | int8 scales[16] | f16 d
 *         16 sub-blocks of 16 with int8 scale sc_j:                       w = d*sc_j*(q6 - 32)
 *
 * Activations are quantized once per matmul into this library's own "Q8A" row format (not a ggml type;
 * the same format serves every weight type). For a row of k values (k % 32 == 0) it holds, in order:
 *
 *   int8  q[k]          q = round_half_even(x * (127 / max|x|)), |q| <= 127 (0 for an all-zero block)
 *   float d[k / 32]     d = max|x| / 127 over the 32-block
 *   float s[k / 32]     d * (sum of the block's 32 q)
 *   float s16[k / 16]   d * (sum of each 16-half's q)    (used by the 16-weight sub-blocks of Q2_K, Q3_K, Q6_K)
 *
 * so act_row_bytes = 1.5 * k. A float32 block scale (ggml's Q8_0/Q8_1/Q8_K activations use f16 scales or one
 * scale per 256) keeps activations at least as accurate as ggml's; the precomputed sums fold the weights'
 * offsets (-8, -16, m, dmin*m, -4, -32) into one multiply-add per block.
 *
 * The Q8A bytes do not depend on the weight type (wtype only decides which k are valid), so one quantized x can
 * serve several matrices of different types with the same k (e.g. Q4_K attention and Q6_K FFN weights).
 *
 * Typical use (no repacking: GGUF tensor bytes are used in place, e.g. straight from the mmap):
 *
 *   size_t rb = mlk_q_act_row_bytes(wtype, k);            // 0 -> unsupported type or k
 *   mlk_q_quantize_activations(wtype, x, n, k, xq);       // xq: n * rb bytes, 64-byte alignment recommended
 *   // each thread t of T, on its own slice of output rows (multiples of 8 rows stream best in decode):
 *   mlk_q_matmul_rows(wtype, xq, n, k, w, j0_t, j1_t, y, ldy);
 *
 * Threading contract: every function is reentrant and touches only the memory it is given, so several threads
 * may call them at once (e.g. on disjoint [j0, j1) ranges of one matmul).
 *
 * Invalid input (unknown type id, k not a multiple of the block size, negative sizes) never crashes: size
 * queries return 0 and the other functions do nothing.
 */
#ifndef MOBILELLM_QUANT_H
#define MOBILELLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "mobilellm_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Tensor element types, with ggml's numeric ids. */
typedef enum {
    MLK_Q_F32 = 0,
    MLK_Q_F16 = 1,
    MLK_Q_Q4_0 = 2,
    MLK_Q_Q4_1 = 3,
    MLK_Q_Q5_0 = 6,
    MLK_Q_Q5_1 = 7,
    MLK_Q_Q8_0 = 8,
    MLK_Q_Q2_K = 10,
    MLK_Q_Q3_K = 11,
    MLK_Q_Q4_K = 12,
    MLK_Q_Q5_K = 13,
    MLK_Q_Q6_K = 14,
    MLK_Q_IQ4_NL = 20,
    MLK_Q_BF16 = 30,
} mlk_qtype;

/** 1 if `type` is one of the mlk_qtype values (dequantize / sizes work), else 0. */
int mlk_q_is_supported(int type);

/** 1 if mlk_q_quantize_rows can write `type`: every supported type except IQ4_NL, Q2_K and Q3_K; else 0. */
int mlk_q_can_quantize(int type);

/** 1 if mlk_q_matmul_rows accepts `wtype` (every block type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K, Q3_K,
 *  Q4_K, Q5_K, Q6_K), else 0. */
int mlk_q_has_matmul(int wtype);

/** Weights per block: 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL), 256 (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), 1 (F32, F16, BF16); 0 for an
 *  unknown type. */
int64_t mlk_q_block_size(int type);

/** Bytes of one row of k weights; 0 if the type is unknown, k < 0 or k % block size != 0. */
size_t mlk_q_row_bytes(int type, int64_t k);

/**
 * Quantizes `rows` rows of `k` floats (row-major) into `dst` (rows * mlk_q_row_bytes(type, k) bytes), with
 * ggml's reference rounding (quantize_row_*_ref), so the bytes equal what ggml/gguf-py produce.
 * F16/BF16 round to nearest even (BF16 quiets NaNs as ggml does); F32 copies. Does nothing on invalid input or
 * when mlk_q_can_quantize(type) is 0.
 */
void mlk_q_quantize_rows(int type, const float *src, int64_t rows, int64_t k, void *dst);

/** Dequantizes one row of k weights (ggml's dequantize_row_*, same float operations). Nothing on bad input. */
void mlk_q_dequantize_row(int type, const void *src, int64_t k, float *dst);

/**
 * Bytes of one activation row of k values quantized for weights of type `wtype` (the Q8A format above,
 * 1.5 * k); 0 if mlk_q_has_matmul(wtype) is 0 or k is not a multiple of wtype's block size.
 */
size_t mlk_q_act_row_bytes(int wtype, int64_t k);

/**
 * Quantizes n rows of k activations (x is [n, k] row-major f32) into xq, row i at
 * xq + i * mlk_q_act_row_bytes(wtype, k). Call once per matmul; the result serves every weight row.
 * Non-finite inputs give unspecified (but memory-safe) values. Does nothing on invalid input.
 */
void mlk_q_quantize_activations(int wtype, const float *x, int64_t n, int64_t k, void *xq);

/** mlk_q_quantize_activations with an explicit level (for tests). Every level gives identical bytes. */
void mlk_q_quantize_activations_isa(mlk_isa isa, int wtype, const float *x, int64_t n, int64_t k, void *xq);

/**
 * y[i * ldy + j] = dot(activation row i, weight row j) for i in [0, n), j in [j0, j1).
 * xq: n activation rows from mlk_q_quantize_activations(wtype, ...); w: the whole weight matrix, row j at
 * w + j * mlk_q_row_bytes(wtype, k). Uses the best kernel for this CPU (mlk_active_isa()). Decode is n = 1,
 * prefill n > 1 (rows are register-tiled). Ranges whose length is a multiple of 4 are fastest.
 * Results equal the exact dot product of the dequantized operands up to float32 rounding (see the tests).
 * Does nothing on invalid input.
 */
void mlk_q_matmul_rows(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                       float *y, int64_t ldy);

/** The kernel mlk_q_matmul_rows_isa runs for `wtype` weights at level `isa` (clamped to mlk_detect_isa());
 *  MLK_KERNEL_NONE for a type without a matmul. The dispatch calls this, so it is exact. */
mlk_kernel mlk_q_matmul_kernel(mlk_isa isa, int wtype);

/**
 * mlk_q_matmul_rows with an explicit instruction-set level (for tests; never changes global state).
 * Levels above what this CPU supports are clamped to mlk_detect_isa(). MLK_ISA_AVX2 and MLK_ISA_AVX512 run the
 * AVX2 kernels (vpmaddubsw), MLK_ISA_AVX512_VNNI the 512-bit vpdpbusd kernels, MLK_ISA_NEON_DOTPROD (ARM64)
 * the sdot kernels, MLK_ISA_SCALAR (or a level not compiled for this architecture) the portable C kernel.
 */
void mlk_q_matmul_rows_isa(mlk_isa isa, int wtype, const void *xq, int64_t n, int64_t k, const void *w,
                           int64_t j0, int64_t j1, float *y, int64_t ldy);

/* ---------------------------------------------------------------- interleaved 8-row weights ("r8")
 *
 * A lossless rearrangement of a [rows, k] matrix of Q4_0, Q4_1 or Q8_0 blocks (rows % 8 == 0) for the int8
 * matmul: rows are taken in groups of 8, and block b of the 8 rows of a group becomes one r8 block of 8 times the
 * bytes, laid out so that one 32-byte load holds 4 consecutive weights of each of the 8 rows:
 *
 *   f16 d[8]                      the rows' scales (row r at 2r)
 *   f16 m[8]                      Q4_1 only: the rows' mins
 *   payload in 32-byte vectors    vector v, bytes 4r..4r+3 = bytes 4v..4v+3 of row r's block payload
 *                                 (Q4_0/Q4_1: qs[16], 4 vectors, whose low nibbles are weights 4v..4v+3 and high
 *                                 nibbles weights 16+4v..16+4v+3; Q8_0: q[32], 8 vectors)
 *
 * Group g starts at byte g * 8 * mlk_q_row_bytes(wtype, k), its block b at 8 * b * (block bytes) inside the group,
 * so the matrix keeps its size. The kernel broadcasts 4 activation bytes against such a vector and gets 8 rows'
 * partial dot products in one register: no horizontal sums, and one unpack of a weight vector serves every
 * activation row of a tile.
 */

/** The kernel mlk_q_r8_matmul_rows_isa runs for `wtype` at level `isa` (clamped to mlk_detect_isa()):
 *  MLK_KERNEL_AVX512_VNNI_R8 (256-bit vpdpbusd) or MLK_KERNEL_AVX2_R8 (vpmaddubsw) on x86, MLK_KERNEL_SCALAR
 *  elsewhere, for the types the layout takes (Q4_0, Q4_1, Q8_0); MLK_KERNEL_NONE for a type it does not. */
mlk_kernel mlk_q_r8_kernel(mlk_isa isa, int wtype);

/** 1 if interleaving a [rows, k] `wtype` matrix pays at the active level: a SIMD r8 kernel exists for wtype
 *  (mlk_q_r8_kernel is not scalar), rows % 8 == 0 and k is a multiple of 32; else 0. */
int mlk_q_r8_worthwhile(int wtype, int64_t rows, int64_t k);

/** Interleaves `rows` rows of k weights (`src`, mlk_q_row_bytes(wtype, k) bytes per row) into `dst` (the same
 *  number of bytes; must not overlap src). Does nothing unless wtype is Q4_0, Q4_1 or Q8_0, rows % 8 == 0 and
 *  k % 32 == 0. */
void mlk_q_r8_pack(int wtype, const void *src, int64_t rows, int64_t k, void *dst);

/** Writes row j of an interleaved matrix `packed` back in its stored layout (mlk_q_row_bytes(wtype, k) bytes at
 *  `dst`): the inverse of mlk_q_r8_pack for one row. Does nothing on invalid input. */
void mlk_q_r8_unpack_row(int wtype, const void *packed, int64_t k, int64_t j, void *dst);

/**
 * mlk_q_matmul_rows for an interleaved matrix: y[i * ldy + j] = dot(activation row i, weight row j) for i in
 * [0, n), j in [j0, j1), where j0 and j1 are multiples of 8. Results equal the exact dot product of the
 * dequantized operands up to float32 rounding, as mlk_q_matmul_rows. Does nothing on invalid input.
 */
void mlk_q_r8_matmul_rows(int wtype, const void *xq, int64_t n, int64_t k, const void *packed, int64_t j0,
                          int64_t j1, float *y, int64_t ldy);

/** mlk_q_r8_matmul_rows at an explicit level (for tests; levels above the CPU's are clamped). */
void mlk_q_r8_matmul_rows_isa(mlk_isa isa, int wtype, const void *xq, int64_t n, int64_t k, const void *packed,
                              int64_t j0, int64_t j1, float *y, int64_t ldy);

/*
 * Q4_1 in pairs (MLX 4-bit, group 64). MLK_R8_Q4_1_PAIRS is an r8 layout only, never a stored type: its row-major
 * form is plain Q4_1 whose blocks 2i and 2i+1 carry the same d and m in every row (a group of 64 weights sharing
 * one scale and bias, repeated per 32-weight block). Its r8 form keeps one d[8] and m[8] per pair of blocks:
 *
 *   f16 d[8] | f16 m[8] | block 2i's 4 payload vectors | block 2i+1's 4 payload vectors      (288 bytes per pair)
 *
 * so the interleaved matrix is 36 bytes per 64 weights per row, the density of Q4_0, instead of Q4_1's 40. Every
 * mlk_q_r8_* function takes it as `wtype` (with k a multiple of 64); pack reads and unpack_row writes plain Q4_1.
 */
#define MLK_R8_Q4_1_PAIRS 1003

/** 1 if every row of the [rows, k] Q4_1 matrix `src` has the same d and m in blocks 2i and 2i+1 (k % 64 == 0),
 *  so it can be interleaved as MLK_R8_Q4_1_PAIRS; else 0. Reads the block headers only, stopping at the first
 *  difference. */
int mlk_q_r8_pairs_shared(const void *src, int64_t rows, int64_t k);

/** Bytes of a [rows, k] matrix interleaved as `wtype` (Q4_0, Q4_1, Q8_0: the same as stored; MLK_R8_Q4_1_PAIRS:
 *  36 per 64 weights); 0 when the layout does not take it. */
size_t mlk_q_r8_bytes(int wtype, int64_t rows, int64_t k);

#ifdef __cplusplus
}
#endif

#endif
