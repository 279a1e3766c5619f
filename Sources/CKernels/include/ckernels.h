// Hot loops that the BLAS library does not cover. Each is compiled for AVX-512, AVX2 and
// baseline x86-64; the first call picks the widest instruction set the CPU supports.
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

// Widening (exact): IEEE half and bfloat16 to float.
void k_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void k_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
// Narrowing with round-to-nearest-even (used by the checkpoint writer in tests and quantization).
void k_f32_to_f16(const float *src, uint16_t *dst, size_t n);

// y[i] = dot(W[i, :], x) for rows i in [r0, r1). W is row-major with leading dimension ldw.
void k_gemv_f32(const float *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1);
void k_gemv_f16(const uint16_t *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1);
void k_gemv_bf16(const uint16_t *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1);

// Block-quantized int8 weights: one Float32 scale per `block` consecutive values of a row
// (n and cols are multiples of block for the matrix forms).
void k_quantize_q8(const float *src, int8_t *q, float *scales, size_t n, size_t block);
void k_dequantize_q8(const int8_t *q, const float *scales, float *dst, size_t n, size_t block);
void k_gemv_q8(const int8_t *w, const float *scales, size_t cols, size_t block, const float *x, float *y, size_t r0, size_t r1); // block = 32

// Row-wise normalisations of one row of n values (in and out may alias).
void k_layer_norm(const float *x, float *y, const float *weight, const float *bias, size_t n, float eps);
void k_rms_norm(const float *x, float *y, const float *weight, size_t n, float eps);
// In-place softmax of one row.
void k_softmax(float *x, size_t n);

// Element-wise, in place.
void k_quick_gelu(float *x, size_t n);          // x * sigmoid(1.702 x)
void k_gelu_erf(float *x, size_t n);            // 0.5 x (1 + erf(x / sqrt 2))
void k_silu(float *x, size_t n);                // x * sigmoid(x)
void k_silu_mul(float *gate, const float *up, size_t n); // gate = silu(gate) * up
void k_add(float *y, const float *x, size_t n);  // y += x
void k_scale(float *y, float s, size_t n);       // y *= s
void k_exp_shift(float *x, float shift, size_t n); // x = exp(x - shift)

/// The instruction set the kernels run with: "avx512", "avx2" or "base".
const char *k_instruction_set(void);

// Vectorisable exp used by softmax and the activations (about 1 ulp on the normal range).
float k_expf(float x);

#ifdef __cplusplus
}
#endif
#endif
