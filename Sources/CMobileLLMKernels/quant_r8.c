/*
 * Interleaved 8-row ("r8") weight matrices for the int8 matmul: packing, unpacking, the portable kernel and the
 * dispatch. The layout is described in mobilellm_quant.h; the SIMD kernels live in quant_x86.c.
 */
#include "quant_internal.h"

/* Per-row header of a block: f16 fields (d, or d and m) and the payload bytes that follow them. */
typedef struct {
    int stored;  /* the stored (row-major) block type */
    int fields;  /* f16 fields per row: 1 (d) or 2 (d, m) */
    int payload; /* payload bytes per row: 16 (nibbles) or 32 (int8) */
    int pairs;   /* 1: blocks 2i and 2i+1 share their fields, kept once per pair (MLK_R8_Q4_1_PAIRS) */
} mlk_r8_shape;

static int mlk_r8_shape_of(int wtype, mlk_r8_shape *shape) {
    shape->pairs = 0;
    shape->stored = wtype;
    switch (wtype) {
    case MLK_Q_Q4_0: shape->fields = 1; shape->payload = 16; return 1;
    case MLK_Q_Q4_1: shape->fields = 2; shape->payload = 16; return 1;
    case MLK_Q_Q8_0: shape->fields = 1; shape->payload = 32; return 1;
    case MLK_R8_Q4_1_PAIRS: shape->stored = MLK_Q_Q4_1; shape->fields = 2; shape->payload = 16; shape->pairs = 1; return 1;
    default: return 0;
    }
}

static int mlk_r8_valid(int wtype, int64_t rows, int64_t k, mlk_r8_shape *shape) {
    return mlk_r8_shape_of(wtype, shape) && rows >= 0 && rows % 8 == 0 && k > 0 && k % (MLK_QK << shape->pairs) == 0;
}

/* Bytes of one stored block, and of an interleaved 8-row group of k weights. */
static size_t mlk_r8_block_bytes(mlk_r8_shape shape) { return (size_t)(2 * shape.fields + shape.payload); }
static size_t mlk_r8_group_bytes(mlk_r8_shape shape, int64_t k) {
    return shape.pairs ? 8 * (size_t)(k / (2 * MLK_QK)) * (size_t)(2 * shape.fields + 2 * shape.payload)
                       : 8 * (size_t)(k / MLK_QK) * mlk_r8_block_bytes(shape);
}

/* Block b of row r (r in 0..7) of the group at `group` <-> its stored bytes `blk`; `to_packed` picks the direction. */
static void mlk_r8_move_block(mlk_r8_shape shape, uint8_t *group, int64_t b, int r, uint8_t *blk, int to_packed) {
    uint8_t *p, *payload;
    if (shape.pairs) {
        p = group + (size_t)(b / 2) * 8 * (size_t)(2 * shape.fields + 2 * shape.payload);
        payload = p + 16 * shape.fields + (size_t)(b % 2) * 8 * (size_t)shape.payload;
    } else {
        p = group + 8 * mlk_r8_block_bytes(shape) * (size_t)b;
        payload = p + 16 * shape.fields;
    }
    for (int f = 0; f < shape.fields; f++) {
        uint8_t *packed = p + 16 * f + 2 * r, *stored = blk + 2 * f;
        memcpy(to_packed ? packed : stored, to_packed ? stored : packed, 2);
    }
    for (int v = 0; v < shape.payload / 4; v++) {
        uint8_t *packed = payload + 32 * v + 4 * r, *stored = blk + 2 * shape.fields + 4 * v;
        memcpy(to_packed ? packed : stored, to_packed ? stored : packed, 4);
    }
}

int mlk_q_r8_pairs_shared(const void *src, int64_t rows, int64_t k) {
    if (!src || rows < 0 || k <= 0 || k % (2 * MLK_QK) != 0) return 0;
    const size_t rb = mlk_q_row_bytes(MLK_Q_Q4_1, k);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)src + (size_t)r * rb;
        for (int64_t b = 0; b < k / MLK_QK; b += 2)
            if (memcmp(row + (size_t)b * MLK_Q4_1_BYTES, row + (size_t)(b + 1) * MLK_Q4_1_BYTES, 4) != 0) return 0;
    }
    return 1;
}

size_t mlk_q_r8_bytes(int wtype, int64_t rows, int64_t k) {
    mlk_r8_shape shape;
    if (!mlk_r8_valid(wtype, rows, k, &shape)) return 0;
    return (size_t)(rows / 8) * mlk_r8_group_bytes(shape, k);
}

void mlk_q_r8_pack(int wtype, const void *src, int64_t rows, int64_t k, void *dst) {
    mlk_r8_shape shape;
    if (!src || !dst || !mlk_r8_valid(wtype, rows, k, &shape)) return;
    const size_t rb = mlk_q_row_bytes(shape.stored, k), bb = mlk_r8_block_bytes(shape);
    for (int64_t g = 0; g < rows / 8; g++) {
        uint8_t *group = (uint8_t *)dst + (size_t)g * mlk_r8_group_bytes(shape, k);
        for (int r = 0; r < 8; r++) {
            uint8_t *row = (uint8_t *)src + (size_t)(8 * g + r) * rb;
            for (int64_t b = 0; b < k / MLK_QK; b++) mlk_r8_move_block(shape, group, b, r, row + (size_t)b * bb, 1);
        }
    }
}

void mlk_q_r8_unpack_row(int wtype, const void *packed, int64_t k, int64_t j, void *dst) {
    mlk_r8_shape shape;
    if (!packed || !dst || j < 0 || !mlk_r8_valid(wtype, 8, k, &shape)) return;
    const size_t bb = mlk_r8_block_bytes(shape);
    uint8_t *group = (uint8_t *)packed + (size_t)(j / 8) * mlk_r8_group_bytes(shape, k);
    for (int64_t b = 0; b < k / MLK_QK; b++) mlk_r8_move_block(shape, group, b, (int)(j % 8), (uint8_t *)dst + (size_t)b * bb, 0);
}

/* Portable kernel: each block of each row is gathered back to its stored bytes and dotted with the matching
 * 32 activations by the scalar row kernel. */
static void mlk_r8_matmul_scalar(mlk_r8_shape shape, const void *xq, int64_t n, int64_t k,
                                 const void *packed, int64_t j0, int64_t j1, float *y, int64_t ldy) {
    uint8_t blk[MLK_Q8_0_BYTES];
    for (int64_t j = j0; j < j1; j++) {
        uint8_t *group = (uint8_t *)packed + (size_t)(j / 8) * mlk_r8_group_bytes(shape, k);
        for (int64_t i = 0; i < n; i++) {
            const mlk_q_act a = mlk_q_act_row(xq, k, i);
            float acc = 0.0f;
            for (int64_t b = 0; b < k / MLK_QK; b++) {
                mlk_r8_move_block(shape, group, b, (int)(j % 8), blk, 0);
                const mlk_q_act ab = {a.q + MLK_QK * b, a.d + b, a.s + b, a.s16 + 2 * b};
                acc += mlk_q_dot_row_scalar(shape.stored, blk, ab, MLK_QK);
            }
            y[i * ldy + j] = acc;
        }
    }
}

mlk_kernel mlk_q_r8_kernel(mlk_isa isa, int wtype) {
    mlk_r8_shape shape;
    if (!mlk_r8_shape_of(wtype, &shape)) return MLK_KERNEL_NONE;
    const mlk_isa best = mlk_detect_isa();
    if ((int)isa > (int)best) isa = best;
#if defined(__x86_64__) || defined(_M_X64)
    if (isa == MLK_ISA_AVX512_VNNI) return MLK_KERNEL_AVX512_VNNI_R8;
    if (isa >= MLK_ISA_AVX2) return MLK_KERNEL_AVX2_R8;
#endif
    (void)isa;
    return MLK_KERNEL_SCALAR;
}

int mlk_q_r8_worthwhile(int wtype, int64_t rows, int64_t k) {
    mlk_r8_shape shape;
    if (!mlk_r8_valid(wtype, rows, k, &shape) || rows == 0) return 0;
    const mlk_kernel kernel = mlk_q_r8_kernel(mlk_active_isa(), wtype);
    return kernel != MLK_KERNEL_NONE && kernel != MLK_KERNEL_SCALAR;
}

void mlk_q_r8_matmul_rows_isa(mlk_isa isa, int wtype, const void *xq, int64_t n, int64_t k, const void *packed,
                              int64_t j0, int64_t j1, float *y, int64_t ldy) {
    mlk_r8_shape shape;
    if (!mlk_r8_valid(wtype, 8, k, &shape) || n <= 0 || j0 < 0 || j1 <= j0 || j0 % 8 != 0 || j1 % 8 != 0) return;
    if (!xq || !packed || !y || (n > 1 && ldy < j1)) return;
    const mlk_kernel kernel = mlk_q_r8_kernel(isa, wtype);
#if defined(__x86_64__) || defined(_M_X64)
    if ((kernel == MLK_KERNEL_AVX2_R8 || kernel == MLK_KERNEL_AVX512_VNNI_R8) &&
        mlk_q_r8_matmul_x86(kernel == MLK_KERNEL_AVX512_VNNI_R8, wtype, xq, n, k, packed, j0, j1, y, ldy))
        return;
#endif
    (void)kernel;
    mlk_r8_matmul_scalar(shape, xq, n, k, packed, j0, j1, y, ldy);
}

void mlk_q_r8_matmul_rows(int wtype, const void *xq, int64_t n, int64_t k, const void *packed, int64_t j0,
                          int64_t j1, float *y, int64_t ldy) {
    mlk_q_r8_matmul_rows_isa(mlk_active_isa(), wtype, xq, n, k, packed, j0, j1, y, ldy);
}
