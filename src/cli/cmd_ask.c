/* cmd_ask.c - `medrek ask`: answer a question with the matching edit's
 * prompt vectors prepended, showing which edit answered and how sure the
 * retrieval was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../store/session.h"
#include "../text/tokenizer.h"
#include "cli.h"

static const char *USAGE =
    "usage: medrek ask --kb FILE --model PATH --editor FILE --prompt TEXT [options]\n"
    "  --kb FILE          knowledge base (opened read-only)\n"
    "  --model PATH       the frozen LLM: .gguf file or Hugging Face directory\n"
    "  --editor FILE      the editor that encoded the knowledge base\n"
    "  --prompt TEXT      the question\n"
    "  --compare          also print the unedited model's answer\n"
    "  --max-tokens N     new tokens at most (default 32)\n"
    "  --temp T           sampling temperature; 0 = greedy (default 0)\n"
    "  --top-k K          sampling top-k; 0 = off (default 0)\n"
    "  --seed S           sampling seed (default 42)\n"
    "  --retrieve-k K     edits retrieved at most (default 1)\n"
    "  --min-sim X        a retrieved edit must score above X (default -999)\n";

static int answer(mk_session *s, const char *prompt, const float *prefix, int n_prefix,
                  const mk_gen_params *gp, const char *label) {
    char *text = NULL;
    mk_gen_stats st;
    memset(&st, 0, sizeof st);
    int rc = mk_session_answer(s, prompt, prefix, n_prefix, gp, &text, &st);
    if (rc) return cli_die_lib("ask", rc);
    printf("%s: %s\n", label, text);
    fprintf(stderr, "%s: %d prompt positions (%d prefix vectors), %d new tokens, %.1f tok/s\n",
            label, st.n_prompt, n_prefix, st.n_generated,
            st.gen_s > 0 ? st.n_generated / st.gen_s : 0.0);
    free(text);
    return 0;
}

int cmd_ask(int argc, char **argv) {
    const char *kbp = NULL, *model = NULL, *edp = NULL, *prompt = NULL;
    int compare = 0, max_tokens = 32, top_k = 0, rk = 1;
    float temp = 0, min_sim = -999.0f;
    int64_t seed = 42;
    cli_opt opts[] = {
        {"--kb", CLI_STR, &kbp},           {"--model", CLI_STR, &model},
        {"--editor", CLI_STR, &edp},       {"--prompt", CLI_STR, &prompt},
        {"--compare", CLI_FLAG, &compare}, {"--max-tokens", CLI_INT, &max_tokens},
        {"--temp", CLI_FLOAT, &temp},      {"--top-k", CLI_INT, &top_k},
        {"--seed", CLI_I64, &seed},        {"--retrieve-k", CLI_INT, &rk},
        {"--min-sim", CLI_FLOAT, &min_sim},
    };
    int r = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL, USAGE);
    if (r == 1) return 0;
    if (r) return r;
    if (!kbp || !model || !edp || !prompt)
        return cli_usage_error("ask", USAGE, "--kb, --model, --editor and --prompt are required");
    if (max_tokens < 1 || max_tokens > 100000 || rk < 1 || rk > 64 || !(temp >= 0) || top_k < 0)
        return cli_usage_error("ask", USAGE,
                               "need 1 <= --max-tokens <= 100000, 1 <= --retrieve-k <= 64, "
                               "--temp >= 0, --top-k >= 0");
    if (!prompt[0]) return cli_usage_error("ask", USAGE, "--prompt is empty");

    mk_session *s = NULL;
    mk_retr_result res;
    memset(&res, 0, sizeof res);
    float *prefix = NULL;
    int rc, ret = 1;
    if ((rc = mk_session_open(kbp, model, edp, MK_SESSION_READONLY, &s))) {
        ret = cli_die_lib("ask", rc);
        goto done;
    }
    mk_retr_opts ro = MK_RETR_OPTS_DEFAULT;
    ro.top_k = rk;
    ro.min_sim = min_sim;
    if ((rc = mk_session_retrieve(s, &prompt, 1, &ro, &res))) {
        ret = cli_die_lib("ask", rc);
        goto done;
    }
    int64_t T = s->rkb.T, D = s->rkb.D, n_vecs = 0;
    prefix = malloc((size_t)rk * (size_t)T * (size_t)D * sizeof *prefix);
    if (!prefix) {
        fprintf(stderr, "medrek ask: out of memory\n");
        goto done;
    }
    if ((rc = mk_session_prefix(s, &res, 0, prefix, rk * T, &n_vecs))) {
        ret = cli_die_lib("ask", rc);
        goto done;
    }
    printf("knowledge base: %lld active edits; prototype similarity %.4f\n",
           (long long)s->act.n, res.proto_sim[0]);
    if (res.n_kept[0] == 0) {
        if (s->act.n == 0)
            printf("retrieved: none (the knowledge base has no active edit)\n");
        else
            printf("retrieved: none passed the prototype (best edit similarity %.4f, margin %.4f)\n",
                   res.best_sim[0], res.margin[0]);
    }
    for (int k = 0; k < res.n_kept[0]; k++) {
        mk_edit_request e;
        memset(&e, 0, sizeof e);
        int64_t id = res.ids[k];
        if ((rc = mk_kb_get(s->kb, id, &e))) {
            ret = cli_die_lib("ask", rc);
            goto done;
        }
        printf("retrieved: edit %lld similarity %.4f margin %.4f\n", (long long)id, res.sims[k],
               res.sims[k] - res.proto_sim[0]);
        printf("  prompt: %s\n  target: %s\n", e.prompt, e.target_new);
        mk_edit_request_clear(&e);
    }
    mk_gen_params gp;
    mk_gen_params_default(&gp);
    gp.max_tokens = max_tokens;
    gp.temperature = temp;
    gp.top_k = top_k;
    gp.seed = (uint64_t)seed;
    const mk_tokenizer *tok = mk_llama_tokenizer(s->llm);
    gp.eos_id = tok ? mk_tok_eos(tok) : -1;
    if ((ret = answer(s, prompt, prefix, (int)n_vecs, &gp, "answer"))) goto done;
    if (compare && (ret = answer(s, prompt, NULL, 0, &gp, "unedited"))) goto done;
    ret = 0;
done:
    free(prefix);
    mk_retr_result_free(&res);
    mk_session_close(s);
    return ret;
}
