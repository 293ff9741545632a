/* mlk_system_info(): the CPU features the kernels look at and, for every weight type and mode, the kernel the
 * dispatchers choose. The kernel names come from the dispatchers' own selectors (mlk_matmul_kernel,
 * mlk_qf32_kernel, mlk_q_matmul_kernel), so the report cannot disagree with what runs. */
#include "mobilellm_kernels.h"
#include "mobilellm_qf32.h"
#include "mobilellm_quant.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

const char *mlk_kernel_name(mlk_kernel kernel) {
    switch (kernel) {
    case MLK_KERNEL_SCALAR: return "scalar";
    case MLK_KERNEL_AVX2: return "avx2";
    case MLK_KERNEL_AVX512: return "avx512";
    case MLK_KERNEL_AVX512_GEMV: return "avx512-gemv";
    case MLK_KERNEL_AVX512_VNNI: return "avx512-vnni";
    case MLK_KERNEL_NEON_DOTPROD: return "neon-dotprod";
    case MLK_KERNEL_AVX2_R8: return "avx2-r8";
    case MLK_KERNEL_AVX2_GEMM: return "avx2-gemm";
    case MLK_KERNEL_AVX512_GEMM: return "avx512-gemm";
    case MLK_KERNEL_AVX512_VNNI_R8: return "avx512-vnni-r8";
    case MLK_KERNEL_AVX512_VNNI_I16_GEMM: return "avx512-vnni-i16-gemm";
    default: return "none";
    }
}

const char *mlk_isa_name(mlk_isa isa) {
    switch (isa) {
    case MLK_ISA_SCALAR: return "scalar";
    case MLK_ISA_AVX2: return "avx2";
    case MLK_ISA_AVX512: return "avx512";
    case MLK_ISA_AVX512_VNNI: return "avx512-vnni";
    case MLK_ISA_NEON_DOTPROD: return "neon-dotprod";
    default: return "unknown";
    }
}

static char mlk_info[4096];
static pthread_once_t mlk_info_once = PTHREAD_ONCE_INIT;

/* Appends to mlk_info (truncating safely; the buffer is far larger than the report). */
static void mlk_info_append(size_t *used, const char *format, ...) {
    if (*used >= sizeof mlk_info - 1) return;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(mlk_info + *used, sizeof mlk_info - *used, format, arguments);
    va_end(arguments);
    if (written > 0) *used += (size_t)written;
    if (*used > sizeof mlk_info - 1) *used = sizeof mlk_info - 1;
}

static void mlk_info_build(void) {
    size_t used = 0;
#if defined(__x86_64__) || defined(_M_X64)
    mlk_info_append(&used, "arch: x86_64\nfeatures:");
    __builtin_cpu_init();
    /* Names as the kernels know them; /proc/cpuinfo spells avx512-vnni and avx512-bf16 with an underscore. */
    if (__builtin_cpu_supports("avx2")) mlk_info_append(&used, " avx2");
    if (__builtin_cpu_supports("fma")) mlk_info_append(&used, " fma");
    if (__builtin_cpu_supports("f16c")) mlk_info_append(&used, " f16c");
    if (__builtin_cpu_supports("avx512f")) mlk_info_append(&used, " avx512f");
    if (__builtin_cpu_supports("avx512bw")) mlk_info_append(&used, " avx512bw");
    if (__builtin_cpu_supports("avx512vl")) mlk_info_append(&used, " avx512vl");
    if (__builtin_cpu_supports("avx512dq")) mlk_info_append(&used, " avx512dq");
    if (__builtin_cpu_supports("avx512vbmi")) mlk_info_append(&used, " avx512vbmi");
    if (__builtin_cpu_supports("avx512vnni")) mlk_info_append(&used, " avx512-vnni");
    if (__builtin_cpu_supports("avx512bf16")) mlk_info_append(&used, " avx512-bf16");
#elif defined(__aarch64__)
    mlk_info_append(&used, "arch: arm64\nfeatures: neon");
#if defined(__linux__)
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    if (hwcap & (1ul << 20)) mlk_info_append(&used, " dotprod"); /* HWCAP_ASIMDDP */
    if (hwcap & (1ul << 10)) mlk_info_append(&used, " fp16");    /* HWCAP_ASIMDHP */
    if (hwcap2 & (1ul << 13)) mlk_info_append(&used, " i8mm");   /* HWCAP2_I8MM */
    if (hwcap2 & (1ul << 14)) mlk_info_append(&used, " bf16");   /* HWCAP2_BF16 */
#else
    if (mlk_detect_isa() == MLK_ISA_NEON_DOTPROD) mlk_info_append(&used, " dotprod");
#endif
#else
    mlk_info_append(&used, "arch: other\nfeatures:");
#endif
    const mlk_isa active = mlk_active_isa();
    mlk_info_append(&used, "\nisa: %s (detected %s)\n", mlk_isa_name(active), mlk_isa_name(mlk_detect_isa()));
    /* Float weights: one kernel, whatever the activation mode. */
    const struct { const char *name; mlk_dtype dtype; } dense[] = {
        {"f32", MLK_DTYPE_F32}, {"f16", MLK_DTYPE_F16}, {"bf16", MLK_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++)
        mlk_info_append(&used, "%s: %s\n", dense[i].name, mlk_kernel_name(mlk_matmul_kernel(active, dense[i].dtype)));
    /* Attention, by K/V type, at head size 64 and at 320 (the kernel depends on the size; see mlk_attention_kernel). */
    const struct { const char *name; mlk_dtype dtype; } caches[] = {
        {"f32", MLK_DTYPE_F32}, {"f16", MLK_DTYPE_F16}, {"q8_0", MLK_DTYPE_Q8_0}};
    mlk_info_append(&used, "attention (head size 64 / 320):");
    for (size_t i = 0; i < sizeof caches / sizeof caches[0]; i++)
        mlk_info_append(&used, "%s %s %s / %s", i ? "," : "", caches[i].name,
                        mlk_kernel_name(mlk_attention_kernel(active, caches[i].dtype, 64)),
                        mlk_kernel_name(mlk_attention_kernel(active, caches[i].dtype, 320)));
    mlk_info_append(&used, "\n");
    /* Quantized weights: exact mode (f32 activations; decode is one row, a prefill pass up to 256), int8 mode, and the
     * int16 mode's prefill (its decode is exact's). */
    const struct { const char *name; int type; } quantized[] = {
        {"q4_0", MLK_Q_Q4_0}, {"q4_1", MLK_Q_Q4_1}, {"q5_0", MLK_Q_Q5_0}, {"q5_1", MLK_Q_Q5_1},
        {"q8_0", MLK_Q_Q8_0}, {"iq4_nl", MLK_Q_IQ4_NL}, {"q2_k", MLK_Q_Q2_K}, {"q3_k", MLK_Q_Q3_K},
        {"q4_k", MLK_Q_Q4_K}, {"q5_k", MLK_Q_Q5_K}, {"q6_k", MLK_Q_Q6_K}};
    for (size_t i = 0; i < sizeof quantized / sizeof quantized[0]; i++) {
        const int type = quantized[i].type;
        /* int8 mode interleaves a matrix at load when an r8 kernel runs here (mlk_q_r8_worthwhile): name that one. */
        const mlk_kernel r8 = mlk_q_r8_kernel(active, type);
        const mlk_kernel int8 = r8 != MLK_KERNEL_NONE && r8 != MLK_KERNEL_SCALAR ? r8 : mlk_q_matmul_kernel(active, type);
        /* int8 stays last: hosts read the line's end for the int8 kernel (an r8 one interleaves at load). */
        mlk_info_append(&used, "%s: exact-decode %s, exact-prefill %s, int16-prefill %s, int8 %s\n", quantized[i].name,
                        mlk_kernel_name(mlk_qf32_kernel(active, type, 1)),
                        mlk_kernel_name(mlk_qf32_kernel(active, type, 256)),
                        mlk_kernel_name(mlk_qf32_prepared_kernel(active, type, 256)),
                        mlk_kernel_name(int8));
    }
}

const char *mlk_system_info(void) {
    pthread_once(&mlk_info_once, mlk_info_build);
    return mlk_info;
}
