/* test_eval.c - evaluation (spec 8) against tools/ref_eval.py: per-item
 * efficacy / generality / locality counts and retrievals, exactly, and the
 * means, for batch N=4 (the reference's order), single and sequential
 * modes on the fixture LLM a.gguf and editor_attn; the word splitter and
 * n-gram entropies on fixed texts; fluency sampling determinism by seed;
 * the shuffle; token triples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "editor/editor.h"
#include "eval/metrics.h"
#include "eval/run.h"
#include "model/llama.h"
#include "text/tokenizer.h"
#include "util/check.h"

#define DIR "tests/data/eval"

static int jint(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v ? (int)v->valuedouble : -999;
}
static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v ? v->valuedouble : NAN;
}
static void jpair(const cJSON *o, const char *k, int *a, int *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    *a = (int)cJSON_GetArrayItem(v, 0)->valuedouble;
    *b = (int)cJSON_GetArrayItem(v, 1)->valuedouble;
}

static void check_mean(const char *what, double got, double want) {
    check_count++;
    double d = fabs(got - want);
    if (!(d <= 1e-9)) {
        check_failures++;
        fprintf(stderr, "FAIL %s: %.12f vs reference %.12f (diff %.3g)\n", what, got, want, d);
    }
}

static void compare_mode(const mk_llama *llm, const mk_editor *ed, const mk_eval_set *set,
                         const cJSON *mref, const char *name) {
    mk_eval_opts o;
    mk_eval_opts_default(&o);
    o.fluency = 0;
    int64_t order[64];
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(mref, "order");
    int n = cJSON_GetArraySize(ord);
    CHECK(n == set->n && n <= 64);
    for (int i = 0; i < n; i++) order[i] = (int64_t)cJSON_GetArrayItem(ord, i)->valuedouble;
    if (strcmp(name, "batch") == 0) {
        o.mode = MK_EVAL_BATCH;
        o.n = jint(mref, "n");
        o.order = order; /* the reference's shuffled order */
    } else if (strcmp(name, "single") == 0) {
        o.mode = MK_EVAL_SINGLE;
    } else {
        o.mode = MK_EVAL_SEQUENTIAL;
        o.n = 0; /* one segment of every item */
    }
    o.fwd_batch = 3; /* groups that cut across items */
    mk_eval_result r;
    int rc = mk_eval_run(llm, ed, set, &o, &r);
    CHECK_OK(rc);
    if (rc) return;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(mref, "items");
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(items, i);
        const mk_eval_score *s = &r.items[i];
        int eh, en, gh, gn, lh, ln;
        jpair(x, "eff", &eh, &en);
        jpair(x, "gen", &gh, &gn);
        jpair(x, "loc", &lh, &ln);
        int ok = s->eff_hits == eh && s->eff_n == en && s->gen_hits[0] == gh && s->gen_n[0] == gn &&
                 s->loc_hits[0] == lh && s->loc_n[0] == ln && s->eff_ret == jint(x, "eff_ret") &&
                 s->gen_ret[0] == jint(x, "gen_ret") && s->loc_ret[0] == jint(x, "loc_ret") &&
                 s->chunk == jint(x, "chunk");
        if (!ok) {
            bad++;
            fprintf(stderr,
                    "FAIL %s item %d: eff %d/%d gen %d/%d loc %d/%d ret %lld %lld %lld chunk %lld; "
                    "reference eff %d/%d gen %d/%d loc %d/%d ret %d %d %d chunk %d\n",
                    name, i, s->eff_hits, s->eff_n, s->gen_hits[0], s->gen_n[0], s->loc_hits[0],
                    s->loc_n[0], (long long)s->eff_ret, (long long)s->gen_ret[0],
                    (long long)s->loc_ret[0], (long long)s->chunk, eh, en, gh, gn, lh, ln,
                    jint(x, "eff_ret"), jint(x, "gen_ret"), jint(x, "loc_ret"), jint(x, "chunk"));
        }
    }
    check_count++;
    if (bad) check_failures++;
    else printf("ok   %s: %d items, every count and retrieval as the reference\n", name, n);
    char what[64];
    snprintf(what, sizeof what, "%s efficacy", name);
    check_mean(what, r.eff, jnum(mref, "eff"));
    snprintf(what, sizeof what, "%s generality", name);
    check_mean(what, r.gen, jnum(mref, "gen"));
    snprintf(what, sizeof what, "%s locality", name);
    check_mean(what, r.loc, jnum(mref, "loc"));
    snprintf(what, sizeof what, "%s avg", name);
    check_mean(what, r.avg, jnum(mref, "avg"));
    printf("     %s: Efficacy %.2f Generality %.2f Locality %.2f Avg %.2f\n", name, r.eff, r.gen,
           r.loc, r.avg);
    CHECK(isnan(r.flu));
    mk_eval_result_free(&r);
}

static void test_fluency_texts(const cJSON *cases) {
    int bad = 0;
    double worst = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "words");
        size_t *st = NULL, *ln = NULL, nw = 0;
        CHECK_OK(mk_eval_words(text, strlen(text), &st, &ln, &nw));
        int ok = (int)nw == cJSON_GetArraySize(want);
        for (size_t k = 0; ok && k < nw; k++) {
            const char *w = cJSON_GetArrayItem(want, (int)k)->valuestring;
            ok = strlen(w) == ln[k] && memcmp(w, text + st[k], ln[k]) == 0;
        }
        if (!ok) {
            bad++;
            fprintf(stderr, "FAIL words of \"%s\": %zu words, reference %d:", text, nw,
                    cJSON_GetArraySize(want));
            for (size_t k = 0; k < nw; k++) fprintf(stderr, " [%.*s]", (int)ln[k], text + st[k]);
            fprintf(stderr, "\n");
        }
        free(st);
        free(ln);
        double sc, h2, h3;
        CHECK_OK(mk_fluency_score(text, strlen(text), &sc, &h2, &h3));
        double d = fmax(fabs(sc - jnum(c, "score")), fmax(fabs(h2 - jnum(c, "h2")), fabs(h3 - jnum(c, "h3"))));
        if (d > worst) worst = d;
        if (!(d <= 1e-12)) {
            bad++;
            fprintf(stderr, "FAIL entropy of \"%s\": h2 %.15f h3 %.15f score %.15f; reference %.15f %.15f %.15f\n",
                    text, h2, h3, sc, jnum(c, "h2"), jnum(c, "h3"), jnum(c, "score"));
        }
    }
    check_count++;
    if (bad) check_failures++;
    else printf("ok   fluency: %d texts, words identical, largest entropy diff %.3g bits\n",
                cJSON_GetArraySize(cases), worst);
}

static void test_shuffle(void) {
    int64_t a[100], b[100], c[100];
    mk_eval_shuffle(100, 7, a);
    mk_eval_shuffle(100, 7, b);
    mk_eval_shuffle(100, 8, c);
    char seen[100] = {0};
    int perm = 1, same = 1, diff = 0, moved = 0;
    for (int i = 0; i < 100; i++) {
        if (a[i] < 0 || a[i] >= 100 || seen[a[i]]++) perm = 0;
        same &= a[i] == b[i];
        diff |= a[i] != c[i];
        moved += a[i] != i;
    }
    CHECK(perm && same && diff && moved > 50);
}

static void test_triple(const mk_llama *llm) {
    const mk_tokenizer *tok = mk_llama_tokenizer(llm);
    mk_triple t, u;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(mk_triple_make(tok, "Metformin treats", "stroke", &t));
    CHECK_OK(mk_triple_make(tok, "Metformin treats", " stroke", &u)); /* no second space */
    CHECK_OK(mk_tok_encode(tok, "Metformin treats", 16, MK_TOK_SPECIAL, &ids, &n));
    CHECK(t.L == u.L && t.first == (int)n - 1 && t.n_mask == t.L - t.first && t.n_mask >= 1);
    CHECK(ids[0] == mk_tok_bos(tok) && t.input[0] == ids[0]);
    for (int i = 0; i < t.L && i < u.L; i++) CHECK(t.input[i] == u.input[i] && t.label[i] == u.label[i]);
    for (int i = 0; i + 1 < t.L; i++) CHECK(t.label[i] == t.input[i + 1]);
    mk_triple_free(&t);
    mk_triple_free(&u);
    free(ids);
    float x[5] = {1, 3, 3, -1, NAN};
    CHECK(mk_argmax(x, 5) == 1);
    float y[3] = {NAN, 0, 2};
    CHECK(mk_argmax(y, 3) == 2);
}

static void test_fluency_sampling(const mk_llama *llm, const mk_editor *ed, const mk_eval_set *set) {
    mk_eval_opts o;
    mk_eval_opts_default(&o);
    o.mode = MK_EVAL_BATCH;
    o.n = 4;
    o.seed = 11;
    mk_eval_result r1, r2, r3;
    CHECK_OK(mk_eval_run(llm, ed, set, &o, &r1));
    CHECK_OK(mk_eval_run(llm, ed, set, &o, &r2));
    o.seed = 12;
    CHECK_OK(mk_eval_run(llm, ed, set, &o, &r3));
    int same = 1, differ = 0, finite = 1;
    for (int64_t i = 0; i < set->n; i++) {
        same &= r1.items[i].flu == r2.items[i].flu && r1.items[i].eff_hits == r2.items[i].eff_hits;
        differ |= r1.items[i].flu != r3.items[i].flu;
        finite &= isfinite(r1.items[i].flu) && r1.items[i].flu > 0 && r1.items[i].h3 >= 0;
    }
    for (int64_t i = 0; i < set->n; i++) same &= r1.order[i] == r2.order[i];
    CHECK(same && differ && finite && isfinite(r1.flu) && r1.flu == r2.flu);
    printf("ok   fluency sampling: seed 11 twice identical (Fluency %.2f), seed 12 differs (%.2f)\n",
           r1.flu, r3.flu);
    /* the report */
    char *js = NULL;
    mk_eval_report_info info = {"a.gguf", "editor_attn", "items.json", &o, set};
    CHECK_OK(mk_eval_report_json(&info, &r1, &js));
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "items")) == set->n);
    cJSON_Delete(j);
    free(js);
    mk_eval_result_free(&r1);
    mk_eval_result_free(&r2);
    mk_eval_result_free(&r3);
}

int main(void) {
    size_t len;
    char *js = check_read_file(DIR "/ref.json", &len);
    cJSON *ref = cJSON_Parse(js);
    free(js);
    if (!ref) {
        fprintf(stderr, "bad %s/ref.json\n", DIR);
        return 1;
    }
    mk_llama *llm = NULL;
    mk_editor *ed = NULL;
    mk_eval_set set;
    memset(&set, 0, sizeof set);
    CHECK_OK(mk_llama_open("tests/data/llama/a.gguf", &llm));
    CHECK_OK(mk_editor_load("tests/data/e2e/editor_attn.safetensors", &ed));
    CHECK_OK(mk_eval_set_load(DIR "/items.json", MK_DS_AUTO, 0, &set));
    if (!llm || !ed || !set.n) return check_summary("test_eval");
    CHECK(set.format == MK_DS_COUNTERFACT && set.n == 8);
    test_triple(llm);
    test_shuffle();
    const cJSON *modes = cJSON_GetObjectItemCaseSensitive(ref, "modes");
    const char *names[] = {"batch", "single", "sequential"};
    for (int k = 0; k < 3; k++)
        compare_mode(llm, ed, &set, cJSON_GetObjectItemCaseSensitive(modes, names[k]), names[k]);
    test_fluency_texts(cJSON_GetObjectItemCaseSensitive(ref, "fluency"));
    test_fluency_sampling(llm, ed, &set);
    /* a bad explicit order is refused */
    mk_eval_opts o;
    mk_eval_opts_default(&o);
    int64_t bad_order[8] = {0, 1, 2, 3, 4, 5, 6, 6};
    o.order = bad_order;
    o.fluency = 0;
    mk_eval_result r;
    CHECK(mk_eval_run(llm, ed, &set, &o, &r) == MK_ERR_ARG && strstr(mk_errmsg(), "permutation"));
    /* an item too long for the context is named before any work */
    {
        char *lj = malloc(4000);
        int k = snprintf(lj, 100, "[{\"prompt\":\"");
        for (int i = 0; i < 700; i++) k += snprintf(lj + k, 8, "a ");
        snprintf(lj + k, 200, "\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\","
                 "\"locality_prompt\":\"L\",\"locality_ground_truth\":\"G\"}]");
        mk_eval_set big;
        CHECK_OK(mk_eval_set_parse(lj, strlen(lj), "long.json", MK_DS_COUNTERFACT, 0, &big));
        o.order = NULL;
        CHECK(mk_eval_run(llm, ed, &big, &o, &r) == MK_ERR_RANGE && strstr(mk_errmsg(), "item 0 (prompt"));
        mk_eval_set_free(&big);
        free(lj);
    }
    mk_eval_set_free(&set);
    mk_editor_free(ed);
    mk_llama_close(llm);
    cJSON_Delete(ref);
    return check_summary("test_eval");
}
