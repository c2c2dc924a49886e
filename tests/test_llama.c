/* test_llama.c - the Llama engine against the torch reference
 * (tools/ref_llama.py -> tests/data/llama/): logits, loss, prefix and
 * weight gradients, greedy generation, HF vs GGUF layouts, KV-cache
 * decoding vs the batched forward, finite differences, and bad inputs.
 * Quantised variants are in test_llama_quant.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ops.h"
#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/llama.h"
#include "text/tokenizer.h"
#include "util/check.h"
#include "llama_ref.h"

#define DIR "tests/data/llama/"

/* ---------------------------------------------------------------- helpers */

static float batch_loss(const mk_llama *m, ref_batch *rb, float *logits) {
    int rc = mk_llama_forward(m, rb->seqs, rb->B, logits, NULL);
    if (rc) {
        fprintf(stderr, "forward failed: %s\n", mk_errmsg());
        return NAN;
    }
    return mk_cross_entropy(NULL, logits, rb->targets, rb->mask, rb->Ltot,
                            mk_llama_cfg(m)->n_vocab, 1.0f);
}

/* Logits, loss, prefix gradients (and weight gradients when g) of a model
 * against a reference file. */
static void check_model(const char *what, const char *model_path, mk_st *ref, int want_wgrads,
                        double tol_logits, double tol_grad) {
    mk_llama *m = NULL;
    int rc = mk_llama_open(model_path, &m);
    CHECK_OK(rc);
    if (rc) return;
    const mk_llama_config *c = mk_llama_cfg(m);
    ref_batch rb;
    ref_batch_load(&rb, ref, c->dim);
    size_t nl = (size_t)rb.Ltot * c->n_vocab;
    float *logits = calloc(nl, sizeof(float)), *dlogits = calloc(nl, sizeof(float));
    mk_llama_acts *acts = NULL;
    char buf[256];
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, logits, &acts));
    float *rl = ref_get(ref, "logits", nl);
    snprintf(buf, sizeof buf, "%s logits", what);
    check_close(buf, logits, rl, nl, tol_logits, tol_logits);
    float loss = mk_cross_entropy(dlogits, logits, rb.targets, rb.mask, rb.Ltot, c->n_vocab, 1.0f);
    float *rloss = ref_get(ref, "loss", 1);
    snprintf(buf, sizeof buf, "%s loss", what);
    check_close(buf, &loss, rloss, 1, 1e-4, 1e-5);
    mk_llama_grads g = {0};
    if (want_wgrads) CHECK_OK(mk_llama_grads_init(m, &g));
    float *dpre[8] = {0};
    for (int i = 0; i < rb.B; i++)
        if (rb.seqs[i].n_prefix) dpre[i] = calloc((size_t)rb.seqs[i].n_prefix * c->dim, sizeof(float));
    CHECK_OK(mk_llama_backward(m, acts, dlogits, dpre, want_wgrads ? &g : NULL));
    for (int i = 0; i < rb.B; i++) {
        if (!rb.seqs[i].n_prefix) continue;
        char nm[32];
        snprintf(nm, sizeof nm, "dprefix_%d", i);
        size_t n = (size_t)rb.seqs[i].n_prefix * c->dim;
        float *r = ref_get(ref, nm, n);
        snprintf(buf, sizeof buf, "%s %s", what, nm);
        check_close(buf, dpre[i], r, n, tol_grad, 1e-3);
        free(r);
        free(dpre[i]);
    }
    if (want_wgrads && g.block) {
        size_t D = (size_t)c->dim, F = (size_t)c->ffn_dim;
        size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
        struct { const char *name; const float *got; size_t n; } gl[] = {
            {"grad.model.layers.0.input_layernorm.weight", g.attn_norm, D},
            {"grad.model.layers.0.self_attn.q_proj.weight", g.wq, QD * D},
            {"grad.model.layers.0.self_attn.k_proj.weight", g.wk, KD * D},
            {"grad.model.layers.0.self_attn.v_proj.weight", g.wv, KD * D},
            {"grad.model.layers.0.self_attn.o_proj.weight", g.wo, D * QD},
            {"grad.model.layers.0.post_attention_layernorm.weight", g.ffn_norm, D},
            {"grad.model.layers.0.mlp.gate_proj.weight", g.w_gate, F * D},
            {"grad.model.layers.0.mlp.up_proj.weight", g.w_up, F * D},
            {"grad.model.layers.1.mlp.down_proj.weight", g.w_down + D * F, D * F},
            {"grad.model.layers.1.input_layernorm.weight", g.attn_norm + D, D},
            {"grad.model.norm.weight", g.out_norm, D},
        };
        for (size_t i = 0; i < sizeof gl / sizeof gl[0]; i++) {
            float *r = ref_get(ref, gl[i].name, gl[i].n);
            snprintf(buf, sizeof buf, "%s %s", what, gl[i].name);
            check_close(buf, gl[i].got, r, gl[i].n, tol_grad, 1e-3);
            free(r);
        }
        /* a second backward adds the same again */
        float first = g.wq[5];
        CHECK_OK(mk_llama_backward(m, acts, dlogits, NULL, &g));
        CHECK(fabsf(g.wq[5] - 2 * first) <= 1e-6f + 1e-4f * fabsf(first));
    }
    mk_llama_grads_free(&g);
    mk_llama_acts_free(acts);
    /* the forward without activations gives the same logits */
    float *l2 = calloc(nl, sizeof(float));
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, l2, NULL));
    snprintf(buf, sizeof buf, "%s logits (no activations kept)", what);
    check_close(buf, l2, logits, nl, 0, 0);
    /* each sequence alone gives the same logits as in the batch */
    for (int i = 0, off = 0; i < rb.B; off += rb.seqs[i].n_tokens, i++) {
        CHECK_OK(mk_llama_forward(m, &rb.seqs[i], 1, l2, NULL));
        snprintf(buf, sizeof buf, "%s logits of sequence %d alone", what, i);
        check_close(buf, l2, logits + (size_t)off * c->n_vocab,
                    (size_t)rb.seqs[i].n_tokens * c->n_vocab, 1e-5, 1e-5);
        /* KV-cache decoding, token by token after the prefix */
        mk_llama_kv *kv = NULL;
        CHECK_OK(mk_llama_kv_new(m, 0, &kv));
        if (!kv) continue;
        const mk_llama_seq *s = &rb.seqs[i];
        float *lg = malloc((size_t)c->n_vocab * sizeof(float));
        CHECK_OK(mk_llama_decode(m, kv, s->prefix, s->n_prefix, s->tokens, 1, lg));
        double worst = 0;
        for (int t = 1; t <= s->n_tokens; t++) {
            const float *want = logits + (size_t)(off + t - 1) * c->n_vocab;
            for (int v = 0; v < c->n_vocab; v++) {
                double d = fabs(lg[v] - want[v]);
                if (d > worst) worst = d;
            }
            if (t < s->n_tokens) CHECK_OK(mk_llama_decode(m, kv, NULL, 0, s->tokens + t, 1, lg));
        }
        printf("     %s seq %d: KV-cache decoding vs batched forward: largest diff %.3g\n", what, i, worst);
        CHECK(worst <= 1e-4);
        CHECK(mk_llama_kv_len(kv) == s->n_prefix + s->n_tokens);
        free(lg);
        mk_llama_kv_free(kv);
    }
    free(l2);
    free(rl);
    free(rloss);
    free(logits);
    free(dlogits);
    ref_batch_free(&rb);
    mk_llama_close(m);
}

static void check_generation(const char *what, const char *model_path, mk_st *ref) {
    mk_llama *m = NULL;
    CHECK_OK(mk_llama_open_ex(model_path, MK_LLAMA_NO_TOKENIZER, &m));
    if (!m) return;
    int D = mk_llama_cfg(m)->dim;
    size_t np;
    float *pf = ref_get_any(ref, "gen_prompt", &np);
    int32_t prompt[64];
    for (size_t i = 0; i < np; i++) prompt[i] = (int32_t)pf[i];
    size_t npv;
    float *pv = ref_get_any(ref, "gen_prefix_vec", &npv);
    const char *names[2] = {"gen_noprefix", "gen_prefix"};
    for (int wp = 0; wp < 2; wp++) {
        float *want = ref_get(ref, names[wp], 32);
        mk_gen_params p;
        mk_gen_params_default(&p);
        p.max_tokens = 32;
        int32_t out[32];
        int n = 0;
        mk_gen_stats st;
        CHECK_OK(mk_llama_generate(m, wp ? pv : NULL, wp ? (int)(npv / D) : 0, prompt, (int)np, &p,
                                   out, &n, &st));
        int same = n == 32;
        for (int i = 0; i < n && i < 32; i++) same &= out[i] == (int32_t)want[i];
        printf("%s %s %s: greedy 32 tokens %s the reference (n=%d, %d prompt positions)\n",
               same ? "ok  " : "FAIL", what, names[wp], same ? "equal" : "DIFFER from", n,
               st.n_prompt);
        CHECK(same);
        free(want);
    }
    free(pf);
    free(pv);
    mk_llama_close(m);
}

/* ---------------------------------------------------------------- finite differences */

/* Central differences of the batch loss w.r.t. prefix entries. */
static void fd_prefix(const char *model_path, mk_st *ref) {
    mk_llama *m = NULL;
    CHECK_OK(mk_llama_open_ex(model_path, MK_LLAMA_NO_TOKENIZER, &m));
    if (!m) return;
    const mk_llama_config *c = mk_llama_cfg(m);
    ref_batch rb;
    ref_batch_load(&rb, ref, c->dim);
    size_t nl = (size_t)rb.Ltot * c->n_vocab;
    float *logits = calloc(nl, sizeof(float)), *dlogits = calloc(nl, sizeof(float));
    mk_llama_acts *acts = NULL;
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, logits, &acts));
    mk_cross_entropy(dlogits, logits, rb.targets, rb.mask, rb.Ltot, c->n_vocab, 1.0f);
    float *dpre[8] = {0};
    for (int i = 0; i < rb.B; i++)
        if (rb.seqs[i].n_prefix) dpre[i] = calloc((size_t)rb.seqs[i].n_prefix * c->dim, sizeof(float));
    CHECK_OK(mk_llama_backward(m, acts, dlogits, dpre, NULL));
    double worst = 0;
    int bad = 0, n = 0;
    for (int i = 0; i < rb.B; i++) {
        int np = rb.seqs[i].n_prefix;
        if (!np) continue;
        float *pre = (float *)rb.seqs[i].prefix;
        for (int k = 0; k < 6; k++) {
            size_t j = ((size_t)k * 37 + 11) % ((size_t)np * c->dim);
            float save = pre[j], h = 1e-2f;
            pre[j] = save + h;
            double lp = batch_loss(m, &rb, logits);
            pre[j] = save - h;
            double lm = batch_loss(m, &rb, logits);
            pre[j] = save;
            double fd = (lp - lm) / (2 * h), an = dpre[i][j], d = fabs(fd - an);
            if (d > worst) worst = d;
            if (d > 2e-4 + 3e-2 * fabs(an)) {
                bad++;
                fprintf(stderr, "  prefix %d[%zu]: fd %.6g analytic %.6g\n", i, j, fd, an);
            }
            n++;
        }
    }
    check_count++;
    if (bad) check_failures++;
    printf("%s finite differences of %d prefix entries: largest |fd - analytic| %.3g\n",
           bad ? "FAIL" : "ok  ", n, worst);
    for (int i = 0; i < rb.B; i++) free(dpre[i]);
    mk_llama_acts_free(acts);
    free(logits);
    free(dlogits);
    ref_batch_free(&rb);
    mk_llama_close(m);
}

/* Finite differences of weights: the F32 HF model is rewritten to a
 * temporary directory with one entry moved by +-h. */
static void fd_weights(const char *hf_dir, mk_st *ref, const char *tmpdir) {
    mk_llama *m = NULL;
    CHECK_OK(mk_llama_open_ex(hf_dir, MK_LLAMA_NO_TOKENIZER, &m));
    if (!m) return;
    const mk_llama_config cc = *mk_llama_cfg(m), *c = &cc; /* outlives m */
    ref_batch rb;
    ref_batch_load(&rb, ref, c->dim);
    size_t nl = (size_t)rb.Ltot * c->n_vocab;
    float *logits = calloc(nl, sizeof(float)), *dlogits = calloc(nl, sizeof(float));
    mk_llama_acts *acts = NULL;
    mk_llama_grads g;
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, logits, &acts));
    mk_cross_entropy(dlogits, logits, rb.targets, rb.mask, rb.Ltot, c->n_vocab, 1.0f);
    CHECK_OK(mk_llama_grads_init(m, &g));
    CHECK_OK(mk_llama_backward(m, acts, dlogits, NULL, &g));
    mk_llama_acts_free(acts);
    mk_llama_close(m);
    m = NULL;
    size_t D = (size_t)c->dim, F = (size_t)c->ffn_dim, V = (size_t)c->n_vocab;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    struct { const char *name; const float *grad; size_t n; } ts[] = {
        {"model.embed_tokens.weight", g.tok_emb, V * D},
        {"lm_head.weight", g.output, V * D},
        {"model.layers.1.self_attn.q_proj.weight", g.wq + QD * D, QD * D},
        {"model.layers.1.self_attn.k_proj.weight", g.wk + KD * D, KD * D},
        {"model.layers.1.self_attn.v_proj.weight", g.wv + KD * D, KD * D},
        {"model.layers.1.self_attn.o_proj.weight", g.wo + D * QD, D * QD},
        {"model.layers.1.mlp.gate_proj.weight", g.w_gate + F * D, F * D},
        {"model.layers.1.mlp.up_proj.weight", g.w_up + F * D, F * D},
        {"model.layers.0.mlp.down_proj.weight", g.w_down, D * F},
        {"model.layers.1.post_attention_layernorm.weight", g.ffn_norm + D, D},
    };
    double worst = 0;
    int bad = 0, n = 0;
    for (size_t t = 0; t < sizeof ts / sizeof ts[0]; t++) {
        /* the entry with the largest gradient (a meaningful difference) */
        size_t j = 0;
        for (size_t k = 1; k < ts[t].n; k++)
            if (fabsf(ts[t].grad[k]) > fabsf(ts[t].grad[j])) j = k;
        double an = ts[t].grad[j], l[2];
        float h = 1e-2f;
        for (int s = 0; s < 2; s++) {
            if (ref_write_variant(hf_dir, tmpdir, ts[t].name, j, s ? -h : h, NULL, NULL)) {
                CHECK(0);
                l[s] = NAN;
                continue;
            }
            mk_llama *mm = NULL;
            CHECK_OK(mk_llama_open_ex(tmpdir, MK_LLAMA_NO_TOKENIZER, &mm));
            l[s] = mm ? batch_loss(mm, &rb, logits) : NAN;
            mk_llama_close(mm);
        }
        double fd = (l[0] - l[1]) / (2 * h), d = fabs(fd - an);
        if (!(d <= 5e-4 + 3e-2 * fabs(an))) {
            bad++;
            fprintf(stderr, "  %s[%zu]: fd %.6g analytic %.6g\n", ts[t].name, j, fd, an);
        }
        if (d > worst || isnan(d)) worst = d;
        n++;
    }
    check_count++;
    if (bad) check_failures++;
    printf("%s finite differences of %d weight entries (one per tensor): largest |fd - analytic| %.3g\n",
           bad ? "FAIL" : "ok  ", n, worst);
    mk_llama_grads_free(&g);
    free(logits);
    free(dlogits);
    ref_batch_free(&rb);
}

/* ---------------------------------------------------------------- layouts, config */

static void check_layouts(void) {
    mk_llama *h = NULL, *g = NULL;
    CHECK_OK(mk_llama_open(DIR "a_hf", &h));
    CHECK_OK(mk_llama_open(DIR "a.gguf", &g));
    if (!h || !g) goto done;
    const mk_llama_config *ch = mk_llama_cfg(h), *cg = mk_llama_cfg(g);
    CHECK(ch->n_vocab == 512 && ch->dim == 64 && ch->n_layers == 2 && ch->n_heads == 4 &&
          ch->n_kv_heads == 2 && ch->head_dim == 16 && ch->ffn_dim == 160 && ch->n_ctx == 512);
    CHECK(cg->n_vocab == 512 && cg->dim == 64 && cg->n_layers == 2 && cg->n_heads == 4 &&
          cg->n_kv_heads == 2 && cg->head_dim == 16 && cg->ffn_dim == 160 && cg->n_ctx == 512);
    CHECK(ch->rope_interleaved == 0 && cg->rope_interleaved == 1);
    CHECK(!ch->tied_embeddings && !cg->tied_embeddings);
    CHECK(fabsf(ch->norm_eps - 1e-5f) < 1e-9f && fabsf(cg->norm_eps - 1e-5f) < 1e-9f);
    printf("     fingerprints: HF %s, GGUF %s\n", mk_llama_fingerprint(h), mk_llama_fingerprint(g));
    CHECK(strcmp(mk_llama_fingerprint(h), mk_llama_fingerprint(g)) == 0);
    CHECK(mk_llama_weight_bytes(h) > 500000);
    /* random tokens, long enough to exercise several chunks in decode */
    enum { L = 300 };
    int32_t ids[L];
    for (int i = 0; i < L; i++) ids[i] = (int32_t)((i * 7919u + 13u) % 512u);
    float pre[2 * 64];
    for (int i = 0; i < 2 * 64; i++) pre[i] = sinf(0.37f * i);
    mk_llama_seq s = {ids, L, pre, 2};
    float *lh = malloc((size_t)L * 512 * sizeof(float)), *lg = malloc((size_t)L * 512 * sizeof(float));
    CHECK_OK(mk_llama_forward(h, &s, 1, lh, NULL));
    CHECK_OK(mk_llama_forward(g, &s, 1, lg, NULL));
    check_close("HF vs GGUF layout logits (302 positions)", lg, lh, (size_t)L * 512, 2e-4, 1e-4);
    /* chunked prefill (256 rows per chunk) in the KV cache = batched forward */
    mk_llama_kv *kv = NULL;
    CHECK_OK(mk_llama_kv_new(g, 0, &kv));
    float last[512];
    CHECK_OK(mk_llama_decode(g, kv, pre, 2, ids, L, last));
    check_close("GGUF chunked prefill last logits vs forward", last, lg + (size_t)(L - 1) * 512, 512,
                2e-4, 1e-4);
    /* truncate and re-decode the tail */
    mk_llama_kv_truncate(kv, 2 + 100);
    CHECK(mk_llama_kv_len(kv) == 102);
    CHECK_OK(mk_llama_decode(g, kv, NULL, 0, ids + 100, L - 100, last));
    check_close("KV truncate + re-decode last logits", last, lg + (size_t)(L - 1) * 512, 512, 2e-4,
                1e-4);
    mk_llama_kv_free(kv);
    /* embeddings: the same rows both ways */
    float e1[64], e2[64];
    int32_t id = 77;
    CHECK_OK(mk_llama_embed(h, &id, 1, e1));
    CHECK_OK(mk_llama_embed(g, &id, 1, e2));
    check_close("embedding row", e1, e2, 64, 0, 0);
    /* tokenizers of both layouts */
    const mk_tokenizer *th = mk_llama_tokenizer(h), *tg = mk_llama_tokenizer(g);
    if (!th) fprintf(stderr, "HF tokenizer not loaded: %s\n", mk_llama_tokenizer_error(h));
    if (!tg) fprintf(stderr, "GGUF tokenizer not loaded: %s\n", mk_llama_tokenizer_error(g));
    CHECK(th != NULL && tg != NULL);
    if (th && tg) {
        const char *txt = "The patient was given metformin for type 2 diabetes.";
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(mk_tok_encode(th, txt, strlen(txt), 0, &a, &na));
        CHECK_OK(mk_tok_encode(tg, txt, strlen(txt), 0, &b, &nb));
        CHECK(na == nb && na > 0 && na < strlen(txt) && memcmp(a, b, na * sizeof *a) == 0);
        printf("     tokenizers: %zu / %zu ids for %zu bytes\n", na, nb, strlen(txt));
        free(a);
        free(b);
    }
    free(lh);
    free(lg);
done:
    mk_llama_close(h);
    mk_llama_close(g);
}

static void check_rope3_config(void) {
    mk_llama *h = NULL, *g = NULL;
    CHECK_OK(mk_llama_open(DIR "c_rope3_hf", &h));
    CHECK_OK(mk_llama_open(DIR "c_rope3.gguf", &g));
    if (h) {
        const mk_llama_config *c = mk_llama_cfg(h);
        CHECK(c->rope_scaling == MK_ROPE_SCALING_LLAMA3 && c->rope_factor == 8.0f &&
              c->rope_orig_ctx == 32 && c->wtype == MK_BF16);
    }
    if (g) CHECK(mk_llama_cfg(g)->rope_scaling == MK_ROPE_SCALING_LLAMA3 &&
                 mk_llama_cfg(g)->wtype == MK_F16);
    if (h && g) CHECK(strcmp(mk_llama_fingerprint(h), mk_llama_fingerprint(g)) == 0);
    mk_llama_close(h);
    mk_llama_close(g);
}

/* ---------------------------------------------------------------- bad inputs */

static void expect_err(const char *what, int rc, int code, const char *needle) {
    const char *msg = mk_errmsg();
    int ok = rc == code && (!needle || strstr(msg, needle));
    check_count++;
    if (!ok) check_failures++;
    printf("%s %s: %s (%s)\n", ok ? "ok  " : "FAIL", what, mk_status_name(rc), msg);
    mk_clear_error();
}

static void check_bad_inputs(const char *tmp) {
    mk_llama *m = NULL;
    CHECK_OK(mk_llama_open_ex(DIR "a_hf", MK_LLAMA_NO_TOKENIZER, &m));
    if (!m) return;
    float lg[512 * 4];
    int32_t bad[3] = {1, 512, 3};
    mk_llama_seq s = {bad, 3, NULL, 0};
    expect_err("forward with id 512", mk_llama_forward(m, &s, 1, lg, NULL), MK_ERR_RANGE, "512");
    bad[1] = -1;
    expect_err("forward with id -1", mk_llama_forward(m, &s, 1, lg, NULL), MK_ERR_RANGE, "-1");
    int32_t out[4];
    int n;
    mk_gen_params p;
    mk_gen_params_default(&p);
    p.max_tokens = 4;
    expect_err("generate with id -1", mk_llama_generate(m, NULL, 0, bad, 3, &p, out, &n, NULL),
               MK_ERR_RANGE, "out of range");
    int32_t *many = calloc(600, sizeof(int32_t));
    mk_llama_seq s2 = {many, 511, NULL, 2}; /* 513 positions with its prefix */
    float *pre = calloc(2 * 64, sizeof(float));
    s2.prefix = pre;
    float *big = malloc((size_t)600 * 512 * sizeof(float));
    expect_err("forward longer than the context", mk_llama_forward(m, &s2, 1, big, NULL),
               MK_ERR_RANGE, "context");
    s2.n_prefix = 1; /* exactly 512: fine */
    CHECK_OK(mk_llama_forward(m, &s2, 1, big, NULL));
    expect_err("generate longer than the context",
               mk_llama_generate(m, NULL, 0, many, 600, &p, out, &n, NULL), MK_ERR_RANGE, "context");
    mk_llama_kv *kv = NULL;
    CHECK_OK(mk_llama_kv_new(m, 8, &kv));
    if (kv) {
        CHECK_OK(mk_llama_decode(m, kv, NULL, 0, many, 8, NULL));
        expect_err("decode past the cache", mk_llama_decode(m, kv, NULL, 0, many, 1, lg),
                   MK_ERR_RANGE, "context");
        mk_llama_kv_free(kv);
    }
    mk_llama_seq s3 = {many, 0, NULL, 0};
    expect_err("forward of an empty sequence", mk_llama_forward(m, &s3, 1, lg, NULL), MK_ERR_ARG, NULL);
    /* a quantised model refuses weight gradients */
    mk_llama *q = NULL;
    CHECK_OK(mk_llama_open_ex(DIR "a_q8_0.gguf", MK_LLAMA_NO_TOKENIZER, &q));
    mk_llama_grads g;
    if (q) expect_err("weight gradients of a Q8_0 model", mk_llama_grads_init(q, &g), MK_ERR_UNSUPPORTED, "F32");
    mk_llama_close(q);
    free(many);
    free(pre);
    free(big);
    mk_llama_close(m);

    /* broken files */
    mk_llama *x = NULL;
    expect_err("missing path", mk_llama_open(DIR "nope", &x), MK_ERR_IO, NULL);
    CHECK(!ref_write_variant(DIR "a_hf", tmp, NULL, 0, 0, "model.layers.1.mlp.up_proj.weight", NULL));
    expect_err("HF model missing a tensor", mk_llama_open(tmp, &x), MK_ERR_NOTFOUND,
               "model.layers.1.mlp.up_proj.weight");
    CHECK(!ref_write_variant(DIR "a_hf", tmp, NULL, 0, 0, "!model.layers.0.self_attn.k_proj.weight", NULL));
    expect_err("HF model with a misshaped tensor", mk_llama_open(tmp, &x), MK_ERR_MISMATCH,
               "model.layers.0.self_attn.k_proj.weight");
    CHECK(!ref_write_variant(DIR "a_hf", tmp, NULL, 0, 0, NULL,
                             "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\"}"));
    expect_err("HF config of another architecture", mk_llama_open(tmp, &x), MK_ERR_UNSUPPORTED,
               "GPT2LMHeadModel");
    CHECK(!ref_write_variant(DIR "a_hf", tmp, NULL, 0, 0, NULL,
                             "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":512,"
                             "\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                             "\"num_key_value_heads\":2,\"intermediate_size\":160,"
                             "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}"));
    expect_err("HF config with yarn rope scaling", mk_llama_open(tmp, &x), MK_ERR_UNSUPPORTED, "yarn");
    CHECK(!ref_write_variant(DIR "a_hf", tmp, NULL, 0, 0, NULL,
                             "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":512,"
                             "\"hidden_size\":64,\"num_hidden_layers\":3,\"num_attention_heads\":4,"
                             "\"num_key_value_heads\":2,\"intermediate_size\":160}"));
    expect_err("HF config with more layers than the file", mk_llama_open(tmp, &x), MK_ERR_NOTFOUND,
               "model.layers.2");
    /* GGUF variants written with the project's GGUF writer */
    char gpath[512];
    snprintf(gpath, sizeof gpath, "%s/bad.gguf", tmp);
    CHECK(!ref_write_gguf(DIR "a_hf", gpath, "gpt2", NULL, NULL, MK_F32));
    expect_err("GGUF of another architecture", mk_llama_open(gpath, &x), MK_ERR_UNSUPPORTED, "gpt2");
    CHECK(!ref_write_gguf(DIR "a_hf", gpath, "llama", "blk.0.ffn_gate.weight", NULL, MK_F32));
    expect_err("GGUF missing a tensor", mk_llama_open(gpath, &x), MK_ERR_NOTFOUND, "blk.0.ffn_gate.weight");
    CHECK(!ref_write_gguf(DIR "a_hf", gpath, "llama", NULL, "blk.1.attn_norm.weight", MK_F32));
    expect_err("GGUF with a norm stored as Q8_0", mk_llama_open(gpath, &x), MK_ERR_UNSUPPORTED,
               "blk.1.attn_norm.weight");
    CHECK(!ref_write_gguf(DIR "a_hf", gpath, "llama", NULL, NULL, MK_F32));
    CHECK(!ref_patch_gguf_type(gpath, "blk.0.attn_v.weight", 12 /* GGML Q4_K */));
    x = NULL;
    int rc = mk_llama_open(gpath, &x);
    int ok = rc == MK_ERR_UNSUPPORTED || rc == MK_ERR_FORMAT;
    check_count++;
    if (!ok) check_failures++;
    printf("%s GGUF with a Q4_K tensor: %s (%s)\n", ok ? "ok  " : "FAIL", mk_status_name(rc), mk_errmsg());
    mk_clear_error();
    mk_llama_close(x);
    /* the converted GGUF (our writer + our permutation) still gives the same logits */
    CHECK(!ref_write_gguf(DIR "a_hf", gpath, "llama", NULL, NULL, MK_F32));
    mk_llama *a = NULL, *b = NULL;
    CHECK_OK(mk_llama_open(gpath, &a));
    CHECK_OK(mk_llama_open(DIR "a.gguf", &b));
    if (a && b) {
        int32_t ids[9] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
        mk_llama_seq ss = {ids, 9, NULL, 0};
        float *la = malloc(9 * 512 * sizeof(float)), *lb = malloc(9 * 512 * sizeof(float));
        CHECK_OK(mk_llama_forward(a, &ss, 1, la, NULL));
        CHECK_OK(mk_llama_forward(b, &ss, 1, lb, NULL));
        check_close("C-written GGUF vs Python-written GGUF logits", la, lb, 9 * 512, 1e-5, 1e-5);
        free(la);
        free(lb);
    }
    mk_llama_close(a);
    mk_llama_close(b);
    /* tied embeddings in GGUF: no output.weight; same logits as the HF copy */
    a = b = NULL;
    CHECK(!ref_write_gguf(DIR "b_tied_hf", gpath, "llama", NULL, NULL, MK_F16));
    CHECK_OK(mk_llama_open(gpath, &a));
    CHECK_OK(mk_llama_open(DIR "b_tied_hf", &b));
    if (a && b) {
        CHECK(mk_llama_cfg(a)->tied_embeddings && mk_llama_cfg(b)->tied_embeddings);
        int32_t ids[9] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
        float pv[64 * 2];
        for (int i = 0; i < 128; i++) pv[i] = cosf(0.1f * i);
        mk_llama_seq ss = {ids, 9, pv, 2};
        float *la = malloc(9 * 512 * sizeof(float)), *lb = malloc(9 * 512 * sizeof(float));
        CHECK_OK(mk_llama_forward(a, &ss, 1, la, NULL));
        CHECK_OK(mk_llama_forward(b, &ss, 1, lb, NULL));
        check_close("tied model: GGUF (no output.weight) vs HF logits", la, lb, 9 * 512, 2e-4, 1e-4);
        free(la);
        free(lb);
    }
    mk_llama_close(a);
    mk_llama_close(b);
}

/* ---------------------------------------------------------------- owned weights, saving */

static void check_own_and_save(const char *tmp, mk_st *ra, mk_st *rc) {
    mk_llama *m = NULL, *f = NULL;
    CHECK_OK(mk_llama_open_ex(DIR "a_hf", MK_LLAMA_NO_TOKENIZER | MK_LLAMA_OWN_WEIGHTS, &m));
    CHECK_OK(mk_llama_open_ex(DIR "a_hf", MK_LLAMA_NO_TOKENIZER, &f));
    if (!m || !f) goto done;
    mk_llama_grads p, g, none;
    CHECK(mk_llama_params(f, &none) == MK_ERR_UNSUPPORTED);
    mk_clear_error();
    CHECK_OK(mk_llama_params(m, &p));
    CHECK_OK(mk_llama_grads_init(m, &g));
    CHECK(p.n == g.n && p.block && p.output && p.wq);
    ref_batch rb;
    ref_batch_load(&rb, ra, 64);
    size_t nl = (size_t)rb.Ltot * 512;
    float *l0 = malloc(nl * sizeof(float)), *l1 = malloc(nl * sizeof(float));
    float *dl = malloc(nl * sizeof(float));
    CHECK_OK(mk_llama_forward(f, rb.seqs, rb.B, l0, NULL));
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, l1, NULL));
    check_close("owned F32 copy vs weights read in place: logits", l1, l0, nl, 0, 0);
    /* a few plain SGD steps with one flat loop over the parameter block */
    float loss0 = 0, loss = 0;
    for (int step = 0; step < 5; step++) {
        mk_llama_acts *acts = NULL;
        CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, l1, &acts));
        memset(dl, 0, nl * sizeof(float));
        loss = mk_cross_entropy(dl, l1, rb.targets, rb.mask, rb.Ltot, 512, 1.0f);
        if (step == 0) loss0 = loss;
        mk_llama_grads_zero(&g);
        CHECK_OK(mk_llama_backward(m, acts, dl, NULL, &g));
        mk_llama_acts_free(acts);
        for (size_t i = 0; i < p.n; i++) p.block[i] -= 0.05f * g.block[i];
    }
    printf("%s 5 SGD steps on the owned weights: loss %.4f -> %.4f\n", loss < loss0 ? "ok  " : "FAIL",
           loss0, loss);
    check_count++;
    if (!(loss < loss0)) check_failures++;
    /* save, reopen (read in place), same logits */
    char path[512];
    snprintf(path, sizeof path, "%s/trained.gguf", tmp);
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, l1, NULL));
    CHECK_OK(mk_llama_save_gguf(m, path, MK_F32));
    mk_llama *s = NULL;
    CHECK_OK(mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, &s));
    if (s) {
        CHECK_OK(mk_llama_forward(s, rb.seqs, rb.B, l0, NULL));
        check_close("saved GGUF of the trained weights: logits", l0, l1, nl, 2e-5, 1e-5);
        mk_llama_close(s);
    }
    mk_llama_grads_free(&g);
    /* a quantised model copied to F32 computes the same and accepts gradients */
    mk_llama *q = NULL, *qo = NULL;
    CHECK_OK(mk_llama_open_ex(DIR "a_q4_0.gguf", MK_LLAMA_NO_TOKENIZER, &q));
    CHECK_OK(mk_llama_open_ex(DIR "a_q4_0.gguf", MK_LLAMA_NO_TOKENIZER | MK_LLAMA_OWN_WEIGHTS, &qo));
    if (q && qo) {
        CHECK_OK(mk_llama_forward(q, rb.seqs, rb.B, l0, NULL));
        CHECK_OK(mk_llama_forward(qo, rb.seqs, rb.B, l1, NULL));
        check_close("Q4_0 read in place vs its owned F32 copy: logits", l1, l0, nl, 2e-5, 1e-5);
        CHECK_OK(mk_llama_grads_init(qo, &g));
        mk_llama_grads_free(&g);
        CHECK(strcmp(mk_llama_fingerprint(q), mk_llama_fingerprint(qo)) == 0);
    }
    mk_llama_close(q);
    mk_llama_close(qo);
    free(l0);
    free(l1);
    free(dl);
    ref_batch_free(&rb);
    /* an HF model with Llama-3.1 rope scaling saved as GGUF (permuted Q/K,
     * rope_freqs.weight) matches the torch reference */
    mk_llama *c = NULL, *cg = NULL;
    CHECK_OK(mk_llama_open_ex(DIR "c_rope3_hf", MK_LLAMA_NO_TOKENIZER, &c));
    snprintf(path, sizeof path, "%s/c_saved.gguf", tmp);
    if (c) CHECK_OK(mk_llama_save_gguf(c, path, MK_F32));
    CHECK_OK(mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, &cg));
    if (cg) {
        CHECK(mk_llama_cfg(cg)->rope_scaling == MK_ROPE_SCALING_LLAMA3);
        ref_batch_load(&rb, rc, 64);
        nl = (size_t)rb.Ltot * 512;
        l0 = malloc(nl * sizeof(float));
        float *want = ref_get(rc, "logits", nl);
        CHECK_OK(mk_llama_forward(cg, rb.seqs, rb.B, l0, NULL));
        check_close("C model (HF, llama3 rope) saved as GGUF: logits vs torch", l0, want, nl, 2e-4, 2e-4);
        free(want);
        free(l0);
        ref_batch_free(&rb);
    }
    mk_llama_close(c);
    mk_llama_close(cg);
done:
    mk_llama_close(m);
    mk_llama_close(f);
}

/* ---------------------------------------------------------------- sampling */

static void check_sampling(void) {
    mk_rng r1, r2;
    mk_rng_seed(&r1, 7);
    mk_rng_seed(&r2, 7);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= mk_rng_next(&r1) == mk_rng_next(&r2);
    CHECK(same);
    float lg[8] = {0, 1, 2, 3, 4, 5, 6, 7}, tmp[8];
    mk_gen_params p;
    mk_gen_params_default(&p);
    memcpy(tmp, lg, sizeof lg);
    CHECK(mk_sample(tmp, 8, &p, &r1) == 7);
    p.temperature = 1.0f;
    p.top_k = 2;
    int counts[8] = {0};
    for (int i = 0; i < 4000; i++) {
        memcpy(tmp, lg, sizeof lg);
        counts[mk_sample(tmp, 8, &p, &r1)]++;
    }
    /* top-2 of softmax(6,7): p(7) = e/(1+e) = 0.731 */
    CHECK(counts[6] + counts[7] == 4000);
    double pk = counts[7] / 4000.0;
    CHECK(fabs(pk - 0.731) < 0.03);
    p.top_k = 0;
    p.top_p = 0.7f; /* 7 alone has 0.63 of the mass, 7+6 reach 0.86 */
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 4000; i++) {
        memcpy(tmp, lg, sizeof lg);
        counts[mk_sample(tmp, 8, &p, &r1)]++;
    }
    CHECK(counts[6] + counts[7] == 4000 && counts[6] > 600);
    p.top_p = 1.0f;
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 8000; i++) {
        memcpy(tmp, lg, sizeof lg);
        counts[mk_sample(tmp, 8, &p, &r1)]++;
    }
    CHECK(counts[0] > 0 && fabs(counts[7] / 8000.0 - 0.6323) < 0.03);
    printf("     sampling: top-k 2 gave p(7)=%.3f (0.731), full softmax p(7)=%.3f (0.632)\n",
           pk, counts[7] / 8000.0);
    /* seeded generation is reproducible, and differs between seeds */
    mk_llama *m = NULL;
    CHECK_OK(mk_llama_open_ex(DIR "a.gguf", MK_LLAMA_NO_TOKENIZER, &m));
    if (!m) return;
    int32_t prompt[3] = {5, 6, 7}, o1[20], o2[20], o3[20];
    int n1, n2, n3;
    mk_gen_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 0.95f;
    p.top_k = 40;
    p.max_tokens = 20;
    p.seed = 1;
    CHECK_OK(mk_llama_generate(m, NULL, 0, prompt, 3, &p, o1, &n1, NULL));
    CHECK_OK(mk_llama_generate(m, NULL, 0, prompt, 3, &p, o2, &n2, NULL));
    p.seed = 2;
    CHECK_OK(mk_llama_generate(m, NULL, 0, prompt, 3, &p, o3, &n3, NULL));
    CHECK(n1 == 20 && n2 == 20 && memcmp(o1, o2, sizeof o1) == 0 && memcmp(o1, o3, sizeof o1) != 0);
    /* EOS stops generation (the EOS itself is returned) */
    mk_gen_params_default(&p);
    p.max_tokens = 20;
    CHECK_OK(mk_llama_generate(m, NULL, 0, prompt, 3, &p, o1, &n1, NULL));
    p.eos_id = o1[4];
    int first = 0;
    while (o1[first] != p.eos_id) first++;
    CHECK_OK(mk_llama_generate(m, NULL, 0, prompt, 3, &p, o2, &n2, NULL));
    CHECK(n2 == first + 1 && o2[first] == p.eos_id);
    mk_llama_close(m);
}

int main(void) {
    char tmp[] = "/tmp/mk_test_llama_XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    mk_st *ra = NULL, *rb = NULL, *rc = NULL;
    CHECK_OK(mk_st_open(DIR "ref_a.safetensors", &ra));
    CHECK_OK(mk_st_open(DIR "ref_b.safetensors", &rb));
    CHECK_OK(mk_st_open(DIR "ref_c.safetensors", &rc));
    if (!ra || !rb || !rc) return check_summary("test_llama");

    check_layouts();
    check_model("A HF F32", DIR "a_hf", ra, 1, 1e-4, 1e-5);
    check_model("A GGUF F32", DIR "a.gguf", ra, 0, 1e-4, 1e-5);
    check_generation("A HF F32", DIR "a_hf", ra);
    check_generation("A GGUF F32", DIR "a.gguf", ra);
    check_model("B tied HF F16", DIR "b_tied_hf", rb, 0, 1e-4, 1e-5);
    check_generation("B tied HF F16", DIR "b_tied_hf", rb);
    check_rope3_config();
    check_model("C llama3-rope HF BF16", DIR "c_rope3_hf", rc, 0, 2e-4, 1e-5);
    check_model("C llama3-rope GGUF F16", DIR "c_rope3.gguf", rc, 0, 2e-4, 1e-5);
    check_generation("C llama3-rope GGUF F16", DIR "c_rope3.gguf", rc);
    fd_prefix(DIR "a_hf", ra);
    fd_weights(DIR "a_hf", ra, tmp);
    check_bad_inputs(tmp);
    check_own_and_save(tmp, ra, rc);
    check_sampling();

    mk_st_close(ra);
    mk_st_close(rb);
    mk_st_close(rc);
    ref_rmtree(tmp);
    return check_summary("test_llama");
}
