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

#ifdef __cplusplus
}
#endif

#endif
