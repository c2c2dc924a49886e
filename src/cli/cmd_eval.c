/* cmd_eval.c - `medrek eval`: the paper's editing metrics (spec 8) of an
 * editor on a benchmark file, in single, batch or sequential mode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../editor/editor.h"
#include "../eval/run.h"
#include "../io/mapfile.h"
#include "../model/llama.h"
#include "cli.h"

static const char *USAGE =
    "usage: medrek eval --model PATH --editor FILE --data FILE [options]\n"
    "  --model PATH          the frozen LLM: .gguf file or Hugging Face directory\n"
    "  --editor FILE         the editor (made for this LLM)\n"
    "  --data FILE           benchmark items (JSON array or JSON lines)\n"
    "  --format F            medversa|medcf|medfe|zsre|counterfact|auto (default auto)\n"
    "  --mode M              single|batch|sequential (default single)\n"
    "  --n N                 batch size (batch: shuffled with --seed, chunks of N) or\n"
    "                        segment length (sequential: N edits one after another,\n"
    "                        then all measured; 0 = every item) (default 1)\n"
    "  --limit K             the file's first K items only, before shuffling; 0 = all\n"
    "  --seed S              shuffle (batch) and fluency sampling seed (default 1)\n"
    "  --no-fluency          skip fluency (sampling is the slow part)\n"
    "  --fluency-tokens N    new tokens sampled per prompt (default 100)\n"
    "  --fluency-top-k K     top-k of the sampling (default 5)\n"
    "  --retrieve-k K        edits retrieved per query (default 1)\n"
    "  --min-sim X           a retrieved edit must score above X (default -999)\n"
    "  --fwd-batch B         sequences per LLM forward (default 16)\n"
    "  --out FILE            write the JSON report (settings, means, per-item scores)\n";

static void progress(void *ud, int64_t done, int64_t total) {
    cli_progress_update((cli_progress *)ud, done, total);
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *edp = NULL, *data = NULL, *fmt_s = "auto", *mode_s = "single",
               *out = NULL;
    int64_t n = 1, limit = 0, seed = 1;
    int no_flu = 0, flu_tokens = 100, flu_k = 5, rk = 1, fwd = 16;
    float min_sim = -999.0f;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model},          {"--editor", CLI_STR, &edp},
        {"--data", CLI_STR, &data},            {"--format", CLI_STR, &fmt_s},
        {"--mode", CLI_STR, &mode_s},          {"--n", CLI_I64, &n},
        {"--limit", CLI_I64, &limit},          {"--seed", CLI_I64, &seed},
        {"--no-fluency", CLI_FLAG, &no_flu},   {"--fluency-tokens", CLI_INT, &flu_tokens},
        {"--fluency-top-k", CLI_INT, &flu_k},  {"--retrieve-k", CLI_INT, &rk},
        {"--min-sim", CLI_FLOAT, &min_sim},    {"--fwd-batch", CLI_INT, &fwd},
        {"--out", CLI_STR, &out},
    };
    int r = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL, USAGE);
    if (r == 1) return 0;
    if (r) return r;
    if (!model || !edp || !data)
        return cli_usage_error("eval", USAGE, "--model, --editor and --data are required");
    int fmt = mk_ds_format_parse(fmt_s), mode = mk_eval_mode_parse(mode_s);
    if (fmt < 0) return cli_usage_error("eval", USAGE, "unknown --format '%s'", fmt_s);
    if (mode < 0) return cli_usage_error("eval", USAGE, "unknown --mode '%s'", mode_s);
    if (mode == MK_EVAL_SINGLE && n != 1)
        return cli_usage_error("eval", USAGE, "--n needs --mode batch or sequential");
    if (n < 0 || (mode == MK_EVAL_BATCH && n < 1) || limit < 0 || flu_tokens < 1 ||
        flu_tokens > 100000 || flu_k < 0 || rk < 1 || rk > 64 || fwd < 1 || fwd > 4096)
        return cli_usage_error("eval", USAGE,
                               "need --n >= 0 (>= 1 for batch), --limit >= 0, 1 <= --fluency-tokens "
                               "<= 100000, --fluency-top-k >= 0, 1 <= --retrieve-k <= 64, "
                               "1 <= --fwd-batch <= 4096");

    mk_llama *llm = NULL;
    mk_editor *ed = NULL;
    mk_eval_set set;
    mk_eval_result res;
    memset(&set, 0, sizeof set);
    memset(&res, 0, sizeof res);
    char *json = NULL;
    int rc, ret = 1;
    if ((rc = mk_eval_set_load(data, (mk_ds_format)fmt, limit, &set))) {
        ret = cli_die_lib("eval", rc);
        goto done;
    }
    if ((rc = mk_llama_open(model, &llm))) {
        ret = cli_die_lib("eval", rc);
        goto done;
    }
    if ((rc = mk_editor_load(edp, &ed))) {
        ret = cli_die_lib("eval", rc);
        goto done;
    }
    const mk_llama_config *lc = mk_llama_cfg(llm);
    if ((rc = mk_editor_check_llm(ed, lc->dim, mk_llama_fingerprint(llm)))) {
        rc = mk_fail_ctx(rc, "%s does not fit %s", edp, model);
        ret = cli_die_lib("eval", rc);
        goto done;
    }
    mk_eval_opts eo;
    mk_eval_opts_default(&eo);
    eo.mode = (mk_eval_mode)mode;
    eo.n = n;
    eo.seed = (uint64_t)seed;
    eo.fluency = !no_flu;
    eo.fluency_tokens = flu_tokens;
    eo.fluency_top_k = flu_k;
    eo.retr.top_k = rk;
    eo.retr.min_sim = min_sim;
    eo.fwd_batch = fwd;
    cli_progress pg;
    cli_progress_start(&pg, "evaluating items");
    eo.progress = progress;
    eo.ud = &pg;
    fprintf(stderr,
            "medrek eval: %lld %s items from %s; mode %s", (long long)set.n,
            mk_ds_format_name(set.format), data, mk_eval_mode_name(eo.mode));
    if (eo.mode != MK_EVAL_SINGLE) fprintf(stderr, " n=%lld", (long long)n);
    fprintf(stderr, ", seed %lld, fluency %s (%d tokens, top-k %d), retrieve-k %d, min-sim %g\n",
            (long long)seed, eo.fluency ? "on" : "off", flu_tokens, flu_k, rk, (double)min_sim);
    fprintf(stderr, "  model %s (D=%d, V=%d), editor %s (%s, T=%d, R=%d)\n", model, lc->dim,
            lc->n_vocab, edp, ed->cfg.kind == MK_PENC_ATTN ? "attn" : "mlp", ed->cfg.T, ed->cfg.R);
    if ((rc = mk_eval_run(llm, ed, &set, &eo, &res))) {
        ret = cli_die_lib("eval", rc);
        goto done;
    }
    fprintf(stderr, "evaluated %lld items in %lld chunks in %.2f s (%.2f items/s)\n",
            (long long)res.n, (long long)res.n_chunks, res.seconds,
            res.seconds > 0 ? (double)res.n / res.seconds : 0.0);
    printf("%-12s %8s\n", "metric", "x100");
    printf("%-12s %8.2f\n", "Efficacy", res.eff);
    printf("%-12s %8.2f\n", "Generality", res.gen);
    printf("%-12s %8.2f\n", "Locality", res.loc);
    if (eo.fluency)
        printf("%-12s %8.2f\n", "Fluency", res.flu);
    else
        printf("%-12s %8s\n", "Fluency", "-");
    printf("%-12s %8.2f\n", "Avg", res.avg);
    if (res.n_loc_kinds > 1)
        for (int k = 0; k < res.n_loc_kinds; k++)
            printf("  locality %-10s %8.2f\n", res.loc_kind[k], res.loc_by_kind[k]);
    printf("retrieval: prompt->own edit %.2f, rephrase->own edit %.2f, locality->none %.2f\n",
           res.ret_eff, res.ret_gen, res.ret_loc_none);
    if (out) {
        mk_eval_report_info info = {model, edp, data, &eo, &set};
        if ((rc = mk_eval_report_json(&info, &res, &json)) ||
            (rc = mk_write_file_atomic(out, json, strlen(json)))) {
            ret = cli_die_lib("eval", rc);
            goto done;
        }
        fprintf(stderr, "report written to %s\n", out);
    }
    ret = 0;
done:
    free(json);
    mk_eval_result_free(&res);
    mk_eval_set_free(&set);
    mk_editor_free(ed);
    mk_llama_close(llm);
    return ret;
}
