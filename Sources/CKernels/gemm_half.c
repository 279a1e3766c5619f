// y = x · Wᵀ for a few rows of x (prefills of short prompts) with F16 or BF16 weights read
// straight from their storage: each group of 4 weight rows is widened in registers, 16 columns
// at a time, and multiplied into up to 6 rows of x, so the weights are read once and never
// written out as Float32. Large row counts go through sgemm instead (see Linear.swift).
#include "ckernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

static inline __attribute__((always_inline)) AVX512 __m512 load_weights(const uint16_t *p, int bf16) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline __attribute__((always_inline)) AVX512 __m512 load_weights_masked(const uint16_t *p, __mmask16 m, int bf16) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

// MR rows of x × NR rows of W (NR ≤ 4, MR ≤ 6), over all k.
static inline __attribute__((always_inline)) AVX512 void tile(int MR, int NR, const float *x, size_t ldx,
                                                             const uint16_t *w, size_t ldw, size_t k, float *y,
                                                             size_t ldy, int bf16) {
    __m512 acc[6][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 16 <= k; c += 16) {
        __m512 wv[4];
        for (int j = 0; j < NR; j++) wv[j] = load_weights(w + j * ldw + c, bf16);
        for (int i = 0; i < MR; i++) {
            const __m512 xv = _mm512_loadu_ps(x + i * ldx + c);
            for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(wv[j], xv, acc[i][j]);
        }
    }
    if (c < k) {
        const __mmask16 m = (__mmask16)((1u << (k - c)) - 1);
        __m512 wv[4];
        for (int j = 0; j < NR; j++) wv[j] = load_weights_masked(w + j * ldw + c, m, bf16);
        for (int i = 0; i < MR; i++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + c);
            for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(wv[j], xv, acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) y[i * ldy + j] = _mm512_reduce_add_ps(acc[i][j]);
}

static AVX512 void product_avx512(const float *x, size_t m, size_t ldx, const uint16_t *w, size_t ldw, size_t k,
                                  size_t n0, size_t n1, float *y, size_t ldy, int bf16) {
    for (size_t n = n0; n < n1; n += 4) {
        const size_t nr = n1 - n < 4 ? n1 - n : 4;
        for (size_t i = 0; i < m; i += 6) {
            const size_t mr = m - i < 6 ? m - i : 6;
            const float *xi = x + i * ldx;
            const uint16_t *wn = w + n * ldw;
            float *yi = y + i * ldy + n;
#define T(MR, NR) tile(MR, NR, xi, ldx, wn, ldw, k, yi, ldy, bf16)
            switch (mr * 8 + nr) {
            case 6 * 8 + 4: T(6, 4); break;
            case 6 * 8 + 3: T(6, 3); break;
            case 6 * 8 + 2: T(6, 2); break;
            case 6 * 8 + 1: T(6, 1); break;
            case 5 * 8 + 4: T(5, 4); break;
            case 4 * 8 + 4: T(4, 4); break;
            case 3 * 8 + 4: T(3, 4); break;
            case 2 * 8 + 4: T(2, 4); break;
            case 1 * 8 + 4: T(1, 4); break;
            default:
                for (size_t a = 0; a < mr; a++)
                    for (size_t b = 0; b < nr; b++) tile(1, 1, xi + a * ldx, ldx, wn + b * ldw, ldw, k, yi + a * ldy + b, ldy, bf16);
            }
#undef T
        }
    }
}

// Matrix-vector product for decoding with long rows: 8 weight rows at a time, 32 columns per step
// (two accumulators per row, so the adds do not wait on each other), the next kilobyte of each
// row prefetched, so each load of the vector serves 8 rows. Once the vector no longer fits the
// L1 cache beside the weight streams (more than 4096 columns), the one-row kernels reload it
// from L2 for every row; there this kernel read 1.3-2.7x their bytes per second (2-core AMD EPYC
// with AVX-512; 4 rows, or prefetching further ahead, were slower). Up to 4096 columns the
// one-row kernels were as fast or faster, and are used.
static inline __attribute__((always_inline)) AVX512 void gemv_rows(int NR, const uint16_t *w, size_t ldw,
                                                                  const float *x, size_t k, float *y, int bf16) {
    __m512 a[8], b[8];
    for (int j = 0; j < NR; j++) a[j] = b[j] = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 32 <= k; c += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
        for (int j = 0; j < NR; j++) {
            const uint16_t *p = w + j * ldw + c;
            _mm_prefetch((const char *)(p + 512), _MM_HINT_T0);
            a[j] = _mm512_fmadd_ps(load_weights(p, bf16), x0, a[j]);
            b[j] = _mm512_fmadd_ps(load_weights(p + 16, bf16), x1, b[j]);
        }
    }
    for (; c < k; c += 16) {
        const __mmask16 m = k - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - c)) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
        for (int j = 0; j < NR; j++) a[j] = _mm512_fmadd_ps(load_weights_masked(w + j * ldw + c, m, bf16), xv, a[j]);
    }
    for (int j = 0; j < NR; j++) y[j] = _mm512_reduce_add_ps(_mm512_add_ps(a[j], b[j]));
}

static AVX512 void gemv_avx512(const uint16_t *w, size_t ldw, const float *x, float *y, size_t k, size_t r0,
                               size_t r1, int bf16) {
    size_t r = r0;
    for (; r + 8 <= r1; r += 8) gemv_rows(8, w + r * ldw, ldw, x, k, y + r, bf16);
    for (; r + 4 <= r1; r += 4) gemv_rows(4, w + r * ldw, ldw, x, k, y + r, bf16);
    for (; r < r1; r++) gemv_rows(1, w + r * ldw, ldw, x, k, y + r, bf16);
}

// The same on AVX2 + FMA + F16C: tiles of 3 rows of x × 4 weight rows, 8 columns per step (12
// accumulators, 3 rows of x and 1 weight vector: the 16 registers). The last k % 8 columns are
// copied into zero-padded vectors. Each output is one accumulator summed in the same order
// whatever the tile's shape, so the split over threads changes no value.
#define AVX2 __attribute__((target("avx2,fma,f16c")))

static inline __attribute__((always_inline)) AVX2 __m256 load_weights8(const uint16_t *p, int bf16) {
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

static inline __attribute__((always_inline)) AVX2 float sum8(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

static inline __attribute__((always_inline)) AVX2 void tile_avx2(int MR, int NR, const float *x, size_t ldx,
                                                                const uint16_t *w, size_t ldw, size_t k, float *y,
                                                                size_t ldy, int bf16) {
    __m256 acc[3][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 8 <= k; c += 8) {
        __m256 xv[3];
        for (int i = 0; i < MR; i++) xv[i] = _mm256_loadu_ps(x + i * ldx + c);
        for (int j = 0; j < NR; j++) {
            const __m256 wv = load_weights8(w + j * ldw + c, bf16);
            for (int i = 0; i < MR; i++) acc[i][j] = _mm256_fmadd_ps(wv, xv[i], acc[i][j]);
        }
    }
    if (c < k) {
        const size_t rest = k - c;
        float xt[3][8] = {{0}};
        uint16_t wt[8] = {0};
        __m256 xv[3];
        for (int i = 0; i < MR; i++) {
            memcpy(xt[i], x + i * ldx + c, rest * sizeof(float));
            xv[i] = _mm256_loadu_ps(xt[i]);
        }
        for (int j = 0; j < NR; j++) {
            memcpy(wt, w + j * ldw + c, rest * sizeof(uint16_t));
            const __m256 wv = load_weights8(wt, bf16);
            for (int i = 0; i < MR; i++) acc[i][j] = _mm256_fmadd_ps(wv, xv[i], acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) y[i * ldy + j] = sum8(acc[i][j]);
}

static AVX2 void product_avx2(const float *x, size_t m, size_t ldx, const uint16_t *w, size_t ldw, size_t k,
                              size_t n0, size_t n1, float *y, size_t ldy, int bf16) {
    for (size_t n = n0; n < n1; n += 4) {
        const size_t nr = n1 - n < 4 ? n1 - n : 4;
        for (size_t i = 0; i < m; i += 3) {
            const size_t mr = m - i < 3 ? m - i : 3;
            const float *xi = x + i * ldx;
            const uint16_t *wn = w + n * ldw;
            float *yi = y + i * ldy + n;
#define T(MR, NR) tile_avx2(MR, NR, xi, ldx, wn, ldw, k, yi, ldy, bf16)
            switch (mr * 8 + nr) {
            case 3 * 8 + 4: T(3, 4); break;
            case 3 * 8 + 3: T(3, 3); break;
            case 3 * 8 + 2: T(3, 2); break;
            case 3 * 8 + 1: T(3, 1); break;
            case 2 * 8 + 4: T(2, 4); break;
            case 2 * 8 + 3: T(2, 3); break;
            case 2 * 8 + 2: T(2, 2); break;
            case 2 * 8 + 1: T(2, 1); break;
            case 1 * 8 + 4: T(1, 4); break;
            case 1 * 8 + 3: T(1, 3); break;
            case 1 * 8 + 2: T(1, 2); break;
            default: T(1, 1); break;
            }
#undef T
        }
    }
}

// Decoding with long rows on AVX2: 4 weight rows at a time, 16 columns per step in two
// accumulators per row, so each load of the vector serves 4 rows.
static inline __attribute__((always_inline)) AVX2 void gemv_rows_avx2(int NR, const uint16_t *w, size_t ldw,
                                                                     const float *x, size_t k, float *y, int bf16) {
    __m256 a[4], b[4];
    for (int j = 0; j < NR; j++) a[j] = b[j] = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 16 <= k; c += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
        for (int j = 0; j < NR; j++) {
            const uint16_t *p = w + j * ldw + c;
            a[j] = _mm256_fmadd_ps(load_weights8(p, bf16), x0, a[j]);
            b[j] = _mm256_fmadd_ps(load_weights8(p + 8, bf16), x1, b[j]);
        }
    }
    // The last k % 16 columns, 8 at a time, copied into zero-padded vectors as in tile_avx2.
    for (; c < k; c += 8) {
        const size_t rest = k - c < 8 ? k - c : 8;
        float xt[8] = {0};
        memcpy(xt, x + c, rest * sizeof(float));
        const __m256 xv = _mm256_loadu_ps(xt);
        for (int j = 0; j < NR; j++) {
            uint16_t wt[8] = {0};
            memcpy(wt, w + j * ldw + c, rest * sizeof(uint16_t));
            a[j] = _mm256_fmadd_ps(load_weights8(wt, bf16), xv, a[j]);
        }
    }
    for (int j = 0; j < NR; j++) y[j] = sum8(_mm256_add_ps(a[j], b[j]));
}

static AVX2 void gemv_avx2(const uint16_t *w, size_t ldw, const float *x, float *y, size_t k, size_t r0, size_t r1,
                           int bf16) {
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_rows_avx2(4, w + r * ldw, ldw, x, k, y + r, bf16);
    for (; r < r1; r++) gemv_rows_avx2(1, w + r * ldw, ldw, x, k, y + r, bf16);
}
#endif

static void product_portable(const float *x, size_t m, size_t ldx, const uint16_t *w, size_t ldw, size_t k,
                             size_t n0, size_t n1, float *y, size_t ldy, int bf16) {
    float row[1024];
    for (size_t n = n0; n < n1; n++) {
        for (size_t c0 = 0; c0 < k; c0 += 1024) {
            const size_t len = k - c0 < 1024 ? k - c0 : 1024;
            if (bf16) k_bf16_to_f32(w + n * ldw + c0, row, len);
            else k_f16_to_f32(w + n * ldw + c0, row, len);
            for (size_t i = 0; i < m; i++) {
                float acc = 0.0f;
                for (size_t c = 0; c < len; c++) acc += row[c] * x[i * ldx + c0 + c];
                y[i * ldy + n] = c0 == 0 ? acc : y[i * ldy + n] + acc;
            }
        }
    }
}

void k_gemm_half(const float *x, size_t m, size_t ldx, const uint16_t *w, size_t ldw, size_t k, size_t n0, size_t n1,
                 float *y, size_t ldy, int bf16) {
#if defined(__x86_64__)
    const int path = k_path();
    if (path >= K_PATH_AVX512) {
        product_avx512(x, m, ldx, w, ldw, k, n0, n1, y, ldy, bf16);
        return;
    }
    if (path >= K_PATH_AVX2) {
        product_avx2(x, m, ldx, w, ldw, k, n0, n1, y, ldy, bf16);
        return;
    }
#endif
    product_portable(x, m, ldx, w, ldw, k, n0, n1, y, ldy, bf16);
}

void k_gemv_half(const uint16_t *w, size_t ldw, const float *x, float *y, size_t k, size_t r0, size_t r1, int bf16) {
#if defined(__x86_64__)
    const int path = k_path();
    if (path >= K_PATH_AVX512 && k > 4096) {
        gemv_avx512(w, ldw, x, y, k, r0, r1, bf16);
        return;
    }
    if (path == K_PATH_AVX2) {
        gemv_avx2(w, ldw, x, y, k, r0, r1, bf16);
        return;
    }
#endif
    if (bf16) k_gemv_bf16(w, ldw, x, y, k, r0, r1);
    else k_gemv_f16(w, ldw, x, y, k, r0, r1);
}
