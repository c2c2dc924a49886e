/* norm.c - RMSNorm (Llama) and LayerNorm (BERT/RoBERTa), forward and
 * backward. Row statistics are accumulated in double: rows are a few
 * thousand wide and the backward subtracts nearly equal sums.
 * A NULL weight means all ones, a NULL LayerNorm bias all zeros. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "ops.h"

#define PAR_MIN_WORK 131072.0 /* elements; smaller stays on one thread (see matmul.c) */
#define CB 64 /* channels per block in the weight-gradient sums */

void mk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                        int M, int C, float eps) {
    if (M <= 0 || C <= 0) return;
#pragma omp parallel for schedule(static) if ((double)M * C >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *o = out + (size_t)m * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) o[c] = x[c] * r * (w ? w[c] : 1.0f);
        if (rstd) rstd[m] = r;
    }
}

/* y_c = w_c x_c r with r = (mean(x^2) + eps)^-1/2, dr/dx_j = -r^3 x_j / C:
 *   dx_j = r (g_j w_j - x_j r^2 / C * sum_c g_c w_c x_c),  dw_c = sum_m g_c x_c r */
void mk_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int M, int C) {
    if (M <= 0 || C <= 0) return;
    int par = (double)M * C >= PAR_MIN_WORK;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int m = 0; m < M; m++) {
            const float *x = inp + (size_t)m * C, *g = dout + (size_t)m * C;
            float *dx = dinp + (size_t)m * C;
            double r = rstd[m], dot = 0;
            for (int c = 0; c < C; c++) dot += (double)g[c] * (w ? w[c] : 1.0f) * x[c];
            double k = dot * r * r / C;
            for (int c = 0; c < C; c++)
                dx[c] += (float)(r * ((double)g[c] * (w ? w[c] : 1.0f) - x[c] * k));
        }
    }
    if (dw) {
        /* blocks of CB channels per thread, rows summed in order (deterministic),
         * each row read as contiguous segments */
        int nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (par)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * CB, nc = C - c0 < CB ? C - c0 : CB;
            double acc[CB] = {0};
            for (int m = 0; m < M; m++) {
                const float *g = dout + (size_t)m * C + c0, *x = inp + (size_t)m * C + c0;
                double r = rstd[m];
                for (int c = 0; c < nc; c++) acc[c] += (double)g[c] * x[c] * r;
            }
            for (int c = 0; c < nc; c++) dw[c0 + c] += (float)acc[c];
        }
    }
}

void mk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int M, int C, float eps) {
    if (M <= 0 || C <= 0) return;
#pragma omp parallel for schedule(static) if ((double)M * C >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *o = out + (size_t)m * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += x[c];
        double mu = s / C, v = 0;
        for (int c = 0; c < C; c++) v += ((double)x[c] - mu) * ((double)x[c] - mu);
        double r = 1.0 / sqrt(v / C + eps); /* biased variance, as PyTorch */
        for (int c = 0; c < C; c++)
            o[c] = (float)(((double)x[c] - mu) * r) * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        if (mean) mean[m] = (float)mu;
        if (rstd) rstd[m] = (float)r;
    }
}

/* xhat = (x - mean) r, dxhat = g w:
 *   dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
void mk_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int M, int C) {
    if (M <= 0 || C <= 0) return;
    int par = (double)M * C >= PAR_MIN_WORK;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int m = 0; m < M; m++) {
            const float *x = inp + (size_t)m * C, *g = dout + (size_t)m * C;
            float *dx = dinp + (size_t)m * C;
            double mu = mean[m], r = rstd[m], s1 = 0, s2 = 0;
            for (int c = 0; c < C; c++) {
                double dxh = (double)g[c] * (w ? w[c] : 1.0f);
                s1 += dxh;
                s2 += dxh * ((double)x[c] - mu) * r;
            }
            s1 /= C;
            s2 /= C;
            for (int c = 0; c < C; c++) {
                double dxh = (double)g[c] * (w ? w[c] : 1.0f);
                double xh = ((double)x[c] - mu) * r;
                dx[c] += (float)(r * (dxh - s1 - xh * s2));
            }
        }
    }
    if (dw || db) {
        int nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (par)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * CB, nc = C - c0 < CB ? C - c0 : CB;
            double sw[CB] = {0}, sb[CB] = {0};
            for (int m = 0; m < M; m++) {
                const float *g = dout + (size_t)m * C + c0, *x = inp + (size_t)m * C + c0;
                double mu = mean[m], r = rstd[m];
                for (int c = 0; c < nc; c++) {
                    sw[c] += (double)g[c] * ((double)x[c] - mu) * r;
                    sb[c] += g[c];
                }
            }
            for (int c = 0; c < nc; c++) {
                if (dw) dw[c0 + c] += (float)sw[c];
                if (db) db[c0 + c] += (float)sb[c];
            }
        }
    }
}
