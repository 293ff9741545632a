/*
 * Quantized weights x f32 activations: each weight block is dequantized in registers (the same float operations
 * as ggml's / gguf-py's dequantize) and multiplied with unquantized f32 activations. Results equal an f32 matmul
 * with the dequantized matrix up to summation order, so a quantized model computes exactly what transformers
 * computes on its dequantized weights. (The int8-activation kernels in mobilellm_quant.h trade that for speed.)
 */
#ifndef MOBILELLM_QF32_H
#define MOBILELLM_QF32_H

#include <stddef.h>
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
 * Prepared activations: on CPUs with AVX-512 VNNI, passes of 16 rows and more of Q4_0, Q4_1 and Q8_0 weights run a
 * GEMM over 16-bit activations (`vpdpwssd`, twice an f32 FMA's multiply-adds). Each activation is rounded once per
 * matmul to an int16 with an f32 scale per 32-block (d = max|x| / 32767 over the block, q = round-half-even(x / d)),
 * an error of at most 1/65534 of the block's largest magnitude: results match the f32 kernels to about 1e-5 of the sum
 * of |terms| (the stated tolerance of the exact mode's kernel tests). Products of a block sum exactly in int32.
 *
 *   size_t bytes = mlk_qf32_prepared_bytes(wtype, n, k);   // 0: this type, n or level has no prepared kernel
 *   if (bytes) mlk_qf32_prepare(x, n, k, buffer);           // once per matmul input (buffer: bytes, any alignment)
 *   mlk_qf32_matmul_rows_prepared(wtype, x, bytes ? buffer : NULL, n, k, w, j0, j1, y, ldy);  // per thread slice
 *
 * The prepared bytes depend only on x, so one buffer serves every matrix that reads the same input.
 */
/** Bytes mlk_qf32_prepare writes for n rows of k activations when the active level runs a prepared kernel for wtype
 *  and n rows; 0 when it does not (or for invalid sizes). */
size_t mlk_qf32_prepared_bytes(int wtype, int64_t n, int64_t k);
/** Writes the 16-bit form of x ([n, k], k % 32 == 0) to `prepared` (mlk_qf32_prepared_bytes(wtype, n, k) bytes for a
 *  type that has them). Reentrant; does nothing on invalid input or below AVX-512 VNNI. */
void mlk_qf32_prepare(const float *x, int64_t n, int64_t k, void *prepared);
/** mlk_qf32_matmul_rows, reading the prepared activations of x where its kernel takes them (`prepared` non-NULL and
 *  mlk_qf32_prepared_kernel is the 16-bit GEMM); otherwise exactly mlk_qf32_matmul_rows on x. */
void mlk_qf32_matmul_rows_prepared(int wtype, const float *x, const void *prepared, int64_t n, int64_t k,
                                   const void *w, int64_t j0, int64_t j1, float *y, int64_t ldy);
/** mlk_qf32_matmul_rows_prepared with an explicit ISA level (for tests; `prepared` must come from a level that has
 *  the prepared kernel). */
void mlk_qf32_matmul_rows_prepared_isa(mlk_isa isa, int wtype, const float *x, const void *prepared, int64_t n,
                                       int64_t k, const void *w, int64_t j0, int64_t j1, float *y, int64_t ldy);
/** The kernel mlk_qf32_matmul_rows_prepared_isa runs with prepared activations: MLK_KERNEL_AVX512_VNNI_I16_GEMM, or
 *  what mlk_qf32_kernel reports. */
mlk_kernel mlk_qf32_prepared_kernel(mlk_isa isa, int wtype, int64_t n);
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
