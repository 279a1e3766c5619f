// 4-bit weights ("q4") and their products with AVX-512 VNNI or AVX2 (identical results).
//
// Quantization: each row is cut into blocks of 32 columns. A block's scale d is its value of
// largest magnitude (the positive one on a tie) divided by −8, rounded to F16; its values are
// q = round(w / d) clamped to [−8, 7] (so the extreme value maps to −8 exactly) and stored as
// the nibble u = q + 8.
//
// Layout ("packed q4"), for W [n, k] with k a multiple of 32:
//   values: [ceil(n/16)][k/32][256] bytes — for each group of 16 output rows and each block, the
//           512 nibbles in the order of the packed q8 layout (gemm_q8.c: 8 groups of 4 columns,
//           each 16 rows × 4 values, index g·64 + row·4 + c), byte j holding nibble j in its low
//           half and nibble j + 256 in its high half, so one 64-byte load and a mask or a shift
//           give the u8 operand of vpdpbusd for one group of 4 columns;
//   scales: [ceil(n/16)][k/32][16] F16 — one per row and block.
// Rows past n are zero. Activations are quantized per row and block of 32 to s8 (x ≈ s · q,
// s = max|x| / 127) with their block sums Σq, and
//   y[i, j] = Σ_b d[j, b] · s[i, b] · (Σ_{c∈b} u[j, c] · q[i, c] − 8 Σ_{c∈b} q[i, c]).
#include "ckernels.h"
#include "tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline __attribute__((always_inline)) float half_to_float(uint16_t h) {
    _Float16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}

static inline __attribute__((always_inline)) uint16_t float_to_half(float x) {
    _Float16 f = (_Float16)x;
    uint16_t h;
    memcpy(&h, &f, 2);
    return h;
}

size_t k_q4p_values_size(size_t n, size_t k) { return ((n + 15) / 16) * 16 * k / 2; }
size_t k_q4p_scales_count(size_t n, size_t k) { return ((n + 15) / 16) * 16 * (k / 32); }

// Byte offset of nibble `index` (0..511) of a block and whether it is the high half.
static inline size_t nibble_byte(size_t index) { return index & 255; }
static inline int nibble_high(size_t index) { return index >= 256; }

// Quantizes one block of 32 values (see the top of the file); returns the F16 scale.
static inline __attribute__((always_inline)) uint16_t quantize_block4(const float *src, int8_t *q) {
    float hi = src[0], lo = src[0];
    for (size_t c = 1; c < 32; c++) {
        hi = src[c] > hi ? src[c] : hi;
        lo = src[c] < lo ? src[c] : lo;
    }
    const float extreme = hi >= -lo ? hi : lo; // the value of largest magnitude, positive on a tie
    const uint16_t d16 = float_to_half(extreme / -8.0f);
    const float d = half_to_float(d16), inv = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t c = 0; c < 32; c++) {
        const float v = __builtin_rintf(src[c] * inv);
        q[c] = (int8_t)(v < -8.0f ? -8.0f : v > 7.0f ? 7.0f : v);
    }
    return d16;
}

// A row's nibbles never share a byte with another row's: byte g·64 + lane·4 + i of a block holds
// column 4g + i (low half) and column 4(g + 4) + i (high half) of row `lane`, so each row writes
// its 16 bytes per block directly.
static inline __attribute__((always_inline)) void pack(const float *w, size_t ldw, size_t n, size_t k, size_t r0,
                                                       size_t r1, uint8_t *values, uint16_t *scales) {
    const size_t kb = k / 32;
    for (size_t r = r0; r < r1; r++) {
        const size_t nb = r / 16, lane = r % 16;
        for (size_t b = 0; b < kb; b++) {
            uint8_t *block = values + (nb * kb + b) * 256;
            int8_t q[32] = {0};
            uint16_t d16 = 0;
            if (r < n) d16 = quantize_block4(w + (r - r0) * ldw + b * 32, q);
            scales[(nb * kb + b) * 16 + lane] = d16;
            for (size_t g = 0; g < 4; g++)
                for (size_t i = 0; i < 4; i++)
                    block[g * 64 + lane * 4 + i] = (uint8_t)((q[g * 4 + i] + 8) | ((q[(g + 4) * 4 + i] + 8) << 4));
        }
    }
}

void k_q4p_unpack_rows(const uint8_t *values, const uint16_t *scales, size_t k, size_t r0, size_t count, float *dst) {
    const size_t kb = k / 32;
    for (size_t i = 0; i < count; i++) {
        const size_t r = r0 + i, nb = r / 16, lane = r % 16;
        for (size_t b = 0; b < kb; b++) {
            const uint8_t *block = values + (nb * kb + b) * 256;
            const float d = half_to_float(scales[(nb * kb + b) * 16 + lane]);
            for (size_t c = 0; c < 32; c++) {
                const size_t index = (c / 4) * 64 + lane * 4 + c % 4;
                const uint8_t byte = block[nibble_byte(index)];
                const int u = nibble_high(index) ? byte >> 4 : byte & 0x0f;
                dst[i * k + b * 32 + c] = (float)(u - 8) * d;
            }
        }
    }
}

static inline __attribute__((always_inline)) void quantize_rows(const float *x, size_t m, size_t k, size_t ldx,
                                                                int8_t *q, float *scales, int32_t *sums) {
    const size_t kb = k / 32;
    for (size_t i = 0; i < m; i++) {
        for (size_t b = 0; b < kb; b++) {
            const float *src = x + i * ldx + b * 32;
            float amax = 0.0f;
            for (size_t c = 0; c < 32; c++) amax = fmaxf(amax, fabsf(src[c]));
            const float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
            int32_t sum = 0;
            for (size_t c = 0; c < 32; c++) {
                const int8_t v = (int8_t)rintf(src[c] * inv);
                q[i * k + b * 32 + c] = v;
                sum += v;
            }
            scales[i * kb + b] = s;
            sums[i * kb + b] = 8 * sum;
        }
    }
}

// The two functions above compiled for AVX2 + F16C + FMA (hardware half conversions and rounding)
// and for baseline x86-64, chosen by CPU feature.
#if defined(__x86_64__)
#define HASWELL __attribute__((target("avx2,fma,f16c")))
static HASWELL void pack_haswell(const float *w, size_t ldw, size_t n, size_t k, size_t r0, size_t r1, uint8_t *values,
                                 uint16_t *scales) {
    pack(w, ldw, n, k, r0, r1, values, scales);
}
static HASWELL void quantize_rows_haswell(const float *x, size_t m, size_t k, size_t ldx, int8_t *q, float *scales,
                                          int32_t *sums) {
    quantize_rows(x, m, k, ldx, q, scales, sums);
}
static int has_haswell(void) { return k_path() >= K_PATH_AVX2; }
#endif

void k_q4p_pack(const float *w, size_t ldw, size_t n, size_t k, size_t r0, size_t r1, uint8_t *values,
                uint16_t *scales) {
#if defined(__x86_64__)
    if (has_haswell()) {
        pack_haswell(w, ldw, n, k, r0, r1, values, scales);
        return;
    }
#endif
    pack(w, ldw, n, k, r0, r1, values, scales);
}

void k_quantize_rows_s8(const float *x, size_t m, size_t k, size_t ldx, int8_t *q, float *scales, int32_t *sums) {
#if defined(__x86_64__)
    if (has_haswell()) {
        quantize_rows_haswell(x, m, k, ldx, q, scales, sums);
        return;
    }
#endif
    quantize_rows(x, m, k, ldx, q, scales, sums);
}

#if defined(__x86_64__)
#define VNNI4 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c")))

// MR activation rows × NR groups of 16 output columns.
static inline __attribute__((always_inline)) VNNI4 void tile4(int MR, int NR, const int8_t *a, size_t k,
                                                              const float *sa, const int32_t *sumsa,
                                                              const uint8_t *values, const uint16_t *scales,
                                                              size_t nb0, float *c, size_t ldc, size_t n) {
    const size_t kbCount = k / 32;
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512 accf[4][3];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) accf[i][j] = _mm512_setzero_ps();
    for (size_t kb = 0; kb < kbCount; kb++) {
        __m512i acci[4][3];
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acci[i][j] = _mm512_setzero_si512();
        for (int g = 0; g < 8; g++) {
            __m512i b[3];
            for (int j = 0; j < NR; j++) {
                const __m512i v = _mm512_loadu_si512((const void *)(values + ((nb0 + j) * kbCount + kb) * 256 + (g & 3) * 64));
                b[j] = g < 4 ? _mm512_and_si512(v, low) : _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
            }
            for (int i = 0; i < MR; i++) {
                int32_t four;
                memcpy(&four, a + i * k + kb * 32 + g * 4, 4);
                const __m512i av = _mm512_set1_epi32(four);
                for (int j = 0; j < NR; j++) acci[i][j] = _mm512_dpbusd_epi32(acci[i][j], b[j], av);
            }
        }
        for (int j = 0; j < NR; j++) {
            const __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(scales + ((nb0 + j) * kbCount + kb) * 16)));
            for (int i = 0; i < MR; i++) {
                const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(sa[i * kbCount + kb]));
                const __m512i corr = _mm512_set1_epi32(sumsa[i * kbCount + kb]);
                const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acci[i][j], corr));
                accf[i][j] = _mm512_fmadd_ps(v, s, accf[i][j]);
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            const size_t col = (nb0 + (size_t)j) * 16;
            if (col + 16 <= n) {
                _mm512_storeu_ps(c + i * ldc + col, accf[i][j]);
            } else if (col < n) {
                _mm512_mask_storeu_ps(c + i * ldc + col, (__mmask16)((1u << (n - col)) - 1), accf[i][j]);
            }
        }
    }
}

static VNNI4 void gemm_q4_vnni(const int8_t *a, const float *sa, const int32_t *sumsa, size_t m, size_t k,
                               const uint8_t *values, const uint16_t *scales, size_t n, size_t nb0, size_t nb1,
                               float *c, size_t ldc) {
    const size_t kbCount = k / 32;
    if (m == 1) {
        // Decoding: one group of 16 output rows at a time, so each thread reads one stream of
        // weights (and one of scales), which the hardware prefetcher follows; three streams at a
        // time, as for prompts, read 10-25 % slower from memory (2-core AMD EPYC, interleaved runs).
        for (size_t nb = nb0; nb < nb1; nb++) tile4(1, 1, a, k, sa, sumsa, values, scales, nb, c, ldc, n);
        return;
    }
    for (size_t nb = nb0; nb < nb1; nb += 3) {
        const size_t nr = nb1 - nb < 3 ? nb1 - nb : 3;
        for (size_t i = 0; i < m; i += 4) {
            const size_t mr = m - i < 4 ? m - i : 4;
            const int8_t *ai = a + i * k;
            const float *si = sa + i * kbCount;
            const int32_t *ui = sumsa + i * kbCount;
            float *ci = c + i * ldc;
#define CALL(MR, NR) tile4(MR, NR, ai, k, si, ui, values, scales, nb, ci, ldc, n)
            TILE_DISPATCH(mr, nr, CALL)
#undef CALL
        }
    }
}
#endif

#if defined(__x86_64__)
// AVX2: the same integers with vpmaddubsw (u8 nibbles × s8 activations, pairs summed to s16)
// and vpmaddwd (pairs of those summed to s32). A 32-byte load holds 8 rows × 4 columns of a
// group: its low nibbles are columns 4g..4g+3, its high nibbles columns 4(g+4)..4(g+4)+3, and the
// two products are added in s16 (at most 4 · 15 · 127 in magnitude) before widening. Each
// block's integer sum is exact and is turned into floats as the VNNI kernel does (same
// operations, same order), so the outputs are identical to it. MR activation rows (≤ 4) × one
// group of 16 output columns.
#define AVX2Q4 __attribute__((target("avx2,fma,f16c")))

static inline __attribute__((always_inline)) AVX2Q4 void tile4_avx2(int MR, const int8_t *a, size_t k,
                                                                   const float *sa, const int32_t *sumsa,
                                                                   const uint8_t *values, const uint16_t *scales,
                                                                   size_t nb, float *c, size_t ldc, size_t n) {
    const size_t kbCount = k / 32;
    const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 accf[4][2];
    for (int i = 0; i < MR; i++) accf[i][0] = accf[i][1] = _mm256_setzero_ps();
    for (size_t kb = 0; kb < kbCount; kb++) {
        const uint8_t *block = values + (nb * kbCount + kb) * 256;
        __m256i acc[4][2];
        for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            for (int h = 0; h < 2; h++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(block + g * 64 + h * 32));
                const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                for (int i = 0; i < MR; i++) {
                    int32_t four0, four1;
                    memcpy(&four0, a + i * k + kb * 32 + g * 4, 4);
                    memcpy(&four1, a + i * k + kb * 32 + (g + 4) * 4, 4);
                    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(four0)),
                                                       _mm256_maddubs_epi16(hi, _mm256_set1_epi32(four1)));
                    acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(p, ones));
                }
            }
        }
        const uint16_t *sw16 = scales + (nb * kbCount + kb) * 16;
        const __m256 sw[2] = {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)sw16)),
                              _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sw16 + 8)))};
        for (int i = 0; i < MR; i++) {
            const __m256 sx = _mm256_set1_ps(sa[i * kbCount + kb]);
            const __m256i corr = _mm256_set1_epi32(sumsa[i * kbCount + kb]);
            for (int h = 0; h < 2; h++) {
                const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[i][h], corr));
                accf[i][h] = _mm256_fmadd_ps(v, _mm256_mul_ps(sw[h], sx), accf[i][h]);
            }
        }
    }
    const size_t col = nb * 16;
    for (int i = 0; i < MR; i++) {
        if (col + 16 <= n) {
            _mm256_storeu_ps(c + i * ldc + col, accf[i][0]);
            _mm256_storeu_ps(c + i * ldc + col + 8, accf[i][1]);
        } else {
            float out[16];
            _mm256_storeu_ps(out, accf[i][0]);
            _mm256_storeu_ps(out + 8, accf[i][1]);
            for (size_t j = 0; col + j < n; j++) c[i * ldc + col + j] = out[j];
        }
    }
}

static AVX2Q4 void gemm_q4_avx2(const int8_t *a, const float *sa, const int32_t *sumsa, size_t m, size_t k,
                                const uint8_t *values, const uint16_t *scales, size_t n, size_t nb0, size_t nb1,
                                float *c, size_t ldc) {
    const size_t kbCount = k / 32, rowsPerChunk = 96;
    // Chunks of activation rows that stay in L2 while every column group passes over them.
    for (size_t m0 = 0; m0 < m; m0 += rowsPerChunk) {
        const size_t m1 = m0 + rowsPerChunk < m ? m0 + rowsPerChunk : m;
        for (size_t nb = nb0; nb < nb1; nb++) {
            for (size_t i = m0; i < m1; i += 4) {
                const size_t mr = m1 - i < 4 ? m1 - i : 4;
                const int8_t *ai = a + i * k;
                const float *si = sa + i * kbCount;
                const int32_t *ui = sumsa + i * kbCount;
                float *ci = c + i * ldc;
                switch (mr) {
                case 4: tile4_avx2(4, ai, k, si, ui, values, scales, nb, ci, ldc, n); break;
                case 3: tile4_avx2(3, ai, k, si, ui, values, scales, nb, ci, ldc, n); break;
                case 2: tile4_avx2(2, ai, k, si, ui, values, scales, nb, ci, ldc, n); break;
                default: tile4_avx2(1, ai, k, si, ui, values, scales, nb, ci, ldc, n); break;
                }
            }
        }
    }
}
#endif

int k_q4_available(void) { return k_path() >= K_PATH_AVX2; }

void k_gemm_q4p(const int8_t *a, const float *sa, const int32_t *sumsa, size_t m, size_t k, const uint8_t *values,
                const uint16_t *scales, size_t n, size_t nb0, size_t nb1, float *c, size_t ldc) {
#if defined(__x86_64__)
    const int path = k_path();
    if (path >= K_PATH_VNNI) {
        gemm_q4_vnni(a, sa, sumsa, m, k, values, scales, n, nb0, nb1, c, ldc);
        return;
    }
    if (path >= K_PATH_AVX2) {
        gemm_q4_avx2(a, sa, sumsa, m, k, values, scales, n, nb0, nb1, c, ldc);
        return;
    }
#endif
    (void)a; (void)sa; (void)sumsa; (void)m; (void)k; (void)values; (void)scales; (void)n; (void)nb0; (void)nb1;
    (void)c; (void)ldc;
    abort();
}
