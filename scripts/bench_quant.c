/*
 * Micro-benchmark of the quantized matmul kernels (not part of the build or CI).
 *
 *   clang -O2 -march=native -pthread -I Sources/CMobileLLMKernels/include \
 *       scripts/bench_quant.c -o /tmp/bench_quant -lm && /tmp/bench_quant [m k]
 *
 * Decode (n = 1): GB/s of weight bytes streamed, 1 and 2 threads (rows split in halves, multiples of 8).
 * Prefill (n = 64): GFLOP/s (2*n*m*k / time). Also checks every ISA level against the scalar kernel.
 * Environment: TYPES=q4_0,q4_1 (subset), PAIRS=1 (Q4_1 with pair-shared scales, interleaved as MLK_R8_Q4_1_PAIRS), BATCH=8 (also time 8 decode rows against DRAM-resident weights), ALL_ISAS=1 (also time AVX2), L3=1 (one weight copy: cache-resident,
 * i.e. the kernel's compute ceiling instead of DRAM streaming). The machine is shared: best of several runs.
 * Types with an interleaved layout (mlk_q_r8_*) are also timed interleaved ("r8" lines) at every SIMD level.
 */
#include "../Sources/CMobileLLMKernels/kernels.c"
#include "../Sources/CMobileLLMKernels/quant.c"
#include "../Sources/CMobileLLMKernels/quant_x86.c"
#include "../Sources/CMobileLLMKernels/quant_r8.c"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    int type;
    mlk_isa isa;
    const void *xq;
    int64_t n, k;
    const void *w;
    size_t wstride; /* bytes between weight copies; reps cycle through `copies` copies (defeats the caches) */
    int copies;
    int64_t j0, j1;
    float *y;
    int64_t ldy;
    int reps;
    int r8; /* w is interleaved: run mlk_q_r8_matmul_rows_isa */
} job;

static void *run(void *p) {
    job *j = (job *)p;
    for (int r = 0; r < j->reps; r++)
        if (j->r8)
            mlk_q_r8_matmul_rows_isa(j->isa, j->type, j->xq, j->n, j->k, (const char *)j->w + (size_t)(r % j->copies) * j->wstride,
                                     j->j0, j->j1, j->y, j->ldy);
        else
            mlk_q_matmul_rows_isa(j->isa, j->type, j->xq, j->n, j->k, (const char *)j->w + (size_t)(r % j->copies) * j->wstride,
                              j->j0, j->j1, j->y, j->ldy);
    return NULL;
}

/* Runs reps matmuls with `threads` threads (persistent per call batch: one thread per half, reps inside). */
static double timed(int r8, int type, mlk_isa isa, const void *xq, int64_t n, int64_t k, const void *w, size_t wstride,
                    int copies, int64_t m, float *y, int threads, int reps) {
    pthread_t th[8];
    job jobs[8];
    int64_t per = ((m / threads) + 7) / 8 * 8;
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        int64_t a = t * per, b = t == threads - 1 ? m : (t + 1) * per;
        if (b > m) b = m;
        jobs[t] = (job){type, isa, xq, n, k, w, wstride, copies, a, b, y, m, reps, r8};
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    return (now() - t0) / reps;
}

/* Plain streaming read of 1 GB (64-byte vector loads), 1 and 2 threads: the roofline for decode. */
static char *bwbuf;
static const size_t BWN = (size_t)1 << 30;
typedef struct { size_t a, b; long long s; } bwjob;
/* 256-bit loads (AVX2), so the probe runs on every x86-64 CPU the kernels support; two loads per 64 bytes still
 * saturate DRAM. */
__attribute__((target("avx2"))) static void *bwread(void *p) {
    bwjob *j = (bwjob *)p;
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = j->a; i < j->b; i += 64)
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_load_si256((const __m256i *)(bwbuf + i)),
                                                     _mm256_load_si256((const __m256i *)(bwbuf + i + 32))));
    long long lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    j->s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    return NULL;
}
static void read_bandwidth(void) {
    bwbuf = aligned_alloc(64, BWN);
    memset(bwbuf, 1, BWN);
    for (int th = 1; th <= 2; th++) {
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            pthread_t t[2];
            bwjob j[2];
            double t0 = now();
            for (int i = 0; i < th; i++) {
                j[i].a = BWN / th * i;
                j[i].b = BWN / th * (i + 1);
                pthread_create(&t[i], NULL, bwread, &j[i]);
            }
            for (int i = 0; i < th; i++) pthread_join(t[i], NULL);
            if (now() - t0 < best) best = now() - t0;
        }
        printf("read bandwidth %d thr: %.2f GB/s\n", th, BWN / best / 1e9);
    }
    free(bwbuf);
}

/* Types without a quantizer (IQ4_NL, Q2_K, Q3_K): random codes with f16 scales of 2^-10 (0x1400). */
static void fill_random_blocks(int type, void *w, size_t bytes) {
    const size_t bb = mlk_q_row_bytes(type, mlk_q_block_size(type));
    const size_t d = type == MLK_Q_IQ4_NL ? 0 : type == MLK_Q_Q2_K ? 80 : 108; /* Q2_K: also dmin at 82 */
    uint8_t *p = (uint8_t *)w;
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rand();
    for (size_t b = 0; b + bb <= bytes; b += bb) {
        p[b + d] = 0x00;
        p[b + d + 1] = 0x14;
        if (type == MLK_Q_Q2_K) { p[b + 82] = 0x00; p[b + 83] = 0x14; }
    }
}

/* Largest |y - reference| / (|reference| + 1e-3) over count values. */
static double max_rel_diff(const float *y, const float *reference, int64_t count) {
    double worst = 0;
    for (int64_t i = 0; i < count; i++) {
        double e = fabs(y[i] - reference[i]) / (fabs(reference[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    return worst;
}

int main(int argc, char **argv) {
    int64_t m = argc > 2 ? atoll(argv[1]) : 6144, k = argc > 2 ? atoll(argv[2]) : 1536;
    const int types[] = {MLK_Q_Q4_0, MLK_Q_Q4_1, MLK_Q_Q5_0, MLK_Q_Q5_1, MLK_Q_Q8_0, MLK_Q_IQ4_NL, MLK_Q_Q2_K, MLK_Q_Q3_K, MLK_Q_Q4_K, MLK_Q_Q5_K, MLK_Q_Q6_K};
    const char *names[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
    const int ntypes = (int)(sizeof types / sizeof types[0]);
    const int nprefill = 64;
    float *wf = malloc(sizeof(float) * m * k), *x = malloc(sizeof(float) * nprefill * k);
    srand(1);
    for (int64_t i = 0; i < m * k; i++) wf[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int64_t i = 0; i < nprefill * k; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    float *y = malloc(sizeof(float) * nprefill * m), *yr = malloc(sizeof(float) * nprefill * m);
    printf("matrix %lld x %lld (rows x k), isa detected %d\n", (long long)m, (long long)k, mlk_detect_isa());
    const char *only = getenv("TYPES"); /* e.g. TYPES=q4_0,q4_1 */
    const int nbatch = getenv("BATCH") ? atoi(getenv("BATCH")) : 0; /* at most 64 (the activation rows) */
    const int min_isa = getenv("ALL_ISAS") ? MLK_ISA_AVX2 : (int)mlk_detect_isa();
    read_bandwidth();
    for (int ti = 0; ti < ntypes; ti++) {
        int type = types[ti];
        if (only && !strstr(only, names[ti])) continue;
        size_t rb = mlk_q_row_bytes(type, k);
        /* decode streams from DRAM: cycle through copies totalling >= 512 MB (far beyond the L3) */
        const size_t wstride = (rb * m + 4095) / 4096 * 4096;
        const int copies = getenv("L3") ? 1 : (int)((512u << 20) / wstride) + 1;
        char *w = aligned_alloc(4096, wstride * copies);
        mlk_q_quantize_rows(type, wf, m, k, w);
        if (!mlk_q_can_quantize(type)) fill_random_blocks(type, w, rb * m);
        /* PAIRS=1: Q4_1 blocks share d and m in pairs (MLX 4-bit, group 64) and interleave as MLK_R8_Q4_1_PAIRS */
        const int r8type = getenv("PAIRS") && type == MLK_Q_Q4_1 && k % 64 == 0 ? MLK_R8_Q4_1_PAIRS : type;
        if (r8type != type)
            for (int64_t r = 0; r < m; r++)
                for (int64_t b = 0; b < k / 32; b += 2) memcpy(w + r * rb + (b + 1) * 20, w + r * rb + b * 20, 4);
        for (int c = 1; c < copies; c++) memcpy(w + c * wstride, w, wstride);
        void *xq = aligned_alloc(64, (mlk_q_act_row_bytes(type, k) * nprefill + 63) / 64 * 64);
        mlk_q_quantize_activations(type, x, nprefill, k, xq);
        /* correctness vs scalar on 9 activation rows */
        mlk_q_matmul_rows_isa(MLK_ISA_SCALAR, type, xq, 9, k, w, 0, m, yr, m);
        for (int isa = MLK_ISA_AVX2; isa <= (int)mlk_detect_isa(); isa++) {
            mlk_q_matmul_rows_isa((mlk_isa)isa, type, xq, 9, k, w, 0, m, y, m);
            printf("  %s isa %d: max rel diff vs scalar %.2e\n", names[ti], isa, max_rel_diff(y, yr, 9 * m));
        }
        /* Interleaved copies of the same weights (same bytes per copy). */
        const int r8 = mlk_q_r8_kernel(MLK_ISA_SCALAR, type) != MLK_KERNEL_NONE && m % 8 == 0;
        char *wr8 = r8 ? aligned_alloc(4096, wstride * copies) : NULL;
        if (r8) {
            for (int c = 0; c < copies; c++) mlk_q_r8_pack(r8type, w, m, k, wr8 + c * wstride);
            for (int isa = MLK_ISA_SCALAR; isa <= (int)mlk_detect_isa(); isa++) {
                mlk_q_r8_matmul_rows_isa((mlk_isa)isa, r8type, xq, 9, k, wr8, 0, m, y, m);
                printf("  %s r8 isa %d: max rel diff vs scalar %.2e\n", names[ti], isa, max_rel_diff(y, yr, 9 * m));
            }
        }
        double bytes = (double)rb * m;
        for (int layout = 0; layout <= r8; layout++)
        for (int isa = min_isa; isa <= (int)mlk_detect_isa(); isa += (isa == MLK_ISA_AVX2 ? 2 : 1)) {
            const char *tag = layout ? (r8type != type ? " r8pairs" : " r8") : "";
            const int jobtype = layout ? r8type : type;
            const void *wl = layout ? (const void *)wr8 : (const void *)w;
            for (int threads = 1; threads <= 2; threads++) {
                double t = 1e9;
                for (int rep = 0; rep < 7; rep++) { /* best of 7 (the machine is shared) */
                    double tr = timed(layout, jobtype, (mlk_isa)isa, xq, 1, k, wl, wstride, copies, m, y, threads, copies < 64 ? 64 : copies);
                    if (tr < t) t = tr;
                }
                printf("%s%s isa %d decode  %d thr: %7.1f us  %6.2f GB/s\n", names[ti], tag, isa, threads, t * 1e6, bytes / t / 1e9);
            }
            for (int threads = 1; threads <= 2 && nbatch > 1; threads++) { /* BATCH=n: n decode rows, weights from DRAM */
                double t = 1e9;
                for (int rep = 0; rep < 7; rep++) {
                    double tr = timed(layout, jobtype, (mlk_isa)isa, xq, nbatch, k, wl, wstride, copies, m, y, threads, copies < 64 ? 64 : copies);
                    if (tr < t) t = tr;
                }
                printf("%s%s isa %d batch %d %d thr: %7.1f us  %6.1f GMAC/s\n", names[ti], tag, isa, nbatch, threads, t * 1e6,
                       (double)nbatch * m * k / t / 1e9);
            }
            for (int threads = 1; threads <= 2; threads++) {
                double t = 1e9;
                for (int rep = 0; rep < 3; rep++) {
                    double tr = timed(layout, jobtype, (mlk_isa)isa, xq, nprefill, k, wl, wstride, 1, m, y, threads, 3);
                    if (tr < t) t = tr;
                }
                printf("%s%s isa %d prefill %d thr: %7.2f ms  %6.1f GFLOP/s\n", names[ti], tag, isa, threads, t * 1e3,
                       2.0 * nprefill * m * k / t / 1e9);
            }
        }
        free(w);
        free(wr8);
        free(xq);
    }
    return 0;
}
