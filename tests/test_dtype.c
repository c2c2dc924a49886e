/* test_dtype.c - element types: sizes, f16/bf16 conversion against numpy /
 * PyTorch bit patterns, and Q8_0/Q4_0 blocks against an independent Python
 * implementation of GGML's rules (tools/gguf_fixture.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "util/check.h"

#define DATA "tests/data/gguf/"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float fbits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void test_sizes(void) {
    CHECK(!strcmp(mk_dtype_name(MK_Q4_0), "Q4_0") && !strcmp(mk_dtype_name(MK_BF16), "BF16"));
    CHECK(mk_dtype_nbytes(MK_F32, 3) == 12);
    CHECK(mk_dtype_nbytes(MK_F16, 3) == 6);
    CHECK(mk_dtype_nbytes(MK_BF16, 5) == 10);
    CHECK(mk_dtype_nbytes(MK_Q8_0, 64) == 68);
    CHECK(mk_dtype_nbytes(MK_Q4_0, 96) == 54);
    CHECK(mk_dtype_nbytes(MK_Q8_0, 33) == 0);  /* not a whole block */
    CHECK(mk_dtype_nbytes(MK_F32, UINT64_MAX / 2) == 0); /* overflow */
    CHECK(mk_dtype_nbytes(MK_DTYPE_COUNT, 4) == 0);
    CHECK(mk_dtype_block(MK_Q4_0) == 32 && mk_dtype_block(MK_F16) == 1);
}

/* Every f16 bit pattern against numpy's float16 -> float32. */
static void test_f16_all(void) {
    size_t len;
    uint8_t *ref = check_read_file(DATA "dtype_f16_all.bin", &len);
    CHECK(len == 65536 * 4);
    uint16_t *h = malloc(65536 * 2);
    float *viaarr = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    mk_dequantize(MK_F16, h, viaarr, 65536); /* the vectorised path */
    size_t bad_scalar = 0, bad_array = 0, bad_back = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t want = rd32(ref + 4 * i);
        float s = mk_f16_to_f32((uint16_t)i);
        int is_nan = isnan(fbits(want));
        /* NaN: any NaN with the same sign is fine; else bits must match */
        if (is_nan ? !(isnan(s) && signbit(s) == signbit(fbits(want))) : bits(s) != want) {
            if (bad_scalar++ < 5) fprintf(stderr, "f16 %04x: got %08x want %08x\n", i, bits(s), want);
        }
        if (is_nan ? !isnan(viaarr[i]) : bits(viaarr[i]) != want) {
            if (bad_array++ < 5) fprintf(stderr, "f16 array %04x: got %08x want %08x\n", i, bits(viaarr[i]), want);
        }
        /* every non-NaN half survives f16 -> f32 -> f16 exactly */
        if (!is_nan && mk_f32_to_f16(s) != i) bad_back++;
        if (is_nan && !isnan(mk_f16_to_f32(mk_f32_to_f16(s)))) bad_back++;
    }
    printf("f16->f32 all 65536 patterns: %zu scalar, %zu array, %zu round-trip mismatches\n", bad_scalar, bad_array, bad_back);
    CHECK(bad_scalar == 0);
    CHECK(bad_array == 0);
    CHECK(bad_back == 0);
    /* unaligned source for the array path */
    uint8_t *raw = malloc(2 * 100 + 1);
    memcpy(raw + 1, h + 1000, 200);
    mk_dequantize(MK_F16, raw + 1, viaarr, 100);
    size_t bad_unal = 0;
    for (int i = 0; i < 100; i++) bad_unal += bits(viaarr[i]) != rd32(ref + 4 * (1000 + i));
    CHECK(bad_unal == 0);
    free(raw);
    free(h);
    free(viaarr);
    free(ref);
}

/* f32 -> f16 (numpy) and f32 -> bf16 (torch), round to nearest even. */
static void test_f32_cases(void) {
    size_t len;
    uint8_t *ref = check_read_file(DATA "dtype_f32_cases.bin", &len);
    CHECK(len % 8 == 0 && len > 0);
    size_t n = len / 8, bad_h = 0, bad_b = 0, bad_bq = 0, bad_hq = 0;
    float *x = malloc(n * 4);
    uint16_t *hq = malloc(n * 2), *bq = malloc(n * 2);
    for (size_t i = 0; i < n; i++) x[i] = fbits(rd32(ref + 8 * i));
    mk_quantize(MK_F16, x, hq, n);
    mk_quantize(MK_BF16, x, bq, n);
    for (size_t i = 0; i < n; i++) {
        uint16_t wh = rd16(ref + 8 * i + 4), wb = rd16(ref + 8 * i + 6);
        uint16_t gh = mk_f32_to_f16(x[i]), gb = mk_f32_to_bf16(x[i]);
        if (isnan(x[i])) {
            /* NaN must stay NaN (payload bits are not compared) */
            if (!isnan(mk_f16_to_f32(gh))) bad_h++;
            if (!isnan(mk_bf16_to_f32(gb))) bad_b++;
            continue;
        }
        if (gh != wh && bad_h++ < 5) fprintf(stderr, "f32 %08x (%g) -> f16: got %04x want %04x\n", bits(x[i]), x[i], gh, wh);
        if (gb != wb && bad_b++ < 5) fprintf(stderr, "f32 %08x (%g) -> bf16: got %04x want %04x\n", bits(x[i]), x[i], gb, wb);
        bad_hq += hq[i] != wh;
        bad_bq += bq[i] != wb;
        if (mk_bf16_to_f32(wb) != fbits((uint32_t)wb << 16)) bad_b++;
    }
    printf("f32->f16/bf16 on %zu cases: %zu f16, %zu bf16 mismatches (array path %zu, %zu)\n", n, bad_h, bad_b, bad_hq, bad_bq);
    CHECK(bad_h == 0 && bad_b == 0 && bad_hq == 0 && bad_bq == 0);
    /* a few exact known patterns */
    CHECK(mk_f32_to_f16(1.0f) == 0x3c00);
    CHECK(mk_f32_to_f16(-2.0f) == 0xc000);
    CHECK(mk_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(mk_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(mk_f32_to_f16(INFINITY) == 0x7c00 && mk_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(mk_f32_to_f16(5.9604644775390625e-8f) == 0x0001); /* 2^-24 */
    CHECK(mk_f32_to_f16(2.98023223876953125e-8f) == 0x0000); /* 2^-25: tie -> even (0) */
    CHECK(mk_f32_to_f16(-0.0f) == 0x8000);
    CHECK(mk_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(mk_f32_to_bf16(fbits(0x3f808000)) == 0x3f80); /* tie -> even */
    CHECK(mk_f32_to_bf16(fbits(0x3f818000)) == 0x3f82); /* tie -> even (up) */
    CHECK(mk_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(isnan(mk_bf16_to_f32(mk_f32_to_bf16(NAN))));
    CHECK(mk_f16_to_f32(0x7c00) == INFINITY && isnan(mk_f16_to_f32(0x7e00)));
    free(x);
    free(hq);
    free(bq);
    free(ref);
}

/* Q8_0 / Q4_0 blocks: bytes and dequantised values from the Python rules. */
static void test_qblocks(void) {
    size_t len;
    uint8_t *ref = check_read_file(DATA "dtype_qblocks.bin", &len);
    const size_t rec = 128 + 34 + 128 + 18 + 128;
    CHECK(len % rec == 0 && len > 0);
    size_t nb = len / rec, bad8 = 0, bad4 = 0;
    float *x = malloc(nb * 32 * 4), *d8 = malloc(nb * 32 * 4), *d4 = malloc(nb * 32 * 4);
    uint8_t *q8 = malloc(nb * 34), *q4 = malloc(nb * 18);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *r = ref + b * rec;
        for (int j = 0; j < 32; j++) {
            x[b * 32 + j] = fbits(rd32(r + 4 * j));
            d8[b * 32 + j] = fbits(rd32(r + 128 + 34 + 4 * j));
            d4[b * 32 + j] = fbits(rd32(r + 128 + 34 + 128 + 18 + 4 * j));
        }
    }
    mk_quantize(MK_Q8_0, x, q8, nb * 32);
    mk_quantize(MK_Q4_0, x, q4, nb * 32);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *r = ref + b * rec;
        if (memcmp(q8 + 34 * b, r + 128, 34)) {
            if (bad8++ < 3) {
                fprintf(stderr, "Q8_0 block %zu differs:", b);
                for (int j = 0; j < 34; j++) fprintf(stderr, " %02x/%02x", q8[34 * b + j], r[128 + j]);
                fprintf(stderr, "\n");
            }
        }
        if (memcmp(q4 + 18 * b, r + 128 + 34 + 128, 18)) {
            if (bad4++ < 3) {
                fprintf(stderr, "Q4_0 block %zu differs:", b);
                for (int j = 0; j < 18; j++) fprintf(stderr, " %02x/%02x", q4[18 * b + j], r[128 + 34 + 128 + j]);
                fprintf(stderr, "\n");
            }
        }
    }
    printf("quantised %zu blocks: %zu Q8_0 and %zu Q4_0 blocks differ from the Python bytes\n", nb, bad8, bad4);
    CHECK(bad8 == 0 && bad4 == 0);
    /* dequantise the reference bytes (unaligned copies, as in a file) */
    uint8_t *buf8 = malloc(nb * 34 + 1), *buf4 = malloc(nb * 18 + 1);
    for (size_t b = 0; b < nb; b++) {
        memcpy(buf8 + 1 + 34 * b, ref + b * rec + 128, 34);
        memcpy(buf4 + 1 + 18 * b, ref + b * rec + 128 + 34 + 128, 18);
    }
    float *y = malloc(nb * 32 * 4);
    mk_dequantize(MK_Q8_0, buf8 + 1, y, nb * 32);
    check_close("Q8_0 dequantise vs python", y, d8, nb * 32, 0, 0);
    mk_dequantize(MK_Q4_0, buf4 + 1, y, nb * 32);
    check_close("Q4_0 dequantise vs python", y, d4, nb * 32, 0, 0);
    free(buf8); free(buf4); free(y);
    free(x); free(d8); free(d4); free(q8); free(q4);
    free(ref);
}

/* Dequantisers (SIMD where compiled in) against the formulas in dtype.h
 * evaluated one element at a time, on random bytes with finite scales,
 * at an odd address. */
static void test_dequant_random(void) {
    const size_t nb = 257, n = nb * 32;
    uint8_t *raw = malloc(nb * 34 + 1);
    float *got = malloc(n * 4), *want = malloc(n * 4);
    uint32_t s = 7;
    for (size_t i = 0; i < nb * 34 + 1; i++) {
        s = s * 1664525u + 1013904223u;
        raw[i] = (uint8_t)(s >> 24);
    }
    uint8_t *p = raw + 1;
    for (int pass = 0; pass < 2; pass++) {
        mk_dtype t = pass ? MK_Q4_0 : MK_Q8_0;
        size_t bs = pass ? 18 : 34;
        for (size_t b = 0; b < nb; b++) {
            uint8_t *blk = p + b * bs;
            blk[1] &= 0x7b; /* exponent < 31: finite scale, either sign */
            float d = mk_f16_to_f32(rd16(blk));
            for (int j = 0; j < 32; j++) {
                int q = pass ? (j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4)) - 8 : (int8_t)blk[2 + j];
                want[b * 32 + j] = d * (float)q;
            }
        }
        mk_dequantize(t, p, got, n);
        check_close(pass ? "Q4_0 dequantise vs formula (random bytes)" : "Q8_0 dequantise vs formula (random bytes)", got, want, n, 0, 0);
    }
    /* bf16 and f16, odd lengths (vector body + scalar tail) */
    for (size_t i = 0; i < 1001; i++) {
        p[2 * i + 1] &= 0xbf; /* finite bf16 */
        want[i] = mk_bf16_to_f32(rd16(p + 2 * i));
    }
    mk_dequantize(MK_BF16, p, got, 1001);
    check_close("bf16 dequantise (1001, unaligned)", got, want, 1001, 0, 0);
    for (size_t i = 0; i < 1001; i++) {
        p[2 * i + 1] &= 0x7b; /* finite halves */
        want[i] = mk_f16_to_f32(rd16(p + 2 * i));
    }
    mk_dequantize(MK_F16, p, got, 1001);
    check_close("f16 dequantise (1001, unaligned)", got, want, 1001, 0, 0);
    free(raw);
    free(got);
    free(want);
}

/* Error bounds of quantise -> dequantise on random data: Q8_0 within d/2
 * (+ f16 scale rounding), Q4_0 within d (+ rounding), per block. */
static void test_error_bounds(void) {
    const size_t n = 32 * 256;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    uint8_t *q = malloc(mk_dtype_nbytes(MK_Q8_0, n));
    uint32_t s = 99;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)(s >> 8) / 16777216.0f - 0.5f;
        x[i] = u * (float)(1 + (i / 32) % 7) * ((i / 32) % 3 == 0 ? 100.0f : 1.0f);
    }
    for (int pass = 0; pass < 2; pass++) {
        mk_dtype t = pass ? MK_Q4_0 : MK_Q8_0;
        mk_quantize(t, x, q, n);
        mk_dequantize(t, q, y, n);
        double worst = 0;
        size_t bad = 0;
        for (size_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            /* quantisation step: amax/127 (Q8_0) or amax/8 (Q4_0); the f16
             * scale adds a relative error of at most 2^-11 per unit step. */
            double step = pass ? amax / 8.0 : amax / 127.0;
            double bound = (pass ? 1.0 : 0.5) * step + amax * 1e-3;
            for (int j = 0; j < 32; j++) {
                double e = fabs((double)y[b * 32 + j] - x[b * 32 + j]);
                if (e / step > worst) worst = e / step;
                if (e > bound) bad++;
            }
        }
        printf("%s round trip on %zu values: largest error %.3f quantisation steps, %zu over the bound\n",
               mk_dtype_name(t), n, worst, bad);
        CHECK(bad == 0);
    }
    /* plain types: f32 exact, f16/bf16 relative error <= 2^-11 / 2^-8 */
    uint16_t *h = malloc(n * 2);
    mk_quantize(MK_F16, x, h, n);
    mk_dequantize(MK_F16, h, y, n);
    check_close("f16 round trip", y, x, n, 1e-7, 1.0 / 2048);
    mk_quantize(MK_BF16, x, h, n);
    mk_dequantize(MK_BF16, h, y, n);
    check_close("bf16 round trip", y, x, n, 0, 1.0 / 256);
    mk_quantize(MK_F32, x, y, n);
    check_close("f32 copy", y, x, n, 0, 0);
    /* non-finite input never crashes the quantisers (values are unspecified) */
    float odd[32];
    for (int j = 0; j < 32; j++) odd[j] = j == 3 ? NAN : j == 5 ? INFINITY : (float)j;
    mk_quantize(MK_Q8_0, odd, q, 32);
    mk_quantize(MK_Q4_0, odd, q, 32);
    free(h);
    free(x);
    free(y);
    free(q);
}

int main(void) {
    test_sizes();
    test_f16_all();
    test_f32_cases();
    test_qblocks();
    test_dequant_random();
    test_error_bounds();
    return check_summary("test_dtype");
}
