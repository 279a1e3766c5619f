// Products A·Bᵀ whose every element is one fixed chain of fused multiply-adds: the inner
// dimension is cut into blocks of `block` values from the start, each block is summed by a chain
// of FMAs from zero in column order, and the block results are added in order. The result of an
// element depends on its two rows alone (not on the shape, the thread count or the instruction
// set): the AVX2 path runs eight such chains side by side, one per output column, and the plain
// path calls fmaf, which rounds once as the instruction does.
#include "ckernels.h"
#include <math.h>

#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static float chain_plain(const float *a, const float *bt, size_t ldbt, size_t k, size_t block) {
    float total = 0;
    for (size_t k0 = 0; k0 < k; k0 += block) {
        const size_t k1 = k0 + block < k ? k0 + block : k;
        float partial = 0;
        for (size_t p = k0; p < k1; p++) partial = fmaf(a[p], bt[p * ldbt], partial);
        total = total + partial;
    }
    return total;
}

#if defined(__x86_64__)
// Rows i0..i0+3 (fewer at the end) times columns j..j+7 of Bᵀ.
__attribute__((target("avx2,fma"))) static void chains_avx2(const float *a, size_t lda, size_t rows, const float *bt,
                                                          size_t ldbt, size_t j, size_t k, size_t block, float *c,
                                                          size_t ldc) {
    __m256 t[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t k0 = 0; k0 < k; k0 += block) {
        const size_t k1 = k0 + block < k ? k0 + block : k;
        __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps(), p2 = _mm256_setzero_ps(), p3 = _mm256_setzero_ps();
        if (rows == 4) {
            for (size_t p = k0; p < k1; p++) {
                const __m256 b = _mm256_loadu_ps(bt + p * ldbt + j);
                p0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p), b, p0);
                p1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + lda + p), b, p1);
                p2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * lda + p), b, p2);
                p3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * lda + p), b, p3);
            }
        } else {
            for (size_t p = k0; p < k1; p++) {
                const __m256 b = _mm256_loadu_ps(bt + p * ldbt + j);
                p0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p), b, p0);
                if (rows > 1) p1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + lda + p), b, p1);
                if (rows > 2) p2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * lda + p), b, p2);
            }
        }
        t[0] = _mm256_add_ps(t[0], p0);
        t[1] = _mm256_add_ps(t[1], p1);
        t[2] = _mm256_add_ps(t[2], p2);
        t[3] = _mm256_add_ps(t[3], p3);
    }
    for (size_t r = 0; r < rows; r++) _mm256_storeu_ps(c + r * ldc + j, t[r]);
}
#endif

void k_fma_chain_products(const float *a, size_t lda, size_t m, const float *bt, size_t ldbt, size_t n, size_t k,
                          size_t block, float *c, size_t ldc) {
    if (block == 0) block = k > 0 ? k : 1;
    size_t j0 = 0;
#if defined(__x86_64__)
    if (k_path_vector() >= K_PATH_AVX2) {
        for (size_t i = 0; i < m; i += 4) {
            const size_t rows = m - i < 4 ? m - i : 4;
            for (size_t j = 0; j + 8 <= n; j += 8) chains_avx2(a + i * lda, lda, rows, bt, ldbt, j, k, block, c + i * ldc, ldc);
        }
        j0 = n / 8 * 8;
    }
#endif
    for (size_t i = 0; i < m; i++)
        for (size_t j = j0; j < n; j++) c[i * ldc + j] = chain_plain(a + i * lda, bt + j, ldbt, k, block);
}
