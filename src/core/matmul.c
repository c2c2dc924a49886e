/* matmul.c - linear layers: f32 through OpenBLAS, and stored weights of any
 * dtype read in place (fused dequantise-dot for one input row, tiles of
 * dequantised rows + sgemm for many).
 *
 * Threads: each kernel splits its OUTPUT into disjoint slices, one per
 * OpenMP thread, and every thread calls a single-threaded sgemm on its
 * slice (mk_ops_init pins OpenBLAS to one thread), so there is exactly one
 * thread per core and no race on any output element. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* Below this many multiply-adds a product runs on the calling thread:
 * waking a team costs more than it saves. */
#define PAR_MIN_WORK 32768.0

static int team_size(double work) {
    return work < PAR_MIN_WORK ? 1 : mk_num_threads();
}

/* Slice [*lo, *hi) of n for thread t of nt. */
static void slice(int n, int t, int nt, int *lo, int *hi) {
    *lo = (int)((int64_t)n * t / nt);
    *hi = (int)((int64_t)n * (t + 1) / nt);
}

void mk_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                       int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    mk_ops_init();
    int nt = team_size((double)M * K * N);
    if (nt > N) nt = N;
#pragma omp parallel num_threads(nt)
    {
        int n0, n1;
        slice(N, omp_get_thread_num(), omp_get_num_threads(), &n0, &n1);
        int nn = n1 - n0;
        if (nn > 0) {
            if (K <= 0) {
                for (int m = 0; m < M; m++)
                    memset(out + (size_t)m * N + n0, 0, (size_t)nn * sizeof(float));
            } else if (M == 1) {
                /* out[n0:n1] = w[n0:n1, :] @ inp */
                cblas_sgemv(CblasRowMajor, CblasNoTrans, nn, K, 1.0f, w + (size_t)n0 * K, K,
                            inp, 1, 0.0f, out + n0, 1);
            } else {
                /* out[:, n0:n1] (M, nn; ld N) = inp (M,K) @ w[n0:n1]^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nn, K, 1.0f, inp, K,
                            w + (size_t)n0 * K, K, 0.0f, out + n0, N);
            }
            if (bias)
                for (int m = 0; m < M; m++) {
                    float *o = out + (size_t)m * N;
                    for (int n = n0; n < n1; n++) o[n] += bias[n];
                }
        }
    }
}

void mk_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, int M, int K, int N) {
    if (M <= 0 || N <= 0 || K <= 0) {
        if (dbias && M > 0 && N > 0) {
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) dbias[n] += dout[(size_t)m * N + n];
        }
        return;
    }
    mk_ops_init();
    int nt = team_size((double)M * K * N * ((dinp != NULL) + (dw != NULL)));
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int lo, hi;
        if (dinp) {
            /* dinp[:, k0:k1] (M, kk; ld K) += dout (M,N) @ w[:, k0:k1] (N, kk; ld K) */
            slice(K, t, T, &lo, &hi);
            if (hi > lo)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hi - lo, N, 1.0f,
                            dout, N, w + lo, K, 1.0f, dinp + lo, K);
        }
        slice(N, t, T, &lo, &hi);
        if (dw && hi > lo) {
            /* dw[n0:n1] (nn, K) += dout[:, n0:n1]^T (nn, M) @ inp (M, K) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, K, M, 1.0f,
                        dout + lo, N, inp, K, 1.0f, dw + (size_t)lo * K, K);
        }
        if (dbias)
            for (int n = lo; n < hi; n++) {
                double s = 0;
                for (int m = 0; m < M; m++) s += dout[(size_t)m * N + n];
                dbias[n] += (float)s;
            }
    }
}
