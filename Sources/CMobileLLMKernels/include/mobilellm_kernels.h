/*
 * Internal compute kernels for the mobilellm engine. Not part of the public C ABI (include/mobilellm.h).
 * Every function here has a portable scalar implementation plus SIMD versions selected at run time
 * (AVX-512, AVX2+FMA+F16C); Swift tests compare each against a Swift reference.
 */
#ifndef MOBILELLM_KERNELS_H
#define MOBILELLM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Storage types a weight matrix row may have. Values are stable: Swift mirrors them. */
typedef enum {
    MLK_DTYPE_F32 = 0,
    MLK_DTYPE_F16 = 1,
    MLK_DTYPE_BF16 = 2,
    /** ggml Q8_0 blocks (32 values: f16 scale + 32 int8), for KV-cache rows only (attention, conversion). */
    MLK_DTYPE_Q8_0 = 3,
} mlk_dtype;

/** Bytes of one row of `count` values of `dtype` (Q8_0: count must be a multiple of 32); 0 when it is not. */
size_t mlk_row_bytes(mlk_dtype dtype, int64_t count);

/** Instruction-set levels the dispatcher can choose. */
typedef enum {
    MLK_ISA_SCALAR = 0,
    MLK_ISA_AVX2 = 1,
    MLK_ISA_AVX512 = 2,
    /** AVX-512 F/BW/VL plus VNNI (vpdpbusd): the dense kernels run as MLK_ISA_AVX512, the quantized ones use VNNI. */
    MLK_ISA_AVX512_VNNI = 3,
    /** ARM64 NEON with the DotProd extension (sdot): quantized kernels only; the x86 levels do not apply on ARM. */
    MLK_ISA_NEON_DOTPROD = 4,
} mlk_isa;

/** The best level this CPU supports. */
mlk_isa mlk_detect_isa(void);

/** The level in use (defaults to mlk_detect_isa()). */
mlk_isa mlk_active_isa(void);

/** A matmul kernel family, as the dispatchers choose them (see mlk_matmul_kernel, mlk_qf32_kernel,
 *  mlk_q_matmul_kernel): the report of mlk_system_info() and the dispatch use the same selector functions. */
typedef enum {
    /** No kernel: the type has no matmul of that kind. */
    MLK_KERNEL_NONE = 0,
    MLK_KERNEL_SCALAR = 1,
    MLK_KERNEL_AVX2 = 2,
    /** AVX-512 kernels; for the f32-activation quantized matmul, its register tiles for 2-15 rows (and one row of
     *  the types without a GEMV). */
    MLK_KERNEL_AVX512 = 3,
    /** The AVX-512 one-row (decode) kernels of the f32-activation quantized matmul. */
    MLK_KERNEL_AVX512_GEMV = 4,
    MLK_KERNEL_AVX512_VNNI = 5,
    MLK_KERNEL_NEON_DOTPROD = 6,
    /** The AVX2 int8 kernels over interleaved 8-row groups (mlk_q_r8_matmul_rows). */
    MLK_KERNEL_AVX2_R8 = 7,
    /** The same over 256-bit vpdpbusd (AVX512-VL + VNNI). */
    MLK_KERNEL_AVX512_VNNI_R8 = 8,
    /** The AVX2 f32-activation quantized matmul for long prefill passes (48 rows and more): 16-row weight panels
     *  dequantized once per call into k-major blocks and a 6 x 16 broadcast micro-kernel. */
    MLK_KERNEL_AVX2_GEMM = 9,
    /** The AVX-512 f32-activation quantized matmul for prefill passes of 16 rows and more: 32-row weight panels
     *  dequantized once per call into k-major blocks of up to 1536 weights and a 12 x 32 broadcast micro-kernel. */
    MLK_KERNEL_AVX512_GEMM = 10,
    /** The exact mode's prefill GEMM on AVX-512 VNNI over 16-bit activations (mlk_qf32_prepare): k-pair int16 weight
     *  panels unpacked once per call and a 6 x 32 `vpdpwssd` micro-kernel, exact int32 sums per 32-block. */
    MLK_KERNEL_AVX512_VNNI_I16_GEMM = 11,
} mlk_kernel;

/** A short name for a kernel ("scalar", "avx2", "avx512", "avx512-gemv", "avx512-vnni", "neon-dotprod", "avx2-r8", "avx512-vnni-r8", "avx2-gemm", "avx512-gemm", "avx512-vnni-i16-gemm", "none"). */
const char *mlk_kernel_name(mlk_kernel kernel);

/** The kernel mlk_matmul_rows_isa runs for `dtype` weights at level `isa` (clamped to mlk_detect_isa()). */
mlk_kernel mlk_matmul_kernel(mlk_isa isa, mlk_dtype dtype);

/** A short name for a level ("scalar", "avx2", "avx512", "avx512-vnni", "neon-dotprod"). */
const char *mlk_isa_name(mlk_isa isa);

/**
 * A report of this machine and build: the CPU features the kernels look at (x86: avx2 fma f16c avx512f avx512bw
 * avx512vl avx512dq avx512vbmi avx512-vnni avx512-bf16; ARM64: neon dotprod i8mm), the detected and active levels,
 * and for every weight type the kernel each mode runs ("q4_0: exact-decode avx512-gemv, exact-prefill avx512,
 * int8 avx512-vnni"), as computed by the dispatchers' own selectors. Lines end with "\n". Built on the first call;
 * a static NUL-terminated string, valid forever; any thread. Reflects the active level at the first call.
 */
const char *mlk_system_info(void);

/** Force a level for the whole process (benchmarks). Levels above what the CPU supports are clamped.
 *  Returns the level now in use. Not for tests that run concurrently: use the *_isa variants instead. */
mlk_isa mlk_set_isa(mlk_isa isa);

/**
 * y[i * ldy + j] = sum_t x[i * k + t] * w[j * k + t]   for i in [0, n), j in [j0, j1).
 * `w` is a row-major [m, k] matrix of `dtype` elements (a PyTorch Linear weight); x is [n, k] f32.
 * Rows [j0, j1) only, so callers can split the output rows across threads.
 */
void mlk_matmul_rows(const float *x, int64_t n, int64_t k,
                     const void *w, mlk_dtype dtype,
                     int64_t j0, int64_t j1,
                     float *y, int64_t ldy);

/** mlk_matmul_rows with an explicit ISA level (clamped to what the CPU supports); touches no global state. */
void mlk_matmul_rows_isa(mlk_isa isa, const float *x, int64_t n, int64_t k,
                         const void *w, mlk_dtype dtype,
                         int64_t j0, int64_t j1,
                         float *y, int64_t ldy);

/** The kernel mlk_attention runs for `kv_dtype` K/V rows of head size `d` at level `isa` (clamped to
 *  mlk_detect_isa()): MLK_KERNEL_AVX2 wherever its sizes fit, AVX-512 machines included, MLK_KERNEL_AVX512 for the
 *  rest there, MLK_KERNEL_SCALAR otherwise; MLK_KERNEL_NONE for an invalid dtype or size. The dispatch calls this. */
mlk_kernel mlk_attention_kernel(mlk_isa isa, mlk_dtype kv_dtype, int64_t d);

/**
 * Causal attention of `group` query heads that share one key/value head, over `length` cached positions.
 *   q:      [group, d] f32 query rows
 *   keys:   [length, d] rows of `kv_dtype` (F32, F16 or Q8_0 with d % 32 == 0), rows mlk_row_bytes(kv_dtype, d) apart
 *   values: same layout as keys
 *   scores: scratch of group * length floats
 *   out:    [group, d] f32: softmax(q·kᵀ · scale) · v for each query row
 * Each key and value row is read once for the whole group.
 */
void mlk_attention(const float *q, int64_t group, int64_t d,
                   const void *keys, const void *values, mlk_dtype kv_dtype, int64_t length,
                   float scale, float *scores, float *out);

/**
 * One segment of attention without normalisation, for splitting long contexts: for each query row g,
 *   maxes[g] = max_p score(g, p),  sums[g] = sum_p exp(score(g, p) - maxes[g]),
 *   out[g]   = sum_p exp(score(g, p) - maxes[g]) * v_p           (score = q·k · scale)
 * Segments combine exactly as softmax does: with M = max_s maxes_s, out = sum_s e^(maxes_s - M) out_s /
 * sum_s e^(maxes_s - M) sums_s (see mlk_attention_combine). Same layouts as mlk_attention.
 */
void mlk_attention_partial(const float *q, int64_t group, int64_t d,
                           const void *keys, const void *values, mlk_dtype kv_dtype, int64_t length,
                           float scale, float *scores, float *out, float *maxes, float *sums);

/**
 * mlk_attention_partial for `rows` query rows that attend the same K/V positions (rows of one sequence in a prefill
 * chunk): row r reads q + r * q_stride ([group, d]), attends the first lengths[r] (>= 1) positions of keys/values,
 * uses scores + r * scores_stride (scores_stride >= group * lengths[r]) as scratch and writes its partial result at
 * partials + r * partial_stride: out [group][d], then maxes [group], then sums [group]. Each row's numbers are
 * bit-identical to mlk_attention_partial on that row alone (the rows run one after the other, so they find the
 * segment's K/V in cache). Does nothing on invalid input.
 */
void mlk_attention_partial_rows(int64_t rows, const float *q, int64_t q_stride, const int64_t *lengths, int64_t group,
                                int64_t d, const void *keys, const void *values, mlk_dtype kv_dtype, float scale,
                                float *scores, int64_t scores_stride, float *partials, int64_t partial_stride);

/**
 * Combines `segments` partial results (out: [segments][group][d], maxes/sums: [segments][group], in segment order)
 * into normalised attention rows result: [group][d].
 */
void mlk_attention_combine(int64_t segments, int64_t group, int64_t d, const float *out, const float *maxes,
                           const float *sums, float *result);

/** mlk_attention with an explicit ISA level (for tests). */
void mlk_attention_isa(mlk_isa isa, const float *q, int64_t group, int64_t d,
                       const void *keys, const void *values, mlk_dtype kv_dtype, int64_t length,
                       float scale, float *scores, float *out);

/** RMS normalisation of `rows` rows of `width` floats: out = x * (1 / sqrt(mean(x^2) + epsilon)) * weight (no weight
 *  when `weight` is NULL). The sum of squares runs in 8 lanes on x86 (AVX2 and later), so a row's result depends only
 *  on the row and the level. `x` and `out` may be the same buffer. Reentrant; does nothing on invalid input. */
void mlk_rms_norm(const float *x, int64_t rows, int64_t width, const float *weight, float epsilon, float *out);

/** SwiGLU: gate[t] = gate[t] / (1 + exp(-gate[t])) * up[t] for t < count. On x86 (AVX2 and later) exp is the
 *  attention's polynomial (within 2 ulp of expf); elsewhere expf. Reentrant. */
void mlk_swiglu(float *gate, const float *up, int64_t count);

/** f32 -> f16 (round to nearest even), for writing the KV cache. */
void mlk_convert_f32_to_f16(const float *src, int64_t count, uint16_t *dst);

/** Reads `bytes` bytes (a multiple of 64, 64-byte aligned) and returns a checksum: the read-bandwidth probe. */
uint64_t mlk_read_probe(const void *buffer, size_t bytes);

/** dst[t] = (float)src[t] for t in [0, count): one weight row converted to f32. */
void mlk_convert_to_f32(const void *src, mlk_dtype dtype, int64_t count, float *dst);

#ifdef __cplusplus
}
#endif

#endif
