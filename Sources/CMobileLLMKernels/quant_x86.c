/*
 * x86 kernels for the quantized matmul: AVX-512 VNNI (512-bit vpdpbusd) and AVX2 (vpmaddubsw + vpmaddwd).
 *
 * Both compute, per weight row r and activation row c, sum over 32-element (or 16-element, Q6_K) sub-blocks of
 *     wscale_b * ascale_b * isum_b  +  wcorr_b * asum_b
 * where isum_b is the exact integer dot of the stored unsigned weight codes with the int8 activations and the
 * second term folds the weight offsets (-8 for Q4_0, -16 for Q5_0, +m for Q4_1 and Q5_1, -128 for Q8_0 via the
 * xor-0x80 trick of the VNNI path (also for IQ4_NL's signed table levels), -dmin*m for Q2_K, Q4_K and Q5_K, -4 for
 * Q3_K, -32 for Q6_K) using the activation sums stored in
 * the Q8A row. The 5-bit types unpack to unsigned codes 0..31 (nibble | high bit << 4).
 *
 * Tiling: R weight rows x C activation rows per pass (4x4 for prefill, 4x1 for decode); each weight unit is
 * unpacked once and used for all C activation rows. Results differ from the scalar kernel only by float32
 * rounding order.
 */
#include "quant_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>

#define MLK_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx2,fma,f16c")))
#define MLK_T256 __attribute__((target("avx2,fma,f16c")))
#define MLK_T512F __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
/* Types with 16-weight sub-blocks (a scale per 16, offsets through the activations' s16 sums). */
#define MLK_SUB16(T) ((T) == MLK_Q_Q6_K || (T) == MLK_Q_Q2_K || (T) == MLK_Q_Q3_K)
#ifndef MLK_PF_ROWS
#define MLK_PF_ROWS 16 /* decode prefetch distance, in weight rows */
#endif
#ifndef MLK_PF_HINT
#define MLK_PF_HINT _MM_HINT_T0
#endif

/* ================================================================ AVX-512 VNNI */

/* Activation quantization, bit-identical to the scalar version (same operations; cvtps2dq rounds half-even). */
MLK_T512F void mlk_q_quantize_act_avx512(const float *x, int64_t k, void *row) {
    uint8_t *base = (uint8_t *)row;
    int8_t *q = (int8_t *)base;
    float *d = (float *)(base + k), *s = (float *)(base + k + (k / 32) * 4), *s16 = (float *)(base + k + (k / 32) * 8);
    for (int64_t b = 0; b < k / 32; b++) {
        __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1));
        const float amax = _mm512_reduce_max_ps(m);
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 127.0f / amax : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
        q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
        q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
        _mm_storeu_si128((__m128i *)(q + 32 * b), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
        const int s0 = _mm512_reduce_add_epi32(q0), s1 = _mm512_reduce_add_epi32(q1);
        d[b] = db;
        s[b] = db * (float)(s0 + s1);
        s16[2 * b] = db * (float)s0;
        s16[2 * b + 1] = db * (float)s1;
    }
}

/* The same with 256-bit registers, bit-identical to the scalar version for finite inputs (the maximum does not
 * depend on order; cvtps2dq rounds half-even as nearbyintf does; the sums are exact integers). */
MLK_INLINE MLK_T256 int hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

MLK_T256 void mlk_q_quantize_act_avx2(const float *x, int64_t k, void *row) {
    uint8_t *base = (uint8_t *)row;
    int8_t *q = (int8_t *)base;
    float *d = (float *)(base + k), *s = (float *)(base + k + (k / 32) * 4), *s16 = (float *)(base + k + (k / 32) * 8);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (int64_t b = 0; b < k / 32; b++) {
        __m256 v[4];
        for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 127.0f / amax : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i qi[4];
        for (int i = 0; i < 4; i++)
            qi[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid)), lo), hi);
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        const int s0 = hsum256_epi32(_mm256_add_epi32(qi[0], qi[1])), s1 = hsum256_epi32(_mm256_add_epi32(qi[2], qi[3]));
        d[b] = db;
        s[b] = db * (float)(s0 + s1);
        s16[2 * b] = db * (float)s0;
        s16[2 * b + 1] = db * (float)s1;
    }
}

/* Per-group weight factors of one row: scale per sub-block lane and the coefficient of the activation sums. */
typedef struct {
    __m512 wsc, wcorr;
} mlk_wfac512;

/* Weight factors for group g (blocks b0.. of 32 for the legacy types, super-block g for K-quants). */
MLK_INLINE MLK_T512 mlk_wfac512 wfac512(const int TYPE, const uint8_t *row, int64_t g, __mmask16 gm) {
    mlk_wfac512 f;
    switch (TYPE) {
    case MLK_Q_Q4_0:
    case MLK_Q_IQ4_NL: /* the same 18-byte block with its f16 scale first */
        if (gm == 0xFFFF) {
            /* A full group is 288 bytes; its 16 f16 scales sit at 18*b. Four 64-byte loads and two byte
             * permutes (VBMI) collect scales 0..14, a masked word broadcast adds scale 15 (at 270): much cheaper
             * than a 16-element gather on current cores. */
            const uint8_t *base = row + (size_t)g * 16 * MLK_Q4_0_BYTES;
            const __m512i c0 = _mm512_loadu_si512((const void *)base), c1 = _mm512_loadu_si512((const void *)(base + 64));
            const __m512i c2 = _mm512_loadu_si512((const void *)(base + 128)), c3 = _mm512_loadu_si512((const void *)(base + 192));
            const __m512i i01 = _mm512_set_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                127, 126, 109, 108, 91, 90, 73, 72, 55, 54, 37, 36, 19, 18, 1, 0);
            /* scales 8..14 at 144 + 18*(b-8) - 128 = 16 + 18*(b-8) relative to c2, into bytes 16..29 */
            const __m512i i23 = _mm512_set_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0, 0, 0, 125, 124, 107, 106, 89, 88, 71, 70, 53, 52, 35, 34, 17, 16,
                                                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            __m512i h = _mm512_mask_blend_epi8(0x3FFF0000ull, _mm512_permutex2var_epi8(c0, i01, c1),
                                               _mm512_permutex2var_epi8(c2, i23, c3));
            uint16_t last;
            memcpy(&last, base + 270, 2);
            h = _mm512_mask_set1_epi16(h, (__mmask32)0x8000, (short)last);
            f.wsc = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
            f.wcorr = _mm512_mul_ps(f.wsc, _mm512_set1_ps(TYPE == MLK_Q_Q4_0 ? -8.0f : -128.0f));
            break;
        }
        /* fall through: partial group */
    case MLK_Q_Q5_0:
    case MLK_Q_Q8_0: {
        /* One 32-bit gather per block; its low half is the f16 scale. */
        const int stride = TYPE == MLK_Q_Q4_0 || TYPE == MLK_Q_IQ4_NL ? MLK_Q4_0_BYTES : TYPE == MLK_Q_Q5_0 ? MLK_Q5_0_BYTES : MLK_Q8_0_BYTES;
        const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(stride));
        const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), gm, idx,
                                                        row + (size_t)g * 16 * stride, 1);
        f.wsc = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        f.wcorr = _mm512_mul_ps(f.wsc, _mm512_set1_ps(TYPE == MLK_Q_Q4_0 ? -8.0f : TYPE == MLK_Q_Q5_0 ? -16.0f : -128.0f)); /* IQ4_NL, Q8_0: -128 */
        break;
    }
    case MLK_Q_Q5_1: {
        /* (d, m) pairs at 24*b, one 32-bit gather per block: d | m << 16. */
        const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(MLK_Q5_1_BYTES));
        const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), gm, idx,
                                                        row + (size_t)g * 16 * MLK_Q5_1_BYTES, 1);
        f.wsc = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        f.wcorr = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
        break;
    }
    case MLK_Q_Q4_1: {
        if (gm == 0xFFFF) {
            /* A full group is 320 bytes = five 64-byte chunks; (d, m) pairs sit at 20*b. Byte permutes (VBMI)
             * collect them into the layout the gather would give (d | m << 16 per 32-bit lane). */
            const uint8_t *base = row + (size_t)g * 16 * MLK_Q4_1_BYTES;
            const __m512i c0 = _mm512_loadu_si512((const void *)base), c1 = _mm512_loadu_si512((const void *)(base + 64));
            const __m512i c2 = _mm512_loadu_si512((const void *)(base + 128)), c3 = _mm512_loadu_si512((const void *)(base + 192));
            const __m512i c4 = _mm512_loadu_si512((const void *)(base + 256));
            /* byte 4b+i of the result = group byte 20b+i, taken from c0|c1, c2|c3 or c4 */
            static const uint8_t ia[64] __attribute__((aligned(64))) = {0, 1, 2, 3, 20, 21, 22, 23, 40, 41, 42, 43, 60, 61, 62, 63, 80, 81, 82, 83, 100, 101, 102, 103, 120, 121, 122, 123, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
            static const uint8_t ib[64] __attribute__((aligned(64))) = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 13, 14, 15, 32, 33, 34, 35, 52, 53, 54, 55, 72, 73, 74, 75, 92, 93, 94, 95, 112, 113, 114, 115, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
            static const uint8_t ic[64] __attribute__((aligned(64))) = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 5, 6, 7, 24, 25, 26, 27, 44, 45, 46, 47};
            /* blocks 0..6 from c0|c1, 7..12 from c2|c3, 13..15 from c4 */
            __m512i raw = _mm512_permutex2var_epi8(c0, _mm512_load_si512((const void *)ia), c1);
            raw = _mm512_mask_blend_epi8(0x000FFFFFF0000000ull, raw, _mm512_permutex2var_epi8(c2, _mm512_load_si512((const void *)ib), c3));
            raw = _mm512_mask_blend_epi8(0xFFF0000000000000ull, raw, _mm512_permutexvar_epi8(_mm512_load_si512((const void *)ic), c4));
            f.wsc = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
            f.wcorr = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
            break;
        }
        const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(MLK_Q4_1_BYTES));
        const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), gm, idx,
                                                        row + (size_t)g * 16 * MLK_Q4_1_BYTES, 1);
        f.wsc = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        f.wcorr = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
        break;
    }
    case MLK_Q_Q4_K:
    case MLK_Q_Q5_K: {
        /* d, dmin and the 12 packed 6-bit scale/min bytes in one 16-byte load (the same 16 bytes lead a Q5_K
         * block); unpacked with 32-bit lane ops:
         * lanes [u0 & 0x3f.., (u2 & 0x0f..) | ((u0 >> 6) & 0x03..) << 4, u1 & 0x3f.., ((u2 >> 4) & 0x0f..) |
         * ((u1 >> 6) & 0x03..) << 4] = scales 0..3, scales 4..7, mins 0..3, mins 4..7. */
        const __m128i raw = _mm_loadu_si128((const __m128i *)(row + (size_t)g * (TYPE == MLK_Q_Q4_K ? MLK_Q4_K_BYTES : MLK_Q5_K_BYTES)));
        const __m128 dd = _mm_cvtph_ps(raw); /* lane 0: d, lane 1: dmin */
        const __m128i x = _mm_srli_si128(raw, 4);
        const __m128i A = _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 1, 2, 0)), B = _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 1, 0, 0));
        const __m128i lo = _mm_and_si128(_mm_srlv_epi32(A, _mm_setr_epi32(0, 0, 0, 4)),
                                         _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
        const __m128i hi = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(B, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303)), 4);
        const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_or_si128(lo, hi)));
        /* lanes 0..7: scales * d, 8..15: mins * -dmin */
        const __m512 mul = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                                               _mm512_castps128_ps512(dd)),
                                         _mm512_setr_ps(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1));
        const __m512 prod = _mm512_mul_ps(v, mul);
        f.wsc = _mm512_maskz_mov_ps(0x00FF, prod);
        f.wcorr = _mm512_maskz_mov_ps(0x00FF, _mm512_shuffle_f32x4(prod, prod, 0x0E)); /* move lanes 8..15 down */
        break;
    }
    case MLK_Q_Q2_K: {
        /* 16 scale bytes: low nibble * d, high nibble * -dmin */
        const uint8_t *blk = row + (size_t)g * MLK_Q2_K_BYTES;
        const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)blk));
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(mlk_q_rd16(blk + MLK_Q2K_D)));
        const __m512 dmin = _mm512_set1_ps(_cvtsh_ss(mlk_q_rd16(blk + MLK_Q2K_D + 2)));
        f.wsc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(0xF))), d);
        f.wcorr = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4)), _mm512_sub_ps(_mm512_setzero_ps(), dmin));
        break;
    }
    case MLK_Q_Q3_K: {
        /* the 16 signed 6-bit scales: the 12 packed bytes are copied out first (a 16-byte load would overrun the
         * block); low nibbles from bytes s (s < 8) / s - 8 (high nibble), top 2 bits from byte 8 + s % 4 */
        const uint8_t *blk = row + (size_t)g * MLK_Q3_K_BYTES;
        uint8_t packed[16] = {0};
        memcpy(packed, blk + MLK_Q3K_SC, 12);
        const __m128i raw = _mm_loadu_si128((const __m128i *)packed);
        const __m128i m4 = _mm_set1_epi8(0x0F);
        const __m512i low = _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(_mm_and_si128(raw, m4), _mm_and_si128(_mm_srli_epi16(raw, 4), m4)));
        const __m512i top = _mm512_cvtepu8_epi32(_mm_shuffle_epi8(raw, _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11)));
        const __m512i high = _mm512_and_si512(_mm512_srlv_epi32(top, _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6)),
                                              _mm512_set1_epi32(3));
        const __m512i sc = _mm512_sub_epi32(_mm512_or_si512(low, _mm512_slli_epi32(high, 4)), _mm512_set1_epi32(32));
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(mlk_q_rd16(blk + MLK_Q3K_D)));
        f.wsc = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), d);
        f.wcorr = _mm512_mul_ps(f.wsc, _mm512_set1_ps(-4.0f));
        break;
    }
    case MLK_Q_Q6_K:
    default: {
        const uint8_t *blk = row + (size_t)g * MLK_Q6_K_BYTES;
        const float d = _cvtsh_ss(mlk_q_rd16(blk + MLK_Q6K_D));
        const __m128i sc = _mm_loadu_si128((const __m128i *)(blk + MLK_Q6K_SC));
        f.wsc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), _mm512_set1_ps(d));
        f.wcorr = _mm512_mul_ps(f.wsc, _mm512_set1_ps(-32.0f));
        break;
    }
    }
    (void)gm;
    return f;
}

/* Activation factors for group g: scale per weight-scale lane, and the sums matching wcorr's lanes. */
MLK_INLINE MLK_T512 void afac512(const int TYPE, mlk_q_act a, int64_t g, __mmask16 gm, __m512 *da, __m512 *sa) {
    switch (TYPE) {
    case MLK_Q_Q4_0:
    case MLK_Q_Q4_1:
    case MLK_Q_Q5_0:
    case MLK_Q_Q5_1:
    case MLK_Q_Q8_0:
    case MLK_Q_IQ4_NL:
        *da = _mm512_maskz_loadu_ps(gm, a.d + 16 * g);
        *sa = _mm512_maskz_loadu_ps(gm, a.s + 16 * g);
        break;
    case MLK_Q_Q4_K:
    case MLK_Q_Q5_K:
        *da = _mm512_maskz_loadu_ps(0x00FF, a.d + 8 * g);
        *sa = _mm512_maskz_loadu_ps(0x00FF, a.s + 8 * g);
        break;
    case MLK_Q_Q6_K:
    default: {
        const __m512 d8 = _mm512_maskz_loadu_ps(0x00FF, a.d + 8 * g);
        *da = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), d8);
        *sa = _mm512_loadu_ps(a.s16 + 16 * g);
        break;
    }
    }
}

/* 64 unsigned weight codes of unit p (0..7 legacy pairs, 0..3 K-quant units) of group g, in element order. */
MLK_INLINE MLK_T512 __m512i unpack512(const int TYPE, const uint8_t *row, int64_t g, int p, int second_valid) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    switch (TYPE) {
    case MLK_Q_Q4_0:
    case MLK_Q_Q4_1: {
        const int stride = TYPE == MLK_Q_Q4_0 ? MLK_Q4_0_BYTES : MLK_Q4_1_BYTES;
        const int off = TYPE == MLK_Q_Q4_0 ? 2 : 4;
        const uint8_t *b0 = row + (size_t)(16 * g + 2 * p) * stride + off;
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b0));
        if (second_valid) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(b0 + stride)));
        else v = _mm512_maskz_mov_epi32(0x00FF, v);
        const __m512i sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
        return _mm512_and_si512(_mm512_srlv_epi64(v, sh), m4);
    }
    case MLK_Q_Q5_0:
    case MLK_Q_Q5_1: {
        /* Q4_x's nibble layout, plus bit i of each block's 32-bit qh as bit 4 of byte i (a mask move). */
        const int stride = TYPE == MLK_Q_Q5_0 ? MLK_Q5_0_BYTES : MLK_Q5_1_BYTES;
        const int hoff = TYPE == MLK_Q_Q5_0 ? 2 : 4;
        const uint8_t *b0 = row + (size_t)(16 * g + 2 * p) * stride;
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b0 + hoff + 4)));
        uint64_t bits = mlk_q_rd32(b0 + hoff);
        if (second_valid) {
            v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(b0 + stride + hoff + 4)));
            bits |= (uint64_t)mlk_q_rd32(b0 + stride + hoff) << 32;
        } else {
            v = _mm512_maskz_mov_epi32(0x00FF, v);
        }
        const __m512i sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
        const __m512i lo = _mm512_and_si512(_mm512_srlv_epi64(v, sh), m4);
        return _mm512_or_si512(lo, _mm512_maskz_mov_epi8((__mmask64)bits, _mm512_set1_epi8(0x10)));
    }
    case MLK_Q_IQ4_NL: {
        /* Q4_0's nibble layout, each nibble replaced by its table level + 128 (vpshufb, then xor 0x80). */
        const uint8_t *b0 = row + (size_t)(16 * g + 2 * p) * MLK_IQ4_NL_BYTES + 2;
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b0));
        if (second_valid) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(b0 + MLK_IQ4_NL_BYTES)));
        else v = _mm512_maskz_mov_epi32(0x00FF, v);
        const __m512i sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
        const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)mlk_q_kvalues_iq4nl));
        const __m512i levels = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srlv_epi64(v, sh), m4));
        /* (a missing second block's codes meet zeroed activations, as for Q8_0) */
        return _mm512_xor_si512(levels, _mm512_set1_epi8((char)0x80));
    }
    case MLK_Q_Q8_0: {
        const uint8_t *b0 = row + (size_t)(16 * g + 2 * p) * MLK_Q8_0_BYTES + 2;
        __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b0));
        v = _mm512_inserti64x4(v, second_valid ? _mm256_loadu_si256((const __m256i *)(b0 + MLK_Q8_0_BYTES))
                                               : _mm256_setzero_si256(), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    case MLK_Q_Q4_K: {
        const uint8_t *qs = row + (size_t)g * MLK_Q4_K_BYTES + 16 + 32 * p;
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
        const __m512i sh = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
        return _mm512_and_si512(_mm512_srlv_epi64(v, sh), m4);
    }
    case MLK_Q_Q5_K: {
        /* Q4_K's nibbles (sub-blocks 2p, 2p+1) and bits 2p / 2p+1 of qh[l] as bit 4. */
        const uint8_t *blk = row + (size_t)g * MLK_Q5_K_BYTES;
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + MLK_Q5K_QS + 32 * p)));
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + MLK_Q5K_QH)));
        const __m512i sh = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
        const __m512i hs = _mm512_add_epi64(_mm512_setr_epi64(0, 0, 0, 0, 1, 1, 1, 1), _mm512_set1_epi64(2 * p));
        const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(h, hs), _mm512_set1_epi8(1));
        return _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi64(v, sh), m4), _mm512_slli_epi64(hi, 4));
    }
    case MLK_Q_Q2_K:
    case MLK_Q_Q3_K: {
        /* unit p = elements 64p..64p+63 = shifts 2j0 (lower 32) and 2j0+2 (upper 32) of qs[32h..], h = p / 2,
         * j0 = 2 (p % 2); Q3_K adds bit 2p / 2p+1 of hmask[l] as bit 2 */
        const int q2 = TYPE == MLK_Q_Q2_K;
        const uint8_t *blk = row + (size_t)g * (q2 ? MLK_Q2_K_BYTES : MLK_Q3_K_BYTES);
        const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + (q2 ? MLK_Q2K_QS : MLK_Q3K_QS) + 32 * (p >> 1))));
        const __m512i sh = _mm512_add_epi64(_mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2), _mm512_set1_epi64(4 * (p & 1)));
        __m512i v = _mm512_and_si512(_mm512_srlv_epi64(q, sh), _mm512_set1_epi8(3));
        if (!q2) {
            const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk));
            const __m512i hs = _mm512_add_epi64(_mm512_setr_epi64(0, 0, 0, 0, 1, 1, 1, 1), _mm512_set1_epi64(2 * p));
            v = _mm512_or_si512(v, _mm512_slli_epi64(_mm512_and_si512(_mm512_srlv_epi64(hm, hs), _mm512_set1_epi8(1)), 2));
        }
        return v;
    }
    case MLK_Q_Q6_K:
    default: {
        const uint8_t *blk = row + (size_t)g * MLK_Q6_K_BYTES;
        const int half = p >> 1;
        const __m512i A = _mm512_loadu_si512((const void *)(blk + MLK_Q6K_QL + 64 * half));
        const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + MLK_Q6K_QH + 32 * half)));
        __m512i lo, hs;
        if ((p & 1) == 0) {
            lo = _mm512_and_si512(A, m4);
            hs = _mm512_srlv_epi64(H, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2));
        } else {
            lo = _mm512_and_si512(_mm512_srli_epi64(A, 4), m4);
            hs = _mm512_srlv_epi64(H, _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6));
        }
        return _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi64(hs, 4), _mm512_set1_epi8(0x30)));
    }
    }
}

/* R weight rows x C activation rows, the whole k; out[r][c]. */
MLK_INLINE MLK_T512 void tile512(const int TYPE, const int R, const int C, const uint8_t *const *rows,
                                 const mlk_q_act *acts, int64_t k, float out[8][4], int64_t pf) {
    const int legacy = TYPE == MLK_Q_Q4_0 || TYPE == MLK_Q_Q4_1 || TYPE == MLK_Q_Q5_0 || TYPE == MLK_Q_Q5_1 || TYPE == MLK_Q_Q8_0
                    || TYPE == MLK_Q_IQ4_NL;
    const int64_t nb = k / 32;
    const int64_t ngroups = legacy ? (nb + 15) / 16 : k / 256;
    __m512 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    __attribute__((aligned(64))) float sc[8][4][16];
    for (int64_t g = 0; g < ngroups; g++) {
        int cnt = 16;
        if (legacy && g == ngroups - 1) cnt = (int)(nb - 16 * g);
        const __mmask16 gm = (__mmask16)(cnt >= 16 ? 0xFFFF : ((1u << cnt) - 1u));
        /* Software prefetch of the same bytes `pf` ahead (the next row tile): keeps enough lines in flight for
         * DRAM bandwidth in decode, where the hardware prefetcher alone falls short. Prefetches never fault. */
        if (pf) {
            const int64_t gbytes = legacy ? 16 * (TYPE == MLK_Q_Q4_0 || TYPE == MLK_Q_IQ4_NL ? MLK_Q4_0_BYTES : TYPE == MLK_Q_Q4_1 ? MLK_Q4_1_BYTES
                                                  : TYPE == MLK_Q_Q5_0 ? MLK_Q5_0_BYTES : TYPE == MLK_Q_Q5_1 ? MLK_Q5_1_BYTES : MLK_Q8_0_BYTES)
                                          : (TYPE == MLK_Q_Q4_K ? MLK_Q4_K_BYTES : TYPE == MLK_Q_Q5_K ? MLK_Q5_K_BYTES
                                             : TYPE == MLK_Q_Q2_K ? MLK_Q2_K_BYTES : TYPE == MLK_Q_Q3_K ? MLK_Q3_K_BYTES : MLK_Q6_K_BYTES);
            for (int r = 0; r < R; r++)
                for (int64_t o = 0; o < gbytes; o += 64) _mm_prefetch((const char *)rows[r] + pf + g * gbytes + o, MLK_PF_HINT);
        }
        __m512 da[4], sa[4];
        for (int c = 0; c < C; c++) afac512(TYPE, acts[c], g, gm, &da[c], &sa[c]);
        for (int r = 0; r < R; r++) {
            const mlk_wfac512 f = wfac512(TYPE, rows[r], g, gm);
            for (int c = 0; c < C; c++) {
                _mm512_store_ps(sc[r][c], _mm512_mul_ps(f.wsc, da[c]));
                acc[r][c] = _mm512_fmadd_ps(f.wcorr, sa[c], acc[r][c]);
            }
        }
        const int units = legacy ? (cnt + 1) / 2 : 4;
        const int64_t e0 = legacy ? 512 * g : 256 * g;
        for (int p = 0; p < units; p++) {
            const int second_valid = !legacy || 2 * p + 1 < cnt;
            __m512i idx;
            if (MLK_SUB16(TYPE))
                idx = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                       _mm512_set1_epi32(4 * p));
            else
                idx = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                       _mm512_set1_epi32(2 * p));
            __m512i wv[8];
            for (int r = 0; r < R; r++) wv[r] = unpack512(TYPE, rows[r], g, p, second_valid);
            for (int c = 0; c < C; c++) {
                const int8_t *aq = acts[c].q + e0 + 64 * p;
                const __m512i av = second_valid ? _mm512_loadu_si512((const void *)aq)
                                                : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, aq);
                for (int r = 0; r < R; r++) {
                    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r], av);
                    const __m512 s = _mm512_permutexvar_ps(idx, _mm512_load_ps(sc[r][c]));
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r][c]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
}

#define MLK_DEFINE_DRIVER512(NAME, TYPE)                                                                        \
    MLK_T512 static void NAME(const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,      \
                              float *y, int64_t ldy) {                                                         \
        const size_t rb = mlk_q_row_bytes(TYPE, k);                                                            \
        float out[8][4];                                                                                       \
        int64_t j = j0;                                                                                        \
        if (n == 1) { /* decode: 8 rows at a time, prefetching the tile after next */                         \
            for (; j + 8 <= j1; j += 8) {                                                                      \
                const uint8_t *rows[8];                                                                        \
                for (int r = 0; r < 8; r++) rows[r] = (const uint8_t *)w + (size_t)(j + r) * rb;               \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, 0)};                                                 \
                tile512(TYPE, 8, 1, rows, acts, k, out, (int64_t)(MLK_PF_ROWS * rb));                          \
                for (int r = 0; r < 8; r++) y[j + r] = out[r][0];                                              \
            }                                                                                                  \
        }                                                                                                      \
        for (; j + 4 <= j1; j += 4) {                                                                          \
            const uint8_t *rows[4];                                                                            \
            for (int r = 0; r < 4; r++) rows[r] = (const uint8_t *)w + (size_t)(j + r) * rb;                   \
            int64_t i = 0;                                                                                     \
            for (; i + 4 <= n; i += 4) {                                                                       \
                mlk_q_act acts[4];                                                                             \
                for (int c = 0; c < 4; c++) acts[c] = mlk_q_act_row(xq, k, i + c);                             \
                tile512(TYPE, 4, 4, rows, acts, k, out, 0);                                                       \
                for (int r = 0; r < 4; r++)                                                                    \
                    for (int c = 0; c < 4; c++) y[(i + c) * ldy + j + r] = out[r][c];                          \
            }                                                                                                  \
            for (; i + 2 <= n; i += 2) {                                                                       \
                mlk_q_act acts[2] = {mlk_q_act_row(xq, k, i), mlk_q_act_row(xq, k, i + 1)};                    \
                tile512(TYPE, 4, 2, rows, acts, k, out, 0);                                                       \
                for (int r = 0; r < 4; r++)                                                                    \
                    for (int c = 0; c < 2; c++) y[(i + c) * ldy + j + r] = out[r][c];                          \
            }                                                                                                  \
            for (; i < n; i++) {                                                                               \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, i)};                                                 \
                tile512(TYPE, 4, 1, rows, acts, k, out, n == 1 ? (int64_t)(8 * rb) : 0);                                                       \
                for (int r = 0; r < 4; r++) y[i * ldy + j + r] = out[r][0];                                    \
            }                                                                                                  \
        }                                                                                                      \
        for (; j < j1; j++) {                                                                                  \
            const uint8_t *rows[1] = {(const uint8_t *)w + (size_t)j * rb};                                   \
            int64_t i = 0;                                                                                     \
            for (; i + 4 <= n; i += 4) {                                                                       \
                mlk_q_act acts[4];                                                                             \
                for (int c = 0; c < 4; c++) acts[c] = mlk_q_act_row(xq, k, i + c);                             \
                tile512(TYPE, 1, 4, rows, acts, k, out, 0);                                                       \
                for (int c = 0; c < 4; c++) y[(i + c) * ldy + j] = out[0][c];                                  \
            }                                                                                                  \
            for (; i < n; i++) {                                                                               \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, i)};                                                 \
                tile512(TYPE, 1, 1, rows, acts, k, out, n == 1 ? (int64_t)(2 * rb) : 0);                                                       \
                y[i * ldy + j] = out[0][0];                                                                    \
            }                                                                                                  \
        }                                                                                                      \
    }

MLK_DEFINE_DRIVER512(mm512_q4_0, MLK_Q_Q4_0)
MLK_DEFINE_DRIVER512(mm512_q4_1, MLK_Q_Q4_1)
MLK_DEFINE_DRIVER512(mm512_q8_0, MLK_Q_Q8_0)
MLK_DEFINE_DRIVER512(mm512_iq4_nl, MLK_Q_IQ4_NL)
MLK_DEFINE_DRIVER512(mm512_q5_0, MLK_Q_Q5_0)
MLK_DEFINE_DRIVER512(mm512_q5_1, MLK_Q_Q5_1)
MLK_DEFINE_DRIVER512(mm512_q4_k, MLK_Q_Q4_K)
MLK_DEFINE_DRIVER512(mm512_q5_k, MLK_Q_Q5_K)
MLK_DEFINE_DRIVER512(mm512_q6_k, MLK_Q_Q6_K)
MLK_DEFINE_DRIVER512(mm512_q2_k, MLK_Q_Q2_K)
MLK_DEFINE_DRIVER512(mm512_q3_k, MLK_Q_Q3_K)

int mlk_q_matmul_avx512vnni(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                            float *y, int64_t ldy) {
    switch (wtype) {
    case MLK_Q_Q4_0: mm512_q4_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q4_1: mm512_q4_1(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q8_0: mm512_q8_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_IQ4_NL: mm512_iq4_nl(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_0: mm512_q5_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_1: mm512_q5_1(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q4_K: mm512_q4_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_K: mm512_q5_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q6_K: mm512_q6_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q2_K: mm512_q2_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q3_K: mm512_q3_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    default: return 0;
    }
}

/* ================================================================ AVX2 */

/* f16 -> f32 with F16C. */
MLK_INLINE MLK_T256 float h2f256(uint16_t h) { return _cvtsh_ss(h); }

/* Integer dot of 32 unsigned codes (<= 128 each; pairs cannot saturate int16) with 32 int8 activations. */
MLK_INLINE MLK_T256 __m256i dot_u8s8_256(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* One 32-element unit u (block for legacy types; sub-block of 32 for K-quants) of one row: codes, lane scales
 * (8 floats, weight part) and the correction term coefficient applied to the activation sum(s). */
MLK_INLINE MLK_T256 __m256i unpack256(const int TYPE, const uint8_t *row, int64_t u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    switch (TYPE) {
    case MLK_Q_Q4_0:
    case MLK_Q_Q4_1: {
        const int stride = TYPE == MLK_Q_Q4_0 ? MLK_Q4_0_BYTES : MLK_Q4_1_BYTES;
        const __m128i q = _mm_loadu_si128((const __m128i *)(row + (size_t)u * stride + (TYPE == MLK_Q_Q4_0 ? 2 : 4)));
        const __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
        return _mm256_and_si256(v, m4);
    }
    case MLK_Q_Q5_0:
    case MLK_Q_Q5_1: {
        const int hoff = TYPE == MLK_Q_Q5_0 ? 2 : 4;
        const uint8_t *b = row + (size_t)u * (TYPE == MLK_Q_Q5_0 ? MLK_Q5_0_BYTES : MLK_Q5_1_BYTES);
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + hoff + 4));
        const __m256i lo = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        /* byte i <- byte i/8 of qh, then keep bit i%8: set where it is, and turn that into 0x10 */
        const __m256i qh = _mm256_shuffle_epi8(_mm256_set1_epi32((int)mlk_q_rd32(b + hoff)),
                                               _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
        const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, sel), sel);
        return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
    case MLK_Q_Q8_0:
        return _mm256_loadu_si256((const __m256i *)(row + (size_t)u * MLK_Q8_0_BYTES + 2));
    case MLK_Q_IQ4_NL: {
        /* signed table levels (used with Q8_0's sign trick) */
        const __m128i q = _mm_loadu_si128((const __m128i *)(row + (size_t)u * MLK_IQ4_NL_BYTES + 2));
        const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mlk_q_kvalues_iq4nl));
        return _mm256_shuffle_epi8(table, nib);
    }
    case MLK_Q_Q4_K: {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(row + (size_t)(u / 8) * MLK_Q4_K_BYTES + 16 + 32 * ((u % 8) / 2)));
        return (u & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
    }
    case MLK_Q_Q5_K: {
        const uint8_t *blk = row + (size_t)(u / 8) * MLK_Q5_K_BYTES;
        const int j = (int)(u % 8);
        const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + MLK_Q5K_QS + 32 * (j / 2)));
        const __m256i lo = (j & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
        const __m256i sel = _mm256_set1_epi8((char)(1 << j));
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(blk + MLK_Q5K_QH)), sel), sel);
        return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
    case MLK_Q_Q2_K:
    case MLK_Q_Q3_K: {
        const int q2 = TYPE == MLK_Q_Q2_K, uu = (int)(u % 8);
        const uint8_t *blk = row + (size_t)(u / 8) * (q2 ? MLK_Q2_K_BYTES : MLK_Q3_K_BYTES);
        const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + (q2 ? MLK_Q2K_QS : MLK_Q3K_QS) + 32 * (uu / 4)));
        __m256i v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * (uu % 4))), _mm256_set1_epi8(3));
        if (!q2) {
            const __m256i sel = _mm256_set1_epi8((char)(1 << uu));
            const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)blk), sel), sel);
            v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(4)));
        }
        return v;
    }
    case MLK_Q_Q6_K:
    default: {
        const uint8_t *blk = row + (size_t)(u / 8) * MLK_Q6_K_BYTES;
        const int e = (int)(u % 8) * 32, half = e / 128, quarter = (e % 128) / 32;
        const __m256i l = _mm256_loadu_si256((const __m256i *)(blk + MLK_Q6K_QL + 64 * half + 32 * (quarter & 1)));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + MLK_Q6K_QH + 32 * half));
        const __m256i lo = quarter < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * quarter)), _mm256_set1_epi8(3));
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    }
}

MLK_INLINE MLK_T256 void tile256(const int TYPE, const int R, const int C, const uint8_t *const *rows,
                                 const mlk_q_act *acts, int64_t k, float out[4][4], int64_t pf) {
    __m256 acc[4][4];
    float corr[4][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            acc[r][c] = _mm256_setzero_ps();
            corr[r][c] = 0.0f;
        }
    const int64_t nu = k / 32;
    const int64_t ubytes = TYPE == MLK_Q_Q4_0 ? MLK_Q4_0_BYTES : TYPE == MLK_Q_Q4_1 ? MLK_Q4_1_BYTES
                         : TYPE == MLK_Q_Q5_0 ? MLK_Q5_0_BYTES : TYPE == MLK_Q_Q5_1 ? MLK_Q5_1_BYTES
                         : TYPE == MLK_Q_Q8_0 ? MLK_Q8_0_BYTES : TYPE == MLK_Q_IQ4_NL ? MLK_IQ4_NL_BYTES
                         : TYPE == MLK_Q_Q4_K ? MLK_Q4_K_BYTES / 8
                         : TYPE == MLK_Q_Q5_K ? MLK_Q5_K_BYTES / 8 : TYPE == MLK_Q_Q2_K ? MLK_Q2_K_BYTES / 8
                         : TYPE == MLK_Q_Q3_K ? MLK_Q3_K_BYTES / 8 : MLK_Q6_K_BYTES / 8;
    for (int64_t u = 0; u < nu; u++) {
        if (pf && (u & 1) == 0)
            for (int r = 0; r < R; r++) _mm_prefetch((const char *)rows[r] + pf + u * ubytes, _MM_HINT_T0);
        /* weight factors: two lane scales (lanes 0..3 and 4..7) and corrections */
        float ws0[4], ws1[4], wc0[4], wc1[4];
        __m256i wv[4];
        for (int r = 0; r < R; r++) {
            const uint8_t *row = rows[r];
            switch (TYPE) {
            case MLK_Q_Q4_0: ws0[r] = h2f256(mlk_q_rd16(row + (size_t)u * MLK_Q4_0_BYTES)); ws1[r] = ws0[r]; wc0[r] = -8.0f * ws0[r]; break;
            case MLK_Q_Q4_1: {
                const uint8_t *b = row + (size_t)u * MLK_Q4_1_BYTES;
                ws0[r] = ws1[r] = h2f256(mlk_q_rd16(b));
                wc0[r] = h2f256(mlk_q_rd16(b + 2));
                break;
            }
            case MLK_Q_Q5_0: ws0[r] = ws1[r] = h2f256(mlk_q_rd16(row + (size_t)u * MLK_Q5_0_BYTES)); wc0[r] = -16.0f * ws0[r]; break;
            case MLK_Q_Q5_1: {
                const uint8_t *b = row + (size_t)u * MLK_Q5_1_BYTES;
                ws0[r] = ws1[r] = h2f256(mlk_q_rd16(b));
                wc0[r] = h2f256(mlk_q_rd16(b + 2));
                break;
            }
            case MLK_Q_Q8_0: ws0[r] = ws1[r] = h2f256(mlk_q_rd16(row + (size_t)u * MLK_Q8_0_BYTES)); wc0[r] = 0.0f; break;
            case MLK_Q_IQ4_NL: ws0[r] = ws1[r] = h2f256(mlk_q_rd16(row + (size_t)u * MLK_IQ4_NL_BYTES)); wc0[r] = 0.0f; break;
            case MLK_Q_Q4_K:
            case MLK_Q_Q5_K: {
                const uint8_t *b = row + (size_t)(u / 8) * (TYPE == MLK_Q_Q4_K ? MLK_Q4_K_BYTES : MLK_Q5_K_BYTES);
                int s, m;
                mlk_q4k_scale_min((int)(u % 8), b + 4, &s, &m);
                ws0[r] = ws1[r] = h2f256(mlk_q_rd16(b)) * (float)s;
                wc0[r] = -h2f256(mlk_q_rd16(b + 2)) * (float)m;
                break;
            }
            case MLK_Q_Q2_K: {
                const uint8_t *b = row + (size_t)(u / 8) * MLK_Q2_K_BYTES;
                const float d = h2f256(mlk_q_rd16(b + MLK_Q2K_D)), dmin = h2f256(mlk_q_rd16(b + MLK_Q2K_D + 2));
                const uint8_t *sc = b + 2 * (u % 8);
                ws0[r] = d * (float)(sc[0] & 0xF);
                ws1[r] = d * (float)(sc[1] & 0xF);
                wc0[r] = -dmin * (float)(sc[0] >> 4);
                wc1[r] = -dmin * (float)(sc[1] >> 4);
                break;
            }
            case MLK_Q_Q3_K: {
                const uint8_t *b = row + (size_t)(u / 8) * MLK_Q3_K_BYTES;
                const float d = h2f256(mlk_q_rd16(b + MLK_Q3K_D));
                ws0[r] = d * (float)mlk_q3k_scale((int)(2 * (u % 8)), b + MLK_Q3K_SC);
                ws1[r] = d * (float)mlk_q3k_scale((int)(2 * (u % 8) + 1), b + MLK_Q3K_SC);
                wc0[r] = -4.0f * ws0[r];
                wc1[r] = -4.0f * ws1[r];
                break;
            }
            case MLK_Q_Q6_K:
            default: {
                const uint8_t *b = row + (size_t)(u / 8) * MLK_Q6_K_BYTES;
                const float d = h2f256(mlk_q_rd16(b + MLK_Q6K_D));
                const int8_t *sc = (const int8_t *)(b + MLK_Q6K_SC) + 2 * (u % 8);
                ws0[r] = d * (float)sc[0];
                ws1[r] = d * (float)sc[1];
                wc0[r] = -32.0f * ws0[r];
                wc1[r] = -32.0f * ws1[r];
                break;
            }
            }
            wv[r] = unpack256(TYPE, row, u);
        }
        for (int c = 0; c < C; c++) {
            const __m256i av = _mm256_loadu_si256((const __m256i *)(acts[c].q + 32 * u));
            const float da = acts[c].d[u];
            __m256i as = av;
            for (int r = 0; r < R; r++) {
                __m256i dot;
                if (TYPE == MLK_Q_Q8_0 || TYPE == MLK_Q_IQ4_NL) { /* signed codes: |w| times a with w's sign */
                    (void)as;
                    dot = dot_u8s8_256(_mm256_sign_epi8(wv[r], wv[r]), _mm256_sign_epi8(av, wv[r]));
                } else {
                    dot = dot_u8s8_256(wv[r], av);
                }
                const __m256 s = MLK_SUB16(TYPE)
                                     ? _mm256_set_m128(_mm_set1_ps(ws1[r] * da), _mm_set1_ps(ws0[r] * da))
                                     : _mm256_set1_ps(ws0[r] * da);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc[r][c]);
                if (MLK_SUB16(TYPE))
                    corr[r][c] += wc0[r] * acts[c].s16[2 * u] + wc1[r] * acts[c].s16[2 * u + 1];
                else if (TYPE != MLK_Q_Q8_0 && TYPE != MLK_Q_IQ4_NL)
                    corr[r][c] += wc0[r] * acts[c].s[u];
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r][c]), _mm256_extractf128_ps(acc[r][c], 1));
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            s = _mm_add_ss(s, _mm_movehdup_ps(s));
            out[r][c] = _mm_cvtss_f32(s) + corr[r][c];
        }
}

#define MLK_DEFINE_DRIVER256(NAME, TYPE)                                                                        \
    MLK_T256 static void NAME(const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,      \
                              float *y, int64_t ldy) {                                                         \
        const size_t rb = mlk_q_row_bytes(TYPE, k);                                                            \
        float out[4][4];                                                                                       \
        int64_t j = j0;                                                                                        \
        for (; j + 4 <= j1; j += 4) {                                                                          \
            const uint8_t *rows[4];                                                                            \
            for (int r = 0; r < 4; r++) rows[r] = (const uint8_t *)w + (size_t)(j + r) * rb;                   \
            int64_t i = 0;                                                                                     \
            for (; i + 2 <= n; i += 2) {                                                                       \
                mlk_q_act acts[2] = {mlk_q_act_row(xq, k, i), mlk_q_act_row(xq, k, i + 1)};                    \
                tile256(TYPE, 4, 2, rows, acts, k, out, 0);                                                       \
                for (int r = 0; r < 4; r++)                                                                    \
                    for (int c = 0; c < 2; c++) y[(i + c) * ldy + j + r] = out[r][c];                          \
            }                                                                                                  \
            for (; i < n; i++) {                                                                               \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, i)};                                                 \
                tile256(TYPE, 4, 1, rows, acts, k, out, n == 1 ? (int64_t)(8 * rb) : 0);                                                       \
                for (int r = 0; r < 4; r++) y[i * ldy + j + r] = out[r][0];                                    \
            }                                                                                                  \
        }                                                                                                      \
        for (; j < j1; j++) {                                                                                  \
            const uint8_t *rows[1] = {(const uint8_t *)w + (size_t)j * rb};                                   \
            for (int64_t i = 0; i < n; i++) {                                                                  \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, i)};                                                 \
                tile256(TYPE, 1, 1, rows, acts, k, out, n == 1 ? (int64_t)(2 * rb) : 0);                                                       \
                y[i * ldy + j] = out[0][0];                                                                    \
            }                                                                                                  \
        }                                                                                                      \
    }

MLK_DEFINE_DRIVER256(mm256_q4_0, MLK_Q_Q4_0)
MLK_DEFINE_DRIVER256(mm256_q4_1, MLK_Q_Q4_1)
MLK_DEFINE_DRIVER256(mm256_q8_0, MLK_Q_Q8_0)
MLK_DEFINE_DRIVER256(mm256_iq4_nl, MLK_Q_IQ4_NL)
MLK_DEFINE_DRIVER256(mm256_q5_0, MLK_Q_Q5_0)
MLK_DEFINE_DRIVER256(mm256_q5_1, MLK_Q_Q5_1)
MLK_DEFINE_DRIVER256(mm256_q4_k, MLK_Q_Q4_K)
MLK_DEFINE_DRIVER256(mm256_q5_k, MLK_Q_Q5_K)
MLK_DEFINE_DRIVER256(mm256_q6_k, MLK_Q_Q6_K)
MLK_DEFINE_DRIVER256(mm256_q2_k, MLK_Q_Q2_K)
MLK_DEFINE_DRIVER256(mm256_q3_k, MLK_Q_Q3_K)

int mlk_q_matmul_avx2(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                      float *y, int64_t ldy) {
    switch (wtype) {
    case MLK_Q_Q4_0: mm256_q4_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q4_1: mm256_q4_1(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q8_0: mm256_q8_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_IQ4_NL: mm256_iq4_nl(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_0: mm256_q5_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_1: mm256_q5_1(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q4_K: mm256_q4_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_K: mm256_q5_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q6_K: mm256_q6_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q2_K: mm256_q2_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q3_K: mm256_q3_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    default: return 0;
    }
}

/* ================================================================ AVX2, interleaved 8-row groups (r8)
 *
 * One 32-byte weight vector holds 4 consecutive weights of each of 8 rows (see mobilellm_quant.h); the 4 matching
 * activation bytes of a token are broadcast to all 8 lanes, so vpmaddubsw + vpmaddwd give the 8 rows' partial dots
 * in one register and the 8 outputs leave as one store. A tile is 8 weight rows x C tokens (C <= 4): each weight
 * vector is loaded and unpacked once for the C tokens. Q4_0/Q4_1 sum the 8 vpmaddubsw results of a block in 16
 * bits (|sum| <= 8 * 2 * 15 * 127 = 30480), Q8_0 takes |w| and moves w's sign onto the activations. */

MLK_INLINE MLK_T256 __m256i r8_bcast(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

#define MLK_DEFINE_R8_TILE(NAME, TARGET, VNNI)                                                                  \
MLK_INLINE TARGET void NAME(const int TYPE, const int C, const uint8_t *group, const mlk_q_act *acts, int64_t nb,  \
                            float *y, int64_t ldy, int streams) {                                                      \
    const int64_t bb = 8 * (TYPE == MLK_Q_Q4_0 ? MLK_Q4_0_BYTES : MLK_Q1(TYPE) ? MLK_Q4_1_BYTES : MLK_Q8_0_BYTES);     \
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);                                            \
    __m256 acc[4], pair[4]; /* pair: MLK_R8_Q4_1_PAIRS's first block of a pair, scaled by its activations */         \
    for (int c = 0; c < C; c++) acc[c] = pair[c] = _mm256_setzero_ps();                                                \
    for (int64_t u = 0; u < nb; u++) {                                                                                 \
        /* b: the block's f16 d[8] (and m[8]); MLK_R8_Q4_1_PAIRS keeps them once per pair of blocks */               \
        const uint8_t *b = TYPE == MLK_R8_Q4_1_PAIRS ? group + (u >> 1) * 288 : group + u * bb;                       \
        if (streams && MLK_R8_PF) { /* the group's first tile reads it from memory: fetch ahead */                     \
            const char *ahead = (const char *)b + MLK_R8_PF + (TYPE == MLK_R8_Q4_1_PAIRS ? (u & 1) * 144 : 0);        \
            _mm_prefetch(ahead, _MM_HINT_T0);                                                                          \
            _mm_prefetch(ahead + 64, _MM_HINT_T0);                                                                     \
            if (bb > 128) _mm_prefetch(ahead + 128, _MM_HINT_T0);                                                      \
        }                                                                                                              \
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));                                         \
        __m256i isum[4];                                                                                               \
        if (TYPE == MLK_Q_Q8_0) {                                                                                      \
            for (int c = 0; c < C; c++) isum[c] = _mm256_setzero_si256();                                              \
            for (int v = 0; v < 8; v++) {                                                                              \
                const __m256i w = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * v));                              \
                const __m256i aw = _mm256_sign_epi8(w, w);                                                             \
                for (int c = 0; c < C; c++) {                                                                          \
                    const __m256i a = _mm256_sign_epi8(r8_bcast(acts[c].q + 32 * u + 4 * v), w);                       \
                    isum[c] = VNNI ? MLK_DPBUSD(isum[c], aw, a) : _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, a), ones)); \
                }                                                                                                      \
            }                                                                                                          \
        } else {                                                                                                       \
            const uint8_t *q = TYPE == MLK_R8_Q4_1_PAIRS ? b + 32 + (u & 1) * 128 : b + (TYPE == MLK_Q_Q4_1 ? 32 : 16);  \
            __m256i s16[4]; /* 16-bit sums (maddubs), or the 32-bit sums themselves (VNNI) */                          \
            _Pragma("GCC unroll 4") /* unrolled, the first step starts the sums (no zeroing, no loop overhead) */     \
            for (int v = 0; v < 4; v++) {                                                                              \
                const __m256i w = _mm256_loadu_si256((const __m256i *)(q + 32 * v));                                   \
                const __m256i lo = _mm256_and_si256(w, m4), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);        \
                for (int c = 0; c < C; c++) {                                                                          \
                    const int8_t *a = acts[c].q + 32 * u + 4 * v;                                                      \
                    if (VNNI) {                                                                                        \
                        const __m256i t = MLK_DPBUSD(v ? s16[c] : _mm256_setzero_si256(), lo, r8_bcast(a));           \
                        s16[c] = MLK_DPBUSD(t, hi, r8_bcast(a + 16));                                                  \
                    } else {                                                                                           \
                        const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, r8_bcast(a)),                      \
                                                           _mm256_maddubs_epi16(hi, r8_bcast(a + 16)));                \
                        s16[c] = v ? _mm256_add_epi16(s16[c], t) : t;                                                  \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
            for (int c = 0; c < C; c++) isum[c] = VNNI ? s16[c] : _mm256_madd_epi16(s16[c], ones);                     \
        }                                                                                                              \
        /* Q4_0: d*(q-8) -> d*(da*isum - 8*s), one multiply-add on the accumulator per block;                          \
         * Q4_1: d*q + m -> d*da*isum + m*s;  Q8_0: d*da*isum */                                                      \
        for (int c = 0; c < C; c++) {                                                                                  \
            const __m256 da = _mm256_broadcast_ss(acts[c].d + u);                                                      \
            if (TYPE == MLK_Q_Q4_0) {                                                                                  \
                const __m256 s8 = _mm256_mul_ps(_mm256_broadcast_ss(acts[c].s + u), _mm256_set1_ps(-8.0f));            \
                acc[c] = _mm256_fmadd_ps(d, _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), da, s8), acc[c]);             \
            } else if (TYPE == MLK_R8_Q4_1_PAIRS) {                                                                   \
                /* d and m are the pair's: its two blocks' da*isum are summed first, then one d and one m term */      \
                if (!(u & 1)) {                                                                                        \
                    pair[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(isum[c]), da);                                          \
                } else {                                                                                               \
                    pair[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), da, pair[c]);                               \
                    acc[c] = _mm256_fmadd_ps(d, pair[c], acc[c]);                                                      \
                    acc[c] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 16))),              \
                                             _mm256_set1_ps(acts[c].s[u - 1] + acts[c].s[u]), acc[c]);                 \
                }                                                                                                      \
            } else {                                                                                                   \
                acc[c] = _mm256_fmadd_ps(d, _mm256_mul_ps(_mm256_cvtepi32_ps(isum[c]), da), acc[c]);                   \
                if (MLK_Q1(TYPE))                                                                                      \
                    acc[c] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 16))),              \
                                             _mm256_broadcast_ss(acts[c].s + u), acc[c]);                              \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    for (int c = 0; c < C; c++) _mm256_storeu_ps(y + c * ldy, acc[c]);                                                 \
}

/* Q4_1 blocks with a minimum: plain, or in pairs sharing d and m (MLK_R8_Q4_1_PAIRS). */
#define MLK_Q1(TYPE) ((TYPE) == MLK_Q_Q4_1 || (TYPE) == MLK_R8_Q4_1_PAIRS)
#ifndef MLK_R8_PF
#define MLK_R8_PF 1024 /* prefetch distance in bytes of tiles that stream their group from memory (0: none) */
#endif
/* vpdpbusd on 256-bit registers (AVX512-VL + VNNI); only expanded inside the VNNI tile. */
#define MLK_DPBUSD(acc, u8, s8) _mm256_dpbusd_epi32(acc, u8, s8)
#define MLK_T256VNNI __attribute__((target("avx512f,avx512vl,avx512vnni,avx2,fma,f16c")))
MLK_DEFINE_R8_TILE(r8_tile256, MLK_T256, 0)
MLK_DEFINE_R8_TILE(r8_tile_vnni, MLK_T256VNNI, 1)

/* Two adjacent groups (16 rows, the second gb bytes after the first) through the 8-row tile, one after the other. */
MLK_INLINE MLK_T256 void r8_tile256x2(const int TYPE, const int C, const uint8_t *group, size_t gb, const mlk_q_act *acts,
                                      int64_t nb, float *y, int64_t ldy, int streams) {
    r8_tile256(TYPE, C, group, acts, nb, y, ldy, streams);
    r8_tile256(TYPE, C, group + gb, acts, nb, y + 8, ldy, streams);
}

/* ================================================================ AVX-512 VNNI, two 8-row groups per register
 * The VNNI tile above at 512 bits: the low half of each vector holds a block's 4 weights of group g's 8 rows, the high
 * half the same of group g + 1, so one broadcast activation word feeds 16 rows and one vpdpbusd does the work of two
 * (256-bit vpdpbusd issues at half the multiply-adds per cycle of 512-bit on Sapphire Rapids: 189 against 368 GMAC/s
 * on one core). The integer sums are the same; the float steps are the same per lane, so each output equals the
 * 256-bit tile's bit for bit. */

MLK_INLINE MLK_T512 __m512i r8x2_load(const uint8_t *p, size_t gb) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                              _mm256_loadu_si256((const __m256i *)(p + gb)), 1);
}

/* The 8 f16 fields at p and the 8 at p + gb as 16 floats. */
MLK_INLINE MLK_T512 __m512 r8x2_fields(const uint8_t *p, size_t gb) {
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)),
                                                   _mm_loadu_si128((const __m128i *)(p + gb)), 1));
}

MLK_INLINE MLK_T512 __m512i r8x2_bcast(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

MLK_INLINE MLK_T512 void r8_tile512x2(const int TYPE, const int C, const uint8_t *group, size_t gb, const mlk_q_act *acts,
                                      int64_t nb, float *y, int64_t ldy, int streams) {
    const int64_t bb = 8 * (TYPE == MLK_Q_Q4_0 ? MLK_Q4_0_BYTES : MLK_Q1(TYPE) ? MLK_Q4_1_BYTES : MLK_Q8_0_BYTES);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[4], pair[4];
    for (int c = 0; c < C; c++) acc[c] = pair[c] = _mm512_setzero_ps();
    for (int64_t u = 0; u < nb; u++) {
        const uint8_t *b = TYPE == MLK_R8_Q4_1_PAIRS ? group + (u >> 1) * 288 : group + u * bb;
#if MLK_R8_PF
        if (streams) { /* as the 8-row tile, for both groups */
            const char *ahead = (const char *)b + MLK_R8_PF + (TYPE == MLK_R8_Q4_1_PAIRS ? (u & 1) * 144 : 0);
            for (int h = 0; h < 2; h++) {
                _mm_prefetch(ahead + h * gb, _MM_HINT_T0);
                _mm_prefetch(ahead + h * gb + 64, _MM_HINT_T0);
                if (bb > 128) _mm_prefetch(ahead + h * gb + 128, _MM_HINT_T0);
            }
        }
#else
        (void)streams;
#endif
        const __m512 d = r8x2_fields(b, gb);
        __m512i isum[4];
        if (TYPE == MLK_Q_Q8_0) {
            for (int c = 0; c < C; c++) isum[c] = _mm512_setzero_si512();
            for (int v = 0; v < 8; v++) {
                const __m512i w = r8x2_load(b + 16 + 32 * v, gb);
                const __m512i aw = _mm512_abs_epi8(w);
                const __mmask64 negative = _mm512_movepi8_mask(w);
                for (int c = 0; c < C; c++) {
                    const __m512i a = r8x2_bcast(acts[c].q + 32 * u + 4 * v);
                    isum[c] = _mm512_dpbusd_epi32(isum[c], aw, _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a));
                }
            }
        } else {
            const uint8_t *q = TYPE == MLK_R8_Q4_1_PAIRS ? b + 32 + (u & 1) * 128 : b + (TYPE == MLK_Q_Q4_1 ? 32 : 16);
            _Pragma("GCC unroll 4")
            for (int v = 0; v < 4; v++) {
                const __m512i w = r8x2_load(q + 32 * v, gb);
                const __m512i lo = _mm512_and_si512(w, m4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), m4);
                for (int c = 0; c < C; c++) {
                    const int8_t *a = acts[c].q + 32 * u + 4 * v;
                    const __m512i t = _mm512_dpbusd_epi32(v ? isum[c] : _mm512_setzero_si512(), lo, r8x2_bcast(a));
                    isum[c] = _mm512_dpbusd_epi32(t, hi, r8x2_bcast(a + 16));
                }
            }
        }
        for (int c = 0; c < C; c++) {
            const __m512 da = _mm512_set1_ps(acts[c].d[u]);
            if (TYPE == MLK_Q_Q4_0) {
                const __m512 s8 = _mm512_mul_ps(_mm512_set1_ps(acts[c].s[u]), _mm512_set1_ps(-8.0f));
                acc[c] = _mm512_fmadd_ps(d, _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), da, s8), acc[c]);
            } else if (TYPE == MLK_R8_Q4_1_PAIRS) {
                if (!(u & 1)) {
                    pair[c] = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[c]), da);
                } else {
                    pair[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), da, pair[c]);
                    acc[c] = _mm512_fmadd_ps(d, pair[c], acc[c]);
                    acc[c] = _mm512_fmadd_ps(r8x2_fields(b + 16, gb), _mm512_set1_ps(acts[c].s[u - 1] + acts[c].s[u]), acc[c]);
                }
            } else {
                acc[c] = _mm512_fmadd_ps(d, _mm512_mul_ps(_mm512_cvtepi32_ps(isum[c]), da), acc[c]);
                if (MLK_Q1(TYPE)) acc[c] = _mm512_fmadd_ps(r8x2_fields(b + 16, gb), _mm512_set1_ps(acts[c].s[u]), acc[c]);
            }
        }
    }
    for (int c = 0; c < C; c++) _mm512_storeu_ps(y + c * ldy, acc[c]);
}

/* Tokens in blocks whose activation rows stay in L2 (about 256 KB); inside, pairs of 8-row groups (TILE2, 16 rows; a
 * last odd group through TILE), and 4-token tiles inside those. */
#define MLK_DEFINE_R8_DRIVER(NAME, TYPE, TILE, TILE2, TARGET)                                                  \
    TARGET static void NAME(const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,      \
                              float *y, int64_t ldy) {                                                         \
        const int64_t nb = k / MLK_QK;                                                                         \
        const size_t gb = mlk_q_r8_bytes(TYPE, 8, k);                                                          \
        int64_t tb = (int64_t)((256u << 10) / mlk_q_act_bytes(k)) & ~(int64_t)3;                               \
        if (tb < 4) tb = 4;                                                                                    \
        for (int64_t i0 = 0; i0 < n; i0 += tb) {                                                               \
            const int64_t i1 = n < i0 + tb ? n : i0 + tb;                                                      \
            for (int64_t g = j0 / 8; g < j1 / 8; g += 2) {                                                     \
                const uint8_t *group = (const uint8_t *)w + (size_t)g * gb;                                    \
                const int two = g + 1 < j1 / 8;                                                                \
                int64_t i = i0;                                                                                \
                for (; i + 4 <= i1; i += 4) {                                                                  \
                    const mlk_q_act acts[4] = {mlk_q_act_row(xq, k, i), mlk_q_act_row(xq, k, i + 1),           \
                                               mlk_q_act_row(xq, k, i + 2), mlk_q_act_row(xq, k, i + 3)};      \
                    if (two) TILE2(TYPE, 4, group, gb, acts, nb, y + i * ldy + 8 * g, ldy, i == i0);            \
                    else TILE(TYPE, 4, group, acts, nb, y + i * ldy + 8 * g, ldy, i == i0);                     \
                }                                                                                              \
                const mlk_q_act acts[3] = {mlk_q_act_row(xq, k, i), mlk_q_act_row(xq, k, i + 1 < n ? i + 1 : i), \
                                           mlk_q_act_row(xq, k, i + 2 < n ? i + 2 : i)};                       \
                switch ((i1 - i) * 2 + two) {                                                                  \
                case 7: TILE2(TYPE, 3, group, gb, acts, nb, y + i * ldy + 8 * g, ldy, i == i0); break;          \
                case 6: TILE(TYPE, 3, group, acts, nb, y + i * ldy + 8 * g, ldy, i == i0); break;               \
                case 5: TILE2(TYPE, 2, group, gb, acts, nb, y + i * ldy + 8 * g, ldy, i == i0); break;          \
                case 4: TILE(TYPE, 2, group, acts, nb, y + i * ldy + 8 * g, ldy, i == i0); break;               \
                case 3: TILE2(TYPE, 1, group, gb, acts, nb, y + i * ldy + 8 * g, ldy, i == i0); break;          \
                case 2: TILE(TYPE, 1, group, acts, nb, y + i * ldy + 8 * g, ldy, i == i0); break;               \
                default: break;                                                                                \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }

MLK_DEFINE_R8_DRIVER(r8_q4_0, MLK_Q_Q4_0, r8_tile256, r8_tile256x2, MLK_T256)
MLK_DEFINE_R8_DRIVER(r8_q4_1, MLK_Q_Q4_1, r8_tile256, r8_tile256x2, MLK_T256)
MLK_DEFINE_R8_DRIVER(r8_q8_0, MLK_Q_Q8_0, r8_tile256, r8_tile256x2, MLK_T256)
MLK_DEFINE_R8_DRIVER(r8v_q4_0, MLK_Q_Q4_0, r8_tile_vnni, r8_tile512x2, MLK_T512)
MLK_DEFINE_R8_DRIVER(r8v_q4_1, MLK_Q_Q4_1, r8_tile_vnni, r8_tile512x2, MLK_T512)
MLK_DEFINE_R8_DRIVER(r8v_q8_0, MLK_Q_Q8_0, r8_tile_vnni, r8_tile512x2, MLK_T512)
MLK_DEFINE_R8_DRIVER(r8_q4_1p, MLK_R8_Q4_1_PAIRS, r8_tile256, r8_tile256x2, MLK_T256)
MLK_DEFINE_R8_DRIVER(r8v_q4_1p, MLK_R8_Q4_1_PAIRS, r8_tile_vnni, r8_tile512x2, MLK_T512)

int mlk_q_r8_matmul_x86(int vnni, int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0,
                        int64_t j1, float *y, int64_t ldy) {
    typedef void (*driver)(const void *, int64_t, int64_t, const void *, int64_t, int64_t, float *, int64_t);
    driver run;
    switch (wtype) {
    case MLK_Q_Q4_0: run = vnni ? r8v_q4_0 : r8_q4_0; break;
    case MLK_Q_Q4_1: run = vnni ? r8v_q4_1 : r8_q4_1; break;
    case MLK_Q_Q8_0: run = vnni ? r8v_q8_0 : r8_q8_0; break;
    case MLK_R8_Q4_1_PAIRS: run = vnni ? r8v_q4_1p : r8_q4_1p; break;
    default: return 0;
    }
    run(xq, n, k, w, j0, j1, y, ldy);
    return 1;
}

#endif /* x86 */
