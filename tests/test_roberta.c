/* test_roberta.c - the RoBERTa encoder against PyTorch (tools/ref_editor.py):
 * forward (hidden states, pooler) on a padded batch of explicit token ids,
 * the embedding-free path, the gradient of every weight and of the layer
 * inputs, finite differences of the backward, and bad configs / weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/roberta.h"
#include "util/check.h"
#include "util/ref.h"

#define DIR "tests/data/editor/encoder"
#define REF "tests/data/editor/ref.safetensors"

static mk_st *st;

static float *ref(const char *name, size_t *n) { return ref_tensor(st, name, n, "tools/ref_editor.py"); }

/* loss = sum(last * rh) + sum(pooled * rp), accumulated in double */
static double enc_loss(const mk_enc_acts *a, const float *rh, const float *rp) {
    double s = 0;
    size_t nlh = (size_t)a->n * a->L * a->H, nh = (size_t)a->n * a->H;
    const float *h = mk_enc_last_hidden(a);
    for (size_t i = 0; i < nlh; i++) s += (double)h[i] * rh[i];
    for (size_t i = 0; i < nh; i++) s += (double)a->pooled[i] * rp[i];
    return s;
}

/* Compare every tensor of g with "<prefix><hf name>" in the reference
 * (skipping the embeddings when skip_emb). */
static void compare_grads(const mk_enc_config *cfg, const mk_enc_params *g, const char *prefix,
                          int skip_emb, double atol, double rtol) {
    double worst = 0;
    for (int i = 0; i < mk_enc_n_tensors(cfg); i++) {
        char name[128], full[200];
        float *data;
        int nd;
        int64_t shape[2];
        mk_enc_tensor(cfg, g, i, name, &data, &nd, shape);
        if (skip_emb && !strncmp(name, "embeddings.", 11)) continue;
        snprintf(full, sizeof full, "%s%s", prefix, name);
        size_t n;
        float *r = ref(full, &n);
        CHECK(n == (size_t)shape[0] * (size_t)(nd == 2 ? shape[1] : 1));
        double d = check_close(full, data, r, n, atol, rtol);
        if (d > worst) worst = d;
        free(r);
    }
    printf("     largest gradient difference over %s*: %.3g\n", prefix, worst);
}

/* Finite differences of the ids-path loss for a few entries of each weight
 * tensor; g holds the analytic gradient. */
static void fd_check(const mk_enc_config *cfg, mk_enc_params *p, const mk_enc_params *g,
                     const int32_t *ids, const float *mask, mk_enc_acts *a, const float *rh,
                     const float *rp) {
    const float h = 1e-2f;
    double worst = 0;
    int bad = 0, count = 0;
    unsigned seed = 7;
    for (int i = 0; i < mk_enc_n_tensors(cfg); i++) {
        char name[128];
        float *pd, *gd;
        int nd;
        int64_t shape[2];
        mk_enc_tensor(cfg, p, i, name, &pd, &nd, shape);
        mk_enc_tensor(cfg, g, i, name, &gd, &nd, shape);
        size_t n = (size_t)shape[0] * (size_t)(nd == 2 ? shape[1] : 1);
        for (int k = 0; k < 2; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t j = (seed >> 8) % n;
            if (!strcmp(name, "embeddings.word_embeddings.weight")) j = (size_t)ids[1] * cfg->hidden + k;
            float old = pd[j];
            pd[j] = old + h;
            mk_enc_forward(cfg, p, ids, mask, a);
            double lp = enc_loss(a, rh, rp);
            pd[j] = old - h;
            mk_enc_forward(cfg, p, ids, mask, a);
            double lm = enc_loss(a, rh, rp);
            pd[j] = old;
            double fd = (lp - lm) / (2 * h), an = gd[j], err = fabs(fd - an);
            count++;
            if (err > 2e-2 + 2e-2 * fabs(an)) {
                bad++;
                fprintf(stderr, "FD mismatch %s[%zu]: finite diff %.6g, backward %.6g\n", name, j,
                        fd, an);
            }
            if (err > worst) worst = err;
        }
    }
    check_count++;
    if (bad) check_failures++;
    printf("%s finite differences: %d entries, largest |fd - backward| %.3g (tol 2e-2 + 2e-2|g|)\n",
           bad ? "FAIL" : "ok  ", count, worst);
}

static void test_ids_path(const mk_encoder *e) {
    const mk_enc_config *cfg = &e->cfg;
    size_t nid;
    float *idsf = ref("enc.ids", &nid), *mask = ref("enc.mask", NULL);
    const mk_tensor_view *tv = mk_st_find(st, "enc.ids");
    int n = (int)tv->shape[0], L = (int)tv->shape[1], H = cfg->hidden;
    int32_t *ids = malloc(nid * sizeof *ids);
    for (size_t i = 0; i < nid; i++) ids[i] = (int32_t)idsf[i];
    float *rh = ref("enc.r_hidden", NULL), *rp = ref("enc.r_pooled", NULL);
    float *hs = ref("enc.hidden", NULL), *po = ref("enc.pooled", NULL);

    mk_enc_acts a;
    CHECK_OK(mk_enc_acts_alloc(cfg, n, L, 1, 1, &a));
    CHECK_OK(mk_enc_forward(cfg, &e->p, ids, mask, &a));
    check_close("encoder last hidden (5 x 24 x 32, padded)", mk_enc_last_hidden(&a), hs,
                (size_t)n * L * H, 1e-4, 1e-4);
    check_close("encoder pooler", a.pooled, po, (size_t)n * H, 1e-5, 1e-4);
    /* the mask derived from the ids (pad = 1) gives the same result */
    mk_enc_acts b;
    CHECK_OK(mk_enc_acts_alloc(cfg, n, L, 1, 0, &b));
    CHECK_OK(mk_enc_forward(cfg, &e->p, ids, NULL, &b));
    check_close("encoder inference mode (mask from ids)", mk_enc_last_hidden(&b), hs,
                (size_t)n * L * H, 1e-4, 1e-4);
    CHECK(mk_enc_backward(cfg, &e->p, &b, NULL, b.pooled, NULL, NULL) == MK_ERR_ARG);
    mk_enc_acts_free(&b);

    size_t np = mk_enc_n_params(cfg);
    float *gb = calloc(np, sizeof(float));
    mk_enc_params g;
    mk_enc_point(&g, gb, cfg);
    CHECK_OK(mk_enc_backward(cfg, &e->p, &a, rh, rp, &g, NULL));
    compare_grads(cfg, &g, "enc.grad.", 0, 2e-4, 1e-3);
    /* backward adds: a second run doubles every gradient */
    float *gb2 = malloc(np * sizeof(float));
    memcpy(gb2, gb, np * sizeof(float));
    CHECK_OK(mk_enc_backward(cfg, &e->p, &a, rh, rp, &g, NULL));
    for (size_t i = 0; i < np; i++) gb2[i] *= 2;
    check_close("backward accumulates (2 runs = 2x)", gb, gb2, np, 1e-4, 1e-5);
    for (size_t i = 0; i < np; i++) gb[i] = gb2[i] / 2;

    /* finite differences on a private copy of the weights */
    float *pb = malloc(np * sizeof(float));
    memcpy(pb, e->block, np * sizeof(float));
    mk_enc_params p;
    mk_enc_point(&p, pb, cfg);
    fd_check(cfg, &p, &g, ids, mask, &a, rh, rp);

    /* an id outside the vocabulary is refused */
    int32_t keep = ids[3];
    ids[3] = cfg->vocab;
    CHECK(mk_enc_forward(cfg, &e->p, ids, mask, &a) == MK_ERR_RANGE);
    ids[3] = keep;

    mk_enc_acts_free(&a);
    free(pb), free(gb), free(gb2), free(ids), free(idsf), free(mask), free(rh), free(rp);
    free(hs), free(po);
}

static void test_embeds_path(const mk_encoder *e) {
    const mk_enc_config *cfg = &e->cfg;
    const mk_tensor_view *tv = mk_st_find(st, "emb.inp");
    int n = (int)tv->shape[0], L = (int)tv->shape[1], H = cfg->hidden;
    size_t nlh = (size_t)n * L * H;
    float *inp = ref("emb.inp", NULL), *hs = ref("emb.hidden", NULL), *po = ref("emb.pooled", NULL);
    float *rh = ref("emb.r_hidden", NULL), *rp = ref("emb.r_pooled", NULL);
    float *dinp_ref = ref("emb.grad.inp", NULL);
    mk_enc_acts a;
    CHECK_OK(mk_enc_acts_alloc(cfg, n, L, 0, 1, &a));
    CHECK_OK(mk_enc_forward_embeds(cfg, &e->p, inp, &a));
    check_close("embedding-free last hidden (2 x 7 x 32)", mk_enc_last_hidden(&a), hs, nlh, 1e-4,
                1e-4);
    check_close("embedding-free pooler", a.pooled, po, (size_t)n * H, 1e-5, 1e-4);
    size_t np = mk_enc_n_params(cfg);
    float *gb = calloc(np, sizeof(float)), *dinp = calloc(nlh, sizeof(float));
    mk_enc_params g;
    mk_enc_point(&g, gb, cfg);
    CHECK_OK(mk_enc_backward(cfg, &e->p, &a, rh, rp, &g, dinp));
    check_close("embedding-free d(layer input)", dinp, dinp_ref, nlh, 2e-4, 1e-3);
    compare_grads(cfg, &g, "emb.grad.", 1, 2e-4, 1e-3);
    /* embeddings untouched by this path */
    double s = 0;
    for (size_t i = 0; i < (size_t)cfg->vocab * H; i++) s += fabs(g.wte[i]);
    CHECK(s == 0);

    /* finite differences of the input gradient */
    double worst = 0;
    int bad = 0;
    for (int k = 0; k < 16; k++) {
        size_t j = ((size_t)k * 2654435761u) % nlh;
        float old = inp[j];
        const float h = 1e-2f;
        inp[j] = old + h;
        mk_enc_forward_embeds(cfg, &e->p, inp, &a);
        double lp = enc_loss(&a, rh, rp);
        inp[j] = old - h;
        mk_enc_forward_embeds(cfg, &e->p, inp, &a);
        double lm = enc_loss(&a, rh, rp);
        inp[j] = old;
        double fd = (lp - lm) / (2 * h), err = fabs(fd - dinp[j]);
        if (err > 2e-2 + 2e-2 * fabs(dinp[j])) bad++;
        if (err > worst) worst = err;
    }
    check_count++;
    if (bad) check_failures++;
    printf("%s finite differences of d(layer input): 16 entries, largest diff %.3g\n",
           bad ? "FAIL" : "ok  ", worst);
    mk_enc_acts_free(&a);
    free(gb), free(dinp), free(inp), free(hs), free(po), free(rh), free(rp), free(dinp_ref);
}

static void test_configs(void) {
    mk_enc_config c;
    CHECK_OK(mk_enc_config_parse("{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":8,"
                                 "\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                                 "\"intermediate_size\":16}",
                                 "bert.json", &c));
    CHECK(c.type == MK_ENC_BERT && c.pad_id == 0 && c.type_vocab == 2 && c.max_pos == 512);
    CHECK(fabsf(c.ln_eps - 1e-12f) < 1e-15f);
    CHECK(mk_enc_max_len(&c) == 512);
    char *j = mk_enc_config_json(&c);
    mk_enc_config c2;
    CHECK_OK(mk_enc_config_parse(j, "roundtrip", &c2));
    CHECK(c2.type == c.type && c2.hidden == c.hidden && c2.ln_eps == c.ln_eps &&
          c2.vocab == c.vocab && c2.inter == c.inter);
    free(j);
    const char *bad[] = {
        "{\"model_type\":\"gpt2\",\"vocab_size\":100,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":9,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":8,\"num_hidden_layers\":-1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":8,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"hidden_act\":\"relu\"}",
        "{\"model_type\":\"roberta\",\"vocab_size\":100,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"max_position_embeddings\":3}",
        "{\"model_type\":\"bert\",\"vocab_size\":1e30,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "[1,2]",
        "{\"model_type\":",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = mk_enc_config_parse(bad[i], "bad.json", &c);
        CHECK(rc != MK_OK);
        printf("     bad config %zu refused: %s\n", i, mk_errmsg());
    }
}

/* a missing or misshaped weight is refused with its name */
static const mk_tensor_view *find_drop(void *ctx, const char *name) {
    if (strstr(name, "layer.1.intermediate.dense.bias")) return NULL;
    return mk_weights_find((const mk_weights *)ctx, name);
}

static const mk_tensor_view *find_wrong(void *ctx, const char *name) {
    if (strstr(name, "layer.0.output.dense.weight"))
        return mk_weights_find((const mk_weights *)ctx, "roberta.encoder.layer.0.intermediate.dense.weight");
    return mk_weights_find((const mk_weights *)ctx, name);
}

static const mk_tensor_view *find_nopool(void *ctx, const char *name) {
    if (strstr(name, "pooler.")) return NULL;
    return mk_weights_find((const mk_weights *)ctx, name);
}

static void test_bad_weights(const mk_encoder *e) {
    mk_weights *w;
    CHECK_OK(mk_weights_open(DIR, &w));
    size_t np = mk_enc_n_params(&e->cfg);
    float *b = malloc(np * sizeof(float));
    mk_enc_params p;
    mk_enc_point(&p, b, &e->cfg);
    int rc = mk_enc_load_tensors(&e->cfg, &p, find_drop, w, "test", NULL);
    CHECK(rc == MK_ERR_NOTFOUND && strstr(mk_errmsg(), "intermediate.dense.bias"));
    printf("     missing tensor: %s\n", mk_errmsg());
    rc = mk_enc_load_tensors(&e->cfg, &p, find_wrong, w, "test", NULL);
    CHECK(rc == MK_ERR_MISMATCH && strstr(mk_errmsg(), "shape"));
    printf("     misshaped tensor: %s\n", mk_errmsg());
    /* a checkpoint without pooler (masked-LM): allowed only when asked */
    int nopool = 0;
    CHECK(mk_enc_load_tensors(&e->cfg, &p, find_nopool, w, "test", NULL) == MK_ERR_NOTFOUND);
    CHECK_OK(mk_enc_load_tensors(&e->cfg, &p, find_nopool, w, "test", &nopool));
    CHECK(nopool == 1);
    mk_weights_close(w);
    free(b);
    mk_encoder *x = NULL;
    CHECK(mk_encoder_open("tests/data/editor/no-such-dir", MK_ENC_NO_TOKENIZER, &x) != MK_OK);
    CHECK(x == NULL);
    /* a config far larger than its weights: refused before allocating */
    char dir[] = "/tmp/mk_test_roberta_XXXXXX", p1[64], p2[64], cwd[1024];
    if (mkdtemp(dir) && getcwd(cwd, sizeof cwd)) {
        snprintf(p1, sizeof p1, "%s/config.json", dir);
        snprintf(p2, sizeof p2, "%s/model.safetensors", dir);
        FILE *f = fopen(p1, "w");
        fputs("{\"model_type\":\"roberta\",\"vocab_size\":9000000,\"hidden_size\":4096,"
              "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":64,"
              "\"max_position_embeddings\":40}", f);
        fclose(f);
        char target[1200];
        snprintf(target, sizeof target, "%s/" DIR "/model.safetensors", cwd);
        CHECK(symlink(target, p2) == 0);
        rc = mk_encoder_open(dir, MK_ENC_NO_TOKENIZER, &x);
        CHECK(rc == MK_ERR_FORMAT && x == NULL);
        printf("     oversized config: %s\n", mk_errmsg());
        unlink(p1), unlink(p2), rmdir(dir);
    }
}

/* BERT: positions 0..L-1, two token types (type 0 used), pad 0, eps 1e-12;
 * same layers as the RoBERTa fixture, stored with the "bert." prefix */
static void test_bert(void) {
    mk_st *keep = st;
    CHECK_OK(mk_st_open("tests/data/editor/ref_bert.safetensors", &st));
    mk_encoder *e = NULL;
    CHECK_OK(mk_encoder_open("tests/data/editor/bert", MK_ENC_NO_TOKENIZER, &e));
    if (st && e) {
        const mk_enc_config *cfg = &e->cfg;
        CHECK(cfg->type == MK_ENC_BERT && cfg->pad_id == 0 && cfg->type_vocab == 2);
        CHECK(mk_enc_max_len(cfg) == cfg->max_pos);
        size_t nid;
        float *idsf = ref("ids", &nid), *mask = ref("mask", NULL);
        const mk_tensor_view *tv = mk_st_find(st, "ids");
        int n = (int)tv->shape[0], L = (int)tv->shape[1], H = cfg->hidden;
        int32_t *ids = malloc(nid * sizeof *ids);
        for (size_t i = 0; i < nid; i++) ids[i] = (int32_t)idsf[i];
        float *rh = ref("r_hidden", NULL), *rp = ref("r_pooled", NULL);
        float *hs = ref("hidden", NULL), *po = ref("pooled", NULL);
        mk_enc_acts a;
        CHECK_OK(mk_enc_acts_alloc(cfg, n, L, 1, 1, &a));
        CHECK_OK(mk_enc_forward(cfg, &e->p, ids, mask, &a));
        check_close("BERT last hidden", mk_enc_last_hidden(&a), hs, (size_t)n * L * H, 1e-4, 1e-4);
        check_close("BERT pooler", a.pooled, po, (size_t)n * H, 1e-5, 1e-4);
        size_t np = mk_enc_n_params(cfg);
        float *gb = calloc(np, sizeof(float));
        mk_enc_params g;
        mk_enc_point(&g, gb, cfg);
        CHECK_OK(mk_enc_backward(cfg, &e->p, &a, rh, rp, &g, NULL));
        compare_grads(cfg, &g, "grad.", 0, 2e-4, 1e-3);
        mk_enc_acts_free(&a);
        free(gb), free(ids), free(idsf), free(mask), free(rh), free(rp), free(hs), free(po);
    }
    mk_encoder_free(e);
    mk_st_close(st);
    st = keep;
}

int main(void) {
    CHECK_OK(mk_st_open(REF, &st));
    if (!st) return check_summary("test_roberta");
    mk_encoder *e = NULL;
    CHECK_OK(mk_encoder_open(DIR, MK_ENC_NO_TOKENIZER, &e));
    if (e) {
        CHECK(e->cfg.type == MK_ENC_ROBERTA && e->cfg.hidden == 32 && e->cfg.n_layers == 2);
        CHECK(mk_enc_max_len(&e->cfg) == 38);
        CHECK(!e->pooler_initialised);
        test_ids_path(e);
        test_embeds_path(e);
        test_bad_weights(e);
    }
    test_configs();
    test_bert();
    mk_encoder_free(e);
    mk_st_close(st);
    return check_summary("test_roberta");
}
