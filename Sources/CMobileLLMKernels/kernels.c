/*
 * Dense f32/f16/bf16 matrix kernels with run-time ISA dispatch.
 *
 * SIMD code is compiled through per-function target attributes, so the package needs no global
 * -m flags (and therefore no unsafeFlags). Each SIMD variant computes the same sums as the scalar
 * variant up to floating-point summation order.
 */
#include "mobilellm_kernels.h"
#include "quant_internal.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define MLK_X86 1
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#endif

/* ---------------------------------------------------------------- scalar element conversion */

static inline float mlk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float mlk_f16_to_f32(uint16_t h) { return mlk_q_h2f(h); }

static inline float mlk_load_scalar(const void *w, mlk_dtype dtype, int64_t index) {
    switch (dtype) {
    case MLK_DTYPE_Q8_0: {
        const uint8_t *block = (const uint8_t *)w + (size_t)(index / 32) * 34;
        return mlk_f16_to_f32((uint16_t)(block[0] | (block[1] << 8))) * (float)(int8_t)block[2 + index % 32];
    }
    case MLK_DTYPE_F16: return mlk_f16_to_f32(((const uint16_t *)w)[index]);
    case MLK_DTYPE_BF16: return mlk_bf16_to_f32(((const uint16_t *)w)[index]);
    case MLK_DTYPE_F32:
    default: return ((const float *)w)[index];
    }
}

static size_t mlk_element_size(mlk_dtype dtype) { return dtype == MLK_DTYPE_F32 ? 4 : 2; }

size_t mlk_row_bytes(mlk_dtype dtype, int64_t count) {
    if (count < 0) return 0;
    if (dtype == MLK_DTYPE_Q8_0) return count % 32 == 0 ? (size_t)(count / 32) * 34 : 0;
    return (size_t)count * mlk_element_size(dtype);
}

/* ---------------------------------------------------------------- ISA selection */

#if defined(__aarch64__)
int mlk_q_neon_dotprod(void); /* quant_neon.c */
#endif

static mlk_isa mlk_current = (mlk_isa)-1;

static mlk_isa mlk_probe_isa(void) {
#ifdef MLK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512vnni") ? MLK_ISA_AVX512_VNNI : MLK_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return MLK_ISA_AVX2;
#elif defined(__aarch64__)
    if (mlk_q_neon_dotprod()) return MLK_ISA_NEON_DOTPROD;
#endif
    return MLK_ISA_SCALAR;
}

static int mlk_detected = -1;

mlk_isa mlk_detect_isa(void) {
    int detected = __atomic_load_n(&mlk_detected, __ATOMIC_RELAXED);
    if (detected < 0) {
        detected = (int)mlk_probe_isa();
        __atomic_store_n(&mlk_detected, detected, __ATOMIC_RELAXED);
    }
    return (mlk_isa)detected;
}

mlk_isa mlk_active_isa(void) {
    mlk_isa current = __atomic_load_n(&mlk_current, __ATOMIC_RELAXED);
    if ((int)current < 0) {
        current = mlk_detect_isa();
        __atomic_store_n(&mlk_current, current, __ATOMIC_RELAXED);
    }
    return current;
}

mlk_isa mlk_set_isa(mlk_isa isa) {
    mlk_isa best = mlk_detect_isa();
    if ((int)isa < 0) isa = MLK_ISA_SCALAR;
    if (isa > best) isa = best;
    __atomic_store_n(&mlk_current, isa, __ATOMIC_RELAXED);
    return isa;
}

/* ---------------------------------------------------------------- scalar kernels */

static void mlk_matmul_scalar(const float *x, int64_t n, int64_t k, const void *w, mlk_dtype dtype,
                              int64_t j0, int64_t j1, float *y, int64_t ldy) {
    for (int64_t j = j0; j < j1; j++) {
        const char *row = (const char *)w + (size_t)j * (size_t)k * mlk_element_size(dtype);
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + i * k;
            float sum = 0.0f;
            for (int64_t t = 0; t < k; t++) sum += xi[t] * mlk_load_scalar(row, dtype, t);
            y[i * ldy + j] = sum;
        }
    }
}

void mlk_convert_to_f32(const void *src, mlk_dtype dtype, int64_t count, float *dst) {
    if (dtype == MLK_DTYPE_F32) {
        memcpy(dst, src, (size_t)count * sizeof(float));
        return;
    }
    for (int64_t t = 0; t < count; t++) dst[t] = mlk_load_scalar(src, dtype, t);
}

#ifdef MLK_X86

/* ---------------------------------------------------------------- AVX-512 kernels
 * A 4-row x 4-input register tile (16 accumulators), a masked tail for k % 16, and 4x1 / 1x1 edges.
 */

TARGET_AVX512 static inline __m512 l512_f32(const void *p, int64_t t, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, (const float *)p + t);
}
TARGET_AVX512 static inline __m512 l512_bf16(const void *p, int64_t t, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + t);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
TARGET_AVX512 static inline __m512 l512_f16(const void *p, int64_t t, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + t);
    return _mm512_cvtph_ps(h);
}
/* 16 values starting at element t (a multiple of 16) of a Q8_0 row. */
TARGET_AVX512 static inline __m512 l512_q8(const void *p, int64_t t) {
    const uint8_t *block = (const uint8_t *)p + (size_t)(t / 32) * 34;
    const __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)(block[0] | (block[1] << 8))));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 2 + t % 32)))), d);
}
TARGET_AVX512 static inline __m512 l512_kv(const void *p, mlk_dtype dtype, int64_t t, __mmask16 m) {
    switch (dtype) {
    case MLK_DTYPE_F16: return l512_f16(p, t, m);
    case MLK_DTYPE_Q8_0: return l512_q8(p, t);
    default: return l512_f32(p, t, m);
    }
}

#define MLK_DEFINE_AVX512(NAME, LOAD, ESIZE)                                                              \
    TARGET_AVX512 static void NAME(const float *x, int64_t n, int64_t k, const void *w, int64_t j0,        \
                                   int64_t j1, float *y, int64_t ldy) {                                  \
        const char *wb = (const char *)w;                                                                 \
        const int64_t kfull = k & ~(int64_t)15;                                                           \
        const __mmask16 tail = (__mmask16)((1u << (k - kfull)) - 1u);                                     \
        int64_t j = j0;                                                                                   \
        for (; j + 4 <= j1; j += 4) {                                                                     \
            const void *r[4];                                                                             \
            for (int a = 0; a < 4; a++) r[a] = wb + (size_t)(j + a) * (size_t)k * (ESIZE);                \
            int64_t i = 0;                                                                                \
            for (; i + 4 <= n; i += 4) {                                                                  \
                __m512 acc[4][4];                                                                         \
                for (int a = 0; a < 4; a++)                                                               \
                    for (int b = 0; b < 4; b++) acc[a][b] = _mm512_setzero_ps();                          \
                for (int64_t t = 0; t < k; t += 16) {                                                     \
                    __mmask16 m = t < kfull ? (__mmask16)0xFFFF : tail;                                   \
                    __m512 wv[4], xv[4];                                                                  \
                    for (int a = 0; a < 4; a++) wv[a] = LOAD(r[a], t, m);                                 \
                    for (int b = 0; b < 4; b++) xv[b] = _mm512_maskz_loadu_ps(m, x + (i + b) * k + t);    \
                    for (int a = 0; a < 4; a++)                                                           \
                        for (int b = 0; b < 4; b++) acc[a][b] = _mm512_fmadd_ps(wv[a], xv[b], acc[a][b]); \
                }                                                                                         \
                for (int a = 0; a < 4; a++)                                                               \
                    for (int b = 0; b < 4; b++) y[(i + b) * ldy + j + a] = _mm512_reduce_add_ps(acc[a][b]); \
            }                                                                                             \
            for (; i < n; i++) {                                                                          \
                __m512 acc[4];                                                                            \
                for (int a = 0; a < 4; a++) acc[a] = _mm512_setzero_ps();                                 \
                for (int64_t t = 0; t < k; t += 16) {                                                     \
                    __mmask16 m = t < kfull ? (__mmask16)0xFFFF : tail;                                   \
                    __m512 xv = _mm512_maskz_loadu_ps(m, x + i * k + t);                                  \
                    for (int a = 0; a < 4; a++) acc[a] = _mm512_fmadd_ps(LOAD(r[a], t, m), xv, acc[a]);   \
                }                                                                                         \
                for (int a = 0; a < 4; a++) y[i * ldy + j + a] = _mm512_reduce_add_ps(acc[a]);            \
            }                                                                                             \
        }                                                                                                 \
        for (; j < j1; j++) {                                                                             \
            const void *row = wb + (size_t)j * (size_t)k * (ESIZE);                                       \
            for (int64_t i = 0; i < n; i++) {                                                             \
                __m512 acc = _mm512_setzero_ps();                                                         \
                for (int64_t t = 0; t < k; t += 16) {                                                     \
                    __mmask16 m = t < kfull ? (__mmask16)0xFFFF : tail;                                   \
                    acc = _mm512_fmadd_ps(LOAD(row, t, m), _mm512_maskz_loadu_ps(m, x + i * k + t), acc); \
                }                                                                                         \
                y[i * ldy + j] = _mm512_reduce_add_ps(acc);                                               \
            }                                                                                             \
        }                                                                                                 \
    }

MLK_DEFINE_AVX512(mlk_matmul_avx512_f32, l512_f32, 4)
MLK_DEFINE_AVX512(mlk_matmul_avx512_bf16, l512_bf16, 2)
MLK_DEFINE_AVX512(mlk_matmul_avx512_f16, l512_f16, 2)

/* ---------------------------------------------------------------- AVX2 kernels
 * A 4-row x 2-input tile over 8-wide vectors; the k % 8 tail is summed in scalar code.
 */

TARGET_AVX2 static inline __m256 l256_f32(const void *p, int64_t t) { return _mm256_loadu_ps((const float *)p + t); }
TARGET_AVX2 static inline __m256 l256_bf16(const void *p, int64_t t) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + t));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
TARGET_AVX2 static inline __m256 l256_f16(const void *p, int64_t t) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + t)));
}
TARGET_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define MLK_DEFINE_AVX2(NAME, LOAD, ESIZE, DTYPE)                                                          \
    TARGET_AVX2 static void NAME(const float *x, int64_t n, int64_t k, const void *w, int64_t j0,          \
                                 int64_t j1, float *y, int64_t ldy) {                                    \
        const char *wb = (const char *)w;                                                                 \
        const int64_t kfull = k & ~(int64_t)7;                                                            \
        int64_t j = j0;                                                                                   \
        for (; j + 4 <= j1; j += 4) {                                                                     \
            const void *r[4];                                                                             \
            for (int a = 0; a < 4; a++) r[a] = wb + (size_t)(j + a) * (size_t)k * (ESIZE);                \
            int64_t i = 0;                                                                                \
            for (; i + 2 <= n; i += 2) {                                                                  \
                __m256 acc[4][2];                                                                         \
                for (int a = 0; a < 4; a++) acc[a][0] = acc[a][1] = _mm256_setzero_ps();                  \
                for (int64_t t = 0; t < kfull; t += 8) {                                                  \
                    __m256 x0 = _mm256_loadu_ps(x + i * k + t), x1 = _mm256_loadu_ps(x + (i + 1) * k + t); \
                    for (int a = 0; a < 4; a++) {                                                         \
                        __m256 wv = LOAD(r[a], t);                                                        \
                        acc[a][0] = _mm256_fmadd_ps(wv, x0, acc[a][0]);                                   \
                        acc[a][1] = _mm256_fmadd_ps(wv, x1, acc[a][1]);                                   \
                    }                                                                                     \
                }                                                                                         \
                for (int a = 0; a < 4; a++)                                                               \
                    for (int b = 0; b < 2; b++) {                                                         \
                        float s = hsum256(acc[a][b]);                                                     \
                        for (int64_t t = kfull; t < k; t++)                                               \
                            s += x[(i + b) * k + t] * mlk_load_scalar(r[a], DTYPE, t);                    \
                        y[(i + b) * ldy + j + a] = s;                                                     \
                    }                                                                                     \
            }                                                                                             \
            for (; i < n; i++) {                                                                          \
                __m256 acc[4];                                                                            \
                for (int a = 0; a < 4; a++) acc[a] = _mm256_setzero_ps();                                 \
                for (int64_t t = 0; t < kfull; t += 8) {                                                  \
                    __m256 xv = _mm256_loadu_ps(x + i * k + t);                                           \
                    for (int a = 0; a < 4; a++) acc[a] = _mm256_fmadd_ps(LOAD(r[a], t), xv, acc[a]);      \
                }                                                                                         \
                for (int a = 0; a < 4; a++) {                                                             \
                    float s = hsum256(acc[a]);                                                            \
                    for (int64_t t = kfull; t < k; t++) s += x[i * k + t] * mlk_load_scalar(r[a], DTYPE, t); \
                    y[i * ldy + j + a] = s;                                                               \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        if (j < j1) mlk_matmul_scalar(x, n, k, w, DTYPE, j, j1, y, ldy);                                  \
    }

MLK_DEFINE_AVX2(mlk_matmul_avx2_f32, l256_f32, 4, MLK_DTYPE_F32)
MLK_DEFINE_AVX2(mlk_matmul_avx2_bf16, l256_bf16, 2, MLK_DTYPE_BF16)
MLK_DEFINE_AVX2(mlk_matmul_avx2_f16, l256_f16, 2, MLK_DTYPE_F16)

#endif /* MLK_X86 */

void mlk_matmul_rows(const float *x, int64_t n, int64_t k, const void *w, mlk_dtype dtype, int64_t j0,
                     int64_t j1, float *y, int64_t ldy) {
    mlk_matmul_rows_isa(mlk_active_isa(), x, n, k, w, dtype, j0, j1, y, ldy);
}

mlk_kernel mlk_matmul_kernel(mlk_isa isa, mlk_dtype dtype) {
    if (dtype != MLK_DTYPE_F32 && dtype != MLK_DTYPE_F16 && dtype != MLK_DTYPE_BF16) return MLK_KERNEL_NONE;
    mlk_isa best = mlk_detect_isa();
    if (isa > best) isa = best;
#ifdef MLK_X86
    if (isa == MLK_ISA_AVX512 || isa == MLK_ISA_AVX512_VNNI) return MLK_KERNEL_AVX512;
    if (isa == MLK_ISA_AVX2) return MLK_KERNEL_AVX2;
#endif
    (void)isa;
    return MLK_KERNEL_SCALAR;
}

void mlk_matmul_rows_isa(mlk_isa isa, const float *x, int64_t n, int64_t k, const void *w, mlk_dtype dtype,
                         int64_t j0, int64_t j1, float *y, int64_t ldy) {
    if (n <= 0 || k <= 0 || j1 <= j0) {
        if (k <= 0)
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = j0; j < j1; j++) y[i * ldy + j] = 0.0f;
        return;
    }
    switch (mlk_matmul_kernel(isa, dtype)) {
#ifdef MLK_X86
    case MLK_KERNEL_AVX512:
        switch (dtype) {
        case MLK_DTYPE_F32: mlk_matmul_avx512_f32(x, n, k, w, j0, j1, y, ldy); return;
        case MLK_DTYPE_BF16: mlk_matmul_avx512_bf16(x, n, k, w, j0, j1, y, ldy); return;
        case MLK_DTYPE_F16: mlk_matmul_avx512_f16(x, n, k, w, j0, j1, y, ldy); return;
        default: break;
        }
        break;
    case MLK_KERNEL_AVX2:
        switch (dtype) {
        case MLK_DTYPE_F32: mlk_matmul_avx2_f32(x, n, k, w, j0, j1, y, ldy); return;
        case MLK_DTYPE_BF16: mlk_matmul_avx2_bf16(x, n, k, w, j0, j1, y, ldy); return;
        case MLK_DTYPE_F16: mlk_matmul_avx2_f16(x, n, k, w, j0, j1, y, ldy); return;
        default: break;
        }
        break;
#endif
    default: break;
    }
    mlk_matmul_scalar(x, n, k, w, dtype, j0, j1, y, ldy);
}

/* ---------------------------------------------------------------- attention */

static uint16_t mlk_f32_to_f16_scalar(float value) { return mlk_q_f2h(value); }

#ifdef MLK_X86
TARGET_AVX512 static void mlk_convert_f32_to_f16_avx512(const float *src, int64_t count, uint16_t *dst) {
    int64_t t = 0;
    for (; t + 16 <= count; t += 16)
        _mm256_storeu_si256((__m256i *)(dst + t), _mm512_cvtps_ph(_mm512_loadu_ps(src + t), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; t < count; t++) dst[t] = mlk_f32_to_f16_scalar(src[t]);
}
#endif

void mlk_convert_f32_to_f16(const float *src, int64_t count, uint16_t *dst) {
#ifdef MLK_X86
    if ((mlk_active_isa() == MLK_ISA_AVX512 || mlk_active_isa() == MLK_ISA_AVX512_VNNI)) {
        mlk_convert_f32_to_f16_avx512(src, count, dst);
        return;
    }
#endif
    for (int64_t t = 0; t < count; t++) dst[t] = mlk_f32_to_f16_scalar(src[t]);
}

/* Turns each score row into exp(score - max); records the max and the sum when asked, and normalises the row to
 * probabilities when `normalise` is set. */
static void mlk_exp_rows(float *scores, int64_t group, int64_t length, int normalise, float *maxes, float *sums) {
    for (int64_t g = 0; g < group; g++) {
        float *row = scores + g * length;
        float maximum = row[0];
        for (int64_t p = 1; p < length; p++) maximum = row[p] > maximum ? row[p] : maximum;
        float total = 0;
        for (int64_t p = 0; p < length; p++) {
            row[p] = expf(row[p] - maximum);
            total += row[p];
        }
        if (maxes) maxes[g] = maximum;
        if (sums) sums[g] = total;
        if (normalise) {
            float inverse = 1.0f / total;
            for (int64_t p = 0; p < length; p++) row[p] *= inverse;
        }
    }
}

static void mlk_attention_scalar(const float *q, int64_t group, int64_t d, const void *keys, const void *values,
                                 mlk_dtype kv_dtype, int64_t length, float scale, float *scores, float *out,
                                 float *maxes, float *sums) {
    const size_t row_bytes = mlk_row_bytes(kv_dtype, d);
    for (int64_t p = 0; p < length; p++) {
        const void *key = (const char *)keys + (size_t)p * row_bytes;
        for (int64_t g = 0; g < group; g++) {
            float dot = 0;
            for (int64_t t = 0; t < d; t++) dot += q[g * d + t] * mlk_load_scalar(key, kv_dtype, t);
            scores[g * length + p] = dot * scale;
        }
    }
    mlk_exp_rows(scores, group, length, maxes == NULL, maxes, sums);
    for (int64_t i = 0; i < group * d; i++) out[i] = 0;
    for (int64_t p = 0; p < length; p++) {
        const void *value = (const char *)values + (size_t)p * row_bytes;
        for (int64_t g = 0; g < group; g++) {
            float w = scores[g * length + p];
            for (int64_t t = 0; t < d; t++) out[g * d + t] += w * mlk_load_scalar(value, kv_dtype, t);
        }
    }
}

#ifdef MLK_X86
/* exp(x) for 8 lanes: x = n·ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r (Cephes' expf coefficients),
 * scaled by 2^n. Within 2 ulp of expf for x in [-87.3, 88]; 0 below (the softmax only passes x <= 0). */
TARGET_AVX2 static inline __m256 mlk_exp256(__m256 x) {
    const __m256 low = _mm256_set1_ps(-87.33654475f);
    const __m256 underflow = _mm256_cmp_ps(x, low, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, low), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(scale)));
}

/* Lanes 0..<count set (count in 0...8). */
TARGET_AVX2 static inline __m256i mlk_lanes256(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

TARGET_AVX2 static inline float mlk_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* mlk_exp_rows with 8-lane max, exp and sum (the AVX2 and AVX-512 attention kernels). */
TARGET_AVX2 static void mlk_exp_rows_avx2(float *scores, int64_t group, int64_t length, int normalise, float *maxes,
                                          float *sums) {
    const int64_t whole = length / 8 * 8;
    const __m256i tail = mlk_lanes256(length - whole);
    for (int64_t g = 0; g < group; g++) {
        float *row = scores + g * length;
        __m256 vmax = _mm256_set1_ps(row[0]);
        for (int64_t p = 0; p < whole; p += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + p));
        if (whole < length) vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(vmax, _mm256_maskload_ps(row + whole, tail), _mm256_castsi256_ps(tail)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float maximum = _mm_cvtss_f32(m);
        const __m256 vm = _mm256_set1_ps(maximum);
        __m256 total = _mm256_setzero_ps();
        for (int64_t p = 0; p < whole; p += 8) {
            const __m256 e = mlk_exp256(_mm256_sub_ps(_mm256_loadu_ps(row + p), vm));
            _mm256_storeu_ps(row + p, e);
            total = _mm256_add_ps(total, e);
        }
        if (whole < length) {
            const __m256 e = _mm256_and_ps(mlk_exp256(_mm256_sub_ps(_mm256_maskload_ps(row + whole, tail), vm)), _mm256_castsi256_ps(tail));
            _mm256_maskstore_ps(row + whole, tail, e);
            total = _mm256_add_ps(total, e);
        }
        const float sum = mlk_hsum256(total);
        if (maxes) maxes[g] = maximum;
        if (sums) sums[g] = sum;
        if (normalise) {
            const __m256 inverse = _mm256_set1_ps(1.0f / sum);
            for (int64_t p = 0; p < whole; p += 8) _mm256_storeu_ps(row + p, _mm256_mul_ps(_mm256_loadu_ps(row + p), inverse));
            for (int64_t p = whole; p < length; p++) row[p] *= 1.0f / sum;
        }
    }
}

#ifndef MLK_KV_AHEAD
#define MLK_KV_AHEAD 16 /* K rows q·k prefetches ahead */
#endif

/* The f32 scale of the Q8_0 block of a K or V row that holds dim t, in all lanes. */
MLK_INLINE TARGET_AVX2 __m256 mlk_kv_scale_avx2(const uint8_t *row, int64_t t) {
    const uint8_t *block = row + (size_t)(t / 32) * 34;
    return _mm256_cvtph_ps(_mm_set1_epi16((short)(block[0] | (block[1] << 8))));
}

/* Dims t..t+7 of one K or V cache row as f32 (the same values mlk_load_scalar gives); `scale` is the row's
 * mlk_kv_scale_avx2 at t for Q8_0 rows (unused otherwise). */
MLK_INLINE TARGET_AVX2 __m256 mlk_kv8_avx2(const uint8_t *row, mlk_dtype dtype, int64_t t, __m256 scale) {
    if (dtype == MLK_DTYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * t)));
    if (dtype == MLK_DTYPE_Q8_0) {
        const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + (size_t)(t / 32) * 34 + 2 + t % 32)));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(q), scale);
    }
    return _mm256_loadu_ps((const float *)row + t);
}

/* q·k's prefetches at position pair p: the V rows p·V reads next (from `values`), fetched while q·k computes, and the K
 * rows a few steps ahead of k0. */
MLK_INLINE TARGET_AVX2 void mlk_qk_prefetch(const uint8_t *values, const uint8_t *k0, int64_t p, int64_t n, size_t row_bytes) {
    for (size_t offset = 0; offset < (p + 1 < n ? 2 : 1) * row_bytes; offset += 64)
        _mm_prefetch((const char *)values + (size_t)p * row_bytes + offset, _MM_HINT_T0);
    if (p + MLK_KV_AHEAD + 1 < n)
        for (size_t offset = 0; offset < 2 * row_bytes; offset += 64)
            _mm_prefetch((const char *)k0 + MLK_KV_AHEAD * row_bytes + offset, _MM_HINT_T0);
}

/* Reduces the 8-lane partial sums a[2g] (position p) and a[2g + 1] (p + 1) of G query rows by one hadd tree and stores
 * scale times them as scores[g·n + p] and [g·n + p + 1] (the latter while p + 1 < n). */
MLK_INLINE TARGET_AVX2 void mlk_qk_store(const int G, const __m256 a[8], __m256 vscale, float *scores, int64_t p, int64_t n) {
    /* Lanes: g0p0 g0p1 g1p0 g1p1 g2p0 g2p1 g3p0 g3p1. */
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    const __m256 dots = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_mul_ps(dots, vscale));
    for (int g = 0; g < G; g++) {
        scores[g * n + p] = lanes[2 * g];
        if (p + 1 < n) scores[g * n + p + 1] = lanes[2 * g + 1];
    }
}

/* scores[g·n + p] = scale · (q_g · k_p) for G (<= 4) query rows of a group and positions 0..<n. Two positions per
 * step: each K chunk is converted once, in registers, for all G rows; a dot product is 8 lanes of partial sums over
 * the dims, reduced by one hadd tree for all 2·G dots. */
MLK_INLINE TARGET_AVX2 void mlk_qk_avx2(const int G, mlk_dtype dtype, const float *q, int64_t d, const uint8_t *keys,
                                         const uint8_t *prefetch, size_t row_bytes, int64_t n, float scale, float *scores) {
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t p = 0; p < n; p += 2) {
        const uint8_t *k0 = keys + (size_t)p * row_bytes, *k1 = p + 1 < n ? k0 + row_bytes : k0;
        if (prefetch) mlk_qk_prefetch(prefetch, k0, p, n, row_bytes);
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        for (int64_t t = 0; t < d; t += 8) {
            if (dtype == MLK_DTYPE_Q8_0 && t % 32 == 0) s0 = mlk_kv_scale_avx2(k0, t), s1 = mlk_kv_scale_avx2(k1, t);
            const __m256 x0 = mlk_kv8_avx2(k0, dtype, t, s0), x1 = mlk_kv8_avx2(k1, dtype, t, s1);
            for (int g = 0; g < G; g++) {
                const __m256 qv = _mm256_loadu_ps(q + g * d + t);
                a[2 * g] = _mm256_fmadd_ps(x0, qv, a[2 * g]);
                a[2 * g + 1] = _mm256_fmadd_ps(x1, qv, a[2 * g + 1]);
            }
        }
        mlk_qk_store(G, a, vscale, scores, p, n);
    }
}

/* out[g·d + t] = sum over p < n of w[g·n + p] · v_p[t] for G (<= 4) query rows: C (1 or 2) 8-dim chunks from dim t0,
 * positions in order, the 2·G (or G) accumulators in registers for the whole pass. */
MLK_INLINE TARGET_AVX2 void mlk_pv_avx2(const int G, const int C, mlk_dtype dtype, const float *w, int64_t n, int64_t d,
                                         int64_t t0, const uint8_t *values, size_t row_bytes, float *out) {
    __m256 a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
    for (int64_t p = 0; p < n; p++) {
        const uint8_t *v = values + (size_t)p * row_bytes;
        /* t0 is a multiple of 16, so both chunks are in one Q8_0 block. */
        const __m256 scale = dtype == MLK_DTYPE_Q8_0 ? mlk_kv_scale_avx2(v, t0) : _mm256_setzero_ps();
        const __m256 x0 = mlk_kv8_avx2(v, dtype, t0, scale), x1 = C == 2 ? mlk_kv8_avx2(v, dtype, t0 + 8, scale) : x0;
        for (int g = 0; g < G; g++) {
            const __m256 wg = _mm256_broadcast_ss(w + g * n + p);
            a[2 * g] = _mm256_fmadd_ps(wg, x0, a[2 * g]);
            if (C == 2) a[2 * g + 1] = _mm256_fmadd_ps(wg, x1, a[2 * g + 1]);
        }
    }
    for (int g = 0; g < G; g++) {
        _mm256_storeu_ps(out + g * d + t0, a[2 * g]);
        if (C == 2) _mm256_storeu_ps(out + g * d + t0 + 8, a[2 * g + 1]);
    }
}

/* The scores of a query row's `group` heads, 4 at a time through QK (mlk_qk_avx2 or its 512-bit form; the first
 * call also prefetches the V rows), then their softmax weights: the first half of both attention row kernels. */
#define MLK_ATTEND_SCORES(QK)                                                                                           \
    for (int64_t g = 0; g < group; g += 4) {                                                                            \
        const float *qg = q + g * d;                                                                                    \
        float *sg = scores + g * n;                                                                                     \
        switch (group - g < 4 ? group - g : 4) {                                                                        \
        case 4: QK(4, dtype, qg, d, keys, g == 0 ? values : NULL, row_bytes, n, scale, sg); break;                      \
        case 3: QK(3, dtype, qg, d, keys, g == 0 ? values : NULL, row_bytes, n, scale, sg); break;                      \
        case 2: QK(2, dtype, qg, d, keys, g == 0 ? values : NULL, row_bytes, n, scale, sg); break;                      \
        default: QK(1, dtype, qg, d, keys, g == 0 ? values : NULL, row_bytes, n, scale, sg); break;                     \
        }                                                                                                               \
    }                                                                                                                   \
    mlk_exp_rows_avx2(scores, group, n, maxes == NULL, maxes, sums);

/* One query row (`group` query heads) against positions 0..<n, the K/V type fixed so each variant is specialised. */
MLK_INLINE TARGET_AVX2 void mlk_attend_row_avx2(mlk_dtype dtype, const float *q, int64_t group, int64_t d,
                                                 const uint8_t *keys, const uint8_t *values, int64_t n, float scale,
                                                 float *scores, float *out, float *maxes, float *sums) {
    const size_t row_bytes = mlk_row_bytes(dtype, d);
    MLK_ATTEND_SCORES(mlk_qk_avx2)
    for (int64_t g = 0; g < group; g += 4) {
        const float *wg = scores + g * n;
        float *og = out + g * d;
        const int G = group - g < 4 ? (int)(group - g) : 4;
        for (int64_t t = 0; t < d; t += 16) {
            const int two = t + 16 <= d;
#define MLK_PV_CASE(GG)                                                                                                 \
    case GG:                                                                                                            \
        if (two) mlk_pv_avx2(GG, 2, dtype, wg, n, d, t, values, row_bytes, og);                                         \
        else mlk_pv_avx2(GG, 1, dtype, wg, n, d, t, values, row_bytes, og);                                             \
        break;
            switch (G) {
            MLK_PV_CASE(4)
            MLK_PV_CASE(3)
            MLK_PV_CASE(2)
            default: MLK_PV_CASE(1)
            }
#undef MLK_PV_CASE
        }
    }
}

/* ---- The AVX2 attention kernel's numbers with 512-bit registers (AVX-512 machines). Every lane runs exactly the
 * operations of the 256-bit kernel: q·k holds positions p and p + 1 in the two halves of one register (the 256-bit
 * kernel's two accumulators of a query row), and p·V covers 16 dims per register (two of its 8-dim chunks), so the
 * multiply-adds per position halve and the results are bit for bit the 256-bit kernel's. */

MLK_INLINE TARGET_AVX512 __m512 mlk_join256(__m256 low, __m256 high) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(low)), _mm256_castps_pd(high), 1));
}

/* mlk_qk_avx2 (same arguments, same scores) with one 512-bit accumulator per query row. */
MLK_INLINE TARGET_AVX512 void mlk_qk_pairs512(const int G, mlk_dtype dtype, const float *q, int64_t d, const uint8_t *keys,
                                             const uint8_t *prefetch, size_t row_bytes, int64_t n, float scale, float *scores) {
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t p = 0; p < n; p += 2) {
        const uint8_t *k0 = keys + (size_t)p * row_bytes, *k1 = p + 1 < n ? k0 + row_bytes : k0;
        if (prefetch) mlk_qk_prefetch(prefetch, k0, p, n, row_bytes);
        __m512 a[4];
        for (int i = 0; i < 4; i++) a[i] = _mm512_setzero_ps();
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        for (int64_t t = 0; t < d; t += 8) {
            if (dtype == MLK_DTYPE_Q8_0 && t % 32 == 0) s0 = mlk_kv_scale_avx2(k0, t), s1 = mlk_kv_scale_avx2(k1, t);
            const __m512 x = mlk_join256(mlk_kv8_avx2(k0, dtype, t, s0), mlk_kv8_avx2(k1, dtype, t, s1));
            for (int g = 0; g < G; g++) {
                const __m256 qv = _mm256_loadu_ps(q + g * d + t);
                a[g] = _mm512_fmadd_ps(x, mlk_join256(qv, qv), a[g]);
            }
        }
        __m256 h[8];
        for (int g = 0; g < 4; g++) {
            h[2 * g] = _mm512_castps512_ps256(a[g]);
            h[2 * g + 1] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[g]), 1));
        }
        mlk_qk_store(G, h, vscale, scores, p, n);
    }
}

/* mlk_pv_avx2's sums for G (<= 4) query rows and C (1..4) 16-dim chunks from dim t0: each V row is read once for
 * all of them. */
MLK_INLINE TARGET_AVX512 void mlk_pv_pairs512(const int G, const int C, mlk_dtype dtype, const float *w, int64_t n,
                                             int64_t d, int64_t t0, const uint8_t *values, size_t row_bytes, float *out) {
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < n; p++) {
        const uint8_t *v = values + (size_t)p * row_bytes;
        __m512 x[4];
        for (int c = 0; c < C; c++) {
            const int64_t t = t0 + 16 * c;
            const __m256 scale = dtype == MLK_DTYPE_Q8_0 ? mlk_kv_scale_avx2(v, t) : _mm256_setzero_ps();
            x[c] = mlk_join256(mlk_kv8_avx2(v, dtype, t, scale), mlk_kv8_avx2(v, dtype, t + 8, scale));
        }
        for (int g = 0; g < G; g++) {
            const __m512 wg = _mm512_set1_ps(w[g * n + p]);
            for (int c = 0; c < C; c++) a[4 * g + c] = _mm512_fmadd_ps(wg, x[c], a[4 * g + c]);
        }
    }
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++) _mm512_storeu_ps(out + g * d + t0 + 16 * c, a[4 * g + c]);
}

/* mlk_attend_row_avx2 with the 512-bit forms above (an 8-dim tail of d takes mlk_pv_avx2 itself). */
MLK_INLINE TARGET_AVX512 void mlk_attend_row_pairs512(mlk_dtype dtype, const float *q, int64_t group, int64_t d,
                                                     const uint8_t *keys, const uint8_t *values, int64_t n, float scale,
                                                     float *scores, float *out, float *maxes, float *sums) {
    const size_t row_bytes = mlk_row_bytes(dtype, d);
    MLK_ATTEND_SCORES(mlk_qk_pairs512)
    for (int64_t g = 0; g < group; g += 4) {
        const float *wg = scores + g * n;
        float *og = out + g * d;
        const int G = group - g < 4 ? (int)(group - g) : 4;
        int64_t t = 0;
        while (t + 16 <= d) {
            const int C = (int)((d - t) / 16 < 4 ? (d - t) / 16 : 4);
#define MLK_PV512_CASE(GG)                                                                                              \
    case GG:                                                                                                            \
        switch (C) {                                                                                                    \
        case 4: mlk_pv_pairs512(GG, 4, dtype, wg, n, d, t, values, row_bytes, og); break;                               \
        case 3: mlk_pv_pairs512(GG, 3, dtype, wg, n, d, t, values, row_bytes, og); break;                               \
        case 2: mlk_pv_pairs512(GG, 2, dtype, wg, n, d, t, values, row_bytes, og); break;                               \
        default: mlk_pv_pairs512(GG, 1, dtype, wg, n, d, t, values, row_bytes, og); break;                              \
        }                                                                                                               \
        break;
            switch (G) {
            MLK_PV512_CASE(4)
            MLK_PV512_CASE(3)
            MLK_PV512_CASE(2)
            default: MLK_PV512_CASE(1)
            }
#undef MLK_PV512_CASE
            t += 16 * C;
        }
        if (t < d) { /* 8 dims left (d % 16 == 8) */
            switch (G) {
            case 4: mlk_pv_avx2(4, 1, dtype, wg, n, d, t, values, row_bytes, og); break;
            case 3: mlk_pv_avx2(3, 1, dtype, wg, n, d, t, values, row_bytes, og); break;
            case 2: mlk_pv_avx2(2, 1, dtype, wg, n, d, t, values, row_bytes, og); break;
            default: mlk_pv_avx2(1, 1, dtype, wg, n, d, t, values, row_bytes, og); break;
            }
        }
    }
}

/* The AVX2 attention kernel's numbers on AVX-512 machines (see mlk_attention_avx2). */
TARGET_AVX512 static void mlk_attention_pairs512(const float *q, int64_t group, int64_t d, const void *keys,
                                                 const void *values, mlk_dtype kv_dtype, int64_t length, float scale,
                                                 float *scores, float *out, float *maxes, float *sums) {
    const uint8_t *k = (const uint8_t *)keys, *v = (const uint8_t *)values;
    switch (kv_dtype) {
    case MLK_DTYPE_F16: mlk_attend_row_pairs512(MLK_DTYPE_F16, q, group, d, k, v, length, scale, scores, out, maxes, sums); break;
    case MLK_DTYPE_Q8_0: mlk_attend_row_pairs512(MLK_DTYPE_Q8_0, q, group, d, k, v, length, scale, scores, out, maxes, sums); break;
    default: mlk_attend_row_pairs512(MLK_DTYPE_F32, q, group, d, k, v, length, scale, scores, out, maxes, sums); break;
    }
}

/* The K/V types and head sizes the AVX2 attention kernel takes (others take the scalar kernel). */
static int mlk_attention_avx2_fits(mlk_dtype dtype, int64_t d) {
    return d % 8 == 0 && d <= 256 && (dtype == MLK_DTYPE_F32 || dtype == MLK_DTYPE_F16 || (dtype == MLK_DTYPE_Q8_0 && d % 32 == 0));
}

/* AVX2 attention of one query row: q·k two positions at a time and p·V with the output in registers, K/V rows
 * converted to f32 in registers as they are read (no conversion pass, no buffer). A row's numbers depend only on
 * the row, so rows of one prefill, a decode step and a batch are bit-identical. */
TARGET_AVX2 static void mlk_attention_avx2(const float *q, int64_t group, int64_t d, const void *keys, const void *values,
                                           mlk_dtype kv_dtype, int64_t length, float scale, float *scores, float *out,
                                           float *maxes, float *sums) {
    const uint8_t *k = (const uint8_t *)keys, *v = (const uint8_t *)values;
    switch (kv_dtype) {
    case MLK_DTYPE_F16: mlk_attend_row_avx2(MLK_DTYPE_F16, q, group, d, k, v, length, scale, scores, out, maxes, sums); break;
    case MLK_DTYPE_Q8_0: mlk_attend_row_avx2(MLK_DTYPE_Q8_0, q, group, d, k, v, length, scale, scores, out, maxes, sums); break;
    default: mlk_attend_row_avx2(MLK_DTYPE_F32, q, group, d, k, v, length, scale, scores, out, maxes, sums); break;
    }
}

/* AVX-512: head dimension in 16-wide chunks (masked tail); each K/V row converted once and used by every query row.
 * Runs where the AVX2 kernel does not fit (head sizes over 256 or not a multiple of 8; see the dispatch). */
TARGET_AVX512 static void mlk_attention_avx512(const float *q, int64_t group, int64_t d, const void *keys, const void *values,
                                               mlk_dtype kv_dtype, int64_t length, float scale, float *scores, float *out,
                                               float *maxes, float *sums) {
    const int64_t chunks = (d + 15) / 16;
    const __mmask16 tail = (d % 16) ? (__mmask16)((1u << (d % 16)) - 1u) : (__mmask16)0xFFFF;
    const size_t row_bytes = mlk_row_bytes(kv_dtype, d);
    __m512 row[16]; /* up to d = 256 */
    if (chunks > 16) {
        mlk_attention_scalar(q, group, d, keys, values, kv_dtype, length, scale, scores, out, maxes, sums);
        return;
    }
    for (int64_t p = 0; p < length; p++) {
        const void *key = (const char *)keys + (size_t)p * row_bytes;
        for (int64_t c = 0; c < chunks; c++) {
            __mmask16 m = c == chunks - 1 ? tail : (__mmask16)0xFFFF;
            row[c] = l512_kv(key, kv_dtype, c * 16, m);
        }
        for (int64_t g = 0; g < group; g++) {
            __m512 acc = _mm512_setzero_ps();
            for (int64_t c = 0; c < chunks; c++) {
                __mmask16 m = c == chunks - 1 ? tail : (__mmask16)0xFFFF;
                acc = _mm512_fmadd_ps(row[c], _mm512_maskz_loadu_ps(m, q + g * d + c * 16), acc);
            }
            scores[g * length + p] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
    mlk_exp_rows_avx2(scores, group, length, maxes == NULL, maxes, sums);
    for (int64_t g = 0; g < group; g += 4) {
        const int64_t rows = group - g < 4 ? group - g : 4;
        __m512 acc[4][16];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < chunks; c++) acc[r][c] = _mm512_setzero_ps();
        for (int64_t p = 0; p < length; p++) {
            const void *value = (const char *)values + (size_t)p * row_bytes;
            for (int64_t c = 0; c < chunks; c++) {
                __mmask16 m = c == chunks - 1 ? tail : (__mmask16)0xFFFF;
                row[c] = l512_kv(value, kv_dtype, c * 16, m);
            }
            for (int64_t r = 0; r < rows; r++) {
                __m512 w = _mm512_set1_ps(scores[(g + r) * length + p]);
                for (int64_t c = 0; c < chunks; c++) acc[r][c] = _mm512_fmadd_ps(w, row[c], acc[r][c]);
            }
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < chunks; c++) {
                __mmask16 m = c == chunks - 1 ? tail : (__mmask16)0xFFFF;
                _mm512_mask_storeu_ps(out + (g + r) * d + c * 16, m, acc[r][c]);
            }
    }
}
/* ------------------------------------------------------------------ RMS norm and SwiGLU */

TARGET_AVX2 static void mlk_rms_norm_avx2(const float *x, int64_t rows, int64_t width, const float *weight, float epsilon,
                                          float *out) {
    const int64_t whole = width / 8 * 8;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * width;
        float *o = out + r * width;
        __m256 squares = _mm256_setzero_ps();
        for (int64_t t = 0; t < whole; t += 8) {
            const __m256 v = _mm256_loadu_ps(row + t);
            squares = _mm256_fmadd_ps(v, v, squares);
        }
        float sum = mlk_hsum256(squares);
        for (int64_t t = whole; t < width; t++) sum += row[t] * row[t];
        const float scale = 1.0f / sqrtf(sum / (float)width + epsilon);
        const __m256 vs = _mm256_set1_ps(scale);
        for (int64_t t = 0; t < whole; t += 8) {
            const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(row + t), vs);
            _mm256_storeu_ps(o + t, weight ? _mm256_mul_ps(v, _mm256_loadu_ps(weight + t)) : v);
        }
        for (int64_t t = whole; t < width; t++) o[t] = weight ? (row[t] * scale) * weight[t] : row[t] * scale;
    }
}

TARGET_AVX2 static void mlk_swiglu_avx2(float *gate, const float *up, int64_t count) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t t = 0;
    for (; t + 8 <= count; t += 8) {
        const __m256 g = _mm256_loadu_ps(gate + t);
        const __m256 e = mlk_exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(gate + t, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + t)));
    }
    for (; t < count; t++) gate[t] = gate[t] / (1.0f + expf(-gate[t])) * up[t];
}

#endif

void mlk_rms_norm(const float *x, int64_t rows, int64_t width, const float *weight, float epsilon, float *out) {
    if (!x || !out || rows <= 0 || width <= 0) return;
#ifdef MLK_X86
    if (mlk_active_isa() >= MLK_ISA_AVX2) {
        mlk_rms_norm_avx2(x, rows, width, weight, epsilon, out);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * width;
        float *o = out + r * width;
        float lanes[8] = {0};
        const int64_t whole = width / 8 * 8;
        for (int64_t t = 0; t < whole; t++) lanes[t % 8] += row[t] * row[t];
        float sum = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
        for (int64_t t = whole; t < width; t++) sum += row[t] * row[t];
        const float scale = 1.0f / sqrtf(sum / (float)width + epsilon);
        for (int64_t t = 0; t < width; t++) o[t] = weight ? (row[t] * scale) * weight[t] : row[t] * scale;
    }
}

void mlk_swiglu(float *gate, const float *up, int64_t count) {
    if (!gate || !up || count <= 0) return;
#ifdef MLK_X86
    if (mlk_active_isa() >= MLK_ISA_AVX2) {
        mlk_swiglu_avx2(gate, up, count);
        return;
    }
#endif
    for (int64_t t = 0; t < count; t++) gate[t] = gate[t] / (1.0f + expf(-gate[t])) * up[t];
}

void mlk_attention(const float *q, int64_t group, int64_t d, const void *keys, const void *values, mlk_dtype kv_dtype,
                   int64_t length, float scale, float *scores, float *out) {
    mlk_attention_isa(mlk_active_isa(), q, group, d, keys, values, kv_dtype, length, scale, scores, out);
}

static void mlk_attention_dispatch(mlk_isa isa, const float *q, int64_t group, int64_t d, const void *keys,
                                   const void *values, mlk_dtype kv_dtype, int64_t length, float scale, float *scores,
                                   float *out, float *maxes, float *sums);

void mlk_attention_partial(const float *q, int64_t group, int64_t d, const void *keys, const void *values,
                           mlk_dtype kv_dtype, int64_t length, float scale, float *scores, float *out, float *maxes,
                           float *sums) {
    if (!maxes || !sums) return;
    mlk_attention_dispatch(mlk_active_isa(), q, group, d, keys, values, kv_dtype, length, scale, scores, out, maxes, sums);
}

void mlk_attention_partial_rows(int64_t rows, const float *q, int64_t q_stride, const int64_t *lengths, int64_t group,
                                int64_t d, const void *keys, const void *values, mlk_dtype kv_dtype, float scale,
                                float *scores, int64_t scores_stride, float *partials, int64_t partial_stride) {
    if (rows <= 0 || !q || !lengths || !scores || !partials || group <= 0 || d <= 0 || mlk_row_bytes(kv_dtype, d) == 0) return;
    for (int64_t r = 0; r < rows; r++)
        if (lengths[r] <= 0 || scores_stride < group * lengths[r]) return;
    /* One row after the other: each computes alone, and the later ones find the segment's K/V in cache. */
    for (int64_t r = 0; r < rows; r++) {
        float *partial = partials + r * partial_stride;
        mlk_attention_partial(q + r * q_stride, group, d, keys, values, kv_dtype, lengths[r], scale, scores + r * scores_stride,
                              partial, partial + group * d, partial + group * d + group);
    }
}

void mlk_attention_combine(int64_t segments, int64_t group, int64_t d, const float *out, const float *maxes,
                           const float *sums, float *result) {
    if (segments <= 0 || group <= 0 || d <= 0) return;
    for (int64_t g = 0; g < group; g++) {
        float maximum = maxes[g];
        for (int64_t s = 1; s < segments; s++) maximum = maxes[s * group + g] > maximum ? maxes[s * group + g] : maximum;
        float total = 0;
        float *row = result + g * d;
        for (int64_t t = 0; t < d; t++) row[t] = 0;
        for (int64_t s = 0; s < segments; s++) {
            const float weight = expf(maxes[s * group + g] - maximum);
            total += weight * sums[s * group + g];
            const float *part = out + (s * group + g) * d;
            for (int64_t t = 0; t < d; t++) row[t] += weight * part[t];
        }
        const float inverse = 1.0f / total;
        for (int64_t t = 0; t < d; t++) row[t] *= inverse;
    }
}

void mlk_attention_isa(mlk_isa isa, const float *q, int64_t group, int64_t d, const void *keys, const void *values,
                       mlk_dtype kv_dtype, int64_t length, float scale, float *scores, float *out) {
    mlk_attention_dispatch(isa, q, group, d, keys, values, kv_dtype, length, scale, scores, out, NULL, NULL);
}

mlk_kernel mlk_attention_kernel(mlk_isa isa, mlk_dtype kv_dtype, int64_t d) {
    if (isa > mlk_detect_isa()) isa = mlk_detect_isa();
    if (d <= 0 || mlk_row_bytes(kv_dtype, d) == 0) return MLK_KERNEL_NONE;
#ifdef MLK_X86
    /* AVX-512 machines run the AVX2 kernel where it fits: its scores come two positions at a time through one
     * shared reduction, where the AVX-512 kernel reduces a 16-lane sum per position and query head (SmolLM2 prefill
     * 512 on Sapphire Rapids: 663 -> 737-783 tok/s, attention was 27% of it; a 16-position AVX-512 variant that
     * converted K per query head was slower still). */
    const int avx2_fits = mlk_attention_avx2_fits(kv_dtype, d);
    if ((isa == MLK_ISA_AVX512 || isa == MLK_ISA_AVX512_VNNI) && !avx2_fits) return MLK_KERNEL_AVX512;
    if ((isa == MLK_ISA_AVX2 || isa == MLK_ISA_AVX512 || isa == MLK_ISA_AVX512_VNNI) && avx2_fits) return MLK_KERNEL_AVX2;
#endif
    return MLK_KERNEL_SCALAR;
}

static void mlk_attention_dispatch(mlk_isa isa, const float *q, int64_t group, int64_t d, const void *keys,
                                   const void *values, mlk_dtype kv_dtype, int64_t length, float scale, float *scores,
                                   float *out, float *maxes, float *sums) {
    if (group <= 0 || d <= 0 || mlk_row_bytes(kv_dtype, d) == 0) return;
    if (length <= 0) {
        for (int64_t i = 0; i < group * d; i++) out[i] = 0;
        return;
    }
    switch (mlk_attention_kernel(isa, kv_dtype, d)) {
#ifdef MLK_X86
    case MLK_KERNEL_AVX512:
        mlk_attention_avx512(q, group, d, keys, values, kv_dtype, length, scale, scores, out, maxes, sums);
        return;
    case MLK_KERNEL_AVX2:
        /* On AVX-512 the same operations run two 8-lane halves per register (bit for bit the same numbers). */
        if (isa == MLK_ISA_AVX512 || isa == MLK_ISA_AVX512_VNNI)
            mlk_attention_pairs512(q, group, d, keys, values, kv_dtype, length, scale, scores, out, maxes, sums);
        else
            mlk_attention_avx2(q, group, d, keys, values, kv_dtype, length, scale, scores, out, maxes, sums);
        return;
#endif
    default:
        mlk_attention_scalar(q, group, d, keys, values, kv_dtype, length, scale, scores, out, maxes, sums);
        return;
    }
}

/* ---------------------------------------------------------------- read-bandwidth probe */

#ifdef MLK_X86
TARGET_AVX512 static uint64_t mlk_read_probe_avx512(const void *buffer, size_t bytes) {
    const __m512i *p = (const __m512i *)buffer;
    __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512(), c = _mm512_setzero_si512(), d = _mm512_setzero_si512();
    size_t lines = bytes / 64, i = 0;
    for (; i + 4 <= lines; i += 4) {
        a = _mm512_xor_si512(a, _mm512_load_si512(p + i));
        b = _mm512_xor_si512(b, _mm512_load_si512(p + i + 1));
        c = _mm512_xor_si512(c, _mm512_load_si512(p + i + 2));
        d = _mm512_xor_si512(d, _mm512_load_si512(p + i + 3));
    }
    for (; i < lines; i++) a = _mm512_xor_si512(a, _mm512_load_si512(p + i));
    a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
    return (uint64_t)_mm512_reduce_add_epi64(a);
}
#endif

uint64_t mlk_read_probe(const void *buffer, size_t bytes) {
#ifdef MLK_X86
    if (mlk_active_isa() == MLK_ISA_AVX512 || mlk_active_isa() == MLK_ISA_AVX512_VNNI) return mlk_read_probe_avx512(buffer, bytes);
#endif
    const uint64_t *p = (const uint64_t *)buffer;
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes / 8; i++) sum ^= p[i];
    return sum;
}
