/* Quantized weights x f32 activations; see mobilellm_qf32.h. */
#include "mobilellm_qf32.h"
#include "mobilellm_quant.h"
#include "quant_internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define QF_X86 1
#include <immintrin.h>
#define QF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define QF_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

/* Decode prefetch distance in rows (a few KB ahead of the 4-row tile being read; measured best on Zen 4). */
#define QF_PREFETCH_ROWS_Q4 8
#define QF_PREFETCH_ROWS_Q8 16

enum { QF_Q4_0 = 2, QF_Q4_1 = 3, QF_Q5_0 = 6, QF_Q5_1 = 7, QF_Q8_0 = 8, QF_Q2_K = 10, QF_Q3_K = 11, QF_Q4_K = 12,
       QF_Q5_K = 13, QF_Q6_K = 14, QF_IQ4_NL = 20 };

int mlk_qf32_supported(int wtype) {
    switch (wtype) {
    case QF_Q4_0: case QF_Q4_1: case QF_Q5_0: case QF_Q5_1: case QF_Q8_0: case QF_Q4_K: case QF_Q5_K: case QF_Q6_K:
    case QF_IQ4_NL: case QF_Q2_K: case QF_Q3_K: return 1;
    default: return 0;
    }
}

static int64_t qf_block(int wtype) {
    return (wtype == QF_Q2_K || wtype == QF_Q3_K || wtype == QF_Q4_K || wtype == QF_Q5_K || wtype == QF_Q6_K) ? 256 : 32;
}

/* ------------------------------------------------------------------ Q4_1 pairs, row-major (see the header) */

void mlk_q4_1_pairs_compact(const void *src, int64_t rows, int64_t k, void *dst) {
    if (!src || !dst || rows < 0 || k <= 0 || k % 64 != 0) return;
    const size_t in_row = (size_t)(k / 32) * 20, out_row = (size_t)(k / 64) * 36;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *in = (const uint8_t *)src + (size_t)r * in_row;
        uint8_t *out = (uint8_t *)dst + (size_t)r * out_row;
        for (int64_t p = 0; p < k / 64; p++) {
            uint8_t pair[36]; /* read whole before writing: in place, the output overlaps this pair's input */
            memcpy(pair, in + (size_t)p * 40, 20);
            memcpy(pair + 20, in + (size_t)p * 40 + 24, 16);
            memcpy(out + (size_t)p * 36, pair, 36);
        }
    }
}

void mlk_q4_1_pairs_expand_row(const void *compact, int64_t k, int64_t j, void *dst) {
    if (!compact || !dst || j < 0 || k <= 0 || k % 64 != 0) return;
    const uint8_t *in = (const uint8_t *)compact + (size_t)j * (size_t)(k / 64) * 36;
    uint8_t *out = (uint8_t *)dst;
    for (int64_t p = 0; p < k / 64; p++) {
        memcpy(out + (size_t)p * 40, in + (size_t)p * 36, 20);
        memcpy(out + (size_t)p * 40 + 20, in + (size_t)p * 36, 4);
        memcpy(out + (size_t)p * 40 + 24, in + (size_t)p * 36 + 20, 16);
    }
}

int mlk_q4_1_pairs_fast(void) {
#if defined(__x86_64__) || defined(_M_X64)
    return mlk_active_isa() != MLK_ISA_SCALAR;
#else
    return 0;
#endif
}

/* The portable path for MLK_Q4_1_PAIRS_ROWS: each row expanded to plain Q4_1, then the Q4_1 path. */
static void qf_scalar(int wtype, const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                      float *y, int64_t ldy);
static void qf_pairs_scalar(const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1, float *y,
                            int64_t ldy) {
    uint8_t *row = malloc((size_t)(k / 32) * 20);
    if (!row) return;
    for (int64_t j = j0; j < j1; j++) {
        mlk_q4_1_pairs_expand_row(w, k, j, row);
        qf_scalar(QF_Q4_1, x, n, k, row, 0, 1, y + j, ldy);
    }
    free(row);
}

/* ------------------------------------------------------------------ portable path: dequantize, then dot */

static void qf_scalar(int wtype, const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                      float *y, int64_t ldy) {
    const size_t row_bytes = mlk_q_row_bytes(wtype, k);
    float *row = malloc((size_t)k * sizeof(float));
    if (!row) return;
    for (int64_t j = j0; j < j1; j++) {
        mlk_q_dequantize_row(wtype, (const char *)w + (size_t)j * row_bytes, k, row);
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + i * k;
            float sum = 0;
            for (int64_t t = 0; t < k; t++) sum += xi[t] * row[t];
            y[i * ldy + j] = sum;
        }
    }
    free(row);
}

#ifdef QF_X86

/* ------------------------------------------------------------------ AVX-512: one 32-weight group in registers
 * Each dequantizer writes weights [32g, 32g + 32) of a row into lo (first 16) and hi (next 16).
 */

QF_AVX512 static inline float qf_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

QF_AVX512 static inline void qf_q4_0(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + g * 18;
    const __m512 d = _mm512_set1_ps(qf_half(b));
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    const __m512i eight = _mm512_set1_epi32(8), mask = _mm512_set1_epi32(15);
    *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(q, mask), eight)), d);
    *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(q, 4), eight)), d);
}

/* 32 Q4_1 weights from the f16 pair d, m at dm and 16 bytes of nibbles at qs (plain Q4_1 and its pairs layout). */
QF_AVX512 static inline void qf_q4_1_at(const uint8_t *dm, const uint8_t *qs, __m512 *lo, __m512 *hi) {
    const __m512 d = _mm512_set1_ps(qf_half(dm)), m = _mm512_set1_ps(qf_half(dm + 2));
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    const __m512i mask = _mm512_set1_epi32(15);
    /* ggml / gguf-py: d * q + m, rounded after the multiply */
    *lo = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, mask)), d), m);
    *hi = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4)), d), m);
}

QF_AVX512 static inline void qf_q4_1(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + g * 20;
    qf_q4_1_at(b, b + 4, lo, hi);
}

/* Q4_1 in pairs (MLK_Q4_1_PAIRS_ROWS, 36 bytes per 64 weights): qf_q4_1's operations on the pair's shared d and m. */
QF_AVX512 static inline void qf_q4_1p(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + (g >> 1) * 36;
    qf_q4_1_at(b, b + 4 + (g & 1) * 16, lo, hi);
}

QF_AVX512 static inline void qf_q8_0(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + g * 34;
    const __m512 d = _mm512_set1_ps(qf_half(b));
    *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))), d);
    *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))), d);
}

/* Q4_K: 144-byte super-blocks of 256: f16 d, f16 dmin, scales[12] (6-bit scale/min pairs), qs[128]. */
QF_AVX512 static inline void qf_q4_k(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + (g >> 3) * 144;
    const int j = (int)(g & 7);
    int sc, mn;
    mlk_q4k_scale_min(j, b + 4, &sc, &mn);
    const __m512 d = _mm512_set1_ps(qf_half(b) * (float)sc);
    const __m512 m = _mm512_set1_ps(qf_half(b + 2) * (float)mn);
    const uint8_t *qs = b + 16 + (j >> 1) * 32;
    const int shift = (j & 1) ? 4 : 0;
    const __m512i mask = _mm512_set1_epi32(15);
    const __m512i q0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    const __m512i q1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16)));
    *lo = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(q0, (unsigned)shift), mask))), m);
    *hi = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(q1, (unsigned)shift), mask))), m);
}

/* Q5_0 / Q5_1: 16 weights' 5-bit codes (as int32 lanes) from 16 nibbles and 16 bits of qh starting at bit `first`:
 * qh's bits are used directly as the lane mask of one masked add (bit 4 set where qh has a 1). */
QF_AVX512 static inline __m512i qf_q5_codes(__m512i nibbles, uint32_t qh, int first) {
    return _mm512_mask_add_epi32(nibbles, (__mmask16)(qh >> first), nibbles, _mm512_set1_epi32(16));
}

/* Q5_0: 22-byte blocks of 32: f16 d, u32 qh, qs[16]; w = (q5 - 16) * d, i.e. the nibble where qh's bit is set and
 * nibble - 16 where it is clear (one masked subtract per 16 weights). */
QF_AVX512 static inline void qf_q5_0(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + g * 22;
    const __m512 d = _mm512_set1_ps(qf_half(b));
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 6)));
    const __m512i mask = _mm512_set1_epi32(15), sixteen = _mm512_set1_epi32(16);
    const __m512i low = _mm512_and_si512(q, mask), high = _mm512_srli_epi32(q, 4);
    *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_mask_sub_epi32(low, (__mmask16)~qh, low, sixteen)), d);
    *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_mask_sub_epi32(high, (__mmask16)~(qh >> 16), high, sixteen)), d);
}

/* Q5_1: 24-byte blocks of 32: f16 d, f16 m, u32 qh, qs[16]; w = q5 * d + m (rounded after the multiply). */
QF_AVX512 static inline void qf_q5_1(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + g * 24;
    const __m512 d = _mm512_set1_ps(qf_half(b)), m = _mm512_set1_ps(qf_half(b + 2));
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 8)));
    const __m512i mask = _mm512_set1_epi32(15);
    *lo = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(qf_q5_codes(_mm512_and_si512(q, mask), qh, 0)), d), m);
    *hi = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(qf_q5_codes(_mm512_srli_epi32(q, 4), qh, 16)), d), m);
}

/* IQ4_NL: 18-byte blocks of 32: f16 d, qs[16] (nibbles as Q4_0); w = d * kvalues_iq4nl[nibble], the level looked
 * up with vpermps (the low 4 bits of each lane index the 16-entry table). */
QF_AVX512 static inline void qf_iq4_nl(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + g * 18;
    const __m512 d = _mm512_set1_ps(qf_half(b));
    const __m512 table = _mm512_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    *lo = _mm512_mul_ps(d, _mm512_permutexvar_ps(q, table));
    *hi = _mm512_mul_ps(d, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table));
}

/* Q5_K: 176-byte super-blocks of 256: f16 d, f16 dmin, scales[12] (as Q4_K), qh[32], qs[128];
 * sub-block j's element l adds bit j of qh[l] as bit 4 of its code. */
QF_AVX512 static inline void qf_q5_k(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + (g >> 3) * 176;
    const int j = (int)(g & 7);
    int sc, mn;
    mlk_q4k_scale_min(j, b + 4, &sc, &mn);
    const __m512 d = _mm512_set1_ps(qf_half(b) * (float)sc);
    const __m512 m = _mm512_set1_ps(qf_half(b + 2) * (float)mn);
    const uint8_t *qs = b + 48 + (j >> 1) * 32, *qh = b + 16;
    const unsigned shift = (j & 1) ? 4 : 0;
    const __m512i mask = _mm512_set1_epi32(15), one = _mm512_set1_epi32(1);
    for (int part = 0; part < 2; part++) {
        const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * part)));
        const __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + 16 * part)));
        const __m512i code = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(q, shift), mask),
                                             _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, (unsigned)j), one), 4));
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(code)), m);
        if (part == 0) *lo = v; else *hi = v;
    }
}

/* Q2_K: 84-byte super-blocks of 256: scales[16] (low nibble scale, high nibble min per 16), qs[64], f16 d, f16 dmin.
 * 32-group u (0..7) of a super-block: half h = u / 4, shift 2 * (u % 4) of qs[32h + l]; w = (d*sc)*q - dmin*m. */
QF_AVX512 static inline void qf_q2_k(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + (g >> 3) * 84;
    const int u = (int)(g & 7);
    const float d = qf_half(b + 80), dmin = qf_half(b + 82);
    const uint8_t *qs = b + 16 + 32 * (u >> 2);
    const unsigned shift = (unsigned)(2 * (u & 3));
    for (int part = 0; part < 2; part++) {
        const uint8_t sc = b[2 * u + part];
        const __m512i q = _mm512_and_si512(_mm512_srli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * part))), shift),
                                           _mm512_set1_epi32(3));
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * (float)(sc & 0xF)), _mm512_cvtepi32_ps(q)),
                                       _mm512_set1_ps(dmin * (float)(sc >> 4)));
        if (part == 0) *lo = v; else *hi = v;
    }
}

/* Q3_K: 110-byte super-blocks of 256: hmask[32], qs[64], scales[12] (6-bit, +32), f16 d. Codes as Q2_K, minus 4
 * where bit u of hmask[l] is clear; w = (d*sc)*q. */
QF_AVX512 static inline void qf_q3_k(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + (g >> 3) * 110;
    const int u = (int)(g & 7);
    const float d = qf_half(b + 108);
    const uint8_t *qs = b + 32 + 32 * (u >> 2), *sc = b + 96;
    const unsigned shift = (unsigned)(2 * (u & 3));
    for (int part = 0; part < 2; part++) {
        const int s = 2 * u + part;
        const int scale = mlk_q3k_scale(s, sc);
        const __m512i q = _mm512_and_si512(_mm512_srli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * part))), shift),
                                           _mm512_set1_epi32(3));
        const __m512i h = _mm512_and_si512(_mm512_srli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 16 * part))), (unsigned)u),
                                           _mm512_set1_epi32(1));
        const __m512i code = _mm512_sub_epi32(_mm512_or_si512(q, _mm512_slli_epi32(h, 2)), _mm512_set1_epi32(4));
        const __m512 v = _mm512_mul_ps(_mm512_set1_ps(d * (float)scale), _mm512_cvtepi32_ps(code));
        if (part == 0) *lo = v; else *hi = v;
    }
}

/* Q6_K: 210-byte super-blocks of 256: ql[128], qh[64], int8 scales[16], f16 d. */
QF_AVX512 static inline void qf_q6_k(const uint8_t *row, int64_t g, __m512 *lo, __m512 *hi) {
    const uint8_t *b = row + (g >> 3) * 210;
    const int within = (int)(g & 7), half = within >> 2, which = within & 3;
    const uint8_t *ql = b + half * 64 + ((which & 1) ? 32 : 0);
    const uint8_t *qh = b + 128 + half * 32;
    const int8_t *scales = (const int8_t *)(b + 192) + half * 8 + which * 2;
    const float d = qf_half(b + 208);
    const unsigned low_shift = (which >= 2) ? 4 : 0, high_shift = (unsigned)(which * 2);
    const __m512i mask4 = _mm512_set1_epi32(15), mask2 = _mm512_set1_epi32(3), offset = _mm512_set1_epi32(32);
    for (int part = 0; part < 2; part++) {
        const __m512i l = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + part * 16)));
        const __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + part * 16)));
        const __m512i q = _mm512_sub_epi32(
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(l, low_shift), mask4),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, high_shift), mask2), 4)),
            offset);
        /* ggml: d * sc * q, rounded as (d * sc) * q */
        const __m512 v = _mm512_mul_ps(_mm512_set1_ps(d * (float)scales[part]), _mm512_cvtepi32_ps(q));
        if (part == 0) *lo = v; else *hi = v;
    }
}

/* ------------------------------------------------------------------ decode (one input row): 4 weight rows at a time
 * Nibbles become floats through a 16-entry vpermps table (the low 4 bits of each lane index it, so no masking),
 * the block scale multiplies the block's partial dot product once, and Q4_1's minimum is folded in through the
 * block sums of x: sum_t (d q_t + m) x_t = d * sum_t q_t x_t + m * sum_t x_t. The scales of 16 blocks of a row come
 * from one gather and one conversion into a small array, which the FMAs read as broadcast operands: converting
 * each f16 scale where it is used cost 3 of the 10 vector operations per block and row (the shuffle port bounds this
 * loop). */

/* The f32 scales of the `valid` blocks among 16 consecutive ones at b (block_bytes apart; with `pairs`, 36-byte pairs
 * of blocks sharing one scale) into d, and with `m` their minimums (the f16 after the scale, as Q4_1 stores it).
 * Lanes outside `valid` are 0. */
QF_AVX512 static inline void qf_gather_scales(const uint8_t *b, int block_bytes, int pairs, __mmask16 valid, float *d,
                                              float *m) {
    const __m512i offsets = pairs ? _mm512_setr_epi32(0, 0, 36, 36, 72, 72, 108, 108, 144, 144, 180, 180, 216, 216, 252, 252)
                                  : _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                       _mm512_set1_epi32(block_bytes));
    const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, offsets, b, 1);
    _mm512_store_ps(d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
    if (m) _mm512_store_ps(m, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))));
}

/* Q4_0 (HAS_MIN 0, 18-byte blocks), Q4_1 (HAS_MIN 1, 20 bytes), Q8_0 (Q8 1, 34 bytes) or Q4_1 in pairs (PAIRS 1,
 * HAS_MIN 1: each 36 bytes, d, m and two blocks' nibbles, hold two blocks; BLOCK_BYTES 18 per block) rows j0..j1
 * against one x. Pairs give the same floats as plain Q4_1: the same scales reach the same operations. */
#define QF_DEFINE_GEMV(NAME, BLOCK_BYTES, HAS_MIN, Q8, PAIRS)                                                 \
    QF_AVX512 static void NAME(const float *x, int64_t k, const uint8_t *w, int64_t j0, int64_t j1, float *y) { \
        const int64_t groups = k / 32;                                                                      \
        const size_t row_bytes = (size_t)groups * (BLOCK_BYTES), quants = (HAS_MIN) ? 4 : 2;                \
        const __m512 table = (HAS_MIN) ? _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)  \
                                       : _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7); \
        _Alignas(64) float sums_stack[256];                                                                 \
        float *sums = NULL;                                                                                 \
        if (HAS_MIN) {                                                                                      \
            const int64_t padded = (groups + 15) / 16 * 16;                                                 \
            sums = padded <= 256 ? sums_stack : (float *)aligned_alloc(64, (size_t)padded * sizeof(float)); \
            if (!sums) return;                                                                              \
            for (int64_t g = 0; g < padded; g++)                                                            \
                sums[g] = g < groups ? _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + g * 32),      \
                                                                          _mm512_loadu_ps(x + g * 32 + 16))) : 0; \
        }                                                                                                   \
        for (int64_t j = j0; j < j1; j += 4) {                                                              \
            const int rows = j1 - j < 4 ? (int)(j1 - j) : 4;                                                \
            const uint8_t *r[4];                                                                            \
            for (int a = 0; a < 4; a++) r[a] = w + (size_t)(j + (a < rows ? a : 0)) * row_bytes;            \
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
            __m512 mins[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
            for (int64_t g0 = 0; g0 < groups; g0 += 16) {                                                   \
                const int count = groups - g0 < 16 ? (int)(groups - g0) : 16;                               \
                const __mmask16 valid = (__mmask16)((1u << count) - 1);                                     \
                _Alignas(64) float d[4][16], m[4][16];                                                      \
                for (int a = 0; a < 4; a++) qf_gather_scales(r[a] + g0 * (BLOCK_BYTES), BLOCK_BYTES, PAIRS, valid, d[a], (HAS_MIN) ? m[a] : NULL); \
                if (HAS_MIN)                                                                                \
                    for (int a = 0; a < 4; a++) mins[a] = _mm512_fmadd_ps(_mm512_load_ps(m[a]), _mm512_load_ps(sums + g0), mins[a]); \
                for (int gi = 0; gi < count; gi++) {                                                        \
                    const int64_t g = g0 + gi;                                                              \
                    const __m512 xl = _mm512_loadu_ps(x + g * 32), xh = _mm512_loadu_ps(x + g * 32 + 16);   \
                    for (int a = 0; a < 4; a++) {                                                           \
                        const uint8_t *b = (PAIRS) ? r[a] + (g >> 1) * 36 + (g & 1) * 16 : r[a] + g * (BLOCK_BYTES); \
                        __m512 lo, hi;                                                                      \
                        if (Q8) {                                                                           \
                            _mm_prefetch((const char *)(b + QF_PREFETCH_ROWS_Q8 * row_bytes), _MM_HINT_T0); \
                            lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))); \
                            hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))); \
                        } else {                                                                            \
                            _mm_prefetch((const char *)(b + QF_PREFETCH_ROWS_Q4 * row_bytes), _MM_HINT_T0); \
                            const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + quants))); \
                            lo = _mm512_permutexvar_ps(q, table);                                           \
                            hi = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);                     \
                        }                                                                                   \
                        const __m512 partial = _mm512_fmadd_ps(hi, xh, _mm512_mul_ps(lo, xl));              \
                        acc[a] = _mm512_fmadd_ps(partial, _mm512_set1_ps(d[a][gi]), acc[a]);                \
                    }                                                                                       \
                }                                                                                           \
            }                                                                                               \
            for (int a = 0; a < rows; a++)                                                                  \
                y[j + a] = _mm512_reduce_add_ps(acc[a]) + ((HAS_MIN) ? _mm512_reduce_add_ps(mins[a]) : 0.0f); \
        }                                                                                                   \
        if (sums && sums != sums_stack) free(sums);                                                         \
    }

QF_DEFINE_GEMV(qf_gemv_q4_0, 18, 0, 0, 0)
QF_DEFINE_GEMV(qf_gemv_q4_1, 20, 1, 0, 0)
QF_DEFINE_GEMV(qf_gemv_q8_0, 34, 0, 1, 0)
QF_DEFINE_GEMV(qf_gemv_q4_1p, 18, 1, 0, 1)

/* A 4-row x 4-input register tile per 32-weight group; 4x1 and 1x1 edges. */
#define QF_DEFINE(NAME, DEQ, BLOCK_BYTES, BLOCK)                                                             \
    QF_AVX512 static void NAME(const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,  \
                               float *y, int64_t ldy) {                                                     \
        const size_t row_bytes = (size_t)(k / (BLOCK)) * (BLOCK_BYTES);                                     \
        const int64_t groups = k / 32;                                                                      \
        const uint8_t *base = (const uint8_t *)w;                                                           \
        int64_t j = j0;                                                                                     \
        for (; j + 4 <= j1; j += 4) {                                                                       \
            const uint8_t *r[4];                                                                            \
            for (int a = 0; a < 4; a++) r[a] = base + (size_t)(j + a) * row_bytes;                          \
            int64_t i = 0;                                                                                  \
            for (; i + 4 <= n; i += 4) {                                                                    \
                __m512 acc[4][4];                                                                           \
                for (int a = 0; a < 4; a++)                                                                 \
                    for (int c = 0; c < 4; c++) acc[a][c] = _mm512_setzero_ps();                            \
                for (int64_t g = 0; g < groups; g++) {                                                      \
                    __m512 lo[4], hi[4];                                                                    \
                    for (int a = 0; a < 4; a++) DEQ(r[a], g, &lo[a], &hi[a]);                               \
                    for (int c = 0; c < 4; c++) {                                                           \
                        const float *xc = x + (i + c) * k + g * 32;                                         \
                        const __m512 xl = _mm512_loadu_ps(xc), xh = _mm512_loadu_ps(xc + 16);              \
                        for (int a = 0; a < 4; a++)                                                         \
                            acc[a][c] = _mm512_fmadd_ps(hi[a], xh, _mm512_fmadd_ps(lo[a], xl, acc[a][c]));  \
                    }                                                                                       \
                }                                                                                           \
                for (int a = 0; a < 4; a++)                                                                 \
                    for (int c = 0; c < 4; c++) y[(i + c) * ldy + j + a] = _mm512_reduce_add_ps(acc[a][c]); \
            }                                                                                               \
            for (; i < n; i++) {                                                                            \
                __m512 acc[4];                                                                              \
                for (int a = 0; a < 4; a++) acc[a] = _mm512_setzero_ps();                                   \
                const float *xi = x + i * k;                                                                \
                for (int64_t g = 0; g < groups; g++) {                                                      \
                    const __m512 xl = _mm512_loadu_ps(xi + g * 32), xh = _mm512_loadu_ps(xi + g * 32 + 16); \
                    for (int a = 0; a < 4; a++) {                                                           \
                        __m512 lo, hi;                                                                      \
                        DEQ(r[a], g, &lo, &hi);                                                             \
                        acc[a] = _mm512_fmadd_ps(hi, xh, _mm512_fmadd_ps(lo, xl, acc[a]));                  \
                    }                                                                                       \
                }                                                                                           \
                for (int a = 0; a < 4; a++) y[i * ldy + j + a] = _mm512_reduce_add_ps(acc[a]);              \
            }                                                                                               \
        }                                                                                                   \
        for (; j < j1; j++) {                                                                               \
            const uint8_t *row = base + (size_t)j * row_bytes;                                              \
            for (int64_t i = 0; i < n; i++) {                                                               \
                __m512 acc = _mm512_setzero_ps();                                                           \
                const float *xi = x + i * k;                                                                \
                for (int64_t g = 0; g < groups; g++) {                                                      \
                    __m512 lo, hi;                                                                          \
                    DEQ(row, g, &lo, &hi);                                                                  \
                    acc = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xi + g * 32 + 16),                            \
                                          _mm512_fmadd_ps(lo, _mm512_loadu_ps(xi + g * 32), acc));          \
                }                                                                                           \
                y[i * ldy + j] = _mm512_reduce_add_ps(acc);                                                 \
            }                                                                                               \
        }                                                                                                   \
    }

QF_DEFINE(qf_avx512_q4_0, qf_q4_0, 18, 32)
QF_DEFINE(qf_avx512_q4_1, qf_q4_1, 20, 32)
QF_DEFINE(qf_avx512_q4_1p, qf_q4_1p, 36, 64)
QF_DEFINE(qf_avx512_q8_0, qf_q8_0, 34, 32)
QF_DEFINE(qf_avx512_iq4_nl, qf_iq4_nl, 18, 32)
QF_DEFINE(qf_avx512_q5_0, qf_q5_0, 22, 32)
QF_DEFINE(qf_avx512_q5_1, qf_q5_1, 24, 32)
QF_DEFINE(qf_avx512_q4_k, qf_q4_k, 144, 256)
QF_DEFINE(qf_avx512_q5_k, qf_q5_k, 176, 256)
QF_DEFINE(qf_avx512_q6_k, qf_q6_k, 210, 256)
QF_DEFINE(qf_avx512_q2_k, qf_q2_k, 84, 256)
QF_DEFINE(qf_avx512_q3_k, qf_q3_k, 110, 256)

/* ------------------------------------------------------------------ AVX-512 long prefill: an f32 GEMM
 * The AVX2 GEMM's design (further below) at 512 bits: 32-row weight panels dequantized once per call into k-major
 * blocks, and a broadcast micro-kernel of 12 tokens x 32 rows (24 accumulators of the 32 zmm registers). */

/* r[0..15] transposed in place: lane l of r[a] becomes lane a of r[l]. */
QF_AVX512 static inline void qf_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int a = 0; a < 16; a += 2) { /* per 128-bit lane q: elements 4q, 4q+1 (t[a]) and 4q+2, 4q+3 (t[a+1]) of rows a, a+1 */
        t[a] = _mm512_unpacklo_ps(r[a], r[a + 1]);
        t[a + 1] = _mm512_unpackhi_ps(r[a], r[a + 1]);
    }
    for (int a = 0; a < 16; a += 4) { /* r[a + e], lane q: element 4q+e of rows a..a+3 */
        r[a] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[a]), _mm512_castps_pd(t[a + 2])));
        r[a + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[a]), _mm512_castps_pd(t[a + 2])));
        r[a + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[a + 1]), _mm512_castps_pd(t[a + 3])));
        r[a + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[a + 1]), _mm512_castps_pd(t[a + 3])));
    }
    for (int e = 0; e < 4; e++) { /* gather lane q of r[e], r[4+e], r[8+e], r[12+e]: element 4q+e of all 16 rows */
        const __m512 even01 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88), odd01 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xdd);
        const __m512 even23 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88), odd23 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xdd);
        t[e] = _mm512_shuffle_f32x4(even01, even23, 0x88);
        t[8 + e] = _mm512_shuffle_f32x4(even01, even23, 0xdd);
        t[4 + e] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(odd01, odd23, 0xdd);
    }
    for (int a = 0; a < 16; a++) r[a] = t[a];
}

/* The micro-kernel: `tokens` (1..12) activation rows (row r at x + r * ldx) times a dequantized panel of `width`
 * (16 or 32) weight rows stored k-major (weight t of panel row a at p[t * width + a]); 12 x 2 accumulators, each
 * output summed over t in order in one lane. Per t: 2 panel loads and 12 broadcasts (folded into the FMAs) feed 24
 * FMAs. Outputs go to y[r * ldy + a] for a < rows; with `accumulate` the sums continue from the values there. */
QF_AVX512 static inline __attribute__((always_inline)) void qf512_gemm_tile(const float *p, int width, const float *x,
                                                                          int64_t k, int64_t ldx, int tokens, int rows,
                                                                          int accumulate, float *y, int64_t ldy) {
    const __mmask16 m0 = rows >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rows) - 1);
    const __mmask16 m1 = rows >= 32 ? (__mmask16)0xFFFF : rows <= 16 ? (__mmask16)0 : (__mmask16)((1u << (rows - 16)) - 1);
    __m512 acc[12][2];
    for (int r = 0; r < 12; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    if (accumulate)
        for (int r = 0; r < tokens; r++) {
            acc[r][0] = _mm512_maskz_loadu_ps(m0, y + r * ldy);
            if (width == 32) acc[r][1] = _mm512_maskz_loadu_ps(m1, y + r * ldy + 16);
        }
    /* Tokens 3q..3q+2 at base q + {0, 1, 2} * ldx: base + index * scale addresses, no per-token arithmetic. */
    const float *xa = x, *xb = x + 3 * ldx, *xc = x + 6 * ldx, *xd = x + 9 * ldx;
    if (width == 32) {
        for (int64_t t = 0; t < k; t++, xa++, xb++, xc++, xd++) {
            /* Opaque to the optimizer each step, so it cannot split the 12 addresses into 12 pointers (more than
             * the general registers, which spilled them): 4 pointers and one index. */
            __asm__("" : "+r"(xa), "+r"(xb), "+r"(xc), "+r"(xd), "+r"(ldx));
            const __m512 b0 = _mm512_load_ps(p + 32 * t), b1 = _mm512_load_ps(p + 32 * t + 16);
            for (int r = 0; r < tokens; r++) {
                const float *base = r < 3 ? xa : r < 6 ? xb : r < 9 ? xc : xd;
                const __m512 a = _mm512_set1_ps(base[(r % 3) * ldx]);
                acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            }
        }
    } else {
        for (int64_t t = 0; t < k; t++, xa++, xb++, xc++, xd++) {
            __asm__("" : "+r"(xa), "+r"(xb), "+r"(xc), "+r"(xd), "+r"(ldx));
            const __m512 b0 = _mm512_load_ps(p + 16 * t);
            for (int r = 0; r < tokens; r++) {
                const float *base = r < 3 ? xa : r < 6 ? xb : r < 9 ? xc : xd;
                acc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(base[(r % 3) * ldx]), b0, acc[r][0]);
            }
        }
    }
    for (int r = 0; r < tokens; r++) {
        _mm512_mask_storeu_ps(y + r * ldy, m0, acc[r][0]);
        if (width == 32) _mm512_mask_storeu_ps(y + r * ldy + 16, m1, acc[r][1]);
    }
}

/* Every token of x against one panel: tiles of 12 tokens, then the rest (each tail size a literal, so the
 * always-inline tile keeps its accumulators in registers). */
QF_AVX512 static void qf512_gemm_panel(const float *p, int width, const float *x, int64_t n, int64_t k, int64_t ldx,
                                       int rows, int accumulate, float *y, int64_t ldy) {
    int64_t i = 0;
#define QF512_TILE(T) qf512_gemm_tile(p, width, x + i * ldx, k, ldx, T, rows, accumulate, y + i * ldy, ldy)
    for (; i + 12 <= n; i += 12) QF512_TILE(12);
    switch (n - i) {
    case 11: QF512_TILE(11); break;
    case 10: QF512_TILE(10); break;
    case 9: QF512_TILE(9); break;
    case 8: QF512_TILE(8); break;
    case 7: QF512_TILE(7); break;
    case 6: QF512_TILE(6); break;
    case 5: QF512_TILE(5); break;
    case 4: QF512_TILE(4); break;
    case 3: QF512_TILE(3); break;
    case 2: QF512_TILE(2); break;
    case 1: QF512_TILE(1); break;
    default: break;
    }
#undef QF512_TILE
}

/* Rows from which the AVX-512 kernels take the GEMM (measured on Sapphire Rapids, 2304 x 1536 Q4_0, 2 threads: the
 * 4 x 4 tiles are as fast up to 12 rows, the GEMM 1.1x at 16, 1.4x at 24). */
#ifndef QF512_GEMM_MIN
#define QF512_GEMM_MIN 16
#endif

/* Weights per row of one k-block of the AVX-512 GEMM (a multiple of 32): 32 rows x 1536 floats = 192 KB, an L2-resident
 * panel that each tile streams through. Long blocks measured best on Sapphire Rapids (2 threads, 512 tokens, k = 6144:
 * about 290 GFLOP/s at 1536 against 190 at 512); they give the hardware prefetchers long activation streams and cut
 * each tile's per-block reload of its outputs. */
#ifndef QF512_GEMM_KC
#define QF512_GEMM_KC 1536
#endif

/* Long prefill at AVX-512 (n >= QF512_GEMM_MIN): as QF_DEFINE_AVX2_GEMM, with 32-row panels (two 16-row halves,
 * each group dequantized into `stage` and transposed 16 x 16). Rows past j1 repeat the last row and are not stored.
 * Each output is one in-order f32 sum over k. Returns 0 (having done nothing) when the panel cannot be allocated. */
#define QF_DEFINE_AVX512_GEMM(NAME, DEQ, BLOCK_BYTES, BLOCK)                                                 \
    QF_AVX512 static int NAME(const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,   \
                              float *y, int64_t ldy) {                                                      \
        const size_t row_bytes = (size_t)(k / (BLOCK)) * (BLOCK_BYTES);                                     \
        float *panel = (float *)aligned_alloc(64, (size_t)QF512_GEMM_KC * 32 * sizeof(float));              \
        if (!panel) return 0;                                                                               \
        _Alignas(64) float stage[16 * 32];                                                                  \
        for (int64_t j = j0; j < j1; j += 32) {                                                             \
            const int rows = j1 - j < 32 ? (int)(j1 - j) : 32, width = rows > 16 ? 32 : 16;                 \
            for (int64_t t0 = 0; t0 < k; t0 += QF512_GEMM_KC) {                                             \
                const int64_t kc = k - t0 < QF512_GEMM_KC ? k - t0 : QF512_GEMM_KC;                         \
                for (int h = 0; h < width / 16; h++) {                                                      \
                    const uint8_t *r[16];                                                                   \
                    for (int a = 0; a < 16; a++) {                                                          \
                        const int64_t row = j + 16 * h + a < j1 ? j + 16 * h + a : j1 - 1;                  \
                        r[a] = (const uint8_t *)w + (size_t)row * row_bytes;                                \
                    }                                                                                       \
                    for (int64_t g = t0 / 32; g < (t0 + kc) / 32; g++) {                                    \
                        for (int a = 0; a < 16; a++) {                                                      \
                            __m512 lo, hi;                                                                  \
                            DEQ(r[a], g, &lo, &hi);                                                         \
                            _mm512_store_ps(stage + a * 32, lo);                                            \
                            _mm512_store_ps(stage + a * 32 + 16, hi);                                       \
                        }                                                                                   \
                        for (int v = 0; v < 2; v++) {                                                       \
                            __m512 c[16];                                                                   \
                            for (int a = 0; a < 16; a++) c[a] = _mm512_load_ps(stage + a * 32 + 16 * v);    \
                            qf_transpose16(c);                                                              \
                            for (int l = 0; l < 16; l++)                                                    \
                                _mm512_store_ps(panel + (g * 32 - t0 + 16 * v + l) * width + 16 * h, c[l]); \
                        }                                                                                   \
                    }                                                                                       \
                }                                                                                           \
                qf512_gemm_panel(panel, width, x + t0, n, kc, k, rows, t0 > 0, y + j, ldy);                 \
            }                                                                                               \
        }                                                                                                   \
        free(panel);                                                                                        \
        return 1;                                                                                           \
    }

QF_DEFINE_AVX512_GEMM(qf_avx512_q4_0_gemm, qf_q4_0, 18, 32)
QF_DEFINE_AVX512_GEMM(qf_avx512_q4_1_gemm, qf_q4_1, 20, 32)
QF_DEFINE_AVX512_GEMM(qf_avx512_q4_1p_gemm, qf_q4_1p, 36, 64)
QF_DEFINE_AVX512_GEMM(qf_avx512_q8_0_gemm, qf_q8_0, 34, 32)
QF_DEFINE_AVX512_GEMM(qf_avx512_iq4_nl_gemm, qf_iq4_nl, 18, 32)
QF_DEFINE_AVX512_GEMM(qf_avx512_q5_0_gemm, qf_q5_0, 22, 32)
QF_DEFINE_AVX512_GEMM(qf_avx512_q5_1_gemm, qf_q5_1, 24, 32)
QF_DEFINE_AVX512_GEMM(qf_avx512_q4_k_gemm, qf_q4_k, 144, 256)
QF_DEFINE_AVX512_GEMM(qf_avx512_q5_k_gemm, qf_q5_k, 176, 256)
QF_DEFINE_AVX512_GEMM(qf_avx512_q6_k_gemm, qf_q6_k, 210, 256)
QF_DEFINE_AVX512_GEMM(qf_avx512_q2_k_gemm, qf_q2_k, 84, 256)
QF_DEFINE_AVX512_GEMM(qf_avx512_q3_k_gemm, qf_q3_k, 110, 256)

/* ------------------------------------------------------------------ 16-bit activations (prefill at AVX-512 VNNI)
 * The exact mode's long passes on CPUs with AVX-512 VNNI: activations are rounded once per matmul to 16-bit integers
 * with an f32 scale per 32-block (mlk_qf32_prepare), the weights' integer codes are unpacked once per call into
 * k-pair-interleaved int16 panels, and `vpdpwssd` multiplies 32 pairs per instruction: twice the multiply-adds of an
 * f32 FMA. Each 32-block's products sum exactly in int32; the block's weight scale times its activation scale turns
 * that into f32 once per block, and Q4_1's minimums add m * (the block's f32 sum of x). The only rounding beyond
 * f32 is each activation's to 1/65534 of its block's largest magnitude. */

#define QF16_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

/* Rows from which the 16-bit GEMM runs, and weights per row of one of its k-blocks (96 KB of int16 panel for 32 rows). */
#ifndef QF16_GEMM_MIN
#define QF16_GEMM_MIN 16
#endif
#ifndef QF16_KC
#define QF16_KC 1536
#endif

/* Bytes of one prepared row of k activations: int16 q[k], then f32 d[k / 32], then f32 s[k / 32] (the f32 sum of the
 * block's x). */
static size_t qf16_row_bytes(int64_t k) { return (size_t)k * 2 + (size_t)(k / 32) * 8; }

QF16_AVX512 static void qf16_prepare(const float *x, int64_t n, int64_t k, uint8_t *out) {
    const size_t rb = qf16_row_bytes(k);
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * k;
        int16_t *q = (int16_t *)(out + (size_t)i * rb);
        float *d = (float *)(out + (size_t)i * rb + (size_t)k * 2), *s = d + k / 32;
        for (int64_t b = 0; b < k / 32; b++) {
            const __m512 lo = _mm512_loadu_ps(xi + 32 * b), hi = _mm512_loadu_ps(xi + 32 * b + 16);
            const float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
            const __m512 inv = _mm512_set1_ps(m > 0 ? 32767.0f / m : 0.0f);
            d[b] = m / 32767.0f;
            s[b] = _mm512_reduce_add_ps(_mm512_add_ps(lo, hi));
            /* round to nearest even (the default mode); |x * inv| <= 32767 up to rounding, and the packs saturate */
            _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(lo, inv))));
            _mm256_storeu_si256((__m256i *)(q + 32 * b + 16), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(hi, inv))));
        }
    }
}

/* Integer codes of 32-block g of a row as 32 int16 in weight order (so dword i holds weights 2i and 2i + 1), its
 * scale in *d and (Q4_1) its minimum in *m: Q4_0 w = d * code (code = nibble - 8), Q4_1 w = d * code + m, Q8_0
 * w = d * code. */
/* The 32 nibbles of a 4-bit block's 16 bytes as int16 in weight order: low nibbles (weights 0..15), then high. */
QF16_AVX512 static inline __m512i qf16_nibbles(const uint8_t *qs) {
    const __m256i y = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)qs));
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(y, _mm256_set1_epi16(15))), _mm256_srli_epi16(y, 4), 1);
}
QF16_AVX512 static inline __m512i qf16_q4_0(const uint8_t *row, int64_t g, float *d, float *m) {
    const uint8_t *b = row + g * 18;
    *d = qf_half(b);
    *m = 0;
    return _mm512_sub_epi16(qf16_nibbles(b + 2), _mm512_set1_epi16(8));
}
QF16_AVX512 static inline __m512i qf16_q4_1(const uint8_t *row, int64_t g, float *d, float *m) {
    const uint8_t *b = row + g * 20;
    *d = qf_half(b);
    *m = qf_half(b + 2);
    return qf16_nibbles(b + 4);
}
QF16_AVX512 static inline __m512i qf16_q8_0(const uint8_t *row, int64_t g, float *d, float *m) {
    const uint8_t *b = row + g * 34;
    *d = qf_half(b);
    *m = 0;
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + 2)));
}

/* The micro-kernel: `tokens` (1..6) prepared rows times a 32-row panel of `blocks` 32-blocks. Token r's int16
 * activations start at xq + r * ldx bytes, its block scales at xd + r * ldx bytes (f32, one per block) and its block
 * sums `sums` floats after them. p holds per k-pair 32 dwords (rows 0..31, each a pair of int16 codes); ds[b * 32 + a]
 * and ms[b * 32 + a] are row a's scale and minimum in block b. Each block's products sum in int32, then
 * acc += float(sum) * (d_w * d_x) (+ m_w * s_x with minimums); outputs of rows < `rows` go to y[r * ldy + a],
 * continuing from the values there with `accumulate`. */
QF16_AVX512 static inline __attribute__((always_inline)) void qf16_tile(const int32_t *p, const float *ds, const float *ms,
                                                                      int64_t blocks, const uint8_t *xq, const uint8_t *xd,
                                                                      int64_t sums, int64_t ldx, int tokens, int rows,
                                                                      int accumulate, float *y, int64_t ldy) {
    const __mmask16 m0 = rows >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rows) - 1);
    const __mmask16 m1 = rows >= 32 ? (__mmask16)0xFFFF : rows <= 16 ? (__mmask16)0 : (__mmask16)((1u << (rows - 16)) - 1);
    __m512 acc[6][2];
    for (int r = 0; r < 6; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    if (accumulate)
        for (int r = 0; r < tokens; r++) {
            acc[r][0] = _mm512_maskz_loadu_ps(m0, y + r * ldy);
            acc[r][1] = _mm512_maskz_loadu_ps(m1, y + r * ldy + 16);
        }
    /* Tokens 3q..3q+2 at base q + {0, 1, 2} * ldx: base + index * scale addresses. */
    const uint8_t *xa = xq, *xb = xq + 3 * ldx;
    for (int64_t b = 0; b < blocks; b++, xa += 64, xb += 64) {
        __m512i sum[6][2];
        for (int r = 0; r < 6; r++) sum[r][0] = sum[r][1] = _mm512_setzero_si512();
        const int32_t *pb = p + b * 16 * 32;
        /* Opaque to the optimizer, so it keeps 2 pointers and one index instead of splitting 6 addresses. */
        __asm__("" : "+r"(xa), "+r"(xb), "+r"(ldx));
        for (int t = 0; t < 16; t++) {
            const __m512i b0 = _mm512_load_si512(pb + 32 * t), b1 = _mm512_load_si512(pb + 32 * t + 16);
            for (int r = 0; r < tokens; r++) {
                const uint8_t *base = r < 3 ? xa : xb;
                int32_t pair;
                memcpy(&pair, base + (r % 3) * ldx + 4 * t, 4);
                const __m512i a = _mm512_set1_epi32(pair);
                sum[r][0] = _mm512_dpwssd_epi32(sum[r][0], a, b0);
                sum[r][1] = _mm512_dpwssd_epi32(sum[r][1], a, b1);
            }
        }
        const __m512 d0 = _mm512_load_ps(ds + 32 * b), d1 = _mm512_load_ps(ds + 32 * b + 16);
        for (int r = 0; r < tokens; r++) {
            const float *dx = (const float *)(xd + r * ldx) + b;
            const __m512 s = _mm512_set1_ps(*dx);
            acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[r][0]), _mm512_mul_ps(d0, s), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[r][1]), _mm512_mul_ps(d1, s), acc[r][1]);
        }
        if (ms) {
            const __m512 n0 = _mm512_load_ps(ms + 32 * b), n1 = _mm512_load_ps(ms + 32 * b + 16);
            for (int r = 0; r < tokens; r++) {
                const __m512 s = _mm512_set1_ps(((const float *)(xd + r * ldx))[sums + b]);
                acc[r][0] = _mm512_fmadd_ps(n0, s, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(n1, s, acc[r][1]);
            }
        }
    }
    for (int r = 0; r < tokens; r++) {
        _mm512_mask_storeu_ps(y + r * ldy, m0, acc[r][0]);
        _mm512_mask_storeu_ps(y + r * ldy + 16, m1, acc[r][1]);
    }
}

/* Every token against one panel: tiles of 6 tokens, then the rest (each tail size a literal, so the always-inline
 * tile keeps its accumulators in registers). */
QF16_AVX512 static void qf16_panel(const int32_t *p, const float *ds, const float *ms, int64_t blocks, const uint8_t *xq,
                                   const uint8_t *xd, int64_t sums, int64_t ldx, int64_t n, int rows, int accumulate,
                                   float *y, int64_t ldy) {
    int64_t i = 0;
#define QF16_TILE(T) qf16_tile(p, ds, ms, blocks, xq + i * ldx, xd + i * ldx, sums, ldx, T, rows, accumulate, y + i * ldy, ldy)
    for (; i + 6 <= n; i += 6) QF16_TILE(6);
    switch (n - i) {
    case 5: QF16_TILE(5); break;
    case 4: QF16_TILE(4); break;
    case 3: QF16_TILE(3); break;
    case 2: QF16_TILE(2); break;
    case 1: QF16_TILE(1); break;
    default: break;
    }
#undef QF16_TILE
}

/* The 16-bit GEMM for one weight type: rows [j0, j1) of w against n prepared rows at xp (mlk_qf32_prepare's
 * layout), in 32-row panels (rows past j1 repeat the last row and are not stored) of QF16_KC-weight k-blocks, tiles of
 * 6 tokens. Returns 0 (having done nothing) when the panel cannot be allocated. */
#define QF16_DEFINE_GEMM(NAME, CODES, BLOCK_BYTES, HAS_MIN)                                                  \
    QF16_AVX512 static int NAME(const uint8_t *xp, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1, \
                                float *y, int64_t ldy) {                                                    \
        const size_t row_bytes = (size_t)(k / 32) * (BLOCK_BYTES);                                          \
        const int64_t ldx = (int64_t)qf16_row_bytes(k);                                                     \
        int32_t *panel = (int32_t *)aligned_alloc(64, (size_t)QF16_KC / 2 * 32 * sizeof(int32_t) + (size_t)QF16_KC / 32 * 64 * sizeof(float)); \
        if (!panel) return 0;                                                                               \
        float *ds = (float *)(panel + QF16_KC / 2 * 32), *ms = ds + QF16_KC;                                \
        for (int64_t j = j0; j < j1; j += 32) {                                                             \
            const int rows = j1 - j < 32 ? (int)(j1 - j) : 32;                                              \
            for (int64_t t0 = 0; t0 < k; t0 += QF16_KC) {                                                   \
                const int64_t kc = k - t0 < QF16_KC ? k - t0 : QF16_KC, blocks = kc / 32;                   \
                for (int h = 0; h < 2; h++) {                                                               \
                    const uint8_t *r[16];                                                                   \
                    for (int a = 0; a < 16; a++) {                                                          \
                        const int64_t row = j + 16 * h + a < j1 ? j + 16 * h + a : j1 - 1;                  \
                        r[a] = (const uint8_t *)w + (size_t)row * row_bytes;                                \
                    }                                                                                       \
                    for (int64_t b = 0; b < blocks; b++) {                                                  \
                        __m512 c[16];                                                                       \
                        for (int a = 0; a < 16; a++)                                                        \
                            c[a] = _mm512_castsi512_ps(CODES(r[a], t0 / 32 + b, &ds[b * 32 + 16 * h + a], &ms[b * 32 + 16 * h + a])); \
                        qf_transpose16(c);                                                                  \
                        for (int l = 0; l < 16; l++) _mm512_store_ps((float *)panel + (b * 16 + l) * 32 + 16 * h, c[l]); \
                    }                                                                                       \
                }                                                                                           \
                qf16_panel(panel, ds, (HAS_MIN) ? ms : NULL, blocks, xp + 2 * t0, xp + 2 * k + 4 * (t0 / 32), k / 32, ldx, \
                           n, rows, t0 > 0, y + j, ldy);                                                    \
            }                                                                                               \
        }                                                                                                   \
        free(panel);                                                                                        \
        return 1;                                                                                           \
    }

QF16_DEFINE_GEMM(qf16_q4_0_gemm, qf16_q4_0, 18, 0)
QF16_DEFINE_GEMM(qf16_q4_1_gemm, qf16_q4_1, 20, 1)
QF16_DEFINE_GEMM(qf16_q8_0_gemm, qf16_q8_0, 34, 0)


/* ------------------------------------------------------------------ AVX2: every type, 4 weight rows x 2 inputs
 * Each 32-weight group is dequantized into four 8-wide vectors with ggml's float operations. */

QF_AVX2 static inline float qf_half2(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Nibbles of 16 bytes as 32 int32 lanes in 4 vectors: w[0..7], w[8..15] (low nibbles), w[16..23], w[24..31]. Two
 * zero-extending loads of 8 bytes, then a mask and a shift each: 2 shuffle-port operations instead of 6. */
QF_AVX2 static inline void qf_nibbles(const uint8_t *qs, __m256i out[4]) {
    const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));
    const __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)));
    const __m256i mask = _mm256_set1_epi32(15);
    out[0] = _mm256_and_si256(v0, mask);
    out[1] = _mm256_and_si256(v1, mask);
    out[2] = _mm256_srli_epi32(v0, 4);
    out[3] = _mm256_srli_epi32(v1, 4);
}

/* The f16 pair (a, b) at p as two 8-lane broadcasts: one 32-bit broadcast load, one conversion, two in-lane
 * permutes (the same floats as converting each half on its own). For a lone f16 (Q4_0) b is the next block byte
 * pair and is ignored. */
QF_AVX2 static inline void qf_half_pair(const uint8_t *p, __m256 *a, __m256 *b) {
    const __m256 pair = _mm256_cvtph_ps(_mm_castps_si128(_mm_broadcast_ss((const float *)p)));
    *a = _mm256_permute_ps(pair, 0x00);
    if (b) *b = _mm256_permute_ps(pair, 0x55);
}

QF_AVX2 static inline void qf2_q4_0(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + g * 18;
    __m256 d;
    qf_half_pair(b, &d, NULL);
    __m256i q[4];
    qf_nibbles(b + 2, q);
    const __m256i eight = _mm256_set1_epi32(8);
    for (int v = 0; v < 4; v++) w[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[v], eight)), d);
}

QF_AVX2 static inline void qf2_q4_1(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + g * 20;
    __m256 d, m;
    qf_half_pair(b, &d, &m);
    __m256i q[4];
    qf_nibbles(b + 4, q);
    for (int v = 0; v < 4; v++) w[v] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[v]), d), m);
}

/* MLK_Q4_1_PAIRS_ROWS: group g's d and m are its pair's; its nibbles are the pair's 16 bytes g % 2. */
QF_AVX2 static inline void qf2_q4_1p(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + (g >> 1) * 36;
    __m256 d, m;
    qf_half_pair(b, &d, &m);
    __m256i q[4];
    qf_nibbles(b + 4 + (g & 1) * 16, q);
    for (int v = 0; v < 4; v++) w[v] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[v]), d), m);
}

QF_AVX2 static inline void qf2_q8_0(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + g * 34;
    const __m256 d = _mm256_set1_ps(qf_half2(b));
    for (int v = 0; v < 4; v++)
        w[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * v)))), d);
}

/* Q5_0 / Q5_1: the 32 five-bit codes as bytes, in weight order. The nibbles of 16 bytes (low: weights 0..15, high:
 * 16..31) get bit 4 from qh, where weight i's bit is bit i: vpshufb copies qh byte i/8 to byte lane i, and one
 * compare with the lane's bit mask sets the byte where the bit is 1. */
QF_AVX2 static inline __m256i qf_q5_bytes(const uint8_t *qs, uint32_t qh) {
    const __m128i bytes = _mm_loadu_si128((const __m128i *)qs), mask = _mm_set1_epi8(15);
    const __m256i nibbles = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                               _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_or_si256(nibbles, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

/* Bytes 8v..8v+7 of `codes` as eight int32 lanes, sign-extended (Q5_0's codes - 16) or zero-extended (Q5_1's). */
QF_AVX2 static inline __m256i qf_bytes_to_i32(__m256i codes, int v, int is_signed) {
    const __m128i half = v < 2 ? _mm256_castsi256_si128(codes) : _mm256_extracti128_si256(codes, 1);
    const __m128i eight = (v & 1) ? _mm_srli_si128(half, 8) : half;
    return is_signed ? _mm256_cvtepi8_epi32(eight) : _mm256_cvtepu8_epi32(eight);
}

QF_AVX2 static inline void qf2_q5_0(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + g * 22;
    const __m256 d = _mm256_set1_ps(qf_half2(b));
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const __m256i codes = _mm256_sub_epi8(qf_q5_bytes(b + 6, qh), _mm256_set1_epi8(16)); /* -16 ... 15 */
    for (int v = 0; v < 4; v++) w[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(qf_bytes_to_i32(codes, v, 1)), d);
}

QF_AVX2 static inline void qf2_q5_1(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + g * 24;
    const __m256 d = _mm256_set1_ps(qf_half2(b)), m = _mm256_set1_ps(qf_half2(b + 2));
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const __m256i codes = qf_q5_bytes(b + 8, qh);
    for (int v = 0; v < 4; v++) w[v] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(qf_bytes_to_i32(codes, v, 0)), d), m);
}

/* Eight bytes as eight int32 lanes. */
QF_AVX2 static inline __m256i qf_u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* Lanes shifted right by a run-time count. */
QF_AVX2 static inline __m256i qf_srl(__m256i v, int count) { return _mm256_srl_epi32(v, _mm_cvtsi32_si128(count)); }

/* IQ4_NL: w = d * kvalues_iq4nl[nibble]; the 16 levels are two 8-entry vpermps tables chosen by the nibble's bit 3. */
QF_AVX2 static inline void qf2_iq4_nl(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + g * 18;
    const __m256 d = _mm256_set1_ps(qf_half2(b));
    const __m256 low = _mm256_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10);
    const __m256 high = _mm256_setr_ps(1, 13, 25, 38, 53, 69, 89, 113);
    __m256i q[4];
    qf_nibbles(b + 2, q);
    for (int v = 0; v < 4; v++) {
        const __m256 upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(q[v], _mm256_set1_epi32(7)));
        const __m256 level = _mm256_blendv_ps(_mm256_permutevar8x32_ps(low, q[v]), _mm256_permutevar8x32_ps(high, q[v]), upper);
        w[v] = _mm256_mul_ps(d, level);
    }
}

/* The K-quants, one 32-weight group g of a 256-weight super-block at a time, with the AVX-512 dequantizers' operation
 * order (so the weights are the same floats): see qf_q4_k ... qf_q6_k above for the layouts. */
QF_AVX2 static inline void qf2_q4_k(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + (g >> 3) * 144;
    const int j = (int)(g & 7);
    int sc, mn;
    mlk_q4k_scale_min(j, b + 4, &sc, &mn);
    const __m256 d = _mm256_set1_ps(qf_half2(b) * (float)sc), m = _mm256_set1_ps(qf_half2(b + 2) * (float)mn);
    const uint8_t *qs = b + 16 + (j >> 1) * 32;
    const int shift = (j & 1) ? 4 : 0;
    for (int v = 0; v < 4; v++) {
        const __m256i code = _mm256_and_si256(qf_srl(qf_u8x8(qs + 8 * v), shift), _mm256_set1_epi32(15));
        w[v] = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(code)), m);
    }
}

QF_AVX2 static inline void qf2_q5_k(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + (g >> 3) * 176;
    const int j = (int)(g & 7);
    int sc, mn;
    mlk_q4k_scale_min(j, b + 4, &sc, &mn);
    const __m256 d = _mm256_set1_ps(qf_half2(b) * (float)sc), m = _mm256_set1_ps(qf_half2(b + 2) * (float)mn);
    const uint8_t *qs = b + 48 + (j >> 1) * 32, *qh = b + 16;
    const int shift = (j & 1) ? 4 : 0;
    for (int v = 0; v < 4; v++) {
        const __m256i low = _mm256_and_si256(qf_srl(qf_u8x8(qs + 8 * v), shift), _mm256_set1_epi32(15));
        const __m256i bit = _mm256_and_si256(qf_srl(qf_u8x8(qh + 8 * v), j), _mm256_set1_epi32(1));
        const __m256i code = _mm256_or_si256(low, _mm256_slli_epi32(bit, 4));
        w[v] = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(code)), m);
    }
}

QF_AVX2 static inline void qf2_q6_k(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + (g >> 3) * 210;
    const int within = (int)(g & 7), half = within >> 2, which = within & 3;
    const uint8_t *ql = b + half * 64 + ((which & 1) ? 32 : 0), *qh = b + 128 + half * 32;
    const int8_t *scales = (const int8_t *)(b + 192) + half * 8 + which * 2;
    const float d = qf_half2(b + 208);
    const int low_shift = (which >= 2) ? 4 : 0, high_shift = which * 2;
    for (int v = 0; v < 4; v++) {
        const __m256i low = _mm256_and_si256(qf_srl(qf_u8x8(ql + 8 * v), low_shift), _mm256_set1_epi32(15));
        const __m256i high = _mm256_and_si256(qf_srl(qf_u8x8(qh + 8 * v), high_shift), _mm256_set1_epi32(3));
        const __m256i code = _mm256_sub_epi32(_mm256_or_si256(low, _mm256_slli_epi32(high, 4)), _mm256_set1_epi32(32));
        w[v] = _mm256_mul_ps(_mm256_set1_ps(d * (float)scales[v >> 1]), _mm256_cvtepi32_ps(code));
    }
}

QF_AVX2 static inline void qf2_q2_k(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + (g >> 3) * 84;
    const int u = (int)(g & 7);
    const float d = qf_half2(b + 80), dmin = qf_half2(b + 82);
    const uint8_t *qs = b + 16 + 32 * (u >> 2);
    const int shift = 2 * (u & 3);
    for (int v = 0; v < 4; v++) {
        const uint8_t sc = b[2 * u + (v >> 1)];
        const __m256i code = _mm256_and_si256(qf_srl(qf_u8x8(qs + 8 * v), shift), _mm256_set1_epi32(3));
        w[v] = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(d * (float)(sc & 0xF)), _mm256_cvtepi32_ps(code)),
                             _mm256_set1_ps(dmin * (float)(sc >> 4)));
    }
}

QF_AVX2 static inline void qf2_q3_k(const uint8_t *row, int64_t g, __m256 w[4]) {
    const uint8_t *b = row + (g >> 3) * 110;
    const int u = (int)(g & 7);
    const float d = qf_half2(b + 108);
    const uint8_t *qs = b + 32 + 32 * (u >> 2), *sc = b + 96;
    const int shift = 2 * (u & 3);
    for (int v = 0; v < 4; v++) {
        const int scale = mlk_q3k_scale(2 * u + (v >> 1), sc);
        const __m256i q = _mm256_and_si256(qf_srl(qf_u8x8(qs + 8 * v), shift), _mm256_set1_epi32(3));
        const __m256i h = _mm256_and_si256(qf_srl(qf_u8x8(b + 8 * v), u), _mm256_set1_epi32(1));
        const __m256i code = _mm256_sub_epi32(_mm256_or_si256(q, _mm256_slli_epi32(h, 2)), _mm256_set1_epi32(4));
        w[v] = _mm256_mul_ps(_mm256_set1_ps(d * (float)scale), _mm256_cvtepi32_ps(code));
    }
}

QF_AVX2 static inline float qf_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The four sums of v[0..3], each added up in qf_hsum256's order (so equal to it bit for bit). */
QF_AVX2 static inline __m128 qf_hsum4(const __m256 v[4]) {
    __m128 q0 = _mm_add_ps(_mm256_castps256_ps128(v[0]), _mm256_extractf128_ps(v[0], 1));
    __m128 q1 = _mm_add_ps(_mm256_castps256_ps128(v[1]), _mm256_extractf128_ps(v[1], 1));
    __m128 q2 = _mm_add_ps(_mm256_castps256_ps128(v[2]), _mm256_extractf128_ps(v[2], 1));
    __m128 q3 = _mm_add_ps(_mm256_castps256_ps128(v[3]), _mm256_extractf128_ps(v[3], 1));
    _MM_TRANSPOSE4_PS(q0, q1, q2, q3);
    return _mm_add_ps(_mm_add_ps(q0, q2), _mm_add_ps(q1, q3));
}

/* Prefill register tile: 4 dequantized weight rows (row a at p + a * k, 32-byte aligned) x `inputs` (1..3) activation
 * rows (row c at x + c * k), 12 accumulators over the whole of k in 8-float steps, outputs at y[c * ldy + a] for
 * a < rows. Per 8 weights 4 weight loads and 3 activation loads feed 12 FMAs. Each lane accumulates in k order and
 * the lanes are added as qf_hsum256 adds them: the same numbers as the one-input path. */
QF_AVX2 static inline __attribute__((always_inline)) void qf_tile4(const float *p, const float *x, int64_t k,
                                                                   int inputs, int rows, float *y, int64_t ldy) {
    __m256 acc[3][4];
    for (int c = 0; c < 3; c++)
        for (int a = 0; a < 4; a++) acc[c][a] = _mm256_setzero_ps();
    for (int64_t t = 0; t < k; t += 8) {
        __m256 xv[3];
        for (int c = 0; c < inputs; c++) xv[c] = _mm256_loadu_ps(x + c * k + t);
        for (int a = 0; a < 4; a++) {
            const __m256 wv = _mm256_load_ps(p + a * k + t);
            for (int c = 0; c < inputs; c++) acc[c][a] = _mm256_fmadd_ps(wv, xv[c], acc[c][a]);
        }
    }
    for (int c = 0; c < inputs; c++) {
        const __m128 s = qf_hsum4(acc[c]);
        if (rows == 4) {
            _mm_storeu_ps(y + c * ldy, s);
        } else {
            float sums[4];
            _mm_storeu_ps(sums, s);
            for (int a = 0; a < rows; a++) y[c * ldy + a] = sums[a];
        }
    }
}

/* r[0..7] transposed in place: lane l of r[a] becomes lane a of r[l]. */
QF_AVX2 static inline void qf_transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int a = 0; a < 8; a += 2) {
        t[a] = _mm256_unpacklo_ps(r[a], r[a + 1]);
        t[a + 1] = _mm256_unpackhi_ps(r[a], r[a + 1]);
    }
    for (int a = 0; a < 8; a += 4) {
        u[a] = _mm256_shuffle_ps(t[a], t[a + 2], 0x44);
        u[a + 1] = _mm256_shuffle_ps(t[a], t[a + 2], 0xEE);
        u[a + 2] = _mm256_shuffle_ps(t[a + 1], t[a + 3], 0x44);
        u[a + 3] = _mm256_shuffle_ps(t[a + 1], t[a + 3], 0xEE);
    }
    for (int a = 0; a < 4; a++) {
        r[a] = _mm256_permute2f128_ps(u[a], u[a + 4], 0x20);
        r[a + 4] = _mm256_permute2f128_ps(u[a], u[a + 4], 0x31);
    }
}

/* Prefill micro-kernel (the broadcast form of a BLIS-style f32 GEMM): `tokens` (1..6) activation rows (row r at
 * x + r * ldx, k values each) times a dequantized panel of `width` (8 or 16) weight rows stored k-major (weight t of
 * panel row a at p[t * width + a]); 6 x 2 accumulators, each output summed over t in order in one lane. Per t: 2
 * panel loads and 6 broadcasts feed 12 FMAs. Outputs go to y[r * ldy + a] for a < rows; with `accumulate` the sums
 * continue from the values already there (the next k-block of the same outputs, in the same order). */
QF_AVX2 static inline __attribute__((always_inline)) void qf_gemm_tile(const float *p, int width, const float *x,
                                                                       int64_t k, int64_t ldx, int tokens, int rows,
                                                                       int accumulate, float *y, int64_t ldy) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows - 8), lane);
    __m256 acc[6][2];
    for (int r = 0; r < 6; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    if (accumulate)
        for (int r = 0; r < tokens; r++) {
            acc[r][0] = _mm256_maskload_ps(y + r * ldy, m0);
            if (width == 16) acc[r][1] = _mm256_maskload_ps(y + r * ldy + 8, m1);
        }
    if (width == 16) {
        /* Tokens 0..2 at xa + {0, 1, 2} * ldx and 3..5 at xb + the same: base + index * scale addresses, no
         * per-token pointer arithmetic in the loop. */
        const float *xa = x, *xb = x + 3 * ldx;
        __asm__("" : "+r"(xb)); /* keep the compiler from rewriting xb as xa + 3 * ldx */
        for (int64_t t = 0; t < k; t++, xa++, xb++) {
            const __m256 b0 = _mm256_load_ps(p + 16 * t), b1 = _mm256_load_ps(p + 16 * t + 8);
            for (int r = 0; r < tokens; r++) {
                const __m256 a = _mm256_broadcast_ss((r < 3 ? xa : xb) + (r % 3) * ldx);
                acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
            }
        }
    } else {
        for (int64_t t = 0; t < k; t++) {
            const __m256 b0 = _mm256_load_ps(p + 8 * t);
            for (int r = 0; r < tokens; r++) acc[r][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + r * ldx + t), b0, acc[r][0]);
        }
    }
    for (int r = 0; r < tokens; r++) {
        if (rows == width) {
            _mm256_storeu_ps(y + r * ldy, acc[r][0]);
            if (width == 16) _mm256_storeu_ps(y + r * ldy + 8, acc[r][1]);
        } else {
            _mm256_maskstore_ps(y + r * ldy, m0, acc[r][0]);
            if (width == 16) _mm256_maskstore_ps(y + r * ldy + 8, m1, acc[r][1]);
        }
    }
}

/* Every token of x (n rows, ldx apart; k weights from each) against one panel: tiles of 6 tokens, then the rest
 * (each tail size a literal, so the always-inline tile is compiled with its accumulators in registers). */
QF_AVX2 static void qf_gemm_panel(const float *p, int width, const float *x, int64_t n, int64_t k, int64_t ldx, int rows,
                                  int accumulate, float *y, int64_t ldy) {
    int64_t i = 0;
    for (; i + 6 <= n; i += 6) qf_gemm_tile(p, width, x + i * ldx, k, ldx, 6, rows, accumulate, y + i * ldy, ldy);
    switch (n - i) {
    case 5: qf_gemm_tile(p, width, x + i * ldx, k, ldx, 5, rows, accumulate, y + i * ldy, ldy); break;
    case 4: qf_gemm_tile(p, width, x + i * ldx, k, ldx, 4, rows, accumulate, y + i * ldy, ldy); break;
    case 3: qf_gemm_tile(p, width, x + i * ldx, k, ldx, 3, rows, accumulate, y + i * ldy, ldy); break;
    case 2: qf_gemm_tile(p, width, x + i * ldx, k, ldx, 2, rows, accumulate, y + i * ldy, ldy); break;
    case 1: qf_gemm_tile(p, width, x + i * ldx, k, ldx, 1, rows, accumulate, y + i * ldy, ldy); break;
    default: break;
    }
}

/* Weights per row of one k-block of the GEMM path (a multiple of 32; 16 rows x 256 floats = 16 KB). */
#ifndef QF_GEMM_KC
#define QF_GEMM_KC 256
#endif

/* Long prefill (n >= QF_GEMM_MIN) with 16-row panels in k-blocks of QF_GEMM_KC (16 KB of f32, so the panel stays
 * in L1 while every token reads it): each block is dequantized once per call (8 rows at a time into `stage`, then
 * transposed 8 x 8 into k-major order) and qf_gemm_tile runs all n tokens over it. Rows past j1 repeat the last row
 * and are not stored. Each output is one in-order f32 sum over k: the same products as the other paths, added in
 * another order (they agree to float rounding, not bit for bit). Returns 0 (having done nothing) when the panel
 * cannot be allocated. */
#define QF_DEFINE_AVX2_GEMM(NAME, DEQ, BLOCK_BYTES, BLOCK)                                                   \
    QF_AVX2 static int NAME(const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,     \
                            float *y, int64_t ldy) {                                                        \
        const size_t row_bytes = (size_t)(k / (BLOCK)) * (BLOCK_BYTES);                                     \
        float *panel = (float *)aligned_alloc(32, (size_t)QF_GEMM_KC * 16 * sizeof(float));                 \
        if (!panel) return 0;                                                                               \
        _Alignas(32) float stage[8 * 32];                                                                   \
        for (int64_t j = j0; j < j1; j += 16) {                                                             \
            const int rows = j1 - j < 16 ? (int)(j1 - j) : 16, width = rows > 8 ? 16 : 8;                   \
            for (int64_t t0 = 0; t0 < k; t0 += QF_GEMM_KC) {                                                \
                const int64_t kc = k - t0 < QF_GEMM_KC ? k - t0 : QF_GEMM_KC;                               \
                for (int h = 0; h < width / 8; h++) {                                                       \
                    const uint8_t *r[8];                                                                    \
                    for (int a = 0; a < 8; a++) {                                                           \
                        const int64_t row = j + 8 * h + a < j1 ? j + 8 * h + a : j1 - 1;                    \
                        r[a] = (const uint8_t *)w + (size_t)row * row_bytes;                                \
                    }                                                                                       \
                    for (int64_t g = t0 / 32; g < (t0 + kc) / 32; g++) {                                    \
                        for (int a = 0; a < 8; a++) {                                                       \
                            __m256 wv[4];                                                                   \
                            DEQ(r[a], g, wv);                                                               \
                            for (int v = 0; v < 4; v++) _mm256_store_ps(stage + a * 32 + 8 * v, wv[v]);     \
                        }                                                                                   \
                        for (int v = 0; v < 4; v++) {                                                       \
                            __m256 c[8];                                                                    \
                            for (int a = 0; a < 8; a++) c[a] = _mm256_load_ps(stage + a * 32 + 8 * v);      \
                            qf_transpose8(c);                                                               \
                            for (int l = 0; l < 8; l++)                                                     \
                                _mm256_store_ps(panel + (g * 32 - t0 + 8 * v + l) * width + 8 * h, c[l]);   \
                        }                                                                                   \
                    }                                                                                       \
                }                                                                                           \
                qf_gemm_panel(panel, width, x + t0, n, kc, k, rows, t0 > 0, y + j, ldy);                    \
            }                                                                                               \
        }                                                                                                   \
        free(panel);                                                                                        \
        return 1;                                                                                           \
    }

/* Rows from which the GEMM path pays for its transposes (measured on Zen 3: below 48 the 4 x 3 tiles are as fast). */
#ifndef QF_GEMM_MIN
#define QF_GEMM_MIN 48
#endif

/* Whether an AVX2 pass of n activation rows takes the GEMM: the one rule, for every type and the pairs layout. */
static inline int qf_avx2_uses_gemm(int64_t n) { return n >= QF_GEMM_MIN; }

/* BLOCK_BYTES: bytes of one block of BLOCK weights (32 for the legacy types, 256 for the K-quants' super-blocks); DEQ
 * dequantizes 32-weight group g of a row either way.
 * - 1 or 2 inputs (decode): tiles of 4 rows x 2 inputs, each group dequantized in registers as it is used.
 * - 3 or more (short prefill, small batches, below QF_GEMM_MIN; also every n if the GEMM cannot allocate its panel):
 *   each 4-row panel is dequantized once into f32 (4 * k floats, heap) and qf_tile4 multiplies it with the tokens 3
 *   at a time.
 * Both compute every output with the same operations in the same order, so a row's result does not depend on how
 * many rows share the call. NAME##_gemm (QF_DEFINE_AVX2_GEMM above) is the long-prefill kernel the dispatch picks
 * from QF_GEMM_MIN rows (MLK_KERNEL_AVX2_GEMM). */
#define QF_DEFINE_AVX2(NAME, DEQ, BLOCK_BYTES, BLOCK)                                                        \
    QF_DEFINE_AVX2_GEMM(NAME##_gemm, DEQ, BLOCK_BYTES, BLOCK)                                                        \
    QF_AVX2 static void NAME(const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,    \
                             float *y, int64_t ldy) {                                                       \
        const size_t row_bytes = (size_t)(k / (BLOCK)) * (BLOCK_BYTES);                                     \
        const int64_t groups = k / 32;                                                                      \
        const uint8_t *base = (const uint8_t *)w;                                                           \
        float *panel = n >= 3 ? (float *)aligned_alloc(32, (size_t)k * 4 * sizeof(float)) : NULL;           \
        if (panel) {                                                                                        \
            for (int64_t j = j0; j < j1; j += 4) {                                                          \
                const int rows = j1 - j < 4 ? (int)(j1 - j) : 4;                                            \
                for (int a = 0; a < 4; a++) {                                                               \
                    const uint8_t *r = base + (size_t)(j + (a < rows ? a : 0)) * row_bytes;                 \
                    for (int64_t g = 0; g < groups; g++) {                                                  \
                        __m256 wv[4];                                                                       \
                        _mm_prefetch((const char *)(r + g * 32 / (BLOCK) * (BLOCK_BYTES) + 8 * row_bytes), _MM_HINT_T0); \
                        DEQ(r, g, wv);                                                                      \
                        for (int v = 0; v < 4; v++) _mm256_store_ps(panel + a * k + g * 32 + 8 * v, wv[v]); \
                    }                                                                                       \
                }                                                                                           \
                int64_t i = 0;                                                                              \
                for (; i + 3 <= n; i += 3) qf_tile4(panel, x + i * k, k, 3, rows, y + i * ldy + j, ldy);    \
                if (n - i == 2) qf_tile4(panel, x + i * k, k, 2, rows, y + i * ldy + j, ldy);              \
                else if (n - i == 1) qf_tile4(panel, x + i * k, k, 1, rows, y + i * ldy + j, ldy);         \
            }                                                                                               \
            free(panel);                                                                                    \
            return;                                                                                         \
        }                                                                                                   \
        for (int64_t j = j0; j < j1; j += 4) {                                                              \
            const int rows = j1 - j < 4 ? (int)(j1 - j) : 4;                                                \
            const uint8_t *r[4];                                                                            \
            for (int a = 0; a < 4; a++) r[a] = base + (size_t)(j + (a < rows ? a : 0)) * row_bytes;         \
            for (int64_t i = 0; i < n; i += 2) {                                                            \
                const int inputs = n - i < 2 ? 1 : 2;                                                       \
                __m256 acc[4][2];                                                                           \
                for (int a = 0; a < 4; a++) acc[a][0] = acc[a][1] = _mm256_setzero_ps();                    \
                for (int64_t g = 0; g < groups; g++) {                                                      \
                    for (int a = 0; a < 4; a++) {                                                           \
                        __m256 wv[4];                                                                       \
                        _mm_prefetch((const char *)(r[a] + g * 32 / (BLOCK) * (BLOCK_BYTES) + 8 * row_bytes), _MM_HINT_T0); \
                        DEQ(r[a], g, wv);                                                                   \
                        for (int c = 0; c < inputs; c++) {                                                  \
                            const float *xc = x + (i + c) * k + g * 32;                                     \
                            for (int v = 0; v < 4; v++)                                                     \
                                acc[a][c] = _mm256_fmadd_ps(wv[v], _mm256_loadu_ps(xc + 8 * v), acc[a][c]); \
                        }                                                                                   \
                    }                                                                                       \
                }                                                                                           \
                for (int a = 0; a < rows; a++)                                                              \
                    for (int c = 0; c < inputs; c++) y[(i + c) * ldy + j + a] = qf_hsum256(acc[a][c]);      \
            }                                                                                               \
        }                                                                                                   \
    }

QF_DEFINE_AVX2(qf_avx2_q4_0, qf2_q4_0, 18, 32)
QF_DEFINE_AVX2(qf_avx2_q4_1, qf2_q4_1, 20, 32)
QF_DEFINE_AVX2(qf_avx2_q4_1p, qf2_q4_1p, 36, 64)
QF_DEFINE_AVX2(qf_avx2_q8_0, qf2_q8_0, 34, 32)
QF_DEFINE_AVX2(qf_avx2_q5_0, qf2_q5_0, 22, 32)
QF_DEFINE_AVX2(qf_avx2_q5_1, qf2_q5_1, 24, 32)
QF_DEFINE_AVX2(qf_avx2_iq4_nl, qf2_iq4_nl, 18, 32)
QF_DEFINE_AVX2(qf_avx2_q4_k, qf2_q4_k, 144, 256)
QF_DEFINE_AVX2(qf_avx2_q5_k, qf2_q5_k, 176, 256)
QF_DEFINE_AVX2(qf_avx2_q6_k, qf2_q6_k, 210, 256)
QF_DEFINE_AVX2(qf_avx2_q2_k, qf2_q2_k, 84, 256)
QF_DEFINE_AVX2(qf_avx2_q3_k, qf2_q3_k, 110, 256)

typedef void (*qf_rows_fn)(const float *, int64_t, int64_t, const void *, int64_t, int64_t, float *, int64_t);
typedef int (*qf_gemm_fn)(const float *, int64_t, int64_t, const void *, int64_t, int64_t, float *, int64_t);

/* One weight type's (or layout's) kernels at one ISA level: the short path and the long-prefill GEMM. */
typedef struct {
    int wtype;
    qf_rows_fn rows;
    qf_gemm_fn gemm;
} qf_kernels;

/* The AVX2 kernels of every weight type and the Q4_1 pairs layout. */
static const qf_kernels qf_avx2_kernels[] = {
    {QF_Q4_0, qf_avx2_q4_0, qf_avx2_q4_0_gemm},       {QF_Q4_1, qf_avx2_q4_1, qf_avx2_q4_1_gemm},
    {MLK_Q4_1_PAIRS_ROWS, qf_avx2_q4_1p, qf_avx2_q4_1p_gemm}, {QF_Q8_0, qf_avx2_q8_0, qf_avx2_q8_0_gemm},
    {QF_Q5_0, qf_avx2_q5_0, qf_avx2_q5_0_gemm},       {QF_Q5_1, qf_avx2_q5_1, qf_avx2_q5_1_gemm},
    {QF_IQ4_NL, qf_avx2_iq4_nl, qf_avx2_iq4_nl_gemm}, {QF_Q4_K, qf_avx2_q4_k, qf_avx2_q4_k_gemm},
    {QF_Q5_K, qf_avx2_q5_k, qf_avx2_q5_k_gemm},       {QF_Q6_K, qf_avx2_q6_k, qf_avx2_q6_k_gemm},
    {QF_Q2_K, qf_avx2_q2_k, qf_avx2_q2_k_gemm},       {QF_Q3_K, qf_avx2_q3_k, qf_avx2_q3_k_gemm},
};

/* The AVX-512 kernels of every weight type and the Q4_1 pairs layout (the short path: register tiles). */
static const qf_kernels qf_avx512_kernels[] = {
    {QF_Q4_0, qf_avx512_q4_0, qf_avx512_q4_0_gemm},       {QF_Q4_1, qf_avx512_q4_1, qf_avx512_q4_1_gemm},
    {QF_Q8_0, qf_avx512_q8_0, qf_avx512_q8_0_gemm},       {QF_Q5_0, qf_avx512_q5_0, qf_avx512_q5_0_gemm},
    {QF_Q5_1, qf_avx512_q5_1, qf_avx512_q5_1_gemm},       {QF_IQ4_NL, qf_avx512_iq4_nl, qf_avx512_iq4_nl_gemm},
    {QF_Q4_K, qf_avx512_q4_k, qf_avx512_q4_k_gemm},       {QF_Q5_K, qf_avx512_q5_k, qf_avx512_q5_k_gemm},
    {QF_Q6_K, qf_avx512_q6_k, qf_avx512_q6_k_gemm},       {QF_Q2_K, qf_avx512_q2_k, qf_avx512_q2_k_gemm},
    {QF_Q3_K, qf_avx512_q3_k, qf_avx512_q3_k_gemm},       {MLK_Q4_1_PAIRS_ROWS, qf_avx512_q4_1p, qf_avx512_q4_1p_gemm},
};

/* Runs wtype's kernel from `table` (count entries): the GEMM when `gemm`, falling back to the short path if its
 * panel cannot be allocated. 0 for a type the table does not have. */
static int qf_run(const qf_kernels *table, size_t count, int wtype, int gemm, const float *x, int64_t n, int64_t k,
                  const void *w, int64_t j0, int64_t j1, float *y, int64_t ldy) {
    for (size_t i = 0; i < count; i++) {
        if (table[i].wtype != wtype) continue;
        if (gemm && table[i].gemm(x, n, k, w, j0, j1, y, ldy)) return 1;
        table[i].rows(x, n, k, w, j0, j1, y, ldy);
        return 1;
    }
    return 0;
}

#endif /* QF_X86 */

/* The kernel for wtype (a supported type or MLK_Q4_1_PAIRS_ROWS) and n rows at level isa (already clamped): the one
 * rule, which mlk_qf32_kernel reports and the dispatch runs. */
static mlk_kernel qf_kernel(mlk_isa isa, int wtype, int64_t n) {
#ifdef QF_X86
    const int avx512 = isa == MLK_ISA_AVX512 || isa == MLK_ISA_AVX512_VNNI;
    /* One row: q4_0, q4_1 (also in pairs) and q8_0 have dedicated AVX-512 GEMV kernels. */
    if (avx512 && n == 1 && (wtype == QF_Q4_0 || wtype == QF_Q4_1 || wtype == QF_Q8_0 || wtype == MLK_Q4_1_PAIRS_ROWS))
        return MLK_KERNEL_AVX512_GEMV;
    /* Every supported type (and the pairs layout) has an AVX-512 and an AVX2 kernel. */
    if (avx512) return n >= QF512_GEMM_MIN ? MLK_KERNEL_AVX512_GEMM : MLK_KERNEL_AVX512;
    if (isa == MLK_ISA_AVX2) return qf_avx2_uses_gemm(n) ? MLK_KERNEL_AVX2_GEMM : MLK_KERNEL_AVX2;
#endif
    (void)isa;
    (void)wtype;
    (void)n;
    return MLK_KERNEL_SCALAR;
}

mlk_kernel mlk_qf32_kernel(mlk_isa isa, int wtype, int64_t n) {
    if (!mlk_qf32_supported(wtype)) return MLK_KERNEL_NONE;
    if (isa > mlk_detect_isa()) isa = mlk_detect_isa();
    return qf_kernel(isa, wtype, n);
}

void mlk_qf32_matmul_rows_isa(mlk_isa isa, int wtype, const float *x, int64_t n, int64_t k, const void *w,
                              int64_t j0, int64_t j1, float *y, int64_t ldy) {
    const int pairs = wtype == MLK_Q4_1_PAIRS_ROWS;
    if (pairs ? k % 64 != 0 : !mlk_qf32_supported(wtype) || k % qf_block(wtype) != 0) return;
    if (n <= 0 || k <= 0 || j1 <= j0 || j0 < 0) return;
    if ((int)isa > (int)mlk_detect_isa()) isa = mlk_detect_isa();
    const mlk_kernel kernel = qf_kernel(isa, wtype, n);
    switch (kernel) {
#ifdef QF_X86
    case MLK_KERNEL_AVX512_GEMV:
        switch (wtype) {
        case QF_Q4_0: qf_gemv_q4_0(x, k, (const uint8_t *)w, j0, j1, y); return;
        case QF_Q4_1: qf_gemv_q4_1(x, k, (const uint8_t *)w, j0, j1, y); return;
        case QF_Q8_0: qf_gemv_q8_0(x, k, (const uint8_t *)w, j0, j1, y); return;
        case MLK_Q4_1_PAIRS_ROWS: qf_gemv_q4_1p(x, k, (const uint8_t *)w, j0, j1, y); return;
        default: break;
        }
        break;
    case MLK_KERNEL_AVX512:
    case MLK_KERNEL_AVX512_GEMM:
        if (qf_run(qf_avx512_kernels, sizeof qf_avx512_kernels / sizeof qf_avx512_kernels[0], wtype,
                   kernel == MLK_KERNEL_AVX512_GEMM, x, n, k, w, j0, j1, y, ldy))
            return;
        break;
    case MLK_KERNEL_AVX2:
    case MLK_KERNEL_AVX2_GEMM:
        if (qf_run(qf_avx2_kernels, sizeof qf_avx2_kernels / sizeof qf_avx2_kernels[0], wtype,
                   kernel == MLK_KERNEL_AVX2_GEMM, x, n, k, w, j0, j1, y, ldy))
            return;
        break;
#endif
    default: break;
    }
    if (pairs) qf_pairs_scalar(x, n, k, w, j0, j1, y, ldy);
    else qf_scalar(wtype, x, n, k, w, j0, j1, y, ldy);
}

void mlk_qf32_matmul_rows(int wtype, const float *x, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                          float *y, int64_t ldy) {
    mlk_qf32_matmul_rows_isa(mlk_active_isa(), wtype, x, n, k, w, j0, j1, y, ldy);
}

/* ------------------------------------------------------------------ prepared (16-bit) activations */

mlk_kernel mlk_qf32_prepared_kernel(mlk_isa isa, int wtype, int64_t n) {
    if (!mlk_qf32_supported(wtype)) return mlk_qf32_kernel(isa, wtype, n);
    if (isa > mlk_detect_isa()) isa = mlk_detect_isa();
#ifdef QF_X86
    if (isa == MLK_ISA_AVX512_VNNI && n >= QF16_GEMM_MIN && (wtype == QF_Q4_0 || wtype == QF_Q4_1 || wtype == QF_Q8_0))
        return MLK_KERNEL_AVX512_VNNI_I16_GEMM;
#endif
    return qf_kernel(isa, wtype, n);
}

size_t mlk_qf32_prepared_bytes(int wtype, int64_t n, int64_t k) {
    if (n <= 0 || k <= 0 || k % 32 != 0) return 0;
    if (mlk_qf32_prepared_kernel(mlk_active_isa(), wtype, n) != MLK_KERNEL_AVX512_VNNI_I16_GEMM) return 0;
#ifdef QF_X86
    return (size_t)n * qf16_row_bytes(k);
#else
    return 0;
#endif
}

void mlk_qf32_prepare(const float *x, int64_t n, int64_t k, void *prepared) {
    if (!x || !prepared || n <= 0 || k <= 0 || k % 32 != 0) return;
#ifdef QF_X86
    if (mlk_detect_isa() >= MLK_ISA_AVX512_VNNI) qf16_prepare(x, n, k, (uint8_t *)prepared);
#endif
}

void mlk_qf32_matmul_rows_prepared_isa(mlk_isa isa, int wtype, const float *x, const void *prepared, int64_t n,
                                       int64_t k, const void *w, int64_t j0, int64_t j1, float *y, int64_t ldy) {
#ifdef QF_X86
    if (prepared && n > 0 && k > 0 && k % 32 == 0 && j0 >= 0 && j1 > j0 &&
        mlk_qf32_prepared_kernel(isa, wtype, n) == MLK_KERNEL_AVX512_VNNI_I16_GEMM) {
        const uint8_t *xp = (const uint8_t *)prepared;
        int done = 0;
        switch (wtype) {
        case QF_Q4_0: done = qf16_q4_0_gemm(xp, n, k, w, j0, j1, y, ldy); break;
        case QF_Q4_1: done = qf16_q4_1_gemm(xp, n, k, w, j0, j1, y, ldy); break;
        case QF_Q8_0: done = qf16_q8_0_gemm(xp, n, k, w, j0, j1, y, ldy); break;
        default: break;
        }
        if (done) return;
    }
#endif
    (void)prepared;
    mlk_qf32_matmul_rows_isa(isa, wtype, x, n, k, w, j0, j1, y, ldy);
}

void mlk_qf32_matmul_rows_prepared(int wtype, const float *x, const void *prepared, int64_t n, int64_t k,
                                   const void *w, int64_t j0, int64_t j1, float *y, int64_t ldy) {
    mlk_qf32_matmul_rows_prepared_isa(mlk_active_isa(), wtype, x, prepared, n, k, w, j0, j1, y, ldy);
}
