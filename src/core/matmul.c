/* matmul.c - linear layers: f32 through OpenBLAS, and stored weights of any
 * dtype read in place (fused dequantise-dot for one input row, tiles of
 * dequantised rows + sgemm for many).
 *
 * Threads: each kernel splits its OUTPUT into disjoint slices, one per
 * OpenMP thread, and every thread calls a single-threaded sgemm on its
 * slice (mk_ops_init pins OpenBLAS to one thread), so there is exactly one
 * thread per core and no race on any output element. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* Below this many multiply-adds (about 50-100 us on one core) a product
 * runs on the calling thread: waking a team costs microseconds on an idle
 * machine but a whole scheduler slice (ms) whenever another process holds
 * the other core, which on shared machines is most of the time. */
#define PAR_MIN_WORK 2097152.0

static int team_size(double work) {
    return work < PAR_MIN_WORK ? 1 : mk_num_threads();
}

/* Slice [*lo, *hi) of n for thread t of nt. */
static void slice(int n, int t, int nt, int *lo, int *hi) {
    *lo = (int)((int64_t)n * t / nt);
    *hi = (int)((int64_t)n * (t + 1) / nt);
}

void mk_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                       int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    mk_ops_init();
    int nt = team_size((double)M * K * N);
    if (nt > N) nt = N;
#pragma omp parallel num_threads(nt)
    {
        int n0, n1;
        slice(N, omp_get_thread_num(), omp_get_num_threads(), &n0, &n1);
        int nn = n1 - n0;
        if (nn > 0) {
            if (K <= 0) {
                for (int m = 0; m < M; m++)
                    memset(out + (size_t)m * N + n0, 0, (size_t)nn * sizeof(float));
            } else {
                /* With a bias, the output starts as the bias and BLAS adds
                 * the product (beta = 1): one pass over out instead of a
                 * zeroing pass plus an add pass. */
                float beta = 0.0f;
                if (bias) {
                    for (int m = 0; m < M; m++)
                        memcpy(out + (size_t)m * N + n0, bias + n0, (size_t)nn * sizeof(float));
                    beta = 1.0f;
                }
                if (M == 1) /* out[n0:n1] (+)= w[n0:n1, :] @ inp */
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, nn, K, 1.0f, w + (size_t)n0 * K, K,
                                inp, 1, beta, out + n0, 1);
                else /* out[:, n0:n1] (M, nn; ld N) (+)= inp (M,K) @ w[n0:n1]^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nn, K, 1.0f, inp, K,
                                w + (size_t)n0 * K, K, beta, out + n0, N);
            }
            if (bias && K <= 0)
                for (int m = 0; m < M; m++)
                    memcpy(out + (size_t)m * N + n0, bias + n0, (size_t)nn * sizeof(float));
        }
    }
}

void mk_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, int M, int K, int N) {
    if (M <= 0 || N <= 0 || K <= 0) {
        if (dbias && M > 0 && N > 0) {
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) dbias[n] += dout[(size_t)m * N + n];
        }
        return;
    }
    mk_ops_init();
    int nt = team_size((double)M * K * N * ((dinp != NULL) + (dw != NULL)));
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int lo, hi;
        if (dinp) {
            /* dinp[:, k0:k1] (M, kk; ld K) += dout (M,N) @ w[:, k0:k1] (N, kk; ld K) */
            slice(K, t, T, &lo, &hi);
            if (hi > lo)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hi - lo, N, 1.0f,
                            dout, N, w + lo, K, 1.0f, dinp + lo, K);
        }
        slice(N, t, T, &lo, &hi);
        if (dw && hi > lo) {
            /* dw[n0:n1] (nn, K) += dout[:, n0:n1]^T (nn, M) @ inp (M, K) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, K, M, 1.0f,
                        dout + lo, N, inp, K, 1.0f, dw + (size_t)lo * K, K);
        }
        if (dbias)
            for (int n = lo; n < hi; n++) {
                double s = 0;
                for (int m = 0; m < M; m++) s += dout[(size_t)m * N + n];
                dbias[n] += (float)s;
            }
    }
}

/* ---- stored weights of any dtype ---- */

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define MK_DOT_AVX2 1
#endif

static inline uint16_t ld_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8)); /* little-endian, any alignment */
}

static inline float half_to_float(const uint8_t *p) {
#ifdef MK_DOT_AVX2
    return _cvtsh_ss(ld_u16(p));
#else
    return mk_f16_to_f32(ld_u16(p));
#endif
}

#ifdef MK_DOT_AVX2
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/* Fused dequantise-dot of one stored row (K elements) with x (K): the
 * weight is read once, straight from the mapping, and never written out.
 * The SIMD loops keep four independent accumulators so the FMA latency
 * does not serialise them. */
static float dot_f16(const uint8_t *row, const float *x, int K) {
    int i = 0;
    float s = 0;
#ifdef MK_DOT_AVX2
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (; i + 32 <= K; i += 32)
        for (int j = 0; j < 4; j++) {
            __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)(i + 8 * j)));
            a[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(x + i + 8 * j), a[j]);
        }
    for (; i + 8 <= K; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)i));
        a[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(x + i), a[0]);
    }
    s = hsum8(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
#endif
    for (; i < K; i++) s += mk_f16_to_f32(ld_u16(row + 2 * (size_t)i)) * x[i];
    return s;
}

static float dot_bf16(const uint8_t *row, const float *x, int K) {
    int i = 0;
    float s = 0;
#ifdef MK_DOT_AVX2
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (; i + 32 <= K; i += 32)
        for (int j = 0; j < 4; j++) {
            __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)(i + 8 * j)));
            __m256 w = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
            a[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i + 8 * j), a[j]);
        }
    for (; i + 8 <= K; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)i));
        __m256 w = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        a[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), a[0]);
    }
    s = hsum8(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
#endif
    for (; i < K; i++) s += mk_bf16_to_f32(ld_u16(row + 2 * (size_t)i)) * x[i];
    return s;
}

#define Q8_0_BYTES 34 /* f16 scale + 32 int8 */
#define Q4_0_BYTES 18 /* f16 scale + 16 bytes of nibbles */

/* The block types sum q_j * x_j over a block of 32 in float, then scale
 * that block sum by d once: one multiply per block instead of one per
 * weight, still float activations (no int8 rounding of x), so the result
 * stays within float rounding of the product on dequantised weights. */
#ifdef MK_DOT_AVX2
/* 8 int8 / 8 uint8 at p, widened to int32 (the memory form of the
 * widening, which is cheaper than widening a register on Zen 3) */
static inline __m256i ld_i8x8(const uint8_t *p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
}
static inline __m256i ld_u8x8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* sum over one block of w_j * x_j, w given as four groups of 8 int32 in
 * element order; two partial sums keep the dependency chain short */
static inline __m256 block_dot(__m256i w0, __m256i w1, __m256i w2, __m256i w3, const float *x) {
    __m256 p0 = _mm256_mul_ps(_mm256_cvtepi32_ps(w0), _mm256_loadu_ps(x));
    __m256 p1 = _mm256_mul_ps(_mm256_cvtepi32_ps(w1), _mm256_loadu_ps(x + 8));
    p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w2), _mm256_loadu_ps(x + 16), p0);
    p1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w3), _mm256_loadu_ps(x + 24), p1);
    return _mm256_add_ps(p0, p1);
}

static inline __m256 q8_block(const uint8_t *blk, const float *x) {
    return block_dot(ld_i8x8(blk + 2), ld_i8x8(blk + 10), ld_i8x8(blk + 18), ld_i8x8(blk + 26), x);
}

/* byte j holds element j (low nibble) and j+16 (high nibble), each + 8 */
static inline __m256 q4_block(const uint8_t *blk, const float *x) {
    const __m256i eight = _mm256_set1_epi32(8), low = _mm256_set1_epi32(15);
    __m256i b0 = ld_u8x8(blk + 2), b1 = ld_u8x8(blk + 10); /* bytes 0..7, 8..15 */
    return block_dot(_mm256_sub_epi32(_mm256_and_si256(b0, low), eight),
                     _mm256_sub_epi32(_mm256_and_si256(b1, low), eight),
                     _mm256_sub_epi32(_mm256_srli_epi32(b0, 4), eight),
                     _mm256_sub_epi32(_mm256_srli_epi32(b1, 4), eight), x);
}
#endif

#ifdef MK_DOT_AVX2
/* Sum over the blocks of a Q8_0 / Q4_0 row: d * (q . x) per block, two
 * blocks per step in independent accumulators. Always inlined so the block
 * function is a constant in each caller. */
static inline __attribute__((always_inline)) float
dot_blocks(const uint8_t *row, const float *x, int K, size_t bytes,
           __m256 (*block)(const uint8_t *, const float *)) {
    int nb = K / MK_QK, b = 0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; b + 2 <= nb; b += 2, row += 2 * bytes, x += 2 * MK_QK) {
        __m256 s0 = block(row, x), s1 = block(row + bytes, x + MK_QK);
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(row)), s0, a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(row + bytes)), s1, a1);
    }
    if (b < nb) a0 = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(row)), block(row, x), a0);
    return hsum8(_mm256_add_ps(a0, a1));
}
#endif

static float dot_q8_0(const uint8_t *row, const float *x, int K) {
#ifdef MK_DOT_AVX2
    return dot_blocks(row, x, K, Q8_0_BYTES, q8_block);
#else
    int nb = K / MK_QK;
    float acc = 0;
    for (int b = 0; b < nb; b++, row += Q8_0_BYTES, x += MK_QK) {
        const int8_t *q = (const int8_t *)(row + 2);
        float s = 0;
        for (int j = 0; j < MK_QK; j++) s += (float)q[j] * x[j];
        acc += half_to_float(row) * s;
    }
    return acc;
#endif
}

static float dot_q4_0(const uint8_t *row, const float *x, int K) {
#ifdef MK_DOT_AVX2
    return dot_blocks(row, x, K, Q4_0_BYTES, q4_block);
#else
    int nb = K / MK_QK;
    float acc = 0;
    for (int b = 0; b < nb; b++, row += Q4_0_BYTES, x += MK_QK) {
        const uint8_t *qs = row + 2;
        float s = 0;
        for (int j = 0; j < MK_QK / 2; j++)
            s += (float)((qs[j] & 15) - 8) * x[j] + (float)((qs[j] >> 4) - 8) * x[j + MK_QK / 2];
        acc += half_to_float(row) * s;
    }
    return acc;
#endif
}

static float dot_row(mk_dtype wt, const uint8_t *row, const float *x, int K) {
    switch (wt) {
    case MK_F32: {
        const float *w = (const float *)row; /* F32 rows only reach here aligned */
        float s = 0;
        for (int i = 0; i < K; i++) s += w[i] * x[i];
        return s;
    }
    case MK_F16: return dot_f16(row, x, K);
    case MK_BF16: return dot_bf16(row, x, K);
    case MK_Q8_0: return dot_q8_0(row, x, K);
    case MK_Q4_0: return dot_q4_0(row, x, K);
    default: return NAN;
    }
}

/* Rows of weight dequantised at a time in the tiled paths: 128 rows of
 * K = 4096 are 2 MiB of f32 per thread, enough for sgemm to run near its
 * peak while the tile stays in the outer cache. */
static int tile_rows(int K) {
    int64_t tn = ((int64_t)1 << 19) / (K > 0 ? K : 1); /* 2 MiB of floats */
    if (tn < 16) tn = 16;
    if (tn > 256) tn = 256;
    return (int)tn;
}

/* out (M, N) = inp @ dot rows, row by row (M == 1, or no scratch memory).
 * Rows are handed out in small dynamic chunks: on a shared machine a
 * thread that loses its core for a while does not hold half the work. */
static void forward_rows(float *out, const float *inp, const uint8_t *w, size_t rowb,
                         mk_dtype wt, const float *bias, int M, int K, int N) {
    int nt = team_size((double)M * K * N);
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt)
    for (int n = 0; n < N; n++) {
        const uint8_t *row = w + (size_t)n * rowb;
        for (int m = 0; m < M; m++)
            out[(size_t)m * N + n] = dot_row(wt, row, inp + (size_t)m * K, K) + (bias ? bias[n] : 0.0f);
    }
}

void mk_matmul_forward_dt(float *out, const float *inp, const void *w, mk_dtype wt,
                          const float *bias, int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    if (wt == MK_F32) {
        mk_matmul_forward(out, inp, w, bias, M, K, N);
        return;
    }
    size_t rowb = K > 0 ? mk_dtype_nbytes(wt, (uint64_t)K) : 0;
    if (rowb == 0) {
        /* K not a whole number of blocks (the loaders reject such shapes):
         * make the misuse loud rather than silently wrong */
        for (size_t i = 0; i < (size_t)M * N; i++) out[i] = NAN;
        return;
    }
    mk_ops_init();
    if (M == 1) {
        forward_rows(out, inp, w, rowb, wt, bias, M, K, N);
        return;
    }
    int tn = tile_rows(K);
    int ntiles = (N + tn - 1) / tn;
    int nt = team_size((double)M * K * N);
    if (nt > ntiles) nt = ntiles;
    size_t per = (size_t)tn * K; /* (tn, K) floats per thread */
    float *scratch = malloc((size_t)nt * per * sizeof(float));
    if (!scratch) { /* no memory for tiles: slower, allocation-free path */
        forward_rows(out, inp, w, rowb, wt, bias, M, K, N);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        float *tile = scratch + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
        for (int ti = 0; ti < ntiles; ti++) {
            int n0 = ti * tn, nn = N - n0 < tn ? N - n0 : tn;
            mk_dequantize(wt, (const uint8_t *)w + (size_t)n0 * rowb, tile, (size_t)nn * K);
            /* out[:, n0:n0+nn] (M, nn; ld N) = inp (M, K) @ tile^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nn, K, 1.0f, inp, K, tile, K,
                        0.0f, out + n0, N);
            if (bias)
                for (int m = 0; m < M; m++) {
                    float *o = out + (size_t)m * N;
                    for (int n = n0; n < n0 + nn; n++) o[n] += bias[n];
                }
        }
    }
    free(scratch);
}

/* dinp (M, K) += dout (M, N) @ W (N, K). Tiles of W's rows are dequantised
 * by all threads together (rows split), then the product for the tile is
 * split by columns of dinp, so no two threads touch the same element. */
void mk_matmul_backward_dt(float *dinp, const float *dout, const void *w, mk_dtype wt,
                           int M, int K, int N) {
    if (M <= 0 || N <= 0 || K <= 0 || !dinp) return;
    if (wt == MK_F32) {
        mk_matmul_backward(dinp, NULL, NULL, dout, NULL, w, M, K, N);
        return;
    }
    size_t rowb = mk_dtype_nbytes(wt, (uint64_t)K);
    if (rowb == 0) {
        for (size_t i = 0; i < (size_t)M * K; i++) dinp[i] = NAN;
        return;
    }
    mk_ops_init();
    int tn = tile_rows(K);
    float *tile = malloc((size_t)tn * K * sizeof(float)); /* (tn, K) */
    float *row = tile ? NULL : malloc((size_t)K * sizeof(float));
    if (!tile) {
        /* no memory for a tile: one row at a time, serially */
        if (!row) {
            for (size_t i = 0; i < (size_t)M * K; i++) dinp[i] = NAN;
            return;
        }
        for (int n = 0; n < N; n++) {
            mk_dequantize(wt, (const uint8_t *)w + (size_t)n * rowb, row, (size_t)K);
            for (int m = 0; m < M; m++) {
                float g = dout[(size_t)m * N + n];
                float *d = dinp + (size_t)m * K;
                for (int k = 0; k < K; k++) d[k] += g * row[k];
            }
        }
        free(row);
        return;
    }
    int nt = team_size((double)M * K * N);
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int k0, k1;
        slice(K, t, T, &k0, &k1);
        for (int n0 = 0; n0 < N; n0 += tn) {
            int nn = N - n0 < tn ? N - n0 : tn;
#pragma omp for schedule(static)
            for (int r = 0; r < nn; r++)
                mk_dequantize(wt, (const uint8_t *)w + (size_t)(n0 + r) * rowb,
                              tile + (size_t)r * K, (size_t)K);
            /* (implicit barrier: the tile is complete) */
            if (k1 > k0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, k1 - k0, nn, 1.0f,
                            dout + n0, N, tile + k0, K, 1.0f, dinp + k0, K);
#pragma omp barrier
        }
    }
    free(tile);
}
