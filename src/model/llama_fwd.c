/* llama_fwd.c - batched forward with per-sequence prefixes, and the
 * backward to the prefixes (and optionally to every F32 weight).
 *
 * The B sequences are packed one after another into M = sum_i T_i rows (no
 * padding): every matmul runs once over all rows, attention runs per
 * sequence. The forward keeps only each layer's input (NL+1, M, D); the
 * backward recomputes one layer's activations at a time from it
 * (checkpointing), so activation memory does not grow with NL beyond
 * (NL+1) M D floats.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/ops.h"
#include "llama_internal.h"

/* One layer's activations over the M packed rows. */
typedef struct {
    float *xn1;   /* (M, D) attention-norm output */
    float *rstd1; /* (M) */
    float *q;     /* (M, NH*HS) after RoPE */
    float *k;     /* (M, NKV*HS) after RoPE */
    float *v;     /* (M, NKV*HS) */
    float *att;   /* sum_i NH*T_i*T_i attention probabilities */
    float *ao;    /* (M, NH*HS) attention output */
    float *xmid;  /* (M, D) residual after attention */
    float *xn2;   /* (M, D) ffn-norm output */
    float *rstd2; /* (M) */
    float *g;     /* (M, F) gate */
    float *u;     /* (M, F) up */
    float *h;     /* (M, F) silu(g) * u */
    float *block;
} layer_ws;

struct mk_llama_acts {
    int B, M, Ltot;
    int *off;      /* (B+1) first row of sequence i */
    int *npre;     /* (B) prefix length */
    int *attoff;   /* (B) offset of sequence i in att */
    int *pos;      /* (M) position of each row */
    int *tokrow;   /* (Ltot) packed row of each token position */
    int32_t *ids;  /* (Ltot) token ids */
    float *xs;     /* (NL+1, M, D) layer inputs; xs[NL] the last layer's output */
    float *xf;     /* (Ltot, D) final-norm output of the token rows */
    float *rstdf;  /* (Ltot) */
    layer_ws ws;
    size_t att_n;
};

void mk_llama_acts_free(mk_llama_acts *a) {
    if (!a) return;
    free(a->off);
    free(a->npre);
    free(a->attoff);
    free(a->pos);
    free(a->tokrow);
    free(a->ids);
    free(a->xs);
    free(a->xf);
    free(a->rstdf);
    free(a->ws.block);
    free(a);
}

/* size_t product with overflow check (0 on overflow) */
static size_t mul3(size_t a, size_t b, size_t c) {
    if (a && b > SIZE_MAX / a) return 0;
    a *= b;
    if (a && c > SIZE_MAX / a) return 0;
    return a * c;
}

static int ws_alloc(layer_ws *w, const mk_llama_config *c, size_t M, size_t att_n) {
    size_t D = (size_t)c->dim, F = (size_t)c->ffn_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t per = 4 * D + 2 + 2 * QD + 2 * KD + 3 * F; /* floats per row */
    size_t n = mul3(M, per, 1);
    if (!n || n + att_n < n || (n + att_n) > SIZE_MAX / sizeof(float))
        return mk_fail(MK_ERR_NOMEM, "llama: activations too large");
    float *p = malloc((n + att_n) * sizeof(float));
    if (!p) return mk_fail(MK_ERR_NOMEM, "llama: out of memory for activations (%zu MB)",
                           (n + att_n) * sizeof(float) >> 20);
    w->block = p;
    w->xn1 = p; p += M * D;
    w->rstd1 = p; p += M;
    w->q = p; p += M * QD;
    w->k = p; p += M * KD;
    w->v = p; p += M * KD;
    w->ao = p; p += M * QD;
    w->xmid = p; p += M * D;
    w->xn2 = p; p += M * D;
    w->rstd2 = p; p += M;
    w->g = p; p += M * F;
    w->u = p; p += M * F;
    w->h = p; p += M * F;
    w->att = p;
    return MK_OK;
}

/* Forward of layer l over the packed rows: x_out (M, D) from x_in (M, D). */
static void layer_forward(const mk_llama *m, int l, const mk_llama_acts *a, layer_ws *w,
                          const float *x_in, float *x_out) {
    const mk_llama_config *c = &m->c;
    const mk_llama_layer *L = &m->layers[l];
    int M = a->M, D = c->dim, F = c->ffn_dim, NH = c->n_heads, NKV = c->n_kv_heads,
        HS = c->head_dim;
    int QD = NH * HS, KD = NKV * HS;
    mk_rmsnorm_forward(w->xn1, w->rstd1, x_in, L->attn_norm, M, D, c->norm_eps);
    mk_llama_mm(w->q, w->xn1, L->wq, M, D, QD);
    mk_llama_mm(w->k, w->xn1, L->wk, M, D, KD);
    mk_llama_mm(w->v, w->xn1, L->wv, M, D, KD);
    mk_rope_forward(w->q, a->pos, M, NH, HS, c->rope_theta, m->rope_ff, c->rope_interleaved);
    mk_rope_forward(w->k, a->pos, M, NKV, HS, c->rope_theta, m->rope_ff, c->rope_interleaved);
    for (int i = 0; i < a->B; i++) {
        size_t r = (size_t)a->off[i];
        int T = a->off[i + 1] - a->off[i];
        mk_attention_forward(w->ao + r * QD, w->att + a->attoff[i], w->q + r * QD, w->k + r * KD,
                             w->v + r * KD, NULL, T, T, NH, NKV, HS, 0);
    }
    size_t MD = (size_t)M * D;
    mk_llama_mm(x_out, w->ao, L->wo, M, QD, D);
    for (size_t i = 0; i < MD; i++) w->xmid[i] = x_in[i] + x_out[i];
    mk_rmsnorm_forward(w->xn2, w->rstd2, w->xmid, L->ffn_norm, M, D, c->norm_eps);
    mk_llama_mm(w->g, w->xn2, L->wg, M, D, F);
    mk_llama_mm(w->u, w->xn2, L->wu, M, D, F);
    mk_swiglu_forward(w->h, w->g, w->u, (size_t)M * F);
    mk_llama_mm(x_out, w->h, L->wd, M, F, D);
    for (size_t i = 0; i < MD; i++) x_out[i] += w->xmid[i];
}

static int plan(const mk_llama *m, const mk_llama_seq *seqs, int B, mk_llama_acts *a) {
    const mk_llama_config *c = &m->c;
    if (B <= 0 || !seqs) return mk_fail(MK_ERR_ARG, "llama forward: empty batch");
    size_t M = 0, Ltot = 0, att = 0;
    for (int i = 0; i < B; i++) {
        const mk_llama_seq *s = &seqs[i];
        if (s->n_tokens < 1 || !s->tokens)
            return mk_fail(MK_ERR_ARG, "llama forward: sequence %d has no tokens", i);
        if (s->n_prefix < 0 || (s->n_prefix > 0 && !s->prefix))
            return mk_fail(MK_ERR_ARG, "llama forward: sequence %d: bad prefix", i);
        int64_t T = (int64_t)s->n_tokens + s->n_prefix;
        if (T > c->n_ctx)
            return mk_fail(MK_ERR_RANGE, "llama forward: sequence %d has %lld positions "
                           "(%d prefix + %d tokens), more than the context of %d", i,
                           (long long)T, s->n_prefix, s->n_tokens, c->n_ctx);
        int rc = mk_llama_check_ids(m, s->tokens, s->n_tokens);
        if (rc) return mk_fail_ctx(rc, "llama forward: sequence %d", i);
        M += (size_t)T;
        Ltot += (size_t)s->n_tokens;
        att += mul3((size_t)c->n_heads, (size_t)T, (size_t)T);
    }
    if (M > (size_t)1 << 30) return mk_fail(MK_ERR_RANGE, "llama forward: batch too large");
    a->B = B;
    a->M = (int)M;
    a->Ltot = (int)Ltot;
    a->att_n = att;
    a->off = malloc((size_t)(B + 1) * sizeof(int));
    a->npre = malloc((size_t)B * sizeof(int));
    a->attoff = malloc((size_t)B * sizeof(int));
    a->pos = malloc(M * sizeof(int));
    a->tokrow = malloc(Ltot * sizeof(int));
    a->ids = malloc(Ltot * sizeof(int32_t));
    if (!a->off || !a->npre || !a->attoff || !a->pos || !a->tokrow || !a->ids)
        return mk_fail(MK_ERR_NOMEM, "llama forward: out of memory");
    size_t r = 0, t = 0, ao = 0;
    for (int i = 0; i < B; i++) {
        const mk_llama_seq *s = &seqs[i];
        int T = s->n_prefix + s->n_tokens;
        a->off[i] = (int)r;
        a->npre[i] = s->n_prefix;
        a->attoff[i] = (int)ao;
        ao += (size_t)c->n_heads * T * T;
        for (int p = 0; p < T; p++) a->pos[r + p] = p;
        for (int p = 0; p < s->n_tokens; p++) {
            a->tokrow[t] = (int)(r + s->n_prefix + p);
            a->ids[t] = s->tokens[p];
            t++;
        }
        r += (size_t)T;
    }
    a->off[B] = (int)r;
    if (ao > (size_t)INT32_MAX) return mk_fail(MK_ERR_RANGE, "llama forward: sequences too long for one batch");
    return MK_OK;
}

int mk_llama_forward(const mk_llama *m, const mk_llama_seq *seqs, int B, float *logits,
                     mk_llama_acts **acts_out) {
    const mk_llama_config *c = &m->c;
    if (acts_out) *acts_out = NULL;
    mk_llama_acts *a = calloc(1, sizeof *a);
    if (!a) return mk_fail(MK_ERR_NOMEM, "llama forward: out of memory");
    int rc = plan(m, seqs, B, a);
    if (rc) goto fail;
    size_t D = (size_t)c->dim, M = (size_t)a->M, NL = (size_t)c->n_layers;
    /* layer inputs: all NL+1 when a backward follows, else two (ping-pong) */
    size_t nx = acts_out ? NL + 1 : 2;
    size_t nxs = mul3(nx, M, D);
    if (!nxs || !(a->xs = malloc(nxs * sizeof(float))) ||
        !(a->xf = malloc((size_t)a->Ltot * D * sizeof(float))) ||
        !(a->rstdf = malloc((size_t)a->Ltot * sizeof(float)))) {
        rc = mk_fail(MK_ERR_NOMEM, "llama forward: out of memory for %zu x %zu activations", M, D);
        goto fail;
    }
    if ((rc = ws_alloc(&a->ws, c, M, a->att_n))) goto fail;
    /* x0 = [prefix ; emb(tokens)] per sequence */
    for (int i = 0; i < B; i++) {
        float *x = a->xs + (size_t)a->off[i] * D;
        if (seqs[i].n_prefix)
            memcpy(x, seqs[i].prefix, (size_t)seqs[i].n_prefix * D * sizeof(float));
        mk_llama_embed(m, seqs[i].tokens, seqs[i].n_tokens, x + (size_t)seqs[i].n_prefix * D);
    }
    float *xl = a->xs;
    for (size_t l = 0; l < NL; l++) {
        float *xo = acts_out ? a->xs + (l + 1) * M * D : a->xs + ((l + 1) % 2) * M * D;
        layer_forward(m, (int)l, a, &a->ws, xl, xo);
        xl = xo;
    }
    /* final norm on the token rows only, then the output projection */
    for (int t = 0; t < a->Ltot; t++)
        mk_rmsnorm_forward(a->xf + (size_t)t * D, a->rstdf + t, xl + (size_t)a->tokrow[t] * D,
                           m->out_norm, 1, (int)D, c->norm_eps);
    mk_llama_mm(logits, a->xf, m->output, a->Ltot, (int)D, c->n_vocab);
    if (acts_out) {
        *acts_out = a;
        return MK_OK;
    }
    rc = MK_OK;
fail:
    mk_llama_acts_free(a);
    return rc;
}

/* ---------------------------------------------------------------- gradients */

size_t mk_llama_layout(const mk_llama_config *c, float *base, mk_llama_grads *g) {
    size_t D = (size_t)c->dim, V = (size_t)c->n_vocab, F = (size_t)c->ffn_dim,
           NL = (size_t)c->n_layers;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t per_layer = 2 * D + 2 * QD * D + 2 * KD * D + 3 * F * D;
    size_t n = V * D + NL * per_layer + D + (c->tied_embeddings ? 0 : V * D);
    memset(g, 0, sizeof *g);
    if (!base) return n;
    float *p = base;
    g->block = p;
    g->n = n;
    g->tok_emb = p; p += V * D;
    g->attn_norm = p; p += NL * D;
    g->wq = p; p += NL * QD * D;
    g->wk = p; p += NL * KD * D;
    g->wv = p; p += NL * KD * D;
    g->wo = p; p += NL * D * QD;
    g->ffn_norm = p; p += NL * D;
    g->w_gate = p; p += NL * F * D;
    g->w_up = p; p += NL * F * D;
    g->w_down = p; p += NL * D * F;
    g->out_norm = p; p += D;
    g->output = c->tied_embeddings ? NULL : p;
    return n;
}

int mk_llama_grads_init(const mk_llama *m, mk_llama_grads *g) {
    const mk_llama_config *c = &m->c;
    memset(g, 0, sizeof *g);
    if (!m->all_f32 || m->tok_emb->dtype != MK_F32)
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: weight gradients need every weight stored as F32 "
                       "(this model's matrices are %s; open with MK_LLAMA_OWN_WEIGHTS for an F32 "
                       "copy)", mk_weights_path(m->w), mk_dtype_name(c->wtype));
    size_t n = mk_llama_layout(c, NULL, g);
    float *p = calloc(n, sizeof(float));
    if (!p) return mk_fail(MK_ERR_NOMEM, "llama: out of memory for %zu weight gradients", n);
    mk_llama_layout(c, p, g);
    return MK_OK;
}

void mk_llama_grads_zero(mk_llama_grads *g) {
    if (g->block) memset(g->block, 0, g->n * sizeof(float));
}

void mk_llama_grads_free(mk_llama_grads *g) {
    free(g->block);
    memset(g, 0, sizeof *g);
}

int mk_llama_backward(const mk_llama *m, mk_llama_acts *a, const float *dlogits, float **dprefix,
                      mk_llama_grads *dw) {
    const mk_llama_config *c = &m->c;
    if (!a || !dlogits) return mk_fail(MK_ERR_ARG, "llama backward: no activations or dlogits");
    if (dw && !dw->block)
        return mk_fail(MK_ERR_ARG, "llama backward: weight gradients not initialised");
    int M = a->M, D = c->dim, F = c->ffn_dim, NH = c->n_heads, NKV = c->n_kv_heads,
        HS = c->head_dim, V = c->n_vocab, NL = c->n_layers;
    int QD = NH * HS, KD = NKV * HS;
    size_t MD = (size_t)M * D;
    /* scratch: dx (M,D), dxn (M,D), dh dg du (M,F), dao dq (M,QD), dk dv (M,KD), dxf (Ltot,D),
     * x_out (M,D) for the recomputed layer */
    size_t n = 3 * MD + 3 * (size_t)M * F + 2 * (size_t)M * QD + 2 * (size_t)M * KD +
               2 * (size_t)a->Ltot * D;
    float *blk = malloc(n * sizeof(float));
    if (!blk) return mk_fail(MK_ERR_NOMEM, "llama backward: out of memory (%zu MB)",
                             n * sizeof(float) >> 20);
    float *dx = blk, *dxn = dx + MD, *xtmp = dxn + MD;
    float *dh = xtmp + MD, *dg = dh + (size_t)M * F, *du = dg + (size_t)M * F;
    float *dao = du + (size_t)M * F, *dq = dao + (size_t)M * QD;
    float *dk = dq + (size_t)M * QD, *dv = dk + (size_t)M * KD;
    float *dxf = dv + (size_t)M * KD; /* (Ltot, D) */
    float *dgath = dxf + (size_t)a->Ltot * D; /* (Ltot, D) */

    /* output projection and final norm */
    memset(dxf, 0, (size_t)a->Ltot * D * sizeof(float));
    mk_llama_mm_back(dxf, dlogits, m->output, a->Ltot, D, V);
    if (dw) {
        float *dout_w = c->tied_embeddings ? dw->tok_emb : dw->output;
        mk_matmul_backward(NULL, dout_w, NULL, dlogits, a->xf, NULL, a->Ltot, D, V);
    }
    /* rmsnorm backward needs its input rows: gather them into dxn (free now) */
    const float *xlast = a->xs + (size_t)NL * MD;
    memset(dx, 0, MD * sizeof(float));
    for (int t = 0; t < a->Ltot; t++)
        memcpy(dxn + (size_t)t * D, xlast + (size_t)a->tokrow[t] * D, (size_t)D * sizeof(float));
    memset(dgath, 0, (size_t)a->Ltot * D * sizeof(float));
    mk_rmsnorm_backward(dgath, dw ? dw->out_norm : NULL, dxf, dxn, m->out_norm, a->rstdf,
                        a->Ltot, D);
    for (int t = 0; t < a->Ltot; t++) {
        float *dst = dx + (size_t)a->tokrow[t] * D;
        const float *src = dgath + (size_t)t * D;
        for (int d = 0; d < D; d++) dst[d] += src[d];
    }

    layer_ws *w = &a->ws;
    for (int l = NL - 1; l >= 0; l--) {
        const mk_llama_layer *L = &m->layers[l];
        const float *x_in = a->xs + (size_t)l * MD;
        layer_forward(m, l, a, w, x_in, xtmp); /* recompute this layer's activations */
        /* FFN: x_out = xmid + h @ wd^T; dx holds d x_out and becomes d xmid */
        memset(dh, 0, (size_t)M * F * sizeof(float));
        mk_llama_mm_back(dh, dx, L->wd, M, F, D);
        memset(dg, 0, (size_t)2 * M * F * sizeof(float)); /* dg and du */
        mk_swiglu_backward(dg, du, dh, w->g, w->u, (size_t)M * F);
        memset(dxn, 0, MD * sizeof(float));
        mk_llama_mm_back(dxn, dg, L->wg, M, D, F);
        mk_llama_mm_back(dxn, du, L->wu, M, D, F);
        if (dw) {
            size_t lf = (size_t)l * F * D;
            mk_matmul_backward(NULL, dw->w_down + lf, NULL, dx, w->h, NULL, M, F, D);
            mk_matmul_backward(NULL, dw->w_gate + lf, NULL, dg, w->xn2, NULL, M, D, F);
            mk_matmul_backward(NULL, dw->w_up + lf, NULL, du, w->xn2, NULL, M, D, F);
        }
        mk_rmsnorm_backward(dx, dw ? dw->ffn_norm + (size_t)l * D : NULL, dxn, w->xmid,
                            L->ffn_norm, w->rstd2, M, D);
        /* attention: xmid = x_in + ao @ wo^T; dx becomes d x_in */
        memset(dao, 0, (size_t)M * QD * sizeof(float));
        mk_llama_mm_back(dao, dx, L->wo, M, QD, D);
        if (dw) mk_matmul_backward(NULL, dw->wo + (size_t)l * D * QD, NULL, dx, w->ao, NULL, M, QD, D);
        memset(dq, 0, ((size_t)M * QD + 2 * (size_t)M * KD) * sizeof(float)); /* dq dk dv */
        for (int i = 0; i < a->B; i++) {
            size_t r = (size_t)a->off[i];
            int T = a->off[i + 1] - a->off[i];
            mk_attention_backward(dq + r * QD, dk + r * KD, dv + r * KD, dao + r * QD,
                                  w->att + a->attoff[i], w->q + r * QD, w->k + r * KD,
                                  w->v + r * KD, T, T, NH, NKV, HS);
        }
        mk_rope_backward(dq, a->pos, M, NH, HS, c->rope_theta, m->rope_ff, c->rope_interleaved);
        mk_rope_backward(dk, a->pos, M, NKV, HS, c->rope_theta, m->rope_ff, c->rope_interleaved);
        memset(dxn, 0, MD * sizeof(float));
        mk_llama_mm_back(dxn, dq, L->wq, M, D, QD);
        mk_llama_mm_back(dxn, dk, L->wk, M, D, KD);
        mk_llama_mm_back(dxn, dv, L->wv, M, D, KD);
        if (dw) {
            mk_matmul_backward(NULL, dw->wq + (size_t)l * QD * D, NULL, dq, w->xn1, NULL, M, D, QD);
            mk_matmul_backward(NULL, dw->wk + (size_t)l * KD * D, NULL, dk, w->xn1, NULL, M, D, KD);
            mk_matmul_backward(NULL, dw->wv + (size_t)l * KD * D, NULL, dv, w->xn1, NULL, M, D, KD);
        }
        mk_rmsnorm_backward(dx, dw ? dw->attn_norm + (size_t)l * D : NULL, dxn, x_in,
                            L->attn_norm, w->rstd1, M, D);
    }
    /* dx = d x0: prefix rows to dprefix, token rows to the embedding */
    for (int i = 0; i < a->B; i++) {
        if (dprefix && dprefix[i] && a->npre[i] > 0) {
            const float *src = dx + (size_t)a->off[i] * D;
            size_t nn = (size_t)a->npre[i] * D;
            for (size_t j = 0; j < nn; j++) dprefix[i][j] += src[j];
        }
    }
    if (dw) {
        for (int t = 0; t < a->Ltot; t++) {
            float *dst = dw->tok_emb + (size_t)a->ids[t] * D;
            const float *src = dx + (size_t)a->tokrow[t] * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
        }
    }
    free(blk);
    return MK_OK;
}
