/* loss.c - row softmax and masked mean cross-entropy. */
#include <math.h>
#include <omp.h>

#include "ops.h"

#define PAR_MIN_WORK 131072.0 /* elements; smaller stays on one thread (see matmul.c) */

void mk_softmax_forward(float *out, const float *inp, int M, int N) {
    if (M <= 0 || N <= 0) return;
#pragma omp parallel for schedule(static) if ((double)M * N >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * N;
        float *o = out + (size_t)m * N;
        float mx = x[0];
        for (int n = 1; n < N; n++)
            if (x[n] > mx) mx = x[n];
        if (mx == -INFINITY) { /* a fully masked row: zeros, not 0/0 */
            for (int n = 0; n < N; n++) o[n] = 0.0f;
            continue;
        }
        double sum = 0;
        for (int n = 0; n < N; n++) {
            o[n] = expf(x[n] - mx);
            sum += o[n];
        }
        float inv = (float)(1.0 / sum);
        for (int n = 0; n < N; n++) o[n] *= inv;
    }
}

/* dx = y * (dy - sum(dy * y)) */
void mk_softmax_backward(float *dinp, const float *dout, const float *out, int M, int N) {
    if (M <= 0 || N <= 0) return;
#pragma omp parallel for schedule(static) if ((double)M * N >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        const float *y = out + (size_t)m * N, *dy = dout + (size_t)m * N;
        float *dx = dinp + (size_t)m * N;
        double s = 0;
        for (int n = 0; n < N; n++) s += (double)dy[n] * y[n];
        for (int n = 0; n < N; n++) dx[n] += y[n] * (dy[n] - (float)s);
    }
}

/* loss_m = logsumexp(x_m) - x_m[target];  dloss/dx_m = (softmax(x_m) - onehot) / count.
 * Rows whose target is outside [0, V) are skipped (PyTorch's ignore_index
 * -100 works this way too). No counted row: loss 0 and no gradient. */
float mk_cross_entropy(float *dlogits, const float *logits, const int32_t *targets,
                       const float *mask, int M, int V, float dloss) {
    if (M <= 0 || V <= 0) return 0.0f;
    int count = 0;
    for (int m = 0; m < M; m++)
        if ((!mask || mask[m] != 0) && targets[m] >= 0 && targets[m] < V) count++;
    if (count == 0) return 0.0f;
    double total = 0;
    double gscale = (double)dloss / count;
#pragma omp parallel for schedule(static) reduction(+ : total) if ((double)M * V >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        if ((mask && mask[m] == 0) || targets[m] < 0 || targets[m] >= V) continue;
        const float *x = logits + (size_t)m * V;
        float mx = x[0];
        for (int n = 1; n < V; n++)
            if (x[n] > mx) mx = x[n];
        double sum = 0;
        for (int n = 0; n < V; n++) sum += expf(x[n] - mx);
        double lse = mx + log(sum);
        total += lse - x[targets[m]];
        if (dlogits) {
            float *d = dlogits + (size_t)m * V;
            float g = (float)gscale, l = (float)lse;
            for (int n = 0; n < V; n++) d[n] += g * expf(x[n] - l);
            d[targets[m]] -= (float)gscale;
        }
    }
    return (float)(total / count);
}
