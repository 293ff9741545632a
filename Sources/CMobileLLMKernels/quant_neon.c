/*
 * ARM64 kernel for the quantized matmul: NEON with the dot-product extension (sdot, ARMv8.2 DotProd),
 * chosen at run time. Weight codes are made signed (Q4_0 - 8, Q5_0 - 16, Q3_K - 4, Q6_K - 32; IQ4_NL's levels via tbl) so sdot multiplies them with
 * the int8 activations directly; Q4_1's and Q5_1's +m and Q4_K's and Q5_K's -dmin*m fold in through the activation
 * sums as on x86. The 5-bit types' high bits become 0x10 per byte through vtst against a per-byte bit mask.
 *
 * Not run on this project's x86 CI machines; compile-checked with
 *   clang --target=aarch64-linux-gnu -fsyntax-only -I Sources/CMobileLLMKernels/include Sources/CMobileLLMKernels/quant_neon.c
 * The matmul tests exercise it on ARM64 hosts (it is the kernel mlk_q_matmul_rows_isa uses there).
 */
#include "quant_internal.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#if defined(__clang__)
#define MLK_TDOT __attribute__((target("dotprod")))
#else
#define MLK_TDOT __attribute__((target("+dotprod")))
#endif

/* 1 if this CPU has the DotProd extension (used by mlk_detect_isa). */
int mlk_q_neon_dotprod(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0) return v;
#if defined(__ARM_FEATURE_DOTPROD)
    v = 1;
#elif defined(__linux__)
    v = (getauxval(AT_HWCAP) & (1ul << 20)) != 0; /* HWCAP_ASIMDDP */
#elif defined(__APPLE__)
    int value = 0;
    size_t size = sizeof value;
    v = sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, NULL, 0) == 0 && value != 0;
#else
    v = 0;
#endif
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

MLK_INLINE float h2f_neon(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/* 16 bytes holding 0x10 where bit i of the 16-bit field `bits` is set (byte i), else 0. */
MLK_INLINE uint8x16_t q5_high_neon(uint32_t bits) {
    static const uint8_t sel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t v = vcombine_u8(vdup_n_u8((uint8_t)(bits & 0xFF)), vdup_n_u8((uint8_t)((bits >> 8) & 0xFF)));
    return vandq_u8(vtstq_u8(v, vld1q_u8(sel)), vdupq_n_u8(0x10));
}

/* Signed codes of 32-element unit u: lo = elements 0..15, hi = 16..31, plus weight scales/corrections. */
typedef struct {
    int8x16_t lo, hi;
    float s0, s1, c0, c1; /* scale of lo / hi halves; coefficient of the activation sums (s, or s16 halves) */
} mlk_unit_neon;

MLK_INLINE MLK_TDOT mlk_unit_neon unit_neon(const int TYPE, const uint8_t *row, int64_t u) {
    mlk_unit_neon x;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    x.c0 = x.c1 = 0.0f;
    switch (TYPE) {
    case MLK_Q_Q4_0: {
        const uint8_t *b = row + (size_t)u * MLK_Q4_0_BYTES;
        const uint8x16_t q = vld1q_u8(b + 2);
        x.lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), vdupq_n_s8(8));
        x.hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
        x.s0 = x.s1 = h2f_neon(b);
        break;
    }
    case MLK_Q_Q4_1: {
        const uint8_t *b = row + (size_t)u * MLK_Q4_1_BYTES;
        const uint8x16_t q = vld1q_u8(b + 4);
        x.lo = vreinterpretq_s8_u8(vandq_u8(q, m4));
        x.hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
        x.s0 = x.s1 = h2f_neon(b);
        x.c0 = h2f_neon(b + 2);
        break;
    }
    case MLK_Q_Q5_0:
    case MLK_Q_Q5_1: {
        const int hoff = TYPE == MLK_Q_Q5_0 ? 2 : 4;
        const uint8_t *b = row + (size_t)u * (TYPE == MLK_Q_Q5_0 ? MLK_Q5_0_BYTES : MLK_Q5_1_BYTES);
        const uint32_t qh = mlk_q_rd32(b + hoff);
        const uint8x16_t q = vld1q_u8(b + hoff + 4);
        const uint8x16_t lo = vorrq_u8(vandq_u8(q, m4), q5_high_neon(qh & 0xFFFF));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), q5_high_neon(qh >> 16));
        x.s0 = x.s1 = h2f_neon(b);
        if (TYPE == MLK_Q_Q5_0) {
            x.lo = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16));
            x.hi = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16));
        } else {
            x.lo = vreinterpretq_s8_u8(lo);
            x.hi = vreinterpretq_s8_u8(hi);
            x.c0 = h2f_neon(b + 2);
        }
        break;
    }
    case MLK_Q_IQ4_NL: {
        const uint8_t *b = row + (size_t)u * MLK_IQ4_NL_BYTES;
        const uint8x16_t q = vld1q_u8(b + 2);
        const int8x16_t table = vld1q_s8(mlk_q_kvalues_iq4nl);
        x.lo = vqtbl1q_s8(table, vandq_u8(q, m4));
        x.hi = vqtbl1q_s8(table, vshrq_n_u8(q, 4));
        x.s0 = x.s1 = h2f_neon(b);
        break;
    }
    case MLK_Q_Q8_0: {
        const uint8_t *b = row + (size_t)u * MLK_Q8_0_BYTES;
        x.lo = vld1q_s8((const int8_t *)(b + 2));
        x.hi = vld1q_s8((const int8_t *)(b + 18));
        x.s0 = x.s1 = h2f_neon(b);
        break;
    }
    case MLK_Q_Q4_K: {
        const uint8_t *b = row + (size_t)(u / 8) * MLK_Q4_K_BYTES;
        const int j = (int)(u % 8);
        const uint8_t *qs = b + 16 + 32 * (j / 2);
        const uint8x16_t q0 = vld1q_u8(qs), q1 = vld1q_u8(qs + 16);
        if (j & 1) {
            x.lo = vreinterpretq_s8_u8(vshrq_n_u8(q0, 4));
            x.hi = vreinterpretq_s8_u8(vshrq_n_u8(q1, 4));
        } else {
            x.lo = vreinterpretq_s8_u8(vandq_u8(q0, m4));
            x.hi = vreinterpretq_s8_u8(vandq_u8(q1, m4));
        }
        int sc, m;
        mlk_q4k_scale_min(j, b + 4, &sc, &m);
        x.s0 = x.s1 = h2f_neon(b) * (float)sc;
        x.c0 = -h2f_neon(b + 2) * (float)m;
        break;
    }
    case MLK_Q_Q5_K: {
        const uint8_t *b = row + (size_t)(u / 8) * MLK_Q5_K_BYTES;
        const int j = (int)(u % 8);
        const uint8_t *qs = b + MLK_Q5K_QS + 32 * (j / 2), *qh = b + MLK_Q5K_QH;
        const uint8x16_t q0 = vld1q_u8(qs), q1 = vld1q_u8(qs + 16);
        const uint8x16_t sel = vdupq_n_u8((uint8_t)(1u << j)), h10 = vdupq_n_u8(0x10);
        const uint8x16_t h0 = vandq_u8(vtstq_u8(vld1q_u8(qh), sel), h10);
        const uint8x16_t h1 = vandq_u8(vtstq_u8(vld1q_u8(qh + 16), sel), h10);
        if (j & 1) {
            x.lo = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q0, 4), h0));
            x.hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q1, 4), h1));
        } else {
            x.lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q0, m4), h0));
            x.hi = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q1, m4), h1));
        }
        int sc, m;
        mlk_q4k_scale_min(j, b + 4, &sc, &m);
        x.s0 = x.s1 = h2f_neon(b) * (float)sc;
        x.c0 = -h2f_neon(b + 2) * (float)m;
        break;
    }
    case MLK_Q_Q2_K:
    case MLK_Q_Q3_K: {
        /* 2-bit codes at shift 2 (uu % 4) of qs[32 (uu / 4) + l]; Q3_K: minus 4 where bit uu of hmask[l] is clear
         * (signed, no correction); Q2_K: unsigned, its -dmin*m per 16 through the s16 sums */
        const int q2 = TYPE == MLK_Q_Q2_K, uu = (int)(u % 8);
        const uint8_t *b = row + (size_t)(u / 8) * (q2 ? MLK_Q2_K_BYTES : MLK_Q3_K_BYTES);
        const uint8_t *qs = b + (q2 ? MLK_Q2K_QS : MLK_Q3K_QS) + 32 * (uu / 4);
        const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * (uu % 4)));
        const uint8x16_t m3 = vdupq_n_u8(3);
        uint8x16_t c0 = vandq_u8(vshlq_u8(vld1q_u8(qs), shift), m3), c1 = vandq_u8(vshlq_u8(vld1q_u8(qs + 16), shift), m3);
        if (q2) {
            const float d = h2f_neon(b + MLK_Q2K_D), dmin = h2f_neon(b + MLK_Q2K_D + 2);
            x.lo = vreinterpretq_s8_u8(c0);
            x.hi = vreinterpretq_s8_u8(c1);
            x.s0 = d * (float)(b[2 * uu] & 0xF);
            x.s1 = d * (float)(b[2 * uu + 1] & 0xF);
            x.c0 = -dmin * (float)(b[2 * uu] >> 4);
            x.c1 = -dmin * (float)(b[2 * uu + 1] >> 4);
        } else {
            const uint8x16_t sel = vdupq_n_u8((uint8_t)(1u << uu)), h4 = vdupq_n_u8(4);
            c0 = vorrq_u8(c0, vandq_u8(vtstq_u8(vld1q_u8(b), sel), h4));
            c1 = vorrq_u8(c1, vandq_u8(vtstq_u8(vld1q_u8(b + 16), sel), h4));
            x.lo = vsubq_s8(vreinterpretq_s8_u8(c0), vdupq_n_s8(4));
            x.hi = vsubq_s8(vreinterpretq_s8_u8(c1), vdupq_n_s8(4));
            const float d = h2f_neon(b + MLK_Q3K_D);
            x.s0 = d * (float)mlk_q3k_scale(2 * uu, b + MLK_Q3K_SC);
            x.s1 = d * (float)mlk_q3k_scale(2 * uu + 1, b + MLK_Q3K_SC);
        }
        break;
    }
    case MLK_Q_Q6_K:
    default: {
        const uint8_t *b = row + (size_t)(u / 8) * MLK_Q6_K_BYTES;
        const int e = (int)(u % 8) * 32, half = e / 128, quarter = (e % 128) / 32;
        const uint8_t *ql = b + MLK_Q6K_QL + 64 * half + 32 * (quarter & 1), *qh = b + MLK_Q6K_QH + 32 * half;
        uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16);
        if (quarter >= 2) {
            l0 = vshrq_n_u8(l0, 4);
            l1 = vshrq_n_u8(l1, 4);
        } else {
            l0 = vandq_u8(l0, m4);
            l1 = vandq_u8(l1, m4);
        }
        const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * quarter));
        const uint8x16_t h0 = vandq_u8(vshlq_u8(vld1q_u8(qh), shift), vdupq_n_u8(3));
        const uint8x16_t h1 = vandq_u8(vshlq_u8(vld1q_u8(qh + 16), shift), vdupq_n_u8(3));
        x.lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l0, vshlq_n_u8(h0, 4))), vdupq_n_s8(32));
        x.hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l1, vshlq_n_u8(h1, 4))), vdupq_n_s8(32));
        const float d = h2f_neon(b + MLK_Q6K_D);
        const int8_t *sc = (const int8_t *)(b + MLK_Q6K_SC) + 2 * (u % 8);
        x.s0 = d * (float)sc[0];
        x.s1 = d * (float)sc[1];
        break;
    }
    }
    return x;
}

MLK_INLINE MLK_TDOT void tile_neon(const int TYPE, const int R, const int C, const uint8_t *const *rows,
                                    const mlk_q_act *acts, int64_t k, float out[4][2]) {
    float32x4_t acc[4][2];
    float corr[4][2];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            acc[r][c] = vdupq_n_f32(0.0f);
            corr[r][c] = 0.0f;
        }
    for (int64_t u = 0; u < k / 32; u++) {
        mlk_unit_neon wu[4];
        for (int r = 0; r < R; r++) wu[r] = unit_neon(TYPE, rows[r], u);
        for (int c = 0; c < C; c++) {
            const int8x16_t a0 = vld1q_s8(acts[c].q + 32 * u), a1 = vld1q_s8(acts[c].q + 32 * u + 16);
            const float da = acts[c].d[u];
            for (int r = 0; r < R; r++) {
                if (TYPE == MLK_Q_Q6_K || TYPE == MLK_Q_Q2_K || TYPE == MLK_Q_Q3_K) { /* a scale per 16 */
                    const int32x4_t d0 = vdotq_s32(vdupq_n_s32(0), wu[r].lo, a0);
                    const int32x4_t d1 = vdotq_s32(vdupq_n_s32(0), wu[r].hi, a1);
                    acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(d0), wu[r].s0 * da);
                    acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(d1), wu[r].s1 * da);
                    if (TYPE == MLK_Q_Q2_K)
                        corr[r][c] += wu[r].c0 * acts[c].s16[2 * u] + wu[r].c1 * acts[c].s16[2 * u + 1];
                } else {
                    const int32x4_t d = vdotq_s32(vdotq_s32(vdupq_n_s32(0), wu[r].lo, a0), wu[r].hi, a1);
                    acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(d), wu[r].s0 * da);
                    if (TYPE == MLK_Q_Q4_1 || TYPE == MLK_Q_Q5_1 || TYPE == MLK_Q_Q4_K || TYPE == MLK_Q_Q5_K)
                        corr[r][c] += wu[r].c0 * acts[c].s[u];
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) out[r][c] = vaddvq_f32(acc[r][c]) + corr[r][c];
}

#define MLK_DEFINE_DRIVER_NEON(NAME, TYPE)                                                                      \
    MLK_TDOT static void NAME(const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,      \
                              float *y, int64_t ldy) {                                                         \
        const size_t rb = mlk_q_row_bytes(TYPE, k);                                                            \
        float out[4][2];                                                                                       \
        int64_t j = j0;                                                                                        \
        for (; j + 4 <= j1; j += 4) {                                                                          \
            const uint8_t *rows[4];                                                                            \
            for (int r = 0; r < 4; r++) rows[r] = (const uint8_t *)w + (size_t)(j + r) * rb;                   \
            int64_t i = 0;                                                                                     \
            for (; i + 2 <= n; i += 2) {                                                                       \
                mlk_q_act acts[2] = {mlk_q_act_row(xq, k, i), mlk_q_act_row(xq, k, i + 1)};                    \
                tile_neon(TYPE, 4, 2, rows, acts, k, out);                                                     \
                for (int r = 0; r < 4; r++)                                                                    \
                    for (int c = 0; c < 2; c++) y[(i + c) * ldy + j + r] = out[r][c];                          \
            }                                                                                                  \
            for (; i < n; i++) {                                                                               \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, i)};                                                 \
                tile_neon(TYPE, 4, 1, rows, acts, k, out);                                                     \
                for (int r = 0; r < 4; r++) y[i * ldy + j + r] = out[r][0];                                    \
            }                                                                                                  \
        }                                                                                                      \
        for (; j < j1; j++) {                                                                                  \
            const uint8_t *rows[1] = {(const uint8_t *)w + (size_t)j * rb};                                   \
            for (int64_t i = 0; i < n; i++) {                                                                  \
                mlk_q_act acts[1] = {mlk_q_act_row(xq, k, i)};                                                 \
                tile_neon(TYPE, 1, 1, rows, acts, k, out);                                                     \
                y[i * ldy + j] = out[0][0];                                                                    \
            }                                                                                                  \
        }                                                                                                      \
    }

MLK_DEFINE_DRIVER_NEON(mmn_q4_0, MLK_Q_Q4_0)
MLK_DEFINE_DRIVER_NEON(mmn_q4_1, MLK_Q_Q4_1)
MLK_DEFINE_DRIVER_NEON(mmn_q8_0, MLK_Q_Q8_0)
MLK_DEFINE_DRIVER_NEON(mmn_iq4_nl, MLK_Q_IQ4_NL)
MLK_DEFINE_DRIVER_NEON(mmn_q5_0, MLK_Q_Q5_0)
MLK_DEFINE_DRIVER_NEON(mmn_q5_1, MLK_Q_Q5_1)
MLK_DEFINE_DRIVER_NEON(mmn_q4_k, MLK_Q_Q4_K)
MLK_DEFINE_DRIVER_NEON(mmn_q5_k, MLK_Q_Q5_K)
MLK_DEFINE_DRIVER_NEON(mmn_q6_k, MLK_Q_Q6_K)
MLK_DEFINE_DRIVER_NEON(mmn_q2_k, MLK_Q_Q2_K)
MLK_DEFINE_DRIVER_NEON(mmn_q3_k, MLK_Q_Q3_K)

int mlk_q_matmul_neon(int wtype, const void *xq, int64_t n, int64_t k, const void *w, int64_t j0, int64_t j1,
                      float *y, int64_t ldy) {
    switch (wtype) {
    case MLK_Q_Q4_0: mmn_q4_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q4_1: mmn_q4_1(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q8_0: mmn_q8_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_IQ4_NL: mmn_iq4_nl(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_0: mmn_q5_0(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_1: mmn_q5_1(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q4_K: mmn_q4_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q5_K: mmn_q5_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q6_K: mmn_q6_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q2_K: mmn_q2_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    case MLK_Q_Q3_K: mmn_q3_k(xq, n, k, w, j0, j1, y, ldy); return 1;
    default: return 0;
    }
}

#endif /* __aarch64__ */
