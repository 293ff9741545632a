/*
 * Quantized weights x f32 activations: each weight block is dequantized in registers (the same float operations
 * as ggml's / gguf-py's dequantize) and multiplied with unquantized f32 activations. Results equal an f32 matmul
 * with the dequantized matrix up to summation order, so a quantized model computes exactly what transformers
 * computes on its dequantized weights. (The int8-activation kernels in mobilellm_quant.h trade that for speed.)
 */
#ifndef MOBILELLM_QF32_H
#define MOBILELLM_QF32_H

#include <stdint.h>

#include "mobilellm_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** 1 if mlk_qf32_matmul_rows handles weight type `wtype` (ggml ids: Q4_0=2, Q4_1=3, Q5_0=6, Q5_1=7,
 *  Q8_0=8, Q4_K=12, Q5_K=13, Q6_K=14, IQ4_NL=20,
 *  Q2_K=10, Q3_K=11). */
int mlk_qf32_supported(int wtype);

/**
 * y[i * ldy + j] = sum_t x[i * k + t] * dequant(w)[j, t] for i in [0, n), j in [j0, j1).
 * w: the whole [m, k] matrix in ggml block layout (row j at w + j * row_bytes); k must be a multiple of the
 * type's block size. Does nothing on invalid input.
 */
void mlk_qf32_matmul_rows(int wtype, const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                          float *y, int64_t ldy);

/** The kernel mlk_qf32_matmul_rows_isa runs for `wtype` weights and `n` activation rows at level `isa` (clamped
 *  to mlk_detect_isa()); MLK_KERNEL_NONE for a type it does not handle. The dispatch calls this, so it is exact. */
mlk_kernel mlk_qf32_kernel(mlk_isa isa, int wtype, int64_t n);

/** mlk_qf32_matmul_rows with an explicit ISA level (for tests). */
void mlk_qf32_matmul_rows_isa(mlk_isa isa, int wtype, const float *x, int64_t n, int64_t k, const void *w,
                              int64_t j0, int64_t j1, float *y, int64_t ldy);

/*
 * Q4_1 in pairs, row-major (MLX 4-bit, group 64, for the exact kernels): MLK_Q4_1_PAIRS_ROWS is a layout, never a
 * stored type. A Q4_1 matrix whose blocks 2i and 2i+1 share d and m in every row (mlk_q_r8_pairs_shared) is
 * compacted to 36 bytes per 64 weights per row:
 *
 *   f16 d | f16 m | block 2i's qs[16] | block 2i+1's qs[16]
 *
 * (Q4_0's density; plain Q4_1 repeats d and m and needs 40). mlk_qf32_matmul_rows takes it as `wtype` (k a multiple
 * of 64) and computes exactly what it computes on the plain Q4_1 matrix.
 */
#define MLK_Q4_1_PAIRS_ROWS 1004

/** Compacts `rows` rows of k plain Q4_1 weights (pairs sharing d and m; k % 64 == 0) to MLK_Q4_1_PAIRS_ROWS at `dst`
 *  (rows * k / 64 * 36 bytes). `dst` may be `src` (in place: each row moves towards the start); other overlaps are
 *  not allowed. Does nothing on invalid input. */
void mlk_q4_1_pairs_compact(const void *src, int64_t rows, int64_t k, void *dst);

/** 1 when mlk_qf32_matmul_rows has a SIMD kernel for MLK_Q4_1_PAIRS_ROWS at the active level (x86 AVX2 and
 *  later), so compacting pays; 0 where it would run the portable path (which expands every row). */
int mlk_q4_1_pairs_fast(void);

/** Row j of a MLK_Q4_1_PAIRS_ROWS matrix `compact` as plain Q4_1 (k / 32 * 20 bytes at `dst`). */
void mlk_q4_1_pairs_expand_row(const void *compact, int64_t k, int64_t j, void *dst);

#ifdef __cplusplus
}
#endif

#endif
