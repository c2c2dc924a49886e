/* test_editor.c - the editor as a whole: init from the small RoBERTa
 * fixture, the embedded tokenizer against the reference BPE ids, the
 * batched API (keys, values, prompts, prototype, query) against PyTorch
 * with the reference weights copied in, chunking, save/load round trip,
 * fingerprint, LLM check, the knowledge-sentence rule, training passes and
 * Adam, and bad editor files refused cleanly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "editor/editor.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "text/tokenizer.h"
#include "util/check.h"
#include "util/ref.h"

#define ENC "tests/data/editor/encoder"
#define REF "tests/data/editor/ref.safetensors"

static mk_st *st;
static char tmpdir[256];

#define HINT "tools/ref_editor.py"
static float *ref(const char *name, size_t *n) { return ref_tensor(st, name, n, HINT); }
static void ref_into(const char *name, float *dst, size_t n) { ref_tensor_into(st, name, dst, n, HINT); }

/* compare with reference tensor `name`; label (may be NULL) names the check */
static void cmp_ref_as(const char *name, const char *label, const float *got, size_t n,
                       double atol, double rtol) {
    size_t m;
    float *x = ref(name, &m);
    CHECK(m == n);
    check_close(label ? label : name, got, x, m < n ? m : n, atol, rtol);
    free(x);
}

static void cmp_ref(const char *name, const float *got, size_t n, double atol, double rtol) {
    cmp_ref_as(name, NULL, got, n, atol, rtol);
}

/* the sentences of ref.json (kept here so the test needs no JSON) */
static const char *sentences[] = {"The patient was given aspirin.", "Metformin treats diabetes",
                                  "What is the first-line therapy?", "Hi",
                                  "Insulin lowers blood glucose."};
static const char *prompts[] = {
    "What treats type 2 diabetes?", "The drug of choice for pain is",
    "Hypertension is treated with ",
    "A very long question about the patient that will be truncated by the encoder"};
static const char *targets[] = {"metformin", "aspirin", " diuretics", "yes"};
enum { NP = 4 };

static void path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static mk_editor *make(mk_penc_kind kind, uint64_t seed) {
    mk_editor_config c;
    mk_editor_config_default(&c);
    c.kind = kind;
    c.R = 24, c.D = 16, c.T = 3, c.NH = 4, c.P = 10, c.seed = seed;
    c.llm_fingerprint = "llama-test-0123456789abcdef";
    c.llm_name = "tiny-llama";
    mk_editor *ed = NULL;
    CHECK_OK(mk_editor_init(&c, ENC, &ed));
    return ed;
}

/* copy the PyTorch reference weights into the editor */
static void load_ref_weights(mk_editor *ed) {
    const char *hn[2] = {"q_head", "k_head"};
    mk_head_params *h[2] = {&ed->p.q, &ed->p.k};
    size_t R = (size_t)ed->cfg.R, F = (size_t)ed->F;
    char nm[80];
    for (int k = 0; k < 2; k++) {
        snprintf(nm, sizeof nm, "%s.fc1.weight", hn[k]);
        ref_into(nm, h[k]->w1, R * F);
        snprintf(nm, sizeof nm, "%s.fc1.bias", hn[k]);
        ref_into(nm, h[k]->b1, R);
        snprintf(nm, sizeof nm, "%s.fc2.weight", hn[k]);
        ref_into(nm, h[k]->w2, R * R);
        snprintf(nm, sizeof nm, "%s.fc2.bias", hn[k]);
        ref_into(nm, h[k]->b2, R);
    }
    ref_into("prototype", ed->p.proto, (size_t)ed->cfg.P * ed->enc_cfg.hidden);
    const char *pn = ed->cfg.kind == MK_PENC_ATTN ? "pe_attn" : "pe_mlp";
    for (int i = 0; i < mk_penc_n_tensors(&ed->pe_cfg); i++) {
        char tn[64];
        float *d;
        int nd;
        int64_t sh[2];
        mk_penc_tensor(&ed->pe_cfg, &ed->p.pe, i, tn, &d, &nd, sh);
        snprintf(nm, sizeof nm, "%s.%s", pn, tn);
        ref_into(nm, d, (size_t)sh[0] * (size_t)(nd == 2 ? sh[1] : 1));
    }
}

static void test_knowledge_sentence(void) {
    struct {
        const char *p, *t, *want;
    } cases[] = {{"The capital is", "Paris", "The capital is Paris"},
                 {"The capital is ", "Paris", "The capital is Paris"},
                 {"The capital is", " Paris", "The capital is Paris"},
                 {"The capital is ", " Paris", "The capital is  Paris"},
                 {"", "x", " x"},
                 {"q", "", "q "}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = mk_knowledge_sentence(cases[i].p, cases[i].t);
        CHECK(s && !strcmp(s, cases[i].want));
        free(s);
    }
}

static void test_init(mk_editor *ed) {
    mk_encoder *e = NULL;
    CHECK_OK(mk_encoder_open(ENC, MK_ENC_NO_TOKENIZER, &e));
    if (!e) return;
    CHECK(!memcmp(ed->block, e->block, mk_enc_n_params(&e->cfg) * sizeof(float)));
    mk_encoder_free(e);
    /* init ranges: Linear uniform(+-1/sqrt(in)), prototype [-0.05, 0.05) */
    double b1 = 1 / sqrt((double)ed->F), b2 = 1 / sqrt((double)ed->cfg.R), mx1 = 0, mx2 = 0, mp = 0;
    for (size_t i = 0; i < (size_t)ed->cfg.R * ed->F; i++) mx1 = fmax(mx1, fabs(ed->p.q.w1[i]));
    for (size_t i = 0; i < (size_t)ed->cfg.R * ed->cfg.R; i++) mx2 = fmax(mx2, fabs(ed->p.k.w2[i]));
    for (size_t i = 0; i < (size_t)ed->cfg.P * ed->enc_cfg.hidden; i++) mp = fmax(mp, fabs(ed->p.proto[i]));
    CHECK(mx1 <= b1 && mx1 > 0.9 * b1 && mx2 <= b2 && mx2 > 0.9 * b2 && mp <= 0.05 && mp > 0.04);
    printf("     init: |q fc1|max %.4f (bound %.4f), |k fc2|max %.4f (bound %.4f), |proto|max %.4f\n",
           mx1, b1, mx2, b2, mp);
    if (ed->cfg.kind == MK_PENC_ATTN) {
        double z = 0;
        for (int i = 0; i < 3 * ed->cfg.D; i++) z = fmax(z, fabs(ed->p.pe.in_b[i]));
        CHECK(z == 0);
    }
    /* same seed, same editor; another seed, another */
    mk_editor *a = make(ed->cfg.kind, ed->cfg.seed), *b = make(ed->cfg.kind, ed->cfg.seed + 1);
    if (a && b) {
        CHECK(!strcmp(mk_editor_fingerprint(a), mk_editor_fingerprint(ed)));
        CHECK(strcmp(mk_editor_fingerprint(b), mk_editor_fingerprint(ed)));
    }
    mk_editor_free(a);
    mk_editor_free(b);
    /* bad configurations */
    mk_editor_config c;
    mk_editor_config_default(&c);
    mk_editor *x = NULL;
    CHECK(mk_editor_init(&c, ENC, &x) == MK_ERR_ARG && !x); /* D unset */
    printf("     no D: %s\n", mk_errmsg());
    c.D = 16, c.NH = 5;
    CHECK(mk_editor_init(&c, ENC, &x) == MK_ERR_ARG && !x);
    printf("     NH 5, D 16: %s\n", mk_errmsg());
    c.NH = 4, c.P = 100;
    CHECK(mk_editor_init(&c, ENC, &x) == MK_ERR_ARG && !x);
    printf("     P 100: %s\n", mk_errmsg());
    c.P = 10;
    CHECK(mk_editor_init(&c, "tests/data/editor/missing", &x) != MK_OK && !x);
    printf("     missing encoder: %s\n", mk_errmsg());
}

static void test_tokenizer(const mk_editor *ed) {
    int32_t *ids;
    float *mask;
    int L;
    size_t n;
    CHECK_OK(mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, prompts, NP, &ids, &mask, &L));
    float *rid = ref("tok.ids", &n), *rmask = ref("tok.mask", NULL);
    CHECK(n == (size_t)NP * L);
    int diff = 0;
    for (size_t i = 0; i < n && n == (size_t)NP * L; i++)
        diff += ids[i] != (int32_t)rid[i] || mask[i] != rmask[i];
    CHECK(diff == 0);
    printf("%s tokenizer ids of the prompts (incl. truncation to %d): %d of %zu differ\n",
           diff ? "FAIL" : "ok  ", mk_enc_max_len(&ed->enc_cfg), diff, n);
    CHECK(L == mk_enc_max_len(&ed->enc_cfg));
    free(ids), free(mask), free(rid), free(rmask);
    /* the encoder batch of test_roberta, through the tokenizer */
    CHECK_OK(mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, sentences, 5, &ids, &mask, &L));
    rid = ref("enc.ids", &n);
    diff = n != (size_t)5 * L;
    for (size_t i = 0; i < n && !diff; i++) diff += ids[i] != (int32_t)rid[i];
    CHECK(diff == 0);
    free(ids), free(mask), free(rid);
}

static void test_api(mk_editor *ed) {
    int R = ed->cfg.R, T = ed->cfg.T, D = ed->cfg.D;
    float keys[NP * 24], q[NP * 24], values[NP * 24], pk[24], pr[NP * 3 * 16];
    CHECK_OK(mk_editor_keys(ed, prompts, NP, keys));
    cmp_ref("keys", keys, (size_t)NP * R, 1e-4, 1e-4);
    CHECK_OK(mk_editor_query(ed, prompts, NP, q));
    CHECK(!memcmp(q, keys, sizeof keys));
    CHECK_OK(mk_editor_values(ed, prompts, targets, NP, values));
    cmp_ref("values", values, (size_t)NP * R, 1e-4, 1e-4);
    CHECK_OK(mk_editor_prototype(ed, pk));
    cmp_ref("proto_key", pk, (size_t)R, 1e-4, 1e-4);
    float *rv = ref("values", NULL);
    CHECK_OK(mk_editor_prompts(ed, rv, NP, pr));
    cmp_ref("prompts_attn", pr, (size_t)NP * T * D, 1e-5, 1e-4);
    free(rv);

    /* 70 sentences (3 chunks): the same rows as one at a time */
    enum { M = 70 };
    const char *many[M];
    for (int i = 0; i < M; i++) many[i] = i % 9 == 0 ? prompts[3] : prompts[i % 3];
    float *big = malloc((size_t)M * R * sizeof(float)), *one = malloc((size_t)M * R * sizeof(float));
    CHECK_OK(mk_editor_keys(ed, many, M, big));
    for (int i = 0; i < M; i++) CHECK_OK(mk_editor_keys(ed, many + i, 1, one + (size_t)i * R));
    check_close("keys of 70 sentences in chunks vs one by one", big, one, (size_t)M * R, 1e-5, 1e-5);
    free(big), free(one);
    CHECK_OK(mk_editor_keys(ed, prompts, 0, keys)); /* nothing to do */
}

static void test_save_load(mk_editor *ed) {
    char p[512];
    path(p, sizeof p, "ed.safetensors");
    const char *fp = mk_editor_fingerprint(ed);
    char fp1[64];
    snprintf(fp1, sizeof fp1, "%s", fp);
    CHECK(!strncmp(fp1, "editor-", 7) && strlen(fp1) == 23);
    CHECK(!strcmp(mk_editor_fingerprint(ed), fp1)); /* stable */
    CHECK_OK(mk_editor_save(ed, p));
    mk_editor *b = NULL;
    CHECK_OK(mk_editor_load(p, &b));
    if (!b) return;
    CHECK(b->n_params == ed->n_params && !memcmp(b->block, ed->block, ed->n_params * sizeof(float)));
    CHECK(b->cfg.kind == ed->cfg.kind && b->cfg.R == ed->cfg.R && b->cfg.D == ed->cfg.D &&
          b->cfg.T == ed->cfg.T && b->cfg.NH == ed->cfg.NH && b->cfg.P == ed->cfg.P &&
          b->cfg.seed == ed->cfg.seed);
    CHECK(!strcmp(b->cfg.llm_fingerprint, ed->cfg.llm_fingerprint) &&
          !strcmp(b->cfg.llm_name, "tiny-llama"));
    CHECK(!strcmp(mk_editor_fingerprint(b), fp1));
    float k1[NP * 24], k2[NP * 24];
    CHECK_OK(mk_editor_keys(ed, prompts, NP, k1));
    CHECK_OK(mk_editor_keys(b, prompts, NP, k2));
    CHECK(!memcmp(k1, k2, sizeof k1));
    printf("     save/load round trip: %zu parameters identical, fingerprint %s\n", b->n_params, fp1);
    /* one changed parameter changes the fingerprint */
    b->p.pe.out_b ? (b->p.pe.out_b[0] += 1e-6f) : (b->p.pe.b2[0] += 1e-6f);
    CHECK(strcmp(mk_editor_fingerprint(b), fp1));
    /* LLM checks */
    CHECK_OK(mk_editor_check_llm(ed, 16, "llama-test-0123456789abcdef"));
    CHECK_OK(mk_editor_check_llm(ed, 16, ""));
    CHECK(mk_editor_check_llm(ed, 32, "llama-test-0123456789abcdef") == MK_ERR_MISMATCH);
    printf("     D mismatch: %s\n", mk_errmsg());
    CHECK(mk_editor_check_llm(ed, 16, "llama-other") == MK_ERR_MISMATCH);
    printf("     fingerprint mismatch: %s\n", mk_errmsg());
    mk_editor_free(b);
}

/* ---- bad files: rewrite the saved editor with one thing broken ---- */

typedef enum {
    B_FORMAT, B_VERSION, B_KIND, B_REPDIM_TEXT, B_REPDIM_VALUE, B_NO_ENCCFG, B_BAD_ENCCFG,
    B_NO_TOK, B_BAD_TOK, B_DROP, B_SHAPE, B_EXTRA, B_NAN, B_CORRUPT, B_HUGE, B_COUNT
} breakage;

static const char *bname[] = {"format", "version", "prompt_encoder kind", "rep_dim text",
                              "rep_dim value", "no encoder_config", "bad encoder_config",
                              "no tokenizer", "bad tokenizer", "missing tensor", "wrong shape",
                              "extra tensor", "NaN value", "changed parameter", "huge rep_dim"};

static int rewrite(const char *src, const char *dst, breakage how) {
    mk_st *s = NULL;
    int rc = mk_st_open(src, &s);
    if (rc) return rc;
    mk_st_writer *w = mk_st_writer_new();
    for (size_t i = 0; i < mk_st_n_meta(s); i++) {
        const char *k, *v;
        mk_st_meta_at(s, i, &k, &v);
        if (how == B_FORMAT && !strcmp(k, "format")) v = "something-else";
        if (how == B_VERSION && !strcmp(k, "version")) v = "2";
        if (how == B_KIND && !strcmp(k, "prompt_encoder")) v = "lstm";
        if (how == B_REPDIM_TEXT && !strcmp(k, "rep_dim")) v = "24x";
        if (how == B_REPDIM_VALUE && !strcmp(k, "rep_dim")) v = "25";
        if (how == B_HUGE && !strcmp(k, "rep_dim")) v = "1000000";
        if (how == B_NO_ENCCFG && !strcmp(k, "encoder_config")) continue;
        if (how == B_BAD_ENCCFG && !strcmp(k, "encoder_config")) v = "{\"model_type\": \"roberta\"";
        if (how == B_NO_TOK && !strncmp(k, "tokenizer", 9)) continue;
        if (how == B_BAD_TOK && !strcmp(k, "tokenizer_vocab_json")) v = "[1, 2, 3]";
        mk_st_w_meta(w, k, v);
    }
    for (size_t i = 0; i < mk_st_n_tensors(s); i++) {
        const mk_tensor_view *t = mk_st_tensor(s, i);
        if (how == B_DROP && !strcmp(t->name, "k_head.fc2.bias")) continue;
        float *x = malloc(t->n_elems * sizeof(float) + 4);
        mk_weights_to_f32(t, x, t->n_elems);
        int64_t shape[MK_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int nd = t->n_dims;
        if (how == B_SHAPE && !strcmp(t->name, "prototype")) shape[0] = 5, shape[1] *= 2;
        if (how == B_NAN && !strcmp(t->name, "q_head.fc1.bias")) x[3] = NAN;
        if (how == B_CORRUPT && !strcmp(t->name, "q_head.fc1.bias")) x[3] += 0.5f;
        mk_st_w_tensor(w, t->name, MK_F32, x, nd, shape);
        if (how == B_EXTRA && i == 0) mk_st_w_tensor(w, "stray", MK_F32, x, 1, shape);
        free(x);
    }
    rc = mk_st_w_write(w, dst);
    mk_st_writer_free(w);
    mk_st_close(s);
    return rc;
}

static void test_bad_files(void) {
    char src[512], dst[512];
    path(src, sizeof src, "ed.safetensors");
    path(dst, sizeof dst, "bad.safetensors");
    for (int b = 0; b < B_COUNT; b++) {
        CHECK_OK(rewrite(src, dst, (breakage)b));
        mk_editor *ed = NULL;
        int rc = mk_editor_load(dst, &ed);
        CHECK(rc != MK_OK && ed == NULL);
        printf("     %-20s refused (%s): %s\n", bname[b], mk_status_name(rc), mk_errmsg());
        mk_editor_free(ed);
    }
    /* truncations and byte flips: refused or loaded, never a crash */
    size_t len;
    unsigned char *buf = check_read_file(src, &len);
    FILE *f;
    int refused = 0, tries = 0;
    for (size_t cut = 0; cut < len; cut += len / 23 + 1) {
        f = fopen(dst, "wb");
        fwrite(buf, 1, cut, f);
        fclose(f);
        mk_editor *ed = NULL;
        refused += mk_editor_load(dst, &ed) != MK_OK;
        tries++;
        mk_editor_free(ed);
    }
    CHECK(refused == tries);
    printf("     %d truncated files refused: %d\n", tries, refused);
    unsigned seed = 99;
    int loaded = 0;
    for (int k = 0; k < 60; k++) {
        unsigned char *m = malloc(len);
        memcpy(m, buf, len);
        seed = seed * 1103515245u + 12345u;
        size_t at = k < 40 ? 8 + (seed >> 4) % 4096 % (len - 8) : (seed >> 4) % len;
        m[at] ^= (unsigned char)(1u << (seed >> 28 & 7));
        f = fopen(dst, "wb");
        fwrite(m, 1, len, f);
        fclose(f);
        free(m);
        mk_editor *ed = NULL;
        if (mk_editor_load(dst, &ed) == MK_OK) loaded++;
        mk_editor_free(ed);
    }
    printf("     60 single-bit flips: %d still loaded (flips inside metadata text), none crashed\n",
           loaded);
    free(buf);
    unlink(dst);
}

/* an encoder directory with tokenizer.json (and no vocab.json): the editor
 * embeds that instead and encodes the same ids */
static void test_tokenizer_json(const mk_editor *ed) {
    char dir[300], p[600], cwd[1024];
    snprintf(dir, sizeof dir, "%s/enc_tj", tmpdir);
    if (mkdir(dir, 0700) || !getcwd(cwd, sizeof cwd)) {
        CHECK(0);
        return;
    }
    const char *src[3] = {ENC "/config.json", ENC "/model.safetensors", "tests/data/editor/tokenizer.json"};
    const char *dst[3] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        char target[1200];
        snprintf(target, sizeof target, "%s/%s", cwd, src[i]);
        snprintf(p, sizeof p, "%s/%s", dir, dst[i]);
        CHECK(symlink(target, p) == 0);
    }
    mk_editor_config c = ed->cfg;
    mk_editor *b = NULL, *l = NULL;
    CHECK_OK(mk_editor_init(&c, dir, &b));
    if (b) {
        CHECK(b->tok_json && !b->tok_vocab && !b->tok_merges);
        memcpy(b->block, ed->block, ed->n_params * sizeof(float));
        float k1[NP * 24], k2[NP * 24];
        CHECK_OK(mk_editor_keys(ed, prompts, NP, k1));
        CHECK_OK(mk_editor_keys(b, prompts, NP, k2));
        CHECK(!memcmp(k1, k2, sizeof k1));
        printf("%s keys through tokenizer.json equal those through vocab.json + merges.txt\n",
               memcmp(k1, k2, sizeof k1) ? "FAIL" : "ok  ");
        snprintf(p, sizeof p, "%s/tj.safetensors", tmpdir);
        CHECK_OK(mk_editor_save(b, p));
        CHECK_OK(mk_editor_load(p, &l));
        if (l) {
            CHECK(l->tok_json && !strcmp(l->tok_json, b->tok_json));
            CHECK(!strcmp(mk_editor_fingerprint(l), mk_editor_fingerprint(b)));
        }
        unlink(p);
    }
    mk_editor_free(b);
    mk_editor_free(l);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, dst[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void test_mlp(void) {
    mk_editor *ed = make(MK_PENC_MLP, 3);
    if (!ed) return;
    load_ref_weights(ed);
    float *v = ref("pe.v", NULL), out[3 * 3 * 16];
    CHECK_OK(mk_editor_prompts(ed, v, 3, out));
    cmp_ref_as("pe_mlp.out", "pe_mlp.out (through the editor)", out, sizeof out / sizeof out[0], 1e-5, 1e-4);
    char p[512];
    path(p, sizeof p, "mlp.safetensors");
    CHECK_OK(mk_editor_save(ed, p));
    mk_editor *b = NULL;
    CHECK_OK(mk_editor_load(p, &b));
    if (b) {
        CHECK(b->cfg.kind == MK_PENC_MLP && b->p.pe.qp_w == NULL && b->p.pe.w1 != NULL);
        CHECK(!strcmp(mk_editor_fingerprint(b), mk_editor_fingerprint(ed)));
    }
    free(v);
    unlink(p);
    mk_editor_free(b);
    mk_editor_free(ed);
}

static void test_training(mk_editor *ed) {
    CHECK(mk_editor_rep_backward(ed, MK_HEAD_Q, NULL, NULL) == MK_ERR_ARG); /* no grads yet */
    CHECK_OK(mk_editor_train_alloc(ed));
    mk_editor_zero_grad(ed);
    int R = ed->cfg.R;
    /* the chain of test_editor_modules, through the editor's wiring */
    float out[5 * 24];
    mk_krm_pass pass;
    CHECK_OK(mk_editor_rep_forward(ed, MK_HEAD_Q, sentences, 5, out, &pass));
    cmp_ref_as("chain.out", "chain.out (editor rep_forward, tokenized)", out, (size_t)5 * R, 1e-4, 1e-4);
    float *cr = ref("chain.r", NULL);
    CHECK_OK(mk_editor_rep_backward(ed, MK_HEAD_Q, &pass, cr));
    mk_krm_pass_free(&pass);
    double worst = 0;
    for (int i = 0; i < mk_enc_n_tensors(&ed->enc_cfg); i++) {
        char nm[128], full[200];
        float *d;
        int nd;
        int64_t sh[2];
        mk_enc_tensor(&ed->enc_cfg, &ed->g.enc, i, nm, &d, &nd, sh);
        snprintf(full, sizeof full, "chain.grad.%s", nm);
        size_t m;
        float *r = ref(full, &m);
        /* compared quietly (test_editor_modules prints each tensor) */
        double e = 0;
        int bad = 0;
        for (size_t j = 0; j < m; j++) {
            double dj = fabs((double)d[j] - r[j]);
            e = fmax(e, dj);
            bad += !(dj <= 3e-4 + 1e-3 * fabs(r[j]));
        }
        CHECK(bad == 0);
        if (bad) fprintf(stderr, "FAIL %s: %d values differ, largest %.3g\n", full, bad, e);
        if (e > worst) worst = e;
        free(r);
    }
    printf("     editor rep_backward: %d encoder tensors, largest gradient difference %.3g\n",
           mk_enc_n_tensors(&ed->enc_cfg), worst);
    /* prototype and prompt encoder through the editor */
    mk_editor_zero_grad(ed);
    float pk[24];
    CHECK_OK(mk_editor_proto_forward(ed, pk, &pass));
    float *prr = ref("proto.r", NULL);
    CHECK_OK(mk_editor_proto_backward(ed, &pass, prr));
    mk_krm_pass_free(&pass);
    cmp_ref_as("proto.grad.prototype", "proto.grad.prototype (editor)", ed->g.proto, (size_t)ed->cfg.P * ed->enc_cfg.hidden,
            1e-5, 1e-3);
    cmp_ref_as("proto.grad.k_head.fc1.weight", "proto.grad.k_head.fc1.weight (editor)", ed->g.k.w1, (size_t)R * ed->F, 1e-4, 1e-3);
    mk_editor_zero_grad(ed);
    float *v = ref("pe.v", NULL), pr[3 * 3 * 16], dv[3 * 24] = {0};
    float *per = ref("pe_attn.r", NULL);
    mk_penc_pass pp;
    CHECK_OK(mk_editor_prompts_forward(ed, v, 3, pr, &pp));
    CHECK_OK(mk_editor_prompts_backward(ed, &pp, per, dv));
    mk_penc_pass_free(&pp);
    cmp_ref_as("pe_attn.grad.v", "pe_attn.grad.v (editor)", dv, 3 * 24, 1e-5, 1e-3);
    cmp_ref_as("pe_attn.grad.mha.in_proj_weight", "pe_attn.grad.mha.in_proj_weight (editor)", ed->g.pe.in_w, 3 * 16 * 16, 1e-5, 1e-3);
    /* one Adam step from zero state moves each parameter by about lr * sign(g) */
    float *before = malloc(ed->n_params * sizeof(float));
    memcpy(before, ed->block, ed->n_params * sizeof(float));
    mk_editor_adam_step(ed, 1e-3f, 0.9f, 0.999f, 1e-8f);
    double werr = 0;
    size_t moved = 0;
    for (size_t i = 0; i < ed->n_params; i++) {
        float g = ed->gblock[i];
        double want = g == 0 ? 0 : -1e-3 * g / (fabs(g) + 1e-8);
        werr = fmax(werr, fabs((before[i] - (double)ed->block[i]) + want));
        moved += before[i] != ed->block[i];
    }
    CHECK(werr < 1e-6 && moved > 0 && ed->adam_t == 1);
    printf("     Adam step 1: %zu parameters moved, largest deviation from lr*sign(g) %.3g\n", moved,
           werr);
    free(before), free(cr), free(prr), free(v), free(per);
}

int main(void) {
    CHECK_OK(mk_st_open(REF, &st));
    if (!st) return check_summary("test_editor");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mk_test_editor_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_knowledge_sentence();
    mk_editor *ed = make(MK_PENC_ATTN, 5);
    if (ed) {
        test_init(ed);
        test_tokenizer(ed);
        load_ref_weights(ed);
        test_api(ed);
        test_save_load(ed);
        test_bad_files();
        test_tokenizer_json(ed);
        test_training(ed);
    }
    test_mlp();
    mk_editor_free(ed);
    char p[512];
    path(p, sizeof p, "ed.safetensors");
    unlink(p);
    rmdir(tmpdir);
    mk_st_close(st);
    return check_summary("test_editor");
}
