/*
 * Shared helpers of the quantized kernels (quant*.c). Not installed, not part of any API.
 */
#ifndef MOBILELLM_QUANT_INTERNAL_H
#define MOBILELLM_QUANT_INTERNAL_H

#include "mobilellm_quant.h"

#include <stdint.h>
#include <string.h>

/* A helper inlined into every caller (the kernels pass compile-time shapes and types through it). */
#define MLK_INLINE static inline __attribute__((always_inline))

#define MLK_QK 32    /* weights per Q4_0 / Q4_1 / Q8_0 block, and per activation block */
#define MLK_QK_K 256 /* weights per K-quant super-block */

#define MLK_Q4_0_BYTES 18
#define MLK_Q4_1_BYTES 20
#define MLK_Q5_0_BYTES 22
#define MLK_Q5_1_BYTES 24
#define MLK_Q8_0_BYTES 34
#define MLK_IQ4_NL_BYTES 18
#define MLK_Q2_K_BYTES 84
#define MLK_Q3_K_BYTES 110
#define MLK_Q4_K_BYTES 144
#define MLK_Q5_K_BYTES 176
#define MLK_Q6_K_BYTES 210

/* Offsets inside a Q5_K block (d, dmin and scales as Q4_K). */
#define MLK_Q5K_QH 16
#define MLK_Q5K_QS 48

/* Offsets inside Q2_K and Q3_K blocks. */
#define MLK_Q2K_QS 16
#define MLK_Q2K_D 80
#define MLK_Q3K_QS 32
#define MLK_Q3K_SC 96
#define MLK_Q3K_D 108

/* Offsets inside a Q6_K block. */
#define MLK_Q6K_QL 0
#define MLK_Q6K_QH 128
#define MLK_Q6K_SC 192
#define MLK_Q6K_D 208

/* ---------------------------------------------------------------- half precision */

/** IEEE binary16 -> binary32 (exact). */
static inline float mlk_q_h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {
            int e = -1;
            do {
                e++;
                mantissa <<= 1;
            } while ((mantissa & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3FFu) << 13);
        }
    } else if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/** binary32 -> binary16, round to nearest even (what F16C, numpy and Swift's Float16 do). */
static inline uint16_t mlk_q_f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = x & 0x80000000u;
    x ^= sign;
    uint32_t o;
    if (x >= 0x47800000u) {          /* >= 65536, inf or nan */
        o = x > 0x7F800000u ? 0x7E00u : 0x7C00u;
    } else if (x < 0x38800000u) {    /* below the smallest normal half: round in the FPU */
        const uint32_t magic_bits = 0x3F000000u; /* 0.5f: adding it aligns the half subnormal ulp (2^-24) */
        float magic, v;
        memcpy(&magic, &magic_bits, sizeof magic);
        memcpy(&v, &x, sizeof v);
        v += magic;
        uint32_t vb;
        memcpy(&vb, &v, sizeof vb);
        o = vb - magic_bits;
    } else {
        const uint32_t odd = (x >> 13) & 1u;
        x += 0xC8000FFFu; /* rebias the exponent (-112 << 23) and add the rounding bias */
        x += odd;
        o = x >> 13;
    }
    return (uint16_t)(o | (sign >> 16));
}

static inline uint16_t mlk_q_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void mlk_q_wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

/* ---------------------------------------------------------------- activation rows (Q8A) */

/** Pointers into one activation row of k values; see mobilellm_quant.h for the layout. */
typedef struct {
    const int8_t *q;
    const float *d;
    const float *s;
    const float *s16;
} mlk_q_act;

static inline size_t mlk_q_act_bytes(int64_t k) { return (size_t)k + (size_t)(k / 32) * 8 + (size_t)(k / 16) * 4; }

static inline mlk_q_act mlk_q_act_row(const void *xq, int64_t k, int64_t i) {
    const uint8_t *base = (const uint8_t *)xq + (size_t)i * mlk_q_act_bytes(k);
    mlk_q_act a;
    a.q = (const int8_t *)base;
    a.d = (const float *)(base + k);
    a.s = (const float *)(base + k + (k / 32) * 4);
    a.s16 = (const float *)(base + k + (k / 32) * 8);
    return a;
}

/** Q4_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes. */
static inline void mlk_q4k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/** Q3_K: the signed 6-bit scale (-32..31) of sub-block s (0..15) from the 12 packed bytes. */
static inline int mlk_q3k_scale(int s, const uint8_t *sc) {
    const int low = s < 8 ? sc[s] & 0xF : sc[s - 8] >> 4;
    return (low | (((sc[8 + s % 4] >> (2 * (s / 4))) & 3) << 4)) - 32;
}

/** Q2_K / Q3_K: the 2-bit code of element e (0..255) of a super-block whose qs[64] starts at qs. */
static inline int mlk_q2k_code(const uint8_t *qs, int e) {
    return (qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}

/** IQ4_NL: the 16 non-linear levels a nibble selects (ggml's kvalues_iq4nl). */
static const int8_t mlk_q_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/** Q5_0 / Q5_1: the 32 high bits of a block (bit i belongs to weight i), from the little-endian u32 at p. */
static inline uint32_t mlk_q_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---------------------------------------------------------------- kernel entry points per ISA */

typedef void (*mlk_q_matmul_fn)(const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                                float *y, int64_t ldy);

/** Dot of weight row w (type wtype, k weights) with activation row a, in portable C. */
float mlk_q_dot_row_scalar(int wtype, const uint8_t *w, mlk_q_act a, int64_t k);

void mlk_q_matmul_scalar(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                         float *y, int64_t ldy);
#if defined(__x86_64__) || defined(_M_X64)
/** Returns 1 if handled. */
int mlk_q_matmul_avx2(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                      float *y, int64_t ldy);
int mlk_q_matmul_avx512vnni(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0,
                            int64_t j1, float *y, int64_t ldy);
void mlk_q_quantize_act_avx512(const float *x, int64_t k, void *row);
void mlk_q_quantize_act_avx2(const float *x, int64_t k, void *row);
/** Interleaved (r8) weights: see mlk_q_r8_matmul_rows; vnni picks the 256-bit vpdpbusd tiles (AVX512-VL + VNNI)
 *  over the vpmaddubsw ones (AVX2). Returns 1 if handled. */
int mlk_q_r8_matmul_x86(int vnni, int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0,
                        int64_t j1, float *y, int64_t ldy);
#endif
#if defined(__aarch64__)
int mlk_q_neon_dotprod(void);
int mlk_q_matmul_neon(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                      float *y, int64_t ldy);
#endif

#endif
