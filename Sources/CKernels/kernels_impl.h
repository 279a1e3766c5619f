// Kernel bodies, compiled once per instruction set by kernels.c (which defines SUFFIX and the
// target attributes around each inclusion). Plain C loops written so the compiler vectorises them.
static inline float SUFFIX(half_to_float)(uint16_t h) {
    _Float16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

static inline float SUFFIX(bf16_to_float)(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void SUFFIX(k_f16_to_f32)(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = SUFFIX(half_to_float)(src[i]);
}

static void SUFFIX(k_bf16_to_f32)(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = SUFFIX(bf16_to_float)(src[i]);
}

static void SUFFIX(k_f32_to_f16)(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        _Float16 v = (_Float16)src[i];
        memcpy(&dst[i], &v, sizeof v);
    }
}

static void SUFFIX(k_gemv_f32)(const float *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    for (size_t i = r0; i < r1; i++) {
        const float *row = w + i * ldw;
        float acc = 0.0f;
        for (size_t k = 0; k < cols; k++) acc += row[k] * x[k];
        y[i] = acc;
    }
}

static void SUFFIX(k_gemv_f16)(const uint16_t *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    for (size_t i = r0; i < r1; i++) {
        const uint16_t *row = w + i * ldw;
        float acc = 0.0f;
        for (size_t k = 0; k < cols; k++) acc += SUFFIX(half_to_float)(row[k]) * x[k];
        y[i] = acc;
    }
}

static void SUFFIX(k_gemv_bf16)(const uint16_t *w, size_t ldw, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    for (size_t i = r0; i < r1; i++) {
        const uint16_t *row = w + i * ldw;
        float acc = 0.0f;
        for (size_t k = 0; k < cols; k++) acc += SUFFIX(bf16_to_float)(row[k]) * x[k];
        y[i] = acc;
    }
}

// The first index of the largest of n ≥ 1 values, as the plain loop `if (x[i] > x[best]) best = i`
// finds it (NaNs never win, and a NaN in front wins everything): the maximum 16 lanes at a time,
// then the first index holding it.
typedef float SUFFIX(v16f) __attribute__((ext_vector_type(16)));
static size_t SUFFIX(k_argmax)(const float *x, size_t n) {
    if (x[0] != x[0]) return 0;
    float m = x[0];
    size_t i = 0;
    if (n >= 16) {
        SUFFIX(v16f) acc, v;
        memcpy(&acc, x, sizeof acc);
        for (i = 16; i + 16 <= n; i += 16) {
            memcpy(&v, x + i, sizeof v);
            acc = __builtin_elementwise_max(acc, v);
        }
        m = __builtin_reduce_max(acc);
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    for (i = 0; i < n; i++)
        if (x[i] == m) return i;
    return 0;
}

// Each of n rows (stride ld) scaled by 1 / max(‖row‖, 1e-12), the norm, its inverse and the
// products in double and rounded to float once, so each row has unit norm to float precision.
static void SUFFIX(k_normalize_rows)(float *x, size_t n, size_t cols, size_t ld) {
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * ld;
        double ss = 0.0;
        for (size_t k = 0; k < cols; k++) ss += (double)row[k] * (double)row[k];
        double norm = sqrt(ss);
        if (norm < 1e-12) norm = 1e-12;
        const double inv = 1.0 / norm;
        for (size_t k = 0; k < cols; k++) row[k] = (float)((double)row[k] * inv);
    }
}

static void SUFFIX(k_layer_norm)(const float *x, float *y, const float *weight, const float *bias, size_t n, float eps) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) sum += x[i];
    const float mean = sum / (float)n;
    float var = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    const float inv = 1.0f / sqrtf(var / (float)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

static void SUFFIX(k_rms_norm)(const float *x, float *y, const float *weight, size_t n, float eps) {
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = weight[i] * (x[i] * inv);
}

// exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2], exp(r) by a degree-6 polynomial.
static inline float SUFFIX(expf_inline)(float x) {
    const float lo = -87.33654f, hi = 88.72283f;
    float xc = x < lo ? lo : (x > hi ? hi : x);
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    float result = p * scale;
    return x < lo ? 0.0f : result;
}

static void SUFFIX(k_softmax)(float *x, size_t n) {
    if (n == 0) return;
    float m = x[0];
    for (size_t i = 1; i < n; i++) m = fmaxf(m, x[i]);  // a max reduction the vectoriser recognises
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float e = SUFFIX(expf_inline)(x[i] - m);
        x[i] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

// Attention of one query row for `heads` query heads that share one key/value head (grouped-query
// attention), over the first n keys: scores = scale · q_h · k_j, a softmax per head, then
// out_h = Σ_j p_hj · v_j. Each key and value row is read once for all the heads. q and out hold
// the heads side by side (d values each); k and v rows are ldk and ldv apart; scores holds
// heads · n values of scratch.
static void SUFFIX(k_attend_row)(const float *q, size_t heads, size_t d, const float *k, size_t ldk, const float *v,
                                 size_t ldv, size_t n, float scale, float *scores, float *out) {
    for (size_t j = 0; j < n; j++) {
        const float *kj = k + j * ldk;
        for (size_t h = 0; h < heads; h++) {
            const float *qh = q + h * d;
            float s = 0.0f;
            for (size_t c = 0; c < d; c++) s += qh[c] * kj[c];
            scores[h * n + j] = s * scale;
        }
    }
    for (size_t h = 0; h < heads; h++) {
        SUFFIX(k_softmax)(scores + h * n, n);
        for (size_t c = 0; c < d; c++) out[h * d + c] = 0.0f;
    }
    for (size_t j = 0; j < n; j++) {
        const float *vj = v + j * ldv;
        for (size_t h = 0; h < heads; h++) {
            const float p = scores[h * n + j];
            float *oh = out + h * d;
            for (size_t c = 0; c < d; c++) oh[c] += p * vj[c];
        }
    }
}

static void SUFFIX(k_exp_shift)(float *x, float shift, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = SUFFIX(expf_inline)(x[i] - shift);
}

static void SUFFIX(k_quick_gelu)(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + SUFFIX(expf_inline)(-1.702f * v));
    }
}

static void SUFFIX(k_gelu_erf)(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    }
}

static void SUFFIX(k_silu_mul)(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + SUFFIX(expf_inline)(-g)) * up[i];
    }
}

static void SUFFIX(k_add)(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void SUFFIX(k_scale)(float *y, float s, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] *= s;
}

static void SUFFIX(k_silu)(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + SUFFIX(expf_inline)(-v));
    }
}


// q = round(x / s) with s = max|x| / 127 over each block of `block` values (ties to even).
static inline float SUFFIX(quantize_block)(const float *src, size_t block, int8_t *q) {
    float amax = 0.0f;
    for (size_t c = 0; c < block; c++) amax = fmaxf(amax, fabsf(src[c]));
    const float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
    for (size_t c = 0; c < block; c++) q[c] = (int8_t)__builtin_rintf(src[c] * inv);
    return s;
}

// Packs rows [r0, r1) of a Float32 matrix (w points at row r0) into the "packed q8" layout of
// gemm_q8.c. Rows at or past n are written as zeros.
static void SUFFIX(k_q8p_pack)(const float *w, size_t ldw, size_t n, size_t k, size_t block, size_t r0, size_t r1,
                               int8_t *values, float *scales, int32_t *sums) {
    const size_t kb = k / block;
    int8_t q[128];
    for (size_t r = r0; r < r1; r++) {
        const size_t nb = r / 16, lane = r % 16;
        int8_t *vbase = values + nb * 16 * k;
        for (size_t b = 0; b < kb; b++) {
            float s = 0.0f;
            if (r < n) {
                s = SUFFIX(quantize_block)(w + (r - r0) * ldw + b * block, block, q);
            } else {
                memset(q, 0, block);
            }
            int32_t sum = 0;
            for (size_t c = 0; c < block; c++) sum += q[c];
            for (size_t g = 0; g < block / 4; g++) memcpy(vbase + (b * block / 4 + g) * 64 + lane * 4, q + 4 * g, 4);
            scales[(nb * kb + b) * 16 + lane] = s;
            sums[(nb * kb + b) * 16 + lane] = 128 * sum;
        }
    }
}

// Activations for the int8 product: per row and block, u8 = round(x / s) + 128.
static void SUFFIX(k_quantize_rows_u8)(const float *x, size_t m, size_t k, size_t ldx, size_t block, uint8_t *q,
                                       float *scales) {
    const size_t kb = k / block;
    int8_t tmp[128];
    for (size_t i = 0; i < m; i++) {
        for (size_t b = 0; b < kb; b++) {
            scales[i * kb + b] = SUFFIX(quantize_block)(x + i * ldx + b * block, block, tmp);
            uint8_t *dst = q + i * k + b * block;
            for (size_t c = 0; c < block; c++) dst[c] = (uint8_t)(tmp[c] + 128);
        }
    }
}
