/* data_test_eval.c - evaluation on the real benchmark files (path in
 * $MEDREK_DATASETS): the fixture LLM a.gguf and editor editor_attn (random
 * models, so the numbers say nothing about quality) on the first 20
 * MedVersa test items and the first 10 MedCF test items (all four
 * locality probes), batch mode N=8 with fluency: every mean and per-item
 * score is finite and in range, and a second run gives the same numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "editor/editor.h"
#include "eval/run.h"
#include "model/llama.h"
#include "util/check.h"

static int in_range(double v, double hi) { return isfinite(v) && v >= 0 && v <= hi; }

static void run_set(const mk_llama *llm, const mk_editor *ed, const char *path, mk_ds_format fmt,
                    int64_t limit) {
    mk_eval_set set;
    int rc = mk_eval_set_load(path, fmt, limit, &set);
    CHECK_OK(rc);
    if (rc) return;
    CHECK(set.n == limit);
    mk_eval_opts o;
    mk_eval_opts_default(&o);
    o.mode = MK_EVAL_BATCH;
    o.n = 8;
    o.seed = 3;
    mk_eval_result a, b;
    CHECK_OK(rc = mk_eval_run(llm, ed, &set, &o, &a));
    if (rc) goto done;
    CHECK_OK(rc = mk_eval_run(llm, ed, &set, &o, &b));
    if (rc) {
        mk_eval_result_free(&a);
        goto done;
    }
    CHECK(in_range(a.eff, 100) && in_range(a.gen, 100) && in_range(a.loc, 100) &&
          in_range(a.avg, 100) && isfinite(a.flu) && a.flu > 0);
    CHECK(a.n_chunks == (limit + 7) / 8);
    int same = a.eff == b.eff && a.gen == b.gen && a.loc == b.loc && a.flu == b.flu && a.avg == b.avg;
    int ranged = 1;
    for (int64_t i = 0; i < set.n; i++) {
        const mk_eval_score *s = &a.items[i], *t = &b.items[i];
        same &= s->eff_hits == t->eff_hits && s->gen_hits[0] == t->gen_hits[0] && s->flu == t->flu &&
                s->loc == t->loc && s->eff_ret == t->eff_ret;
        ranged &= in_range(s->eff, 1) && in_range(s->gen, 1) && in_range(s->loc, 1) &&
                  isfinite(s->flu) && s->n_loc == set.items[i].n_loc && s->eff_n >= 1;
    }
    CHECK(same && ranged);
    if (fmt == MK_DS_MEDCF) CHECK(a.n_loc_kinds == 4);
    printf("%s (%lld items, batch 8): Efficacy %.2f Generality %.2f Locality %.2f Fluency %.2f "
           "Avg %.2f; %.2f s; second run %s\n",
           path, (long long)set.n, a.eff, a.gen, a.loc, a.flu, a.avg, a.seconds,
           same ? "identical" : "DIFFERENT");
    for (int k = 0; k < a.n_loc_kinds; k++) printf("  locality %s %.2f\n", a.loc_kind[k], a.loc_by_kind[k]);
    mk_eval_result_free(&a);
    mk_eval_result_free(&b);
done:
    mk_eval_set_free(&set);
}

int main(void) {
    const char *dir = getenv("MEDREK_DATASETS");
    if (!dir) {
        fprintf(stderr, "set MEDREK_DATASETS to the datasets folder (../shared/datasets)\n");
        return 1;
    }
    mk_llama *llm = NULL;
    mk_editor *ed = NULL;
    CHECK_OK(mk_llama_open("tests/data/llama/a.gguf", &llm));
    CHECK_OK(mk_editor_load("tests/data/e2e/editor_attn.safetensors", &ed));
    if (llm && ed) {
        char path[4096];
        snprintf(path, sizeof path, "%s/medversa/test.json", dir);
        run_set(llm, ed, path, MK_DS_AUTO, 20);
        snprintf(path, sizeof path, "%s/medcf/test.json", dir);
        run_set(llm, ed, path, MK_DS_MEDCF, 10);
    }
    mk_editor_free(ed);
    mk_llama_close(llm);
    return check_summary("data_test_eval");
}
