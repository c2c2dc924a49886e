/* test_ops_grad.c - finite-difference checks of every backward kernel in
 * core/ops.h on tiny random sizes.
 *
 * For each kernel L = sum(out * g) with a fixed random g (so dL/dout = g);
 * every input element x is moved by +-h (h = 1e-2, the float difference
 * actually applied is used) and (L+ - L-) / (2h) is compared with the
 * analytic gradient from the backward kernel. L is summed in double, the
 * kernels run in float: the numeric derivative carries ~1e-5 of rounding
 * noise and O(h^2) truncation error, hence |diff| <= 2e-3 + 2e-3 |grad|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/ops.h"
#include "util/check.h"

#define H 1e-2
#define TOL 2e-3

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float urand(void) { /* xorshift64, uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = urand() * scale;
    return p;
}

static float *zeros(size_t n) { return calloc(n + 1, sizeof(float)); }

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* numeric gradient of f with respect to x (n) against `analytic` */
static void fd_check(const char *what, loss_fn f, void *ctx, float *x, size_t n,
                     const float *analytic) {
    float *num = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) {
        float save = x[i];
        x[i] = (float)(save + H);
        double hp = (double)x[i] - save, lp = f(ctx);
        x[i] = (float)(save - H);
        double hm = save - (double)x[i], lm = f(ctx);
        x[i] = save;
        num[i] = (float)((lp - lm) / (hp + hm));
    }
    check_close(what, analytic, num, n, TOL, TOL);
    free(num);
}

/* ---- matmul ---- */
typedef struct { float *inp, *w, *b, *out, *g; int M, K, N; } mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    mk_matmul_forward(c->out, c->inp, c->w, c->b, c->M, c->K, c->N);
    return dot(c->out, c->g, (size_t)c->M * c->N);
}

static void grad_matmul(int M, int K, int N) {
    mm_ctx c = {rnd((size_t)M * K, 1), rnd((size_t)N * K, 1), rnd(N, 1), zeros((size_t)M * N),
                rnd((size_t)M * N, 1), M, K, N};
    float *di = zeros((size_t)M * K), *dw = zeros((size_t)N * K), *db = zeros(N);
    mk_matmul_backward(di, dw, db, c.g, c.inp, c.w, M, K, N);
    char what[64];
    snprintf(what, sizeof what, "fd matmul %dx%dx%d dinp", M, K, N);
    fd_check(what, mm_loss, &c, c.inp, (size_t)M * K, di);
    snprintf(what, sizeof what, "fd matmul %dx%dx%d dw", M, K, N);
    fd_check(what, mm_loss, &c, c.w, (size_t)N * K, dw);
    snprintf(what, sizeof what, "fd matmul %dx%dx%d dbias", M, K, N);
    fd_check(what, mm_loss, &c, c.b, N, db);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.g), free(di), free(dw), free(db);
}

/* ---- matmul with a stored weight: gradient of the input ---- */
typedef struct { float *inp, *out, *g; void *w; mk_dtype wt; int M, K, N; } mmdt_ctx;

static double mmdt_loss(void *p) {
    mmdt_ctx *c = p;
    mk_matmul_forward_dt(c->out, c->inp, c->w, c->wt, NULL, c->M, c->K, c->N);
    return dot(c->out, c->g, (size_t)c->M * c->N);
}

static void grad_matmul_dt(mk_dtype wt, int M, int K, int N) {
    float *wf = rnd((size_t)N * K, 1);
    void *w = malloc(mk_dtype_nbytes(wt, (uint64_t)N * K));
    mk_quantize(wt, wf, w, (size_t)N * K);
    mmdt_ctx c = {rnd((size_t)M * K, 1), zeros((size_t)M * N), rnd((size_t)M * N, 1), w, wt, M, K, N};
    float *di = zeros((size_t)M * K);
    mk_matmul_backward_dt(di, c.g, w, wt, M, K, N);
    char what[64];
    snprintf(what, sizeof what, "fd matmul_dt %s M=%d dinp", mk_dtype_name(wt), M);
    fd_check(what, mmdt_loss, &c, c.inp, (size_t)M * K, di);
    free(wf), free(w), free(c.inp), free(c.out), free(c.g), free(di);
}

/* ---- norms ---- */
typedef struct { float *x, *w, *b, *out, *mean, *rstd, *g; int M, C, layer; } norm_ctx;

static double norm_loss(void *p) {
    norm_ctx *c = p;
    if (c->layer)
        mk_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->M, c->C, 1e-5f);
    else
        mk_rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->M, c->C, 1e-5f);
    return dot(c->out, c->g, (size_t)c->M * c->C);
}

static void grad_norm(int layer) {
    int M = 3, C = 7;
    size_t n = (size_t)M * C;
    norm_ctx c = {rnd(n, 2), rnd(C, 1), rnd(C, 1), zeros(n), zeros(M), zeros(M), rnd(n, 1), M, C, layer};
    float *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    norm_loss(&c);
    if (layer) {
        mk_layernorm_backward(dx, dw, db, c.g, c.x, c.w, c.mean, c.rstd, M, C);
        fd_check("fd layernorm dinp", norm_loss, &c, c.x, n, dx);
        fd_check("fd layernorm dw", norm_loss, &c, c.w, C, dw);
        fd_check("fd layernorm db", norm_loss, &c, c.b, C, db);
    } else {
        mk_rmsnorm_backward(dx, dw, c.g, c.x, c.w, c.rstd, M, C);
        fd_check("fd rmsnorm dinp", norm_loss, &c, c.x, n, dx);
        fd_check("fd rmsnorm dw", norm_loss, &c, c.w, C, dw);
    }
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.g);
    free(dx), free(dw), free(db);
}

/* ---- RoPE ---- */
typedef struct { float *x, *y, *g, *ff; int *pos; int T, NH, HS, inter; } rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->T * c->NH * c->HS;
    memcpy(c->y, c->x, n * sizeof(float));
    mk_rope_forward(c->y, c->pos, c->T, c->NH, c->HS, 10000.0f, c->ff, c->inter);
    return dot(c->y, c->g, n);
}

static void grad_rope(int inter) {
    int pos[3] = {0, 5, 1234}, T = 3, NH = 2, HS = 8;
    size_t n = (size_t)T * NH * HS;
    float ff[4] = {1.0f, 2.5f, 4.0f, 8.0f};
    rope_ctx c = {rnd(n, 1), zeros(n), rnd(n, 1), ff, pos, T, NH, HS, inter};
    float *dx = malloc(n * sizeof(float));
    memcpy(dx, c.g, n * sizeof(float));
    mk_rope_backward(dx, pos, T, NH, HS, 10000.0f, ff, inter);
    fd_check(inter ? "fd rope interleaved dx" : "fd rope rotate-half dx", rope_loss, &c, c.x, n, dx);
    free(c.x), free(c.y), free(c.g), free(dx);
}

/* ---- activations ---- */
typedef struct { float *a, *b, *out, *g; size_t n; int kind; } act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    switch (c->kind) {
    case 0: mk_swiglu_forward(c->out, c->a, c->b, c->n); break;
    case 1: mk_gelu_forward(c->out, c->a, c->n); break;
    case 2: mk_relu_forward(c->out, c->a, c->n); break;
    default: mk_tanh_forward(c->out, c->a, c->n); break;
    }
    return dot(c->out, c->g, c->n);
}

static void grad_act(void) {
    const char *names[4] = {"swiglu", "gelu", "relu", "tanh"};
    size_t n = 23;
    for (int k = 0; k < 4; k++) {
        act_ctx c = {rnd(n, 3), rnd(n, 2), zeros(n), rnd(n, 1), n, k};
        /* keep ReLU inputs away from the kink, where FD is meaningless */
        for (size_t i = 0; i < n; i++)
            if (fabsf(c.a[i]) < 0.1f) c.a[i] = c.a[i] < 0 ? -0.5f : 0.5f;
        float *da = zeros(n), *db = zeros(n);
        act_loss(&c);
        if (k == 0) mk_swiglu_backward(da, db, c.g, c.a, c.b, n);
        if (k == 1) mk_gelu_backward(da, c.g, c.a, n);
        if (k == 2) mk_relu_backward(da, c.g, c.a, n);
        if (k == 3) mk_tanh_backward(da, c.g, c.out, n);
        char what[64];
        snprintf(what, sizeof what, "fd %s dinp", names[k]);
        fd_check(what, act_loss, &c, c.a, n, da);
        if (k == 0) fd_check("fd swiglu db", act_loss, &c, c.b, n, db);
        free(c.a), free(c.b), free(c.out), free(c.g), free(da), free(db);
    }
}

/* ---- attention ---- */
typedef struct { float *q, *k, *v, *kmask, *out, *att, *g; int T, Tk, NH, NKV, HS, off; } att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    mk_attention_forward(c->out, c->att, c->q, c->k, c->v, c->kmask, c->T, c->Tk, c->NH, c->NKV,
                         c->HS, c->off);
    return dot(c->out, c->g, (size_t)c->T * c->NH * c->HS);
}

static void grad_attention(int T, int Tk, int NH, int NKV, int HS, int off, int mask_key) {
    size_t nq = (size_t)T * NH * HS, nk = (size_t)Tk * NKV * HS;
    float *kmask = NULL;
    if (mask_key >= 0) {
        kmask = malloc((size_t)Tk * sizeof(float));
        for (int j = 0; j < Tk; j++) kmask[j] = j == mask_key ? 0.0f : 1.0f;
    }
    att_ctx c = {rnd(nq, 1), rnd(nk, 1), rnd(nk, 1), kmask, zeros(nq),
                 zeros((size_t)NH * T * Tk), rnd(nq, 1), T, Tk, NH, NKV, HS, off};
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    att_loss(&c);
    mk_attention_backward(dq, dk, dv, c.g, c.att, c.q, c.k, c.v, T, Tk, NH, NKV, HS);
    char what[96];
    snprintf(what, sizeof what, "fd attention T=%d Tk=%d NH=%d NKV=%d off=%d mask=%d dq", T, Tk,
             NH, NKV, off, mask_key);
    fd_check(what, att_loss, &c, c.q, nq, dq);
    what[strlen(what) - 1] = 'k';
    fd_check(what, att_loss, &c, c.k, nk, dk);
    what[strlen(what) - 2] = 'd', what[strlen(what) - 1] = 'v';
    fd_check(what, att_loss, &c, c.v, nk, dv);
    free(c.q), free(c.k), free(c.v), free(kmask), free(c.out), free(c.att), free(c.g);
    free(dq), free(dk), free(dv);
}

/* ---- softmax and cross-entropy ---- */
typedef struct { float *x, *y, *g, *mask; int32_t *tg; int M, N; } sm_ctx;

static double sm_loss(void *p) {
    sm_ctx *c = p;
    mk_softmax_forward(c->y, c->x, c->M, c->N);
    return dot(c->y, c->g, (size_t)c->M * c->N);
}

static double ce_loss(void *p) {
    sm_ctx *c = p;
    return mk_cross_entropy(NULL, c->x, c->tg, c->mask, c->M, c->N, 1.0f);
}

static void grad_softmax_xent(void) {
    int M = 4, N = 9;
    size_t n = (size_t)M * N;
    float mask[4] = {1, 0, 1, 1};
    int32_t tg[4] = {3, 1, 8, 0};
    sm_ctx c = {rnd(n, 3), zeros(n), rnd(n, 1), mask, tg, M, N};
    float *dx = zeros(n);
    sm_loss(&c);
    mk_softmax_backward(dx, c.g, c.y, M, N);
    fd_check("fd softmax dinp", sm_loss, &c, c.x, n, dx);
    memset(dx, 0, n * sizeof(float));
    mk_cross_entropy(dx, c.x, tg, mask, M, N, 1.0f);
    fd_check("fd cross_entropy dlogits", ce_loss, &c, c.x, n, dx);
    free(c.x), free(c.y), free(c.g), free(dx);
}

int main(void) {
    grad_matmul(3, 5, 4);
    grad_matmul(1, 6, 3);
    grad_matmul_dt(MK_Q8_0, 2, 32, 3);
    grad_matmul_dt(MK_F16, 1, 32, 5);
    grad_matmul_dt(MK_Q4_0, 3, 64, 2);
    grad_norm(0);
    grad_norm(1);
    grad_rope(0);
    grad_rope(1);
    grad_act();
    grad_attention(3, 5, 4, 2, 4, 2, 0);   /* GQA, KV-cache offset, masked key */
    grad_attention(4, 4, 2, 2, 3, -1, 3);  /* bidirectional, padded last key */
    grad_attention(4, 4, 2, 1, 5, 0, -1);  /* causal, one kv head */
    grad_softmax_xent();
    return check_summary("test_ops_grad");
}
