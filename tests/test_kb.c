/* test_kb.c - the SQLite knowledge base: batches, bit-exact vectors,
 * revert/supersede, history (complete, ordered, immutable), conflicts,
 * re-encoding, export/import round trip, request parsing errors, refusal of
 * foreign or damaged files, and readers during writes (WAL). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/error.h"
#include "store/kb.h"
#include "util/check.h"

static char dir[] = "/tmp/mk_test_kb_XXXXXX";
static char pathbuf[32][512]; /* a pool, so several paths can be live */
static int pathnext;
static const char *tmp(const char *name) {
    char *p = pathbuf[pathnext++ % 32];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static uint64_t rng = 88172645463325252ULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

/* n requests "question i?" -> "answer i" with a tag. */
static mk_edit_request *make_reqs(int64_t n, const char *tag) {
    mk_edit_request *r = calloc((size_t)n, sizeof *r);
    for (int64_t i = 0; i < n; i++) {
        char b[128];
        snprintf(b, sizeof b, "%s question %lld?", tag, (long long)i);
        r[i].prompt = strdup(b);
        snprintf(b, sizeof b, "%s answer %lld", tag, (long long)i);
        r[i].target_new = strdup(b);
        if (i % 2 == 0) r[i].subject = strdup("Pharmacology");
        if (i % 3 == 0) r[i].source = strdup("doi:10.1000/xyz \"quoted\" \xc3\xa9");
        r[i].ground_truth = strdup("old answer");
    }
    return r;
}

static int64_t count_rows(const char *path, const char *table) {
    sqlite3 *db;
    sqlite3_stmt *st;
    char sql[128];
    int64_t n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

typedef struct {
    int64_t R, T, D, n;
    float *keys, *prompts;
} vecs;
static vecs make_vecs(int64_t n, int64_t R, int64_t T, int64_t D) {
    vecs v = {R, T, D, n, malloc((size_t)(n * R) * 4), malloc((size_t)(n * T * D) * 4)};
    for (int64_t i = 0; i < n * R; i++) v.keys[i] = frand();
    for (int64_t i = 0; i < n * T * D; i++) v.prompts[i] = frand();
    return v;
}

static void basic(void) {
    const char *fp = "0123abcd", *path = tmp("basic.kb");
    const int64_t R = 8, T = 2, D = 4;
    mk_kb *kb = NULL;
    CHECK(mk_kb_open(path, 0, &kb) == MK_ERR_NOTFOUND);
    CHECK_OK(mk_kb_open(path, MK_KB_CREATE, &kb));
    if (!kb) return;
    /* Batch A (5) and B (3). */
    mk_edit_request *ra = make_reqs(5, "A"), *rb = make_reqs(3, "B");
    vecs va = make_vecs(5, R, T, D), vb = make_vecs(3, R, T, D);
    mk_kb_vectors kva = {fp, R, T, D, va.keys, va.prompts}, kvb = {fp, R, T, D, vb.keys, vb.prompts};
    mk_kb_insert_args args = {.author = "alice", .reason = "guideline 2024", .vec = &kva};
    int64_t ida[5], idb[3], batch_a, batch_b;
    CHECK_OK(mk_kb_insert(kb, ra, 5, &args, &batch_a, ida));
    args.vec = &kvb;
    args.author = "bob";
    args.reason = NULL;
    CHECK_OK(mk_kb_insert(kb, rb, 3, &args, &batch_b, idb));
    CHECK(batch_b == batch_a + 1 && idb[0] == ida[4] + 1);

    /* Load back bit-exact, with one reserved prototype row. */
    mk_kb_active act;
    CHECK_OK(mk_kb_load_active(kb, fp, 0, 0, 0, 1, &act));
    CHECK(act.n == 8 && act.R == R && act.T == T && act.D == D && act.lead == 1);
    if (act.n == 8) {
        CHECK(act.ids[0] == 0 && act.keys[0] == 0.0f && act.prompts[0] == 0.0f);
        CHECK(!memcmp(act.keys + R, va.keys, (size_t)(5 * R) * 4));
        CHECK(!memcmp(act.keys + 6 * R, vb.keys, (size_t)(3 * R) * 4));
        CHECK(!memcmp(act.prompts + T * D, va.prompts, (size_t)(5 * T * D) * 4));
        CHECK(!memcmp(act.prompts + 6 * T * D, vb.prompts, (size_t)(3 * T * D) * 4));
        CHECK(act.ids[1] == ida[0] && act.ids[8] == idb[2]);
    }
    mk_kb_active_free(&act);
    CHECK(mk_kb_load_active(kb, fp, 16, 0, 0, 1, &act) == MK_ERR_MISMATCH);

    /* Keys only (the question path) and one edit's prompts on demand: the
     * inserted vectors, bit-exact. */
    CHECK_OK(mk_kb_load_active_keys(kb, fp, 0, 0, 0, 1, &act));
    CHECK(act.n == 8 && act.prompts == NULL && act.T == T && act.D == D);
    if (act.n == 8) {
        CHECK(!memcmp(act.keys + R, va.keys, (size_t)(5 * R) * 4));
        CHECK(!memcmp(act.keys + 6 * R, vb.keys, (size_t)(3 * R) * 4));
    }
    mk_kb_active_free(&act);
    float pr[2 * 4];
    CHECK_OK(mk_kb_get_prompts(kb, idb[1], fp, T, D, pr));
    CHECK(!memcmp(pr, vb.prompts + T * D, (size_t)(T * D) * 4));
    CHECK(mk_kb_get_prompts(kb, idb[1], "ffff0000", T, D, pr) == MK_ERR_MISMATCH);
    CHECK(mk_kb_get_prompts(kb, 9999, fp, T, D, pr) == MK_ERR_NOTFOUND);
    CHECK(mk_kb_get_prompts(kb, idb[1], fp, T + 1, D, pr) == MK_ERR_FORMAT);

    /* Get: every field. */
    mk_edit_request e;
    CHECK_OK(mk_kb_get(kb, ida[0], &e));
    CHECK(!strcmp(e.prompt, "A question 0?") && !strcmp(e.target_new, "A answer 0"));
    CHECK(e.subject && !strcmp(e.subject, "Pharmacology") && e.source && strstr(e.source, "quoted"));
    CHECK(!strcmp(e.author, "alice") && e.reason && !strcmp(e.reason, "guideline 2024"));
    CHECK(e.batch == batch_a && e.status == MK_EDIT_ACTIVE && e.R == R && e.T == T && e.D == D);
    CHECK(e.fingerprint && !strcmp(e.fingerprint, fp) && e.created && strlen(e.created) == 20);
    mk_edit_request_clear(&e);
    CHECK(mk_kb_get(kb, 9999, &e) == MK_ERR_NOTFOUND);

    /* Revert one edit, then batch B. */
    CHECK_OK(mk_kb_revert(kb, ida[3], "carol", "wrong dose"));
    CHECK(mk_kb_revert(kb, ida[3], "carol", "again") == MK_ERR_ARG);
    CHECK(mk_kb_revert(kb, 9999, "carol", NULL) == MK_ERR_NOTFOUND);
    CHECK(mk_kb_revert(kb, ida[0], "", NULL) == MK_ERR_ARG); /* author required */
    int64_t nrev = 0;
    CHECK_OK(mk_kb_revert_batch(kb, batch_b, "carol", "bad source", &nrev));
    CHECK(nrev == 3);
    CHECK(mk_kb_revert_batch(kb, batch_b, "carol", NULL, &nrev) == MK_ERR_ARG);
    CHECK(mk_kb_revert_batch(kb, 777, "carol", NULL, &nrev) == MK_ERR_NOTFOUND);
    CHECK_OK(mk_kb_load_active(kb, fp, R, T, D, 1, &act));
    CHECK(act.n == 4);
    if (act.n == 4) { /* A0, A1, A2, A4 in order */
        CHECK(act.ids[1] == ida[0] && act.ids[3] == ida[2] && act.ids[4] == ida[4]);
        CHECK(!memcmp(act.keys + 4 * R, va.keys + 4 * R, (size_t)R * 4));
        CHECK(!memcmp(act.prompts + 4 * T * D, va.prompts + 4 * T * D, (size_t)(T * D) * 4));
    }

    /* Conflicts: an incoming key equal to A2's with another target, and one
     * equal to A0's with the same target (not a conflict). */
    mk_edit_request *rc2 = make_reqs(2, "C");
    free(rc2[1].target_new);
    rc2[1].target_new = strdup(" A answer 0 "); /* same target as A0 modulo spaces */
    vecs vc = make_vecs(2, R, T, D);
    for (int64_t r = 0; r < R; r++) {
        vc.keys[r] = 2.0f * va.keys[2 * R + r]; /* cosine 1 with A2 */
        vc.keys[R + r] = va.keys[r];
    }
    mk_kb_conflict *cf = NULL;
    int64_t ncf = 0;
    CHECK_OK(mk_kb_find_conflicts(kb, &act, rc2, vc.keys, 2, 0, &cf, &ncf));
    CHECK(ncf == 1);
    if (ncf == 1) CHECK(cf[0].incoming == 0 && cf[0].existing_id == ida[2] && cf[0].similarity > 0.999f);
    mk_kb_active_free(&act);
    /* Inside the batch: C0 vs C1 differ in key; add a copy of C0 with
     * another target -> one self-conflict (2 vs 0). */
    {
        mk_edit_request three[3] = {rc2[0], rc2[1], rc2[0]};
        three[2].target_new = "something else";
        float k3[3 * 8];
        memcpy(k3, vc.keys, sizeof(float) * 2 * 8);
        memcpy(k3 + 16, vc.keys, sizeof(float) * 8);
        mk_kb_conflict *sc = NULL;
        int64_t nsc = 0;
        CHECK_OK(mk_edit_requests_self_conflicts(three, k3, 3, R, 0, &sc, &nsc));
        CHECK(nsc == 1 && sc && sc[0].incoming == 2 && sc[0].existing_id == 0);
        free(sc);
    }
    /* Supersede through the insert, in its transaction. */
    mk_kb_vectors kvc = {fp, R, T, D, vc.keys, vc.prompts};
    mk_kb_insert_args ac = {.author = "dave", .reason = "newer trial", .vec = &kvc, .supersede = cf,
                            .n_supersede = ncf};
    int64_t idc[2], batch_c;
    CHECK_OK(mk_kb_insert(kb, rc2, 2, &ac, &batch_c, idc));
    CHECK_OK(mk_kb_get(kb, ida[2], &e));
    CHECK(e.status == MK_EDIT_SUPERSEDED && e.superseded_by == idc[0]);
    mk_edit_request_clear(&e);
    /* Superseding an edit that is no longer active refuses the whole batch. */
    int64_t edits_before = count_rows(path, "edits");
    CHECK(mk_kb_insert(kb, rc2, 2, &ac, NULL, NULL) == MK_ERR_CONFLICT);
    CHECK(count_rows(path, "edits") == edits_before);
    free(cf);
    /* Explicit supersede. */
    CHECK_OK(mk_kb_supersede(kb, ida[1], idc[1], "erin", "merged"));
    CHECK(mk_kb_supersede(kb, ida[1], idc[1], "erin", NULL) == MK_ERR_ARG);
    CHECK_OK(mk_kb_load_active(kb, fp, R, T, D, 1, &act));
    CHECK(act.n == 4); /* A0, A4, C0, C1 */
    if (act.n == 4) CHECK(act.ids[1] == ida[0] && act.ids[2] == ida[4] && act.ids[3] == idc[0]);
    mk_kb_active_free(&act);

    /* List with filters. */
    mk_edit_request *list;
    int64_t nl;
    CHECK_OK(mk_kb_list(kb, MK_EDIT_ANY, 0, &list, &nl));
    CHECK(nl == 10);
    mk_edit_requests_free(list, nl);
    CHECK_OK(mk_kb_list(kb, MK_EDIT_REVERTED, 0, &list, &nl));
    CHECK(nl == 4);
    mk_edit_requests_free(list, nl);
    CHECK_OK(mk_kb_list(kb, MK_EDIT_SUPERSEDED, 1, &list, &nl));
    CHECK(nl == 1 && list[0].id == ida[1]);
    mk_edit_requests_free(list, nl);

    /* History: complete and ordered. 10 edits + 4 reverts + 2 supersedes. */
    mk_kb_event *ev;
    int64_t nev;
    CHECK_OK(mk_kb_history(kb, 0, 0, &ev, &nev));
    CHECK(nev == 16);
    int ordered = 1, n_edit = 0, n_rev = 0, n_sup = 0;
    for (int64_t i = 0; i < nev; i++) {
        if (i && ev[i].seq <= ev[i - 1].seq) ordered = 0;
        n_edit += !strcmp(ev[i].action, "edit");
        n_rev += !strcmp(ev[i].action, "revert");
        n_sup += !strcmp(ev[i].action, "supersede");
    }
    CHECK(ordered && n_edit == 10 && n_rev == 4 && n_sup == 2);
    if (nev == 16) {
        CHECK(!strcmp(ev[8].action, "revert") && ev[8].edit_id == ida[3] && !strcmp(ev[8].author, "carol"));
        CHECK(ev[8].reason && !strcmp(ev[8].reason, "wrong dose"));
    }
    mk_kb_events_free(ev, nev);
    CHECK_OK(mk_kb_history(kb, ida[2], 0, &ev, &nev));
    CHECK(nev == 2 && !strcmp(ev[0].action, "edit") && !strcmp(ev[1].action, "supersede"));
    if (nev == 2) CHECK(ev[1].detail && strstr(ev[1].detail, "superseded by"));
    mk_kb_events_free(ev, nev);
    CHECK_OK(mk_kb_history(kb, 0, 3, &ev, &nev)); /* the last three */
    CHECK(nev == 3 && !strcmp(ev[2].action, "supersede"));
    mk_kb_events_free(ev, nev);

    /* History rows (and edits) cannot be changed or deleted, even by SQL. */
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *err = NULL;
    CHECK(sqlite3_exec(db, "UPDATE history SET author='mallory'", NULL, NULL, &err) != SQLITE_OK);
    CHECK(err && strstr(err, "append-only"));
    sqlite3_free(err);
    err = NULL;
    CHECK(sqlite3_exec(db, "DELETE FROM history WHERE seq=1", NULL, NULL, &err) != SQLITE_OK);
    CHECK(err && strstr(err, "append-only"));
    sqlite3_free(err);
    CHECK(sqlite3_exec(db, "DELETE FROM edits", NULL, NULL, NULL) != SQLITE_OK);
    sqlite3_close(db);
    CHECK(count_rows(path, "history") == 16);

    /* Stale vectors: another editor's edit, and a text-only edit. */
    mk_edit_request *rd = make_reqs(2, "D");
    vecs vd = make_vecs(1, R, T, D);
    mk_kb_vectors kvd = {"ffff0000", R, T, D, vd.keys, vd.prompts};
    mk_kb_insert_args ad = {.author = "frank", .vec = &kvd};
    int64_t idd[2];
    CHECK_OK(mk_kb_insert(kb, rd, 1, &ad, NULL, idd));
    ad.vec = NULL;
    CHECK_OK(mk_kb_insert(kb, rd + 1, 1, &ad, NULL, idd + 1));
    CHECK(mk_kb_load_active(kb, fp, R, T, D, 1, &act) == MK_ERR_MISMATCH);
    CHECK(strstr(mk_errmsg(), "medrek kb reencode") && strstr(mk_errmsg(), "2 active edits"));
    CHECK_OK(mk_kb_list_stale(kb, fp, &list, &nl));
    CHECK(nl == 2 && list[0].id == idd[0] && list[1].id == idd[1] && !list[1].fingerprint);
    vecs ve = make_vecs(2, R, T, D);
    int64_t sids[2] = {list[0].id, list[1].id};
    mk_edit_requests_free(list, nl);
    mk_kb_vectors kve = {fp, R, T, D, ve.keys, ve.prompts};
    int64_t bad_ids[2] = {sids[0], 424242};
    CHECK(mk_kb_set_vectors(kb, bad_ids, 2, &kve, "gina", NULL) == MK_ERR_NOTFOUND);
    CHECK_OK(mk_kb_list_stale(kb, fp, &list, &nl)); /* nothing changed */
    CHECK(nl == 2);
    mk_edit_requests_free(list, nl);
    CHECK_OK(mk_kb_set_vectors(kb, sids, 2, &kve, "gina", "new editor"));
    CHECK_OK(mk_kb_load_active(kb, fp, R, T, D, 1, &act));
    CHECK(act.n == 6);
    if (act.n == 6) CHECK(!memcmp(act.keys + 5 * R, ve.keys, (size_t)(2 * R) * 4));
    mk_kb_active_free(&act);
    CHECK_OK(mk_kb_history(kb, sids[0], 0, &ev, &nev));
    CHECK(nev == 2 && !strcmp(ev[1].action, "reencode"));
    mk_kb_events_free(ev, nev);

    /* Stats. */
    mk_kb_stats s;
    CHECK_OK(mk_kb_get_stats(kb, &s));
    CHECK(s.n_active == 6 && s.n_reverted == 4 && s.n_superseded == 2 && s.n_batches == 5);
    CHECK(s.vector_bytes == 12 * (R + T * D) * 4 && s.schema_version == 1 && s.n_fp == 1);
    CHECK(s.n_history == 20 && s.file_bytes > 0);
    mk_kb_stats_free(&s);

    /* Read-only handles refuse writes. */
    mk_kb *ro;
    CHECK_OK(mk_kb_open(path, MK_KB_READONLY, &ro));
    if (ro) {
        CHECK(mk_kb_revert(ro, ida[0], "x", NULL) == MK_ERR_ARG);
        CHECK_OK(mk_kb_load_active(ro, fp, R, T, D, 0, &act));
        CHECK(act.n == 6 && act.lead == 0);
        mk_kb_active_free(&act);
        mk_kb_close(ro);
    }

    /* Export -> import into a fresh base -> export: same text fields. */
    const char *ex1 = tmp("export1.jsonl");
    FILE *f = fopen(ex1, "wb");
    CHECK_OK(mk_kb_export(kb, f, ex1));
    fclose(f);
    char p2[512];
    snprintf(p2, sizeof p2, "%s", tmp("imported.kb"));
    mk_kb *kb2;
    CHECK_OK(mk_kb_open(p2, MK_KB_CREATE, &kb2));
    int64_t ib, in;
    CHECK_OK(mk_kb_import(kb2, ex1, "importer", "migration", &ib, &in));
    CHECK(in == 12 && ib == 1);
    char ex2[512];
    snprintf(ex2, sizeof ex2, "%s", tmp("export2.jsonl"));
    f = fopen(ex2, "wb");
    CHECK_OK(mk_kb_export(kb2, f, ex2));
    fclose(f);
    mk_edit_request *x1, *x2;
    int64_t n1, n2;
    CHECK_OK(mk_edit_requests_parse_file_ex(ex1, MK_REQ_EXPORT, &x1, &n1));
    CHECK_OK(mk_edit_requests_parse_file_ex(ex2, MK_REQ_EXPORT, &x2, &n2));
    CHECK(n1 == 12 && n2 == 12);
    int same = n1 == n2;
#define SAME_STR(a, b) ((!(a) && !(b)) || ((a) && (b) && !strcmp((a), (b))))
    for (int64_t i = 0; same && i < n1; i++) {
        mk_edit_request *a = &x1[i], *b = &x2[i];
        same = a->id == b->id && a->status == b->status && a->superseded_by == b->superseded_by &&
               SAME_STR(a->prompt, b->prompt) && SAME_STR(a->target_new, b->target_new) &&
               SAME_STR(a->subject, b->subject) && SAME_STR(a->ground_truth, b->ground_truth) &&
               SAME_STR(a->rephrase_prompt, b->rephrase_prompt) &&
               SAME_STR(a->locality_prompt, b->locality_prompt) &&
               SAME_STR(a->locality_ground_truth, b->locality_ground_truth) &&
               SAME_STR(a->source, b->source) && SAME_STR(a->created, b->created) &&
               SAME_STR(a->author, b->author) && SAME_STR(a->reason, b->reason);
        if (!same) fprintf(stderr, "export round trip differs at edit %lld\n", (long long)a->id);
    }
    CHECK(same);
    mk_edit_requests_free(x1, n1);
    mk_edit_requests_free(x2, n2);
    /* Imported edits have no vectors yet. */
    CHECK(mk_kb_load_active(kb2, fp, R, T, D, 1, &act) == MK_ERR_MISMATCH);
    CHECK_OK(mk_kb_history(kb2, 0, 0, &ev, &nev));
    CHECK(nev == 12 && !strcmp(ev[0].action, "import") && !strcmp(ev[0].author, "importer"));
    mk_kb_events_free(ev, nev);
    /* Importing again: every id exists; nothing written. */
    int64_t e_before = count_rows(p2, "edits"), h_before = count_rows(p2, "history"),
            b_before = count_rows(p2, "batches");
    CHECK(mk_kb_import(kb2, ex1, "importer", NULL, &ib, &in) == MK_ERR_CONFLICT);
    CHECK(strstr(mk_errmsg(), "already in the knowledge base") != NULL);
    CHECK(count_rows(p2, "edits") == e_before && count_rows(p2, "history") == h_before &&
          count_rows(p2, "batches") == b_before);
    /* Duplicate ids within a file: refused by the parser, nothing written. */
    const char *dup = tmp("dup.jsonl");
    write_text(dup, "{\"id\": 100, \"prompt\": \"p\", \"target_new\": \"t\"}\n"
                    "{\"id\": 101, \"prompt\": \"p2\", \"target_new\": \"t2\"}\n"
                    "\n"
                    "{\"id\": 100, \"prompt\": \"p3\", \"target_new\": \"t3\"}\n");
    CHECK(mk_kb_import(kb2, dup, "importer", NULL, &ib, &in) == MK_ERR_FORMAT);
    CHECK(strstr(mk_errmsg(), "line 4: id 100 repeats line 1") != NULL);
    CHECK(count_rows(p2, "edits") == e_before);
    mk_kb_close(kb2);

    mk_kb_close(kb);
    mk_edit_requests_free(ra, 5);
    mk_edit_requests_free(rb, 3);
    mk_edit_requests_free(rc2, 2);
    mk_edit_requests_free(rd, 2);
    free(va.keys); free(va.prompts); free(vb.keys); free(vb.prompts);
    free(vc.keys); free(vc.prompts); free(vd.keys); free(vd.prompts);
    free(ve.keys); free(ve.prompts);
}

/* Parse `text`; expect failure whose message contains every needle. */
static void expect_parse_error(const char *text, const char *n1, const char *n2) {
    mk_edit_request *r;
    int64_t n;
    int rc = mk_edit_requests_parse(text, strlen(text), "req.json", 0, &r, &n);
    CHECK(rc == MK_ERR_FORMAT);
    int ok = strstr(mk_errmsg(), "req.json") && (!n1 || strstr(mk_errmsg(), n1)) &&
             (!n2 || strstr(mk_errmsg(), n2));
    if (!ok) fprintf(stderr, "unexpected message for %.40s...: %s\n", text, mk_errmsg());
    CHECK(ok);
    if (rc == MK_OK) mk_edit_requests_free(r, n);
}

static void parsing(void) {
    expect_parse_error("{\"prompt\": \"a\", \"target_new\": \"b\"}\n"
                       "{\"prompt\": \"c\", \"target_new\": \"d\"}\n"
                       "{\"prompt\": \"e\", \"target_new\": }\n", "line 3", "malformed JSON");
    expect_parse_error("{\"prompt\": \"a\", \"target_new\": \"b\"}\n"
                       "{\"prompt\": \"c\"}\n", "line 2", "missing field 'target_new'");
    expect_parse_error("[{\"prompt\": \"a\", \"target_new\": \"b\"},\n {\"prompt\": 7, \"target_new\": \"d\"}]",
                       "array index 1", "'prompt' must be a string");
    expect_parse_error("[{\"prompt\": \"a\", \"target_new\": \"\"}]", "array index 0", "'target_new' is empty");
    expect_parse_error("[{\"prompt\": \"a\", \"target_new\": \"b\"},\n\n {\"prompt\": \"x\" \"target_new\": \"d\"}]",
                       "line 3", "malformed JSON");
    expect_parse_error("[{\"prompt\": \"a\", \"target_new\": \"b\", \"subject\": [1]}]", "'subject' must be a string", NULL);
    expect_parse_error("[1, 2]", "array index 0", "expected a JSON object");
    expect_parse_error("[]", "empty", NULL);
    expect_parse_error("   \n", "empty", NULL);
    expect_parse_error("hello", "line 1", NULL);
    expect_parse_error("{\"prompt\": \"a\", \"target_new\": \"b\"} {\"x\":1}\n", "line 1", "one object per line");
    expect_parse_error("[{\"prompt\": \"a\", \"target_new\": \"b\"}] x", "text after", NULL);
    char *big = malloc(5000 + 64);
    strcpy(big, "[{\"target_new\": \"b\", \"prompt\": \"");
    size_t l = strlen(big);
    memset(big + l, 'x', 4097);
    strcpy(big + l + 4097, "\"}]");
    expect_parse_error(big, "'prompt' is 4097 bytes long", "4096");
    big[l + 4096] = '"'; /* exactly 4096: accepted */
    strcpy(big + l + 4097, "}]");
    mk_edit_request *r;
    int64_t n;
    CHECK_OK(mk_edit_requests_parse(big, strlen(big), "big", 0, &r, &n));
    if (n == 1) CHECK(strlen(r[0].prompt) == 4096);
    mk_edit_requests_free(r, n);
    free(big);

    /* MedVersa-style array (subject_name; integer ids ignored). */
    const char *mv =
        "\xEF\xBB\xBF[\n  {\"prompt\": \"What substance is detected by the Cavett test?\", \"ground_truth\": \"Alcohol\","
        " \"subject_name\": \"Forensic Medicine\", \"topic_name\": \"Drug Abuse\", \"id\": 15038,"
        " \"locality_prompt\": \"What instrument examines a gun bore?\", \"locality_ground_truth\": \"Helixometer\","
        " \"rephrase_prompt\": \"What analyte does the Cavett test detect?\", \"target_new\": \"Opiates\"}\n]\n";
    CHECK_OK(mk_edit_requests_parse(mv, strlen(mv), "mv.json", 0, &r, &n));
    CHECK(n == 1);
    if (n == 1) {
        CHECK(!strcmp(r[0].subject, "Forensic Medicine") && !strcmp(r[0].target_new, "Opiates"));
        CHECK(!strcmp(r[0].locality_ground_truth, "Helixometer") && r[0].id == 0);
        CHECK(!strcmp(r[0].rephrase_prompt, "What analyte does the Cavett test detect?"));
    }
    mk_edit_requests_free(r, n);
    /* MedCF-style: the first locality_*_prompt present. */
    const char *cf =
        "[{\"prompt\": \"Which drug interacts with Konjac mannan?\", \"target_new\": \"Ipilimumab\","
        " \"subject\": \"Konjac mannan\", \"ground_truth\": \"Carfentanil\","
        " \"locality_mapping_prompt\": \"What disease is Konjac mannan used for?\","
        " \"locality_mapping_ground_truth\": \"Syrian obese\","
        " \"locality_struc_prompt\": \"s?\", \"locality_struc_ground_truth\": \"S\"}]";
    CHECK_OK(mk_edit_requests_parse(cf, strlen(cf), "cf.json", 0, &r, &n));
    if (n == 1) {
        CHECK(!strcmp(r[0].locality_prompt, "What disease is Konjac mannan used for?"));
        CHECK(!strcmp(r[0].locality_ground_truth, "Syrian obese") && !strcmp(r[0].subject, "Konjac mannan"));
    }
    mk_edit_requests_free(r, n);
    /* JSON lines with blank lines and CRLF. */
    const char *jl = "\r\n{\"prompt\": \"a\", \"target_new\": \"b\"}\r\n\n{\"prompt\": \"c\", \"target_new\": \"d\", \"source\": \"WHO 2023\"}\r\n";
    CHECK_OK(mk_edit_requests_parse(jl, strlen(jl), "jl", 0, &r, &n));
    CHECK(n == 2 && !strcmp(r[1].source, "WHO 2023"));
    mk_edit_requests_free(r, n);
    /* Export format: ids required with MK_REQ_EXPORT, bad status refused. */
    const char *ex = "{\"id\": 3, \"status\": \"bogus\", \"prompt\": \"a\", \"target_new\": \"b\"}\n";
    CHECK(mk_edit_requests_parse(ex, strlen(ex), "ex", MK_REQ_EXPORT, &r, &n) == MK_ERR_FORMAT);
    CHECK(strstr(mk_errmsg(), "line 1") && strstr(mk_errmsg(), "'status'"));
    ex = "{\"prompt\": \"a\", \"target_new\": \"b\"}\n";
    CHECK(mk_edit_requests_parse(ex, strlen(ex), "ex", MK_REQ_EXPORT, &r, &n) == MK_ERR_FORMAT);
    CHECK(strstr(mk_errmsg(), "missing field 'id'") != NULL);
    ex = "{\"id\": 2.5, \"prompt\": \"a\", \"target_new\": \"b\"}\n";
    CHECK(mk_edit_requests_parse(ex, strlen(ex), "ex", MK_REQ_EXPORT, &r, &n) == MK_ERR_FORMAT);
    /* A file path that does not exist. */
    CHECK(mk_edit_requests_parse_file(tmp("nope.json"), &r, &n) == MK_ERR_IO);

    /* Random byte mutations of a valid file: the parser answers OK or a
     * format error, never crashes (ASan/UBSan builds check the memory). */
    {
        const char *base = "[{\"id\": 1, \"status\": \"active\", \"prompt\": \"What \\u00e9?\", "
                           "\"target_new\": \"x\", \"subject\": \"s\", \"superseded_by\": 2},\n"
                           "{\"id\": 2, \"prompt\": \"b\", \"target_new\": \"y\", "
                           "\"locality_struc_prompt\": \"l\", \"locality_struc_ground_truth\": \"g\"}]\n";
        size_t bl = strlen(base);
        char *m = malloc(bl + 1);
        int odd = 0;
        for (int it = 0; it < 3000; it++) {
            memcpy(m, base, bl + 1);
            int muts = 1 + it % 4;
            for (int k = 0; k < muts; k++) {
                size_t at = (size_t)((frand() * 0.5 + 0.5) * (double)(bl - 1));
                m[at] = (char)(int)((frand() * 0.5 + 0.5) * 255);
            }
            size_t len = (it % 7 == 0) ? (size_t)((frand() * 0.5 + 0.5) * (double)bl) : bl;
            for (int flags = 0; flags < 2; flags++) {
                int prc = mk_edit_requests_parse(m, len, "fuzz", flags, &r, &n);
                if (prc == MK_OK) mk_edit_requests_free(r, n);
                else if (prc != MK_ERR_FORMAT) odd++;
            }
        }
        CHECK(odd == 0);
        free(m);
    }
}

static void copy_file(const char *from, const char *to, long keep) {
    size_t len;
    char *b = check_read_file(from, &len);
    FILE *f = fopen(to, "wb");
    fwrite(b, 1, keep >= 0 && (size_t)keep < len ? (size_t)keep : len, f);
    fclose(f);
    free(b);
}

static void damaged_files(void) {
    mk_kb *kb = NULL;
    /* Random bytes. */
    const char *rnd = tmp("random.kb");
    FILE *f = fopen(rnd, "wb");
    for (int i = 0; i < 8192; i++) fputc((int)(frand() * 127 + 128), f);
    fclose(f);
    CHECK(mk_kb_open(rnd, 0, &kb) == MK_ERR_FORMAT && !kb);
    CHECK(strstr(mk_errmsg(), rnd) && strstr(mk_errmsg(), "not a SQLite database"));
    CHECK(mk_kb_open(rnd, MK_KB_CREATE, &kb) == MK_ERR_FORMAT); /* never overwritten */
    /* A SQLite database of someone else. */
    const char *other = tmp("other.db");
    sqlite3 *db;
    sqlite3_open(other, &db);
    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(mk_kb_open(other, MK_KB_CREATE, &kb) == MK_ERR_FORMAT && !kb);
    CHECK(strstr(mk_errmsg(), "not a medrek knowledge base") != NULL);
    /* Empty file: refused unless creating. */
    const char *empty = tmp("empty.kb");
    write_text(empty, "");
    CHECK(mk_kb_open(empty, 0, &kb) == MK_ERR_FORMAT);
    CHECK_OK(mk_kb_open(empty, MK_KB_CREATE, &kb));
    mk_kb_close(kb);
    kb = NULL;
    /* A newer schema version. */
    const char *newer = tmp("newer.kb");
    CHECK_OK(mk_kb_open(newer, MK_KB_CREATE, &kb));
    mk_kb_close(kb);
    kb = NULL;
    sqlite3_open(newer, &db);
    sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(mk_kb_open(newer, 0, &kb) == MK_ERR_UNSUPPORTED && !kb);
    CHECK(strstr(mk_errmsg(), "newer") != NULL);

    /* A real knowledge base with some content, closed (WAL checkpointed). */
    const char *good = tmp("good.kb"), *fp = "abc";
    CHECK_OK(mk_kb_open(good, MK_KB_CREATE, &kb));
    mk_edit_request *r = make_reqs(200, "G");
    vecs v = make_vecs(200, 64, 2, 64);
    mk_kb_vectors kv = {fp, 64, 2, 64, v.keys, v.prompts};
    mk_kb_insert_args a = {.author = "x", .vec = &kv};
    CHECK_OK(mk_kb_insert(kb, r, 200, &a, NULL, NULL));
    mk_kb_close(kb);
    kb = NULL;
    struct stat sb;
    stat(good, &sb);
    CHECK(sb.st_size > 100000);
    /* Truncated to half. */
    const char *trunc = tmp("trunc.kb");
    copy_file(good, trunc, (long)sb.st_size / 2);
    CHECK(mk_kb_open(trunc, 0, &kb) == MK_ERR_FORMAT && !kb);
    CHECK(strstr(mk_errmsg(), "truncated") != NULL);
    copy_file(good, trunc, 60); /* inside the header */
    CHECK(mk_kb_open(trunc, 0, &kb) == MK_ERR_FORMAT && !kb);
    /* Pages overwritten in the middle: open may pass (header intact), but
     * reading the vectors or the integrity check must fail cleanly. */
    const char *mid = tmp("mid.kb");
    copy_file(good, mid, -1);
    f = fopen(mid, "r+b");
    fseek(f, (long)sb.st_size / 2, SEEK_SET);
    for (int i = 0; i < 40000; i++) fputc((int)(frand() * 127 + 128), f);
    fclose(f);
    int rc = mk_kb_open(mid, MK_KB_CHECK, &kb);
    CHECK(rc == MK_ERR_DB && !kb);
    CHECK(strstr(mk_errmsg(), mid) != NULL);
    printf("mid-file damage: %s\n", mk_errmsg());
    rc = mk_kb_open(mid, 0, &kb);
    if (rc == MK_OK) {
        mk_kb_active act;
        rc = mk_kb_load_active(kb, fp, 0, 0, 0, 1, &act);
        if (rc == MK_OK) mk_kb_active_free(&act);
        CHECK(rc != MK_OK); /* the damaged pages hold vectors */
        CHECK(mk_kb_integrity_check(kb) == MK_ERR_DB);
        mk_kb_close(kb);
    }
    mk_edit_requests_free(r, 200);
    free(v.keys);
    free(v.prompts);
}

/* A writer process commits batches of 50 while this process reads: every
 * snapshot holds whole batches only, with intact vectors. */
static void readers_during_writes(void) {
    const char *path = tmp("concurrent.kb"), *fp = "c0ffee";
    const int64_t R = 8, T = 1, D = 8, per = 50;
    const int batches = 40;
    mk_kb *kb;
    CHECK_OK(mk_kb_open(path, MK_KB_CREATE, &kb));
    mk_kb_close(kb);
    pid_t pid = fork();
    if (pid == 0) {
        mk_kb *w;
        if (mk_kb_open(path, 0, &w)) _exit(3);
        mk_edit_request *r = make_reqs(per, "W");
        float *keys = malloc((size_t)(per * R) * 4), *pr = malloc((size_t)(per * T * D) * 4);
        for (int b = 0; b < batches; b++) {
            for (int64_t i = 0; i < per; i++) {
                for (int64_t k = 0; k < R; k++) keys[i * R + k] = (float)(b * 1000 + i) + 0.001f * k;
                for (int64_t k = 0; k < T * D; k++) pr[i * T * D + k] = -(float)(b * 1000 + i);
            }
            mk_kb_vectors kv = {fp, R, T, D, keys, pr};
            mk_kb_insert_args a = {.author = "writer", .vec = &kv};
            if (mk_kb_insert(w, r, per, &a, NULL, NULL)) _exit(4);
        }
        mk_kb_close(w);
        _exit(0);
    }
    CHECK(pid > 0);
    mk_kb *rd;
    CHECK_OK(mk_kb_open(path, MK_KB_READONLY, &rd));
    int64_t last = -1, snapshots = 0, distinct = 0, bad = 0, done = 0;
    int status = 0;
    while (rd && !done) {
        done = waitpid(pid, &status, WNOHANG) == pid; /* one more read after the writer ends */
        mk_kb_active act;
        if (mk_kb_load_active(rd, fp, R, T, D, 1, &act)) {
            fprintf(stderr, "reader: %s\n", mk_errmsg());
            bad++;
            break;
        }
        snapshots++;
        if (act.n % per != 0) bad++;
        for (int64_t i = 0; i < act.n; i++) {
            float k0 = act.keys[(1 + i) * R];
            int b = (int)(i / per);
            if (k0 != (float)(b * 1000 + i % per) || act.prompts[(1 + i) * T * D] != -k0 ||
                act.keys[(1 + i) * R + R - 1] != k0 + 0.001f * (R - 1))
                bad++;
        }
        if (act.n != last) distinct++;
        last = act.n;
        mk_kb_active_free(&act);
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(bad == 0);
    CHECK(last == per * batches);
    printf("readers during writes: %lld snapshots, %lld distinct sizes, %lld bad\n",
           (long long)snapshots, (long long)distinct, (long long)bad);
    mk_kb_close(rd);
}

/* Conflict search over more active edits than one GEMM chunk (4096). */
static void many_conflicts(void) {
    const char *path = tmp("many.kb"), *fp = "beef";
    const int64_t N = 5000, R = 64, T = 1, D = 2;
    mk_kb *kb;
    CHECK_OK(mk_kb_open(path, MK_KB_CREATE, &kb));
    if (!kb) return;
    mk_edit_request *r = make_reqs(N, "M");
    vecs v = make_vecs(N, R, T, D);
    mk_kb_vectors kv = {fp, R, T, D, v.keys, v.prompts};
    mk_kb_insert_args a = {.author = "x", .vec = &kv};
    int64_t *ids = malloc((size_t)N * sizeof *ids);
    CHECK_OK(mk_kb_insert(kb, r, N, &a, NULL, ids));
    mk_kb_active act;
    CHECK_OK(mk_kb_load_active(kb, fp, R, T, D, 1, &act));
    CHECK(act.n == N);
    /* incoming 0: near edit 4500 (other target); 1: edit 10 (same target);
     * 2: random (no conflict) */
    mk_edit_request *in = make_reqs(3, "IN");
    free(in[1].target_new);
    in[1].target_new = strdup(r[10].target_new);
    float q[3 * 64];
    for (int64_t k = 0; k < R; k++) {
        q[k] = v.keys[4500 * R + k] + 0.01f * frand();
        q[R + k] = v.keys[10 * R + k];
        q[2 * R + k] = frand();
    }
    mk_kb_conflict *cf;
    int64_t ncf;
    CHECK_OK(mk_kb_find_conflicts(kb, &act, in, q, 3, 0, &cf, &ncf));
    CHECK(ncf == 1);
    if (ncf >= 1) CHECK(cf[0].incoming == 0 && cf[0].existing_id == ids[4500] && cf[0].similarity > 0.98f);
    free(cf);
    mk_kb_active_free(&act);
    mk_kb_close(kb);
    mk_edit_requests_free(r, N);
    mk_edit_requests_free(in, 3);
    free(ids);
    free(v.keys);
    free(v.prompts);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    basic();
    parsing();
    damaged_files();
    many_conflicts();
    readers_during_writes();
    int rc = check_summary("test_kb");
    if (rc == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    return rc;
}
