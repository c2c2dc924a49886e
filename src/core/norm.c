/* norm.c - RMSNorm (Llama) and LayerNorm (BERT/RoBERTa), forward and
 * backward. Row statistics are accumulated in double: rows are a few
 * thousand wide and the backward subtracts nearly equal sums.
 * A NULL weight means all ones, a NULL LayerNorm bias all zeros. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "ops.h"

#define PAR_MIN_WORK 16384.0

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
        /* channels split across threads; rows summed in order (deterministic) */
#pragma omp parallel for schedule(static) if (par)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int m = 0; m < M; m++)
                s += (double)dout[(size_t)m * C + c] * inp[(size_t)m * C + c] * rstd[m];
            dw[c] += (float)s;
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
#pragma omp parallel for schedule(static) if (par)
        for (int c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int m = 0; m < M; m++) {
                double g = dout[(size_t)m * C + c];
                sw += g * ((double)inp[(size_t)m * C + c] - mean[m]) * rstd[m];
                sb += g;
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
}
