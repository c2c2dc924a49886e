/* bench_llama.c - speed of the Llama engine on random-weight models written
 * to /tmp with the project's GGUF writer (never into the repository):
 *
 *   prefill   tokens/s and GFLOP/s of mk_llama_decode on T prompt tokens,
 *             against the sgemm rate of the same matmul shapes (F32 weights
 *             in RAM through mk_matmul_forward: OpenBLAS sgemm on OpenMP
 *             slices) measured in the same run. Goal >= 60% from T = 256.
 *   decode    tokens/s of one-token steps, as GB/s of weight bytes read per
 *             token, against a parallel memcpy (bytes copied / s) and a
 *             streaming read measured in the same run. Goal >= 60%.
 *   backward  mk_llama_backward to the prefixes only (no weight gradients)
 *             over mk_llama_forward (activations kept). Goal <= 2.5.
 *   peak RSS  of the process that opened and ran the model (the weights are
 *             mapped, so their resident pages count).
 *
 * Each model runs in a child process (its own peak RSS); the file is
 * written by another child first. Threads: OMP_NUM_THREADS.
 *
 * usage: bench_llama [--models tiny,125m,1b] [--dtypes f32,q8_0] [--tmp DIR]
 *                    [--decode N] [--keep]
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ops.h"
#include "io/gguf.h"
#include "model/llama.h"
#include "util/bench_util.h"

typedef struct {
    const char *name;
    int V, D, NL, NH, NKV, F;
    int prefill[3]; /* prompt lengths to time (0 = none) */
    int bwd_B, bwd_L, bwd_P; /* backward batch: B sequences of L tokens + P prefix */
} bcfg;

static const bcfg CFGS[] = {
    {"tiny", 512, 64, 2, 4, 2, 160, {64, 256, 512}, 4, 64, 8},
    {"125m", 32000, 768, 12, 12, 12, 2048, {64, 256, 512}, 4, 64, 8},
    {"1b", 32000, 2048, 16, 32, 8, 8192, {64, 256, 0}, 2, 56, 8},
};

static uint64_t rng_state = 88172645463325252ull;
static float randn_ish(void) { /* sum of 4 uniforms, scaled: cheap, roughly normal */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        s += (float)(rng_state >> 40) * (1.0f / 16777216.0f) - 0.5f;
    }
    return s * 1.7320508f; /* var of sum = 4/12 -> scale to 1 */
}

static int write_model(const bcfg *c, mk_dtype dt, const char *path) {
    mk_gguf_writer *w = mk_gguf_writer_new();
    int rc = 0;
    int HS = c->D / c->NH;
    rc |= mk_gguf_w_str(w, "general.architecture", "llama");
    rc |= mk_gguf_w_u32(w, "llama.context_length", 2048);
    rc |= mk_gguf_w_u32(w, "llama.embedding_length", (uint32_t)c->D);
    rc |= mk_gguf_w_u32(w, "llama.block_count", (uint32_t)c->NL);
    rc |= mk_gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)c->F);
    rc |= mk_gguf_w_u32(w, "llama.attention.head_count", (uint32_t)c->NH);
    rc |= mk_gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)c->NKV);
    rc |= mk_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= mk_gguf_w_f32(w, "llama.rope.freq_base", 10000.0f);
    rc |= mk_gguf_w_u32(w, "llama.vocab_size", (uint32_t)c->V);
    size_t big = (size_t)c->V * c->D > (size_t)c->F * c->D ? (size_t)c->V * c->D : (size_t)c->F * c->D;
    float *buf = malloc(big * sizeof(float));
    if (!buf || rc) goto fail;
    struct { const char *fmt; int64_t r, k; } mats[] = {
        {"blk.%d.attn_q.weight", (int64_t)c->NH * HS, c->D},
        {"blk.%d.attn_k.weight", (int64_t)c->NKV * HS, c->D},
        {"blk.%d.attn_v.weight", (int64_t)c->NKV * HS, c->D},
        {"blk.%d.attn_output.weight", c->D, (int64_t)c->NH * HS},
        {"blk.%d.ffn_gate.weight", c->F, c->D},
        {"blk.%d.ffn_up.weight", c->F, c->D},
        {"blk.%d.ffn_down.weight", c->D, c->F},
    };
    char nm[96];
    int64_t sh[2] = {c->V, c->D};
    for (size_t i = 0; i < (size_t)c->V * c->D; i++) buf[i] = randn_ish();
    if ((rc = mk_gguf_w_tensor(w, "token_embd.weight", dt, buf, 2, sh))) goto fail;
    for (size_t i = 0; i < (size_t)c->V * c->D; i++) buf[i] = 0.02f * randn_ish();
    if ((rc = mk_gguf_w_tensor(w, "output.weight", dt, buf, 2, sh))) goto fail;
    int64_t shn[1] = {c->D};
    for (int i = 0; i < c->D; i++) buf[i] = 1.0f;
    if ((rc = mk_gguf_w_tensor(w, "output_norm.weight", MK_F32, buf, 1, shn))) goto fail;
    for (int l = 0; l < c->NL; l++) {
        for (int i = 0; i < c->D; i++) buf[i] = 1.0f;
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if ((rc = mk_gguf_w_tensor(w, nm, MK_F32, buf, 1, shn))) goto fail;
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if ((rc = mk_gguf_w_tensor(w, nm, MK_F32, buf, 1, shn))) goto fail;
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
            int64_t s2[2] = {mats[k].r, mats[k].k};
            float sd = 1.0f / sqrtf((float)mats[k].k);
            for (size_t i = 0; i < (size_t)(mats[k].r * mats[k].k); i++) buf[i] = sd * randn_ish();
            snprintf(nm, sizeof nm, mats[k].fmt, l);
            if ((rc = mk_gguf_w_tensor(w, nm, dt, buf, 2, s2))) goto fail;
        }
    }
    rc = mk_gguf_w_write(w, path);
fail:
    if (rc) fprintf(stderr, "writing %s: %s\n", path, mk_errmsg());
    free(buf);
    mk_gguf_writer_free(w);
    return rc ? 1 : 0;
}

/* Linear-layer FLOPs of T rows (all layers + output projection of `logit_rows`). */
static double linear_flops(const bcfg *c, double T, double logit_rows) {
    int HS = c->D / c->NH;
    double per = (double)c->D * (c->NH * HS) * 2 + (double)c->D * (c->NKV * HS) * 2 +
                 3.0 * c->D * c->F;
    return 2.0 * T * per * c->NL + 2.0 * logit_rows * c->D * c->V;
}

/* Attention FLOPs as executed (QK^T and AV over all Tk keys, T queries). */
static double attn_flops(const bcfg *c, double T, double Tk) {
    return 4.0 * T * Tk * c->D * c->NL;
}

/* sgemm time for the linear layers of T rows with F32 weights in RAM. */
static double sgemm_time(const bcfg *c, int T, int reps) {
    int HS = c->D / c->NH;
    struct { int K, N, cnt; } sh[] = {
        {c->D, c->NH * HS, 2}, {c->D, c->NKV * HS, 2}, {c->D, c->F, 2}, {c->F, c->D, 1}};
    double best_total = 0;
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        size_t wn = (size_t)sh[s].K * sh[s].N;
        float *w = malloc(wn * sizeof(float)), *in = malloc((size_t)T * sh[s].K * sizeof(float)),
              *out = malloc((size_t)T * sh[s].N * sizeof(float));
        for (size_t i = 0; i < wn; i++) w[i] = 0.01f * randn_ish();
        for (size_t i = 0; i < (size_t)T * sh[s].K; i++) in[i] = randn_ish();
        mk_matmul_forward(out, in, w, NULL, T, sh[s].K, sh[s].N);
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now();
            mk_matmul_forward(out, in, w, NULL, T, sh[s].K, sh[s].N);
            double dt = bench_now() - t0;
            if (dt < best) best = dt;
        }
        best_total += best * sh[s].cnt * c->NL;
        free(w);
        free(in);
        free(out);
    }
    /* output projection of the last row only (what decode computes) */
    return best_total;
}

typedef struct {
    char *src, *dst;
    size_t n;
} mem_ctx;

static double memcpy_gbs(size_t n, int reps, double *read_gbs) {
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30, bestr = 1e30;
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
#pragma omp parallel
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            size_t lo = n * t / T, hi = n * (t + 1) / T;
            memcpy(b + lo, a + lo, hi - lo);
        }
        double dt = bench_now() - t0;
        if (dt < best) best = dt;
        t0 = bench_now();
        float total = 0;
        size_t nf = n / sizeof(float) / 8 * 8;
        const float *f = (const float *)a;
#pragma omp parallel for reduction(+ : total) schedule(static)
        for (size_t i = 0; i < nf; i += 8) {
            float s = 0;
            for (int j = 0; j < 8; j++) s += f[i + j];
            total += s;
        }
        sink += total;
        dt = bench_now() - t0;
        if (dt < bestr) bestr = dt;
    }
    (void)sink;
    free(a);
    free(b);
    *read_gbs = n / bestr / 1e9;
    return n / best / 1e9;
}

static long peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static int run_model(const bcfg *c, const char *dtname, const char *path, int n_decode,
                     double mc_gbs, double rd_gbs) {
    mk_llama *m = NULL;
    double t0 = bench_now();
    if (mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, &m)) {
        fprintf(stderr, "open %s: %s\n", path, mk_errmsg());
        return 1;
    }
    const mk_llama_config *cf = mk_llama_cfg(m);
    double t_open = bench_now() - t0;
    size_t wb = mk_llama_weight_bytes(m);
    /* weights read per decoded token: every matrix but the embedding table
     * (one row of it) */
    size_t emb_b = (size_t)cf->n_vocab * cf->dim * (cf->wtype == MK_F32 ? 4 : 34.0 / 32);
    double per_tok = (double)(wb - emb_b);
    printf("\n## %s %s: V=%d D=%d layers=%d heads=%d/%d ffn=%d, %.1f M params, %.1f MB weights "
           "(open %.2f s)\n", c->name, dtname, cf->n_vocab, cf->dim, cf->n_layers, cf->n_heads,
           cf->n_kv_heads, cf->ffn_dim, (double)cf->n_vocab * cf->dim * 2 / 1e6 +
           linear_flops(c, 1, 0) / 2 / 1e6, wb / 1e6, t_open);
    fflush(stdout);
    int32_t *ids = malloc(4096 * sizeof(int32_t));
    for (int i = 0; i < 4096; i++) ids[i] = (int32_t)((i * 2654435761u) % (unsigned)cf->n_vocab);
    float *logits = malloc((size_t)cf->n_vocab * sizeof(float));
    /* prefill */
    for (int k = 0; k < 3 && c->prefill[k]; k++) {
        int T = c->prefill[k];
        int reps = c->D >= 2048 ? 1 : 3;
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) { /* first run warms the pages */
            mk_llama_kv *kv = NULL;
            mk_llama_kv_new(m, T + 8, &kv);
            double s = bench_now();
            if (mk_llama_decode(m, kv, NULL, 0, ids, T, logits)) fprintf(stderr, "%s\n", mk_errmsg());
            double dt = bench_now() - s;
            if (r > 0 && dt < best) best = dt;
            mk_llama_kv_free(kv);
        }
        /* achieved rate counts the linear layers' FLOPs only, over the
         * whole prefill time (attention, norms, RoPE and the output row
         * included): conservative */
        double fl = linear_flops(c, T, 0);
        double sg = sgemm_time(c, T, reps + 1);
        double sg_rate = fl / sg / 1e9;
        double rate = fl / best / 1e9;
        printf("prefill T=%4d: %8.1f tokens/s  %7.1f GFLOP/s  (sgemm on the same shapes %.1f "
               "GFLOP/s: %3.0f%%; attention adds %.1f%% FLOPs)\n", T, T / best, rate, sg_rate,
               100 * rate / sg_rate, 100 * attn_flops(c, T, T) / fl);
        fflush(stdout);
    }
    /* decode */
    {
        mk_llama_kv *kv = NULL;
        mk_llama_kv_new(m, 64 + n_decode + 1, &kv);
        mk_llama_decode(m, kv, NULL, 0, ids, 64, logits);
        int32_t tok = 1;
        mk_llama_decode(m, kv, NULL, 0, &tok, 1, logits); /* warm */
        double s = bench_now();
        for (int i = 0; i < n_decode; i++) {
            tok = (int32_t)((tok * 7 + i) % cf->n_vocab);
            mk_llama_decode(m, kv, NULL, 0, &tok, 1, logits);
        }
        double dt = (bench_now() - s) / n_decode;
        double gbs = per_tok / dt / 1e9;
        printf("decode (after 64): %8.2f tokens/s  %6.2f GB/s of weights  (memcpy %.2f GB/s: "
               "%3.0f%%; streaming read %.2f GB/s: %3.0f%%)\n", 1 / dt, gbs, mc_gbs,
               100 * gbs / mc_gbs, rd_gbs, 100 * gbs / rd_gbs);
        fflush(stdout);
        mk_llama_kv_free(kv);
    }
    /* backward to the prefixes */
    {
        int B = c->bwd_B, L = c->bwd_L, P = c->bwd_P, D = cf->dim;
        mk_llama_seq seqs[8];
        float *pre = malloc((size_t)B * P * D * sizeof(float));
        float *dpre = calloc((size_t)B * P * D, sizeof(float));
        float *dps[8];
        for (size_t i = 0; i < (size_t)B * P * D; i++) pre[i] = 0.02f * randn_ish();
        for (int b = 0; b < B; b++) {
            seqs[b] = (mk_llama_seq){ids + b * L, L, pre + (size_t)b * P * D, P};
            dps[b] = dpre + (size_t)b * P * D;
        }
        size_t nl = (size_t)B * L * cf->n_vocab;
        float *lg = malloc(nl * sizeof(float)), *dl = malloc(nl * sizeof(float));
        for (size_t i = 0; i < nl; i++) dl[i] = 1e-4f * randn_ish();
        double tf = 1e30, tb = 1e30, tfn = 1e30;
        int reps = c->D >= 2048 ? 1 : 3;
        for (int r = 0; r < reps; r++) {
            mk_llama_acts *acts = NULL;
            double s = bench_now();
            if (mk_llama_forward(m, seqs, B, lg, NULL)) fprintf(stderr, "%s\n", mk_errmsg());
            double d0 = bench_now() - s;
            s = bench_now();
            if (mk_llama_forward(m, seqs, B, lg, &acts)) fprintf(stderr, "%s\n", mk_errmsg());
            double d1 = bench_now() - s;
            s = bench_now();
            if (mk_llama_backward(m, acts, dl, dps, NULL)) fprintf(stderr, "%s\n", mk_errmsg());
            double d2 = bench_now() - s;
            mk_llama_acts_free(acts);
            if (d0 < tfn) tfn = d0;
            if (d1 < tf) tf = d1;
            if (d2 < tb) tb = d2;
        }
        printf("train step, %d x (%d prefix + %d tokens): forward %.3f s (no activations kept "
               "%.3f s), backward to prefixes %.3f s: backward/forward = %.2f\n", B, P, L, tf, tfn,
               tb, tb / tf);
        free(pre);
        free(dpre);
        free(lg);
        free(dl);
    }
    printf("peak RSS %ld MB (weights mapped: %.0f MB)\n", peak_rss_mb(), wb / 1e6);
    fflush(stdout);
    free(ids);
    free(logits);
    mk_llama_close(m);
    return 0;
}

int main(int argc, char **argv) {
    const char *models = "tiny,125m,1b", *dtypes = "f32,q8_0", *tmp = "/tmp";
    int n_decode = 16, keep = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
        else if (!strcmp(argv[i], "--dtypes") && i + 1 < argc) dtypes = argv[++i];
        else if (!strcmp(argv[i], "--tmp") && i + 1 < argc) tmp = argv[++i];
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) n_decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else {
            fprintf(stderr, "usage: bench_llama [--models tiny,125m,1b] [--dtypes f32,q8_0] "
                    "[--tmp DIR] [--decode N] [--keep]\n");
            return 2;
        }
    }
    if (n_decode < 1) n_decode = 1;
    /* the parent never runs OpenMP: libgomp does not survive fork() */
    printf("# bench_llama: OMP_NUM_THREADS=%s, load average %.2f at start\n",
           getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(unset)", bench_loadavg());
    fflush(stdout);
    for (size_t k = 0; k < sizeof CFGS / sizeof CFGS[0]; k++) {
        const bcfg *c = &CFGS[k];
        if (!strstr(models, c->name)) continue;
        for (int d = 0; d < 2; d++) {
            const char *dn = d ? "q8_0" : "f32";
            if (!strstr(dtypes, dn)) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/mk_bench_llama_%s_%s.gguf", tmp, c->name, dn);
            double t0 = bench_now();
            pid_t pid = fork();
            if (pid == 0) _exit(access(path, R_OK) == 0 && keep ? 0 : write_model(c, d ? MK_Q8_0 : MK_F32, path));
            int st = 0;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                fprintf(stderr, "could not write %s\n", path);
                continue;
            }
            printf("(wrote %s in %.1f s)\n", path, bench_now() - t0);
            fflush(stdout);
            /* memory bandwidth, in its own child (its buffers must not count
             * in the model's peak RSS), right before the model runs */
            double bw[2] = {0, 0};
            int fd[2];
            if (pipe(fd) == 0) {
                pid = fork();
                if (pid == 0) {
                    bw[0] = memcpy_gbs((size_t)512 << 20, 5, &bw[1]);
                    _exit(write(fd[1], bw, sizeof bw) == sizeof bw ? 0 : 1);
                }
                waitpid(pid, &st, 0);
                if (read(fd[0], bw, sizeof bw) != sizeof bw) bw[0] = bw[1] = NAN;
                close(fd[0]);
                close(fd[1]);
            }
            printf("memcpy %.2f GB/s (bytes copied per second), streaming read %.2f GB/s (512 MiB)\n",
                   bw[0], bw[1]);
            fflush(stdout);
            pid = fork();
            if (pid == 0) _exit(run_model(c, dn, path, n_decode, bw[0], bw[1]));
            waitpid(pid, &st, 0);
            if (!keep) unlink(path);
        }
    }
    printf("\nload average %.2f at the end\n", bench_loadavg());
    return 0;
}
