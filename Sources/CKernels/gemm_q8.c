// Int8 matrix products with AVX-512 VNNI (vpdpbusd: u8 × s8 → s32), for weights quantized at
// load time ("q8") and activations quantized on the fly.
//
// Weight layout ("packed q8"), for W [n, k] with k a multiple of the block size (32, 64 or 128):
//   values: [ceil(n/16)][k/4][16][4] int8 — for each group of 16 output rows and each group of
//           4 input columns, the 16 rows' 4 values side by side (one 64-byte vector);
//   scales: [ceil(n/16)][k/block][16] float — one scale per row and block of input columns;
//   sums:   [ceil(n/16)][k/block][16] int32 — 128 × the row's sum over the block (see below).
// Rows past n are zero. Activations x [m, k] are quantized per row and block to q in [-127, 127]
// with scale s = max|x| / 127 and stored as u8 = q + 128; the +128 is removed with `sums`.
// y[i, j] = Σ_b sx[i, b] · sw[j, b] · (Σ_{c∈b} u8[i, c] · w[j, c] − 128 Σ_{c∈b} w[j, c]).
#include "ckernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

size_t k_q8p_values_size(size_t n, size_t k) { return ((n + 15) / 16) * 16 * k; }
size_t k_q8p_scales_count(size_t n, size_t k, size_t block) { return ((n + 15) / 16) * 16 * (k / block); }

void k_q8p_unpack_rows(const int8_t *values, const float *scales, size_t k, size_t block, size_t r0, size_t count,
                       float *dst) {
    const size_t kb = k / block;
    for (size_t i = 0; i < count; i++) {
        const size_t r = r0 + i, nb = r / 16, lane = r % 16;
        const int8_t *vbase = values + nb * 16 * k;
        for (size_t col = 0; col < k; col++) {
            const float s = scales[(nb * kb + col / block) * 16 + lane];
            dst[i * k + col] = (float)vbase[(col / 4) * 64 + lane * 4 + col % 4] * s;
        }
    }
}

#if defined(__x86_64__)
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

// One register tile: MR rows of the activations × NR groups of 16 output columns.
static inline __attribute__((always_inline)) VNNI void tile(
    int MR, int NR, const uint8_t *a, size_t k, const float *sa, const int8_t *values, const float *scales,
    const int32_t *sums, size_t nb0, size_t kbCount, size_t block, float *c, size_t ldc, size_t ncols, size_t col0) {
    __m512 accf[4][3];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) accf[i][j] = _mm512_setzero_ps();
    const size_t groupsPerBlock = block / 4;
    for (size_t kb = 0; kb < kbCount; kb++) {
        __m512i acci[4][3];
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acci[i][j] = _mm512_setzero_si512();
        const size_t g0 = kb * groupsPerBlock;
        for (size_t g = g0; g < g0 + groupsPerBlock; g++) {
            __m512i b[3];
            for (int j = 0; j < NR; j++) b[j] = _mm512_loadu_si512((const void *)(values + ((nb0 + j) * k / 4 + g) * 64));
            for (int i = 0; i < MR; i++) {
                int32_t four;
                memcpy(&four, a + i * k + g * 4, 4);
                const __m512i av = _mm512_set1_epi32(four);
                for (int j = 0; j < NR; j++) acci[i][j] = _mm512_dpbusd_epi32(acci[i][j], av, b[j]);
            }
        }
        for (int j = 0; j < NR; j++) {
            const size_t off = ((nb0 + j) * kbCount + kb) * 16;
            const __m512 sw = _mm512_loadu_ps(scales + off);
            const __m512i corr = _mm512_loadu_si512((const void *)(sums + off));
            for (int i = 0; i < MR; i++) {
                const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(sa[i * kbCount + kb]));
                const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acci[i][j], corr));
                accf[i][j] = _mm512_fmadd_ps(v, s, accf[i][j]);
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            const size_t col = col0 + (size_t)j * 16;
            if (col + 16 <= ncols) {
                _mm512_storeu_ps(c + i * ldc + col, accf[i][j]);
            } else if (col < ncols) {
                const __mmask16 mask = (__mmask16)((1u << (ncols - col)) - 1);
                _mm512_mask_storeu_ps(c + i * ldc + col, mask, accf[i][j]);
            }
        }
    }
}

#define TILE(MR, NR) tile(MR, NR, a, k, sa, values, scales, sums, nb, kbCount, block, c, ldc, n, nb * 16)

static VNNI void gemm_vnni(const uint8_t *a, const float *sa, size_t m, size_t k, size_t block, const int8_t *values,
                           const float *scales, const int32_t *sums, size_t n, size_t nb0, size_t nb1, float *c, size_t ldc) {
    const size_t kbCount = k / block;
    const size_t rowsPerChunk = 96;
    for (size_t m0 = 0; m0 < m; m0 += rowsPerChunk) {
        const size_t m1 = m0 + rowsPerChunk < m ? m0 + rowsPerChunk : m;
        for (size_t nb = nb0; nb < nb1; nb += 3) {
            const size_t nr = nb1 - nb < 3 ? nb1 - nb : 3;
            for (size_t i = m0; i < m1; i += 4) {
                const size_t mr = m1 - i < 4 ? m1 - i : 4;
                const uint8_t *ai = a + i * k;
                const float *si = sa + i * kbCount;
                float *ci = c + i * ldc;
#define CALL(MR, NR) tile(MR, NR, ai, k, si, values, scales, sums, nb, kbCount, block, ci, ldc, n, nb * 16)
                switch (mr * 4 + nr) {
                case 4 * 4 + 3: CALL(4, 3); break;
                case 4 * 4 + 2: CALL(4, 2); break;
                case 4 * 4 + 1: CALL(4, 1); break;
                case 3 * 4 + 3: CALL(3, 3); break;
                case 3 * 4 + 2: CALL(3, 2); break;
                case 3 * 4 + 1: CALL(3, 1); break;
                case 2 * 4 + 3: CALL(2, 3); break;
                case 2 * 4 + 2: CALL(2, 2); break;
                case 2 * 4 + 1: CALL(2, 1); break;
                case 1 * 4 + 3: CALL(1, 3); break;
                case 1 * 4 + 2: CALL(1, 2); break;
                default: CALL(1, 1); break;
                }
#undef CALL
            }
        }
    }
}
#endif

int k_has_vnni(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

void k_gemm_q8p(const uint8_t *a, const float *sa, size_t m, size_t k, size_t block, const int8_t *values,
                const float *scales, const int32_t *sums, size_t n, size_t nb0, size_t nb1, float *c, size_t ldc) {
#if defined(__x86_64__)
    gemm_vnni(a, sa, m, k, block, values, scales, sums, n, nb0, nb1, c, ldc);
#else
    (void)a; (void)sa; (void)m; (void)k; (void)block; (void)values; (void)scales; (void)sums; (void)n;
    (void)nb0; (void)nb1; (void)c; (void)ldc;
    abort();
#endif
}
