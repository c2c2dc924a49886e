/* test_ops.c - every kernel of core/ops.h against PyTorch references
 * (tests/data/ops/<case>.bin, written by tools/ref_ops.py), and the stored-dtype
 * matmuls against the f32 matmul on the dequantised weights.
 *
 * Tolerance: the references are float64 results rounded to float32, the
 * kernels run in float32: |diff| <= 2e-5 + 2e-5 |ref| (a few ulps after
 * sums of tens of terms). Backward outputs start from 0.5 everywhere so
 * the test also checks that gradients are ADDED. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/ops.h"
#include "util/check.h"

#define ATOL 2e-5
#define RTOL 2e-5
#define PRE 0.5f /* initial value of every gradient buffer */

/* ---- fixture reader (format documented in tools/ref_ops.py) ---- */

typedef struct {
    char name[32];
    int ndim, dims[4];
    size_t n;
    float *data;
} arr_t;

typedef struct {
    const char *path;
    char *buf;
    int count;
    arr_t a[32];
} fix_t;

static uint32_t rd_u32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void die(const char *path, const char *what) {
    fprintf(stderr, "%s: %s (regenerate with /usr/bin/python3 tools/ref_ops.py)\n", path, what);
    exit(1);
}

static void fix_load(fix_t *f, const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "tests/data/ops/%s.bin", name);
    size_t len;
    f->path = path;
    f->buf = check_read_file(path, &len);
    if (len < 12 || memcmp(f->buf, "MKOPS001", 8)) die(path, "bad magic");
    uint32_t cnt = rd_u32(f->buf + 8);
    if (cnt > 32) die(path, "too many arrays");
    size_t off = 12;
    for (uint32_t i = 0; i < cnt; i++) {
        arr_t *a = &f->a[i];
        if (off + 4 > len) die(path, "truncated");
        uint32_t nl = rd_u32(f->buf + off);
        off += 4;
        if (nl >= sizeof a->name || off + nl + 4 > len) die(path, "bad name");
        memcpy(a->name, f->buf + off, nl);
        a->name[nl] = 0;
        off += nl;
        a->ndim = (int)rd_u32(f->buf + off);
        off += 4;
        if (a->ndim > 4 || off + 4 * (size_t)a->ndim > len) die(path, "bad ndim");
        a->n = 1;
        for (int d = 0; d < a->ndim; d++) {
            a->dims[d] = (int)rd_u32(f->buf + off);
            a->n *= (size_t)a->dims[d];
            off += 4;
        }
        if (a->n > (len - off) / 4) die(path, "truncated data");
        a->data = malloc(a->n * sizeof(float) + 1);
        memcpy(a->data, f->buf + off, a->n * sizeof(float));
        off += a->n * 4;
    }
    f->count = (int)cnt;
}

static float *get(fix_t *f, const char *name, size_t *n) {
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->a[i].name, name)) {
            if (n) *n = f->a[i].n;
            return f->a[i].data;
        }
    fprintf(stderr, "%s: no array '%s'\n", f->path, name);
    exit(1);
}

static void fix_free(fix_t *f) {
    for (int i = 0; i < f->count; i++) free(f->a[i].data);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

static float *filled(size_t n, float v) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

/* compare a gradient buffer that started at PRE with ref */
static void check_grad(const char *what, const float *g, const float *ref, size_t n) {
    float *want = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) want[i] = ref[i] + PRE;
    check_close(what, g, want, n, ATOL, RTOL);
    free(want);
}

/* ---- cases ---- */

static void test_matmul(const char *name, int with_bias) {
    fix_t f;
    fix_load(&f, name);
    float *dims = get(&f, "dims", NULL);
    int M = (int)dims[0], K = (int)dims[1], N = (int)dims[2];
    float *inp = get(&f, "inp", NULL), *w = get(&f, "w", NULL), *dout = get(&f, "dout", NULL);
    float *bias = with_bias ? get(&f, "bias", NULL) : NULL;
    float *out = filled((size_t)M * N, NAN);
    char what[64];
    mk_matmul_forward(out, inp, w, bias, M, K, N);
    snprintf(what, sizeof what, "%s out", name);
    check_close(what, out, get(&f, "out", NULL), (size_t)M * N, ATOL, RTOL);
    float *dinp = filled((size_t)M * K, PRE), *dw = filled((size_t)N * K, PRE);
    float *db = filled((size_t)N, PRE);
    mk_matmul_backward(dinp, dw, with_bias ? db : NULL, dout, inp, w, M, K, N);
    snprintf(what, sizeof what, "%s dinp", name);
    check_grad(what, dinp, get(&f, "dinp", NULL), (size_t)M * K);
    snprintf(what, sizeof what, "%s dw", name);
    check_grad(what, dw, get(&f, "dw", NULL), (size_t)N * K);
    if (with_bias) {
        snprintf(what, sizeof what, "%s dbias", name);
        check_grad(what, db, get(&f, "dbias", NULL), (size_t)N);
    }
    /* NULL gradients are skipped; the others are unchanged by that */
    float *dinp2 = filled((size_t)M * K, PRE);
    mk_matmul_backward(dinp2, NULL, NULL, dout, inp, w, M, K, N);
    snprintf(what, sizeof what, "%s dinp alone", name);
    check_grad(what, dinp2, get(&f, "dinp", NULL), (size_t)M * K);
    free(out), free(dinp), free(dw), free(db), free(dinp2);
    fix_free(&f);
}

static void test_rmsnorm(void) {
    fix_t f;
    fix_load(&f, "rmsnorm");
    float *dims = get(&f, "dims", NULL);
    int M = (int)dims[0], C = (int)dims[1];
    float eps = get(&f, "eps", NULL)[0];
    float *x = get(&f, "inp", NULL), *w = get(&f, "w", NULL);
    float *out = filled((size_t)M * C, NAN), *rstd = filled(M, NAN);
    mk_rmsnorm_forward(out, rstd, x, w, M, C, eps);
    check_close("rmsnorm out", out, get(&f, "out", NULL), (size_t)M * C, ATOL, RTOL);
    check_close("rmsnorm rstd", rstd, get(&f, "rstd", NULL), M, ATOL, RTOL);
    float *dx = filled((size_t)M * C, PRE), *dw = filled(C, PRE);
    mk_rmsnorm_backward(dx, dw, get(&f, "dout", NULL), x, w, rstd, M, C);
    check_grad("rmsnorm dinp", dx, get(&f, "dinp", NULL), (size_t)M * C);
    check_grad("rmsnorm dw", dw, get(&f, "dw", NULL), C);
    free(out), free(rstd), free(dx), free(dw);
    fix_free(&f);
}

static void test_layernorm(void) {
    fix_t f;
    fix_load(&f, "layernorm");
    float *dims = get(&f, "dims", NULL);
    int M = (int)dims[0], C = (int)dims[1];
    float eps = get(&f, "eps", NULL)[0];
    float *x = get(&f, "inp", NULL), *w = get(&f, "w", NULL), *b = get(&f, "b", NULL);
    float *out = filled((size_t)M * C, NAN), *mean = filled(M, NAN), *rstd = filled(M, NAN);
    mk_layernorm_forward(out, mean, rstd, x, w, b, M, C, eps);
    check_close("layernorm out", out, get(&f, "out", NULL), (size_t)M * C, ATOL, RTOL);
    check_close("layernorm mean", mean, get(&f, "mean", NULL), M, ATOL, RTOL);
    check_close("layernorm rstd", rstd, get(&f, "rstd", NULL), M, ATOL, RTOL);
    float *dx = filled((size_t)M * C, PRE), *dw = filled(C, PRE), *db = filled(C, PRE);
    mk_layernorm_backward(dx, dw, db, get(&f, "dout", NULL), x, w, mean, rstd, M, C);
    check_grad("layernorm dinp", dx, get(&f, "dinp", NULL), (size_t)M * C);
    check_grad("layernorm dw", dw, get(&f, "dw", NULL), C);
    check_grad("layernorm db", db, get(&f, "db", NULL), C);
    free(out), free(mean), free(rstd), free(dx), free(dw), free(db);
    fix_free(&f);
}

static void test_rope(const char *name, int interleaved, int with_ff) {
    fix_t f;
    fix_load(&f, name);
    float *dims = get(&f, "dims", NULL);
    int T = (int)dims[0], NH = (int)dims[1], HS = (int)dims[2];
    float theta = get(&f, "theta", NULL)[0];
    float *posf = get(&f, "pos", NULL), *ff = with_ff ? get(&f, "ff", NULL) : NULL;
    int pos[64];
    for (int t = 0; t < T && t < 64; t++) pos[t] = (int)posf[t];
    size_t n = (size_t)T * NH * HS;
    float *x = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    memcpy(x, get(&f, "x", NULL), n * sizeof(float));
    memcpy(dx, get(&f, "dout", NULL), n * sizeof(float));
    mk_rope_forward(x, pos, T, NH, HS, theta, ff, interleaved);
    char what[64];
    snprintf(what, sizeof what, "%s out", name);
    check_close(what, x, get(&f, "out", NULL), n, ATOL, RTOL);
    mk_rope_backward(dx, pos, T, NH, HS, theta, ff, interleaved);
    snprintf(what, sizeof what, "%s dx", name);
    check_close(what, dx, get(&f, "dx", NULL), n, ATOL, RTOL);
    free(x), free(dx);
    fix_free(&f);
}

static void test_activations(void) {
    fix_t f;
    size_t n;
    fix_load(&f, "swiglu");
    float *a = get(&f, "a", &n), *b = get(&f, "b", NULL), *dout = get(&f, "dout", NULL);
    float *out = filled(n, NAN), *da = filled(n, PRE), *db = filled(n, PRE);
    mk_swiglu_forward(out, a, b, n);
    check_close("swiglu out", out, get(&f, "out", NULL), n, ATOL, RTOL);
    mk_swiglu_backward(da, db, dout, a, b, n);
    check_grad("swiglu da", da, get(&f, "da", NULL), n);
    check_grad("swiglu db", db, get(&f, "db", NULL), n);
    free(out), free(da), free(db);
    fix_free(&f);

    const char *names[3] = {"gelu", "relu", "tanh"};
    for (int k = 0; k < 3; k++) {
        fix_load(&f, names[k]);
        float *x = get(&f, "inp", &n);
        dout = get(&f, "dout", NULL);
        out = filled(n, NAN);
        float *dx = filled(n, PRE);
        if (k == 0) mk_gelu_forward(out, x, n), mk_gelu_backward(dx, dout, x, n);
        if (k == 1) mk_relu_forward(out, x, n), mk_relu_backward(dx, dout, x, n);
        if (k == 2) mk_tanh_forward(out, x, n), mk_tanh_backward(dx, dout, out, n);
        char what[64];
        snprintf(what, sizeof what, "%s out", names[k]);
        check_close(what, out, get(&f, "out", NULL), n, ATOL, RTOL);
        snprintf(what, sizeof what, "%s dinp", names[k]);
        check_grad(what, dx, get(&f, "dinp", NULL), n);
        free(out), free(dx);
        fix_free(&f);
    }
}

static void test_attention(const char *name, int use_mask) {
    fix_t f;
    fix_load(&f, name);
    float *dims = get(&f, "dims", NULL);
    int T = (int)dims[0], Tk = (int)dims[1], NH = (int)dims[2], NKV = (int)dims[3];
    int HS = (int)dims[4], off = (int)dims[5];
    float *q = get(&f, "q", NULL), *k = get(&f, "k", NULL), *v = get(&f, "v", NULL);
    float *kmask = use_mask ? get(&f, "kmask", NULL) : NULL;
    size_t nq = (size_t)T * NH * HS, nk = (size_t)Tk * NKV * HS, na = (size_t)NH * T * Tk;
    float *out = filled(nq, NAN), *att = filled(na, NAN);
    mk_attention_forward(out, att, q, k, v, kmask, T, Tk, NH, NKV, HS, off);
    char what[80];
    snprintf(what, sizeof what, "%s out", name);
    check_close(what, out, get(&f, "out", NULL), nq, ATOL, RTOL);
    snprintf(what, sizeof what, "%s att", name);
    check_close(what, att, get(&f, "att", NULL), na, ATOL, RTOL);
    float *dq = filled(nq, PRE), *dk = filled(nk, PRE), *dv = filled(nk, PRE);
    mk_attention_backward(dq, dk, dv, get(&f, "dout", NULL), att, q, k, v, T, Tk, NH, NKV, HS);
    snprintf(what, sizeof what, "%s dq", name);
    check_grad(what, dq, get(&f, "dq", NULL), nq);
    snprintf(what, sizeof what, "%s dk", name);
    check_grad(what, dk, get(&f, "dk", NULL), nk);
    snprintf(what, sizeof what, "%s dv", name);
    check_grad(what, dv, get(&f, "dv", NULL), nk);
    free(out), free(att), free(dq), free(dk), free(dv);
    fix_free(&f);
}

static void test_softmax_xent(void) {
    fix_t f;
    fix_load(&f, "softmax");
    float *dims = get(&f, "dims", NULL);
    int M = (int)dims[0], N = (int)dims[1];
    float *out = filled((size_t)M * N, NAN), *dx = filled((size_t)M * N, PRE);
    mk_softmax_forward(out, get(&f, "inp", NULL), M, N);
    check_close("softmax out", out, get(&f, "out", NULL), (size_t)M * N, ATOL, RTOL);
    mk_softmax_backward(dx, get(&f, "dout", NULL), out, M, N);
    check_grad("softmax dinp", dx, get(&f, "dinp", NULL), (size_t)M * N);
    free(out), free(dx);
    fix_free(&f);

    fix_load(&f, "xent");
    dims = get(&f, "dims", NULL);
    int V;
    M = (int)dims[0], V = (int)dims[1];
    float *tf = get(&f, "targets", NULL);
    int32_t tg[64];
    for (int m = 0; m < M && m < 64; m++) tg[m] = (int32_t)tf[m];
    float *dl = filled((size_t)M * V, PRE);
    float loss = mk_cross_entropy(dl, get(&f, "logits", NULL), tg, get(&f, "mask", NULL), M, V,
                                  get(&f, "dloss", NULL)[0]);
    check_close("xent loss", &loss, get(&f, "loss", NULL), 1, ATOL, RTOL);
    check_grad("xent dlogits", dl, get(&f, "dlogits", NULL), (size_t)M * V);
    /* an ignored target (-100) in a masked-in row is skipped like mask 0 */
    float *mask = get(&f, "mask", NULL);
    for (int m = 0; m < M; m++)
        if (mask[m] == 0) tg[m] = -100;
    float loss2 = mk_cross_entropy(NULL, get(&f, "logits", NULL), tg, NULL, M, V, 1.0f);
    check_close("xent loss ignore_index", &loss2, get(&f, "loss", NULL), 1, ATOL, RTOL);
    free(dl);
    fix_free(&f);
}

/* ---- stored-dtype matmuls vs the f32 matmul on dequantised weights ---- */

static uint64_t rng_state = 88172645463325252ull;
static float urand(void) { /* xorshift64, uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void test_matmul_dt_case(mk_dtype wt, int M, int K, int N) {
    size_t nw = (size_t)N * K, wb = mk_dtype_nbytes(wt, nw);
    CHECK(wb > 0);
    float *wf = malloc(nw * sizeof(float)), *deq = malloc(nw * sizeof(float));
    for (size_t i = 0; i < nw; i++) wf[i] = urand();
    /* stored one byte off alignment: mapped GGUF/safetensors data may be */
    unsigned char *raw = malloc(wb + 8), *wq = raw + (wt == MK_F32 ? 0 : 1);
    mk_quantize(wt, wf, wq, nw);
    mk_dequantize(wt, wq, deq, nw);
    float *inp = malloc((size_t)M * K * sizeof(float)), *bias = malloc((size_t)N * sizeof(float));
    float *dout = malloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) inp[i] = urand();
    for (int i = 0; i < N; i++) bias[i] = urand();
    for (size_t i = 0; i < (size_t)M * N; i++) dout[i] = urand();
    float *got = filled((size_t)M * N, NAN), *want = filled((size_t)M * N, NAN);
    mk_matmul_forward_dt(got, inp, wq, wt, bias, M, K, N);
    mk_matmul_forward(want, inp, deq, bias, M, K, N);
    char what[96];
    /* different summation orders: allow a few ulps of the sum of |terms| (~K/2) */
    double atol = 4e-7 * K;
    snprintf(what, sizeof what, "matmul_forward_dt %s M=%d K=%d N=%d", mk_dtype_name(wt), M, K, N);
    check_close(what, got, want, (size_t)M * N, atol, 1e-5);
    float *dg = filled((size_t)M * K, PRE), *dw = filled((size_t)M * K, PRE);
    mk_matmul_backward_dt(dg, dout, wq, wt, M, K, N);
    mk_matmul_backward(dw, NULL, NULL, dout, inp, deq, M, K, N);
    snprintf(what, sizeof what, "matmul_backward_dt %s M=%d K=%d N=%d", mk_dtype_name(wt), M, K, N);
    check_close(what, dg, dw, (size_t)M * K, 4e-7 * N, 1e-5);
    free(wf), free(deq), free(raw), free(inp), free(bias), free(dout), free(got), free(want);
    free(dg), free(dw);
}

static void test_matmul_dt(void) {
    const mk_dtype types[5] = {MK_F32, MK_F16, MK_BF16, MK_Q8_0, MK_Q4_0};
    for (int i = 0; i < 5; i++) {
        test_matmul_dt_case(types[i], 1, 64, 19);
        test_matmul_dt_case(types[i], 3, 64, 19);
        test_matmul_dt_case(types[i], 1, 96, 300);  /* > one tile of rows */
        test_matmul_dt_case(types[i], 11, 96, 300); /* threaded (M*K*N > 2^18) */
        test_matmul_dt_case(types[i], 1, 2080, 130); /* long rows; threaded (> 2^18) */
        test_matmul_dt_case(types[i], 6, 2080, 300); /* several tiles (tile < N) */
    }
    /* a quantised row that is not whole blocks gives NaN, not garbage */
    float x[40] = {0}, o[2] = {0, 0};
    unsigned char wq[200] = {0};
    mk_matmul_forward_dt(o, x, wq, MK_Q8_0, NULL, 1, 40, 2);
    CHECK(isnan(o[0]) && isnan(o[1]));
}

/* ---- edge cases: fully masked rows give zeros, never NaN ---- */
static void test_edges(void) {
    float x[6] = {-INFINITY, -INFINITY, -INFINITY, 1, 2, 3}, y[6], zero[6] = {0};
    mk_softmax_forward(y, x, 2, 3);
    check_close("softmax all -inf row", y, zero, 3, 0, 0);
    /* T=2 queries, Tk=3 keys, 1 head, HS=2; every key padded */
    float q[4] = {1, 2, 3, 4}, k[6] = {1, 0, 0, 1, 1, 1}, v[6] = {1, 2, 3, 4, 5, 6};
    float km[3] = {0, 0, 0}, out[4], att[6], dq[4] = {0}, dk[6] = {0}, dv[6] = {0};
    float dout[4] = {1, 1, 1, 1};
    mk_attention_forward(out, att, q, k, v, km, 2, 3, 1, 1, 2, -1);
    check_close("attention all keys masked: out", out, zero, 4, 0, 0);
    check_close("attention all keys masked: att", att, zero, 6, 0, 0);
    mk_attention_backward(dq, dk, dv, dout, att, q, k, v, 2, 3, 1, 1, 2);
    check_close("attention all keys masked: dq", dq, zero, 4, 0, 0);
    check_close("attention all keys masked: dk", dk, zero, 6, 0, 0);
    /* causal offset 0 with key 0 padded: query 0 sees nothing, query 1 sees key 1 */
    float km2[3] = {0, 1, 1};
    mk_attention_forward(out, att, q, k, v, km2, 2, 3, 1, 1, 2, 0);
    float want_att[6] = {0, 0, 0, 0, 1, 0}, want_out[4] = {0, 0, 3, 4};
    check_close("attention causal+mask att", att, want_att, 6, 0, 0);
    check_close("attention causal+mask out", out, want_out, 4, 1e-7, 0);
    /* cross-entropy with nothing counted: 0, gradient untouched */
    float logits[6] = {1, 2, 3, 4, 5, 6}, dl[6] = {0}, mask[2] = {0, 0};
    int32_t tg[2] = {0, 1};
    float loss = mk_cross_entropy(dl, logits, tg, mask, 2, 3, 1.0f);
    CHECK(loss == 0.0f);
    check_close("cross_entropy nothing counted: dlogits", dl, zero, 6, 0, 0);
}

/* ---- threaded paths against the same kernels on one thread ----
 * The PyTorch fixtures are small, so most kernels run them on one thread;
 * here every kernel runs sizes above its threading threshold with 2
 * threads and with 1, and the results must agree (the split changes no
 * summation order except in BLAS, hence the tiny tolerance). */

static float *rnd_buf(size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = urand();
    return p;
}

/* all outputs of one pass, concatenated; seg[] marks where each kernel's
 * outputs start (named by the last take_named) */
typedef struct {
    float *buf;
    size_t n, cap;
    int nseg;
    size_t seg[64];
    const char *name[64];
} outs_t;

static float *take(outs_t *o, size_t n, float init) {
    float *p = o->buf + o->n;
    if (o->n + n > o->cap) {
        fprintf(stderr, "test_threads: scratch too small\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = init;
    o->n += n;
    return p;
}

static void kernel(outs_t *o, const char *name) {
    if (o->nseg < 64) o->seg[o->nseg] = o->n, o->name[o->nseg++] = name;
}

static void threaded_pass(outs_t *o, const float *x, const float *y, const float *z,
                          const void *wq8, const void *wq4, const void *wf16) {
    /* matmul f32: M=64 K=256 N=192 (3.1M multiply-adds) */
    int M = 64, K = 256, N = 192;
    kernel(o, "matmul_forward");
    float *out = take(o, (size_t)M * N, 0);
    mk_matmul_forward(out, x, y, z, M, K, N);
    kernel(o, "matmul_backward");
    float *di = take(o, (size_t)M * K, 0), *dw = take(o, (size_t)N * K, 0), *db = take(o, N, 0);
    mk_matmul_backward(di, dw, db, z, x, y, M, K, N);
    /* stored dtypes: M=1 fused rows (K=2048, N=1536) and M=8 tiles (K=512, N=640) */
    const void *ws[3] = {wq8, wq4, wf16};
    const mk_dtype ts[3] = {MK_Q8_0, MK_Q4_0, MK_F16};
    for (int i = 0; i < 3; i++) {
        kernel(o, "matmul_forward_dt M=1");
        mk_matmul_forward_dt(take(o, 1536, 0), x, ws[i], ts[i], z, 1, 2048, 1536);
        kernel(o, "matmul_forward_dt M=8");
        mk_matmul_forward_dt(take(o, 8 * 640, 0), x, ws[i], ts[i], NULL, 8, 512, 640);
        kernel(o, "matmul_backward_dt");
        mk_matmul_backward_dt(take(o, 8 * 512, 0), y, ws[i], ts[i], 8, 512, 640);
    }
    /* attention: T=32 Tk=64 NH=8 NKV=4 HS=64, KV offset 32, key 5 padded */
    int T = 32, Tk = 64, NH = 8, NKV = 4, HS = 64;
    float km[64];
    for (int j = 0; j < Tk; j++) km[j] = j == 5 ? 0.0f : 1.0f;
    size_t nq = (size_t)T * NH * HS, nk = (size_t)Tk * NKV * HS;
    kernel(o, "attention_forward");
    float *ao = take(o, nq, 0), *att = take(o, (size_t)NH * T * Tk, 0);
    mk_attention_forward(ao, att, x, y, z, km, T, Tk, NH, NKV, HS, 32);
    kernel(o, "attention_backward");
    mk_attention_backward(take(o, nq, 0), take(o, nk, 0), take(o, nk, 0), x + 7, att, x, y, z, T,
                          Tk, NH, NKV, HS);
    /* norms: M=64 C=2304 */
    int R = 64, C = 2304;
    size_t nc = (size_t)R * C;
    kernel(o, "layernorm_forward");
    float *no = take(o, nc, 0), *mean = take(o, R, 0), *rstd = take(o, R, 0);
    mk_layernorm_forward(no, mean, rstd, x, y, z, R, C, 1e-5f);
    kernel(o, "layernorm_backward");
    mk_layernorm_backward(take(o, nc, 0), take(o, C, 0), take(o, C, 0), y, x, y, mean, rstd, R, C);
    kernel(o, "rmsnorm_forward");
    mk_rmsnorm_forward(take(o, nc, 0), rstd, x, y, R, C, 1e-5f);
    kernel(o, "rmsnorm_backward");
    mk_rmsnorm_backward(take(o, nc, 0), take(o, C, 0), y, x, y, rstd, R, C);
    /* elementwise, softmax, cross-entropy, rope over 147456 elements */
    kernel(o, "softmax_forward");
    float *so = take(o, nc, 0);
    mk_softmax_forward(so, x, R, C);
    kernel(o, "softmax_backward");
    mk_softmax_backward(take(o, nc, 0), y, so, R, C);
    kernel(o, "swiglu_forward");
    mk_swiglu_forward(take(o, nc, 0), x, y, nc);
    kernel(o, "swiglu_backward");
    mk_swiglu_backward(take(o, nc, 0), take(o, nc, 0), z, x, y, nc);
    kernel(o, "gelu_forward");
    mk_gelu_forward(take(o, nc, 0), x, nc);
    kernel(o, "gelu_backward");
    mk_gelu_backward(take(o, nc, 0), y, x, nc);
    kernel(o, "tanh_forward");
    mk_tanh_forward(take(o, nc, 0), x, nc);
    int32_t tg[64];
    for (int m = 0; m < R; m++) tg[m] = (m * 37) % C;
    kernel(o, "cross_entropy");
    float *dl = take(o, nc, 0);
    *take(o, 1, 0) = mk_cross_entropy(dl, x, tg, NULL, R, C, 1.0f);
    int pos[72];
    for (int t = 0; t < 72; t++) pos[t] = 3 * t + 1;
    kernel(o, "rope_forward");
    float *r = take(o, nc, 0);
    memcpy(r, x, nc * sizeof(float));
    mk_rope_forward(r, pos, 72, 8, 256, 500000.0f, NULL, 0);
}

static void test_threads(void) {
    size_t nbuf = 1 << 19;
    float *x = rnd_buf(nbuf), *y = rnd_buf(nbuf), *z = rnd_buf(nbuf);
    /* (1536, 2048) weights, also read as (640, 512) */
    size_t nw = (size_t)1536 * 2048;
    float *wf = rnd_buf(nw);
    void *wq8 = malloc(mk_dtype_nbytes(MK_Q8_0, nw)), *wq4 = malloc(mk_dtype_nbytes(MK_Q4_0, nw));
    void *wf16 = malloc(mk_dtype_nbytes(MK_F16, nw));
    mk_quantize(MK_Q8_0, wf, wq8, nw);
    mk_quantize(MK_Q4_0, wf, wq4, nw);
    mk_quantize(MK_F16, wf, wf16, nw);
    int saved = omp_get_max_threads();
    outs_t a = {.buf = malloc((size_t)4 << 22), .cap = (size_t)1 << 22};
    outs_t b = {.buf = malloc((size_t)4 << 22), .cap = (size_t)1 << 22};
    omp_set_num_threads(2);
    threaded_pass(&a, x, y, z, wq8, wq4, wf16);
    omp_set_num_threads(1);
    threaded_pass(&b, x, y, z, wq8, wq4, wf16);
    omp_set_num_threads(saved);
    CHECK(a.n == b.n && a.nseg == b.nseg);
    for (int k = 0; k < a.nseg; k++) {
        size_t end = k + 1 < a.nseg ? a.seg[k + 1] : a.n;
        char what[96];
        snprintf(what, sizeof what, "threads 2 vs 1: %s", a.name[k]);
        check_close(what, a.buf + a.seg[k], b.buf + a.seg[k], end - a.seg[k], 1e-5, 1e-5);
    }
    free(x), free(y), free(z), free(wf), free(wq8), free(wq4), free(wf16), free(a.buf), free(b.buf);
}

int main(void) {
    test_matmul("matmul", 1);
    test_matmul("matmul_m1", 1);
    test_matmul("matmul_big", 0);
    test_rmsnorm();
    test_layernorm();
    test_rope("rope_half", 0, 0);
    test_rope("rope_half_ff", 0, 1);
    test_rope("rope_inter", 1, 0);
    test_rope("rope_inter_ff", 1, 1);
    test_activations();
    test_attention("attn_gqa_causal", 1);
    test_attention("attn_bidir_mask", 1);
    test_attention("attn_causal_mqa", 0);
    test_attention("attn_par", 1);
    test_softmax_xent();
    test_matmul_dt();
    test_edges();
    test_threads();
    return check_summary("test_ops");
}
