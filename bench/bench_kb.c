/* bench_kb.c - knowledge-base and retrieval speed.
 *
 *   bench_kb [--dir DIR] [--quick]
 *
 * 1. memory bandwidth (memcpy, and a read-only sum) of this machine, now;
 * 2. insert rate of batches of 1, 100 and 10000 edits (R = 1024 and 4096,
 *    T = 3, D = 4096), bytes stored per edit, the time to load the active
 *    edits back, and the open time against the file size;
 * 3. retrieval latency for one query and for a batch of 64 over 10k, 100k
 *    (R = 4096) and 1M (R = 1024) keys, against the time it takes merely
 *    to read the keys once at the measured memcpy bandwidth.
 * --quick shrinks everything (a smoke test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "core/error.h"
#include "editor/retrieve.h"
#include "store/kb.h"
#include "util/bench_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        x[i] = (float)(int32_t)(rng >> 32) * (1.0f / 2147483648.0f);
    }
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_kb: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static double file_size(const char *path) {
    struct stat sb;
    double s = 0;
    char wal[600];
    if (stat(path, &sb) == 0) s += (double)sb.st_size;
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &sb) == 0) s += (double)sb.st_size;
    return s;
}

/* GB/s of memcpy (bytes copied per second) and of a read-only pass. */
static double memcpy_gbs, read_gbs;
static void bandwidth(size_t bytes) {
    char *a = xmalloc(bytes), *b = xmalloc(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = bench_now();
        memcpy(b, a, bytes);
        t = bench_now() - t;
        if (t < best) best = t;
    }
    memcpy_gbs = (double)bytes / best / 1e9;
    /* read-only: sasum reads every float once (vectorized in OpenBLAS) */
    const float *f = (const float *)a;
    size_t n = bytes / sizeof(float);
    volatile float sink;
    best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = bench_now();
        sink = cblas_sasum((int)n, f, 1);
        t = bench_now() - t;
        if (t < best) best = t;
    }
    (void)sink;
    read_gbs = (double)bytes / best / 1e9;
    printf("memory bandwidth (%zu MB buffers): memcpy %.2f GB/s (bytes copied; twice that in traffic), read-only (sasum) %.2f GB/s\n",
           bytes >> 20, memcpy_gbs, read_gbs);
    free(a);
    free(b);
}

static mk_edit_request *make_reqs(int64_t n) {
    mk_edit_request *r = calloc((size_t)n, sizeof *r);
    for (int64_t i = 0; i < n; i++) {
        char p[96];
        snprintf(p, sizeof p, "Which drug is first-line for condition number %lld?", (long long)i);
        r[i].prompt = strdup(p);
        r[i].target_new = strdup("Some corrected answer");
        r[i].subject = strdup("Pharmacology");
    }
    return r;
}

static void insert_bench(const char *dir, int64_t R, int quick) {
    const int64_t T = 3, D = quick ? 256 : 4096;
    const int64_t sizes[3] = {1, 100, quick ? 1000 : 10000};
    const int reps[3] = {quick ? 3 : 10, quick ? 2 : 3, 1};
    char path[512];
    snprintf(path, sizeof path, "%s/bench_kb_R%lld.kb", dir, (long long)R);
    unlink(path);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s-wal", path);
    unlink(tmp);
    snprintf(tmp, sizeof tmp, "%s-shm", path);
    unlink(tmp);
    int64_t maxn = sizes[2];
    float *keys = xmalloc((size_t)(maxn * R) * 4), *prompts = xmalloc((size_t)(maxn * T * D) * 4);
    fill(keys, (size_t)(maxn * R));
    fill(prompts, (size_t)(maxn * T * D));
    mk_edit_request *reqs = make_reqs(maxn);
    mk_kb *kb;
    double t = bench_now();
    if (mk_kb_open(path, MK_KB_CREATE, &kb)) {
        fprintf(stderr, "bench_kb: %s\n", mk_errmsg());
        exit(1);
    }
    printf("\ninsert, R=%lld T=%lld D=%lld: %lld vector bytes per edit (key %lld + prompts %lld); create %.1f ms\n",
           (long long)R, (long long)T, (long long)D, (long long)((R + T * D) * 4), (long long)(R * 4),
           (long long)(T * D * 4), (bench_now() - t) * 1e3);
    mk_kb_vectors v = {"benchfp", R, T, D, keys, prompts};
    mk_kb_insert_args a = {.author = "bench", .reason = "benchmark", .vec = &v};
    for (int s = 0; s < 3; s++) {
        double best = 1e30, total = 0;
        for (int r = 0; r < reps[s]; r++) {
            t = bench_now();
            if (mk_kb_insert(kb, reqs, sizes[s], &a, NULL, NULL)) {
                fprintf(stderr, "bench_kb: %s\n", mk_errmsg());
                exit(1);
            }
            t = bench_now() - t;
            total += t;
            if (t < best) best = t;
        }
        double mean = total / reps[s];
        printf("  batch %6lld: %8.1f ms per batch (best of %d %.1f ms), %8.0f edits/s, %7.1f MB/s of vectors\n",
               (long long)sizes[s], mean * 1e3, reps[s], best * 1e3, (double)sizes[s] / mean,
               (double)sizes[s] * (double)((R + T * D) * 4) / mean / 1e6);
    }
    mk_kb_close(kb);
    /* Load the active edits back (what `medrek ask` does at start). */
    if (mk_kb_open(path, MK_KB_READONLY, &kb)) {
        fprintf(stderr, "bench_kb: %s\n", mk_errmsg());
        exit(1);
    }
    mk_kb_active act;
    t = bench_now();
    if (mk_kb_load_active(kb, "benchfp", R, T, D, 1, &act)) {
        fprintf(stderr, "bench_kb: %s\n", mk_errmsg());
        exit(1);
    }
    t = bench_now() - t;
    double vb = (double)act.n * (double)((R + T * D) * 4);
    printf("  load_active: %lld edits, %.0f MB of vectors in %.1f ms (%.2f GB/s; page cache warm)\n",
           (long long)act.n, vb / 1e6, t * 1e3, vb / t / 1e9);
    mk_kb_active_free(&act);
    mk_kb_close(kb);
    mk_edit_requests_free(reqs, maxn);
    free(keys);
    free(prompts);
}

/* Open (+ first query) time against file size. */
static void open_bench(const char *dir, int64_t R) {
    char path[512];
    snprintf(path, sizeof path, "%s/bench_kb_R%lld.kb", dir, (long long)R);
    const int reps = 20;
    mk_kb *kb;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        if (mk_kb_open(path, 0, &kb)) {
            fprintf(stderr, "bench_kb: %s\n", mk_errmsg());
            exit(1);
        }
        mk_kb_close(kb);
        t = bench_now() - t;
        if (t < best) best = t;
    }
    printf("  open+close of a %.0f MB knowledge base: %.2f ms (best of %d)\n", file_size(path) / 1e6,
           best * 1e3, reps);
}

static void open_small(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/bench_kb_small.kb", dir);
    unlink(path);
    mk_kb *kb;
    if (mk_kb_open(path, MK_KB_CREATE, &kb)) exit(1);
    mk_kb_close(kb);
    double best = 1e30;
    for (int r = 0; r < 20; r++) {
        double t = bench_now();
        if (mk_kb_open(path, 0, &kb)) exit(1);
        mk_kb_close(kb);
        t = bench_now() - t;
        if (t < best) best = t;
    }
    printf("\nopen+close of an empty knowledge base (%.0f KB): %.2f ms (best of 20)\n",
           file_size(path) / 1e3, best * 1e3);
    unlink(path);
}

static void retrieval_bench(int64_t N, int64_t R) {
    size_t kbytes = (size_t)(N + 1) * (size_t)R * sizeof(float);
    float *keys = xmalloc(kbytes);
    fill(keys, (size_t)(N + 1) * (size_t)R);
    const int64_t B = 64;
    float *q = xmalloc((size_t)(B * R) * sizeof(float));
    fill(q, (size_t)(B * R));
    mk_retr_kb kb = {N + 1, R, 0, 0, keys, NULL, NULL};
    mk_retr_opts o = {1, -999.0f, 0};
    mk_retr_result res;
    double bound = (double)kbytes / (memcpy_gbs * 1e9);
    for (int bi = 0; bi < 2; bi++) {
        int64_t b = bi ? B : 1;
        int reps = N >= 1000000 ? 3 : N >= 100000 ? 5 : 20;
        double best = 1e30, total = 0;
        for (int r = 0; r < reps + 1; r++) {
            double t = bench_now();
            if (mk_retrieve(&kb, q, b, &o, &res)) {
                fprintf(stderr, "bench_kb: %s\n", mk_errmsg());
                exit(1);
            }
            t = bench_now() - t;
            mk_retr_result_free(&res);
            if (r == 0) continue; /* warm-up */
            total += t;
            if (t < best) best = t;
        }
        double mean = total / reps;
        printf("  N=%8lld R=%4lld keys %6.0f MB, batch %2lld: %8.2f ms (best %8.2f), %8.3f ms/query, "
               "keys read at %5.1f GB/s; bound (key bytes / memcpy rate) %7.2f ms -> best is %.2fx it; %.1f GFLOP/s\n",
               (long long)N, (long long)R, (double)kbytes / 1e6, (long long)b, mean * 1e3, best * 1e3,
               mean * 1e3 / (double)b, (double)kbytes / best / 1e9, bound * 1e3, best / bound,
               2.0 * (double)b * (double)(N + 1) * (double)R / best / 1e9);
    }
    free(keys);
    free(q);
}

int main(int argc, char **argv) {
    const char *dir = "/tmp";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kb [--dir DIR] [--quick]\n");
            return 2;
        }
    }
    bandwidth(quick ? ((size_t)64 << 20) : ((size_t)512 << 20));
    open_small(dir);
    insert_bench(dir, 1024, quick);
    open_bench(dir, 1024);
    if (!quick) {
        insert_bench(dir, 4096, quick);
        open_bench(dir, 4096);
    }
    printf("\nretrieval (top_k=1, one GEMM per chunk of rows)\n");
    if (quick) {
        retrieval_bench(10000, 256);
    } else {
        retrieval_bench(10000, 4096);
        retrieval_bench(100000, 4096);
        retrieval_bench(1000000, 1024);
    }
    for (int r = 0; r < 2; r++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bench_kb_R%d.kb", dir, r ? 4096 : 1024);
        unlink(path);
    }
    return 0;
}
