// Run-time dispatch of the hand-written kernels: kernels_impl.h is compiled three times, for
// AVX-512 (F/BW/VL/DQ + FMA + F16C), for AVX2 (+ FMA + F16C) and for baseline x86-64, and each
// call runs the set of the kernel path in use (cpu.c: the widest the CPU supports, by feature and
// not by CPU model name, unless lowered).
#include "ckernels.h"

#include <math.h>
#include <string.h>

#pragma clang fp reassociate(on)

#define SUFFIX(name) name##_base
#include "kernels_impl.h"
#undef SUFFIX

#if defined(__x86_64__)
#define SUFFIX(name) name##_avx2
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#include "kernels_impl.h"
#pragma clang attribute pop
#undef SUFFIX

#define SUFFIX(name) name##_avx512
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)
#include "kernels_impl.h"
#pragma clang attribute pop
#undef SUFFIX
#endif

typedef struct {
    const char *name;
    void (*f16_to_f32)(const uint16_t *, float *, size_t);
    void (*bf16_to_f32)(const uint16_t *, float *, size_t);
    void (*f32_to_f16)(const float *, uint16_t *, size_t);
    void (*gemv_f32)(const float *, size_t, const float *, float *, size_t, size_t, size_t);
    void (*gemv_f16)(const uint16_t *, size_t, const float *, float *, size_t, size_t, size_t);
    void (*gemv_bf16)(const uint16_t *, size_t, const float *, float *, size_t, size_t, size_t);
    void (*normalize_rows)(float *, size_t, size_t, size_t);
    size_t (*argmax)(const float *, size_t);
    void (*layer_norm)(const float *, float *, const float *, const float *, size_t, float);
    void (*rms_norm)(const float *, float *, const float *, size_t, float);
    void (*softmax)(float *, size_t);
    void (*attend_row)(const float *, size_t, size_t, const float *, size_t, const float *, size_t, size_t, float, float *, float *);
    void (*exp_shift)(float *, float, size_t);
    void (*quick_gelu)(float *, size_t);
    void (*gelu_erf)(float *, size_t);
    void (*silu)(float *, size_t);
    void (*silu_mul)(float *, const float *, size_t);
    void (*add)(float *, const float *, size_t);
    void (*scale)(float *, float, size_t);
    void (*q8p_pack)(const float *, size_t, size_t, size_t, size_t, size_t, size_t, int8_t *, float *, int32_t *);
    void (*quantize_rows_u8)(const float *, size_t, size_t, size_t, size_t, uint8_t *, float *);
} kernel_table;

#define TABLE(S)                                                                                   \
    {#S, k_f16_to_f32_##S, k_bf16_to_f32_##S, k_f32_to_f16_##S, k_gemv_f32_##S, k_gemv_f16_##S,    \
     k_gemv_bf16_##S, k_normalize_rows_##S, k_argmax_##S, k_layer_norm_##S, k_rms_norm_##S, k_softmax_##S, k_attend_row_##S, k_exp_shift_##S,            \
     k_quick_gelu_##S, k_gelu_erf_##S, k_silu_##S, k_silu_mul_##S, k_add_##S, k_scale_##S,           \
     k_q8p_pack_##S, k_quantize_rows_u8_##S}

static const kernel_table table_base = TABLE(base);
#if defined(__x86_64__)
static const kernel_table table_avx2 = TABLE(avx2);
static const kernel_table table_avx512 = TABLE(avx512);
#endif

// The table of the kernel path in use (k_path_vector: paths above AVX-512 add no element-wise
// kernels of their own).
static const kernel_table *kernels(void) {
#if defined(__x86_64__)
    const int path = k_path_vector();
    if (path >= K_PATH_AVX512) return &table_avx512;
    if (path >= K_PATH_AVX2) return &table_avx2;
#endif
    return &table_base;
}

const char *k_instruction_set(void) { return kernels()->name; }

void k_f16_to_f32(const uint16_t *src, float *dst, size_t n) { kernels()->f16_to_f32(src, dst, n); }
void k_bf16_to_f32(const uint16_t *src, float *dst, size_t n) { kernels()->bf16_to_f32(src, dst, n); }
void k_f32_to_f16(const float *src, uint16_t *dst, size_t n) { kernels()->f32_to_f16(src, dst, n); }
void k_gemv_f32(const float *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    kernels()->gemv_f32(w, ldw, x, y, cols, r0, r1);
}
void k_gemv_f16(const uint16_t *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    kernels()->gemv_f16(w, ldw, x, y, cols, r0, r1);
}
void k_gemv_bf16(const uint16_t *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    kernels()->gemv_bf16(w, ldw, x, y, cols, r0, r1);
}
void k_normalize_rows(float *x, size_t n, size_t cols, size_t ld) { kernels()->normalize_rows(x, n, cols, ld); }
size_t k_argmax(const float *x, size_t n) { return kernels()->argmax(x, n); }
void k_layer_norm(const float *x, float *y, const float *w, const float *b, size_t n, float eps) {
    kernels()->layer_norm(x, y, w, b, n, eps);
}
void k_rms_norm(const float *x, float *y, const float *w, size_t n, float eps) { kernels()->rms_norm(x, y, w, n, eps); }
void k_softmax(float *x, size_t n) { kernels()->softmax(x, n); }
void k_attend_row_plain(const float *q, size_t heads, size_t d, const float *k, size_t ldk, const float *v, size_t ldv,
                        size_t n, float scale, float *scores, float *out) {
    kernels()->attend_row(q, heads, d, k, ldk, v, ldv, n, scale, scores, out);
}
void k_exp_shift(float *x, float shift, size_t n) { kernels()->exp_shift(x, shift, n); }
void k_quick_gelu(float *x, size_t n) { kernels()->quick_gelu(x, n); }
void k_gelu_erf(float *x, size_t n) { kernels()->gelu_erf(x, n); }
void k_silu(float *x, size_t n) { kernels()->silu(x, n); }
void k_silu_mul(float *gate, const float *up, size_t n) { kernels()->silu_mul(gate, up, n); }
void k_add(float *y, const float *x, size_t n) { kernels()->add(y, x, n); }
void k_scale(float *y, float s, size_t n) { kernels()->scale(y, s, n); }
void k_q8p_pack(const float *w, size_t ldw, size_t n, size_t k, size_t block, size_t r0, size_t r1,
                int8_t *values, float *scales, int32_t *sums) {
    kernels()->q8p_pack(w, ldw, n, k, block, r0, r1, values, scales, sums);
}
void k_quantize_rows_u8(const float *x, size_t m, size_t k, size_t ldx, size_t block, uint8_t *q, float *scales) {
    kernels()->quantize_rows_u8(x, m, k, ldx, block, q, scales);
}
float k_expf(float x) { return expf_inline_base(x); }
