/* bench_open.c - model-file open time against file size. The readers map
 * the file and validate only the header and tensor table, so opening a
 * 2 GB file should cost what opening a 2 MB one with the same number of
 * tensors costs. Files are written to a temporary folder (default /tmp,
 * or $TMPDIR), each with 64 F16 tensors, at several sizes; every open is
 * timed REPS times with a cold page cache for the header excluded (the
 * header pages are warm after the first open, as in real use).
 *
 * usage: bench_open [--max-mb N]   (largest file, default 2048) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "util/bench_util.h"

#define REPS 21
#define N_TENSORS 64

/* Write both formats with N_TENSORS tensors of `rows` x 1024 F16 each. */
static int write_files(const char *gg, const char *st, int64_t rows, float *buf) {
    mk_gguf_writer *w = mk_gguf_writer_new();
    mk_st_writer *s = mk_st_writer_new();
    int rc = (!w || !s) ? MK_ERR_NOMEM : MK_OK;
    int64_t shape[2] = {rows, 1024};
    rc = rc ? rc : mk_gguf_w_str(w, "general.architecture", "bench");
    for (int i = 0; i < N_TENSORS && !rc; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.weight", i);
        rc = mk_gguf_w_tensor(w, name, MK_F16, buf, 2, shape);
        if (!rc) rc = mk_st_w_tensor(s, name, MK_F16, buf, 2, shape);
    }
    if (!rc) rc = mk_gguf_w_write(w, gg);
    if (!rc) rc = mk_st_w_write(s, st);
    mk_gguf_writer_free(w);
    mk_st_writer_free(s);
    return rc;
}

typedef int (*open_fn)(const char *path);
static int open_gguf(const char *p) {
    mk_gguf *g;
    int rc = mk_gguf_open(p, &g);
    if (!rc) mk_gguf_close(g);
    return rc;
}
static int open_st(const char *p) {
    mk_st *s;
    int rc = mk_st_open(p, &s);
    if (!rc) mk_st_close(s);
    return rc;
}

static double median_open(open_fn fn, const char *path) {
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_now();
        if (fn(path)) {
            fprintf(stderr, "bench_open: %s\n", mk_errmsg());
            exit(1);
        }
        t[r] = bench_now() - t0;
    }
    qsort(t, REPS, sizeof t[0], bench_cmp_double);
    return t[REPS / 2];
}

int main(int argc, char **argv) {
    int64_t max_mb = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-mb") && i + 1 < argc) max_mb = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_open [--max-mb N]\n");
            return 2;
        }
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char gg[4096], st[4096];
    snprintf(gg, sizeof gg, "%s/mk_bench_open.gguf", tmp);
    snprintf(st, sizeof st, "%s/mk_bench_open.safetensors", tmp);
    printf("file size   tensors   GGUF open (median of %d)   safetensors open\n", REPS);
    for (int64_t mb = 2; mb <= max_mb; mb *= 8) {
        /* N_TENSORS * rows * 1024 * 2 bytes = mb MiB */
        int64_t rows = mb * (1 << 20) / (N_TENSORS * 1024 * 2);
        float *buf = calloc((size_t)rows * 1024, sizeof *buf);
        if (!buf) return 1;
        for (int64_t i = 0; i < rows * 1024; i++) buf[i] = (float)(i % 97) * 0.01f;
        if (write_files(gg, st, rows, buf)) {
            fprintf(stderr, "bench_open: %s\n", mk_errmsg());
            return 1;
        }
        free(buf);
        double tg = median_open(open_gguf, gg), ts = median_open(open_st, st);
        printf("%6lld MiB   %7d   %10.1f us              %10.1f us\n", (long long)mb, N_TENSORS,
               tg * 1e6, ts * 1e6);
        fflush(stdout);
    }
    unlink(gg);
    unlink(st);
    return 0;
}
