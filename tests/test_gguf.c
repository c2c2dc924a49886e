/* test_gguf.c - GGUF writer/reader round trip, fixtures written by an
 * independent Python writer (tools/gguf_fixture.py), and hostile inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"
#include "util/check.h"

#define DATA "tests/data/gguf/"

static char tmpdir[] = "/tmp/mk_test_gguf_XXXXXX";

static float *make_data(size_t n, int seed) {
    float *x = malloc(n * sizeof *x);
    uint32_t s = 12345u + (uint32_t)seed * 7919u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 4.0f;
    }
    return x;
}

/* Expected f32 values of a tensor stored as dtype: quantise + dequantise. */
static float *stored_values(mk_dtype dt, const float *x, size_t n) {
    size_t nb = mk_dtype_nbytes(dt, n);
    void *q = malloc(nb);
    float *y = malloc(n * sizeof *y);
    mk_quantize(dt, x, q, n);
    mk_dequantize(dt, q, y, n);
    free(q);
    return y;
}

static int str_is(const char *s, size_t len, const char *want) {
    return s && len == strlen(want) && !memcmp(s, want, len);
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *pa = check_read_file(a, &na), *pb = check_read_file(b, &nb);
    int eq = na == nb && !memcmp(pa, pb, na);
    if (!eq) {
        size_t i = 0;
        while (i < na && i < nb && pa[i] == pb[i]) i++;
        fprintf(stderr, "files %s (%zu bytes) and %s (%zu bytes) differ at byte %zu\n", a, na, b, nb, i);
    }
    free(pa);
    free(pb);
    return eq;
}

/* ---------------- round trip ---------------- */

typedef struct {
    const char *name;
    mk_dtype dt;
    int n_dims;
    int64_t shape[4];
} tspec;

static const tspec TS[] = {
    {"tok.f32", MK_F32, 2, {3, 5}},
    {"vec.f32", MK_F32, 1, {7}},
    {"blk.0.f16", MK_F16, 3, {2, 3, 4}},
    {"blk.0.bf16", MK_BF16, 2, {4, 6}},
    {"blk.0.q8", MK_Q8_0, 2, {3, 64}},
    {"blk.0.q4", MK_Q4_0, 4, {2, 1, 2, 32}},
    {"blk.1.q4", MK_Q4_0, 1, {96}},
};
#define NTS (sizeof TS / sizeof TS[0])

static size_t numel(const tspec *t) {
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (size_t)t->shape[d];
    return n;
}

static void write_all_types(const char *path) {
    mk_gguf_writer *w = mk_gguf_writer_new();
    CHECK(w != NULL);
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    int64_t i64 = -((int64_t)1 << 40); double f64 = -1.0 / 3.0;
    CHECK_OK(mk_gguf_w_str(w, "general.architecture", "llama"));
    CHECK_OK(mk_gguf_w_scalar(w, "t.u8", MK_GGUF_UINT8, &u8));
    CHECK_OK(mk_gguf_w_scalar(w, "t.i8", MK_GGUF_INT8, &i8));
    CHECK_OK(mk_gguf_w_scalar(w, "t.u16", MK_GGUF_UINT16, &u16));
    CHECK_OK(mk_gguf_w_scalar(w, "t.i16", MK_GGUF_INT16, &i16));
    CHECK_OK(mk_gguf_w_u32(w, "t.u32", 4000000000u));
    CHECK_OK(mk_gguf_w_i32(w, "t.i32", -2000000000));
    CHECK_OK(mk_gguf_w_f32(w, "t.f32", 1e-5f));
    CHECK_OK(mk_gguf_w_bool(w, "t.bool", 1));
    CHECK_OK(mk_gguf_w_scalar(w, "t.bool0", MK_GGUF_BOOL, (uint8_t[]){0}));
    CHECK_OK(mk_gguf_w_str(w, "t.str", "héllo wörld"));
    CHECK_OK(mk_gguf_w_strn(w, "t.str_nul", "a\0b", 3));
    CHECK_OK(mk_gguf_w_str(w, "t.str_empty", ""));
    CHECK_OK(mk_gguf_w_u64(w, "t.u64", UINT64_MAX));
    CHECK_OK(mk_gguf_w_scalar(w, "t.i64", MK_GGUF_INT64, &i64));
    CHECK_OK(mk_gguf_w_scalar(w, "t.f64", MK_GGUF_FLOAT64, &f64));

    /* arrays of every element type */
    uint8_t au8[] = {0, 1, 255}; int8_t ai8[] = {-128, 0, 127};
    uint16_t au16[] = {0, 65535}; int16_t ai16[] = {-32768, 32767};
    uint32_t au32[] = {0, 4294967295u}; int32_t ai32[] = {-5, 6, 7};
    float af32[] = {0.5f, -2.25f, 1e30f}; uint8_t abool[] = {1, 0, 1, 1};
    uint64_t au64[] = {UINT64_MAX, 3}; int64_t ai64[] = {INT64_MIN, INT64_MAX};
    double af64[] = {1e300, -0.0};
    CHECK_OK(mk_gguf_w_arr(w, "a.u8", MK_GGUF_UINT8, au8, 3));
    CHECK_OK(mk_gguf_w_arr(w, "a.i8", MK_GGUF_INT8, ai8, 3));
    CHECK_OK(mk_gguf_w_arr(w, "a.u16", MK_GGUF_UINT16, au16, 2));
    CHECK_OK(mk_gguf_w_arr(w, "a.i16", MK_GGUF_INT16, ai16, 2));
    CHECK_OK(mk_gguf_w_arr(w, "a.u32", MK_GGUF_UINT32, au32, 2));
    CHECK_OK(mk_gguf_w_arr_i32(w, "a.i32", ai32, 3));
    CHECK_OK(mk_gguf_w_arr_f32(w, "a.f32", af32, 3));
    CHECK_OK(mk_gguf_w_arr(w, "a.bool", MK_GGUF_BOOL, abool, 4));
    CHECK_OK(mk_gguf_w_arr(w, "a.u64", MK_GGUF_UINT64, au64, 2));
    CHECK_OK(mk_gguf_w_arr(w, "a.i64", MK_GGUF_INT64, ai64, 2));
    CHECK_OK(mk_gguf_w_arr(w, "a.f64", MK_GGUF_FLOAT64, af64, 2));
    const char *strs[] = {"<s>", "</s>", "", "▁the"};
    CHECK_OK(mk_gguf_w_arr_str(w, "a.str", strs, 4));
    CHECK_OK(mk_gguf_w_arr_i32(w, "a.empty_i32", NULL, 0));
    CHECK_OK(mk_gguf_w_arr_str(w, "a.empty_str", NULL, 0));
    /* refused by the writer */
    CHECK(mk_gguf_w_u32(w, "t.u8", 1) == MK_ERR_ARG);
    CHECK(mk_gguf_w_u32(w, "", 1) == MK_ERR_ARG);
    CHECK(mk_gguf_w_scalar(w, "t.x", MK_GGUF_STRING, "x") == MK_ERR_ARG);
    CHECK(mk_gguf_w_scalar(w, "t.badbool", MK_GGUF_BOOL, (uint8_t[]){2}) == MK_ERR_ARG);

    for (size_t k = 0; k < NTS; k++) {
        const tspec *t = &TS[k];
        size_t n = numel(t);
        float *x = make_data(n, (int)k);
        if (t->dt == MK_BF16) {
            uint16_t *b = malloc(n * 2);
            for (size_t i = 0; i < n; i++) b[i] = mk_f32_to_bf16(x[i]);
            CHECK_OK(mk_gguf_w_tensor_raw(w, t->name, t->dt, b, n * 2, t->n_dims, t->shape));
            CHECK(mk_gguf_w_tensor_raw(w, "bf16.badsize", t->dt, b, n * 2 - 2, t->n_dims, t->shape) == MK_ERR_ARG);
            free(b);
        } else {
            CHECK_OK(mk_gguf_w_tensor(w, t->name, t->dt, x, t->n_dims, t->shape));
        }
        free(x);
    }
    float z[64] = {0};
    CHECK(mk_gguf_w_tensor(w, "tok.f32", MK_F32, z, 1, (int64_t[]){4}) == MK_ERR_ARG);
    CHECK(mk_gguf_w_tensor(w, "q.bad", MK_Q8_0, z, 2, (int64_t[]){2, 16}) == MK_ERR_ARG);
    CHECK(mk_gguf_w_tensor(w, "d.bad", MK_F32, z, 2, (int64_t[]){0, 16}) == MK_ERR_ARG);
    CHECK(mk_gguf_w_tensor(w, "d.bad5", MK_F32, z, 5, (int64_t[]){1, 1, 1, 1, 1}) == MK_ERR_ARG);
    CHECK(mk_gguf_w_tensor(w, "a.very.long.tensor.name.that.is.more.than.sixty.three.bytes.long.xx",
                           MK_F32, z, 1, (int64_t[]){1}) == MK_ERR_ARG);
    CHECK_OK(mk_gguf_w_write(w, path));
    mk_gguf_writer_free(w);
}

static void check_all_types(const char *path) {
    mk_gguf *g = NULL;
    CHECK_OK(mk_gguf_open(path, &g));
    if (!g) return;
    CHECK(mk_gguf_version(g) == 3);
    CHECK(mk_gguf_alignment(g) == 32);
    CHECK(mk_gguf_data_offset(g) % 32 == 0);
    CHECK(mk_gguf_n_kv(g) == 30);
    /* insertion order is kept */
    size_t kl;
    const char *k0 = mk_gguf_kv_key(g, 0, &kl);
    CHECK(str_is(k0, kl, "general.architecture"));
    const char *k29 = mk_gguf_kv_key(g, 29, &kl);
    CHECK(str_is(k29, kl, "a.empty_str"));
    CHECK(mk_gguf_kv_key(g, 30, &kl) == NULL);

    const char *s;
    size_t sl;
    uint64_t u;
    uint32_t u32;
    int64_t i;
    float f;
    double d;
    int b;
    CHECK_OK(mk_gguf_get_str(g, "general.architecture", &s, &sl));
    CHECK(str_is(s, sl, "llama"));
    CHECK_OK(mk_gguf_get_u64(g, "t.u8", &u)); CHECK(u == 200);
    CHECK_OK(mk_gguf_get_i64(g, "t.i8", &i)); CHECK(i == -100);
    CHECK(mk_gguf_get_u64(g, "t.i8", &u) == MK_ERR_RANGE);
    CHECK_OK(mk_gguf_get_u32(g, "t.u16", &u32)); CHECK(u32 == 60000);
    CHECK_OK(mk_gguf_get_i64(g, "t.i16", &i)); CHECK(i == -30000);
    CHECK_OK(mk_gguf_get_u32(g, "t.u32", &u32)); CHECK(u32 == 4000000000u);
    CHECK_OK(mk_gguf_get_i64(g, "t.i32", &i)); CHECK(i == -2000000000);
    CHECK_OK(mk_gguf_get_f32(g, "t.f32", &f)); CHECK(f == 1e-5f);
    CHECK_OK(mk_gguf_get_bool(g, "t.bool", &b)); CHECK(b == 1);
    CHECK_OK(mk_gguf_get_bool(g, "t.bool0", &b)); CHECK(b == 0);
    CHECK_OK(mk_gguf_get_str(g, "t.str", &s, &sl)); CHECK(str_is(s, sl, "héllo wörld"));
    CHECK_OK(mk_gguf_get_str(g, "t.str_nul", &s, &sl)); CHECK(sl == 3 && !memcmp(s, "a\0b", 3));
    CHECK_OK(mk_gguf_get_str(g, "t.str_empty", &s, &sl)); CHECK(sl == 0);
    CHECK_OK(mk_gguf_get_u64(g, "t.u64", &u)); CHECK(u == UINT64_MAX);
    CHECK(mk_gguf_get_u32(g, "t.u64", &u32) == MK_ERR_RANGE);
    CHECK(mk_gguf_get_i64(g, "t.u64", &i) == MK_ERR_RANGE);
    CHECK_OK(mk_gguf_get_i64(g, "t.i64", &i)); CHECK(i == -((int64_t)1 << 40));
    CHECK_OK(mk_gguf_get_f32(g, "t.f64", &f)); CHECK(f == (float)(-1.0 / 3.0));
    long k = mk_gguf_find(g, "t.f64");
    CHECK(k >= 0 && mk_gguf_kv_type(g, (size_t)k) == MK_GGUF_FLOAT64);
    CHECK_OK(mk_gguf_kv_get_f64(g, (size_t)k, &d)); CHECK(d == -1.0 / 3.0);
    /* type mismatches and absence */
    CHECK(mk_gguf_get_str(g, "t.u8", &s, &sl) == MK_ERR_FORMAT);
    CHECK(mk_gguf_get_u64(g, "t.str", &u) == MK_ERR_FORMAT);
    CHECK(mk_gguf_get_f32(g, "t.u32", &f) == MK_ERR_FORMAT);
    CHECK(mk_gguf_get_bool(g, "t.u8", &b) == MK_ERR_FORMAT);
    CHECK(mk_gguf_get_u64(g, "no.such.key", &u) == MK_ERR_NOTFOUND);
    CHECK(strstr(mk_errmsg(), "no.such.key") && strstr(mk_errmsg(), path));
    CHECK(mk_gguf_find(g, "t.u") < 0);

    /* arrays */
    struct { const char *key; mk_gguf_type t; uint64_t n; double v[4]; } arrs[] = {
        {"a.u8", MK_GGUF_UINT8, 3, {0, 1, 255}},
        {"a.i8", MK_GGUF_INT8, 3, {-128, 0, 127}},
        {"a.u16", MK_GGUF_UINT16, 2, {0, 65535}},
        {"a.i16", MK_GGUF_INT16, 2, {-32768, 32767}},
        {"a.u32", MK_GGUF_UINT32, 2, {0, 4294967295.0}},
        {"a.i32", MK_GGUF_INT32, 3, {-5, 6, 7}},
        {"a.f32", MK_GGUF_FLOAT32, 3, {0.5, -2.25, (double)1e30f}},
        {"a.bool", MK_GGUF_BOOL, 4, {1, 0, 1, 1}},
        {"a.u64", MK_GGUF_UINT64, 2, {18446744073709551615.0, 3}},
        {"a.i64", MK_GGUF_INT64, 2, {-9223372036854775808.0, 9223372036854775807.0}},
        {"a.f64", MK_GGUF_FLOAT64, 2, {1e300, -0.0}},
        {"a.empty_i32", MK_GGUF_INT32, 0, {0}},
    };
    for (size_t a = 0; a < sizeof arrs / sizeof arrs[0]; a++) {
        k = mk_gguf_find(g, arrs[a].key);
        CHECK(k >= 0);
        if (k < 0) continue;
        CHECK(mk_gguf_kv_type(g, (size_t)k) == MK_GGUF_ARRAY);
        CHECK(mk_gguf_kv_arr_type(g, (size_t)k) == arrs[a].t);
        CHECK(mk_gguf_kv_arr_n(g, (size_t)k) == arrs[a].n);
        for (uint64_t e = 0; e < arrs[a].n; e++) {
            CHECK_OK(mk_gguf_arr_f64(g, (size_t)k, e, &d));
            CHECK(d == arrs[a].v[e]);
        }
        CHECK(mk_gguf_arr_f64(g, (size_t)k, arrs[a].n, &d) == MK_ERR_RANGE);
        CHECK(mk_gguf_arr_data(g, (size_t)k) != NULL);
    }
    k = mk_gguf_find(g, "a.i64");
    CHECK_OK(mk_gguf_arr_i64(g, (size_t)k, 0, &i)); CHECK(i == INT64_MIN);
    CHECK_OK(mk_gguf_arr_i64(g, (size_t)k, 1, &i)); CHECK(i == INT64_MAX);
    k = mk_gguf_find(g, "a.u64");
    CHECK(mk_gguf_arr_i64(g, (size_t)k, 0, &i) == MK_ERR_RANGE);
    CHECK_OK(mk_gguf_arr_i64(g, (size_t)k, 1, &i)); CHECK(i == 3);
    k = mk_gguf_find(g, "a.f32");
    CHECK(mk_gguf_arr_i64(g, (size_t)k, 0, &i) == MK_ERR_FORMAT);
    CHECK(mk_gguf_arr_str(g, (size_t)k, 0, &s, &sl) == MK_ERR_FORMAT);
    k = mk_gguf_find(g, "a.str");
    CHECK(mk_gguf_kv_arr_type(g, (size_t)k) == MK_GGUF_STRING && mk_gguf_kv_arr_n(g, (size_t)k) == 4);
    const char *strs[] = {"<s>", "</s>", "", "▁the"};
    for (int e = 0; e < 4; e++) {
        CHECK_OK(mk_gguf_arr_str(g, (size_t)k, (uint64_t)e, &s, &sl));
        CHECK(str_is(s, sl, strs[e]));
    }
    CHECK(mk_gguf_arr_str(g, (size_t)k, 4, &s, &sl) == MK_ERR_RANGE);
    CHECK(mk_gguf_arr_f64(g, (size_t)k, 0, &d) == MK_ERR_FORMAT);
    CHECK(mk_gguf_arr_data(g, (size_t)k) == NULL);
    k = mk_gguf_find(g, "a.empty_str");
    CHECK(k >= 0 && mk_gguf_kv_arr_type(g, (size_t)k) == MK_GGUF_STRING && mk_gguf_kv_arr_n(g, (size_t)k) == 0);
    k = mk_gguf_find(g, "t.u8");
    CHECK(mk_gguf_arr_f64(g, (size_t)k, 0, &d) == MK_ERR_FORMAT);

    /* tensors */
    CHECK(mk_gguf_n_tensors(g) == NTS);
    for (size_t t = 0; t < NTS && t < mk_gguf_n_tensors(g); t++) {
        const tspec *ts = &TS[t];
        const mk_tensor_view *v = mk_gguf_tensor(g, t);
        CHECK(v && !strcmp(v->name, ts->name));
        CHECK(mk_gguf_find_tensor(g, ts->name) == v);
        CHECK(v->dtype == ts->dt && v->n_dims == ts->n_dims);
        for (int dd = 0; dd < ts->n_dims; dd++) CHECK(v->shape[dd] == ts->shape[dd]);
        size_t n = numel(ts);
        CHECK(v->n_elems == n && v->nbytes == mk_dtype_nbytes(ts->dt, n));
        CHECK(mk_gguf_tensor_offset(g, t) % 32 == 0);
        float *x = make_data(n, (int)t);
        float *want = stored_values(ts->dt, x, n);
        float *got = malloc(n * sizeof *got);
        mk_dequantize(v->dtype, v->data, got, n);
        char what[96];
        snprintf(what, sizeof what, "round trip %s (%s)", ts->name, mk_dtype_name(ts->dt));
        check_close(what, got, want, n, 0, 0);
        /* and the stored values are close to the originals */
        double tol = ts->dt == MK_F32 ? 0 : ts->dt == MK_Q4_0 ? 0.3 : ts->dt == MK_Q8_0 ? 0.02 : 0.01;
        snprintf(what, sizeof what, "%s vs f32 input", ts->name);
        check_close(what, got, x, n, tol, 0);
        free(x);
        free(want);
        free(got);
    }
    CHECK(mk_gguf_find_tensor(g, "blk.0") == NULL);
    CHECK(mk_gguf_tensor(g, NTS) == NULL);
    mk_gguf_close(g);
}

/* Re-write an open file through the writer (kv copied verbatim, tensor
 * bytes copied raw): the bytes must be identical. */
static void rewrite(const char *in, const char *out) {
    mk_gguf *g = NULL;
    CHECK_OK(mk_gguf_open(in, &g));
    if (!g) return;
    mk_gguf_writer *w = mk_gguf_writer_new();
    for (size_t i = 0; i < mk_gguf_n_kv(g); i++) CHECK_OK(mk_gguf_w_copy_kv(w, g, i));
    for (size_t i = 0; i < mk_gguf_n_tensors(g); i++) {
        const mk_tensor_view *v = mk_gguf_tensor(g, i);
        CHECK_OK(mk_gguf_w_tensor_raw(w, v->name, v->dtype, v->data, v->nbytes, v->n_dims, v->shape));
    }
    CHECK_OK(mk_gguf_w_write(w, out));
    mk_gguf_writer_free(w);
    mk_gguf_close(g);
    CHECK(files_equal(in, out));
}

/* ---------------- fixtures from tools/gguf_fixture.py ---------------- */

/* x_k[i] = ((i*37 + k*11) % 101 - 50) / 16, as the Python script writes. */
static float *fixture_values(size_t n, int k) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)((long)((i * 37 + (size_t)k * 11) % 101) - 50) / 16.0f;
    return x;
}

/* Tensor k of a fixture: F32/F16/BF16 values are exact; block types must
 * have the very bytes our quantiser produces from the same input. */
static void check_fixture_tensor(const mk_gguf *g, const char *name, mk_dtype dt, int n_dims,
                                 const int64_t *shape, int k) {
    const mk_tensor_view *v = mk_gguf_find_tensor(g, name);
    CHECK(v != NULL);
    if (!v) return;
    CHECK(v->dtype == dt && v->n_dims == n_dims);
    size_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        CHECK(v->shape[d] == shape[d]);
        n *= (size_t)shape[d];
    }
    CHECK(v->n_elems == n);
    float *x = fixture_values(n, k);
    char what[80];
    if (dt == MK_Q8_0 || dt == MK_Q4_0) {
        size_t nb = mk_dtype_nbytes(dt, n);
        uint8_t *q = malloc(nb);
        mk_quantize(dt, x, q, n);
        CHECK(v->nbytes == nb && !memcmp(q, v->data, nb));
        free(q);
        float *y = malloc(n * sizeof *y), *want = stored_values(dt, x, n);
        mk_dequantize(dt, v->data, y, n);
        snprintf(what, sizeof what, "fixture %s (%s)", name, mk_dtype_name(dt));
        check_close(what, y, want, n, 0, 0);
        free(y);
        free(want);
    } else {
        float *y = malloc(n * sizeof *y);
        mk_dequantize(dt, v->data, y, n);
        snprintf(what, sizeof what, "fixture %s (%s)", name, mk_dtype_name(dt));
        check_close(what, y, x, n, 0, 0);
        free(y);
    }
    free(x);
}

static void test_fixture_v3(void) {
    mk_gguf *g = NULL;
    CHECK_OK(mk_gguf_open(DATA "v3.gguf", &g));
    if (!g) return;
    CHECK(mk_gguf_version(g) == 3 && mk_gguf_alignment(g) == 32);
    CHECK(mk_gguf_n_kv(g) == 21 && mk_gguf_n_tensors(g) == 5);
    const char *s;
    size_t sl;
    uint64_t u;
    int64_t i;
    float f;
    double d;
    int b;
    CHECK_OK(mk_gguf_get_str(g, "general.architecture", &s, &sl)); CHECK(str_is(s, sl, "llama"));
    CHECK_OK(mk_gguf_get_str(g, "general.name", &s, &sl)); CHECK(str_is(s, sl, "fixture v3"));
    CHECK_OK(mk_gguf_get_u64(g, "f.u8", &u)); CHECK(u == 7);
    CHECK_OK(mk_gguf_get_i64(g, "f.i8", &i)); CHECK(i == -7);
    CHECK_OK(mk_gguf_get_u64(g, "f.u16", &u)); CHECK(u == 65535);
    CHECK_OK(mk_gguf_get_i64(g, "f.i16", &i)); CHECK(i == -32768);
    CHECK_OK(mk_gguf_get_u64(g, "f.u32", &u)); CHECK(u == 123456789);
    CHECK_OK(mk_gguf_get_i64(g, "f.i32", &i)); CHECK(i == -123456789);
    CHECK_OK(mk_gguf_get_f32(g, "f.f32", &f)); CHECK(f == 0.125f);
    CHECK_OK(mk_gguf_get_bool(g, "f.bool", &b)); CHECK(b == 1);
    CHECK_OK(mk_gguf_get_u64(g, "f.u64", &u)); CHECK(u == (1ull << 63) + 5);
    CHECK_OK(mk_gguf_get_i64(g, "f.i64", &i)); CHECK(i == -((int64_t)1 << 62));
    long k = mk_gguf_find(g, "f.f64");
    CHECK(k >= 0 && mk_gguf_kv_type(g, (size_t)k) == MK_GGUF_FLOAT64);
    CHECK_OK(mk_gguf_kv_get_f64(g, (size_t)k, &d)); CHECK(d == 2.5e-300);
    struct { const char *key; mk_gguf_type t; uint64_t n; double v[4]; } arrs[] = {
        {"f.arr_u8", MK_GGUF_UINT8, 3, {1, 2, 3}},
        {"f.arr_i32", MK_GGUF_INT32, 4, {-1, 0, 1, 2147483647}},
        {"f.arr_f32", MK_GGUF_FLOAT32, 2, {0.5, -1.5}},
        {"f.arr_bool", MK_GGUF_BOOL, 2, {0, 1}},
        {"f.arr_empty", MK_GGUF_FLOAT32, 0, {0}},
        {"f.arr_u64", MK_GGUF_UINT64, 1, {18446744073709551615.0}},
        {"f.arr_f64", MK_GGUF_FLOAT64, 1, {-0.25}},
    };
    for (size_t a = 0; a < sizeof arrs / sizeof arrs[0]; a++) {
        k = mk_gguf_find(g, arrs[a].key);
        CHECK(k >= 0);
        if (k < 0) continue;
        CHECK(mk_gguf_kv_arr_type(g, (size_t)k) == arrs[a].t && mk_gguf_kv_arr_n(g, (size_t)k) == arrs[a].n);
        for (uint64_t e = 0; e < arrs[a].n; e++) {
            CHECK_OK(mk_gguf_arr_f64(g, (size_t)k, e, &d));
            CHECK(d == arrs[a].v[e]);
        }
    }
    k = mk_gguf_find(g, "f.arr_str");
    CHECK(k >= 0 && mk_gguf_kv_arr_n(g, (size_t)k) == 3);
    const char *want[] = {"alpha", "", "gamma \xce\xb4"};
    for (int e = 0; e < 3; e++) {
        CHECK_OK(mk_gguf_arr_str(g, (size_t)k, (uint64_t)e, &s, &sl));
        CHECK(str_is(s, sl, want[e]));
    }
    check_fixture_tensor(g, "t.f32", MK_F32, 2, (int64_t[]){2, 3}, 0);
    check_fixture_tensor(g, "t.f16", MK_F16, 1, (int64_t[]){4}, 1);
    check_fixture_tensor(g, "t.bf16", MK_BF16, 2, (int64_t[]){2, 2}, 2);
    check_fixture_tensor(g, "t.q8", MK_Q8_0, 2, (int64_t[]){2, 64}, 3);
    check_fixture_tensor(g, "t.q4", MK_Q4_0, 2, (int64_t[]){3, 32}, 4);
    mk_gguf_close(g);
    /* Our writer must produce the same bytes as the independent Python
     * writer for the same content. */
    char out[256];
    snprintf(out, sizeof out, "%s/v3_rewritten.gguf", tmpdir);
    rewrite(DATA "v3.gguf", out);
    unlink(out);
}

static void test_fixture_v2(void) {
    mk_gguf *g = NULL;
    CHECK_OK(mk_gguf_open(DATA "v2.gguf", &g));
    if (!g) return;
    CHECK(mk_gguf_version(g) == 2 && mk_gguf_alignment(g) == 64);
    CHECK(mk_gguf_data_offset(g) % 64 == 0);
    CHECK(mk_gguf_n_kv(g) == 4 && mk_gguf_n_tensors(g) == 3);
    const char *s;
    size_t sl;
    uint32_t a;
    CHECK_OK(mk_gguf_get_str(g, "general.architecture", &s, &sl)); CHECK(str_is(s, sl, "gpt2"));
    CHECK_OK(mk_gguf_get_u32(g, "general.alignment", &a)); CHECK(a == 64);
    long kt = mk_gguf_find(g, "tokenizer.ggml.tokens"), ks = mk_gguf_find(g, "tokenizer.ggml.scores");
    CHECK(kt >= 0 && ks >= 0 && mk_gguf_kv_arr_n(g, (size_t)kt) == 300 && mk_gguf_kv_arr_n(g, (size_t)ks) == 300);
    size_t bad = 0;
    for (uint64_t e = 0; e < 300 && kt >= 0 && ks >= 0; e++) {
        char buf[16];
        snprintf(buf, sizeof buf, "tok%llu", (unsigned long long)e);
        double d;
        if (mk_gguf_arr_str(g, (size_t)kt, e, &s, &sl) || !str_is(s, sl, buf)) bad++;
        if (mk_gguf_arr_f64(g, (size_t)ks, e, &d) || d != -(double)e) bad++;
    }
    CHECK(bad == 0);
    /* raw access to the f32 array */
    const uint8_t *raw = mk_gguf_arr_data(g, (size_t)ks);
    float f299;
    memcpy(&f299, raw + 4 * 299, 4);
    CHECK(f299 == -299.0f);
    check_fixture_tensor(g, "a", MK_F32, 1, (int64_t[]){5}, 0);
    check_fixture_tensor(g, "b", MK_Q8_0, 1, (int64_t[]){32}, 1);
    check_fixture_tensor(g, "c.weight", MK_F16, 4, (int64_t[]){3, 1, 2, 8}, 2);
    /* data was written in reverse order: c first */
    CHECK(mk_gguf_tensor_offset(g, 2) == 0 && mk_gguf_tensor_offset(g, 0) > mk_gguf_tensor_offset(g, 1));
    mk_gguf_close(g);
}

static void test_roundtrip(void) {
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/all.gguf", tmpdir);
    snprintf(p2, sizeof p2, "%s/all2.gguf", tmpdir);
    write_all_types(p1);
    check_all_types(p1);
    rewrite(p1, p2);
    /* the writer leaves no temporary file behind */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", p1);
    CHECK(access(tmp, F_OK) != 0);
    /* general.alignment set by the caller is honoured; no tensors is fine */
    {
        mk_gguf_writer *wa = mk_gguf_writer_new();
        CHECK_OK(mk_gguf_w_u32(wa, "general.alignment", 512));
        float x[40] = {1, 2, 3};
        CHECK_OK(mk_gguf_w_tensor(wa, "t0", MK_F32, x, 1, (int64_t[]){3}));
        CHECK_OK(mk_gguf_w_tensor(wa, "t1", MK_F16, x, 2, (int64_t[]){4, 10}));
        CHECK_OK(mk_gguf_w_write(wa, p1));
        mk_gguf_writer_free(wa);
        mk_gguf *g = NULL;
        CHECK_OK(mk_gguf_open(p1, &g));
        CHECK(g && mk_gguf_alignment(g) == 512 && mk_gguf_data_offset(g) == 512);
        CHECK(g && mk_gguf_tensor_offset(g, 0) == 0 && mk_gguf_tensor_offset(g, 1) == 512);
        CHECK(g && mk_gguf_file_size(g) == 1536);
        mk_gguf_close(g);
        wa = mk_gguf_writer_new();
        CHECK_OK(mk_gguf_w_u32(wa, "general.alignment", 24));
        CHECK(mk_gguf_w_write(wa, p1) == MK_ERR_ARG);
        mk_gguf_writer_free(wa);
        wa = mk_gguf_writer_new();
        CHECK_OK(mk_gguf_w_str(wa, "general.architecture", "none"));
        CHECK_OK(mk_gguf_w_write(wa, p1));
        mk_gguf_writer_free(wa);
        CHECK_OK(mk_gguf_open(p1, &g));
        CHECK(g && mk_gguf_n_tensors(g) == 0 && mk_gguf_n_kv(g) == 1 && mk_gguf_file_size(g) % 32 == 0);
        mk_gguf_close(g);
    }
    /* caller mistakes are errors, not crashes */
    {
        mk_gguf_writer *wn = mk_gguf_writer_new();
        CHECK(mk_gguf_w_str(wn, "k", NULL) == MK_ERR_ARG);
        CHECK(mk_gguf_w_scalar(wn, "k", MK_GGUF_UINT8, NULL) == MK_ERR_ARG);
        CHECK(mk_gguf_w_arr(wn, "k", MK_GGUF_UINT8, NULL, 3) == MK_ERR_ARG);
        CHECK(mk_gguf_w_arr_str(wn, "k", (const char *const[]){"a", NULL}, 2) == MK_ERR_ARG);
        CHECK(mk_gguf_w_tensor(wn, "t", MK_F32, NULL, 1, (int64_t[]){3}) == MK_ERR_ARG);
        CHECK(mk_gguf_w_tensor(wn, "t", MK_F32, (float[]){1}, 1, NULL) == MK_ERR_ARG);
        CHECK(mk_gguf_w_u32(NULL, "k", 1) == MK_ERR_ARG);
        CHECK(mk_gguf_w_write(NULL, "x") == MK_ERR_ARG);
        mk_gguf_writer_free(wn);
        mk_gguf_writer_free(NULL);
        mk_gguf_close(NULL);
    }
    /* writing into a missing directory fails cleanly */
    mk_gguf_writer *w = mk_gguf_writer_new();
    CHECK_OK(mk_gguf_w_u32(w, "x", 1));
    CHECK(mk_gguf_w_write(w, "/nonexistent/dir/x.gguf") == MK_ERR_IO);
    mk_gguf_writer_free(w);
    unlink(p1);
    unlink(p2);
}

/* ---------------- hostile inputs ---------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void bput(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void bu32(buf *b, uint32_t v) { uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}; bput(b, x, 4); }
static void bu64(buf *b, uint64_t v) { bu32(b, (uint32_t)v); bu32(b, (uint32_t)(v >> 32)); }
static void bstr(buf *b, const char *s) { bu64(b, strlen(s)); bput(b, s, strlen(s)); }

typedef struct {
    const char *name;
    size_t name_len; /* used when name has NUL bytes */
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
    uint64_t len_field; /* declared name length when non-zero */
} htensor;

/* A small file described field by field so each case can break one. */
typedef struct {
    char magic[5];
    uint32_t version;
    int64_t n_t_override, n_kv_override; /* -1: the real counts */
    buf kvs;
    size_t n_kv;
    htensor t[4];
    size_t n_t;
    uint32_t align;     /* padding used after the infos */
    size_t data_bytes;  /* bytes of tensor data appended */
} hspec;

static void kv_str(hspec *s, const char *key, const char *v) { bstr(&s->kvs, key); bu32(&s->kvs, MK_GGUF_STRING); bstr(&s->kvs, v); s->n_kv++; }
static void kv_u32(hspec *s, const char *key, uint32_t v) { bstr(&s->kvs, key); bu32(&s->kvs, MK_GGUF_UINT32); bu32(&s->kvs, v); s->n_kv++; }

static void spec_default(hspec *s) {
    memset(s, 0, sizeof *s);
    memcpy(s->magic, "GGUF", 5);
    s->version = 3;
    s->n_t_override = s->n_kv_override = -1;
    kv_str(s, "general.architecture", "llama");
    kv_u32(s, "x.u32", 5);
    s->t[0] = (htensor){"a", 0, 1, {8}, 0, 0, 0};          /* F32, 32 bytes */
    s->t[1] = (htensor){"b", 0, 2, {32, 2}, 8, 32, 0};     /* Q8_0, 68 bytes */
    s->n_t = 2;
    s->align = 32;
    s->data_bytes = 128;
}

static buf build(hspec *s) {
    buf b = {0};
    bput(&b, s->magic, 4);
    bu32(&b, s->version);
    bu64(&b, s->n_t_override >= 0 ? (uint64_t)s->n_t_override : s->n_t);
    bu64(&b, s->n_kv_override >= 0 ? (uint64_t)s->n_kv_override : s->n_kv);
    if (s->kvs.n) bput(&b, s->kvs.p, s->kvs.n);
    for (size_t i = 0; i < s->n_t; i++) {
        const htensor *t = &s->t[i];
        size_t nl = t->name_len ? t->name_len : strlen(t->name);
        bu64(&b, t->len_field ? t->len_field : nl);
        bput(&b, t->name, nl);
        bu32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 5; d++) bu64(&b, t->ne[d]);
        bu32(&b, t->type);
        bu64(&b, t->offset);
    }
    while (s->align && b.n % s->align) bput(&b, "", 1);
    for (size_t i = 0; i < s->data_bytes; i++) bput(&b, "", 1);
    free(s->kvs.p);
    s->kvs.p = NULL;
    return b;
}

static int n_hostile = 0;

/* Open the bytes; expect failure with `code`, the label and `needle` in
 * the message, and no handle. */
static void expect_fail(const uint8_t *p, size_t n, int code, const char *needle, const char *what) {
    mk_gguf *g = (mk_gguf *)(uintptr_t)1;
    mk_clear_error();
    int rc = mk_gguf_open_mem(p, n, "hostile.gguf", &g);
    const char *msg = mk_errmsg();
    int ok = rc == code && g == NULL && strstr(msg, "hostile.gguf") && (!needle || strstr(msg, needle));
    check_count++;
    n_hostile++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "FAIL hostile case '%s': rc=%d (%s), want %d, needle '%s', message: %s\n", what, rc,
                mk_status_name(rc), code, needle ? needle : "", msg);
    } else {
        printf("ok   %-34s -> %s\n", what, msg);
    }
    if (rc == MK_OK && g) mk_gguf_close(g);
}

static void expect_spec(hspec *s, int code, const char *needle, const char *what) {
    buf b = build(s);
    expect_fail(b.p, b.n, code, needle, what);
    free(b.p);
}

static void test_hostile(void) {
    hspec s;
    /* the default spec is valid */
    spec_default(&s);
    buf good = build(&s);
    mk_gguf *g = NULL;
    CHECK_OK(mk_gguf_open_mem(good.p, good.n, "good.gguf", &g));
    CHECK(g && mk_gguf_n_tensors(g) == 2 && mk_gguf_find_tensor(g, "b")->shape[0] == 2);
    mk_gguf_close(g);

    /* truncation at every offset before the end of the last tensor's data */
    size_t data_end = good.n - 128 + 32 + 68;
    size_t trunc_bad = 0;
    for (size_t cut = 0; cut < data_end; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, good.p, cut);
        g = NULL;
        int rc = mk_gguf_open_mem(p, cut, "hostile.gguf", &g);
        if (rc != MK_ERR_FORMAT || g || !strstr(mk_errmsg(), "hostile.gguf")) {
            if (trunc_bad++ < 3) fprintf(stderr, "truncation at %zu: rc=%d %s\n", cut, rc, mk_errmsg());
            mk_gguf_close(g);
        }
        free(p);
    }
    printf("truncation at %zu offsets: %zu not refused as malformed\n", data_end, trunc_bad);
    CHECK(trunc_bad == 0);
    n_hostile += (int)data_end;
    /* every single-byte corruption either opens or fails with the label */
    size_t flip_bad = 0, flip_ok = 0;
    for (size_t i = 0; i < good.n; i++) {
        uint8_t *p = malloc(good.n);
        memcpy(p, good.p, good.n);
        p[i] ^= 0xff;
        g = NULL;
        int rc = mk_gguf_open_mem(p, good.n, "hostile.gguf", &g);
        if (rc == MK_OK) flip_ok++;
        else if (g || !strstr(mk_errmsg(), "hostile.gguf")) flip_bad++;
        mk_gguf_close(g);
        free(p);
    }
    printf("byte flips at %zu offsets: %zu still open, %zu bad failures\n", good.n, flip_ok, flip_bad);
    CHECK(flip_bad == 0);
    free(good.p);

    expect_fail((const uint8_t *)"", 0, MK_ERR_FORMAT, "not a GGUF", "empty file");
    spec_default(&s); memcpy(s.magic, "GGUX", 4); expect_spec(&s, MK_ERR_FORMAT, "not a GGUF", "wrong magic");
    spec_default(&s); memcpy(s.magic, "FUGG", 4); expect_spec(&s, MK_ERR_FORMAT, "not a GGUF", "reversed magic");
    spec_default(&s); s.version = 1; expect_spec(&s, MK_ERR_UNSUPPORTED, "version 1", "version 1");
    spec_default(&s); s.version = 99; expect_spec(&s, MK_ERR_UNSUPPORTED, "version 99", "version 99");
    spec_default(&s); s.version = 0; expect_spec(&s, MK_ERR_UNSUPPORTED, "version 0", "version 0");
    spec_default(&s); s.version = 3u << 24; expect_spec(&s, MK_ERR_UNSUPPORTED, "big-endian", "big-endian version");
    spec_default(&s); s.n_kv_override = (int64_t)1 << 60; expect_spec(&s, MK_ERR_FORMAT, "metadata entries", "absurd kv count");
    spec_default(&s); s.n_t_override = (int64_t)1 << 62; expect_spec(&s, MK_ERR_FORMAT, "tensors", "absurd tensor count");
    spec_default(&s); s.n_t_override = INT64_MAX; s.n_kv_override = INT64_MAX; expect_spec(&s, MK_ERR_FORMAT, NULL, "both counts max");
    spec_default(&s); s.n_kv_override = 3; expect_spec(&s, MK_ERR_FORMAT, NULL, "kv count one too many");
    spec_default(&s); s.n_t_override = 3; expect_spec(&s, MK_ERR_FORMAT, NULL, "tensor count one too many");

    /* metadata */
    spec_default(&s); bu64(&s.kvs, 1000000); bput(&s.kvs, "k", 1); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "past the end", "key length past EOF");
    spec_default(&s); bu64(&s.kvs, UINT64_MAX); s.n_kv++; s.data_bytes = 0;
    expect_spec(&s, MK_ERR_FORMAT, NULL, "key length 2^64-1");
    spec_default(&s); bstr(&s.kvs, ""); bu32(&s.kvs, MK_GGUF_UINT8); bput(&s.kvs, "\1", 1); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "empty key", "empty key");
    {
        spec_default(&s);
        char *big = malloc(70000);
        memset(big, 'k', 69999);
        big[69999] = 0;
        bstr(&s.kvs, big); bu32(&s.kvs, MK_GGUF_UINT8); bput(&s.kvs, "\1", 1); s.n_kv++;
        free(big);
        expect_spec(&s, MK_ERR_FORMAT, "key (limit", "key longer than 65535");
    }
    spec_default(&s); bstr(&s.kvs, "bad.type"); bu32(&s.kvs, 13); bu32(&s.kvs, 0); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "invalid value type 13", "value type 13");
    spec_default(&s); bstr(&s.kvs, "bad.type"); bu32(&s.kvs, 0xffffffffu); bu32(&s.kvs, 0); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "invalid value type", "value type 0xffffffff");
    spec_default(&s); bstr(&s.kvs, "bad.arr"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, 13); bu64(&s.kvs, 0); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "array of invalid type", "array element type 13");
    spec_default(&s); bstr(&s.kvs, "nested"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, MK_GGUF_ARRAY); bu64(&s.kvs, 1);
    bu32(&s.kvs, MK_GGUF_UINT8); bu64(&s.kvs, 1); bput(&s.kvs, "\1", 1); s.n_kv++;
    expect_spec(&s, MK_ERR_UNSUPPORTED, "array of arrays", "nested array");
    spec_default(&s); bstr(&s.kvs, "big.arr"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, MK_GGUF_UINT32); bu64(&s.kvs, (uint64_t)1 << 61); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "claims", "absurd u32 array count");
    spec_default(&s); bstr(&s.kvs, "big.arr"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, MK_GGUF_UINT64); bu64(&s.kvs, UINT64_MAX / 4); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "claims", "array count overflowing bytes");
    spec_default(&s); bstr(&s.kvs, "big.sarr"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, MK_GGUF_STRING); bu64(&s.kvs, (uint64_t)1 << 40); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "strings", "absurd string array count");
    spec_default(&s); bstr(&s.kvs, "sarr"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, MK_GGUF_STRING); bu64(&s.kvs, 2);
    bstr(&s.kvs, "ok"); bu64(&s.kvs, 1u << 20); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "element 1", "array string past EOF");
    spec_default(&s); bstr(&s.kvs, "str"); bu32(&s.kvs, MK_GGUF_STRING); bu64(&s.kvs, UINT64_MAX); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "past the end", "string length 2^64-1");
    spec_default(&s); bstr(&s.kvs, "flag"); bu32(&s.kvs, MK_GGUF_BOOL); bput(&s.kvs, "\2", 1); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "bool", "bool value 2");
    spec_default(&s); bstr(&s.kvs, "flags"); bu32(&s.kvs, MK_GGUF_ARRAY); bu32(&s.kvs, MK_GGUF_BOOL); bu64(&s.kvs, 2); bput(&s.kvs, "\1\7", 2); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "element 1", "bool array value 7");
    spec_default(&s); kv_u32(&s, "x.u32", 6); expect_spec(&s, MK_ERR_FORMAT, "duplicate metadata key 'x.u32'", "duplicate key");
    spec_default(&s); bstr(&s.kvs, "general.alignment"); bu32(&s.kvs, MK_GGUF_UINT64); bu64(&s.kvs, 32); s.n_kv++;
    expect_spec(&s, MK_ERR_FORMAT, "general.alignment has type uint64", "alignment of type u64");
    spec_default(&s); kv_u32(&s, "general.alignment", 0); expect_spec(&s, MK_ERR_FORMAT, "power of two", "alignment 0");
    spec_default(&s); kv_u32(&s, "general.alignment", 48); expect_spec(&s, MK_ERR_FORMAT, "power of two", "alignment 48");
    spec_default(&s); kv_u32(&s, "general.alignment", 1u << 31); expect_spec(&s, MK_ERR_FORMAT, NULL, "alignment 2^31");

    /* tensor infos */
    spec_default(&s); s.t[1].name = "a"; expect_spec(&s, MK_ERR_FORMAT, "duplicate tensor name 'a'", "duplicate tensor name");
    spec_default(&s); s.t[1].name = ""; expect_spec(&s, MK_ERR_FORMAT, "empty name", "empty tensor name");
    spec_default(&s); s.t[1].name = "b\0c"; s.t[1].name_len = 3; expect_spec(&s, MK_ERR_FORMAT, "NUL", "tensor name with NUL");
    spec_default(&s); s.t[0].n_dims = 0; expect_spec(&s, MK_ERR_FORMAT, "has 0 dimensions", "n_dims 0");
    spec_default(&s); s.t[0].n_dims = 5; s.t[0].ne[1] = s.t[0].ne[2] = s.t[0].ne[3] = s.t[0].ne[4] = 1;
    expect_spec(&s, MK_ERR_FORMAT, "has 5 dimensions", "n_dims 5");
    spec_default(&s); s.t[0].n_dims = 0xffffffffu; expect_spec(&s, MK_ERR_FORMAT, "dimensions", "n_dims 2^32-1");
    spec_default(&s); s.t[0].ne[0] = 0; expect_spec(&s, MK_ERR_FORMAT, "dimension 0 is 0", "dim 0");
    spec_default(&s); s.t[1].ne[1] = 0; expect_spec(&s, MK_ERR_FORMAT, "dimension 1 is 0", "second dim 0");
    spec_default(&s); s.t[0].ne[0] = (uint64_t)1 << 63; expect_spec(&s, MK_ERR_FORMAT, "must be 1..", "dim 2^63");
    spec_default(&s); s.t[1].ne[0] = (uint64_t)1 << 32; s.t[1].ne[1] = (uint64_t)1 << 32;
    expect_spec(&s, MK_ERR_FORMAT, "element count overflows", "element count overflow");
    spec_default(&s); s.t[0].ne[0] = (uint64_t)1 << 62; expect_spec(&s, MK_ERR_FORMAT, "byte size overflows", "byte size overflow");
    spec_default(&s); s.t[1].ne[0] = 16; expect_spec(&s, MK_ERR_FORMAT, "multiple of 32", "Q8_0 row of 16");
    spec_default(&s); s.t[1].type = 2; s.t[1].ne[0] = 48; expect_spec(&s, MK_ERR_FORMAT, "multiple of 32", "Q4_0 row of 48");
    spec_default(&s); s.t[1].type = 12; expect_spec(&s, MK_ERR_UNSUPPORTED, "tensor 'b' has ggml type 12 (Q4_K)", "unsupported type Q4_K");
    spec_default(&s); s.t[0].type = 9999; expect_spec(&s, MK_ERR_UNSUPPORTED, "type 9999", "unknown type 9999");
    spec_default(&s); s.t[1].len_field = 1u << 20; expect_spec(&s, MK_ERR_FORMAT, "tensor 1: name", "tensor name past EOF");

    /* data section */
    spec_default(&s); s.t[1].offset = 40; expect_spec(&s, MK_ERR_FORMAT, "not a multiple of the alignment", "misaligned offset");
    spec_default(&s); s.t[1].offset = 64; expect_spec(&s, MK_ERR_FORMAT, "out of file bounds", "data past EOF");
    spec_default(&s); s.t[1].offset = UINT64_MAX - 31; expect_spec(&s, MK_ERR_FORMAT, "past the end", "offset 2^64-32");
    spec_default(&s); s.t[1].offset = 0; expect_spec(&s, MK_ERR_FORMAT, "overlap", "overlapping tensors");
    spec_default(&s); s.t[0].offset = 32; s.t[1].offset = 0; s.t[0].ne[0] = 16;
    expect_spec(&s, MK_ERR_FORMAT, "overlap", "overlap, reverse order");
    spec_default(&s); s.data_bytes = 0; s.align = 0; expect_spec(&s, MK_ERR_FORMAT, NULL, "no data section");
    spec_default(&s); s.data_bytes = 99; expect_spec(&s, MK_ERR_FORMAT, "out of file bounds", "data one byte short");

    /* valid edge cases */
    {
        buf b = {0};
        bput(&b, "GGUF", 4); bu32(&b, 3); bu64(&b, 0); bu64(&b, 0);
        g = NULL;
        CHECK_OK(mk_gguf_open_mem(b.p, b.n, "empty.gguf", &g));
        CHECK(g && mk_gguf_n_kv(g) == 0 && mk_gguf_n_tensors(g) == 0 && mk_gguf_find(g, "x") < 0);
        CHECK(g && mk_gguf_find_tensor(g, "x") == NULL);
        mk_gguf_close(g);
        free(b.p);
    }
    spec_default(&s); kv_u32(&s, "general.alignment", 1); s.align = 1;
    s.t[1].offset = 33; s.data_bytes = 101;
    buf b = build(&s);
    g = NULL;
    CHECK_OK(mk_gguf_open_mem(b.p, b.n, "align1.gguf", &g));
    CHECK(g && mk_gguf_alignment(g) == 1 && mk_gguf_tensor_offset(g, 1) == 33);
    mk_gguf_close(g);
    free(b.p);
    CHECK(mk_gguf_open("/nonexistent/x.gguf", &g) == MK_ERR_IO && g == NULL);
    printf("hostile inputs: %d cases\n", n_hostile);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_fixture_v3();
    test_fixture_v2();
    test_hostile();
    rmdir(tmpdir);
    return check_summary("test_gguf");
}
