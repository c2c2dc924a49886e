/* cmd_edit.c - `medrek edit`: encode a batch of corrections and append
 * them to the knowledge base as one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "  --keep-duplicates  also store requests whose prompt and target equal an active\n"
    "                     edit's or an earlier request's (default: skip them, say so)\n"
    "Prints how many edits were added, their ids, the time and the rate.\n";

static void on_progress(void *ud, int64_t done, int64_t total) {
    cli_progress_update(ud, done, total);
}

/* ---- exact duplicates: same prompt and target as an active edit, or as an
 * earlier request of the same file. They would add nothing but clutter,
 * so they are dropped (and said) unless --keep-duplicates. ---- */
typedef struct {
    const char *prompt, *target;
    int64_t id;  /* active edit id, or 0 for an incoming request */
    int64_t idx; /* request index (incoming), or -1 */
} dup_entry;

static int cmp_dup(const void *a, const void *b) {
    const dup_entry *x = a, *y = b;
    int c = strcmp(x->prompt, y->prompt);
    if (!c) c = strcmp(x->target, y->target);
    if (!c) c = (x->id == 0) - (y->id == 0); /* active edits first */
    if (!c) c = (x->idx > y->idx) - (x->idx < y->idx);
    return c;
}

/* Remove duplicates from reqs (compacting it; orig[k] receives the file
 * position of kept request k); returns the new count or -1 (library error,
 * message set, reqs untouched). */
static int64_t drop_duplicates(mk_kb *kb, mk_edit_request *reqs, int64_t n, int64_t *orig) {
    mk_edit_request *act = NULL;
    int64_t na = 0, kept = 0;
    if (mk_kb_list(kb, MK_EDIT_ACTIVE, 0, &act, &na)) return -1;
    dup_entry *e = malloc((size_t)(na + n) * sizeof *e);
    char *drop = calloc((size_t)n, 1);
    if (!e || !drop) {
        free(e);
        free(drop);
        mk_edit_requests_free(act, na);
        mk_fail(MK_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < na; i++) e[i] = (dup_entry){act[i].prompt, act[i].target_new, act[i].id, -1};
    for (int64_t i = 0; i < n; i++) e[na + i] = (dup_entry){reqs[i].prompt, reqs[i].target_new, 0, i};
    qsort(e, (size_t)(na + n), sizeof *e, cmp_dup);
    for (int64_t i = 1; i < na + n; i++) {
        const dup_entry *a = &e[i - 1], *b = &e[i];
        if (b->id || strcmp(a->prompt, b->prompt) || strcmp(a->target, b->target)) continue;
        /* e[i] is an incoming duplicate of e[i-1] (an active edit or an
         * earlier request); the first of a run names what it repeats */
        const dup_entry *first = a;
        while (first > e && !strcmp(first[-1].prompt, b->prompt) && !strcmp(first[-1].target, b->target)) first--;
        drop[b->idx] = 1;
        if (first->id)
            fprintf(stderr, "medrek edit: skipping request #%lld: same prompt and target as active edit %lld\n",
                    (long long)b->idx + 1, (long long)first->id);
        else
            fprintf(stderr, "medrek edit: skipping request #%lld: repeats request #%lld\n",
                    (long long)b->idx + 1, (long long)first->idx + 1);
    }
    for (int64_t i = 0; i < n; i++) {
        if (drop[i]) {
            mk_edit_request_clear(&reqs[i]);
            continue;
        }
        if (kept != i) {
            reqs[kept] = reqs[i];
            memset(&reqs[i], 0, sizeof reqs[i]);
        }
        orig[kept++] = i;
    }
    free(e);
    free(drop);
    mk_edit_requests_free(act, na);
    return kept;
}

/* 1 when path is a knowledge base with no batch at all (safe to remove:
 * another process may have created and filled it meanwhile). */
static int kb_is_empty(const char *path) {
    mk_kb *kb = NULL;
    mk_kb_stats st;
    int empty = 0;
    if (mk_kb_open(path, MK_KB_READONLY, &kb) != MK_OK) return 0;
    if (mk_kb_get_stats(kb, &st) == MK_OK) {
        empty = st.n_batches == 0 && st.n_history == 0;
        mk_kb_stats_free(&st);
    }
    mk_kb_close(kb);
    return empty;
}

int cmd_edit(int argc, char **argv) {
    const char *kbp = NULL, *model = NULL, *edp = NULL, *file = NULL, *reason = NULL;
    const char *author = getenv("USER");
    int supersede = 0, dry = 0, keep_dups = 0;
    float threshold = MK_KB_CONFLICT_THRESHOLD;
    cli_opt opts[] = {
        {"--kb", CLI_STR, &kbp},         {"--model", CLI_STR, &model},
        {"--editor", CLI_STR, &edp},     {"--file", CLI_STR, &file},
        {"--author", CLI_STR, &author},  {"--reason", CLI_STR, &reason},
        {"--supersede", CLI_FLAG, &supersede}, {"--threshold", CLI_FLOAT, &threshold},
        {"--dry-run", CLI_FLAG, &dry},   {"--keep-duplicates", CLI_FLAG, &keep_dups},
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
    int64_t *ids = NULL, *orig = NULL; /* orig: file position of each request kept */
    mk_kb_conflict *conf = NULL;
    int rc, ret = 1;
    double t0 = cli_now();

    /* a dry or failed run leaves no file behind, not even a new empty base */
    int kb_existed = access(kbp, F_OK) == 0;
    if ((rc = mk_edit_requests_parse_file(file, &reqs, &n))) goto lib_fail;
    if (n == 0) {
        fprintf(stderr, "medrek edit: %s: no edits in the file\n", file);
        goto done;
    }
    if ((rc = mk_session_open(kbp, model, edp, MK_SESSION_NO_LLM_TOKENIZER, &s))) goto lib_fail;
    if (!(orig = malloc((size_t)n * sizeof *orig))) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory");
        goto lib_fail;
    }
    for (int64_t i = 0; i < n; i++) orig[i] = i;
    if (!keep_dups) {
        int64_t n0 = n;
        if ((n = drop_duplicates(s->kb, reqs, n, orig)) < 0) {
            n = n0; /* reqs untouched on failure */
            rc = MK_ERR_NOMEM;
            goto lib_fail;
        }
        if (n == 0) {
            printf("nothing new: all %lld requests repeat active edits or each other\n", (long long)n0);
            ret = 0;
            goto done;
        }
    }
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

    /* Two requests of this batch that say different things about the same
     * question cannot both be applied: refuse before writing. */
    {
        mk_kb_conflict *self = NULL;
        int64_t n_self = 0;
        if ((rc = mk_edit_requests_self_conflicts(reqs, keys, n, c->R, threshold, &self, &n_self)))
            goto lib_fail;
        if (n_self) {
            fprintf(stderr, "medrek edit: %lld pair(s) of requests contradict each other; nothing written:\n",
                    (long long)n_self);
            for (int64_t i = 0; i < n_self; i++)
                fprintf(stderr, "  #%lld \"%s\" -> \"%s\" vs #%lld -> \"%s\" (cosine %.4f)\n",
                        (long long)orig[self[i].incoming] + 1, reqs[self[i].incoming].prompt,
                        reqs[self[i].incoming].target_new, (long long)orig[self[i].existing_id] + 1,
                        reqs[self[i].existing_id].target_new, self[i].similarity);
            free(self);
            goto done;
        }
    }
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
                    (long long)orig[conf[i].incoming] + 1, reqs[conf[i].incoming].prompt,
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
    free(orig);
    free(keys);
    free(prompts);
    mk_session_close(s);
    mk_edit_requests_free(reqs, n);
    if (!kb_existed && (dry || ret != 0) && kb_is_empty(kbp)) { /* created by this run */
        char side[4096];
        unlink(kbp);
        snprintf(side, sizeof side, "%s-wal", kbp);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", kbp);
        unlink(side);
    }
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
