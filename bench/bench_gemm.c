/* bench_gemm.c - what the machine can do, and how close the kernels get:
 *   1. sgemm through OpenBLAS (its own threads) and through
 *      mk_matmul_forward (OpenMP slices, single-threaded BLAS) in GFLOP/s;
 *   2. memory bandwidth: parallel memcpy and a streaming read/sum, GB/s;
 *   3. mk_matmul_forward_dt per weight dtype: M = 1 as GB/s of weight bytes
 *      read (the bound is the streaming-read rate), M = 256 as GFLOP/s
 *      (the bound is sgemm).
 * Every figure is the median of REPS trials; a trial repeats the operation
 * until it has run at least MIN_TRIAL seconds. Operations that are compared
 * with each other run their trials interleaved (A B A B ...), so a noisy
 * neighbour on a shared machine slows both alike. Weights for the M = 1
 * test are cycled through >= 256 MiB so they come from DRAM, not cache.
 * Threads: OMP_NUM_THREADS. The kernels (OpenMP, single-threaded BLAS) are
 * measured first; OpenBLAS with its own threads last, because its idle
 * workers keep spinning for a while after a call and would steal the cores
 * from the OpenMP team.
 *
 * usage: bench_gemm [--quick]      (--quick: fewer shapes, for smoke tests) */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/dtype.h"
#include "core/ops.h"
#include "util/bench_util.h"

#define REPS 5
#define MIN_TRIAL 0.05
#define BIG (256u << 20) /* bytes of weights / buffers to defeat the caches */

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

typedef void (*op_fn)(void *ctx, int iter);

/* median (and, when best is not NULL, fastest) seconds per call of each
 * of n ops, trials interleaved */
static void time_ops(int n, op_fn *op, void **ctx, double *med, double *best) {
    double t[8][REPS];
    int it[8] = {0};
    for (int k = 0; k < n; k++) op[k](ctx[k], it[k]++); /* warm-up: page faults, threads */
    for (int r = 0; r < REPS; r++)
        for (int k = 0; k < n; k++) {
            int calls = 0;
            double t0 = bench_now(), el;
            do {
                op[k](ctx[k], it[k]++);
                calls++;
                el = bench_now() - t0;
            } while (el < MIN_TRIAL);
            t[k][r] = el / calls;
        }
    for (int k = 0; k < n; k++) {
        qsort(t[k], REPS, sizeof t[k][0], bench_cmp_double);
        med[k] = t[k][REPS / 2];
        if (best) best[k] = t[k][0];
    }
}

static double time_op(op_fn op, void *ctx, double *best) {
    double m;
    time_ops(1, &op, &ctx, &m, best);
    return m;
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
typedef struct { char *src, *dst; size_t n; double sum; } mem_ctx; /* sum: keeps the reads alive */

static void op_memcpy(void *p, int iter) {
    mem_ctx *m = p;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        size_t lo = m->n * t / T, hi = m->n * (t + 1) / T;
        memcpy(m->dst + lo, m->src + lo, hi - lo);
    }
}

/* sum with 32 independent lanes: a single float accumulator would be
 * bound by the add latency (~3 GB/s), not by memory */
typedef float v8f __attribute__((vector_size(32)));

static void op_readsum(void *p, int iter) {
    mem_ctx *m = p;
    size_t nv = m->n / sizeof(v8f) / 4 * 4;
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        size_t lo = nv * t / T / 4 * 4, hi = nv * (t + 1) / T / 4 * 4;
        v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v;
        for (size_t i = lo; i < hi; i += 4) {
            const char *q = m->src + i * sizeof(v8f);
            memcpy(&v, q, sizeof v), a0 += v;
            memcpy(&v, q + 32, sizeof v), a1 += v;
            memcpy(&v, q + 64, sizeof v), a2 += v;
            memcpy(&v, q + 96, sizeof v), a3 += v;
        }
        a0 += a1 + a2 + a3;
        for (int j = 0; j < 8; j++) total += a0[j];
    }
    m->sum += total;
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
    mk_ops_init(); /* OpenBLAS on one thread, as the kernels run it */
    printf("threads: %d (OMP_NUM_THREADS), %s, core %s\n", nt, openblas_get_config(),
           openblas_get_corename());
    printf("each figure: median of %d trials of >= %.0f ms\n", REPS, MIN_TRIAL * 1e3);
    double wall0 = bench_now(), cpu0 = cpu_seconds(), load0 = bench_loadavg();

    /* 1a. GEMM through the kernel: out (M,N) = A (M,K) @ W (N,K)^T */
    int Ms[4] = {1, 16, 256, 1024}, Ks[3] = {768, 2048, 4096};
    int nM = quick ? 2 : 4, nK = quick ? 1 : 3;
    double gf_mk[3][4], gf_blas[3][4], bf_mk[3][4], bf_blas[3][4], tb;
    for (int ki = 0; ki < nK; ki++)
        for (int mi = 0; mi < nM; mi++) {
            int M = Ms[mi], K = Ks[ki], N = K;
            gemm_ctx g = {rnd((size_t)M * K), rnd((size_t)N * K), rnd((size_t)M * N), M, K, N};
            gf_mk[ki][mi] = 2.0 * M * N * K / time_op(op_mk, &g, &tb) * 1e-9;
            bf_mk[ki][mi] = 2.0 * M * N * K / tb * 1e-9;
            free(g.a), free(g.w), free(g.c);
        }

    /* 2. memory bandwidth */
    mem_ctx m = {malloc(BIG / 2), malloc(BIG / 2), BIG / 2, 0};
    if (!m.src || !m.dst) return 1;
    memset(m.src, 1, m.n);
    memset(m.dst, 2, m.n);
    op_fn mops[2] = {op_memcpy, op_readsum};
    void *mctx[2] = {&m, &m};
    double mt[2], mb[2];
    time_ops(2, mops, mctx, mt, mb);
    double copy_gbs = m.n / mt[0] * 1e-9, read_gbs = m.n / mt[1] * 1e-9;

    /* 3. mk_matmul_forward_dt, each dtype interleaved with its baseline:
     * M = 1 with the streaming read, M = 256 with the f32 kernel */
    int K = quick ? 1024 : 4096, N = K;
    mk_dtype types[5] = {MK_F32, MK_F16, MK_BF16, MK_Q8_0, MK_Q4_0};
    double dt_ms[5], dt_gbs[5], dt_read[5], dt_gf[5], dt_sg[5], dt_mib[5], dt_bgbs[5], dt_bgf[5];
    gemm_ctx g256 = {rnd((size_t)256 * K), rnd((size_t)N * K), rnd((size_t)256 * N), 256, K, N};
    for (int ti = 0; ti < 5; ti++) {
        mk_dtype wt = types[ti];
        size_t wb = mk_dtype_nbytes(wt, (uint64_t)N * K);
        int copies = quick ? 1 : (int)((BIG + wb - 1) / wb);
        float *wf = rnd((size_t)N * K);
        dt_ctx d = {calloc((size_t)copies, sizeof(void *)), copies, wt, rnd((size_t)256 * K),
                    rnd((size_t)256 * N), 1, K, N};
        for (int c = 0; c < copies; c++) {
            d.w[c] = malloc(wb);
            if (!d.w[c]) return 1;
            mk_quantize(wt, wf, d.w[c], (size_t)N * K);
        }
        op_fn o1[2] = {op_dt, op_readsum};
        void *c1[2] = {&d, &m};
        double t1[2], b1[2];
        time_ops(2, o1, c1, t1, b1);
        dt_bgbs[ti] = wb / b1[0] * 1e-9;
        dt_ms[ti] = t1[0] * 1e3;
        dt_mib[ti] = wb / 1048576.0;
        dt_gbs[ti] = wb / t1[0] * 1e-9;
        dt_read[ti] = m.n / t1[1] * 1e-9;
        d.M = 256;
        d.copies = 1;
        op_fn o2[2] = {op_dt, op_mk};
        void *c2[2] = {&d, &g256};
        double t2[2], b2[2];
        time_ops(2, o2, c2, t2, b2);
        dt_bgf[ti] = 2.0 * 256 * N * K / b2[0] * 1e-9;
        dt_gf[ti] = 2.0 * 256 * N * K / t2[0] * 1e-9;
        dt_sg[ti] = 2.0 * 256 * N * K / t2[1] * 1e-9;
        for (int c = 0; c < copies; c++) free(d.w[c]);
        free(d.w), free(d.a), free(d.c), free(wf);
    }
    free(g256.a), free(g256.w), free(g256.c);
    free(m.src), free(m.dst);

    /* 1b. OpenBLAS with its own threads (last: see the header) */
    openblas_set_num_threads(nt);
    for (int ki = 0; ki < nK; ki++)
        for (int mi = 0; mi < nM; mi++) {
            int M = Ms[mi], K2 = Ks[ki], N2 = K2;
            gemm_ctx g = {rnd((size_t)M * K2), rnd((size_t)N2 * K2), rnd((size_t)M * N2), M, K2, N2};
            gf_blas[ki][mi] = 2.0 * M * N2 * K2 / time_op(op_blas, &g, &tb) * 1e-9;
            bf_blas[ki][mi] = 2.0 * M * N2 * K2 / tb * 1e-9;
            free(g.a), free(g.w), free(g.c);
        }
    openblas_set_num_threads(1);

    printf("\n## sgemm, GFLOP/s (2*M*N*K / time), K = N; median (best) of the trials\n\n");
    printf("| M | K=N | OpenBLAS alone (%d threads) | mk_matmul_forward (%d OpenMP x 1 BLAS) |\n", nt, nt);
    printf("|---|---|---|---|\n");
    for (int ki = 0; ki < nK; ki++)
        for (int mi = 0; mi < nM; mi++)
            printf("| %d | %d | %.1f (%.1f) | %.1f (%.1f) |\n", Ms[mi], Ks[ki], gf_blas[ki][mi],
                   bf_blas[ki][mi], gf_mk[ki][mi], bf_mk[ki][mi]);
    printf("\n## memory, %zu MiB buffers, %d threads\n\n", m.n >> 20, nt);
    printf("| test | GB/s median | best |\n|---|---|---|\n");
    printf("| memcpy (bytes copied / s; traffic is 2x) | %.1f | %.1f |\n", copy_gbs,
           m.n / mb[0] * 1e-9);
    printf("| streaming read + sum (bytes read / s) | %.1f | %.1f |\n", read_gbs,
           m.n / mb[1] * 1e-9);
    printf("\n## mk_matmul_forward_dt, K = N = %d\n\n", K);
    printf("M = 1: weights cycled through >= 256 MiB (from DRAM); 'read' is the streaming\n"
           "read+sum measured interleaved with it. M = 256: 'f32' is mk_matmul_forward on\n"
           "f32 weights measured interleaved with it.\n\n");
    printf("| dtype | weight MiB | M=1 ms | M=1 GB/s of weights (best) | read GB/s | ratio | M=256 GFLOP/s (best) | f32 GFLOP/s | ratio |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int ti = 0; ti < 5; ti++)
        printf("| %s | %.1f | %.3f | %.1f (%.1f) | %.1f | %.0f%% | %.1f (%.1f) | %.1f | %.0f%% |\n",
               mk_dtype_name(types[ti]), dt_mib[ti], dt_ms[ti], dt_gbs[ti], dt_bgbs[ti],
               dt_read[ti], 100.0 * dt_gbs[ti] / dt_read[ti], dt_gf[ti], dt_bgf[ti], dt_sg[ti],
               100.0 * dt_gf[ti] / dt_sg[ti]);
    double wall = bench_now() - wall0, cpu = cpu_seconds() - cpu0;
    printf("\nrun: %.0f s wall, %.0f s CPU (%.2f of %d cores on average); load average %.2f at "
           "start, %.2f at end\n", wall, cpu, cpu / wall, nt, load0, bench_loadavg());
    return 0;
}
