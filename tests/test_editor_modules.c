/* test_editor_modules.c - the editor's modules against PyTorch
 * (tools/ref_editor.py): features, q head, the whole chain encoder ->
 * features -> head, the prototype path through the k head, both prompt
 * encoders (torch.nn.MultiheadAttention for "attn"), forward and every
 * gradient, plus finite differences of each backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "editor/krm.h"
#include "editor/prompt_encoder.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/roberta.h"
#include "util/check.h"
#include "util/ref.h"

#define REF "tests/data/editor/ref.safetensors"

static mk_st *st;

#define HINT "tools/ref_editor.py"
static float *ref(const char *name, size_t *n) { return ref_tensor(st, name, n, HINT); }
static void ref_into(const char *name, float *dst, size_t n) { ref_tensor_into(st, name, dst, n, HINT); }

static void cmp_ref(const char *name, const float *got, size_t n, double atol, double rtol) {
    size_t m;
    float *x = ref(name, &m);
    CHECK(m == n);
    check_close(name, got, x, m < n ? m : n, atol, rtol);
    free(x);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Central differences of loss() for `count` entries of x (n) against the
 * analytic gradient g. */
typedef double (*loss_fn)(void *ctx);
static void fd(const char *what, float *x, size_t n, const float *g, loss_fn loss, void *ctx,
               int count, float h) {
    double worst = 0;
    int bad = 0;
    for (int k = 0; k < count; k++) {
        size_t j = ((size_t)k * 2654435761u + 12345u) % n;
        float old = x[j];
        x[j] = old + h;
        double lp = loss(ctx);
        x[j] = old - h;
        double lm = loss(ctx);
        x[j] = old;
        double f = (lp - lm) / (2.0 * h), err = fabs(f - g[j]);
        if (err > 1e-2 + 2e-2 * fabs(g[j])) {
            bad++;
            fprintf(stderr, "FD %s[%zu]: finite diff %.6g, backward %.6g\n", what, j, f, g[j]);
        }
        if (err > worst) worst = err;
    }
    check_count++;
    if (bad) check_failures++;
    printf("%s finite differences %s: %d entries, largest |fd - backward| %.3g\n",
           bad ? "FAIL" : "ok  ", what, count, worst);
}

/* ---- heads and features ---- */

static mk_encoder *enc;
static int n, L, H, F, R;
static int32_t *ids;
static float *mask;

static void load_head(const char *prefix, mk_head_params *h, float **block) {
    *block = malloc(mk_head_n_params(F, R) * sizeof(float));
    mk_head_point(h, *block, F, R);
    char nm[64];
    snprintf(nm, sizeof nm, "%s.fc1.weight", prefix);
    ref_into(nm, h->w1, (size_t)R * F);
    snprintf(nm, sizeof nm, "%s.fc1.bias", prefix);
    ref_into(nm, h->b1, (size_t)R);
    snprintf(nm, sizeof nm, "%s.fc2.weight", prefix);
    ref_into(nm, h->w2, (size_t)R * R);
    snprintf(nm, sizeof nm, "%s.fc2.bias", prefix);
    ref_into(nm, h->b2, (size_t)R);
}

static void cmp_head_grads(const char *prefix, const mk_head_params *g) {
    char nm[80];
    snprintf(nm, sizeof nm, "%s.fc1.weight", prefix);
    cmp_ref(nm, g->w1, (size_t)R * F, 1e-4, 1e-3);
    snprintf(nm, sizeof nm, "%s.fc1.bias", prefix);
    cmp_ref(nm, g->b1, (size_t)R, 1e-4, 1e-3);
    snprintf(nm, sizeof nm, "%s.fc2.weight", prefix);
    cmp_ref(nm, g->w2, (size_t)R * R, 1e-4, 1e-3);
    snprintf(nm, sizeof nm, "%s.fc2.bias", prefix);
    cmp_ref(nm, g->b2, (size_t)R, 1e-4, 1e-3);
}

typedef struct {
    const mk_head_params *p;
    float *x, *out, *x1, *h2, *r;
} head_ctx;

static double head_loss(void *v) {
    head_ctx *c = v;
    mk_head_forward(c->out, c->x1, c->h2, c->x, c->p, n, F, R);
    return dot(c->out, c->r, (size_t)n * R);
}

typedef struct {
    float *hs, *mask, *pooled, *x, *r;
    int32_t *arg;
} feat_ctx;

static double feat_loss(void *v) {
    feat_ctx *c = v;
    mk_krm_features_forward(c->x, c->arg, c->hs, c->mask, c->pooled, n, L, H);
    return dot(c->x, c->r, (size_t)n * F);
}

static void test_features_and_head(void) {
    mk_enc_acts a;
    CHECK_OK(mk_enc_acts_alloc(&enc->cfg, n, L, 1, 1, &a));
    CHECK_OK(mk_enc_forward(&enc->cfg, &enc->p, ids, mask, &a));
    float *x = malloc((size_t)n * F * sizeof(float));
    int32_t *arg = malloc((size_t)n * 2 * H * sizeof(int32_t));
    mk_krm_features_forward(x, arg, mk_enc_last_hidden(&a), a.mask, a.pooled, n, L, H);
    cmp_ref("feat.x", x, (size_t)n * F, 1e-4, 1e-4);

    /* the q head on the reference features */
    mk_head_params q, g;
    float *qb, *gb = calloc(mk_head_n_params(F, R), sizeof(float));
    load_head("q_head", &q, &qb);
    mk_head_point(&g, gb, F, R);
    float *xr = ref("feat.x", NULL), *qr = ref("q.r", NULL);
    float *out = malloc((size_t)n * R * sizeof(float)), *x1 = malloc((size_t)n * R * sizeof(float));
    float *h2 = malloc((size_t)n * R * sizeof(float)), *dx = calloc((size_t)n * F, sizeof(float));
    mk_head_forward(out, x1, h2, xr, &q, n, F, R);
    cmp_ref("q.out", out, (size_t)n * R, 1e-4, 1e-4);
    CHECK_OK(mk_head_backward(dx, &g, qr, xr, x1, h2, &q, n, F, R));
    cmp_head_grads("q.grad", &g);
    cmp_ref("q.grad.x", dx, (size_t)n * F, 1e-4, 1e-3);
    head_ctx hc = {&q, xr, out, x1, h2, qr};
    fd("q head d(fc1.weight)", q.w1, (size_t)R * F, g.w1, head_loss, &hc, 12, 1e-2f);
    fd("q head d(fc2.weight)", q.w2, (size_t)R * R, g.w2, head_loss, &hc, 12, 1e-2f);
    fd("q head d(fc2.bias)", q.b2, (size_t)R, g.b2, head_loss, &hc, 8, 1e-2f);
    fd("q head d(x)", xr, (size_t)n * F, dx, head_loss, &hc, 12, 1e-2f);

    /* features backward: the gradient at the encoder output of the chain loss */
    float *cr = ref("chain.r", NULL);
    memset(dx, 0, (size_t)n * F * sizeof(float));
    mk_head_forward(out, x1, h2, x, &q, n, F, R);
    CHECK_OK(mk_head_backward(dx, NULL, cr, x, x1, h2, &q, n, F, R));
    float *dhs = calloc((size_t)n * L * H, sizeof(float)), *dpo = calloc((size_t)n * H, sizeof(float));
    mk_krm_features_backward(dhs, dpo, dx, a.mask, arg, n, L, H);
    cmp_ref("chain.grad.hidden", dhs, (size_t)n * L * H, 1e-4, 1e-3);
    cmp_ref("chain.grad.pooled", dpo, (size_t)n * H, 1e-4, 1e-3);
    /* finite differences of the features alone: loss sum(x * dx) */
    float *hs = malloc((size_t)n * L * H * sizeof(float));
    memcpy(hs, mk_enc_last_hidden(&a), (size_t)n * L * H * sizeof(float));
    float *xf = malloc((size_t)n * F * sizeof(float));
    feat_ctx fc = {hs, a.mask, a.pooled, xf, dx, arg};
    /* real-token entries only (pads have zero gradient, and +-999999 offsets
     * make float differences there meaningless) */
    float *dhs_real = calloc((size_t)n * L * H, sizeof(float));
    memset(dhs_real, 0, (size_t)n * L * H * sizeof(float));
    mk_krm_features_backward(dhs_real, NULL, dx, a.mask, arg, n, L, H);
    fd("features d(hidden)", hs, (size_t)H * 3, dhs_real, feat_loss, &fc, 24, 1e-3f);

    /* the whole chain: encoder -> features -> q head */
    mk_krm_pass pass;
    CHECK_OK(mk_krm_forward(&enc->cfg, &enc->p, &q, R, ids, mask, n, L, NULL, &pass));
    cmp_ref("chain.out", pass.out, (size_t)n * R, 1e-4, 1e-4);
    size_t np = mk_enc_n_params(&enc->cfg);
    float *geb = calloc(np, sizeof(float));
    mk_enc_params ge;
    mk_enc_point(&ge, geb, &enc->cfg);
    memset(gb, 0, mk_head_n_params(F, R) * sizeof(float));
    CHECK_OK(mk_krm_backward(&enc->cfg, &enc->p, &q, &pass, cr, &ge, &g, NULL));
    double worst = 0;
    for (int i = 0; i < mk_enc_n_tensors(&enc->cfg); i++) {
        char nm[128], full[200];
        float *d;
        int nd;
        int64_t sh[2];
        mk_enc_tensor(&enc->cfg, &ge, i, nm, &d, &nd, sh);
        snprintf(full, sizeof full, "chain.grad.%s", nm);
        size_t m;
        float *r = ref(full, &m);
        double e = check_close(full, d, r, m, 3e-4, 1e-3);
        if (e > worst) worst = e;
        free(r);
    }
    printf("     chain: largest encoder-gradient difference %.3g\n", worst);
    mk_krm_pass_free(&pass);

    mk_enc_acts_free(&a);
    free(x), free(arg), free(qb), free(gb), free(xr), free(qr), free(out), free(x1), free(h2);
    free(dx), free(cr), free(dhs), free(dpo), free(hs), free(xf), free(dhs_real), free(geb);
}

/* ---- prototype ---- */

typedef struct {
    const mk_head_params *k;
    float *proto, *r;
} proto_ctx;

static double proto_loss(void *v) {
    proto_ctx *c = v;
    float out[64];
    mk_krm_pass pass;
    if (mk_krm_forward_proto(&enc->cfg, &enc->p, c->k, R, c->proto, 10, out, &pass)) exit(1);
    mk_krm_pass_free(&pass);
    return dot(out, c->r, (size_t)R);
}

static void test_prototype(void) {
    mk_head_params k, g;
    float *kb, *gb = calloc(mk_head_n_params(F, R), sizeof(float));
    load_head("k_head", &k, &kb);
    mk_head_point(&g, gb, F, R);
    size_t np;
    float *proto = ref("prototype", &np), *pr = ref("proto.r", NULL);
    int P = (int)(np / (size_t)H);
    CHECK(P == 10);
    float out[64];
    mk_krm_pass pass;
    CHECK_OK(mk_krm_forward_proto(&enc->cfg, &enc->p, &k, R, proto, P, out, &pass));
    cmp_ref("proto.out", out, (size_t)R, 1e-4, 1e-4);
    float *dproto = calloc(np, sizeof(float));
    size_t ne = mk_enc_n_params(&enc->cfg);
    float *geb = calloc(ne, sizeof(float));
    mk_enc_params ge;
    mk_enc_point(&ge, geb, &enc->cfg);
    CHECK_OK(mk_krm_backward(&enc->cfg, &enc->p, &k, &pass, pr, &ge, &g, dproto));
    cmp_ref("proto.grad.prototype", dproto, np, 1e-5, 1e-3);
    cmp_head_grads("proto.grad.k_head", &g);
    double worst = 0;
    for (int i = 5; i < mk_enc_n_tensors(&enc->cfg); i++) { /* layers and pooler */
        char nm[128], full[200];
        float *d;
        int nd;
        int64_t sh[2];
        mk_enc_tensor(&enc->cfg, &ge, i, nm, &d, &nd, sh);
        snprintf(full, sizeof full, "proto.grad.enc.%s", nm);
        size_t m;
        float *r = ref(full, &m);
        double e = check_close(full, d, r, m, 1e-4, 1e-3);
        if (e > worst) worst = e;
        free(r);
    }
    printf("     prototype: largest encoder-gradient difference %.3g\n", worst);
    proto_ctx pc = {&k, proto, pr};
    fd("prototype d(proto)", proto, np, dproto, proto_loss, &pc, 16, 1e-3f);
    mk_krm_pass_free(&pass);
    free(kb), free(gb), free(proto), free(pr), free(dproto), free(geb);
}

/* ---- prompt encoders ---- */

typedef struct {
    const mk_penc_config *c;
    const mk_penc_params *p;
    float *v, *out, *r;
    int B;
} pe_ctx;

static double pe_loss(void *vctx) {
    pe_ctx *c = vctx;
    if (mk_penc_forward(c->c, c->p, c->v, c->B, c->out, NULL)) exit(1);
    return dot(c->out, c->r, (size_t)c->B * c->c->T * c->c->D);
}

static void test_prompt_encoder(mk_penc_kind kind) {
    const char *nm = kind == MK_PENC_ATTN ? "pe_attn" : "pe_mlp";
    mk_penc_config c = {kind, R, 3, 16, 4};
    CHECK_OK(mk_penc_config_check(&c));
    size_t np = mk_penc_n_params(&c), nv;
    float *pb = malloc(np * sizeof(float)), *gb = calloc(np, sizeof(float));
    mk_penc_params p, g;
    mk_penc_point(&p, pb, &c);
    mk_penc_point(&g, gb, &c);
    char full[128];
    for (int i = 0; i < mk_penc_n_tensors(&c); i++) {
        char tn[64];
        float *d;
        int nd;
        int64_t sh[2];
        mk_penc_tensor(&c, &p, i, tn, &d, &nd, sh);
        snprintf(full, sizeof full, "%s.%s", nm, tn);
        ref_into(full, d, (size_t)sh[0] * (size_t)(nd == 2 ? sh[1] : 1));
    }
    float *v = ref("pe.v", &nv);
    int B = (int)(nv / (size_t)R);
    size_t no = (size_t)B * c.T * c.D;
    float *out = malloc(no * sizeof(float)), *dv = calloc(nv, sizeof(float));
    snprintf(full, sizeof full, "%s.r", nm);
    float *r = ref(full, NULL);
    mk_penc_pass pass;
    CHECK_OK(mk_penc_forward(&c, &p, v, B, out, &pass));
    snprintf(full, sizeof full, "%s.out", nm);
    cmp_ref(full, out, no, 1e-5, 1e-4);
    CHECK_OK(mk_penc_backward(&c, &p, &pass, r, dv, &g));
    snprintf(full, sizeof full, "%s.grad.v", nm);
    cmp_ref(full, dv, nv, 1e-5, 1e-3);
    for (int i = 0; i < mk_penc_n_tensors(&c); i++) {
        char tn[64];
        float *d;
        int nd;
        int64_t sh[2];
        mk_penc_tensor(&c, &g, i, tn, &d, &nd, sh);
        snprintf(full, sizeof full, "%s.grad.%s", nm, tn);
        cmp_ref(full, d, (size_t)sh[0] * (size_t)(nd == 2 ? sh[1] : 1), 1e-5, 1e-3);
    }
    if (kind == MK_PENC_ATTN) {
        /* the quirk: one key token, so the T prompts are identical and
         * query_proj (and the q in-projection) get exactly zero gradient */
        double spread = 0, gq = 0;
        for (int b = 0; b < B; b++)
            for (int t = 1; t < c.T; t++)
                for (int d = 0; d < c.D; d++) {
                    size_t o = ((size_t)b * c.T + t) * c.D + d, o0 = (size_t)b * c.T * c.D + d;
                    spread = fmax(spread, fabs(out[o] - out[o0]));
                }
        for (size_t i = 0; i < (size_t)c.T * c.D * R; i++) gq = fmax(gq, fabs(g.qp_w[i]));
        for (size_t i = 0; i < (size_t)c.D * c.D; i++) gq = fmax(gq, fabs(g.in_w[i]));
        CHECK(spread < 1e-6 && gq == 0); /* equal up to rounding (torch: 6e-17 in f64) */
        printf("     attn quirk: prompts differ across T by %.3g, |d query_proj|max %.3g\n", spread, gq);
    }
    pe_ctx pc = {&c, &p, v, out, r, B};
    fd(kind == MK_PENC_ATTN ? "attn d(v)" : "mlp d(v)", v, nv, dv, pe_loss, &pc, 16, 1e-2f);
    float *w = kind == MK_PENC_ATTN ? p.vp_w : p.w1, *gw = kind == MK_PENC_ATTN ? g.vp_w : g.w1;
    size_t nw = kind == MK_PENC_ATTN ? (size_t)c.D * R : (size_t)R * R;
    fd(kind == MK_PENC_ATTN ? "attn d(value_proj.weight)" : "mlp d(fc1.weight)", w, nw, gw,
       pe_loss, &pc, 12, 1e-2f);
    if (kind == MK_PENC_ATTN)
        fd("attn d(mha.in_proj_weight)", p.in_w, 3 * (size_t)c.D * c.D, g.in_w, pe_loss, &pc, 16,
           1e-2f);
    else
        fd("mlp d(fc2.weight)", p.w2, (size_t)c.T * c.D * R, g.w2, pe_loss, &pc, 12, 1e-2f);
    mk_penc_pass_free(&pass);
    free(pb), free(gb), free(v), free(out), free(dv), free(r);
}

static void test_penc_config(void) {
    mk_penc_config bad[] = {
        {0, 24, 3, 16, 4}, {MK_PENC_ATTN, 0, 3, 16, 4}, {MK_PENC_ATTN, 24, 0, 16, 4},
        {MK_PENC_ATTN, 24, 3, 16, 5}, {MK_PENC_ATTN, 24, 3, -1, 4}, {MK_PENC_MLP, 24, 5000, 16, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(mk_penc_config_check(&bad[i]) == MK_ERR_ARG);
        printf("     bad prompt-encoder config %zu: %s\n", i, mk_errmsg());
    }
    CHECK(mk_penc_kind_parse("attn") == MK_PENC_ATTN && mk_penc_kind_parse("mlp") == MK_PENC_MLP);
    CHECK(mk_penc_kind_parse("rnn") == 0 && mk_penc_kind_parse(NULL) == 0);
}

int main(void) {
    CHECK_OK(mk_st_open(REF, &st));
    CHECK_OK(mk_encoder_open("tests/data/editor/encoder", MK_ENC_NO_TOKENIZER, &enc));
    if (!st || !enc) return check_summary("test_editor_modules");
    const mk_tensor_view *t = mk_st_find(st, "enc.ids");
    n = (int)t->shape[0], L = (int)t->shape[1], H = enc->cfg.hidden, F = 4 * H;
    R = (int)mk_st_find(st, "q.out")->shape[1];
    float *idsf = ref("enc.ids", NULL);
    ids = malloc((size_t)n * L * sizeof *ids);
    for (size_t i = 0; i < (size_t)n * L; i++) ids[i] = (int32_t)idsf[i];
    free(idsf);
    mask = ref("enc.mask", NULL);

    test_features_and_head();
    test_prototype();
    test_prompt_encoder(MK_PENC_ATTN);
    test_prompt_encoder(MK_PENC_MLP);
    test_penc_config();

    free(ids), free(mask);
    mk_encoder_free(enc);
    mk_st_close(st);
    return check_summary("test_editor_modules");
}
