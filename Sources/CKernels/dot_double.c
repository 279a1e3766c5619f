// Dot products of Float32 rows accumulated in Double, several at a time, with exactly the
// arithmetic of the plain loop they replace: four running sums, sum l taking the products
// k ≡ l (mod 4) in order, the leftover columns added to sum 0, and (s0 + s1) + (s2 + s3) at
// the end. Each Float product is exact in Double, so only the sums round, in the same order
// as the plain loop: the results are identical, bit for bit. The AVX2 path keeps the four sums
// of one dot product in the four lanes of one register and runs four dot products side by side.
#include "ckernels.h"

#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double dot_plain(const float *a, const float *b, size_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += (double)a[k] * (double)b[k];
        s1 += (double)a[k + 1] * (double)b[k + 1];
        s2 += (double)a[k + 2] * (double)b[k + 2];
        s3 += (double)a[k + 3] * (double)b[k + 3];
    }
    for (; k < n; k++) s0 += (double)a[k] * (double)b[k];
    return (s0 + s1) + (s2 + s3);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static double finish(__m256d acc, const float *a, const float *b, size_t k, size_t n) {
    double s[4];
    _mm256_storeu_pd(s, acc);
    for (; k < n; k++) s[0] += (double)a[k] * (double)b[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

__attribute__((target("avx2"))) static void dots_avx2(const float *a, const float *rows, size_t ld, size_t count,
                                                     size_t n, double *out) {
    size_t j = 0;
    for (; j + 4 <= count; j += 4) {
        const float *b0 = rows + j * ld, *b1 = b0 + ld, *b2 = b1 + ld, *b3 = b2 + ld;
        __m256d c0 = _mm256_setzero_pd(), c1 = _mm256_setzero_pd(), c2 = _mm256_setzero_pd(), c3 = _mm256_setzero_pd();
        size_t k = 0;
        for (; k + 4 <= n; k += 4) {
            const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(a + k));
            c0 = _mm256_add_pd(c0, _mm256_mul_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(b0 + k))));
            c1 = _mm256_add_pd(c1, _mm256_mul_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(b1 + k))));
            c2 = _mm256_add_pd(c2, _mm256_mul_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(b2 + k))));
            c3 = _mm256_add_pd(c3, _mm256_mul_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(b3 + k))));
        }
        out[j] = finish(c0, a, b0, k, n);
        out[j + 1] = finish(c1, a, b1, k, n);
        out[j + 2] = finish(c2, a, b2, k, n);
        out[j + 3] = finish(c3, a, b3, k, n);
    }
    for (; j < count; j++) out[j] = dot_plain(a, rows + j * ld, n);
}
#endif

void k_dots_double(const float *a, const float *rows, size_t ld, size_t count, size_t n, double *out) {
#if defined(__x86_64__)
    if (k_path() >= K_PATH_AVX2) {
        dots_avx2(a, rows, ld, count, n, out);
        return;
    }
#endif
    for (size_t j = 0; j < count; j++) out[j] = dot_plain(a, rows + j * ld, n);
}
