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

// Int8 products with AVX-512 VNNI over "packed q8" weights (layout in gemm_q8.c): W [n, k]
// quantized per row and block of k (block 32, 64 or 128 dividing k), activations quantized per
// row and block on the fly.
int k_has_vnni(void);
size_t k_q8p_values_size(size_t n, size_t k);
size_t k_q8p_scales_count(size_t n, size_t k, size_t block);
// Packs rows [r0, r1) of W; `w` points at row r0.
void k_q8p_pack(const float *w, size_t ldw, size_t n, size_t k, size_t block, size_t r0, size_t r1,
                int8_t *values, float *scales, int32_t *sums);
void k_q8p_unpack_rows(const int8_t *values, const float *scales, size_t k, size_t block, size_t r0, size_t count, float *dst);
void k_quantize_rows_u8(const float *x, size_t m, size_t k, size_t ldx, size_t block, uint8_t *q, float *scales);
// The int8 product's kernels, all giving identical results. AMX counts only once Linux granted the
// process the tile state (requested on the first call).
enum { K_Q8_AVX2 = 0, K_Q8_VNNI = 1, K_Q8_AMX = 2 };
// Bit (1 << kernel) set for each kernel this CPU runs.
int k_q8_kernels(void);
// c[i, j] for rows i < m and columns j in row groups [nb0, nb1) of 16 (j < n), with `kernel`
// (which must be in k_q8_kernels()).
void k_gemm_q8p(int kernel, const uint8_t *a, const float *sa, size_t m, size_t k, size_t block,
                const int8_t *values, const float *scales, const int32_t *sums, size_t n, size_t nb0, size_t nb1,
                float *c, size_t ldc);

// 4-bit weights ("packed q4", layout in gemm_q4.c): blocks of 32 columns with an F16 scale.
size_t k_q4p_values_size(size_t n, size_t k);
size_t k_q4p_scales_count(size_t n, size_t k);
// Packs rows [r0, r1) of W; `w` points at row r0.
void k_q4p_pack(const float *w, size_t ldw, size_t n, size_t k, size_t r0, size_t r1, uint8_t *values,
                uint16_t *scales);
void k_q4p_unpack_rows(const uint8_t *values, const uint16_t *scales, size_t k, size_t r0, size_t count, float *dst);
// Activations for the q4 product: per row and block of 32, s8 values, their scale and 8 × their sum.
void k_quantize_rows_s8(const float *x, size_t m, size_t k, size_t ldx, int8_t *q, float *scales, int32_t *sums);
// Whether the kernel path in use has a 4-bit product (AVX2 and above; VNNI and AVX2 give identical results).
int k_q4_available(void);
// c[i, j] for rows i < m and columns j in row groups [nb0, nb1) of 16 (j < n). Requires k_q4_available().
void k_gemm_q4p(const int8_t *a, const float *sa, const int32_t *sumsa, size_t m, size_t k, const uint8_t *values,
                const uint16_t *scales, size_t n, size_t nb0, size_t nb1, float *c, size_t ldc);

// y[i, j] = x[i, :] · W[j, :] for rows i < m and weight rows j in [n0, n1), W in F16 (bf16 = 0)
// or BF16 (bf16 = 1) read in place and widened in registers. For short prompts.
void k_gemm_half(const float *x, size_t m, size_t ldx, const uint16_t *w, size_t ldw, size_t k, size_t n0, size_t n1,
                 float *y, size_t ldy, int bf16);

// y[r] = W[r, :] · x for weight rows r in [r0, r1), W in F16 (bf16 = 0) or BF16 (bf16 = 1): the
// decoding product: rows longer than 4096 columns stream 8 rows at a time (AVX-512), others go
// through the one-row kernels above.
void k_gemv_half(const uint16_t *w, size_t ldw, const float *x, float *y, size_t k, size_t r0, size_t r1, int bf16);

// out[j] = Σ_k a[k] · rows[j·ld + k] for j < count, in Double with four running sums (sum l
// takes k ≡ l mod 4, leftovers go to sum 0, result (s0 + s1) + (s2 + s3)): bit for bit the
// plain loop's result.
void k_dots_double(const float *a, const float *rows, size_t ld, size_t count, size_t n, double *out);

// c[i·ldc + j] = A[i, :] · B[j, :] for i < m, j < n, with Bᵀ given (bt[p·ldbt + j] = B[j, p]): the
// k products are cut into blocks of `block` from the start, each block summed by a chain of fused
// multiply-adds from zero in order, the block sums added in order. Identical on every path.
void k_fma_chain_products(const float *a, size_t lda, size_t m, const float *bt, size_t ldbt, size_t n, size_t k,
                          size_t block, float *c, size_t ldc);

// Row-wise normalisations of one row of n values (in and out may alias).
void k_layer_norm(const float *x, float *y, const float *weight, const float *bias, size_t n, float eps);
// Rows divided by max(‖row‖, 1e-12), computed in double.
void k_normalize_rows(float *x, size_t n, size_t cols, size_t ld);
// The first index of the largest of n ≥ 1 values (NaNs never win unless in front).
size_t k_argmax(const float *x, size_t n);
void k_rms_norm(const float *x, float *y, const float *weight, size_t n, float eps);
// In-place softmax of one row.
void k_softmax(float *x, size_t n);
// One query row's attention for `heads` query heads sharing one key/value head, over n keys
// (scores: heads · n floats of scratch).
void k_attend_row(const float *q, size_t heads, size_t d, const float *k, size_t ldk, const float *v, size_t ldv, size_t n,
                  float scale, float *scores, float *out);
// The same with the plain loops of kernels_impl.h (the reference for the AVX-512 version of attend.c).
void k_attend_row_plain(const float *q, size_t heads, size_t d, const float *k, size_t ldk, const float *v, size_t ldv,
                        size_t n, float scale, float *scores, float *out);

// Element-wise, in place.
void k_quick_gelu(float *x, size_t n);          // x * sigmoid(1.702 x)
void k_gelu_erf(float *x, size_t n);            // 0.5 x (1 + erf(x / sqrt 2))
void k_silu(float *x, size_t n);                // x * sigmoid(x)
void k_silu_mul(float *gate, const float *up, size_t n); // gate = silu(gate) * up
void k_add(float *y, const float *x, size_t n);  // y += x
void k_scale(float *y, float s, size_t n);       // y *= s
void k_exp_shift(float *x, float shift, size_t n); // x = exp(x - shift)

// CPU features (CPUID, counted only where the operating system saves their registers).
enum {
    K_CPU_SSE3 = 1 << 0, K_CPU_SSSE3 = 1 << 1, K_CPU_SSE4_2 = 1 << 2, K_CPU_AVX = 1 << 3, K_CPU_FMA = 1 << 4,
    K_CPU_F16C = 1 << 5, K_CPU_AVX2 = 1 << 6, K_CPU_AVX512F = 1 << 7, K_CPU_AVX512DQ = 1 << 8,
    K_CPU_AVX512CD = 1 << 9, K_CPU_AVX512BW = 1 << 10, K_CPU_AVX512VL = 1 << 11, K_CPU_AVX512_VNNI = 1 << 12,
    K_CPU_AVX512_BF16 = 1 << 13, K_CPU_AMX_TILE = 1 << 14, K_CPU_AMX_INT8 = 1 << 15, K_CPU_AMX_BF16 = 1 << 16,
};
uint64_t k_cpu_features(void);
// Asks Linux for the AMX tile state for this process; returns 1 when granted.
int k_amx_request(void);

// Keeps freed blocks of up to 32 MB (and up to 512 MB of freed heap) in the process for reuse
// (memory.c); for short-lived processes that allocate and free large matrices repeatedly.
void k_keep_freed_memory(void);

// Worker pool for parallel loops (pool.c). `k_pool_run` calls fn(ctx, i) for every i < items on
// up to `threads` threads (the caller included; only the caller while recent jobs found the
// helpers without a core, or when the last job from the same `site`, a number naming the call
// site, was too short to share) and returns 1 when done. Without running anything it returns -1 when
// the items are best run on the calling thread (called from inside a job, whose threads are all
// busy, or no worker threads), and 0 when another caller's job is running (the caller then runs
// the items on other threads).
typedef void (*k_pool_fn)(void *ctx, size_t index);
int k_pool_run(size_t threads, size_t items, k_pool_fn fn, void *ctx, uint32_t site);
// Sends workers spinning between jobs to sleep now (before work on other threads, e.g. OpenBLAS's).
void k_pool_park(void);
// CPUs this process may run on (sched_getaffinity).
long k_pool_cpu_count(void);
// Time in parallel regions, per thread (pool.c): a region is a pool job run by this thread or a
// product that OpenBLAS may spread over its threads; regions inside regions count once.
// `k_region_ns` is this thread's total so far, the region it is in included, so the wall time
// of a span less the growth of this total is the time the span ran on one thread.
void k_region_begin(void);
void k_region_end(void);
uint64_t k_region_ns(void);

// The kernel path: the widest instruction set the hand-written kernels may use. Each path runs
// every kernel of the paths below it where it has none of its own. The best path this CPU runs is
// the default; LLAVA_KERNELS=base|avx2|avx512|vnni|amx (read on first use) or k_set_path lower
// it, so a wide CPU also runs, and tests, the narrower paths.
enum { K_PATH_BASE = 0, K_PATH_AVX2 = 1, K_PATH_AVX512 = 2, K_PATH_VNNI = 3, K_PATH_AMX = 4 };
// The widest path this CPU runs (AMX: once Linux granted the tile state and a self-check passed).
int k_path_best(void);
// The path in use.
int k_path(void);
// Sets the path (clamped to k_path_best()); returns the path now in use.
int k_set_path(int path);
// The path LLAVA_KERNELS asks for (-1 when unset, -2 when it names no path).
int k_path_requested(void);
// k_path() for the element-wise kernels, which need no AMX check to choose (internal).
int k_path_vector(void);

// The instruction set the element-wise kernels run with: "avx512", "avx2" or "base".
const char *k_instruction_set(void);

// Vectorisable exp used by softmax and the activations (about 1 ulp on the normal range).
float k_expf(float x);

#ifdef __cplusplus
}
#endif
#endif
