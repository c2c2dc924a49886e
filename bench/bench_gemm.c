/* bench_gemm.c - what the machine can do, and how close the kernels get:
 *   1. sgemm through OpenBLAS (its own threads) and through
 *      mk_matmul_forward (OpenMP slices, single-threaded BLAS) in GFLOP/s;
 *   2. memory bandwidth: parallel memcpy and a streaming read/sum, GB/s;
 *   3. mk_matmul_forward_dt per weight dtype: M = 1 as GB/s of weight bytes
 *      read (the bound is the streaming-read rate), M = 256 as GFLOP/s
 *      (the bound is sgemm).
 * Every figure is the median of REPS trials; a trial repeats the operation
 * until it has run at least MIN_TRIAL seconds. Weights for the M = 1
 * test are cycled through >= 256 MiB so they come from DRAM, not cache.
 * Threads: OMP_NUM_THREADS (OpenBLAS's own count is set to match for 1.).
 *
 * usage: bench_gemm [--quick]      (--quick: fewer shapes, for smoke tests) */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dtype.h"
#include "core/ops.h"

#define REPS 5
#define MIN_TRIAL 0.05
#define BIG (256u << 20) /* bytes of weights / buffers to defeat the caches */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*op_fn)(void *ctx, int iter);

/* median seconds per call of op */
static double time_op(op_fn op, void *ctx) {
    double t[REPS];
    int it = 0;
    op(ctx, it++); /* warm-up (page faults, thread start) */
    for (int r = 0; r < REPS; r++) {
        int calls = 0;
        double t0 = now(), el;
        do {
            op(ctx, it++);
            calls++;
            el = now() - t0;
        } while (el < MIN_TRIAL);
        t[r] = el / calls;
    }
    qsort(t, REPS, sizeof t[0], cmp_d);
    return t[REPS / 2];
}

static float *rnd(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

/* ---- 1. GEMM ---- */
typedef struct { float *a, *w, *c; int M, K, N; } gemm_ctx;

static void op_blas(void *p, int iter) {
    gemm_ctx *g = p;
    if (g->M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, g->N, g->K, 1.0f, g->w, g->K, g->a, 1, 0.0f,
                    g->c, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, g->N, g->K, 1.0f, g->a, g->K,
                    g->w, g->K, 0.0f, g->c, g->N);
}

static void op_mk(void *p, int iter) {
    gemm_ctx *g = p;
    mk_matmul_forward(g->c, g->a, g->w, NULL, g->M, g->K, g->N);
}

/* ---- 2. memory ---- */
typedef struct { char *src, *dst; size_t n; double sum; } mem_ctx;

static void op_memcpy(void *p, int iter) {
    mem_ctx *m = p;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        size_t lo = m->n * t / T, hi = m->n * (t + 1) / T;
        memcpy(m->dst + lo, m->src + lo, hi - lo);
    }
}

static void op_readsum(void *p, int iter) {
    mem_ctx *m = p;
    const float *x = (const float *)m->src;
    size_t n = m->n / sizeof(float);
    float s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += x[i];
    m->sum += s;
}

/* ---- 3. stored dtypes ---- */
typedef struct { void **w; int copies; mk_dtype wt; float *a, *c; int M, K, N; } dt_ctx;

static void op_dt(void *p, int iter) {
    dt_ctx *d = p;
    mk_matmul_forward_dt(d->c, d->a, d->w[iter % d->copies], d->wt, NULL, d->M, d->K, d->N);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int nt = mk_num_threads();
    printf("threads: %d (OMP_NUM_THREADS), OpenBLAS %s, core %s\n", nt, openblas_get_config(),
           openblas_get_corename());
    printf("each figure: median of %d trials of >= %.0f ms\n\n", REPS, MIN_TRIAL * 1e3);

    /* 1. GEMM: out (M,N) = A (M,K) @ W (N,K)^T */
    int Ms[4] = {1, 16, 256, 1024}, Ks[3] = {768, 2048, 4096};
    int nM = quick ? 2 : 4, nK = quick ? 1 : 3;
    printf("## sgemm, GFLOP/s (2*M*N*K / time), K = N\n\n");
    printf("| M | K=N | OpenBLAS (%d threads) | mk_matmul_forward |\n|---|---|---|---|\n", nt);
    for (int ki = 0; ki < nK; ki++)
        for (int mi = 0; mi < nM; mi++) {
            int M = Ms[mi], K = Ks[ki], N = K;
            gemm_ctx g = {rnd((size_t)M * K), rnd((size_t)N * K), rnd((size_t)M * N), M, K, N};
            double fl = 2.0 * M * N * K;
            openblas_set_num_threads(nt);
            double tb = time_op(op_blas, &g);
            openblas_set_num_threads(1); /* what mk_ops_init set; the kernels rely on it */
            double tm = time_op(op_mk, &g);
            printf("| %d | %d | %.1f | %.1f |\n", M, K, fl / tb * 1e-9, fl / tm * 1e-9);
            fflush(stdout);
            free(g.a), free(g.w), free(g.c);
        }

    /* 2. memory bandwidth */
    mem_ctx m = {malloc(BIG / 2), malloc(BIG / 2), BIG / 2, 0};
    if (!m.src || !m.dst) return 1;
    memset(m.src, 1, m.n);
    memset(m.dst, 2, m.n);
    double tc = time_op(op_memcpy, &m), tr = time_op(op_readsum, &m);
    double copy_gbs = m.n / tc * 1e-9, read_gbs = m.n / tr * 1e-9;
    printf("\n## memory, %zu MiB buffers, %d threads\n\n", m.n >> 20, nt);
    printf("| test | GB/s |\n|---|---|\n");
    printf("| memcpy (bytes copied / s; traffic is 2x) | %.1f |\n", copy_gbs);
    printf("| streaming read + sum (bytes read / s) | %.1f |\n", read_gbs);
    free(m.src), free(m.dst);

    /* 3. mk_matmul_forward_dt */
    int K = quick ? 1024 : 4096, N = K;
    mk_dtype types[5] = {MK_F32, MK_F16, MK_BF16, MK_Q8_0, MK_Q4_0};
    printf("\n## mk_matmul_forward_dt, K = N = %d\n\n", K);
    printf("| dtype | weight MiB | M=1 ms | M=1 GB/s of weights | vs read+sum | M=256 GFLOP/s | vs sgemm |\n");
    printf("|---|---|---|---|---|---|---|\n");
    double sg256 = 0;
    {
        gemm_ctx g = {rnd((size_t)256 * K), rnd((size_t)N * K), rnd((size_t)256 * N), 256, K, N};
        sg256 = 2.0 * 256 * N * K / time_op(op_mk, &g) * 1e-9;
        free(g.a), free(g.w), free(g.c);
    }
    for (int ti = 0; ti < 5; ti++) {
        mk_dtype wt = types[ti];
        size_t wb = mk_dtype_nbytes(wt, (uint64_t)N * K);
        int copies = (int)((BIG + wb - 1) / wb);
        if (quick) copies = 1;
        float *wf = rnd((size_t)N * K);
        dt_ctx d = {calloc((size_t)copies, sizeof(void *)), copies, wt, rnd((size_t)256 * K),
                    rnd((size_t)256 * N), 1, K, N};
        for (int c = 0; c < copies; c++) {
            d.w[c] = malloc(wb);
            if (!d.w[c]) return 1;
            mk_quantize(wt, wf, d.w[c], (size_t)N * K);
        }
        double t1 = time_op(op_dt, &d);
        d.M = 256;
        d.copies = 1;
        double t256 = time_op(op_dt, &d);
        double gf = 2.0 * 256 * N * K / t256 * 1e-9;
        printf("| %s | %.1f | %.3f | %.1f | %.0f%% | %.1f | %.0f%% |\n", mk_dtype_name(wt),
               wb / 1048576.0, t1 * 1e3, wb / t1 * 1e-9, 100.0 * wb / t1 * 1e-9 / read_gbs, gf,
               100.0 * gf / sg256);
        fflush(stdout);
        for (int c = 0; c < copies; c++) free(d.w[c]);
        free(d.w), free(d.a), free(d.c), free(wf);
    }
    return 0;
}
