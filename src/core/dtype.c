/* dtype.c - element types: sizes, f16/bf16 conversion, GGML block
 * quantisation (Q8_0, Q4_0) and the dequantisers used on the hot path.
 *
 * Conversions are written from the IEEE-754 bit layouts: f16 is
 * 1 sign + 5 exponent (bias 15) + 10 mantissa bits, bf16 is the top half of
 * an f32. Rounding is to nearest, ties to even, as numpy and PyTorch do.
 */
#include "dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define MK_HAVE_F16C 1
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#define MK_HAVE_AVX2 1
#endif

/* Bytes of one block: f16 scale + payload. */
#define Q8_0_BYTES (2 + MK_QK)
#define Q4_0_BYTES (2 + MK_QK / 2)

const char *mk_dtype_name(mk_dtype t) {
    switch (t) {
    case MK_F32: return "F32";
    case MK_F16: return "F16";
    case MK_BF16: return "BF16";
    case MK_Q8_0: return "Q8_0";
    case MK_Q4_0: return "Q4_0";
    default: return "invalid";
    }
}

int mk_dtype_block(mk_dtype t) {
    return (t == MK_Q8_0 || t == MK_Q4_0) ? MK_QK : 1;
}

size_t mk_dtype_nbytes(mk_dtype t, uint64_t n) {
    uint64_t unit, per;  /* `per` elements take `unit` bytes */
    switch (t) {
    case MK_F32: unit = 4; per = 1; break;
    case MK_F16:
    case MK_BF16: unit = 2; per = 1; break;
    case MK_Q8_0: unit = Q8_0_BYTES; per = MK_QK; break;
    case MK_Q4_0: unit = Q4_0_BYTES; per = MK_QK; break;
    default: return 0;
    }
    if (n % per) return 0;
    uint64_t units = n / per;
    if (units > (uint64_t)SIZE_MAX / unit) return 0;
    return (size_t)(units * unit);
}

/* ---- scalar conversions ---- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Branch-free so the array loop can vectorise: normals shift the exponent
 * bias from 15 to 127; subnormals (exp 0) are mantissa * 2^-24 computed in
 * float arithmetic (exact); exp 31 becomes 255 (inf/nan keep the payload). */
static inline float f16_to_f32_inline(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t normal = ((exp + 112) << 23) | (mant << 13);
    uint32_t infnan = 0x7f800000u | (mant << 13);
    float sub = (float)mant * 5.9604644775390625e-8f; /* 2^-24 */
    uint32_t mag = exp == 31 ? infnan : normal;
    mag = exp == 0 ? f32_bits(sub) : mag;
    return bits_f32(sign | mag);
}

float mk_f16_to_f32(uint16_t h) { return f16_to_f32_inline(h); }

uint16_t mk_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
    if (x >= 0x477ff000u) /* >= 65520 rounds past the largest half: inf */
        return (uint16_t)(sign | 0x7c00);
    if (x >= 0x38800000u) { /* normal half (>= 2^-14) */
        /* Add just under half an ulp plus the lsb (ties to even); a carry
         * out of the mantissa correctly bumps the exponent. */
        x += 0xfffu + ((x >> 13) & 1);
        return (uint16_t)(sign | ((x - (112u << 23)) >> 13));
    }
    uint32_t e = x >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    /* Subnormal half: value = mant * 2^(e-150), unit 2^-24. */
    uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q); /* q may reach 0x400, the smallest normal */
}

float mk_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t mk_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- array dequantisation (hot path) ---- */

static inline uint16_t load_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8)); /* little-endian, any alignment */
}

static void deq_f16(const uint8_t *src, float *dst, size_t n) {
    size_t i = 0;
#ifdef MK_HAVE_F16C
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
#endif
    for (; i < n; i++) dst[i] = f16_to_f32_inline(load_u16(src + 2 * i));
}

/* The AVX2 paths below compute exactly the same products as the scalar
 * loops (d * (float)q, one rounding), so results are bit-identical; GCC at
 * -O2 does not vectorise the int8 -> float block loops by itself. */
static void deq_bf16(const uint8_t *src, float *dst, size_t n) {
    size_t i = 0;
#ifdef MK_HAVE_AVX2
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
#endif
    for (; i < n; i++) dst[i] = bits_f32((uint32_t)load_u16(src + 2 * i) << 16);
}

static void deq_q8_0(const uint8_t *src, float *dst, size_t nb) {
#ifdef MK_HAVE_AVX2
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = src + b * Q8_0_BYTES;
        __m256 d = _mm256_set1_ps(f16_to_f32_inline(load_u16(blk)));
        float *y = dst + b * MK_QK;
        for (int j = 0; j < MK_QK; j += 8) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(blk + 2 + j));
            __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(d, v));
        }
    }
#else
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = src + b * Q8_0_BYTES;
        float d = f16_to_f32_inline(load_u16(blk));
        const int8_t *q = (const int8_t *)(blk + 2);
        float *y = dst + b * MK_QK;
        for (int j = 0; j < MK_QK; j++) y[j] = d * (float)q[j];
    }
#endif
}

static void deq_q4_0(const uint8_t *src, float *dst, size_t nb) {
#ifdef MK_HAVE_AVX2
    const __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = src + b * Q4_0_BYTES;
        __m256 d = _mm256_set1_ps(f16_to_f32_inline(load_u16(blk)));
        float *y = dst + b * MK_QK;
        __m128i qs = _mm_loadu_si128((const __m128i *)(blk + 2));
        /* elements 0..15: low nibbles; 16..31: high nibbles; minus 8 */
        __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, mask), eight);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), eight);
        __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k]));
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, v));
        }
    }
#else
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = src + b * Q4_0_BYTES;
        float d = f16_to_f32_inline(load_u16(blk));
        const uint8_t *qs = blk + 2;
        float *y = dst + b * MK_QK;
        for (int j = 0; j < MK_QK / 2; j++) {
            y[j] = d * (float)((int)(qs[j] & 0x0f) - 8);
            y[j + MK_QK / 2] = d * (float)((int)(qs[j] >> 4) - 8);
        }
    }
#endif
}

void mk_dequantize(mk_dtype t, const void *src, float *dst, size_t n) {
    const uint8_t *s = src;
    switch (t) {
    case MK_F32: memcpy(dst, s, n * 4); break;
    case MK_F16: deq_f16(s, dst, n); break;
    case MK_BF16: deq_bf16(s, dst, n); break;
    case MK_Q8_0: deq_q8_0(s, dst, n / MK_QK); break;
    case MK_Q4_0: deq_q4_0(s, dst, n / MK_QK); break;
    default: break;
    }
}

/* ---- quantisation (writers; GGML's reference rules) ---- */

static inline void store_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

/* Q8_0: d = max|x| / 127, q = round(x * (1/d)) (half away from zero), the
 * f32 d is used for q and stored as f16. Non-finite inputs are clamped so
 * the float->int conversion is always defined. */
static void q_q8_0(const float *x, uint8_t *dst, size_t nb) {
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * MK_QK;
        uint8_t *blk = dst + b * Q8_0_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < MK_QK; j++) {
            float a = fabsf(xb[j]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(blk, mk_f32_to_f16(d));
        for (int j = 0; j < MK_QK; j++) {
            float v = roundf(xb[j] * id);
            if (v != v) v = 0.0f;
            else if (v > 127.0f) v = 127.0f;
            else if (v < -127.0f) v = -127.0f;
            blk[2 + j] = (uint8_t)(int8_t)v;
        }
    }
}

/* Q4_0: the element of largest magnitude, with its sign, maps to -8:
 * d = max / -8; q = min(15, trunc(x/d + 8.5)). */
static void q_q4_0(const float *x, uint8_t *dst, size_t nb) {
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * MK_QK;
        uint8_t *blk = dst + b * Q4_0_BYTES;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MK_QK; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(blk, mk_f32_to_f16(d));
        for (int j = 0; j < MK_QK / 2; j++) {
            int q[2];
            for (int k = 0; k < 2; k++) {
                /* volatile keeps the product rounded to f32 before the
                 * add (no FMA contraction), as GGML's rule is written. */
                volatile float prod = xb[j + k * MK_QK / 2] * id;
                float v = prod + 8.5f;
                if (!(v >= 0.0f)) v = 0.0f; /* NaN, or rounding noise below 0 */
                if (v > 15.0f) v = 15.0f;
                q[k] = (int)v;
            }
            blk[2 + j] = (uint8_t)(q[0] | (q[1] << 4));
        }
    }
}

void mk_quantize(mk_dtype t, const float *src, void *dst, size_t n) {
    uint8_t *d = dst;
    switch (t) {
    case MK_F32: memcpy(d, src, n * 4); break;
    case MK_F16:
        for (size_t i = 0; i < n; i++) store_u16(d + 2 * i, mk_f32_to_f16(src[i]));
        break;
    case MK_BF16:
        for (size_t i = 0; i < n; i++) store_u16(d + 2 * i, mk_f32_to_bf16(src[i]));
        break;
    case MK_Q8_0: q_q8_0(src, d, n / MK_QK); break;
    case MK_Q4_0: q_q4_0(src, d, n / MK_QK); break;
    default: break;
    }
}
