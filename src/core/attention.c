/* attention.c - rotary position embedding and scaled dot-product attention
 * over one sequence (grouped-query, causal with a KV-cache offset, key
 * padding mask), forward and backward. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* ---- RoPE ---- */

/* Rotate every pair of x (T, NH, HS) by sign * angle (sign -1 undoes the
 * forward rotation, which is also the backward of a rotation). Angles in
 * double: pos * freq reaches 1e5 radians at long contexts. */
static void rope_rotate(float *x, const int *pos, int T, int NH, int HS, float theta,
                        const float *freq_factors, int interleaved, double sign) {
    int half = HS / 2; /* an odd last element (never in practice) is left alone */
    if (T <= 0 || NH <= 0 || half <= 0) return;
    double fixed[256];
    double *inv = half <= 256 ? fixed : malloc((size_t)half * sizeof(double));
    for (int i = 0; inv && i < half; i++)
        inv[i] = pow((double)theta, -2.0 * i / HS) / (freq_factors ? freq_factors[i] : 1.0);
#pragma omp parallel for schedule(static) if ((double)T * NH * HS >= 131072.0)
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            double f = inv ? inv[i]
                           : pow((double)theta, -2.0 * i / HS) /
                                 (freq_factors ? freq_factors[i] : 1.0);
            double ang = (double)pos[t] * f;
            float c = (float)cos(ang), s = (float)(sign * sin(ang));
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            for (int h = 0; h < NH; h++) {
                float *p = x + ((size_t)t * NH + h) * HS;
                float x0 = p[i0], x1 = p[i1];
                p[i0] = x0 * c - x1 * s;
                p[i1] = x0 * s + x1 * c;
            }
        }
    }
    if (inv != fixed) free(inv);
}

void mk_rope_forward(float *x, const int *pos, int T, int NH, int HS, float theta,
                     const float *freq_factors, int interleaved) {
    rope_rotate(x, pos, T, NH, HS, theta, freq_factors, interleaved, 1.0);
}

void mk_rope_backward(float *dx, const int *pos, int T, int NH, int HS, float theta,
                      const float *freq_factors, int interleaved) {
    rope_rotate(dx, pos, T, NH, HS, theta, freq_factors, interleaved, -1.0);
}

/* ---- attention ---- */

/* multiply-adds (NH*T*Tk*HS) below which one thread does it (see matmul.c) */
#define PAR_MIN_WORK 1048576.0

void mk_attention_forward(float *out, float *att, const float *q, const float *k,
                          const float *v, const float *kmask, int T, int Tk, int NH,
                          int NKV, int HS, int causal_offset) {
    if (T <= 0 || NH <= 0 || HS <= 0) return;
    if (Tk <= 0 || NKV <= 0 || NH % NKV) {
        /* nothing to attend to (or an invalid grouping): zero output */
        memset(out, 0, (size_t)T * NH * HS * sizeof(float));
        return;
    }
    mk_ops_init();
    int grp = NH / NKV;
    float scale = (float)(1.0 / sqrt((double)HS));
    size_t ldq = (size_t)NH * HS, ldk = (size_t)NKV * HS;
    double work = (double)NH * T * Tk * HS;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK)
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HS;               /* (T, HS; ld NH*HS) */
        const float *kh = k + (size_t)(h / grp) * HS;       /* (Tk, HS; ld NKV*HS) */
        const float *vh = v + (size_t)(h / grp) * HS;
        float *A = att + (size_t)h * T * Tk;                /* (T, Tk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, Tk, HS, scale, qh, (int)ldq,
                    kh, (int)ldk, 0.0f, A, Tk);
        for (int t = 0; t < T; t++) {
            float *a = A + (size_t)t * Tk;
            int lim = Tk;
            if (causal_offset >= 0 && (int64_t)t + causal_offset + 1 < Tk)
                lim = t + causal_offset + 1;
            float mx = -INFINITY;
            for (int j = 0; j < lim; j++)
                if ((!kmask || kmask[j] != 0) && a[j] > mx) mx = a[j];
            double sum = 0;
            for (int j = 0; j < Tk; j++) {
                if (j < lim && (!kmask || kmask[j] != 0)) {
                    a[j] = expf(a[j] - mx);
                    sum += a[j];
                } else {
                    a[j] = 0.0f;
                }
            }
            /* a query with no visible key gets zero probabilities (and output) */
            float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
            for (int j = 0; j < lim; j++) a[j] *= inv;
        }
        /* out_h (T, HS; ld NH*HS) = A (T, Tk) @ v_h (Tk, HS) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, Tk, 1.0f, A, Tk, vh,
                    (int)ldk, 0.0f, out + (size_t)h * HS, (int)ldq);
    }
}

/* Per head, with P = att, S = scale q k^T, dP = dout v^T:
 *   dv += P^T dout;  dS = P * (dP - rowsum(P * dP));  dq += scale dS k;  dk += scale dS^T q.
 * Masked keys have P = 0 so they get no gradient; mask and offset are not
 * needed again. Threads own whole key/value heads (their dk/dv rows), so
 * query heads of one group run on the same thread. */
static void attn_backward_head(float *dq, float *dk, float *dv, const float *dout,
                               const float *att, const float *q, const float *k,
                               const float *v, float *dP, int h, int kv, int T, int Tk,
                               int NH, int NKV, int HS) {
    float scale = (float)(1.0 / sqrt((double)HS));
    int ldq = NH * HS, ldk = NKV * HS;
    const float *P = att + (size_t)h * T * Tk;
    const float *qh = q + (size_t)h * HS, *kh = k + (size_t)kv * HS, *vh = v + (size_t)kv * HS;
    const float *go = dout + (size_t)h * HS;
    if (dv)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, HS, T, 1.0f, P, Tk, go, ldq,
                    1.0f, dv + (size_t)kv * HS, ldk);
    if (!dq && !dk) return;
    /* dP (T, Tk) = dout_h (T, HS) @ v_h^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, Tk, HS, 1.0f, go, ldq, vh, ldk,
                0.0f, dP, Tk);
    for (int t = 0; t < T; t++) {
        const float *p = P + (size_t)t * Tk;
        float *d = dP + (size_t)t * Tk;
        double s = 0;
        for (int j = 0; j < Tk; j++) s += (double)p[j] * d[j];
        for (int j = 0; j < Tk; j++) d[j] = p[j] * (d[j] - (float)s);
    }
    if (dq)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, Tk, scale, dP, Tk, kh,
                    ldk, 1.0f, dq + (size_t)h * HS, ldq);
    if (dk)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, HS, T, scale, dP, Tk, qh, ldq,
                    1.0f, dk + (size_t)kv * HS, ldk);
}

/* The same without any scratch memory (used when allocation fails):
 * dP entries are recomputed as dot products when needed. */
static void attn_backward_head_noscratch(float *dq, float *dk, float *dv, const float *dout,
                                         const float *att, const float *q, const float *k,
                                         const float *v, int h, int kv, int T, int Tk, int NH,
                                         int NKV, int HS) {
    float scale = (float)(1.0 / sqrt((double)HS));
    for (int t = 0; t < T; t++) {
        const float *p = att + ((size_t)h * T + t) * Tk;
        const float *go = dout + ((size_t)t * NH + h) * HS;
        const float *qt = q + ((size_t)t * NH + h) * HS;
        double s = 0;
        for (int j = 0; j < Tk; j++) {
            if (p[j] == 0) continue;
            const float *vj = v + ((size_t)j * NKV + kv) * HS;
            double dpj = 0;
            for (int c = 0; c < HS; c++) dpj += (double)go[c] * vj[c];
            s += p[j] * dpj;
        }
        for (int j = 0; j < Tk; j++) {
            if (p[j] == 0) continue;
            const float *vj = v + ((size_t)j * NKV + kv) * HS;
            const float *kj = k + ((size_t)j * NKV + kv) * HS;
            double dpj = 0;
            for (int c = 0; c < HS; c++) dpj += (double)go[c] * vj[c];
            float ds = (float)(p[j] * (dpj - s)) * scale;
            for (int c = 0; c < HS; c++) {
                if (dq) dq[((size_t)t * NH + h) * HS + c] += ds * kj[c];
                if (dk) dk[((size_t)j * NKV + kv) * HS + c] += ds * qt[c];
                if (dv) dv[((size_t)j * NKV + kv) * HS + c] += p[j] * go[c];
            }
        }
    }
}

void mk_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                           const float *att, const float *q, const float *k,
                           const float *v, int T, int Tk, int NH, int NKV, int HS) {
    if (T <= 0 || Tk <= 0 || NH <= 0 || HS <= 0 || NKV <= 0 || NH % NKV) return;
    mk_ops_init();
    int grp = NH / NKV;
    double work = (double)NH * T * Tk * HS;
    int nt = work >= PAR_MIN_WORK ? mk_num_threads() : 1;
    if (nt > NKV) nt = NKV;
    /* dP scratch (T, Tk) per thread */
    size_t per = (size_t)T * Tk;
    float *scratch = malloc((size_t)nt * per * sizeof(float));
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int kv = 0; kv < NKV; kv++) {
        float *dP = scratch ? scratch + (size_t)omp_get_thread_num() * per : NULL;
        for (int h = kv * grp; h < (kv + 1) * grp; h++) {
            if (dP)
                attn_backward_head(dq, dk, dv, dout, att, q, k, v, dP, h, kv, T, Tk, NH, NKV, HS);
            else
                attn_backward_head_noscratch(dq, dk, dv, dout, att, q, k, v, h, kv, T, Tk, NH,
                                             NKV, HS);
        }
    }
    free(scratch);
}
