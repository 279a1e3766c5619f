// One query row's attention for a group of query heads sharing a key/value head (decoding).
// The plain kernel (kernels_impl.h, `k_attend_row`) reads each key and value row once for all the
// heads but keeps the heads' outputs in memory and reduces every score on its own; for head sizes
// that are multiples of 16 up to 128 (64 and 128 in LLaMA models) this AVX-512 version scores four
// heads at a time (one reduction for four dot products) and sums the values with the outputs of
// four heads held in registers. The sums run in a different order, so results differ from the
// plain kernel by rounding only.
#include "ckernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))

// Lane i of the result is the sum of the 16 lanes of a[i] (i < 4), in its low 128 bits.
static inline __attribute__((always_inline)) AVX512 __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    // In each 128-bit lane: [a0 a1 a2 a3] partial sums.
    const __m512 s = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23))),
                                   _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23))));
    const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
    return _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
}

// HB heads (≤ 4) × DV vectors of 16 per head.
static inline __attribute__((always_inline)) AVX512 void score_heads(int HB, int DV, const float *q, size_t d,
                                                                    const float *k, size_t ldk, size_t n, float scale,
                                                                    float *scores) {
    __m512 qv[4][8];
    for (int h = 0; h < HB; h++)
        for (int t = 0; t < DV; t++) qv[h][t] = _mm512_loadu_ps(q + h * d + 16 * t);
    for (size_t j = 0; j < n; j++) {
        const float *kj = k + j * ldk;
        __m512 acc[4];
        for (int h = 0; h < HB; h++) acc[h] = _mm512_setzero_ps();
        for (int t = 0; t < DV; t++) {
            const __m512 kv = _mm512_loadu_ps(kj + 16 * t);
            for (int h = 0; h < HB; h++) acc[h] = _mm512_fmadd_ps(qv[h][t], kv, acc[h]);
        }
        for (int h = HB; h < 4; h++) acc[h] = _mm512_setzero_ps();
        float s[4];
        _mm_storeu_ps(s, reduce4(acc[0], acc[1], acc[2], acc[3]));
        for (int h = 0; h < HB; h++) scores[h * n + j] = s[h] * scale;
    }
}

static inline __attribute__((always_inline)) AVX512 void sum_values(int HB, int DV, const float *p, size_t n,
                                                                   const float *v, size_t ldv, float *out, size_t d) {
    __m512 acc[4][8];
    for (int h = 0; h < HB; h++)
        for (int t = 0; t < DV; t++) acc[h][t] = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j++) {
        const float *vj = v + j * ldv;
        __m512 pj[4];
        for (int h = 0; h < HB; h++) pj[h] = _mm512_set1_ps(p[h * n + j]);
        for (int t = 0; t < DV; t++) {
            const __m512 vv = _mm512_loadu_ps(vj + 16 * t);
            for (int h = 0; h < HB; h++) acc[h][t] = _mm512_fmadd_ps(pj[h], vv, acc[h][t]);
        }
    }
    for (int h = 0; h < HB; h++)
        for (int t = 0; t < DV; t++) _mm512_storeu_ps(out + h * d + 16 * t, acc[h][t]);
}

#define BLOCKS(F, HB, DV, ...)                                                                      \
    switch ((HB) * 16 + (DV)) {                                                                     \
    case 4 * 16 + 4: F(4, 4, __VA_ARGS__); break;                                                   \
    case 3 * 16 + 4: F(3, 4, __VA_ARGS__); break;                                                   \
    case 2 * 16 + 4: F(2, 4, __VA_ARGS__); break;                                                   \
    case 1 * 16 + 4: F(1, 4, __VA_ARGS__); break;                                                   \
    case 4 * 16 + 8: F(4, 8, __VA_ARGS__); break;                                                   \
    case 3 * 16 + 8: F(3, 8, __VA_ARGS__); break;                                                   \
    case 2 * 16 + 8: F(2, 8, __VA_ARGS__); break;                                                   \
    case 1 * 16 + 8: F(1, 8, __VA_ARGS__); break;                                                   \
    default: F(HB, DV, __VA_ARGS__); break;                                                         \
    }
#define SCORE(HB, DV, ...) score_heads(HB, DV, __VA_ARGS__)
#define VALUES(HB, DV, ...) sum_values(HB, DV, __VA_ARGS__)

static AVX512 void attend_avx512(const float *q, size_t heads, size_t d, const float *k, size_t ldk, const float *v,
                                 size_t ldv, size_t n, float scale, float *scores, float *out) {
    const int dv = (int)(d / 16);
    for (size_t h = 0; h < heads; h += 4) {
        const int hb = heads - h < 4 ? (int)(heads - h) : 4;
        BLOCKS(SCORE, hb, dv, q + h * d, d, k, ldk, n, scale, scores + h * n)
    }
    for (size_t h = 0; h < heads; h++) k_softmax(scores + h * n, n);
    for (size_t h = 0; h < heads; h += 4) {
        const int hb = heads - h < 4 ? (int)(heads - h) : 4;
        BLOCKS(VALUES, hb, dv, scores + h * n, n, v, ldv, out + h * d, d)
    }
}

#endif

void k_attend_row(const float *q, size_t heads, size_t d, const float *k, size_t ldk, const float *v, size_t ldv,
                  size_t n, float scale, float *scores, float *out) {
#if defined(__x86_64__)
    if (k_path() >= K_PATH_AVX512 && (d == 64 || d == 128)) {
        attend_avx512(q, heads, d, k, ldk, v, ldv, n, scale, scores, out);
        return;
    }
#endif
    k_attend_row_plain(q, heads, d, k, ldk, v, ldv, n, scale, scores, out);
}
