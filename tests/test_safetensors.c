/* test_safetensors.c - the safetensors reader against fixtures written by
 * tools/st_fixture.py (by hand from the format, values from torch), the
 * writer round trip, and hostile inputs that must fail cleanly. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "util/check.h"

#define DATA "tests/data/safetensors/"

/* Bitwise comparison (so -0, inf and NaN payloads count), printing the
 * largest absolute difference over the finite values. */
static void check_bits(const char *what, const float *got, const float *want, size_t n) {
    size_t bad = 0, worst = 0;
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], 4)) bad++;
        if (isfinite(got[i]) && isfinite(want[i])) {
            double d = fabs((double)got[i] - (double)want[i]);
            if (d > maxd) { maxd = d; worst = i; }
        } else if (memcmp(&got[i], &want[i], 4)) {
            maxd = INFINITY;
            worst = i;
        }
    }
    check_count++;
    if (bad) {
        check_failures++;
        fprintf(stderr, "FAIL %s: %zu of %zu values differ; largest abs diff %g at [%zu] (%g vs %g)\n",
                what, bad, n, maxd, worst, got[worst], want[worst]);
    } else {
        printf("ok   %s: n=%zu bit-identical, largest abs diff %g\n", what, n, maxd);
    }
}

typedef struct {
    char name[128], dtype[8];
    int n_dims;
    int64_t shape[4];
    size_t n, off;
} refent;

/* Read X_ref.json + X_ref.f32 written by tools/st_fixture.py. */
static size_t load_ref(const char *stem, refent *ents, size_t max, float **vals) {
    char p[256];
    snprintf(p, sizeof p, "%s_ref.json", stem);
    char *js = check_read_file(p, NULL);
    cJSON *j = cJSON_Parse(js);
    free(js);
    if (!cJSON_IsArray(j)) {
        fprintf(stderr, "%s: not a JSON array\n", p);
        exit(1);
    }
    size_t n = 0;
    for (cJSON *e = j->child; e && n < max; e = e->next, n++) {
        refent *r = &ents[n];
        snprintf(r->name, sizeof r->name, "%s", cJSON_GetObjectItem(e, "name")->valuestring);
        snprintf(r->dtype, sizeof r->dtype, "%s", cJSON_GetObjectItem(e, "dtype")->valuestring);
        r->n_dims = 0;
        for (cJSON *d = cJSON_GetObjectItem(e, "shape")->child; d; d = d->next) r->shape[r->n_dims++] = (int64_t)d->valuedouble;
        r->n = (size_t)cJSON_GetObjectItem(e, "n")->valuedouble;
        r->off = (size_t)cJSON_GetObjectItem(e, "ref_offset")->valuedouble;
    }
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s_ref.f32", stem);
    *vals = check_read_file(p, NULL);
    return n;
}

static mk_dtype dtype_from(const char *s) {
    return !strcmp(s, "F32") ? MK_F32 : !strcmp(s, "F16") ? MK_F16 : MK_BF16;
}

/* Every tensor of st matches the reference: order, dtype, shape, values. */
static void check_against_ref(const mk_st *st, const refent *ref, size_t nref, const float *vals,
                              const char *what) {
    CHECK(mk_st_n_tensors(st) == nref);
    for (size_t i = 0; i < nref && i < mk_st_n_tensors(st); i++) {
        const mk_tensor_view *t = mk_st_tensor(st, i);
        CHECK(!strcmp(t->name, ref[i].name)); /* header order kept */
        const mk_tensor_view *f = mk_st_find(st, ref[i].name);
        CHECK(f == t);
        if (!f) continue;
        CHECK(f->dtype == dtype_from(ref[i].dtype));
        CHECK(f->n_dims == ref[i].n_dims);
        for (int d = 0; d < ref[i].n_dims && d < f->n_dims; d++) CHECK(f->shape[d] == ref[i].shape[d]);
        CHECK(f->n_elems == ref[i].n);
        CHECK(f->nbytes == ref[i].n * (f->dtype == MK_F32 ? 4 : 2));
        float *got = malloc((ref[i].n + 1) * sizeof *got);
        mk_dequantize(f->dtype, f->data, got, ref[i].n);
        char w[200];
        snprintf(w, sizeof w, "%s %s", what, ref[i].name);
        check_bits(w, got, vals + ref[i].off, ref[i].n);
        free(got);
    }
}

static void test_fixture(void) {
    refent ref[16];
    float *vals;
    size_t nref = load_ref(DATA "mixed", ref, 16, &vals);
    CHECK(nref == 7);
    mk_st *st = NULL;
    CHECK_OK(mk_st_open(DATA "mixed.safetensors", &st));
    if (!st) return;
    check_against_ref(st, ref, nref, vals, "fixture");
    const mk_tensor_view *s = mk_st_find(st, "scalar");
    CHECK(s && s->n_dims == 0 && s->n_elems == 1 && s->nbytes == 4);
    const mk_tensor_view *e = mk_st_find(st, "empty");
    CHECK(e && e->n_dims == 2 && e->shape[0] == 0 && e->shape[1] == 4 && e->n_elems == 0 && e->nbytes == 0);
    CHECK(mk_st_find(st, "nope") == NULL);
    CHECK(mk_st_find(st, "") == NULL);
    CHECK(mk_st_tensor(st, 99) == NULL);
    CHECK(mk_st_n_meta(st) == 2);
    const char *k, *v;
    mk_st_meta_at(st, 0, &k, &v);
    CHECK(k && v && !strcmp(k, "format") && !strcmp(v, "pt"));
    mk_st_meta_at(st, 1, &k, &v);
    CHECK(k && !strcmp(k, "note"));
    CHECK(mk_st_meta(st, "note") && !strcmp(mk_st_meta(st, "note"), "medrek fixture \xc3\xbc \"quoted\""));
    CHECK(mk_st_meta(st, "absent") == NULL);
    mk_st_meta_at(st, 5, &k, &v);
    CHECK(k == NULL && v == NULL);
    mk_st_close(st);

    /* The same bytes through the in-memory entry point. */
    size_t len;
    void *buf = check_read_file(DATA "mixed.safetensors", &len);
    CHECK_OK(mk_st_open_mem(buf, len, "mem", &st));
    if (st) {
        check_against_ref(st, ref, nref, vals, "fixture (mem)");
        mk_st_close(st);
    }
    free(buf);
    free(vals);
}

/* Write the fixture's tensors with the mk_st writer, read them back. */
static void test_roundtrip(void) {
    refent ref[16];
    float *vals;
    size_t nref = load_ref(DATA "mixed", ref, 16, &vals);
    char path[] = "/tmp/mk_test_st_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);

    mk_st_writer *w = mk_st_writer_new();
    CHECK_OK(mk_st_w_meta(w, "format", "pt"));
    CHECK_OK(mk_st_w_meta(w, "note", "medrek fixture \xc3\xbc \"quoted\""));
    CHECK(mk_st_w_meta(w, "format", "again") == MK_ERR_ARG);
    for (size_t i = 0; i < nref; i++)
        CHECK_OK(mk_st_w_tensor(w, ref[i].name, dtype_from(ref[i].dtype), vals + ref[i].off, ref[i].n_dims, ref[i].shape));
    int64_t sh[5] = {1, 1, 1, 1, 1};
    CHECK(mk_st_w_tensor(w, "w_f32", MK_F32, vals, 1, sh) == MK_ERR_ARG);       /* duplicate */
    CHECK(mk_st_w_tensor(w, "five", MK_F32, vals, 5, sh) == MK_ERR_ARG);        /* 5 dims */
    CHECK(mk_st_w_tensor(w, "q8", MK_Q8_0, vals, 1, sh) == MK_ERR_UNSUPPORTED); /* not a safetensors type */
    CHECK(mk_st_w_tensor(w, "__metadata__", MK_F32, vals, 1, sh) == MK_ERR_ARG);
    CHECK(mk_st_w_tensor(w, "", MK_F32, vals, 1, sh) == MK_ERR_ARG);
    CHECK_OK(mk_st_w_write(w, path));
    mk_st_writer_free(w);

    size_t len;
    uint8_t *file = check_read_file(path, &len);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | file[k];
    CHECK(hlen % 8 == 0 && hlen + 8 <= len);
    CHECK(file[8] == '{' && (file[8 + hlen - 1] == ' ' || file[8 + hlen - 1] == '}'));
    mk_st *st = NULL;
    CHECK_OK(mk_st_open(path, &st));
    mk_st *orig = NULL;
    CHECK_OK(mk_st_open(DATA "mixed.safetensors", &orig));
    if (st && orig) {
        check_against_ref(st, ref, nref, vals, "roundtrip");
        CHECK(mk_st_meta(st, "note") && !strcmp(mk_st_meta(st, "note"), "medrek fixture \xc3\xbc \"quoted\""));
        /* Stored bytes equal torch's bytes in the fixture: same rounding. */
        for (size_t i = 0; i < nref; i++) {
            const mk_tensor_view *a = mk_st_find(st, ref[i].name), *b = mk_st_find(orig, ref[i].name);
            CHECK(a && b && a->nbytes == b->nbytes && (!a->nbytes || !memcmp(a->data, b->data, a->nbytes)));
        }
        /* Data offsets contiguous in insertion order. */
        const uint8_t *at = file + 8 + hlen;
        for (size_t i = 0; i < nref; i++) {
            const mk_tensor_view *a = mk_st_tensor(st, i);
            CHECK((const uint8_t *)a->data - (const uint8_t *)mk_st_tensor(st, 0)->data == at - (file + 8 + hlen));
            at += a->nbytes;
        }
        CHECK(at == file + len);
    }

    /* Write again from what was read: byte-identical file. */
    if (st) {
        char path2[] = "/tmp/mk_test_st2_XXXXXX";
        fd = mkstemp(path2);
        close(fd);
        w = mk_st_writer_new();
        for (size_t i = 0; i < mk_st_n_meta(st); i++) {
            const char *k, *v;
            mk_st_meta_at(st, i, &k, &v);
            CHECK_OK(mk_st_w_meta(w, k, v));
        }
        for (size_t i = 0; i < mk_st_n_tensors(st); i++) {
            const mk_tensor_view *t = mk_st_tensor(st, i);
            float *f = malloc((t->n_elems + 1) * sizeof *f);
            mk_dequantize(t->dtype, t->data, f, t->n_elems);
            CHECK_OK(mk_st_w_tensor(w, t->name, t->dtype, f, t->n_dims, t->shape));
            free(f);
        }
        CHECK_OK(mk_st_w_write(w, path2));
        mk_st_writer_free(w);
        size_t len2;
        uint8_t *file2 = check_read_file(path2, &len2);
        CHECK(len2 == len && !memcmp(file, file2, len));
        free(file2);
        unlink(path2);
    }
    mk_st_close(st);
    mk_st_close(orig);
    free(file);

    /* An empty writer makes a valid file with no tensors. */
    w = mk_st_writer_new();
    CHECK_OK(mk_st_w_write(w, path));
    mk_st_writer_free(w);
    CHECK_OK(mk_st_open(path, &st));
    if (st) CHECK(mk_st_n_tensors(st) == 0 && mk_st_n_meta(st) == 0);
    mk_st_close(st);
    /* A failed write leaves no file behind and names the path. */
    w = mk_st_writer_new();
    CHECK(mk_st_w_write(w, "/nonexistent-dir/x.safetensors") == MK_ERR_IO);
    CHECK(strstr(mk_errmsg(), "/nonexistent-dir/x.safetensors") != NULL);
    mk_st_writer_free(w);
    unlink(path);
    free(vals);
}

/* ------------------------------------------------------------- hostile */

/* u64 LE length + header + dlen bytes of data (byte i = i). */
static uint8_t *mkfile(const char *hdr, size_t hl, size_t dlen, size_t *len) {
    *len = 8 + hl + dlen;
    uint8_t *b = malloc(*len + 1);
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)((uint64_t)hl >> (8 * k));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < dlen; i++) b[8 + hl + i] = (uint8_t)i;
    return b;
}

/* Opening must fail with `want` and a message naming the label. */
static void expect_fail(const char *label, const void *buf, size_t len, int want) {
    mk_clear_error();
    mk_st *st = NULL;
    int rc = mk_st_open_mem(buf, len, label, &st);
    check_count++;
    if (rc == MK_OK || (want && rc != want) || st != NULL || !strstr(mk_errmsg(), label)) {
        check_failures++;
        fprintf(stderr, "FAIL %s: rc=%d (want %d) msg=%s\n", label, rc, want, mk_errmsg());
    } else {
        printf("ok   %-28s -> %s\n", label, mk_errmsg());
    }
    mk_st_close(st);
}

static void expect_ok(const char *label, const void *buf, size_t len, size_t n_tensors) {
    mk_st *st = NULL;
    int rc = mk_st_open_mem(buf, len, label, &st);
    check_count++;
    if (rc != MK_OK || mk_st_n_tensors(st) != n_tensors) {
        check_failures++;
        fprintf(stderr, "FAIL %s: should open (rc=%d: %s)\n", label, rc, rc ? mk_errmsg() : "wrong tensor count");
    }
    mk_st_close(st);
}

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_hostile(void) {
    struct {
        const char *label, *hdr;
        size_t dlen;
        int want;
    } cases[] = {
        {"not-json", "{garbage", 0, MK_ERR_FORMAT},
        {"json-array", "[1,2]", 0, MK_ERR_FORMAT},
        {"leading-space", " {}", 0, MK_ERR_FORMAT},
        {"trailing-garbage", "{} x", 0, MK_ERR_FORMAT},
        {"bad-dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"dtype-not-string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"unsupported-I64", "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, MK_ERR_UNSUPPORTED},
        {"unsupported-F8", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, MK_ERR_UNSUPPORTED},
        {"shape-negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-float", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-2.0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-exponent", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-huge", "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740993],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0, MK_ERR_FORMAT},
        {"shape-product-big", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-5-dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, MK_ERR_UNSUPPORTED},
        {"shape-not-array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"shape-string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"offsets-reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, MK_ERR_FORMAT},
        {"offsets-out-of-bounds", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, MK_ERR_FORMAT},
        {"offsets-negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[-4,-4]}}", 0, MK_ERR_FORMAT},
        {"offsets-three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, MK_ERR_FORMAT},
        {"offsets-strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", 8, MK_ERR_FORMAT},
        {"size-mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, MK_ERR_FORMAT},
        {"size-mismatch-f16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"overlap", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, MK_ERR_FORMAT},
        {"overlap-same", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"overlap-empty-inside", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, MK_ERR_FORMAT},
        {"hole", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16, MK_ERR_FORMAT},
        {"hole-at-start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, MK_ERR_FORMAT},
        {"trailing-data", "{" T1 "}", 12, MK_ERR_FORMAT},
        {"duplicate-name", "{" T1 "," T1 "}", 8, MK_ERR_FORMAT},
        {"duplicate-via-nul", "{" T1 ",\"a\\u0000x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", 8, MK_ERR_FORMAT},
        {"duplicate-field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"unknown-field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, MK_ERR_FORMAT},
        {"missing-dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"missing-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, MK_ERR_FORMAT},
        {"entry-not-object", "{\"a\":5}", 0, MK_ERR_FORMAT},
        {"empty-name", "{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"meta-number", "{\"__metadata__\":{\"k\":1}}", 0, MK_ERR_FORMAT},
        {"meta-nested", "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, MK_ERR_FORMAT},
        {"meta-not-object", "{\"__metadata__\":\"pt\"}", 0, MK_ERR_FORMAT},
        {"meta-null", "{\"__metadata__\":null}", 0, MK_ERR_FORMAT},
        {"meta-duplicate-key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, MK_ERR_FORMAT},
        {"meta-twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, MK_ERR_FORMAT},
        {"raw-control-char", "{\"__metadata__\":{\"k\":\"a\tb\"}}", 0, MK_ERR_FORMAT},
        {"invalid-utf8", "{\"__metadata__\":{\"k\":\"\xc3\x28\"}}", 0, MK_ERR_FORMAT},
        {"overlong-utf8", "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0, MK_ERR_FORMAT},
        {"surrogate-utf8", "{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}", 0, MK_ERR_FORMAT},
    };
    size_t nc = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < nc; i++) {
        size_t len;
        uint8_t *b = mkfile(cases[i].hdr, strlen(cases[i].hdr), cases[i].dlen, &len);
        expect_fail(cases[i].label, b, len, cases[i].want);
        free(b);
    }

    /* Byte-level corruptions. */
    size_t len;
    uint8_t *b;
    expect_fail("empty-file", "", 0, MK_ERR_FORMAT);
    expect_fail("seven-bytes", "\x02\0\0\0\0\0\0", 7, MK_ERR_FORMAT);
    b = mkfile("{" T1 "}", strlen("{" T1 "}"), 8, &len);
    expect_ok("valid-base", b, len, 1);
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    c[7] = 0x80; /* header length 2^63 + ... */
    expect_fail("hlen-huge", c, len, MK_ERR_FORMAT);
    memset(c, 0xff, 8); /* 2^64 - 1: must not wrap 8 + N */
    expect_fail("hlen-max", c, len, MK_ERR_FORMAT);
    memcpy(c, b, len);
    c[0] = (uint8_t)(len - 8 + 1); /* one past the end */
    expect_fail("hlen-beyond-file", c, len, MK_ERR_FORMAT);
    uint32_t big = MK_ST_MAX_HEADER + 1;
    memcpy(c, &big, 4);
    memset(c + 4, 0, 4);
    expect_fail("hlen-over-limit", c, len, MK_ERR_FORMAT);
    memset(c, 0, 8);
    expect_fail("hlen-zero", c, len, MK_ERR_FORMAT);
    memcpy(c, b, len);
    c[8 + 3] = 0; /* NUL inside the header */
    expect_fail("nul-in-header", c, len, MK_ERR_FORMAT);
    expect_fail("truncated-data", b, len - 1, MK_ERR_FORMAT);
    expect_fail("truncated-header", b, 8 + 10, MK_ERR_FORMAT);
    free(c);
    free(b);

    /* Deep nesting: past cJSON's limit, and within it as a metadata value. */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 64);
    size_t k = 0;
    k += (size_t)sprintf(deep + k, "{\"__metadata__\":{\"k\":");
    for (size_t i = 0; i < depth; i++) deep[k++] = '[';
    for (size_t i = 0; i < depth; i++) deep[k++] = ']';
    k += (size_t)sprintf(deep + k, "}}");
    b = mkfile(deep, k, 0, &len);
    expect_fail("deep-nesting-5000", b, len, MK_ERR_FORMAT);
    free(b);
    depth = 500;
    k = 0;
    k += (size_t)sprintf(deep + k, "{\"__metadata__\":{\"k\":");
    for (size_t i = 0; i < depth; i++) deep[k++] = '[';
    for (size_t i = 0; i < depth; i++) deep[k++] = ']';
    k += (size_t)sprintf(deep + k, "}}");
    b = mkfile(deep, k, 0, &len);
    expect_fail("deep-nesting-500", b, len, MK_ERR_FORMAT);
    free(b);
    free(deep);

    /* Valid edge cases. */
    const char *ok1 = "{}";
    b = mkfile(ok1, 2, 0, &len);
    expect_ok("empty-object", b, len, 0);
    free(b);
    const char *ok2 = "{\n  " T1 " ,\n \"z\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                      "\"y\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[8,10]},"
                      "\"x\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[10,10]}}   \n\t ";
    b = mkfile(ok2, strlen(ok2), 10, &len);
    expect_ok("whitespace-empty-scalar", b, len, 4);
    free(b);
    const char *ok3 = "{\"__metadata__\":{},\"e\\u00fc\\\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    b = mkfile(ok3, strlen(ok3), 0, &len);
    mk_st *st = NULL;
    CHECK_OK(mk_st_open_mem(b, len, "escaped-name", &st));
    CHECK(st && mk_st_find(st, "e\xc3\xbc\"") != NULL);
    mk_st_close(st);
    free(b);

    /* A corrupt file on disk: the message names the path. */
    char path[] = "/tmp/mk_test_st_bad_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "\x10\0\0\0\0\0\0\0{\"a\":", 13) == 13);
    close(fd);
    CHECK(mk_st_open(path, &st) == MK_ERR_FORMAT && st == NULL);
    CHECK(strstr(mk_errmsg(), path) != NULL);
    unlink(path);
    CHECK(mk_st_open("/nonexistent/x.safetensors", &st) == MK_ERR_IO);
}

/* MK_ST_SKIP_UNSUPPORTED: other dtypes validated, listed, not viewed. */
static void test_skip(void) {
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"pos\":{\"dtype\":\"I64\",\"shape\":[1,3],\"data_offsets\":[0,24]},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
                    "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[32,35]},"
                    "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[35,43]}}";
    size_t len;
    uint8_t *b = mkfile(h, strlen(h), 43, &len);
    expect_fail("skip-strict", b, len, MK_ERR_UNSUPPORTED);
    mk_st *st = NULL;
    CHECK_OK(mk_st_open_mem_flags(b, len, "skip", MK_ST_SKIP_UNSUPPORTED, &st));
    if (st) {
        CHECK(mk_st_n_tensors(st) == 1 && mk_st_find(st, "w") && !mk_st_find(st, "pos"));
        CHECK(mk_st_tensor(st, 0)->data == b + 8 + strlen(h) + 24);
        CHECK(mk_st_n_skipped(st) == 3);
        const char *dt = NULL;
        int nd = -1;
        const int64_t *sh = NULL;
        const char *name = mk_st_skipped(st, 0, &dt, &nd, &sh);
        CHECK(name && !strcmp(name, "pos") && !strcmp(dt, "I64") && nd == 2 && sh[0] == 1 && sh[1] == 3);
        name = mk_st_skipped(st, 1, &dt, &nd, &sh);
        CHECK(name && !strcmp(name, "mask") && !strcmp(dt, "BOOL") && nd == 1 && sh[0] == 3);
        name = mk_st_skipped(st, 2, &dt, &nd, &sh);
        CHECK(name && !strcmp(name, "d") && !strcmp(dt, "F64") && nd == 0);
        CHECK(mk_st_skipped(st, 3, &dt, &nd, &sh) == NULL);
        CHECK(mk_st_meta(st, "format") != NULL);
        mk_st_close(st);
    }
    free(b);
    /* Skipped tensors are still held to the format. */
    static const struct {
        const char *label, *hdr;
        size_t dlen;
        int want;
    } cases[] = {
        {"skip-size-mismatch", "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"skip-overlap", "{" T1 ",\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MK_ERR_FORMAT},
        {"skip-hole", "{" T1 ",\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9,10]}}", 10, MK_ERR_FORMAT},
        {"skip-5-dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,8],\"data_offsets\":[0,8]}}", 8, MK_ERR_UNSUPPORTED},
        {"skip-packed-F4", "{\"a\":{\"dtype\":\"F4\",\"shape\":[16],\"data_offsets\":[0,8]}}", 8, MK_ERR_UNSUPPORTED},
        {"skip-unknown", "{\"a\":{\"dtype\":\"Q9\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, MK_ERR_FORMAT},
        {"skip-dup", "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]}}", 8, MK_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b = mkfile(cases[i].hdr, strlen(cases[i].hdr), cases[i].dlen, &len);
        mk_clear_error();
        st = NULL;
        int rc = mk_st_open_mem_flags(b, len, cases[i].label, MK_ST_SKIP_UNSUPPORTED, &st);
        check_count++;
        if (rc != cases[i].want || st || !strstr(mk_errmsg(), cases[i].label)) {
            check_failures++;
            fprintf(stderr, "FAIL %s: rc=%d (want %d) msg=%s\n", cases[i].label, rc, cases[i].want, mk_errmsg());
        } else {
            printf("ok   %-28s -> %s\n", cases[i].label, mk_errmsg());
        }
        mk_st_close(st);
        free(b);
    }
}

/* Every truncation of the fixture fails (the data must be covered
 * exactly); single-byte changes of the header either open or fail with the
 * label: never crash (ASan/UBSan builds check the "never"). */
static void test_mutations(void) {
    size_t len;
    uint8_t *orig = check_read_file(DATA "mixed.safetensors", &len);
    uint8_t *b = malloc(len);
    int trunc_ok = 1;
    for (size_t n = 0; n < len; n++) {
        memcpy(b, orig, n);
        mk_st *st = NULL;
        mk_clear_error();
        int rc = mk_st_open_mem(b, n, "trunc", &st);
        if (rc == MK_OK || !strstr(mk_errmsg(), "trunc")) trunc_ok = 0;
        mk_st_close(st);
    }
    CHECK(trunc_ok);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | orig[k];
    static const uint8_t vals[] = {0, '"', '{', '}', '[', ']', ',', ':', '-', '9', '.', 'e', 0x80, 0xff, ' ', '\\'};
    size_t opened = 0, failed = 0;
    int msg_ok = 1;
    for (size_t i = 0; i < 8 + hlen; i++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            if (orig[i] == vals[v]) continue;
            memcpy(b, orig, len);
            b[i] = vals[v];
            mk_st *st = NULL;
            mk_clear_error();
            if (mk_st_open_mem(b, len, "mut", &st) == MK_OK) {
                opened++;
                /* Whatever opened must be consistent with the buffer. */
                for (size_t t = 0; t < mk_st_n_tensors(st); t++) {
                    const mk_tensor_view *tv = mk_st_tensor(st, t);
                    const uint8_t *p = tv->data;
                    if (p < b + 8 + hlen || p + tv->nbytes > b + len) msg_ok = 0;
                }
            } else {
                failed++;
                if (!strstr(mk_errmsg(), "mut")) msg_ok = 0;
            }
            mk_st_close(st);
        }
    }
    CHECK(msg_ok);
    CHECK(failed > 0);
    printf("ok   mutations: %zu opened, %zu refused\n", opened, failed);
    free(b);
    free(orig);
}

int main(void) {
    test_fixture();
    test_roundtrip();
    test_hostile();
    test_skip();
    test_mutations();
    return check_summary("test_safetensors");
}
