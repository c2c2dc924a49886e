/* prompt_encoder.c - "attn" (MedREK) and "mlp" (RECIPE) prompt encoders. */
#include "prompt_encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/ops.h"

mk_penc_kind mk_penc_kind_parse(const char *s) {
    if (!s) return 0;
    if (!strcmp(s, "attn")) return MK_PENC_ATTN;
    if (!strcmp(s, "mlp")) return MK_PENC_MLP;
    return 0;
}

const char *mk_penc_kind_name(mk_penc_kind k) {
    return k == MK_PENC_ATTN ? "attn" : k == MK_PENC_MLP ? "mlp" : "?";
}

int mk_penc_config_check(const mk_penc_config *c) {
    if (c->kind != MK_PENC_ATTN && c->kind != MK_PENC_MLP)
        return mk_fail(MK_ERR_ARG, "prompt encoder: unknown kind %d (attn or mlp)", (int)c->kind);
    if (c->R <= 0 || c->R > (1 << 20))
        return mk_fail(MK_ERR_ARG, "prompt encoder: rep_dim R = %d out of range [1, 2^20]", c->R);
    if (c->T <= 0 || c->T > 4096)
        return mk_fail(MK_ERR_ARG, "prompt encoder: prompt_tokens T = %d out of range [1, 4096]",
                       c->T);
    if (c->D <= 0 || c->D > (1 << 18))
        return mk_fail(MK_ERR_ARG, "prompt encoder: LLM width D = %d out of range [1, 2^18]", c->D);
    if (c->kind == MK_PENC_ATTN && (c->NH <= 0 || c->D % c->NH))
        return mk_fail(MK_ERR_ARG,
                       "prompt encoder: heads NH = %d must be positive and divide D = %d", c->NH,
                       c->D);
    if (!mk_penc_n_params(c))
        return mk_fail(MK_ERR_ARG, "prompt encoder: sizes overflow (R=%d, T=%d, D=%d)", c->R, c->T,
                       c->D);
    return MK_OK;
}

size_t mk_penc_n_params(const mk_penc_config *c) {
    if (c->R <= 0 || c->T <= 0 || c->D <= 0) return 0;
    /* every factor below is < 2^20, so products of two fit in 64 bits */
    uint64_t R = (uint64_t)c->R, T = (uint64_t)c->T, D = (uint64_t)c->D, TD = T * D, n;
    if (c->kind == MK_PENC_ATTN)
        n = TD * R + TD + 2 * (D * R + D) + 3 * D * D + 3 * D + D * D + D;
    else
        n = R * R + R + TD * R + TD;
    if (n > SIZE_MAX / sizeof(float)) return 0;
    return (size_t)n;
}

float *mk_penc_point(mk_penc_params *p, float *base, const mk_penc_config *c) {
    size_t R = (size_t)c->R, D = (size_t)c->D, TD = (size_t)c->T * D;
    float *x = base;
    memset(p, 0, sizeof *p);
#define TAKE(field, count) (p->field = x, x += (count))
    if (c->kind == MK_PENC_ATTN) {
        TAKE(qp_w, TD * R);
        TAKE(qp_b, TD);
        TAKE(kp_w, D * R);
        TAKE(kp_b, D);
        TAKE(vp_w, D * R);
        TAKE(vp_b, D);
        TAKE(in_w, 3 * D * D);
        TAKE(in_b, 3 * D);
        TAKE(out_w, D * D);
        TAKE(out_b, D);
    } else {
        TAKE(w1, R * R);
        TAKE(b1, R);
        TAKE(w2, TD * R);
        TAKE(b2, TD);
    }
#undef TAKE
    return x;
}

int mk_penc_n_tensors(const mk_penc_config *c) { return c->kind == MK_PENC_ATTN ? 10 : 4; }

void mk_penc_tensor(const mk_penc_config *c, const mk_penc_params *p, int i, char name[64],
                    float **data, int *n_dims, int64_t shape[2]) {
    int64_t R = c->R, D = c->D, TD = (int64_t)c->T * c->D;
    struct penc_tensor {
        const char *name;
        float *data;
        int64_t rows, cols; /* cols 0: a vector */
    } attn[] = {
        {"query_proj.weight", p->qp_w, TD, R}, {"query_proj.bias", p->qp_b, TD, 0},
        {"key_proj.weight", p->kp_w, D, R},    {"key_proj.bias", p->kp_b, D, 0},
        {"value_proj.weight", p->vp_w, D, R},  {"value_proj.bias", p->vp_b, D, 0},
        {"mha.in_proj_weight", p->in_w, 3 * D, D}, {"mha.in_proj_bias", p->in_b, 3 * D, 0},
        {"mha.out_proj.weight", p->out_w, D, D},   {"mha.out_proj.bias", p->out_b, D, 0},
    }, mlp[] = {
        {"fc1.weight", p->w1, R, R}, {"fc1.bias", p->b1, R, 0},
        {"fc2.weight", p->w2, TD, R}, {"fc2.bias", p->b2, TD, 0},
    };
    const struct penc_tensor *e = c->kind == MK_PENC_ATTN ? &attn[i] : &mlp[i];
    snprintf(name, 64, "%s", e->name);
    *data = e->data;
    shape[0] = e->rows;
    shape[1] = e->cols;
    *n_dims = e->cols ? 2 : 1;
}

static void fill_uniform(float *x, size_t n, double bound, float (*u01)(void *), void *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * u01(rng) - 1.0) * bound);
}

void mk_penc_init(const mk_penc_config *c, mk_penc_params *p, float (*u01)(void *), void *rng) {
    size_t R = (size_t)c->R, D = (size_t)c->D, TD = (size_t)c->T * D;
    double bR = 1.0 / sqrt((double)R), bD = 1.0 / sqrt((double)D);
    if (c->kind == MK_PENC_ATTN) {
        fill_uniform(p->qp_w, TD * R, bR, u01, rng);
        fill_uniform(p->qp_b, TD, bR, u01, rng);
        fill_uniform(p->kp_w, D * R, bR, u01, rng);
        fill_uniform(p->kp_b, D, bR, u01, rng);
        fill_uniform(p->vp_w, D * R, bR, u01, rng);
        fill_uniform(p->vp_b, D, bR, u01, rng);
        /* torch.nn.MultiheadAttention: xavier-uniform (3D, D) in-projection,
         * zero biases, default Linear init of out_proj.weight */
        fill_uniform(p->in_w, 3 * D * D, sqrt(6.0 / (double)(4 * D)), u01, rng);
        memset(p->in_b, 0, 3 * D * sizeof(float));
        fill_uniform(p->out_w, D * D, bD, u01, rng);
        memset(p->out_b, 0, D * sizeof(float));
    } else {
        fill_uniform(p->w1, R * R, bR, u01, rng);
        fill_uniform(p->b1, R, bR, u01, rng);
        fill_uniform(p->w2, TD * R, bR, u01, rng);
        fill_uniform(p->b2, TD, bR, u01, rng);
    }
}

/* ---- forward / backward ---- */

static int pass_alloc(const mk_penc_config *c, int B, mk_penc_pass *ps) {
    memset(ps, 0, sizeof *ps);
    size_t nB = (size_t)B, R = (size_t)c->R, D = (size_t)c->D, TD = (size_t)c->T * D;
    size_t total;
    if (c->kind == MK_PENC_ATTN)
        total = nB * (R + TD + 2 * D + TD + 2 * D + (size_t)c->NH * c->T + TD);
    else
        total = nB * 3 * R;
    if (nB && total / nB > SIZE_MAX / 8)
        return mk_fail(MK_ERR_NOMEM, "prompt encoder: sizes overflow");
    if (!(ps->block = malloc(total * sizeof(float))))
        return mk_fail(MK_ERR_NOMEM, "prompt encoder: out of memory for %d values", B);
    ps->B = B;
    ps->cfg = *c;
    float *x = ps->block;
#define TAKE(field, count) (ps->field = x, x += (count))
    TAKE(v, nB * R);
    if (c->kind == MK_PENC_ATTN) {
        TAKE(Q0, nB * TD);
        TAKE(K0, nB * D);
        TAKE(V0, nB * D);
        TAKE(q, nB * TD);
        TAKE(k, nB * D);
        TAKE(vv, nB * D);
        TAKE(att, nB * c->NH * c->T);
        TAKE(atty, nB * TD);
    } else {
        TAKE(h, nB * R);
        TAKE(x, nB * R);
    }
#undef TAKE
    return MK_OK;
}

int mk_penc_forward(const mk_penc_config *c, const mk_penc_params *p, const float *v, int B,
                    float *prompts, mk_penc_pass *pass) {
    if (B <= 0) return mk_fail(MK_ERR_ARG, "prompt encoder: %d values", B);
    mk_penc_pass local;
    mk_penc_pass *ps = pass ? pass : &local;
    int rc = pass_alloc(c, B, ps);
    if (rc) return rc;
    int R = c->R, D = c->D, T = c->T, TD = T * D;
    memcpy(ps->v, v, (size_t)B * R * sizeof(float));
    if (c->kind == MK_PENC_ATTN) {
        size_t DD = (size_t)D * D;
        int NH = c->NH, HS = D / NH;
        mk_matmul_forward(ps->Q0, v, p->qp_w, p->qp_b, B, R, TD);
        mk_matmul_forward(ps->K0, v, p->kp_w, p->kp_b, B, R, D);
        mk_matmul_forward(ps->V0, v, p->vp_w, p->vp_b, B, R, D);
        mk_matmul_forward(ps->q, ps->Q0, p->in_w, p->in_b, B * T, D, D);
        mk_matmul_forward(ps->k, ps->K0, p->in_w + DD, p->in_b + D, B, D, D);
        mk_matmul_forward(ps->vv, ps->V0, p->in_w + 2 * DD, p->in_b + 2 * D, B, D, D);
        /* one key/value token per value: every weight is 1 (spec section 10),
         * computed through the general kernel all the same */
        for (int b = 0; b < B; b++)
            mk_attention_forward(ps->atty + (size_t)b * TD, ps->att + (size_t)b * NH * T,
                                 ps->q + (size_t)b * TD, ps->k + (size_t)b * D,
                                 ps->vv + (size_t)b * D, NULL, T, 1, NH, NH, HS, -1);
        mk_matmul_forward(prompts, ps->atty, p->out_w, p->out_b, B * T, D, D);
    } else {
        size_t n = (size_t)B * R;
        mk_matmul_forward(ps->h, v, p->w1, p->b1, B, R, R);
        mk_relu_forward(ps->x, ps->h, n);
        for (size_t i = 0; i < n; i++) ps->x[i] += v[i];
        mk_matmul_forward(prompts, ps->x, p->w2, p->b2, B, R, TD);
    }
    if (!pass) mk_penc_pass_free(&local);
    return MK_OK;
}

int mk_penc_backward(const mk_penc_config *c, const mk_penc_params *p, const mk_penc_pass *ps,
                     const float *dprompts, float *dv, mk_penc_params *g) {
    int B = ps->B, R = c->R, D = c->D, T = c->T, TD = T * D;
    size_t nB = (size_t)B;
    if (c->kind == MK_PENC_ATTN) {
        size_t DD = (size_t)D * D;
        int NH = c->NH, HS = D / NH;
        /* datty, dq, dQ0 (B, T, D); dk, dvv, dK0, dV0 (B, D) */
        float *s = calloc(nB * (3 * (size_t)TD + 4 * (size_t)D), sizeof(float));
        if (!s) return mk_fail(MK_ERR_NOMEM, "prompt encoder backward: out of memory");
        float *datty = s, *dq = datty + nB * TD, *dQ0 = dq + nB * TD;
        float *dk = dQ0 + nB * TD, *dvv = dk + nB * D, *dK0 = dvv + nB * D, *dV0 = dK0 + nB * D;
        mk_matmul_backward(datty, g ? g->out_w : NULL, g ? g->out_b : NULL, dprompts, ps->atty,
                           p->out_w, B * T, D, D);
        for (int b = 0; b < B; b++)
            mk_attention_backward(dq + (size_t)b * TD, dk + (size_t)b * D, dvv + (size_t)b * D,
                                  datty + (size_t)b * TD, ps->att + (size_t)b * NH * T,
                                  ps->q + (size_t)b * TD, ps->k + (size_t)b * D,
                                  ps->vv + (size_t)b * D, T, 1, NH, NH, HS);
        mk_matmul_backward(dQ0, g ? g->in_w : NULL, g ? g->in_b : NULL, dq, ps->Q0, p->in_w,
                           B * T, D, D);
        mk_matmul_backward(dK0, g ? g->in_w + DD : NULL, g ? g->in_b + D : NULL, dk, ps->K0,
                           p->in_w + DD, B, D, D);
        mk_matmul_backward(dV0, g ? g->in_w + 2 * DD : NULL, g ? g->in_b + 2 * D : NULL, dvv,
                           ps->V0, p->in_w + 2 * DD, B, D, D);
        mk_matmul_backward(dv, g ? g->qp_w : NULL, g ? g->qp_b : NULL, dQ0, ps->v, p->qp_w, B, R,
                           TD);
        mk_matmul_backward(dv, g ? g->kp_w : NULL, g ? g->kp_b : NULL, dK0, ps->v, p->kp_w, B, R,
                           D);
        mk_matmul_backward(dv, g ? g->vp_w : NULL, g ? g->vp_b : NULL, dV0, ps->v, p->vp_w, B, R,
                           D);
        free(s);
    } else {
        size_t n = nB * R;
        float *s = calloc(2 * n, sizeof(float));
        if (!s) return mk_fail(MK_ERR_NOMEM, "prompt encoder backward: out of memory");
        float *dx = s, *dh = s + n;
        mk_matmul_backward(dx, g ? g->w2 : NULL, g ? g->b2 : NULL, dprompts, ps->x, p->w2, B, R,
                           TD);
        mk_relu_backward(dh, dx, ps->h, n);
        if (dv)
            for (size_t i = 0; i < n; i++) dv[i] += dx[i]; /* the residual */
        mk_matmul_backward(dv, g ? g->w1 : NULL, g ? g->b1 : NULL, dh, ps->v, p->w1, B, R, R);
        free(s);
    }
    return MK_OK;
}

void mk_penc_pass_free(mk_penc_pass *pass) {
    if (!pass) return;
    free(pass->block);
    memset(pass, 0, sizeof *pass);
}
