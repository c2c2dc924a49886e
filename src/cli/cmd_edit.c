/* cmd_edit.c - `medrek edit`: encode a batch of corrections and append
 * them to the knowledge base as one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../store/session.h"
#include "cli.h"

static const char *USAGE =
    "usage: medrek edit --kb FILE --model PATH --editor FILE --file EDITS [options]\n"
    "  --kb FILE          knowledge base (SQLite; created when absent)\n"
    "  --model PATH       the frozen LLM: .gguf file or Hugging Face directory\n"
    "  --editor FILE      editor file (medrek editor init / train)\n"
    "  --file EDITS       JSON array or JSON lines of {prompt, target_new, ...},\n"
    "                     or a MedVersa / MedCF file\n"
    "  --author A         who makes the edits (default: $USER, else \"unknown\")\n"
    "  --reason R         why (recorded with the batch and in the history)\n"
    "  --supersede        replace active edits whose key is nearly identical but\n"
    "                     whose target differs (default: report them and write nothing)\n"
    "  --threshold X      cosine similarity counted as a conflict (default 0.98)\n"
    "  --dry-run          encode and check conflicts, write nothing\n"
    "Prints how many edits were added, their ids, the time and the rate.\n";

static void on_progress(void *ud, int64_t done, int64_t total) {
    cli_progress_update(ud, done, total);
}

int cmd_edit(int argc, char **argv) {
    const char *kbp = NULL, *model = NULL, *edp = NULL, *file = NULL, *reason = NULL;
    const char *author = getenv("USER");
    int supersede = 0, dry = 0;
    float threshold = MK_KB_CONFLICT_THRESHOLD;
    cli_opt opts[] = {
        {"--kb", CLI_STR, &kbp},         {"--model", CLI_STR, &model},
        {"--editor", CLI_STR, &edp},     {"--file", CLI_STR, &file},
        {"--author", CLI_STR, &author},  {"--reason", CLI_STR, &reason},
        {"--supersede", CLI_FLAG, &supersede}, {"--threshold", CLI_FLOAT, &threshold},
        {"--dry-run", CLI_FLAG, &dry},
    };
    int r = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL, USAGE);
    if (r == 1) return 0;
    if (r) return r;
    if (!kbp || !model || !edp || !file)
        return cli_usage_error("edit", USAGE, "--kb, --model, --editor and --file are required");
    if (!(threshold > 0 && threshold <= 1))
        return cli_usage_error("edit", USAGE, "--threshold must be in (0, 1]");
    if (!author || !author[0]) author = "unknown";

    mk_edit_request *reqs = NULL;
    int64_t n = 0, batch = 0, n_conf = 0;
    mk_session *s = NULL;
    float *keys = NULL, *prompts = NULL;
    int64_t *ids = NULL;
    mk_kb_conflict *conf = NULL;
    int rc, ret = 1;
    double t0 = cli_now();

    if ((rc = mk_edit_requests_parse_file(file, &reqs, &n))) goto lib_fail;
    if (n == 0) {
        fprintf(stderr, "medrek edit: %s: no edits in the file\n", file);
        goto done;
    }
    if ((rc = mk_session_open(kbp, model, edp, MK_SESSION_NO_LLM_TOKENIZER, &s))) goto lib_fail;
    const mk_editor_config *c = &s->ed->cfg;
    fprintf(stderr, "medrek edit: %lld edits from %s; editor %s (%s, T=%d, R=%d, D=%d); "
            "%lld active edits in %s\n", (long long)n, file, s->editor_fp,
            c->kind == MK_PENC_ATTN ? "attn" : "mlp", c->T, c->R, c->D,
            (long long)s->act.n, kbp);

    cli_progress prog;
    cli_progress_start(&prog, "encoding edits");
    double te = cli_now();
    if ((rc = mk_session_encode(s, reqs, n, &keys, &prompts, on_progress, &prog))) goto lib_fail;
    te = cli_now() - te;

    /* Conflicts are checked against the active edits before anything is
     * written (rows from lead: the prototype row is not an edit). */
    if ((rc = mk_kb_find_conflicts(s->kb, &s->act, reqs, keys, n, threshold, &conf, &n_conf)))
        goto lib_fail;
    if (n_conf && !supersede) {
        fprintf(stderr, "medrek edit: %lld conflict(s) with active edits; nothing written:\n",
                (long long)n_conf);
        for (int64_t i = 0; i < n_conf; i++) {
            mk_edit_request old;
            memset(&old, 0, sizeof old);
            int g = mk_kb_get(s->kb, conf[i].existing_id, &old);
            fprintf(stderr, "  incoming #%lld \"%s\" -> \"%s\" vs edit %lld -> \"%s\" (cosine %.4f)\n",
                    (long long)conf[i].incoming + 1, reqs[conf[i].incoming].prompt,
                    reqs[conf[i].incoming].target_new, (long long)conf[i].existing_id,
                    g == MK_OK && old.target_new ? old.target_new : "?", conf[i].similarity);
            mk_edit_request_clear(&old);
        }
        fputs("rerun with --supersede to replace them (the old edits stay in the history)\n",
              stderr);
        goto done;
    }
    if (dry) {
        printf("dry run: %lld edits encoded in %.2f s, %lld conflict(s); nothing written\n",
               (long long)n, te, (long long)n_conf);
        ret = 0;
        goto done;
    }

    ids = malloc((size_t)n * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "medrek edit: out of memory\n");
        goto done;
    }
    mk_kb_vectors vec = {s->editor_fp, c->R, c->T, c->D, keys, prompts};
    mk_kb_insert_args ia;
    memset(&ia, 0, sizeof ia);
    ia.author = author;
    ia.reason = reason;
    ia.vec = &vec;
    ia.supersede = conf;
    ia.n_supersede = n_conf;
    double tw = cli_now();
    if ((rc = mk_kb_insert(s->kb, reqs, n, &ia, &batch, ids))) goto lib_fail;
    tw = cli_now() - tw;
    double total = cli_now() - t0;
    printf("added %lld edits as batch %lld: ids %lld..%lld\n", (long long)n, (long long)batch,
           (long long)ids[0], (long long)ids[n - 1]);
    if (n_conf) printf("superseded %lld active edit(s)\n", (long long)n_conf);
    printf("time %.2f s (encode %.2f s, %.1f edits/s; write %.3f s); %.1f edits/s overall\n",
           total, te, te > 0 ? (double)n / te : 0.0, tw, total > 0 ? (double)n / total : 0.0);
    ret = 0;
    goto done;
lib_fail:
    ret = cli_die_lib("edit", rc);
done:
    free(conf);
    free(ids);
    free(keys);
    free(prompts);
    mk_session_close(s);
    mk_edit_requests_free(reqs, n);
    return ret;
}

static const char *USAGE_REENCODE =
    "usage: medrek kb reencode --kb FILE --model PATH --editor FILE [--author A] [--reason R]\n"
    "  Recompute the key and prompt vectors of every active edit that has none\n"
    "  (imported) or was encoded by another editor, with this editor, in one\n"
    "  transaction recorded in the history.\n"
    "  --kb FILE          knowledge base\n"
    "  --model PATH       the frozen LLM the editor was made for\n"
    "  --editor FILE      the editor to encode with\n"
    "  --author A         who (default: $USER, else \"unknown\")\n"
    "  --reason R         why (default: \"re-encode\")\n";

int cmd_kb_reencode(int argc, char **argv) {
    const char *kbp = NULL, *model = NULL, *edp = NULL, *reason = "re-encode";
    const char *author = getenv("USER");
    cli_opt opts[] = {
        {"--kb", CLI_STR, &kbp},       {"--model", CLI_STR, &model}, {"--editor", CLI_STR, &edp},
        {"--author", CLI_STR, &author}, {"--reason", CLI_STR, &reason},
    };
    int r = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL,
                      USAGE_REENCODE);
    if (r == 1) return 0;
    if (r) return r;
    if (!kbp || !model || !edp)
        return cli_usage_error("kb reencode", USAGE_REENCODE, "--kb, --model and --editor are required");
    if (!author || !author[0]) author = "unknown";
    mk_session *s = NULL;
    int64_t n = 0;
    double t0 = cli_now();
    int rc = mk_session_open(kbp, model, edp, MK_SESSION_NO_LLM_TOKENIZER | MK_SESSION_NO_LOAD, &s);
    cli_progress prog;
    cli_progress_start(&prog, "re-encoding edits");
    if (!rc) rc = mk_session_reencode(s, author, reason, &n, on_progress, &prog);
    if (rc) {
        mk_session_close(s);
        return cli_die_lib("kb reencode", rc);
    }
    printf("re-encoded %lld edit(s) with %s in %.2f s; %lld active edits ready\n", (long long)n,
           s->editor_fp, cli_now() - t0, (long long)s->act.n);
    mk_session_close(s);
    return 0;
}
