/*
 * Quantized formats: sizes, ggml-reference quantization, dequantization, activation quantization, the portable
 * scalar matmul, and run-time dispatch to the SIMD kernels (quant_x86.c, quant_neon.c).
 *
 * Quantization follows ggml's *_ref functions operation by operation (same float operations in the same
 * order), so the bytes match ggml / gguf-py. Contraction into FMA is switched off here so that this holds on
 * every target (clang contracts a*b+c by default where FMA exists, e.g. on arm64).
 */
#include "quant_internal.h"

#include <math.h>

#pragma STDC FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

/* ---------------------------------------------------------------- sizes */

int mlk_q_is_supported(int type) {
    switch (type) {
    case MLK_Q_F32: case MLK_Q_F16: case MLK_Q_BF16:
    case MLK_Q_Q4_0: case MLK_Q_Q4_1: case MLK_Q_Q5_0: case MLK_Q_Q5_1: case MLK_Q_Q8_0: case MLK_Q_IQ4_NL:
    case MLK_Q_Q2_K: case MLK_Q_Q3_K: case MLK_Q_Q4_K: case MLK_Q_Q5_K: case MLK_Q_Q6_K: return 1;
    default: return 0;
    }
}

int mlk_q_can_quantize(int type) {
    return mlk_q_is_supported(type) && type != MLK_Q_IQ4_NL && type != MLK_Q_Q2_K && type != MLK_Q_Q3_K;
}

int mlk_q_has_matmul(int wtype) {
    switch (wtype) {
    case MLK_Q_Q4_0: case MLK_Q_Q4_1: case MLK_Q_Q5_0: case MLK_Q_Q5_1: case MLK_Q_Q8_0: case MLK_Q_IQ4_NL:
    case MLK_Q_Q2_K: case MLK_Q_Q3_K: case MLK_Q_Q4_K: case MLK_Q_Q5_K: case MLK_Q_Q6_K: return 1;
    default: return 0;
    }
}

int64_t mlk_q_block_size(int type) {
    switch (type) {
    case MLK_Q_F32: case MLK_Q_F16: case MLK_Q_BF16: return 1;
    case MLK_Q_Q4_0: case MLK_Q_Q4_1: case MLK_Q_Q5_0: case MLK_Q_Q5_1: case MLK_Q_Q8_0: case MLK_Q_IQ4_NL: return MLK_QK;
    case MLK_Q_Q2_K: case MLK_Q_Q3_K: case MLK_Q_Q4_K: case MLK_Q_Q5_K: case MLK_Q_Q6_K: return MLK_QK_K;
    default: return 0;
    }
}

static size_t mlk_q_block_bytes(int type) {
    switch (type) {
    case MLK_Q_F32: return 4;
    case MLK_Q_F16: case MLK_Q_BF16: return 2;
    case MLK_Q_Q4_0: return MLK_Q4_0_BYTES;
    case MLK_Q_Q4_1: return MLK_Q4_1_BYTES;
    case MLK_Q_Q5_0: return MLK_Q5_0_BYTES;
    case MLK_Q_Q5_1: return MLK_Q5_1_BYTES;
    case MLK_Q_Q8_0: return MLK_Q8_0_BYTES;
    case MLK_Q_IQ4_NL: return MLK_IQ4_NL_BYTES;
    case MLK_Q_Q2_K: return MLK_Q2_K_BYTES;
    case MLK_Q_Q3_K: return MLK_Q3_K_BYTES;
    case MLK_Q_Q4_K: return MLK_Q4_K_BYTES;
    case MLK_Q_Q5_K: return MLK_Q5_K_BYTES;
    case MLK_Q_Q6_K: return MLK_Q6_K_BYTES;
    default: return 0;
    }
}

/* k must be a non-negative multiple of the block size and small enough that byte counts fit comfortably. */
static int mlk_q_valid_k(int type, int64_t k) {
    int64_t bs = mlk_q_block_size(type);
    return bs > 0 && k >= 0 && k <= ((int64_t)1 << 40) && k % bs == 0;
}

size_t mlk_q_row_bytes(int type, int64_t k) {
    if (!mlk_q_valid_k(type, k)) return 0;
    return (size_t)(k / mlk_q_block_size(type)) * mlk_q_block_bytes(type);
}

size_t mlk_q_act_row_bytes(int wtype, int64_t k) {
    if (!mlk_q_has_matmul(wtype) || !mlk_q_valid_k(wtype, k)) return 0;
    return mlk_q_act_bytes(k);
}

/* ---------------------------------------------------------------- ggml helpers */

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (valid for |f| <= 2^22). */
static inline int mlk_q_nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

#define MLK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MLK_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MLK_GROUP_MAX_EPS 1e-15f

/* ---------------------------------------------------------------- Q4_0 / Q4_1 / Q8_0 */

/* The value of largest magnitude in a 32-block (the first of equal magnitudes), as ggml's symmetric quantizers
 * find it: its sign decides the sign of the scale. */
static inline float mlk_q_extreme(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < MLK_QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* The smallest and largest values of a 32-block, for the quantizers with a minimum (Q4_1, Q5_1). */
static inline void mlk_q_min_max(const float *x, float *out_min, float *out_max) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < MLK_QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *out_min = min;
    *out_max = max;
}

/* Truncating float -> [0, 15] conversion as ggml's MIN(15, (int8_t)(v)), defined for every input. */
static inline uint8_t mlk_q_trunc_nibble(float v) {
    if (!(v >= 0.0f)) return 0;
    if (v >= 15.0f) return 15;
    return (uint8_t)(int)v;
}

static void quantize_q4_0(const float *x, uint8_t *y, int64_t k) {
    for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_QK, y += MLK_Q4_0_BYTES) {
        const float max = mlk_q_extreme(x);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlk_q_wr16(y, mlk_q_f2h(d));
        for (int j = 0; j < MLK_QK / 2; j++) {
            uint8_t lo = mlk_q_trunc_nibble(x[j] * id + 8.5f);
            uint8_t hi = mlk_q_trunc_nibble(x[j + MLK_QK / 2] * id + 8.5f);
            y[2 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void quantize_q4_1(const float *x, uint8_t *y, int64_t k) {
    for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_QK, y += MLK_Q4_1_BYTES) {
        float min, max;
        mlk_q_min_max(x, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlk_q_wr16(y, mlk_q_f2h(d));
        mlk_q_wr16(y + 2, mlk_q_f2h(min));
        for (int j = 0; j < MLK_QK / 2; j++) {
            uint8_t lo = mlk_q_trunc_nibble((x[j] - min) * id + 0.5f);
            uint8_t hi = mlk_q_trunc_nibble((x[j + MLK_QK / 2] - min) * id + 0.5f);
            y[4 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* Truncating float -> [0, 31] conversion: ggml's MIN(31, (int8_t)v) for Q5_0 and (uint8_t)v for Q5_1 (whose
 * argument never exceeds 31.5 for finite input), defined for every input. */
static inline uint8_t mlk_q_trunc_q5(float v) {
    if (!(v >= 0.0f)) return 0;
    if (v >= 31.0f) return 31;
    return (uint8_t)(int)v;
}

/* Q5_0 / Q5_1 packing of 32 codes (0..31): nibbles into qs as Q4_0, bit 4 of code i into bit i of qh. */
static void mlk_q5_pack(const uint8_t *q, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
        h |= (uint32_t)(q[j] >> 4) << j;
        h |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(h >> (8 * i));
}

static void quantize_q5_0(const float *x, uint8_t *y, int64_t k) {
    for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_QK, y += MLK_Q5_0_BYTES) {
        const float max = mlk_q_extreme(x);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlk_q_wr16(y, mlk_q_f2h(d));
        uint8_t q[MLK_QK];
        for (int j = 0; j < MLK_QK; j++) q[j] = mlk_q_trunc_q5(x[j] * id + 16.5f);
        mlk_q5_pack(q, y + 2, y + 6);
    }
}

static void quantize_q5_1(const float *x, uint8_t *y, int64_t k) {
    for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_QK, y += MLK_Q5_1_BYTES) {
        float min, max;
        mlk_q_min_max(x, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlk_q_wr16(y, mlk_q_f2h(d));
        mlk_q_wr16(y + 2, mlk_q_f2h(min));
        uint8_t q[MLK_QK];
        for (int j = 0; j < MLK_QK; j++) q[j] = mlk_q_trunc_q5((x[j] - min) * id + 0.5f);
        mlk_q5_pack(q, y + 4, y + 8);
    }
}

static void quantize_q8_0(const float *x, uint8_t *y, int64_t k) {
    for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_QK, y += MLK_Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < MLK_QK; j++) amax = MLK_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlk_q_wr16(y, mlk_q_f2h(d));
        for (int j = 0; j < MLK_QK; j++) {
            float v = roundf(x[j] * id); /* half away from zero, as ggml */
            if (!(v >= -128.0f)) v = v != v ? 0.0f : -128.0f;
            if (v > 127.0f) v = 127.0f;
            y[2 + j] = (uint8_t)(int8_t)(int)v;
        }
    }
}

/* ---------------------------------------------------------------- Q4_K */

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = mlk_q_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MLK_MAX(0, MLK_MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = mlk_q_nearest_int(iscale * (x[i] - min));
            l = MLK_MAX(0, MLK_MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The K-quant super-block search of ggml's quantize_row_q4_K_ref and quantize_row_q5_K_ref: per 32-weight sub-block
 * a scale and a min (make_qkx2_quants over codes 0..nmax, search from rmin in nstep steps), both quantized to 6 bits
 * into the block's f16 d and dmin (y, y + 2) and its 12 scale bytes (y + 4); then every weight's code in L. */
static void quantize_k_scales_codes(const float *x, uint8_t *y, uint8_t L[MLK_QK_K], int nmax, float rmin, int nstep) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    uint8_t *sc = y + 4;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)mlk_q_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)mlk_q_nearest_int(inv_min * mins[j]);
        ls = MLK_MIN(63, ls);
        lm = MLK_MIN(63, lm);
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    mlk_q_wr16(y, mlk_q_f2h(max_scale / 63.f));
    mlk_q_wr16(y + 2, mlk_q_f2h(max_min / 63.f));
    const float dd = mlk_q_h2f(mlk_q_rd16(y)), dmin = mlk_q_h2f(mlk_q_rd16(y + 2));
    for (int j = 0; j < 8; j++) {
        int s, m;
        mlk_q4k_scale_min(j, sc, &s, &m);
        const float d = dd * s;
        if (d == 0.0f) continue;
        const float dm = dmin * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = mlk_q_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)MLK_MAX(0, MLK_MIN(nmax, l));
        }
    }
}

static void quantize_q4_k(const float *x, uint8_t *y, int64_t k) {
    uint8_t L[MLK_QK_K];
    for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_QK_K, y += MLK_Q4_K_BYTES) {
        quantize_k_scales_codes(x, y, L, 15, -1.f, 20);
        uint8_t *qs = y + 16;
        for (int j = 0; j < MLK_QK_K; j += 64) {
            for (int l = 0; l < 32; l++) qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            qs += 32;
        }
    }
}

/* ---------------------------------------------------------------- Q5_K */

/* ggml's quantize_row_q5_K_ref: Q4_K's search with 5-bit codes (nmax 31, rmin -0.5, 15 steps). */
static void quantize_q5_k(const float *x, uint8_t *y, int64_t k) {
    uint8_t L[MLK_QK_K];
    for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_QK_K, y += MLK_Q5_K_BYTES) {
        quantize_k_scales_codes(x, y, L, 31, -0.5f, 15);
        uint8_t *qh = y + MLK_Q5K_QH, *qs = y + MLK_Q5K_QS;
        memset(qh, 0, 32);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
                qh[l] |= (uint8_t)(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
                qs[32 * c + l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
            }
        }
    }
}

/* ---------------------------------------------------------------- Q6_K */

/* ggml's make_qx_quants with rmse_type 1 and no importance weights. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < MLK_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = mlk_q_nearest_int(iscale * x[i]);
        l = MLK_MAX(-nmax, MLK_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = mlk_q_nearest_int(iscale * x[i]);
            l = MLK_MAX(-nmax, MLK_MIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = mlk_q_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MLK_MAX(-nmax, MLK_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quantize_q6_k(const float *x, uint8_t *y, int64_t k) {
    int8_t L[MLK_QK_K];
    float scales[16];
    for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_QK_K, y += MLK_Q6_K_BYTES) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < MLK_GROUP_MAX_EPS) {
            memset(y, 0, MLK_Q6_K_BYTES);
            continue;
        }
        const float iscale = -128.f / max_scale;
        mlk_q_wr16(y + MLK_Q6K_D, mlk_q_f2h(1 / iscale));
        int8_t *sc = (int8_t *)(y + MLK_Q6K_SC);
        for (int ib = 0; ib < 16; ib++) sc[ib] = (int8_t)MLK_MIN(127, mlk_q_nearest_int(iscale * scales[ib]));
        const float dd = mlk_q_h2f(mlk_q_rd16(y + MLK_Q6K_D));
        for (int j = 0; j < 16; j++) {
            const float d = dd * sc[j];
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = mlk_q_nearest_int(x[16 * j + ii] / d);
                l = MLK_MAX(-32, MLK_MIN(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y + MLK_Q6K_QL, *qh = y + MLK_Q6K_QH;
        for (int j = 0; j < MLK_QK_K; j += 128) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

/* ---------------------------------------------------------------- F16 / BF16 */

static uint16_t mlk_q_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN, as ggml */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

void mlk_q_quantize_rows(int type, const float *src, int64_t rows, int64_t k, void *dst) {
    if (!src || !dst || rows < 0 || !mlk_q_valid_k(type, k) || !mlk_q_can_quantize(type)) return;
    const size_t rb = mlk_q_row_bytes(type, k);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * k;
        uint8_t *y = (uint8_t *)dst + (size_t)r * rb;
        switch (type) {
        case MLK_Q_F32: memcpy(y, x, rb); break;
        case MLK_Q_F16: for (int64_t t = 0; t < k; t++) mlk_q_wr16(y + 2 * t, mlk_q_f2h(x[t])); break;
        case MLK_Q_BF16: for (int64_t t = 0; t < k; t++) mlk_q_wr16(y + 2 * t, mlk_q_f2bf(x[t])); break;
        case MLK_Q_Q4_0: quantize_q4_0(x, y, k); break;
        case MLK_Q_Q4_1: quantize_q4_1(x, y, k); break;
        case MLK_Q_Q5_0: quantize_q5_0(x, y, k); break;
        case MLK_Q_Q5_1: quantize_q5_1(x, y, k); break;
        case MLK_Q_Q8_0: quantize_q8_0(x, y, k); break;
        case MLK_Q_Q4_K: quantize_q4_k(x, y, k); break;
        case MLK_Q_Q5_K: quantize_q5_k(x, y, k); break;
        case MLK_Q_Q6_K: quantize_q6_k(x, y, k); break;
        default: return;
        }
    }
}

/* ---------------------------------------------------------------- dequantization */

void mlk_q_dequantize_row(int type, const void *src, int64_t k, float *dst) {
    if (!src || !dst || !mlk_q_valid_k(type, k) || !mlk_q_is_supported(type)) return;
    const uint8_t *x = (const uint8_t *)src;
    float *y = dst;
    switch (type) {
    case MLK_Q_F32: memcpy(y, x, (size_t)k * 4); break;
    case MLK_Q_F16: for (int64_t t = 0; t < k; t++) y[t] = mlk_q_h2f(mlk_q_rd16(x + 2 * t)); break;
    case MLK_Q_BF16:
        for (int64_t t = 0; t < k; t++) {
            uint32_t bits = (uint32_t)mlk_q_rd16(x + 2 * t) << 16;
            memcpy(&y[t], &bits, 4);
        }
        break;
    case MLK_Q_Q4_0:
        for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_Q4_0_BYTES, y += MLK_QK) {
            const float d = mlk_q_h2f(mlk_q_rd16(x));
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((x[2 + j] & 0xF) - 8) * d;
                y[j + 16] = (float)((x[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    case MLK_Q_Q4_1:
        for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_Q4_1_BYTES, y += MLK_QK) {
            const float d = mlk_q_h2f(mlk_q_rd16(x)), m = mlk_q_h2f(mlk_q_rd16(x + 2));
            for (int j = 0; j < 16; j++) {
                y[j] = (float)(x[4 + j] & 0xF) * d + m;
                y[j + 16] = (float)(x[4 + j] >> 4) * d + m;
            }
        }
        break;
    case MLK_Q_Q5_0:
        for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_Q5_0_BYTES, y += MLK_QK) {
            const float d = mlk_q_h2f(mlk_q_rd16(x));
            const uint32_t qh = mlk_q_rd32(x + 2);
            for (int j = 0; j < 16; j++) {
                const int lo = (int)((x[6 + j] & 0xF) | (((qh >> j) & 1u) << 4)) - 16;
                const int hi = (int)((x[6 + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
                y[j] = (float)lo * d;
                y[j + 16] = (float)hi * d;
            }
        }
        break;
    case MLK_Q_Q5_1:
        for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_Q5_1_BYTES, y += MLK_QK) {
            const float d = mlk_q_h2f(mlk_q_rd16(x)), m = mlk_q_h2f(mlk_q_rd16(x + 2));
            const uint32_t qh = mlk_q_rd32(x + 4);
            for (int j = 0; j < 16; j++) {
                const int lo = (int)((x[8 + j] & 0xF) | (((qh >> j) & 1u) << 4));
                const int hi = (int)((x[8 + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
                y[j] = (float)lo * d + m;
                y[j + 16] = (float)hi * d + m;
            }
        }
        break;
    case MLK_Q_Q8_0:
        for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_Q8_0_BYTES, y += MLK_QK) {
            const float d = mlk_q_h2f(mlk_q_rd16(x));
            for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)x[2 + j] * d;
        }
        break;
    case MLK_Q_IQ4_NL:
        for (int64_t b = 0; b < k / MLK_QK; b++, x += MLK_IQ4_NL_BYTES, y += MLK_QK) {
            const float d = mlk_q_h2f(mlk_q_rd16(x));
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)mlk_q_kvalues_iq4nl[x[2 + j] & 0xF];
                y[j + 16] = d * (float)mlk_q_kvalues_iq4nl[x[2 + j] >> 4];
            }
        }
        break;
    case MLK_Q_Q2_K:
        for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_Q2_K_BYTES, y += MLK_QK_K) {
            const float d = mlk_q_h2f(mlk_q_rd16(x + MLK_Q2K_D)), dmin = mlk_q_h2f(mlk_q_rd16(x + MLK_Q2K_D + 2));
            for (int e = 0; e < MLK_QK_K; e++) {
                const float dl = d * (float)(x[e / 16] & 0xF), ml = dmin * (float)(x[e / 16] >> 4);
                y[e] = dl * (float)mlk_q2k_code(x + MLK_Q2K_QS, e) - ml;
            }
        }
        break;
    case MLK_Q_Q3_K:
        for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_Q3_K_BYTES, y += MLK_QK_K) {
            const float d = mlk_q_h2f(mlk_q_rd16(x + MLK_Q3K_D));
            for (int e = 0; e < MLK_QK_K; e++) {
                const float dl = d * (float)mlk_q3k_scale(e / 16, x + MLK_Q3K_SC);
                const int h = (x[e & 31] >> (e >> 5)) & 1;
                y[e] = dl * (float)(mlk_q2k_code(x + MLK_Q3K_QS, e) - (h ? 0 : 4));
            }
        }
        break;
    case MLK_Q_Q4_K:
        for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_Q4_K_BYTES) {
            const float d = mlk_q_h2f(mlk_q_rd16(x)), dmin = mlk_q_h2f(mlk_q_rd16(x + 2));
            const uint8_t *q = x + 16;
            for (int c = 0; c < 4; c++, q += 32) {
                int s, m;
                mlk_q4k_scale_min(2 * c, x + 4, &s, &m);
                const float d1 = d * s, m1 = dmin * m;
                mlk_q4k_scale_min(2 * c + 1, x + 4, &s, &m);
                const float d2 = d * s, m2 = dmin * m;
                for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
                for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
            }
        }
        break;
    case MLK_Q_Q5_K:
        for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_Q5_K_BYTES) {
            const float d = mlk_q_h2f(mlk_q_rd16(x)), dmin = mlk_q_h2f(mlk_q_rd16(x + 2));
            const uint8_t *q = x + MLK_Q5K_QS, *qh = x + MLK_Q5K_QH;
            for (int c = 0; c < 4; c++, q += 32) {
                int s, m;
                mlk_q4k_scale_min(2 * c, x + 4, &s, &m);
                const float d1 = d * s, m1 = dmin * m;
                mlk_q4k_scale_min(2 * c + 1, x + 4, &s, &m);
                const float d2 = d * s, m2 = dmin * m;
                for (int l = 0; l < 32; l++) *y++ = d1 * (float)((q[l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4)) - m1;
                for (int l = 0; l < 32; l++) *y++ = d2 * (float)((q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
            }
        }
        break;
    case MLK_Q_Q6_K:
        for (int64_t b = 0; b < k / MLK_QK_K; b++, x += MLK_Q6_K_BYTES) {
            const float d = mlk_q_h2f(mlk_q_rd16(x + MLK_Q6K_D));
            const uint8_t *ql = x + MLK_Q6K_QL, *qh = x + MLK_Q6K_QH;
            const int8_t *sc = (const int8_t *)(x + MLK_Q6K_SC);
            for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
                for (int l = 0; l < 32; l++) {
                    const int is = l / 16;
                    const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc[is + 0] * q1;
                    y[l + 32] = d * sc[is + 2] * q2;
                    y[l + 64] = d * sc[is + 4] * q3;
                    y[l + 96] = d * sc[is + 6] * q4;
                }
            }
        }
        break;
    default: break;
    }
}

/* ---------------------------------------------------------------- activations */

static void quantize_act_row_scalar(const float *x, int64_t k, void *row) {
    uint8_t *base = (uint8_t *)row;
    int8_t *q = (int8_t *)base;
    float *d = (float *)(base + k), *s = (float *)(base + k + (k / 32) * 4), *s16 = (float *)(base + k + (k / 32) * 8);
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = MLK_MAX(amax, fabsf(xb[j]));
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 127.0f / amax : 0.0f;
        int sum[2] = {0, 0};
        for (int j = 0; j < 32; j++) {
            float v = nearbyintf(xb[j] * id); /* round half to even (default rounding mode) */
            if (!(v >= -127.0f)) v = v != v ? 0.0f : -127.0f;
            if (v > 127.0f) v = 127.0f;
            const int qi = (int)v;
            q[32 * b + j] = (int8_t)qi;
            sum[j / 16] += qi;
        }
        d[b] = db;
        s[b] = db * (float)(sum[0] + sum[1]);
        s16[2 * b] = db * (float)sum[0];
        s16[2 * b + 1] = db * (float)sum[1];
    }
}

void mlk_q_quantize_activations(int wtype, const float *x, int64_t n, int64_t k, void *xq) {
    mlk_q_quantize_activations_isa(mlk_active_isa(), wtype, x, n, k, xq);
}

void mlk_q_quantize_activations_isa(mlk_isa isa, int wtype, const float *x, int64_t n, int64_t k, void *xq) {
    const size_t rb = mlk_q_act_row_bytes(wtype, k);
    if (!x || !xq || n < 0 || rb == 0) return;
    if ((int)isa > (int)mlk_detect_isa()) isa = mlk_detect_isa();
#if defined(__x86_64__) || defined(_M_X64)
    const int fast = isa >= MLK_ISA_AVX512, avx2 = isa == MLK_ISA_AVX2;
#else
    (void)isa;
#endif
    for (int64_t i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(_M_X64)
        if (fast) {
            mlk_q_quantize_act_avx512(x + i * k, k, (uint8_t *)xq + (size_t)i * rb);
            continue;
        }
        if (avx2) {
            mlk_q_quantize_act_avx2(x + i * k, k, (uint8_t *)xq + (size_t)i * rb);
            continue;
        }
#endif
        quantize_act_row_scalar(x + i * k, k, (uint8_t *)xq + (size_t)i * rb);
    }
}

/* ---------------------------------------------------------------- scalar matmul */

/* Dot of weight row w (type wtype) with activation row a; see mobilellm_quant.h for the block algebra. */
float mlk_q_dot_row_scalar(int wtype, const uint8_t *w, mlk_q_act a, int64_t k) {
    float acc = 0.0f;
    switch (wtype) {
    case MLK_Q_Q4_0:
        for (int64_t b = 0; b < k / 32; b++, w += MLK_Q4_0_BYTES) {
            const int8_t *q = a.q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 16; j++) isum += ((w[2 + j] & 0xF) - 8) * q[j] + ((w[2 + j] >> 4) - 8) * q[j + 16];
            acc += mlk_q_h2f(mlk_q_rd16(w)) * a.d[b] * (float)isum;
        }
        break;
    case MLK_Q_Q4_1:
        for (int64_t b = 0; b < k / 32; b++, w += MLK_Q4_1_BYTES) {
            const int8_t *q = a.q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 16; j++) isum += (w[4 + j] & 0xF) * q[j] + (w[4 + j] >> 4) * q[j + 16];
            acc += mlk_q_h2f(mlk_q_rd16(w)) * a.d[b] * (float)isum + mlk_q_h2f(mlk_q_rd16(w + 2)) * a.s[b];
        }
        break;
    case MLK_Q_Q5_0:
        for (int64_t b = 0; b < k / 32; b++, w += MLK_Q5_0_BYTES) {
            const int8_t *q = a.q + 32 * b;
            const uint32_t qh = mlk_q_rd32(w + 2);
            int isum = 0;
            for (int j = 0; j < 16; j++) {
                isum += ((int)((w[6 + j] & 0xF) | (((qh >> j) & 1u) << 4)) - 16) * q[j];
                isum += ((int)((w[6 + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16) * q[j + 16];
            }
            acc += mlk_q_h2f(mlk_q_rd16(w)) * a.d[b] * (float)isum;
        }
        break;
    case MLK_Q_Q5_1:
        for (int64_t b = 0; b < k / 32; b++, w += MLK_Q5_1_BYTES) {
            const int8_t *q = a.q + 32 * b;
            const uint32_t qh = mlk_q_rd32(w + 4);
            int isum = 0;
            for (int j = 0; j < 16; j++) {
                isum += (int)((w[8 + j] & 0xF) | (((qh >> j) & 1u) << 4)) * q[j];
                isum += (int)((w[8 + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) * q[j + 16];
            }
            acc += mlk_q_h2f(mlk_q_rd16(w)) * a.d[b] * (float)isum + mlk_q_h2f(mlk_q_rd16(w + 2)) * a.s[b];
        }
        break;
    case MLK_Q_Q8_0:
        for (int64_t b = 0; b < k / 32; b++, w += MLK_Q8_0_BYTES) {
            const int8_t *q = a.q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 32; j++) isum += (int8_t)w[2 + j] * q[j];
            acc += mlk_q_h2f(mlk_q_rd16(w)) * a.d[b] * (float)isum;
        }
        break;
    case MLK_Q_IQ4_NL:
        for (int64_t b = 0; b < k / 32; b++, w += MLK_IQ4_NL_BYTES) {
            const int8_t *q = a.q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 16; j++)
                isum += mlk_q_kvalues_iq4nl[w[2 + j] & 0xF] * q[j] + mlk_q_kvalues_iq4nl[w[2 + j] >> 4] * q[j + 16];
            acc += mlk_q_h2f(mlk_q_rd16(w)) * a.d[b] * (float)isum;
        }
        break;
    case MLK_Q_Q2_K:
    case MLK_Q_Q3_K:
        for (int64_t b = 0; b < k / 256; b++, w += wtype == MLK_Q_Q2_K ? MLK_Q2_K_BYTES : MLK_Q3_K_BYTES) {
            const int q2 = wtype == MLK_Q_Q2_K;
            const float d = mlk_q_h2f(mlk_q_rd16(w + (q2 ? MLK_Q2K_D : MLK_Q3K_D)));
            const float dmin = q2 ? mlk_q_h2f(mlk_q_rd16(w + MLK_Q2K_D + 2)) : 0.0f;
            for (int s = 0; s < 16; s++) { /* 16-element sub-block */
                int isum = 0;
                for (int t = 0; t < 16; t++) {
                    const int e = 16 * s + t;
                    const int code = q2 ? mlk_q2k_code(w + MLK_Q2K_QS, e)
                                        : mlk_q2k_code(w + MLK_Q3K_QS, e) - (((w[e & 31] >> (e >> 5)) & 1) ? 0 : 4);
                    isum += code * a.q[256 * b + e];
                }
                const float sc = q2 ? (float)(w[s] & 0xF) : (float)mlk_q3k_scale(s, w + MLK_Q3K_SC);
                acc += d * sc * a.d[8 * b + s / 2] * (float)isum;
                if (q2) acc -= dmin * (float)(w[s] >> 4) * a.s16[16 * b + s];
            }
        }
        break;
    case MLK_Q_Q4_K:
        for (int64_t b = 0; b < k / 256; b++, w += MLK_Q4_K_BYTES) {
            const float d = mlk_q_h2f(mlk_q_rd16(w)), dmin = mlk_q_h2f(mlk_q_rd16(w + 2));
            for (int j = 0; j < 8; j++) {
                int sc, m;
                mlk_q4k_scale_min(j, w + 4, &sc, &m);
                const uint8_t *qs = w + 16 + 32 * (j / 2);
                const int shift = (j & 1) * 4;
                const int8_t *q = a.q + 256 * b + 32 * j;
                int isum = 0;
                for (int l = 0; l < 32; l++) isum += ((qs[l] >> shift) & 0xF) * q[l];
                const int64_t ab = 8 * b + j;
                acc += d * (float)sc * a.d[ab] * (float)isum - dmin * (float)m * a.s[ab];
            }
        }
        break;
    case MLK_Q_Q5_K:
        for (int64_t b = 0; b < k / 256; b++, w += MLK_Q5_K_BYTES) {
            const float d = mlk_q_h2f(mlk_q_rd16(w)), dmin = mlk_q_h2f(mlk_q_rd16(w + 2));
            for (int j = 0; j < 8; j++) {
                int sc, m;
                mlk_q4k_scale_min(j, w + 4, &sc, &m);
                const uint8_t *qs = w + MLK_Q5K_QS + 32 * (j / 2), *qh = w + MLK_Q5K_QH;
                const int shift = (j & 1) * 4;
                const int8_t *q = a.q + 256 * b + 32 * j;
                int isum = 0;
                for (int l = 0; l < 32; l++) isum += (((qs[l] >> shift) & 0xF) | (((qh[l] >> j) & 1) << 4)) * q[l];
                const int64_t ab = 8 * b + j;
                acc += d * (float)sc * a.d[ab] * (float)isum - dmin * (float)m * a.s[ab];
            }
        }
        break;
    case MLK_Q_Q6_K:
        for (int64_t b = 0; b < k / 256; b++, w += MLK_Q6_K_BYTES) {
            const float d = mlk_q_h2f(mlk_q_rd16(w + MLK_Q6K_D));
            const int8_t *sc = (const int8_t *)(w + MLK_Q6K_SC);
            for (int e16 = 0; e16 < 16; e16++) { /* 16-element sub-block */
                int isum = 0;
                for (int t = 0; t < 16; t++) {
                    const int e = 16 * e16 + t; /* element in the super-block */
                    const int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
                    const uint8_t *ql = w + MLK_Q6K_QL + 64 * half, *qh = w + MLK_Q6K_QH + 32 * half;
                    const int lo = quarter & 1 ? ql[l + 32] : ql[l];
                    const int q6 = ((quarter < 2 ? lo & 0xF : lo >> 4) | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
                    isum += q6 * a.q[256 * b + e];
                }
                acc += d * (float)sc[e16] * a.d[8 * b + e16 / 2] * (float)isum;
            }
        }
        break;
    default: break;
    }
    return acc;
}

void mlk_q_matmul_scalar(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                         float *y, int64_t ldy) {
    const size_t rb = mlk_q_row_bytes(wtype, k);
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)j * rb;
        for (int64_t i = 0; i < n; i++) y[i * ldy + j] = mlk_q_dot_row_scalar(wtype, row, mlk_q_act_row(xq, k, i), k);
    }
}

/* ---------------------------------------------------------------- dispatch */

mlk_kernel mlk_q_matmul_kernel(mlk_isa isa, int wtype) {
    if (!mlk_q_has_matmul(wtype)) return MLK_KERNEL_NONE;
    const mlk_isa best = mlk_detect_isa();
    if ((int)isa > (int)best) isa = best;
#if defined(__x86_64__) || defined(_M_X64)
    /* The 512-bit kernels also use AVX512DQ and VBMI (Ice Lake and later, Zen 4 and later have both; Cascade
     * Lake has VNNI without VBMI and runs the AVX2 kernels). mlk_detect_isa checks neither, so check here. The
     * SIMD kernels cover every type mlk_q_has_matmul accepts. */
    if (isa == MLK_ISA_AVX512_VNNI && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vbmi"))
        return MLK_KERNEL_AVX512_VNNI;
    if (isa >= MLK_ISA_AVX2) return MLK_KERNEL_AVX2;
#endif
#if defined(__aarch64__)
    if (isa == MLK_ISA_NEON_DOTPROD) return MLK_KERNEL_NEON_DOTPROD;
#endif
    (void)isa;
    return MLK_KERNEL_SCALAR;
}

void mlk_q_matmul_rows_isa(mlk_isa isa, int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0,
                           int64_t j1, float *y, int64_t ldy) {
    if (!mlk_q_has_matmul(wtype) || !mlk_q_valid_k(wtype, k) || k == 0 || n <= 0 || j0 < 0 || j1 <= j0) return;
    if (!xq || !w || !y || (n > 1 && ldy < j1)) return;
    /* A SIMD kernel returns 0 for a type it lacks; the scalar kernel then runs (mlk_q_matmul_kernel says which). */
    switch (mlk_q_matmul_kernel(isa, wtype)) {
#if defined(__x86_64__) || defined(_M_X64)
    case MLK_KERNEL_AVX512_VNNI:
        if (mlk_q_matmul_avx512vnni(wtype, xq, n, k, w, j0, j1, y, ldy)) return;
        break;
    case MLK_KERNEL_AVX2:
        if (mlk_q_matmul_avx2(wtype, xq, n, k, w, j0, j1, y, ldy)) return;
        break;
#endif
#if defined(__aarch64__)
    case MLK_KERNEL_NEON_DOTPROD:
        if (mlk_q_matmul_neon(wtype, xq, n, k, w, j0, j1, y, ldy)) return;
        break;
#endif
    default: break;
    }
    mlk_q_matmul_scalar(wtype, xq, n, k, w, j0, j1, y, ldy);
}

void mlk_q_matmul_rows(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                       float *y, int64_t ldy) {
    mlk_q_matmul_rows_isa(mlk_active_isa(), wtype, xq, n, k, w, j0, j1, y, ldy);
}
