/* krm.c - encoder features, q/k heads and the passes that chain them. */
#include "krm.h"

#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/ops.h"

/* ---- features ---- */

void mk_krm_features_forward(float *x, int32_t *arg, const float *hs, const float *mask,
                             const float *pooled, int n, int L, int H) {
    size_t F = 4 * (size_t)H;
    for (int b = 0; b < n; b++) {
        float *xb = x + (size_t)b * F;
        const float *hb = hs + (size_t)b * L * H, *mb = mask + (size_t)b * L;
        int32_t *amax = arg + (size_t)b * 2 * H, *amin = amax + H;
        memcpy(xb, pooled + (size_t)b * H, (size_t)H * sizeof(float));
        float msum = 0;
        for (int t = 0; t < L; t++) msum += mb[t];
        for (int h = 0; h < H; h++) {
            float s = 0, mx = 0, mn = 0;
            int imx = 0, imn = 0;
            for (int t = 0; t < L; t++) {
                float m = mb[t], v = hb[(size_t)t * H + h];
                s += v * m;
                /* the reference's masking, in float as torch computes it;
                 * first index wins ties like torch.max/min over a dim */
                float vmax = v + (m - 1.0f) * 999999.0f, vmin = v + (1.0f - m) * 999999.0f;
                if (t == 0 || vmax > mx) mx = vmax, imx = t;
                if (t == 0 || vmin < mn) mn = vmin, imn = t;
            }
            xb[H + h] = s / msum;
            xb[2 * H + h] = mx;
            xb[3 * H + h] = mn;
            amax[h] = imx;
            amin[h] = imn;
        }
    }
}

void mk_krm_features_backward(float *dhs, float *dpooled, const float *dx, const float *mask,
                              const int32_t *arg, int n, int L, int H) {
    size_t F = 4 * (size_t)H;
    for (int b = 0; b < n; b++) {
        const float *db = dx + (size_t)b * F, *mb = mask + (size_t)b * L;
        const int32_t *amax = arg + (size_t)b * 2 * H, *amin = amax + H;
        if (dpooled)
            for (int h = 0; h < H; h++) dpooled[(size_t)b * H + h] += db[h];
        if (!dhs) continue;
        float *hb = dhs + (size_t)b * L * H;
        float msum = 0;
        for (int t = 0; t < L; t++) msum += mb[t];
        for (int t = 0; t < L; t++) {
            if (mb[t] == 0) continue;
            float w = mb[t] / msum;
            for (int h = 0; h < H; h++) hb[(size_t)t * H + h] += db[H + h] * w;
        }
        for (int h = 0; h < H; h++) {
            hb[(size_t)amax[h] * H + h] += db[2 * H + h];
            hb[(size_t)amin[h] * H + h] += db[3 * H + h];
        }
    }
}

/* ---- heads ---- */

size_t mk_head_n_params(int F, int R) {
    if (F <= 0 || R <= 0) return 0;
    size_t f = (size_t)F, r = (size_t)R;
    if (r > SIZE_MAX / (f + r + 2)) return 0;
    return r * (f + r + 2);
}

float *mk_head_point(mk_head_params *p, float *base, int F, int R) {
    size_t f = (size_t)F, r = (size_t)R;
    p->w1 = base;
    p->b1 = p->w1 + r * f;
    p->w2 = p->b1 + r;
    p->b2 = p->w2 + r * r;
    return p->b2 + r;
}

void mk_head_forward(float *out, float *x1, float *h2, const float *x, const mk_head_params *p,
                     int n, int F, int R) {
    mk_matmul_forward(x1, x, p->w1, p->b1, n, F, R);
    mk_matmul_forward(h2, x1, p->w2, p->b2, n, R, R);
    size_t nr = (size_t)n * R;
    for (size_t i = 0; i < nr; i++) out[i] = (h2[i] > 0 ? h2[i] : 0.0f) + x1[i];
}

int mk_head_backward(float *dx, mk_head_params *g, const float *dout, const float *x,
                     const float *x1, const float *h2, const mk_head_params *p, int n, int F,
                     int R) {
    size_t nr = (size_t)n * R;
    float *dx1 = malloc(2 * nr * sizeof(float));
    if (!dx1) return mk_fail(MK_ERR_NOMEM, "head backward: out of memory (n=%d, R=%d)", n, R);
    float *dh2 = dx1 + nr;
    memcpy(dx1, dout, nr * sizeof(float)); /* the residual */
    memset(dh2, 0, nr * sizeof(float));
    mk_relu_backward(dh2, dout, h2, nr);
    mk_matmul_backward(dx1, g ? g->w2 : NULL, g ? g->b2 : NULL, dh2, x1, p->w2, n, R, R);
    mk_matmul_backward(dx, g ? g->w1 : NULL, g ? g->b1 : NULL, dx1, x, p->w1, n, F, R);
    free(dx1);
    return MK_OK;
}

/* ---- passes ---- */

static int pass_alloc(mk_krm_pass *pass, int n, int L, int H, int R) {
    size_t F = 4 * (size_t)H, N = (size_t)n;
    size_t total = N * F + N * 2 * H + 3 * N * R;
    pass->n = n;
    pass->L = L;
    pass->H = H;
    pass->F = (int)F;
    pass->R = R;
    if (!(pass->block = malloc(total * sizeof(float))))
        return mk_fail(MK_ERR_NOMEM, "representation pass: out of memory (n=%d)", n);
    pass->x = pass->block;
    pass->arg = (int32_t *)(void *)(pass->x + N * F);
    pass->x1 = pass->x + N * F + N * 2 * H;
    pass->h2 = pass->x1 + N * R;
    pass->out = pass->h2 + N * R;
    return MK_OK;
}

static void pass_tail(const mk_head_params *head, mk_krm_pass *pass, float *out) {
    mk_enc_acts *a = &pass->enc;
    mk_krm_features_forward(pass->x, pass->arg, mk_enc_last_hidden(a), a->mask, a->pooled,
                            pass->n, pass->L, pass->H);
    mk_head_forward(pass->out, pass->x1, pass->h2, pass->x, head, pass->n, pass->F, pass->R);
    if (out) memcpy(out, pass->out, (size_t)pass->n * pass->R * sizeof(float));
}

int mk_krm_forward(const mk_enc_config *cfg, const mk_enc_params *enc, const mk_head_params *head,
                   int R, const int32_t *ids, const float *mask, int n, int L, float *out,
                   mk_krm_pass *pass) {
    memset(pass, 0, sizeof *pass);
    int rc;
    if ((rc = pass_alloc(pass, n, L, cfg->hidden, R))) return rc;
    if ((rc = mk_enc_acts_alloc(cfg, n, L, 1, 1, &pass->enc))) goto fail;
    if ((rc = mk_enc_forward(cfg, enc, ids, mask, &pass->enc))) goto fail;
    pass_tail(head, pass, out);
    return MK_OK;
fail:
    mk_krm_pass_free(pass);
    return rc;
}

int mk_krm_forward_proto(const mk_enc_config *cfg, const mk_enc_params *enc,
                         const mk_head_params *head, int R, const float *proto, int P, float *out,
                         mk_krm_pass *pass) {
    memset(pass, 0, sizeof *pass);
    int rc;
    if ((rc = pass_alloc(pass, 1, P, cfg->hidden, R))) return rc;
    pass->proto = 1;
    if ((rc = mk_enc_acts_alloc(cfg, 1, P, 0, 1, &pass->enc))) goto fail;
    if ((rc = mk_enc_forward_embeds(cfg, enc, proto, &pass->enc))) goto fail;
    pass_tail(head, pass, out);
    return MK_OK;
fail:
    mk_krm_pass_free(pass);
    return rc;
}

int mk_krm_backward(const mk_enc_config *cfg, const mk_enc_params *enc,
                    const mk_head_params *head, const mk_krm_pass *pass, const float *dout,
                    mk_enc_params *genc, mk_head_params *ghead, float *dproto) {
    size_t N = (size_t)pass->n, H = (size_t)pass->H, L = (size_t)pass->L;
    size_t total = N * pass->F + N * L * H + N * H;
    float *dx = calloc(total, sizeof(float));
    if (!dx) return mk_fail(MK_ERR_NOMEM, "representation backward: out of memory");
    float *dhs = dx + N * pass->F, *dpool = dhs + N * L * H;
    int rc = mk_head_backward(dx, ghead, dout, pass->x, pass->x1, pass->h2, head, pass->n,
                              pass->F, pass->R);
    if (rc) goto done;
    mk_krm_features_backward(dhs, dpool, dx, pass->enc.mask, pass->arg, pass->n, pass->L,
                             pass->H);
    rc = mk_enc_backward(cfg, enc, &pass->enc, dhs, dpool, genc, pass->proto ? dproto : NULL);
done:
    free(dx);
    return rc;
}

void mk_krm_pass_free(mk_krm_pass *pass) {
    if (!pass) return;
    mk_enc_acts_free(&pass->enc);
    free(pass->block);
    memset(pass, 0, sizeof *pass);
}
