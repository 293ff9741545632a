import CMobileLLMKernels

/// Facts about the machine and build that the engine runs with.
public enum MobileLLMSystem {
    /// A report of this machine and build, one "key: value" line each: the architecture, the CPU features the
    /// kernels use (x86: avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512vbmi avx512-vnni avx512-bf16; ARM64:
    /// neon dotprod fp16 i8mm bf16), the instruction-set level in use, the attention kernel per K/V cache type at
    /// head sizes 64 and 320 (`attention (head size 64 / 320): f32 avx2 / avx512, ...`), and for every weight type the matrix kernel
    /// each mode runs, e.g. `q4_0: exact-decode avx2, exact-prefill avx2-gemm, int8 avx2-r8` (exact: f32 activations,
    /// one row for decode and a full 256-row pass for prefill; int8: 8-bit activations). The kernels' own dispatch functions choose the
    /// names, so the report is what runs. Computed once (the level active at the first use).
    public static let info: String = String(cString: mlk_system_info())
}
