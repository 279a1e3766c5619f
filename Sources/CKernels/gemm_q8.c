// Int8 matrix products for weights quantized at load time ("q8") and activations quantized on the
// fly, in three kernels that compute the same integers: AMX (tdpbusd on 16×16 tiles), AVX-512 VNNI
// (vpdpbusd: u8 × s8 → s32) and AVX2 (u8 and s8 widened to s16, vpmaddwd). Each block's integer
// sum is exact, and all three turn it into floats with the same operations in the same order, so
// their outputs are identical.
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
#include "tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
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
    if (m == 1) {
        // Decoding: one group of 16 output rows at a time, so each thread reads one stream of
        // weights (and one each of scales and sums), which the hardware prefetcher follows.
        for (size_t nb = nb0; nb < nb1; nb++) tile(1, 1, a, k, sa, values, scales, sums, nb, kbCount, block, c, ldc, n, nb * 16);
        return;
    }
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
                TILE_DISPATCH(mr, nr, CALL)
#undef CALL
            }
        }
    }
}

// AVX2: 16 output columns × up to 2 activation rows at a time. For each group of 4 input columns,
// the 64 weight bytes (16 rows × 4) are widened to four vectors of 16 s16 (4 rows each), the
// row's 4 activations to s16 repeated, and vpmaddwd leaves 2 partial sums per weight row.
#define AVX2 __attribute__((target("avx2,fma")))

static AVX2 void gemm_avx2(const uint8_t *a, const float *sa, size_t m, size_t k, size_t block, const int8_t *values,
                           const float *scales, const int32_t *sums, size_t n, size_t nb0, size_t nb1, float *c,
                           size_t ldc) {
    const size_t kbCount = k / block, groupsPerBlock = block / 4;
    const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    const size_t rowsPerChunk = 96;  // activation rows that stay in L2 while the columns pass over them
    for (size_t m0 = 0; m0 < m; m0 += rowsPerChunk) {
    const size_t m1 = m0 + rowsPerChunk < m ? m0 + rowsPerChunk : m;
    for (size_t nb = nb0; nb < nb1; nb++) {
        const int8_t *wv = values + nb * (k / 4) * 64;
        for (size_t i = m0; i < m1; i += 2) {
            const size_t mr = m1 - i < 2 ? m1 - i : 2;
            __m256 accf[2][2] = {{_mm256_setzero_ps(), _mm256_setzero_ps()}, {_mm256_setzero_ps(), _mm256_setzero_ps()}};
            for (size_t kb = 0; kb < kbCount; kb++) {
                __m256i acc[2][4];
                for (size_t r = 0; r < 2; r++)
                    for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_si256();
                for (size_t g = kb * groupsPerBlock; g < (kb + 1) * groupsPerBlock; g++) {
                    __m256i w[4];
                    for (int q = 0; q < 4; q++)
                        w[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wv + g * 64 + q * 16)));
                    for (size_t r = 0; r < mr; r++) {
                        int32_t four;
                        memcpy(&four, a + (i + r) * k + g * 4, 4);
                        const __m256i av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(four)));
                        for (int q = 0; q < 4; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(w[q], av));
                    }
                }
                const size_t off = (nb * kbCount + kb) * 16;
                for (size_t r = 0; r < mr; r++) {
                    const __m256 sx = _mm256_set1_ps(sa[(i + r) * kbCount + kb]);
                    for (int h = 0; h < 2; h++) {
                        const __m256i dots =
                            _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(acc[r][2 * h], acc[r][2 * h + 1]), order);
                        const __m256 sw = _mm256_loadu_ps(scales + off + h * 8);
                        const __m256i corr = _mm256_loadu_si256((const __m256i *)(sums + off + h * 8));
                        const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(dots, corr));
                        accf[r][h] = _mm256_fmadd_ps(v, _mm256_mul_ps(sw, sx), accf[r][h]);
                    }
                }
            }
            for (size_t r = 0; r < mr; r++) {
                float out[16];
                _mm256_storeu_ps(out, accf[r][0]);
                _mm256_storeu_ps(out + 8, accf[r][1]);
                const size_t col0 = nb * 16;
                for (size_t j = 0; j < 16 && col0 + j < n; j++) c[(i + r) * ldc + col0 + j] = out[j];
            }
        }
    }
    }
}

// AMX: tiles of 16 activation rows × 16 output columns. The packed weights are already in the
// layout of tdpbusd's second operand (rows of 4 input columns × 16 output columns, 64 bytes), so a
// weight tile is 16 (or 8, for blocks of 32) consecutive 64-byte rows. Tiles 0–3 hold the sums
// of 2 × 2 row and column tiles, 4–5 the activations, 6–7 the weights. Each block's sums are
// stored and scaled in AVX-512 as the VNNI kernel scales them.
#define AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq")))

typedef struct {
    uint8_t palette;
    uint8_t startRow;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

static AMX void gemm_amx(const uint8_t *a, const float *sa, size_t m, size_t k, size_t block, const int8_t *values,
                         const float *scales, const int32_t *sums, size_t n, size_t nb0, size_t nb1, float *c,
                         size_t ldc) {
    const size_t kbCount = k / block, step = block < 64 ? block : 64;
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 4; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    for (int t = 4; t < 6; t++) { cfg.colsb[t] = (uint16_t)step; cfg.rows[t] = 16; }
    for (int t = 6; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = (uint8_t)(step / 4); }
    _tile_loadconfig(&cfg);
    // Activations padded with zero rows to a multiple of 16.
    const size_t mp = (m + 15) / 16 * 16;
    uint8_t *ap = aligned_alloc(64, (mp * k + 63) / 64 * 64);
    memcpy(ap, a, m * k);
    memset(ap + m * k, 0, (mp - m) * k);
    int32_t dots[4][16][16] __attribute__((aligned(64)));
    __m512 acc[4][16];
    for (size_t i0 = 0; i0 < mp; i0 += 32) {
        const int twoRows = mp - i0 >= 32;
        for (size_t nb = nb0; nb < nb1; nb += 2) {
            const int twoCols = nb1 - nb >= 2;
            for (int t = 0; t < 4; t++)
                for (int r = 0; r < 16; r++) acc[t][r] = _mm512_setzero_ps();
            for (size_t kb = 0; kb < kbCount; kb++) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (size_t col = kb * block; col < (kb + 1) * block; col += step) {
                    _tile_loadd(4, ap + i0 * k + col, (long)k);
                    _tile_loadd(6, values + (nb * (k / 4) + col / 4) * 64, 64);
                    _tile_dpbusd(0, 4, 6);
                    if (twoCols) {
                        _tile_loadd(7, values + ((nb + 1) * (k / 4) + col / 4) * 64, 64);
                        _tile_dpbusd(1, 4, 7);
                    }
                    if (twoRows) {
                        _tile_loadd(5, ap + (i0 + 16) * k + col, (long)k);
                        _tile_dpbusd(2, 5, 6);
                        if (twoCols) _tile_dpbusd(3, 5, 7);
                    }
                }
                _tile_stored(0, dots[0], 64);
                _tile_stored(1, dots[1], 64);
                _tile_stored(2, dots[2], 64);
                _tile_stored(3, dots[3], 64);
                for (int t = 0; t < 4; t++) {
                    const size_t rowTile = (size_t)(t / 2), colTile = (size_t)(t % 2);
                    if ((rowTile && !twoRows) || (colTile && !twoCols)) continue;
                    const size_t off = ((nb + colTile) * kbCount + kb) * 16;
                    const __m512 sw = _mm512_loadu_ps(scales + off);
                    const __m512i corr = _mm512_loadu_si512((const void *)(sums + off));
                    for (size_t r = 0; r < 16; r++) {
                        const size_t row = i0 + rowTile * 16 + r;
                        if (row >= m) break;
                        const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(sa[row * kbCount + kb]));
                        const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(dots[t][r]), corr));
                        acc[t][r] = _mm512_fmadd_ps(v, s, acc[t][r]);
                    }
                }
            }
            for (int t = 0; t < 4; t++) {
                const size_t rowTile = (size_t)(t / 2), colTile = (size_t)(t % 2);
                if ((rowTile && !twoRows) || (colTile && !twoCols)) continue;
                const size_t col = (nb + colTile) * 16;
                if (col >= n) continue;
                const __mmask16 mask = col + 16 <= n ? (__mmask16)0xffff : (__mmask16)((1u << (n - col)) - 1);
                for (size_t r = 0; r < 16; r++) {
                    const size_t row = i0 + rowTile * 16 + r;
                    if (row >= m) break;
                    _mm512_mask_storeu_ps(c + row * ldc + col, mask, acc[t][r]);
                }
            }
        }
    }
    _tile_release();
    free(ap);
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

#if defined(__x86_64__)
// The tile shapes gemm_amx uses (palette 1: 8 tiles of 16 rows × 64 bytes, tdpbusd with K up to
// 64 bytes), as CPUID leaves 0x1D and 0x1E describe them.
static int amx_palette_fits(void) {
    if (__get_cpuid_max(0, 0) < 0x1e) return 0;
    unsigned a, b, c, d;
    __cpuid_count(0x1d, 0, a, b, c, d);
    if (a < 1) return 0;
    __cpuid_count(0x1d, 1, a, b, c, d);
    const unsigned bytesPerRow = b & 0xffff, names = b >> 16, maxRows = c & 0xffff;
    __cpuid_count(0x1e, 0, a, b, c, d);
    const unsigned maxK = b & 0xff, maxN = (b >> 8) & 0xffff;
    return bytesPerRow >= 64 && names >= 8 && maxRows >= 16 && maxK >= 16 && maxN >= 64;
}

// Runs the AMX and VNNI kernels on small random products (every block size, partial tiles)
// and accepts AMX only if the outputs are identical.
static int amx_self_check(void) {
    static const size_t shapes[][3] = {{37, 40, 128}, {20, 17, 96}};
    int ok = 1;
    for (int t = 0; t < 2 && ok; t++) {
        const size_t m = shapes[t][0], n = shapes[t][1], k = shapes[t][2];
        const size_t block = k % 128 == 0 ? 128 : k % 64 == 0 ? 64 : 32, groups = (n + 15) / 16;
        float *w = malloc(n * k * sizeof(float)), *x = malloc(m * k * sizeof(float));
        float *y0 = malloc(m * n * sizeof(float)), *y1 = malloc(m * n * sizeof(float));
        int8_t *values = calloc(k_q8p_values_size(n, k), 1);
        float *scales = calloc(k_q8p_scales_count(n, k, block), sizeof(float));
        int32_t *sums = calloc(k_q8p_scales_count(n, k, block), sizeof(int32_t));
        uint8_t *q = malloc(m * k);
        float *sx = malloc(m * (k / block) * sizeof(float));
        uint32_t state = 12345;
        for (size_t i = 0; i < n * k; i++) { state = state * 1664525u + 1013904223u; w[i] = (float)(int32_t)state / 2147483648.0f; }
        for (size_t i = 0; i < m * k; i++) { state = state * 1664525u + 1013904223u; x[i] = (float)(int32_t)state / 2147483648.0f; }
        k_q8p_pack(w, k, n, k, block, 0, n, values, scales, sums);
        k_quantize_rows_u8(x, m, k, k, block, q, sx);
        gemm_vnni(q, sx, m, k, block, values, scales, sums, n, 0, groups, y0, n);
        gemm_amx(q, sx, m, k, block, values, scales, sums, n, 0, groups, y1, n);
        ok = memcmp(y0, y1, m * n * sizeof(float)) == 0;
        free(w); free(x); free(y0); free(y1); free(values); free(scales); free(sums); free(q); free(sx);
    }
    return ok;
}
#endif

int k_q8_kernels(void) {
    static int kernels = -1;
    int found = __atomic_load_n(&kernels, __ATOMIC_ACQUIRE);
    if (found >= 0) return found;
    found = 0;
#if defined(__x86_64__)
    const uint64_t f = k_cpu_features();
    if ((f & K_CPU_AVX2) && (f & K_CPU_FMA)) found |= 1 << K_Q8_AVX2;
    if (k_has_vnni()) found |= 1 << K_Q8_VNNI;
    const uint64_t avx512 = K_CPU_AVX512F | K_CPU_AVX512BW | K_CPU_AVX512VL | K_CPU_AVX512DQ;
    if ((f & K_CPU_AMX_TILE) && (f & K_CPU_AMX_INT8) && (f & avx512) == avx512 && (found & (1 << K_Q8_VNNI)) &&
        amx_palette_fits() && k_amx_request() && amx_self_check())
        found |= 1 << K_Q8_AMX;
#endif
    __atomic_store_n(&kernels, found, __ATOMIC_RELEASE);
    return found;
}

void k_gemm_q8p(int kernel, const uint8_t *a, const float *sa, size_t m, size_t k, size_t block,
                const int8_t *values, const float *scales, const int32_t *sums, size_t n, size_t nb0, size_t nb1,
                float *c, size_t ldc) {
    if (!(k_q8_kernels() & (1 << kernel))) abort();
#if defined(__x86_64__)
    switch (kernel) {
    case K_Q8_AMX: gemm_amx(a, sa, m, k, block, values, scales, sums, n, nb0, nb1, c, ldc); return;
    case K_Q8_VNNI: gemm_vnni(a, sa, m, k, block, values, scales, sums, n, nb0, nb1, c, ldc); return;
    default: gemm_avx2(a, sa, m, k, block, values, scales, sums, n, nb0, nb1, c, ldc); return;
    }
#else
    (void)a; (void)sa; (void)m; (void)k; (void)block; (void)values; (void)scales; (void)sums; (void)n;
    (void)nb0; (void)nb1; (void)c; (void)ldc;
#endif
}
