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
    /* writing into a missing directory fails cleanly */
    mk_gguf_writer *w = mk_gguf_writer_new();
    CHECK_OK(mk_gguf_w_u32(w, "x", 1));
    CHECK(mk_gguf_w_write(w, "/nonexistent/dir/x.gguf") == MK_ERR_IO);
    mk_gguf_writer_free(w);
    unlink(p1);
    unlink(p2);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    rmdir(tmpdir);
    return check_summary("test_gguf");
}
