/* bench_yardstick.c - the medrek side of the yardstick comparisons
 * (bench/yardstick/run.sh runs it interleaved with llama.cpp and PyTorch).
 * Every mode prints one line "RESULT {json}" with its timings.
 *
 *   bench_yardstick gguf OUT.gguf 125m|1b f32|q8_0 [GPT2_DIR]
 *       a random-weight Llama GGUF (seeded) with GPT-2's tokenizer in its
 *       metadata (tokenizer.ggml.model "gpt2", tokens, token_type, merges,
 *       bos/eos), V = 50257, so that llama.cpp loads the same file.
 *   bench_yardstick gen MODEL.gguf NPROMPT NGEN
 *       prefill: mk_llama_decode of NPROMPT prompt ids (i*7919+13) mod V
 *       into an empty cache (after one untimed warm-up prefill); decode:
 *       NPROMPT-1 prompt ids untimed, then NGEN one-token steps fed with
 *       the last prompt id and then each greedy id (what llama.cpp's
 *       generation does). Prints the greedy ids, the margin (top-1 minus
 *       top-2 logit) at each step, and the top-5
 *       probabilities of the first generated position.
 *   bench_yardstick prefix MODEL.gguf B L P
 *       mk_llama_forward of B sequences of P prefix vectors + L tokens
 *       (activations kept) and mk_llama_backward to the prefixes only,
 *       after one untimed warm-up of both.
 *   bench_yardstick edit ENCDIR N IDS_OUT [GPT2_DIR]
 *       writes a RoBERTa-base-sized encoder (random, seeded) into ENCDIR
 *       unless ENCDIR/model.safetensors exists, builds an
 *       editor around it (R = 4096), makes N prompts and targets, times
 *       their tokenisation and mk_editor_keys(prompts) +
 *       mk_editor_values(prompts, targets); writes the padded ids and
 *       masks to IDS_OUT for PyTorch (int32 header n, L then ids; twice).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "editor/editor.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "model/roberta.h"
#include "util/bench_roberta.h"
#include "util/bench_util.h"

static uint64_t rs = 88172645463325252ull;
static float randn_ish(void) { /* sum of 4 uniforms scaled to variance 1 */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rs ^= rs << 13;
        rs ^= rs >> 7;
        rs ^= rs << 17;
        s += (float)(rs >> 40) * (1.0f / 16777216.0f) - 0.5f;
    }
    return s * 1.7320508f;
}

/* ---- gguf: a Llama with GPT-2's tokenizer ---- */

static int add_gpt2_tokenizer(mk_gguf_writer *w, const char *dir, int V) {
    char p[1024];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    char *vj = bench_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    char *mt = bench_read_file(p, NULL);
    cJSON *js = vj ? cJSON_Parse(vj) : NULL;
    if (!js || !mt) {
        fprintf(stderr, "bench_yardstick: cannot read GPT-2 vocab.json/merges.txt in %s\n", dir);
        exit(1);
    }
    const char **tok = calloc((size_t)V, sizeof *tok);
    int32_t *type = malloc((size_t)V * sizeof *type);
    cJSON *e;
    cJSON_ArrayForEach(e, js) {
        int id = (int)e->valuedouble;
        if (id >= 0 && id < V) tok[id] = e->string;
    }
    for (int i = 0; i < V; i++) {
        if (!tok[i]) {
            fprintf(stderr, "bench_yardstick: vocab.json lacks id %d\n", i);
            exit(1);
        }
        type[i] = 1; /* normal */
    }
    type[V - 1] = 3; /* <|endoftext|>: control */
    /* merges: one per line, the "#version" header skipped */
    size_t nm = 0, cap = 1024;
    const char **mg = malloc(cap * sizeof *mg);
    for (char *s = strtok(mt, "\n"); s; s = strtok(NULL, "\n")) {
        size_t l = strlen(s);
        if (l && s[l - 1] == '\r') s[--l] = 0;
        if (!l || s[0] == '#') continue;
        if (nm == cap) mg = realloc(mg, (cap *= 2) * sizeof *mg);
        mg[nm++] = s;
    }
    int rc = 0;
    rc |= mk_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= mk_gguf_w_str(w, "tokenizer.ggml.pre", "gpt-2");
    rc |= mk_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tok, (size_t)V);
    rc |= mk_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", type, (size_t)V);
    rc |= mk_gguf_w_arr_str(w, "tokenizer.ggml.merges", mg, nm);
    rc |= mk_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(V - 1));
    rc |= mk_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(V - 1));
    free(tok);
    free(type);
    free(mg);
    cJSON_Delete(js);
    free(vj);
    free(mt);
    return rc;
}

static void mode_gguf(const char *out, const char *size, const char *dts, const char *gpt2) {
    int V = 50257, D, NL, NH, NKV, F;
    if (!strcmp(size, "125m")) D = 768, NL = 12, NH = 12, NKV = 12, F = 2048;
    else if (!strcmp(size, "1b")) D = 2048, NL = 16, NH = 32, NKV = 8, F = 8192;
    else bench_die("size must be 125m or 1b");
    mk_dtype dt = !strcmp(dts, "q8_0") ? MK_Q8_0 : MK_F32;
    int HS = D / NH;
    mk_gguf_writer *w = mk_gguf_writer_new();
    int rc = 0;
    rc |= mk_gguf_w_str(w, "general.architecture", "llama");
    rc |= mk_gguf_w_str(w, "general.name", "medrek-yardstick-random");
    rc |= mk_gguf_w_u32(w, "general.file_type", dt == MK_Q8_0 ? 7 : 0);
    rc |= mk_gguf_w_u32(w, "llama.context_length", 2048);
    rc |= mk_gguf_w_u32(w, "llama.embedding_length", (uint32_t)D);
    rc |= mk_gguf_w_u32(w, "llama.block_count", (uint32_t)NL);
    rc |= mk_gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)F);
    rc |= mk_gguf_w_u32(w, "llama.attention.head_count", (uint32_t)NH);
    rc |= mk_gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)NKV);
    rc |= mk_gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)HS);
    rc |= mk_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= mk_gguf_w_f32(w, "llama.rope.freq_base", 10000.0f);
    rc |= mk_gguf_w_u32(w, "llama.vocab_size", (uint32_t)V);
    if (rc || add_gpt2_tokenizer(w, gpt2, V)) bench_die("gguf metadata");
    size_t big = (size_t)V * D > (size_t)F * D ? (size_t)V * D : (size_t)F * D;
    float *buf = malloc(big * sizeof(float)); /* (rows, cols) of the largest matrix */
    if (!buf) bench_die("out of memory");
    struct { const char *fmt; int64_t r, k; } mats[] = {
        {"blk.%d.attn_q.weight", (int64_t)NH * HS, D},   {"blk.%d.attn_k.weight", (int64_t)NKV * HS, D},
        {"blk.%d.attn_v.weight", (int64_t)NKV * HS, D},  {"blk.%d.attn_output.weight", D, (int64_t)NH * HS},
        {"blk.%d.ffn_gate.weight", F, D},                {"blk.%d.ffn_up.weight", F, D},
        {"blk.%d.ffn_down.weight", D, F},
    };
    char nm[96];
    int64_t sh[2] = {V, D}, shn[1] = {D};
    for (size_t i = 0; i < (size_t)V * D; i++) buf[i] = randn_ish();
    if (mk_gguf_w_tensor(w, "token_embd.weight", dt, buf, 2, sh)) bench_die("tensor");
    for (size_t i = 0; i < (size_t)V * D; i++) buf[i] = 0.02f * randn_ish();
    if (mk_gguf_w_tensor(w, "output.weight", dt, buf, 2, sh)) bench_die("tensor");
    for (int i = 0; i < D; i++) buf[i] = 1.0f;
    if (mk_gguf_w_tensor(w, "output_norm.weight", MK_F32, buf, 1, shn)) bench_die("tensor");
    for (int l = 0; l < NL; l++) {
        for (int i = 0; i < D; i++) buf[i] = 1.0f;
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if (mk_gguf_w_tensor(w, nm, MK_F32, buf, 1, shn)) bench_die("tensor");
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if (mk_gguf_w_tensor(w, nm, MK_F32, buf, 1, shn)) bench_die("tensor");
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
            int64_t s2[2] = {mats[k].r, mats[k].k};
            float sd = 1.0f / sqrtf((float)mats[k].k);
            for (size_t i = 0; i < (size_t)(mats[k].r * mats[k].k); i++) buf[i] = sd * randn_ish();
            snprintf(nm, sizeof nm, mats[k].fmt, l);
            if (mk_gguf_w_tensor(w, nm, dt, buf, 2, s2)) bench_die("tensor");
        }
    }
    if (mk_gguf_w_write(w, out)) bench_die(out);
    free(buf);
    mk_gguf_writer_free(w);
    printf("RESULT {\"mode\":\"gguf\",\"path\":\"%s\"}\n", out);
}

/* ---- gen: prefill and greedy decode ---- */

static int32_t argmax(const float *x, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void mode_gen(const char *path, int NP, int NG) {
    mk_llama *m = NULL;
    if (mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, &m)) bench_die(path);
    const mk_llama_config *c = mk_llama_cfg(m);
    int V = c->n_vocab;
    int32_t *ids = malloc((size_t)NP * sizeof *ids);  /* (NP) prompt */
    int32_t *gen = malloc((size_t)NG * sizeof *gen);  /* (NG) greedy ids */
    float *margin = malloc((size_t)NG * sizeof *margin); /* (NG) top-1 minus top-2 logit */
    float *logits = malloc((size_t)V * sizeof(float)); /* (V) */
    for (int i = 0; i < NP; i++) ids[i] = (int32_t)((i * 7919 + 13) % V);
    double t_pre = 0;
    for (int r = 0; r < 2; r++) { /* r = 0 warms the pages and the caches */
        mk_llama_kv *kv = NULL;
        if (mk_llama_kv_new(m, NP + NG + 8, &kv)) bench_die("kv");
        double t0 = bench_now();
        if (mk_llama_decode(m, kv, NULL, 0, ids, NP, logits)) bench_die("prefill");
        t_pre = bench_now() - t0;
        mk_llama_kv_free(kv);
    }
    mk_llama_kv *kv = NULL;
    if (mk_llama_kv_new(m, NP + NG + 8, &kv)) bench_die("kv");
    if (mk_llama_decode(m, kv, NULL, 0, ids, NP - 1, NULL)) bench_die("prefill");
    int32_t tok = ids[NP - 1];
    float top_p[5];
    int32_t top_i[5];
    double t0 = bench_now();
    for (int g = 0; g < NG; g++) {
        if (mk_llama_decode(m, kv, NULL, 0, &tok, 1, logits)) bench_die("decode");
        tok = argmax(logits, V);
        gen[g] = tok;
        float second = -INFINITY;
        for (int i = 0; i < V; i++)
            if (i != tok && logits[i] > second) second = logits[i];
        margin[g] = logits[tok] - second;
        if (g == 0) { /* softmax top-5 of the first generated position (not timed) */
            double ts = bench_now(), mx = logits[tok], s = 0;
            for (int i = 0; i < V; i++) s += exp(logits[i] - mx);
            for (int k = 0; k < 5; k++) {
                int32_t b = -1;
                for (int i = 0; i < V; i++) {
                    int used = 0;
                    for (int j = 0; j < k; j++) used |= top_i[j] == i;
                    if (!used && (b < 0 || logits[i] > logits[b])) b = i;
                }
                top_i[k] = b;
                top_p[k] = (float)(exp(logits[b] - mx) / s);
            }
            t0 += bench_now() - ts;
        }
    }
    double t_dec = bench_now() - t0;
    printf("RESULT {\"mode\":\"gen\",\"tool\":\"medrek\",\"model\":\"%s\",\"n_prompt\":%d,\"n_gen\":%d,"
           "\"prefill_s\":%.6f,\"prefill_tps\":%.3f,\"decode_s\":%.6f,\"decode_tps\":%.3f,\"ids\":[",
           path, NP, NG, t_pre, NP / t_pre, t_dec, NG / t_dec);
    for (int g = 0; g < NG; g++) printf("%s%d", g ? "," : "", gen[g]);
    printf("],\"margins\":[");
    for (int g = 0; g < NG; g++) printf("%s%.4g", g ? "," : "", margin[g]);
    printf("],\"top5\":[");
    for (int k = 0; k < 5; k++) printf("%s[%d,%.6g]", k ? "," : "", top_i[k], top_p[k]);
    printf("]}\n");
    mk_llama_kv_free(kv);
    free(ids);
    free(gen);
    free(margin);
    free(logits);
    mk_llama_close(m);
}

/* ---- prefix: forward and backward to the prefixes ---- */

static void mode_prefix(const char *path, int B, int L, int P) {
    mk_llama *m = NULL;
    if (mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, &m)) bench_die(path);
    const mk_llama_config *c = mk_llama_cfg(m);
    int V = c->n_vocab, D = c->dim;
    size_t np = (size_t)B * P * D, nl = (size_t)B * L * V;
    int32_t *ids = malloc((size_t)B * L * sizeof *ids); /* (B, L) */
    float *pre = malloc(np * sizeof(float));            /* (B, P, D) */
    float *dpre = calloc(np, sizeof(float));            /* (B, P, D) */
    float *lg = malloc(nl * sizeof(float));             /* (B*L, V) */
    float *dl = malloc(nl * sizeof(float));             /* (B*L, V) */
    mk_llama_seq seqs[64];
    float *dps[64];
    if (B > 64 || !ids || !pre || !dpre || !lg || !dl) bench_die("prefix: bad B or out of memory");
    for (int i = 0; i < B * L; i++) ids[i] = (int32_t)((i * 7919 + 13) % V);
    for (size_t i = 0; i < np; i++) pre[i] = 0.02f * randn_ish();
    for (size_t i = 0; i < nl; i++) dl[i] = 1e-4f * randn_ish();
    for (int b = 0; b < B; b++) {
        seqs[b] = (mk_llama_seq){ids + (size_t)b * L, L, pre + (size_t)b * P * D, P};
        dps[b] = dpre + (size_t)b * P * D;
    }
    double tf = 0, tb = 0;
    for (int r = 0; r < 2; r++) { /* r = 0: warm-up */
        mk_llama_acts *acts = NULL;
        double t0 = bench_now();
        if (mk_llama_forward(m, seqs, B, lg, &acts)) bench_die("forward");
        tf = bench_now() - t0;
        t0 = bench_now();
        if (mk_llama_backward(m, acts, dl, dps, NULL)) bench_die("backward");
        tb = bench_now() - t0;
        mk_llama_acts_free(acts);
    }
    double s = 0;
    for (size_t i = 0; i < np; i++) s += fabs(dpre[i]);
    printf("RESULT {\"mode\":\"prefix\",\"tool\":\"medrek\",\"model\":\"%s\",\"B\":%d,\"L\":%d,\"P\":%d,"
           "\"forward_s\":%.6f,\"backward_s\":%.6f,\"dprefix_abs_sum\":%.6g}\n",
           path, B, L, P, tf, tb, s);
    free(ids);
    free(pre);
    free(dpre);
    free(lg);
    free(dl);
    mk_llama_close(m);
}

/* ---- edit: encoder + heads ---- */

static void dump_ids(FILE *f, const int32_t *ids, const float *mask, int n, int L) {
    int32_t h[2] = {n, L};
    fwrite(h, sizeof h, 1, f);
    fwrite(ids, sizeof *ids, (size_t)n * L, f);
    fwrite(mask, sizeof *mask, (size_t)n * L, f);
}

/* A RoBERTa-base-sized encoder directory (seeded: the same weights every time). */
static void write_encoder(const char *dir, const char *gpt2) {
    mkdir(dir, 0755);
    mk_enc_config c = {MK_ENC_ROBERTA, 0, 768, 12, 12, 3072, 514, 1, 1, 1e-5f};
    int real = 0;
    c.vocab = bench_write_roberta_tokenizer(dir, gpt2, &real);
    if (!real) {
        fprintf(stderr, "bench_yardstick: cannot read %s/vocab.json, merges.txt\n", gpt2);
        exit(1);
    }
    bench_write_roberta_encoder(dir, &c);
}

static void mode_edit(const char *dir, int n, const char *ids_out, const char *gpt2) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat st;
    if (stat(p, &st) != 0) write_encoder(dir, gpt2);
    mk_editor_config ec;
    mk_editor_config_default(&ec);
    ec.R = 4096;
    ec.D = 768;
    mk_editor *ed = NULL;
    if (mk_editor_init(&ec, dir, &ed)) bench_die("editor init");
    static const char *cond[] = {"hypertension", "type 2 diabetes", "community-acquired pneumonia",
                                 "atrial fibrillation", "major depressive disorder", "asthma",
                                 "rheumatoid arthritis", "chronic kidney disease"};
    static const char *drug[] = {"metformin", "amlodipine", "amoxicillin", "apixaban", "sertraline",
                                 "budesonide", "methotrexate", "dapagliflozin"};
    char **pr = malloc((size_t)n * sizeof *pr), **tg = malloc((size_t)n * sizeof *tg);
    char **ks = malloc((size_t)n * sizeof *ks);
    for (int i = 0; i < n; i++) {
        pr[i] = malloc(256);
        tg[i] = malloc(64);
        snprintf(pr[i], 256, "What is the first-line treatment for %s in a %d-year-old patient?", cond[i % 8], 30 + i % 50);
        snprintf(tg[i], 64, "%s %d mg", drug[(i / 8) % 8], 5 * (1 + i % 20));
        ks[i] = mk_knowledge_sentence(pr[i], tg[i]);
    }
    float *keys = malloc((size_t)n * ec.R * sizeof(float)); /* (n, R) */
    float *vals = malloc((size_t)n * ec.R * sizeof(float)); /* (n, R) */
    int32_t *ik, *iv;
    float *mk, *mv;
    int Lk, Lv;
    double t0 = bench_now();
    if (mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, (const char *const *)pr, n, &ik, &mk, &Lk) ||
        mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, (const char *const *)ks, n, &iv, &mv, &Lv))
        bench_die("tokenize");
    double t_tok = bench_now() - t0;
    FILE *f = fopen(ids_out, "wb");
    if (!f) bench_die(ids_out);
    dump_ids(f, ik, mk, n, Lk);
    dump_ids(f, iv, mv, n, Lv);
    fclose(f);
    double real = 0;
    for (int i = 0; i < n * Lk; i++) real += mk[i];
    for (int i = 0; i < n * Lv; i++) real += mv[i];
    t0 = bench_now();
    if (mk_editor_keys(ed, (const char *const *)pr, n, keys)) bench_die("keys");
    double t_keys = bench_now() - t0;
    t0 = bench_now();
    if (mk_editor_values(ed, (const char *const *)pr, (const char *const *)tg, n, vals)) bench_die("values");
    double t_vals = bench_now() - t0;
    printf("RESULT {\"mode\":\"edit\",\"tool\":\"medrek\",\"n\":%d,\"L_keys\":%d,\"L_values\":%d,"
           "\"real_tokens\":%.0f,\"tokenize_s\":%.6f,\"keys_s\":%.6f,\"values_s\":%.6f,"
           "\"total_s\":%.6f}\n", n, Lk, Lv, real, t_tok, t_keys, t_vals, t_keys + t_vals);
    for (int i = 0; i < n; i++) {
        free(pr[i]);
        free(tg[i]);
        free(ks[i]);
    }
    free(pr);
    free(tg);
    free(ks);
    free(ik);
    free(iv);
    free(mk);
    free(mv);
    free(keys);
    free(vals);
    mk_editor_free(ed);
}

int main(int argc, char **argv) {
    bench_prog = "bench_yardstick";
    const char *gpt2_default = "tests/data/tok/gpt2";
    if (argc == 5 && !strcmp(argv[1], "gen") && atoi(argv[3]) < 2) {
        fprintf(stderr, "bench_yardstick: gen needs NPROMPT >= 2\n");
        return 2;
    }
    if (argc >= 5 && !strcmp(argv[1], "gguf"))
        mode_gguf(argv[2], argv[3], argv[4], argc > 5 ? argv[5] : gpt2_default);
    else if (argc == 5 && !strcmp(argv[1], "gen"))
        mode_gen(argv[2], atoi(argv[3]), atoi(argv[4]));
    else if (argc == 6 && !strcmp(argv[1], "prefix"))
        mode_prefix(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    else if (argc >= 5 && !strcmp(argv[1], "edit"))
        mode_edit(argv[2], atoi(argv[3]), argv[4], argc > 5 ? argv[5] : gpt2_default);
    else {
        fprintf(stderr, "usage: bench_yardstick gguf OUT 125m|1b f32|q8_0 [GPT2_DIR]\n"
                        "       bench_yardstick gen MODEL NPROMPT NGEN\n"
                        "       bench_yardstick prefix MODEL B L P\n"
                        "       bench_yardstick edit ENCDIR N IDS_OUT [GPT2_DIR]\n");
        return 2;
    }
    return 0;
}
