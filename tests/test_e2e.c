/* test_e2e.c - MedREK end to end (spec sections 2-6) against the PyTorch
 * reference tools/ref_e2e.py wrote into tests/data/e2e/: for each of the
 * two editors (prompt encoder "attn" and "mlp") made in torch for the LLM
 * tests/data/llama/a.gguf, through the session API and a fresh knowledge
 * base file:
 *   - the editor file loads and fits the LLM (fingerprint computed in torch);
 *   - token ids of every text (encoder and LLM tokenizers) are the reference's;
 *   - 61 edits encoded (mk_session_encode): keys, values, prompts and the
 *     prototype key against torch; inserted with mk_kb_insert and reloaded
 *     (the stored vectors are the encoded ones, bit for bit);
 *   - 24 questions: queries and all (N+1) similarities against torch;
 *     retrieval decisions with top-1 and top-3, with and without a min_sim
 *     (kept edit ids, in order) exactly, their similarities, the
 *     prototype and best similarity;
 *   - logits of the question tokens with the retrieved prompt vectors
 *     prepended (mk_retr_gather + mk_llama_forward) against torch, with
 *     the model in GGUF and in Hugging Face layout;
 *   - greedy answers (mk_session_answer) byte for byte where the reference
 *     says no step is a near tie;
 *   - reverting the edit most questions retrieve: the decisions after the
 *     revert, again exactly (each of those questions retrieves what the
 *     reference predicts: another edit or nothing), and the answers;
 *   - the knowledge base opened with the other editor is refused.
 * Tolerances are stated at each comparison; the largest difference is
 * printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "store/session.h"
#include "text/tokenizer.h"
#include "util/check.h"
#include "util/ref.h"

#define DIR "tests/data/e2e"
#define LLM "tests/data/llama/a.gguf"
#define LLM_HF "tests/data/llama/a_hf" /* the same model, Hugging Face layout */
#define HINT "(regenerate with /usr/bin/python3 tools/ref_e2e.py if a fixture it reads changed)"

/* Tolerances (float32 C against float64 torch). */
#define TOL_REP_A 2e-4   /* keys, values, queries, prototype key: abs */
#define TOL_REP_R 2e-4   /*   and relative */
#define TOL_PROMPT_A 2e-4
#define TOL_PROMPT_R 2e-4
#define TOL_SIM_A 1e-3   /* similarities (magnitude up to ~20) */
#define TOL_SIM_R 1e-4
#define TOL_LOGIT_A 2e-3 /* logits (magnitude up to ~30) */
#define TOL_LOGIT_R 1e-3
#define GEN_GAP_MIN 1e-3 /* compare a greedy answer only when every step's top-2 margin exceeds this */

static mk_st *st;
static cJSON *ref;

static cJSON *jget(const cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) {
        fprintf(stderr, "ref.json: field %s missing %s\n", k, HINT);
        exit(1);
    }
    return v;
}
static int jint(const cJSON *o, const char *k) { return (int)jget(o, k)->valuedouble; }
static double jnum(const cJSON *o, const char *k) { return jget(o, k)->valuedouble; }
static const char *jstr(const cJSON *o, const char *k) {
    const char *s = cJSON_GetStringValue(jget(o, k));
    if (!s) {
        fprintf(stderr, "ref.json: field %s is not a string\n", k);
        exit(1);
    }
    return s;
}

/* want 0: any size */
static float *tensor(const char *name, size_t want) {
    return want ? ref_tensor_n(st, name, want, HINT) : ref_tensor(st, name, NULL, HINT);
}

/* ids of a JSON array equal to ids (n)? prints the first difference */
static int same_ids(const char *what, const cJSON *arr, const int32_t *ids, size_t n) {
    int m = cJSON_GetArraySize(arr);
    size_t i = 0;
    for (; i < n && (int)i < m; i++)
        if (cJSON_GetArrayItem(arr, (int)i)->valueint != ids[i]) break;
    if (i == n && (int)n == m) return 1;
    fprintf(stderr, "FAIL %s: token ids differ at %zu (got %zu ids, reference %d)\n", what, i, n,
            m);
    return 0;
}

static char *hex(const char *s) {
    size_t n = strlen(s);
    char *h = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) sprintf(h + 2 * i, "%02x", (unsigned char)s[i]);
    h[2 * n] = 0;
    return h;
}

typedef struct {
    const char *kind;
    cJSON *e;        /* ref.json editors.<kind> */
    mk_session *s;
    int N, Q, R, T, D;
    const char **questions;
    char dir[64], kb[128];
} ctx;

/* encoder and LLM tokenization of every text against the reference */
static void check_tokens(ctx *c) {
    const mk_editor *ed = c->s->ed;
    const mk_tokenizer *lt = mk_llama_tokenizer(c->s->llm);
    CHECK(lt != NULL);
    int bad = 0, total = 0;
    cJSON *edits = jget(ref, "edits"), *qs = jget(ref, "questions");
    for (int pass = 0; pass < 3; pass++) {
        cJSON *arr = pass < 2 ? edits : qs;
        for (int i = 0; i < cJSON_GetArraySize(arr); i++) {
            cJSON *o = cJSON_GetArrayItem(arr, i);
            const char *text = jstr(o, pass == 0 ? "prompt" : pass == 1 ? "sentence" : "text");
            const char *key = pass == 0 ? "enc_ids_prompt" : pass == 1 ? "enc_ids_sentence" : "enc_ids";
            int32_t *ids;
            float *mask;
            int L;
            CHECK_OK(mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, &text, 1, &ids, &mask, &L));
            total++;
            if (!same_ids(text, jget(o, key), ids, (size_t)L)) bad++;
            free(ids);
            free(mask);
            if (pass == 2 && lt) {
                int32_t *li;
                size_t n;
                CHECK_OK(mk_tok_encode(lt, text, strlen(text), MK_TOK_SPECIAL, &li, &n));
                total++;
                if (!same_ids(text, jget(o, "llm_ids"), li, n)) bad++;
                free(li);
            }
        }
    }
    CHECK(bad == 0);
    printf("%s: token ids of %d texts (encoder and LLM tokenizers): %d differ\n", c->kind, total,
           bad);
}

/* retrieval with top_k against the reference decisions `key` */
static void check_decisions(ctx *c, int top_k, float min_sim, const char *key,
                            mk_retr_result *res) {
    mk_retr_opts o = MK_RETR_OPTS_DEFAULT;
    o.top_k = top_k;
    o.min_sim = min_sim;
    memset(res, 0, sizeof *res);
    CHECK_OK(mk_session_retrieve(c->s, c->questions, c->Q, &o, res));
    cJSON *dec = jget(c->e, key);
    int wrong = 0, kept = 0, none = 0;
    double maxd = 0;
    for (int b = 0; b < c->Q; b++) {
        cJSON *d = cJSON_GetArrayItem(dec, b);
        cJSON *rk = jget(d, "kept"), *rs = jget(d, "sims");
        int nk = cJSON_GetArraySize(rk), ok = res->n_kept[b] == nk;
        for (int j = 0; ok && j < nk; j++) {
            float want = (float)cJSON_GetArrayItem(rs, j)->valuedouble;
            float got = res->sims[b * top_k + j];
            ok = res->ids[b * top_k + j] == cJSON_GetArrayItem(rk, j)->valueint &&
                 fabsf(got - want) <= TOL_SIM_A + TOL_SIM_R * fabsf(want);
            if (fabs(got - want) > maxd) maxd = fabs(got - want);
        }
        float ps = (float)jnum(d, "proto_sim");
        if (fabsf(res->proto_sim[b] - ps) > TOL_SIM_A + TOL_SIM_R * fabsf(ps)) ok = 0;
        if (fabs(res->proto_sim[b] - ps) > maxd) maxd = fabs(res->proto_sim[b] - ps);
        cJSON *bs = jget(d, "best_sim");
        if (cJSON_IsNumber(bs)) {
            float w = (float)bs->valuedouble;
            if (fabsf(res->best_sim[b] - w) > TOL_SIM_A + TOL_SIM_R * fabsf(w)) ok = 0;
            if (fabs(res->best_sim[b] - w) > maxd) maxd = fabs(res->best_sim[b] - w);
        }
        if (!ok) {
            wrong++;
            fprintf(stderr, "FAIL %s %s question %d \"%s\": kept", c->kind, key, b, c->questions[b]);
            for (int j = 0; j < res->n_kept[b]; j++)
                fprintf(stderr, " %lld (%.5f)", (long long)res->ids[b * top_k + j],
                        res->sims[b * top_k + j]);
            fprintf(stderr, ", proto %.5f; reference kept", res->proto_sim[b]);
            for (int j = 0; j < nk; j++)
                fprintf(stderr, " %d (%.5f)", cJSON_GetArrayItem(rk, j)->valueint,
                        cJSON_GetArrayItem(rs, j)->valuedouble);
            fprintf(stderr, ", proto %.5f\n", ps);
        }
        kept += nk;
        none += nk == 0;
    }
    check_count++;
    if (wrong) check_failures++;
    printf("%s %s %s (top-%d, min_sim %g): %d questions, %d kept rows, %d with none kept; "
           "%d decisions differ; largest similarity diff %.3g (tol %g + %g rel)\n",
           wrong ? "FAIL" : "ok  ", c->kind, key, top_k, min_sim, c->Q, kept, none, wrong, maxd,
           TOL_SIM_A, TOL_SIM_R);
}

/* the logits cases: retrieved prompts prepended to the question tokens,
 * one sequence at a time and all in one batch (different prefix lengths) */
#define MAX_CASES 16
static void check_logits(ctx *c, mk_retr_result *r1, mk_retr_result *r3) {
    cJSON *cases = jget(c->e, "logit_cases");
    const mk_tokenizer *lt = mk_llama_tokenizer(c->s->llm);
    size_t V = (size_t)mk_llama_cfg(c->s->llm)->n_vocab;
    mk_llama *hf = NULL;
    CHECK_OK(mk_llama_open_ex(LLM_HF, MK_LLAMA_NO_TOKENIZER, &hf));
    int nc = cJSON_GetArraySize(cases);
    if (nc > MAX_CASES) nc = MAX_CASES;
    mk_llama_seq seqs[MAX_CASES];
    float *prefix[MAX_CASES], *want[MAX_CASES];
    int32_t *ids[MAX_CASES];
    size_t rows = 0;
    for (int i = 0; i < nc; i++) {
        cJSON *k = cJSON_GetArrayItem(cases, i);
        int b = jint(k, "question"), top_k = jint(k, "top_k"), np = jint(k, "n_prefix");
        mk_retr_result *res = top_k == 1 ? r1 : r3;
        prefix[i] = malloc((size_t)top_k * c->T * c->D * sizeof(float));
        int64_t nv = -1;
        CHECK_OK(mk_retr_gather(&c->s->rkb, res, b, prefix[i], (int64_t)top_k * c->T, &nv));
        CHECK(nv == np);
        size_t n = 0;
        ids[i] = NULL;
        CHECK_OK(mk_tok_encode(lt, c->questions[b], strlen(c->questions[b]), MK_TOK_SPECIAL,
                               &ids[i], &n));
        want[i] = tensor(jstr(k, "tensor"), n * V);
        seqs[i] = (mk_llama_seq){ids[i], (int)n, nv > 0 ? prefix[i] : NULL, (int)(nv > 0 ? nv : 0)};
        rows += n;
        float *got = malloc(n * V * sizeof *got);
        /* the session's GGUF model, and the same model in Hugging Face layout */
        const mk_llama *models[2] = {c->s->llm, hf};
        for (int mi = 0; mi < 2 && models[mi]; mi++) {
            CHECK_OK(mk_llama_forward(models[mi], &seqs[i], 1, got, NULL));
            char what[200];
            snprintf(what, sizeof what,
                     "%s logits (%s), question %d, top-%d, %d prefix vectors + %zu tokens", c->kind,
                     mi ? "a_hf" : "a.gguf", b, top_k, np, n);
            check_close(what, got, want[i], n * V, TOL_LOGIT_A, TOL_LOGIT_R);
        }
        free(got);
    }
    float *all = malloc(rows * V * sizeof *all), *got = malloc(rows * V * sizeof *got);
    size_t off = 0;
    for (int i = 0; i < nc; i++) {
        memcpy(all + off, want[i], (size_t)seqs[i].n_tokens * V * sizeof *all);
        off += (size_t)seqs[i].n_tokens * V;
    }
    CHECK_OK(mk_llama_forward(c->s->llm, seqs, nc, got, NULL));
    char what[120];
    snprintf(what, sizeof what, "%s logits, the %d cases as one batch (a.gguf)", c->kind, nc);
    check_close(what, got, all, rows * V, TOL_LOGIT_A, TOL_LOGIT_R);
    free(all);
    free(got);
    for (int i = 0; i < nc; i++) {
        free(want[i]);
        free(ids[i]);
        free(prefix[i]);
    }
    mk_llama_close(hf);
}

/* greedy answers as `medrek ask` makes them (label: "answer" or "after_revert") */
static void check_answers(ctx *c, mk_retr_result *r1, const char *label) {
    cJSON *ans = cJSON_GetObjectItemCaseSensitive(c->e, "answers");
    if (!ans) return;
    const mk_tokenizer *lt = mk_llama_tokenizer(c->s->llm);
    int same = 0, skipped = 0, n = 0;
    for (int i = 0; i < cJSON_GetArraySize(ans); i++) {
        cJSON *a = cJSON_GetArrayItem(ans, i);
        int b = jint(a, "question");
        cJSON *w = jget(a, label);
        if (jnum(w, "min_gap") < GEN_GAP_MIN) {
            skipped++;
            continue;
        }
        float *prefix = malloc((size_t)c->T * c->D * sizeof *prefix);
        int64_t nv = 0;
        CHECK_OK(mk_retr_gather(&c->s->rkb, r1, b, prefix, c->T, &nv));
        mk_gen_params gp;
        mk_gen_params_default(&gp);
        gp.max_tokens = 8;
        gp.temperature = 0;
        gp.eos_id = mk_tok_eos(lt);
        char *text = NULL;
        CHECK_OK(mk_session_answer(c->s, c->questions[b], nv ? prefix : NULL, (int)nv, &gp, &text,
                                   NULL));
        char *h = hex(text ? text : "");
        n++;
        if (!strcmp(h, jstr(w, "hex"))) {
            same++;
        } else {
            fprintf(stderr, "FAIL %s %s question %d: got \"%s\", reference \"%s\"\n", c->kind, label,
                    b, text ? text : "", jstr(w, "text"));
        }
        check_count++;
        if (strcmp(h, jstr(w, "hex"))) check_failures++;
        free(h);
        free(text);
        free(prefix);
    }
    printf("%s %s: %d of %d greedy answers identical to torch (%d skipped: near-tie steps)\n",
           c->kind, label, same, n, skipped);
}

static void run_editor(const char *kind) {
    ctx c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.e = jget(jget(ref, "editors"), kind);
    c.N = jint(ref, "n_edits");
    c.Q = jint(ref, "n_questions");
    c.R = jint(ref, "R");
    c.T = jint(ref, "T");
    c.D = jint(ref, "D");
    size_t N = (size_t)c.N, Q = (size_t)c.Q, R = (size_t)c.R, TD = (size_t)c.T * c.D;
    snprintf(c.dir, sizeof c.dir, "/tmp/mk_e2e_XXXXXX");
    if (!mkdtemp(c.dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(c.kb, sizeof c.kb, "%s/kb.db", c.dir);
    char edp[256];
    snprintf(edp, sizeof edp, DIR "/%s", jstr(c.e, "file"));
    int rc = mk_session_open(c.kb, LLM, edp, 0, &c.s);
    if (rc) {
        fprintf(stderr, "FAIL %s: mk_session_open: %s %s\n", kind, mk_errmsg(), HINT);
        check_count++;
        check_failures++;
        rmdir(c.dir);
        return;
    }
    printf("== editor %s (%s), knowledge base %s\n", kind, c.s->editor_fp, c.kb);
    CHECK(!strcmp(mk_llama_fingerprint(c.s->llm), jstr(ref, "llm_fingerprint")));
    CHECK(c.s->ed->cfg.R == c.R && c.s->ed->cfg.T == c.T && c.s->ed->cfg.D == c.D);
    check_tokens(&c);

    /* the questions */
    cJSON *qs = jget(ref, "questions");
    c.questions = malloc(Q * sizeof *c.questions);
    for (int b = 0; b < c.Q; b++) c.questions[b] = jstr(cJSON_GetArrayItem(qs, b), "text");

    /* edits: the requests file as `medrek edit` reads it */
    mk_edit_request *reqs = NULL;
    int64_t n = 0;
    CHECK_OK(mk_edit_requests_parse_file(DIR "/edits.jsonl", &reqs, &n));
    CHECK(n == c.N);
    cJSON *edits = jget(ref, "edits");
    for (int64_t i = 0; i < n && i < c.N; i++) {
        cJSON *o = cJSON_GetArrayItem(edits, (int)i);
        CHECK(!strcmp(reqs[i].prompt, jstr(o, "prompt")) &&
              !strcmp(reqs[i].target_new, jstr(o, "target_new")));
        char *ks = mk_knowledge_sentence(reqs[i].prompt, reqs[i].target_new);
        CHECK(ks && !strcmp(ks, jstr(o, "sentence")));
        free(ks);
    }
    float *keys = NULL, *prompts = NULL;
    CHECK_OK(mk_session_encode(c.s, reqs, n, &keys, &prompts, NULL, NULL));
    char what[128], name[128];
#define CMP(tname, got, cnt, at, rt)                                         \
    do {                                                                     \
        snprintf(name, sizeof name, "%s." tname, kind);                      \
        float *w_ = tensor(name, (cnt));                                     \
        snprintf(what, sizeof what, "%s %s", kind, tname);                   \
        check_close(what, (got), w_, (cnt), (at), (rt));                     \
        free(w_);                                                            \
    } while (0)
    CMP("keys", keys, N * R, TOL_REP_A, TOL_REP_R);
    CMP("prompts", prompts, N * TD, TOL_PROMPT_A, TOL_PROMPT_R);
    {
        const char **pr = malloc(N * sizeof *pr), **tg = malloc(N * sizeof *tg);
        for (size_t i = 0; i < N; i++) pr[i] = reqs[i].prompt, tg[i] = reqs[i].target_new;
        float *vals = malloc(N * R * sizeof *vals);
        CHECK_OK(mk_editor_values(c.s->ed, pr, tg, c.N, vals));
        CMP("values", vals, N * R, TOL_REP_A, TOL_REP_R);
        free(vals);
        free(pr);
        free(tg);
    }

    /* into the knowledge base, one batch, and back */
    mk_kb_vectors vec = {c.s->editor_fp, c.R, c.T, c.D, keys, prompts};
    mk_kb_insert_args args = {0};
    args.author = "test_e2e";
    args.reason = "end-to-end reference check";
    args.vec = &vec;
    int64_t batch = 0, *ids = calloc(N, sizeof *ids);
    CHECK_OK(mk_kb_insert(c.s->kb, reqs, n, &args, &batch, ids));
    for (size_t i = 0; i < N; i++) CHECK(ids[i] == (int64_t)i + 1); /* the reference's edit ids */
    CHECK_OK(mk_session_reload(c.s));
    CHECK(c.s->act.n == c.N && c.s->rkb.n_rows == c.N + 1);
    CMP("proto_key", c.s->act.keys, R, TOL_REP_A, TOL_REP_R);
    if (c.s->act.n == c.N) {
        CHECK(!memcmp(c.s->act.keys + R, keys, N * R * sizeof *keys));
        CHECK(!memcmp(c.s->act.prompts + TD, prompts, N * TD * sizeof *prompts));
    }

    /* queries and every similarity */
    float *q = malloc(Q * R * sizeof *q), *sims = malloc(Q * (N + 1) * sizeof *sims);
    CHECK_OK(mk_editor_query(c.s->ed, c.questions, c.Q, q));
    CMP("queries", q, Q * R, TOL_REP_A, TOL_REP_R);
    if (c.s->act.n == c.N) {
        for (size_t b = 0; b < Q; b++)
            for (size_t j = 0; j <= N; j++) {
                double acc = 0;
                for (size_t r = 0; r < R; r++) acc += (double)q[b * R + r] * c.s->act.keys[j * R + r];
                sims[b * (N + 1) + j] = (float)(acc / sqrt((double)R));
            }
        CMP("sims", sims, Q * (N + 1), TOL_SIM_A, TOL_SIM_R);
    }

    /* retrieval decisions, logits with the retrieved prompts, answers */
    mk_retr_result r1, r3;
    check_decisions(&c, 1, -999.0f, "top1", &r1);
    check_decisions(&c, 3, -999.0f, "top3", &r3);
    check_logits(&c, &r1, &r3);
    check_answers(&c, &r1, "answer");
    mk_retr_result_free(&r1);
    mk_retr_result_free(&r3);
    float ms = (float)jnum(c.e, "min_sim");
    check_decisions(&c, 1, ms, "top1_min_sim", &r1);
    check_decisions(&c, 3, ms, "top3_min_sim", &r3);
    mk_retr_result_free(&r1);
    mk_retr_result_free(&r3);

    /* revert the edit most questions retrieve */
    int rv = jint(c.e, "revert");
    CHECK_OK(mk_kb_revert(c.s->kb, rv, "test_e2e", "e2e: revert"));
    CHECK_OK(mk_session_reload(c.s));
    CHECK(c.s->act.n == c.N - 1);
    check_decisions(&c, 1, -999.0f, "top1_after_revert", &r1);
    check_decisions(&c, 3, -999.0f, "top3_after_revert", &r3);
    int moved = 0, gone = 0;
    cJSON *before = jget(c.e, "top1");
    for (int b = 0; b < c.Q; b++) {
        cJSON *k = jget(cJSON_GetArrayItem(before, b), "kept");
        if (cJSON_GetArraySize(k) == 1 && cJSON_GetArrayItem(k, 0)->valueint == rv) {
            CHECK(r1.n_kept[b] == 0 || r1.ids[b] != rv);
            if (r1.n_kept[b]) moved++;
            else gone++;
        }
    }
    printf("%s: after reverting edit %d, %d questions that retrieved it retrieve another edit, "
           "%d retrieve nothing\n", kind, rv, moved, gone);
    check_answers(&c, &r1, "after_revert");
    mk_retr_result_free(&r1);
    mk_retr_result_free(&r3);
#undef CMP

    free(q);
    free(sims);
    free(ids);
    free(keys);
    free(prompts);
    mk_edit_requests_free(reqs, n);
    free(c.questions);
    mk_session_close(c.s);
    c.s = NULL;
    /* the other editor must refuse these vectors (encoded by this one) */
    const char *other = !strcmp(kind, "attn") ? DIR "/editor_mlp.safetensors"
                                              : DIR "/editor_attn.safetensors";
    rc = mk_session_open(c.kb, LLM, other, MK_SESSION_READONLY, &c.s);
    CHECK(rc == MK_ERR_MISMATCH && strstr(mk_errmsg(), "kb reencode"));
    printf("%s: the knowledge base opened with the other editor: %s\n", kind,
           rc ? mk_errmsg() : "accepted (wrong)");
    mk_session_close(c.s);
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", c.kb, suffix[i]);
        unlink(p);
    }
    rmdir(c.dir);
}

int main(void) {
    size_t len;
    char *js = check_read_file(DIR "/ref.json", &len);
    ref = cJSON_ParseWithLength(js, len);
    if (!ref) {
        fprintf(stderr, DIR "/ref.json: not JSON\n");
        return 1;
    }
    if (mk_st_open(DIR "/ref.safetensors", &st)) {
        fprintf(stderr, "%s\n", mk_errmsg());
        return 1;
    }
    CHECK(jint(ref, "n_edits") >= 50 && jint(ref, "n_questions") >= 20);
    run_editor("attn");
    run_editor("mlp");
    mk_st_close(st);
    cJSON_Delete(ref);
    free(js);
    return check_summary("test_e2e");
}
