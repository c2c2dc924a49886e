/* cmd_kb.c - `medrek kb`: list, show, revert, history, stats, export and
 * import the edits of a knowledge base. Encoding (edit, reencode) needs
 * the editor and lives with `medrek edit`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../io/mapfile.h"
#include "../store/kb.h"
#include "cli.h"

static const char *USAGE =
    "usage: medrek kb SUBCOMMAND --kb FILE [OPTIONS]\n"
    "\n"
    "Inspect and manage the edits of a knowledge base (one SQLite file).\n"
    "\n"
    "subcommands:\n"
    "  list               one line per edit: id, status, batch, prompt -> target\n"
    "  show ID            every field of edit ID and its history\n"
    "  revert ID          revert one edit (it stays in the file, inactive)\n"
    "  revert --batch B   revert every active edit of batch B\n"
    "  history            the append-only change log, oldest first\n"
    "  stats              counts by status, batches, vector bytes, shapes, editors\n"
    "  export             every edit as JSON lines (no vectors)\n"
    "  import --file F    add the edits of an export file as one new batch, keeping\n"
    "                     their ids; they need `medrek kb reencode` before use\n"
    "  check              SQLite's full integrity check of the file\n"
    "  reencode           recompute the vectors of active edits for another editor\n"
    "                     (needs --editor and --model; medrek kb reencode --help)\n"
    "\n"
    "options:\n"
    "  --kb FILE          the knowledge base (required)\n"
    "  --status S         list: active, reverted, superseded or any (default any)\n"
    "  --limit N          list, history: at most N rows, history keeps the last N\n"
    "                     (default 0 = all)\n"
    "  --edit ID          history: only the events of edit ID\n"
    "  --batch B          revert: the batch to revert\n"
    "  --author NAME      revert, import: who (default $USER)\n"
    "  --reason TEXT      revert, import: why (default none)\n"
    "  --file F           import: the JSON-lines file\n"
    "  --out FILE         export: write FILE (atomically) instead of stdout\n"
    "  -h, --help         this text\n";

typedef struct {
    const char *kb, *status, *author, *reason, *file, *out;
    int64_t limit, edit, batch;
} kb_opts;

static int die(int rc) { return cli_die_lib("kb", rc); }

/* Print at most `max` bytes of s on one line: control characters become
 * spaces, a cut never splits a UTF-8 sequence and ends with "...". */
static void put_trunc(const char *s, size_t max) {
    size_t n = strlen(s), cut = n;
    if (n > max) {
        cut = max - 3;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    }
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        putchar(c < 0x20 || c == 0x7f ? ' ' : c);
    }
    if (cut < n) fputs("...", stdout);
}

static const char *default_author(const kb_opts *o) {
    if (o->author && *o->author) return o->author;
    const char *u = getenv("USER");
    return u && *u ? u : NULL;
}

static int do_list(mk_kb *kb, const kb_opts *o) {
    int status = MK_EDIT_ANY;
    if (o->status && (status = mk_edit_status_parse(o->status)) < -1)
        return cli_usage_error("kb", USAGE, "bad --status '%s' (active, reverted, superseded, any)", o->status);
    mk_edit_request *e;
    int64_t n;
    int rc = mk_kb_list(kb, status, o->limit, &e, &n);
    if (rc) return die(rc);
    for (int64_t i = 0; i < n; i++) {
        printf("%6lld  %-10s  batch %-5lld  ", (long long)e[i].id, mk_edit_status_name(e[i].status),
               (long long)e[i].batch);
        put_trunc(e[i].prompt, 70);
        fputs(" -> ", stdout);
        put_trunc(e[i].target_new, 40);
        putchar('\n');
    }
    mk_edit_requests_free(e, n);
    return 0;
}

static void field(const char *name, const char *v) {
    if (v) printf("%-22s %s\n", name, v);
}

static void print_events(const mk_kb_event *ev, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        printf("%6lld  %s  %-9s", (long long)ev[i].seq, ev[i].time, ev[i].action);
        if (ev[i].edit_id) printf("  edit %lld", (long long)ev[i].edit_id);
        if (ev[i].batch_id) printf("  batch %lld", (long long)ev[i].batch_id);
        printf("  by %s", ev[i].author);
        if (ev[i].reason) printf(": %s", ev[i].reason);
        if (ev[i].detail) printf(" (%s)", ev[i].detail);
        putchar('\n');
    }
}

static int do_show(mk_kb *kb, int64_t id) {
    mk_edit_request e;
    int rc = mk_kb_get(kb, id, &e);
    if (rc) return die(rc);
    printf("%-22s %lld\n", "id", (long long)e.id);
    field("status", mk_edit_status_name(e.status));
    if (e.superseded_by) printf("%-22s %lld\n", "superseded_by", (long long)e.superseded_by);
    printf("%-22s %lld\n", "batch", (long long)e.batch);
    field("created", e.created);
    field("author", e.author);
    field("reason", e.reason);
    field("prompt", e.prompt);
    field("target_new", e.target_new);
    field("subject", e.subject);
    field("ground_truth", e.ground_truth);
    field("rephrase_prompt", e.rephrase_prompt);
    field("locality_prompt", e.locality_prompt);
    field("locality_ground_truth", e.locality_ground_truth);
    field("source", e.source);
    if (e.fingerprint)
        printf("%-22s %s (R=%lld T=%lld D=%lld)\n", "editor", e.fingerprint, (long long)e.R,
               (long long)e.T, (long long)e.D);
    else
        field("editor", "none: needs encoding (medrek kb reencode)");
    mk_edit_request_clear(&e);
    mk_kb_event *ev;
    int64_t n;
    if ((rc = mk_kb_history(kb, id, 0, &ev, &n))) return die(rc);
    printf("history:\n");
    print_events(ev, n);
    mk_kb_events_free(ev, n);
    return 0;
}

static int do_stats(mk_kb *kb) {
    mk_kb_stats s;
    int rc = mk_kb_get_stats(kb, &s);
    if (rc) return die(rc);
    printf("file           %s (%.1f MB with WAL)\n", mk_kb_path(kb), (double)s.file_bytes / 1e6);
    printf("schema         version %d\n", s.schema_version);
    printf("edits          %lld active, %lld reverted, %lld superseded\n", (long long)s.n_active,
           (long long)s.n_reverted, (long long)s.n_superseded);
    printf("batches        %lld\n", (long long)s.n_batches);
    printf("history        %lld events\n", (long long)s.n_history);
    printf("vectors        %.1f MB\n", (double)s.vector_bytes / 1e6);
    for (int i = 0; i < s.n_fp; i++) {
        if (s.fp[i].fingerprint)
            printf("editor         %s  R=%lld T=%lld D=%lld  %lld edits (%lld active)\n",
                   s.fp[i].fingerprint, (long long)s.fp[i].R, (long long)s.fp[i].T,
                   (long long)s.fp[i].D, (long long)s.fp[i].n_edits, (long long)s.fp[i].n_active);
        else
            printf("no vectors     %lld edits (%lld active) need encoding\n",
                   (long long)s.fp[i].n_edits, (long long)s.fp[i].n_active);
    }
    mk_kb_stats_free(&s);
    return 0;
}

static int do_export(mk_kb *kb, const kb_opts *o) {
    if (!o->out) {
        int rc = mk_kb_export(kb, stdout, "stdout");
        return rc ? die(rc) : 0;
    }
    mk_afile a;
    int rc = mk_afile_open(&a, o->out);
    if (rc) return die(rc);
    if ((rc = mk_kb_export(kb, (FILE *)a.f, o->out))) {
        mk_afile_abort(&a);
        return die(rc);
    }
    if ((rc = mk_afile_commit(&a))) return die(rc);
    return 0;
}

static int parse_id(const char *s, int64_t *v) {
    char *end;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || x <= 0) return -1;
    *v = x;
    return 0;
}

int cmd_kb(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("kb", USAGE, "missing subcommand");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    static const char *subs[] = {"list", "show", "revert", "history", "stats", "export", "import", "check", "reencode"};
    int known = 0;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) known |= !strcmp(sub, subs[i]);
    if (!known) return cli_usage_error("kb", USAGE, "unknown subcommand '%s'", sub);
    /* reencode needs the editor and the LLM: it lives with `medrek edit` */
    if (!strcmp(sub, "reencode")) return cmd_kb_reencode(argc - 1, argv + 1);

    kb_opts o = {0};
    const cli_opt opts[] = {
        {"--kb", CLI_STR, &o.kb},         {"--status", CLI_STR, &o.status},
        {"--limit", CLI_I64, &o.limit},   {"--edit", CLI_I64, &o.edit},
        {"--batch", CLI_I64, &o.batch},   {"--author", CLI_STR, &o.author},
        {"--reason", CLI_STR, &o.reason}, {"--file", CLI_STR, &o.file},
        {"--out", CLI_STR, &o.out},
    };
    /* argv for the option parser: "kb" then the subcommand's arguments, so
     * its messages read "medrek kb: ...". */
    char **av = malloc((size_t)argc * sizeof *av);
    if (!av) return die(mk_fail(MK_ERR_NOMEM, "out of memory"));
    av[0] = "kb";
    for (int i = 2; i < argc; i++) av[i - 1] = argv[i];
    char *pos[2];
    int npos = 0;
    int prc = cli_parse(argc - 1, av, opts, (int)(sizeof opts / sizeof opts[0]), pos, 2, &npos, USAGE);
    free(av);
    if (prc == 1) return 0;
    if (prc) return prc;

    if (!o.kb) return cli_usage_error("kb", USAGE, "%s: --kb FILE is required", sub);
    int is_show = !strcmp(sub, "show"), is_revert = !strcmp(sub, "revert");
    int max_pos = is_show || is_revert ? 1 : 0;
    if (npos > max_pos) return cli_usage_error("kb", USAGE, "%s: unexpected argument '%s'", sub, pos[max_pos]);
    /* Options that do not belong to the subcommand are mistakes. */
    struct { const char *name; int given; const char *for_; } own[] = {
        {"--status", o.status != NULL, "list"},
        {"--limit", o.limit != 0, "list history"},
        {"--edit", o.edit != 0, "history"},
        {"--batch", o.batch != 0, "revert"},
        {"--author", o.author != NULL, "revert import"},
        {"--reason", o.reason != NULL, "revert import"},
        {"--file", o.file != NULL, "import"},
        {"--out", o.out != NULL, "export"},
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (own[i].given && !strstr(own[i].for_, sub))
            return cli_usage_error("kb", USAGE, "%s: option %s does not apply (it is for: %s)", sub,
                                   own[i].name, own[i].for_);
    if (o.limit < 0) return cli_usage_error("kb", USAGE, "--limit must be >= 0");

    int64_t id = 0;
    if (is_show) {
        if (npos != 1 || parse_id(pos[0], &id))
            return cli_usage_error("kb", USAGE, "show: needs one edit id (a positive integer)");
    }
    const char *author = NULL;
    if (is_revert) {
        if ((npos == 1) == (o.batch != 0))
            return cli_usage_error("kb", USAGE, "revert: give an edit id or --batch B (one of them)");
        if (npos == 1 && parse_id(pos[0], &id))
            return cli_usage_error("kb", USAGE, "revert: bad edit id '%s'", pos[0]);
        if (o.batch < 0) return cli_usage_error("kb", USAGE, "revert: bad --batch");
    }
    int is_import = !strcmp(sub, "import");
    if (is_import && !o.file) return cli_usage_error("kb", USAGE, "import: --file F is required");
    if (is_revert || is_import) {
        if (!(author = default_author(&o)))
            return cli_usage_error("kb", USAGE, "%s: --author is required ($USER is not set)", sub);
    }
    if (!strcmp(sub, "history") && o.edit < 0) return cli_usage_error("kb", USAGE, "history: bad --edit");

    mk_kb *kb;
    int flags = is_revert ? 0 : is_import ? MK_KB_CREATE : MK_KB_READONLY;
    int rc = mk_kb_open(o.kb, flags, &kb);
    if (rc) return die(rc);
    int ret = 0;
    if (!strcmp(sub, "list")) {
        ret = do_list(kb, &o);
    } else if (is_show) {
        ret = do_show(kb, id);
    } else if (is_revert) {
        if (o.batch) {
            int64_t n = 0;
            if ((rc = mk_kb_revert_batch(kb, o.batch, author, o.reason, &n))) ret = die(rc);
            else printf("reverted %lld edits of batch %lld\n", (long long)n, (long long)o.batch);
        } else {
            if ((rc = mk_kb_revert(kb, id, author, o.reason))) ret = die(rc);
            else printf("reverted edit %lld\n", (long long)id);
        }
    } else if (!strcmp(sub, "history")) {
        mk_kb_event *ev;
        int64_t n;
        if ((rc = mk_kb_history(kb, o.edit, o.limit, &ev, &n))) ret = die(rc);
        else {
            print_events(ev, n);
            mk_kb_events_free(ev, n);
        }
    } else if (!strcmp(sub, "stats")) {
        ret = do_stats(kb);
    } else if (!strcmp(sub, "export")) {
        ret = do_export(kb, &o);
    } else if (!strcmp(sub, "check")) {
        if ((rc = mk_kb_integrity_check(kb))) ret = die(rc);
        else printf("%s: ok\n", o.kb);
    } else if (is_import) {
        int64_t batch = 0, n = 0;
        if ((rc = mk_kb_import(kb, o.file, author, o.reason, &batch, &n))) ret = die(rc);
        else
            printf("imported %lld edits as batch %lld; they need vectors: run `medrek kb reencode --kb %s --editor E --model M`\n",
                   (long long)n, (long long)batch, o.kb);
    }
    mk_kb_close(kb);
    return ret;
}
