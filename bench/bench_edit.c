/* bench_edit.c - batch-edit throughput: what `medrek edit` costs per batch.
 *
 *   bench_edit [--quick] [--data FILE] [--gpt2 DIR] [--batches 1,10,100,1000]
 *              [--reps N] [--keep] [--no-gemm] [--no-sort]
 *
 * 1. Writes (into a fresh /tmp/bench_edit.XXXXXX, removed at the end unless
 *    --keep) a RoBERTa-base-sized encoder with random weights as a Hugging
 *    Face directory: config.json, model.safetensors (through the project's
 *    writer), vocab.json + merges.txt. The vocabulary is GPT-2's byte-level
 *    BPE (--gpt2 DIR, default tests/data/tok/gpt2) laid out as RoBERTa's:
 *    <s> <pad> </s> <unk> at ids 0..3, GPT-2's entries from 4, <mask> last;
 *    vocab_size 50265 as roberta-base. Without the GPT-2 files, a vocabulary
 *    of the 256 byte symbols and no merges (one token per byte: longer
 *    sequences than real RoBERTa, said in the output).
 * 2. mk_editor_init around it: R = D = 4096, T = 3, NH = 8, P = 10, "attn".
 * 3. For batches of 1, 10, 100, 1000 edit requests (MedVersa test prompts
 *    and targets from --data, default ../shared/datasets/medversa/test.json,
 *    else generated medical sentences), encodes them as
 *    mk_session_encode does: chunks of ENCODE_CHUNK requests, each
 *    mk_editor_keys + mk_editor_values + mk_editor_prompts (each phase timed),
 *    then mk_kb_insert of the batch with its vectors into a knowledge base
 *    in the temp dir (timed apart). Medians over repeats (fewer for large
 *    batches); every repeat takes other requests.
 * 4. FLOPs of the encode, counted analytically from the real token counts
 *    (account_texts, penc_flops), as achieved GFLOP/s, next to the GEMM rate
 *    measured IN THE SAME RUN with mk_matmul_forward (the kernel every
 *    layer uses) on exactly the matmul shapes the encode runs for that batch
 *    (M from the actual chunking and padding, flop-weighted; weights cycled
 *    through 200 MB so they come from DRAM as in the real pass), in short
 *    trials after every encode chunk so that the GEMM rate and the encode
 *    see the same load on a shared machine: the GEMM-only time
 *    t_gemm = sum over shapes of flops / rate, the "GEMM rate" =
 *    GEMM flops / t_gemm, and the ratio achieved / GEMM rate.
 *
 * Threads: OMP_NUM_THREADS (the kernels' OpenMP team). --quick: a tiny
 * encoder and editor and batches 1, 10 (a smoke test, seconds). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ops.h"
#include "editor/editor.h"
#include "io/safetensors.h"
#include "model/roberta.h"
#include "store/kb.h"
#include "text/tokenizer.h"
#include "util/bench_roberta.h"
#include "util/bench_util.h"

/* Copies of the chunk sizes of the code measured (for FLOP and shape
 * accounting only; the timed path calls the library): */
#define ENCODE_CHUNK 64    /* src/store/session.c: requests per editor call */
#define CHUNK_SENTENCES 32 /* src/editor/editor.c: sentences per encoder forward */
#define CHUNK_TOKENS 4096  /* src/editor/editor.c: padded tokens per encoder forward */
#define CHUNK_VALUES 256   /* src/editor/editor.c: values per prompt-encoder forward */

#define MAX_BATCHES 8
#define MAX_SHAPES 16

static double cpu_of(const struct rusage *u) {
    return u->ru_utime.tv_sec + u->ru_utime.tv_usec * 1e-6 + u->ru_stime.tv_sec +
           u->ru_stime.tv_usec * 1e-6;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

/* ---- 1. the encoder directory ---- */

/* ---- 2. edit requests ---- */

typedef struct {
    int n;
    char **prompt, **target;
} reqset;

static void gen_requests(reqset *rs, int n) {
    static const char *q[] = {"What is the first-line treatment for", "Which drug is contraindicated in",
                              "What is the most common cause of", "Which enzyme is deficient in",
                              "What imaging study is preferred to diagnose", "Which nerve is injured in"};
    static const char *d[] = {"acute angle-closure glaucoma", "community-acquired pneumonia in adults",
                              "hereditary fructose intolerance", "a supracondylar fracture of the humerus",
                              "pregnancy-induced hypertension", "chronic myeloid leukemia"};
    static const char *t[] = {"Acetazolamide", "Amoxicillin", "Aldolase B", "Median nerve",
                              "Magnetic resonance imaging", "Imatinib"};
    rs->n = n;
    rs->prompt = bench_xmalloc((size_t)n * sizeof(char *));
    rs->target = bench_xmalloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s %s?", q[i % 6], d[(i / 6) % 6]);
        rs->prompt[i] = strdup(buf);
        rs->target[i] = strdup(t[(i / 36 + i) % 6]);
    }
}

static const char *load_requests(reqset *rs, const char *path, int need) {
    mk_edit_request *r = NULL;
    int64_t n = 0;
    if (path && access(path, R_OK) == 0 && !mk_edit_requests_parse_file(path, &r, &n) && n > 0) {
        rs->n = need > n ? need : (int)n;
        rs->prompt = bench_xmalloc((size_t)rs->n * sizeof(char *));
        rs->target = bench_xmalloc((size_t)rs->n * sizeof(char *));
        for (int i = 0; i < rs->n; i++) { /* cycle when the file is short */
            rs->prompt[i] = strdup(r[i % n].prompt);
            rs->target[i] = strdup(r[i % n].target_new);
        }
        mk_edit_requests_free(r, n);
        return path;
    }
    gen_requests(rs, need);
    return "generated sentences";
}

/* ---- 3. FLOP and shape accounting ---- */

typedef struct {
    int M, K, N;
    double flops; /* total flops of this shape class in the batch */
    double rate;  /* measured GFLOP/s of mk_matmul_forward at this shape */
    double f_meas, t_meas; /* flops and seconds of its GEMM trials so far */
} shape;

typedef struct {
    /* tokens */
    double tok_real, tok_pad;  /* keys + values sentences */
    double tok_sorted;         /* padded tokens if each call sorted its sentences by
                                  length before cutting chunks (a possible fix) */
    double sent;               /* sentences (2 per request) */
    /* flops (real tokens: the work a perfect unpadded kernel does) */
    double enc_lin, enc_att, heads, penc;
    /* flops executed (padded tokens) */
    double enc_lin_pad, enc_att_pad;
    /* shapes: M weighted by flops */
    double m_tok_w, m_sent_w, w_tok, w_sent; /* encoder M (tokens/forward), head M */
    int n_fwd;
    double t_tok; /* seconds of tokenisation alone */
} account;

/* encoder per forward of n sentences padded to L: linear 2 n L (4 H^2 + 2 H I)
 * + pooler 2 n H^2; attention 2 * 2 n L^2 H (scores and weighted sum) */
static void account_texts(account *a, const mk_editor *ed, const char *const *texts, int n) {
    const mk_enc_config *c = &ed->enc_cfg;
    double H = c->hidden, I = c->inter, NL = c->n_layers;
    double F = ed->F, R = ed->cfg.R;
    double lin_tok = NL * 2.0 * (4 * H * H + 2 * H * I);
    int *len = bench_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *len), nl = 0;
    for (int s = 0; s < n; s += CHUNK_SENTENCES) {
        int m = n - s < CHUNK_SENTENCES ? n - s : CHUNK_SENTENCES, L;
        int32_t *ids;
        float *mask;
        double t0 = bench_now();
        if (mk_enc_tokenize_with(c, ed->tok, texts + s, m, &ids, &mask, &L)) bench_die("tokenize");
        a->t_tok += bench_now() - t0;
        int rows = CHUNK_TOKENS / L > 0 ? CHUNK_TOKENS / L : 1;
        for (int i0 = 0; i0 < m; i0 += rows) {
            int k = m - i0 < rows ? m - i0 : rows;
            for (int i = i0; i < i0 + k; i++) {
                double Li = 0;
                for (int t = 0; t < L; t++) Li += mask[(size_t)i * L + t] != 0;
                len[nl++] = (int)Li;
                a->tok_real += Li;
                a->enc_lin += Li * lin_tok + 2 * H * H;
                a->enc_att += NL * 4.0 * Li * Li * H;
                a->tok_pad += L;
                a->enc_lin_pad += L * lin_tok + 2 * H * H;
                a->enc_att_pad += NL * 4.0 * L * L * H;
            }
            double mt = (double)k * L, f = mt * lin_tok;
            a->m_tok_w += mt * f;
            a->w_tok += f;
            a->m_sent_w += (double)k * k;
            a->w_sent += k;
            a->n_fwd++;
            /* heads: 2 (F R + R R) per sentence */
            a->heads += k * 2.0 * (F * R + R * R);
        }
        a->sent += m;
        free(ids);
        free(mask);
    }
    qsort(len, (size_t)nl, sizeof *len, cmp_int);
    for (int i = 0; i < nl; i += CHUNK_SENTENCES) {
        int e = i + CHUNK_SENTENCES < nl ? i + CHUNK_SENTENCES : nl;
        a->tok_sorted += (double)(e - i) * len[e - 1];
    }
    free(len);
}

/* prompt encoder "attn" per value: query_proj 2 R T D, key/value_proj
 * 2 * 2 R D, MHA in-projections 2 (T + 2) D^2, out-projection 2 T D^2;
 * the attention itself (one key) 4 T D, negligible */
static double penc_flops(const mk_editor *ed, int nval) {
    double R = ed->cfg.R, T = ed->cfg.T, D = ed->cfg.D;
    return nval * (2 * R * T * D + 4 * R * D + 2 * (T + 2) * D * D + 2 * T * D * D + 4 * T * D);
}

/* the GEMM shapes one batch runs (M flop-weighted over its forwards) */
static int batch_shapes(const mk_editor *ed, const account *a, int b, shape *s) {
    const mk_enc_config *c = &ed->enc_cfg;
    int H = c->hidden, I = c->inter, F = ed->F, R = ed->cfg.R, T = ed->cfg.T, D = ed->cfg.D;
    double NL = c->n_layers;
    int Mt = (int)lround(a->m_tok_w / a->w_tok), Ms = (int)lround(a->m_sent_w / a->w_sent);
    int n = 0;
    double tp = a->tok_pad;
    s[n++] = (shape){Mt, H, H, NL * 4 * 2.0 * tp * H * H, 0, 0, 0};
    s[n++] = (shape){Mt, H, I, NL * 2.0 * tp * H * I, 0, 0, 0};
    s[n++] = (shape){Mt, I, H, NL * 2.0 * tp * H * I, 0, 0, 0};
    s[n++] = (shape){Ms, F, R, a->sent * 2.0 * F * R, 0, 0, 0};
    s[n++] = (shape){Ms, R, R, a->sent * 2.0 * R * R, 0, 0, 0};
    /* prompt encoder: chunks of min(ENCODE_CHUNK, CHUNK_VALUES) values */
    int mv = b < ENCODE_CHUNK ? b : ENCODE_CHUNK;
    if (mv > CHUNK_VALUES) mv = CHUNK_VALUES;
    s[n++] = (shape){mv, R, T * D, b * 2.0 * R * T * D, 0, 0, 0};
    /* kp, vp (K = R) and in_k, in_v (K = D): R = D here, one shape */
    s[n++] = (shape){mv, R, D, b * (2.0 * 2 * R * D + 2.0 * 2 * D * D), 0, 0, 0};
    s[n++] = (shape){mv * T, D, D, b * 2.0 * 2 * T * D * D, 0, 0, 0}; /* in_q, out */
    return n;
}

/* One GEMM trial of mk_matmul_forward at sh's shape: calls for >= tmin
 * seconds (at least one), added to sh->f_meas / t_meas. Trials run after
 * every encode chunk, so the rate covers the same minutes (and the same
 * neighbours on a shared machine) as the encode. The weight slice moves
 * through wpool (wn floats) every call so it comes from memory, not cache,
 * as in the real pass. */
static void gemm_trial(shape *sh, const float *wpool, size_t wn, const float *inp, float *out,
                       double tmin) {
    static size_t it = 0;
    size_t wsz = (size_t)sh->K * sh->N, slots = wn / wsz;
    if (slots < 1) slots = 1;
    int calls = 0;
    double t0 = bench_now(), el;
    do {
        mk_matmul_forward(out, inp, wpool + (it++ % slots) * wsz, NULL, sh->M, sh->K, sh->N);
        calls++;
        el = bench_now() - t0;
    } while (el < tmin);
    sh->f_meas += 2.0 * sh->M * sh->K * sh->N * calls;
    sh->t_meas += el;
}

/* ---- main ---- */

static void usage(void) {
    fprintf(stderr,
            "usage: bench_edit [--quick] [--data FILE] [--gpt2 DIR] [--batches LIST] [--reps N] [--keep] [--no-gemm] [--no-sort]\n"
            "  --quick          tiny encoder/editor, batches 1,10 (smoke test)\n"
            "  --data FILE      edit requests (default ../shared/datasets/medversa/test.json;\n"
            "                   generated sentences when absent)\n"
            "  --gpt2 DIR       GPT-2 vocab.json + merges.txt (default tests/data/tok/gpt2)\n"
            "  --batches LIST   comma-separated batch sizes (default 1,10,100,1000)\n"
            "  --reps N         repeats per batch, 1..5 (default 5 up to 10, 3 up to 100, else 1)\n"
            "  --keep           keep the temp directory\n"
            "  --no-gemm        skip the GEMM-rate measurement (for profiling the encode)\n"
            "  --no-sort        encode each batch in request order (default: sorted by prompt\n"
            "                   length, as medrek edit does since mk_session_encode sorts)\n");
    exit(2);
}

int main(int argc, char **argv) {
    bench_prog = "bench_edit";
    int quick = 0, keep = 0, reps_opt = 0, no_gemm = 0, sort = 1;
    const char *data = "../shared/datasets/medversa/test.json", *gpt2 = "tests/data/tok/gpt2";
    int batches[MAX_BATCHES] = {1, 10, 100, 1000}, nb = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--no-sort")) {
            sort = 0;
        } else if (!strcmp(argv[i], "--no-gemm")) {
            no_gemm = 1;
        } else if (!strcmp(argv[i], "--keep")) {
            keep = 1;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps_opt = atoi(argv[++i]);
            if (reps_opt < 1 || reps_opt > 5) usage();
        } else if (!strcmp(argv[i], "--gpt2") && i + 1 < argc) {
            gpt2 = argv[++i];
        } else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            nb = 0;
            for (char *p = argv[++i]; *p && nb < MAX_BATCHES;) {
                batches[nb] = (int)strtol(p, &p, 10);
                if (batches[nb] <= 0) usage();
                nb++;
                if (*p == ',') p++;
                else if (*p) usage();
            }
        } else {
            usage();
        }
    }
    if (quick && nb == 4) {
        batches[0] = 1;
        batches[1] = 10;
        nb = 2;
    }
    int bmax = 0;
    for (int i = 0; i < nb; i++) bmax = batches[i] > bmax ? batches[i] : bmax;

    char tmp[] = "/tmp/bench_edit.XXXXXX", encdir[64], kbpath[64];
    if (!mkdtemp(tmp)) {
        perror("bench_edit: mkdtemp");
        return 1;
    }
    snprintf(encdir, sizeof encdir, "%s/enc", tmp);
    snprintf(kbpath, sizeof kbpath, "%s/kb.sqlite", tmp);
    mkdir(encdir, 0700);

    double t0 = bench_now();
    int real_bpe = 0;
    int V = bench_write_roberta_tokenizer(encdir, gpt2, &real_bpe);
    mk_enc_config ec = {MK_ENC_ROBERTA, 50265, 768, 12, 12, 3072, 514, 1, 1, 1e-5f};
    if (quick) {
        ec.hidden = 64;
        ec.n_layers = 2;
        ec.n_heads = 4;
        ec.inter = 256;
    }
    if (ec.vocab < V) ec.vocab = V;
    bench_write_roberta_encoder(encdir, &ec);
    double t_write = bench_now() - t0;

    mk_editor_config cfg;
    mk_editor_config_default(&cfg);
    cfg.kind = MK_PENC_ATTN;
    cfg.R = quick ? 256 : 4096;
    cfg.D = quick ? 256 : 4096;
    cfg.T = 3;
    cfg.NH = 8;
    cfg.P = 10;
    mk_editor *ed;
    t0 = bench_now();
    if (mk_editor_init(&cfg, encdir, &ed)) bench_die("mk_editor_init");
    double t_init = bench_now() - t0;
    char fp[64];
    snprintf(fp, sizeof fp, "%s", mk_editor_fingerprint(ed));

    reqset rs;
    const char *src = load_requests(&rs, data, bmax);
    mk_kb *kb;
    if (mk_kb_open(kbpath, MK_KB_CREATE, &kb)) bench_die("mk_kb_open");

    int R = cfg.R, T = cfg.T, D = cfg.D;
    size_t TD = (size_t)T * D;
    printf("bench_edit: threads %d, load %.2f, encoder H %d NL %d NH %d I %d (vocab %d%s), "
           "%.1fM encoder params, editor %.1fM params (R %d, D %d, T %d, NH %d, P %d, attn)\n",
           mk_num_threads(), bench_loadavg(), ec.hidden, ec.n_layers, ec.n_heads, ec.inter, ec.vocab,
           real_bpe ? ", GPT-2 BPE" : ", BYTE-LEVEL ONLY: no merges, one token per byte",
           mk_enc_n_params(&ec) / 1e6, ed->n_params / 1e6, R, D, T, cfg.NH, cfg.P);
    printf("setup: encoder written in %.1f s (%s), editor init %.1f s; requests: %s (%d)\n",
           t_write, encdir, t_init, src, rs.n);

    float *keys = bench_xmalloc((size_t)bmax * R * sizeof(float));
    float *prompts = bench_xmalloc((size_t)bmax * TD * sizeof(float));
    float *vals = bench_xmalloc((size_t)ENCODE_CHUNK * R * sizeof(float));
    mk_edit_request *reqs = bench_xmalloc((size_t)bmax * sizeof *reqs);
    const char **pr = bench_xmalloc((size_t)bmax * sizeof *pr), **tg = bench_xmalloc((size_t)bmax * sizeof *tg);

    /* GEMM measurement buffers: weights from the prompt encoder's
     * query_proj (T D x R floats, the largest block), inputs random */
    const float *wpool = ed->p.pe.qp_w;
    size_t wn = TD * (size_t)R;
    size_t in_n = (size_t)8 << 20, out_n = (size_t)8 << 20;
    float *gin = bench_xmalloc(in_n * sizeof(float)), *gout = bench_xmalloc(out_n * sizeof(float));
    for (size_t i = 0; i < in_n; i++) gin[i] = bench_urand(&rng);

    /* warm-up: page faults, OpenMP team, tokenizer cache */
    for (int i = 0; i < 2 && i < rs.n; i++) {
        pr[i] = rs.prompt[i];
        tg[i] = rs.target[i];
    }
    if (mk_editor_keys(ed, pr, 1, keys) || mk_editor_values(ed, pr, tg, 1, vals) ||
        mk_editor_prompts(ed, vals, 1, prompts))
        bench_die("warm-up");

    typedef struct {
        int b, reps;
        double enc, keys, values, prompts, insert, cpu, minflt, load;
        account acc;
        double flops, flops_pad, f_gemm, t_gemm, t_gemm_enc, t_gemm_heads, t_gemm_penc;
        shape s[MAX_SHAPES];
        int ns;
    } result;
    result res[MAX_BATCHES];
    int off = 0;
    for (int bi = 0; bi < nb; bi++) {
        int b = batches[bi];
        int reps = reps_opt ? reps_opt : b <= 10 ? 5 : b <= 100 ? 3 : 1;
        double tk[5], tv[5], tp[5], te[5], ti[5], tc[5], tf[5];
        result *o = &res[bi];
        memset(o, 0, sizeof *o);
        o->b = b;
        o->reps = reps;
        account *acc = &o->acc;
        for (int r = 0; r < reps; r++) {
            if (off + b > rs.n) off = 0;
            for (int i = 0; i < b; i++) {
                pr[i] = rs.prompt[off + i];
                tg[i] = rs.target[off + i];
                memset(&reqs[i], 0, sizeof reqs[i]);
                reqs[i].prompt = rs.prompt[off + i];
                reqs[i].target_new = rs.target[off + i];
            }
            off += b;
            if (sort) { /* insertion sort by prompt length (stable, b <= 1000) */
                for (int i = 1; i < b; i++) {
                    const char *p0 = pr[i], *g0 = tg[i];
                    mk_edit_request q0 = reqs[i];
                    size_t l0 = strlen(p0);
                    int j = i;
                    for (; j > 0 && strlen(pr[j - 1]) > l0; j--) {
                        pr[j] = pr[j - 1];
                        tg[j] = tg[j - 1];
                        reqs[j] = reqs[j - 1];
                    }
                    pr[j] = p0;
                    tg[j] = g0;
                    reqs[j] = q0;
                }
            }
            /* FLOPs and GEMM shapes from the first repeat's texts
             * (tokenised here, before and outside the timed encode) */
            if (r == 0) {
                for (int i0 = 0; i0 < b; i0 += ENCODE_CHUNK) {
                    int m = b - i0 < ENCODE_CHUNK ? b - i0 : ENCODE_CHUNK;
                    char **ks = bench_xmalloc((size_t)m * sizeof *ks);
                    for (int i = 0; i < m; i++) ks[i] = mk_knowledge_sentence(pr[i0 + i], tg[i0 + i]);
                    account_texts(acc, ed, pr + i0, m);
                    account_texts(acc, ed, (const char *const *)ks, m);
                    for (int i = 0; i < m; i++) free(ks[i]);
                    free(ks);
                }
                acc->penc = penc_flops(ed, b);
                o->ns = batch_shapes(ed, acc, b, o->s);
                for (int k = 0; k < o->ns; k++) {
                    shape *sh = &o->s[k];
                    if ((size_t)sh->M * sh->K > in_n || (size_t)sh->M * sh->N > out_n) {
                        fprintf(stderr, "bench_edit: shape %dx%dx%d too large for the buffers\n",
                                sh->M, sh->K, sh->N);
                        return 1;
                    }
                }
            }
            /* as mk_session_encode: chunks of ENCODE_CHUNK requests */
            double sk = 0, sv = 0, sp = 0;
            struct rusage u0, u1;
            double cpu = 0, flt = 0;
            getrusage(RUSAGE_SELF, &u0);
            for (int i0 = 0; i0 < b; i0 += ENCODE_CHUNK) {
                int m = b - i0 < ENCODE_CHUNK ? b - i0 : ENCODE_CHUNK;
                double a = bench_now();
                if (mk_editor_keys(ed, pr + i0, m, keys + (size_t)i0 * R)) bench_die("keys");
                double bb = bench_now();
                if (mk_editor_values(ed, pr + i0, tg + i0, m, vals)) bench_die("values");
                double cc = bench_now();
                if (mk_editor_prompts(ed, vals, m, prompts + (size_t)i0 * TD)) bench_die("prompts");
                double dd = bench_now();
                sk += bb - a;
                sv += cc - bb;
                sp += dd - cc;
                getrusage(RUSAGE_SELF, &u1);
                cpu += cpu_of(&u1) - cpu_of(&u0);
                flt += (double)(u1.ru_minflt - u0.ru_minflt);
                for (int k = 0; k < o->ns && !no_gemm; k++)
                    gemm_trial(&o->s[k], wpool, wn, gin, gout, quick ? 0.01 : 0.05);
                getrusage(RUSAGE_SELF, &u0);
            }
            tk[r] = sk;
            tv[r] = sv;
            tp[r] = sp;
            te[r] = sk + sv + sp;
            tc[r] = cpu;
            tf[r] = flt;
            mk_kb_vectors vec = {fp, R, T, D, keys, prompts};
            mk_kb_insert_args ia;
            memset(&ia, 0, sizeof ia);
            ia.author = "bench_edit";
            ia.reason = "benchmark";
            ia.vec = &vec;
            int64_t batch_id;
            double a = bench_now();
            if (mk_kb_insert(kb, reqs, b, &ia, &batch_id, NULL)) bench_die("mk_kb_insert");
            ti[r] = bench_now() - a;
        }
        o->keys = bench_median(tk, reps);
        o->values = bench_median(tv, reps);
        o->prompts = bench_median(tp, reps);
        o->enc = bench_median(te, reps);
        o->insert = bench_median(ti, reps);
        o->cpu = bench_median(tc, reps);
        o->minflt = bench_median(tf, reps);
        o->flops = acc->enc_lin + acc->enc_att + acc->heads + acc->penc;
        o->flops_pad = acc->enc_lin_pad + acc->enc_att_pad + acc->heads + acc->penc;
        for (int k = 0; k < o->ns && !no_gemm; k++) {
            shape *sh = &o->s[k];
            sh->rate = sh->f_meas / sh->t_meas * 1e-9;
            double t = sh->flops / (sh->rate * 1e9);
            o->t_gemm += t;
            o->f_gemm += sh->flops;
            if (k < 3) o->t_gemm_enc += t;
            else if (k < 5) o->t_gemm_heads += t;
            else o->t_gemm_penc += t;
        }
        o->load = bench_loadavg();
        fprintf(stderr, "batch %d: %.3f s encode (%.2f edits/s), %.1f%% of the GEMM rate, load %.2f\n",
                b, o->enc, b / o->enc, 100 * (o->flops / o->enc) / (o->f_gemm / o->t_gemm),
                o->load);
    }

    printf("\nThroughput (medians; encode = mk_editor_keys + mk_editor_values + "
           "mk_editor_prompts in chunks of %d as mk_session_encode; KB insert = mk_kb_insert of "
           "the batch with its vectors):\n\n"
           "| batch | reps | encode s/batch | edits/s (encode) | keys s | values s | prompts s | "
           "KB insert s | edits/s (encode + insert) | CPU share | page faults/edit | load |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
           ENCODE_CHUNK);
    for (int bi = 0; bi < nb; bi++) {
        result *o = &res[bi];
        printf("| %d | %d | %.3f | %.2f | %.3f | %.3f | %.3f | %.4f | %.2f | %.0f%% | %.0f | %.2f |\n",
               o->b, o->reps, o->enc, o->b / o->enc, o->keys, o->values, o->prompts, o->insert,
               o->b / (o->enc + o->insert), 100 * o->cpu / (o->enc * mk_num_threads()),
               o->minflt / o->b, o->load);
    }
    printf("\nFLOPs and the GEMM rate (useful = real tokens; executed = padded tokens, what the "
           "kernels compute; GEMM rate = mk_matmul_forward on this batch's shapes, in "
           "trials between its encode chunks):\n\n"
           "| batch | tokens/sentence real (padded; padded if sorted) | GFLOP/edit useful (executed) | "
           "achieved GFLOP/s useful (executed) | GEMM rate GFLOP/s | ratio useful (executed) | "
           "GEMM-only s: encoder / heads / prompt enc | measured s: tokenize / keys+values / prompts |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int bi = 0; bi < nb; bi++) {
        result *o = &res[bi];
        account *c = &o->acc;
        double grate = o->f_gemm / o->t_gemm * 1e-9;
        double au = o->flops / o->enc * 1e-9, ae = o->flops_pad / o->enc * 1e-9;
        printf("| %d | %.1f (%.1f; %.1f) | %.2f (%.2f) | %.1f (%.1f) | %.1f | %.0f%% (%.0f%%) | "
               "%.3f / %.3f / %.3f | %.3f / %.3f / %.3f |\n",
               o->b, c->tok_real / c->sent, c->tok_pad / c->sent, c->tok_sorted / c->sent,
               o->flops / o->b * 1e-9,
               o->flops_pad / o->b * 1e-9, au, ae, grate, 100 * au / grate, 100 * ae / grate,
               o->t_gemm_enc, o->t_gemm_heads, o->t_gemm_penc, c->t_tok, o->keys + o->values,
               o->prompts);
    }
    printf("\nFLOPs per batch (G) and the GEMM shapes (M x K x N: GFLOP/s of mk_matmul_forward):\n\n");
    for (int bi = 0; bi < nb; bi++) {
        result *o = &res[bi];
        account *c = &o->acc;
        printf("- batch %d: encoder linear %.2f (padded %.2f), encoder attention %.3f (padded "
               "%.3f), heads %.2f, prompt encoder %.2f; %d encoder forwards;",
               o->b, c->enc_lin * 1e-9, c->enc_lin_pad * 1e-9, c->enc_att * 1e-9,
               c->enc_att_pad * 1e-9, c->heads * 1e-9, c->penc * 1e-9, c->n_fwd);
        for (int k = 0; k < o->ns; k++)
            printf(" %dx%dx%d: %.1f%s", o->s[k].M, o->s[k].K, o->s[k].N, o->s[k].rate,
                   k + 1 < o->ns ? "," : "\n");
    }
    fflush(stdout);

    mk_kb_close(kb);
    for (int i = 0; i < rs.n; i++) {
        free(rs.prompt[i]);
        free(rs.target[i]);
    }
    free(rs.prompt);
    free(rs.target);
    free(keys);
    free(prompts);
    free(vals);
    free(reqs);
    free(pr);
    free(tg);
    free(gin);
    free(gout);
    mk_editor_free(ed);
    if (!keep) {
        static const char *files[] = {"enc/config.json", "enc/model.safetensors",
                                      "enc/vocab.json", "enc/merges.txt", "kb.sqlite",
                                      "kb.sqlite-wal", "kb.sqlite-shm", "enc", NULL};
        char path[128];
        for (int i = 0; files[i]; i++) {
            snprintf(path, sizeof path, "%s/%s", tmp, files[i]);
            remove(path);
        }
        if (remove(tmp)) fprintf(stderr, "bench_edit: could not remove %s\n", tmp);
    } else {
        printf("kept %s\n", tmp);
    }
    return 0;
}
