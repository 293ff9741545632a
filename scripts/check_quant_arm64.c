/*
 * Cross-check of the ARM64 NEON DotProd kernel against the scalar kernel, for machines without an ARM64 host.
 * ctest runs it (kernels_arm64_qemu) through scripts/check_arm64_qemu.sh, which builds it as a static aarch64 program
 * and runs it under qemu-aarch64 -cpu max. Needs (Debian; scripts/install-deps installs them):
 * qemu-user libc6-dev-arm64-cross libgcc-12-dev-arm64-cross
 *
 * Prints the worst |neon - scalar| relative to the sum of |y| terms per type and exits non-zero above 1e-5.
 */
#include "../Sources/CMobileLLMKernels/kernels.c"
#include "../Sources/CMobileLLMKernels/quant.c"
#include "../Sources/CMobileLLMKernels/quant_neon.c"

#include <stdio.h>
#include <stdlib.h>

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

int main(void) {
    const int types[] = {MLK_Q_Q4_0, MLK_Q_Q4_1, MLK_Q_Q5_0, MLK_Q_Q5_1, MLK_Q_Q8_0, MLK_Q_IQ4_NL, MLK_Q_Q2_K, MLK_Q_Q3_K, MLK_Q_Q4_K, MLK_Q_Q5_K, MLK_Q_Q6_K};
    const int ntypes = (int)(sizeof types / sizeof types[0]);
    const int64_t ks[] = {256, 512, 1280};
    const int ns[] = {1, 2, 3, 5, 8, 17};
    const int64_t m = 13;
    int failed = 0;
    printf("detected isa %d (4 = NEON DotProd)\n", mlk_detect_isa());
    if (mlk_detect_isa() != MLK_ISA_NEON_DOTPROD) return 2;
    srand(3);
    for (int ti = 0; ti < ntypes; ti++) {
        double worst = 0;
        for (int ki = 0; ki < 3; ki++) {
            int64_t k = ks[ki];
            float *wf = malloc(sizeof(float) * m * k), *x = malloc(sizeof(float) * 17 * k);
            for (int64_t i = 0; i < m * k; i++) wf[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.1f;
            for (int64_t i = 0; i < 17 * k; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
            void *w = malloc(mlk_q_row_bytes(types[ti], k) * m), *xq = malloc(mlk_q_act_row_bytes(types[ti], k) * 17);
            mlk_q_quantize_rows(types[ti], wf, m, k, w);
            if (!mlk_q_can_quantize(types[ti])) fill_random_blocks(types[ti], w, mlk_q_row_bytes(types[ti], k) * m);
            for (int ni = 0; ni < 6; ni++) {
                int n = ns[ni];
                mlk_q_quantize_activations(types[ti], x, n, k, xq);
                float *y = malloc(sizeof(float) * n * m), *yr = malloc(sizeof(float) * n * m);
                mlk_q_matmul_rows_isa(MLK_ISA_SCALAR, types[ti], xq, n, k, w, 0, m, yr, m);
                mlk_q_matmul_rows_isa(MLK_ISA_NEON_DOTPROD, types[ti], xq, n, k, w, 0, 5, y, m);
                mlk_q_matmul_rows_isa(MLK_ISA_NEON_DOTPROD, types[ti], xq, n, k, w, 5, m, y, m);
                double scale = 0;
                for (int64_t i = 0; i < n * m; i++) scale += fabs(yr[i]);
                scale /= n * m;
                for (int64_t i = 0; i < n * m; i++) {
                    double e = fabs(y[i] - yr[i]) / scale;
                    if (e > worst) worst = e;
                }
                free(y);
                free(yr);
            }
            free(wf); free(x); free(w); free(xq);
        }
        printf("type %2d: worst |neon - scalar| / mean|y| = %.3e\n", types[ti], worst);
        if (worst > 1e-5) failed = 1;
    }
    return failed;
}
