/* test_kb_kill.c - a batch insert is all or nothing even when the writing
 * process is killed (SIGKILL) at a random moment: after each kill the file
 * holds every earlier batch and either none or all of the interrupted one,
 * the history matches the edits, and SQLite's integrity check passes.
 * The database starts afresh every 6 kills so the checks stay cheap. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/error.h"
#include "store/kb.h"
#include "util/check.h"

#define N_EDITS 10000
#define N_KILLS 24
static const int64_t R = 8, T = 1, D = 8;
static const char *FP = "5eed";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Child: insert one batch of N_EDITS whose vectors encode the batch tag. */
static void child_insert(const char *path, int tag) {
    mk_kb *kb;
    if (mk_kb_open(path, 0, &kb)) _exit(3);
    mk_edit_request *r = calloc(N_EDITS, sizeof *r);
    float *keys = malloc((size_t)N_EDITS * R * 4), *pr = malloc((size_t)N_EDITS * T * D * 4);
    char p[64], t[64];
    for (int i = 0; i < N_EDITS; i++) {
        snprintf(p, sizeof p, "batch %d question %d?", tag, i);
        snprintf(t, sizeof t, "answer %d", i);
        r[i].prompt = strdup(p);
        r[i].target_new = strdup(t);
        for (int k = 0; k < R; k++) keys[(size_t)i * R + k] = (float)tag + 0.5f * k;
        for (int k = 0; k < T * D; k++) pr[(size_t)i * T * D + k] = (float)i;
    }
    mk_kb_vectors v = {FP, R, T, D, keys, pr};
    mk_kb_insert_args a = {.author = "killer", .reason = "crash test", .vec = &v};
    if (mk_kb_insert(kb, r, N_EDITS, &a, NULL, NULL)) _exit(4);
    mk_kb_close(kb);
    _exit(0);
}

static int64_t q1(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

int main(void) {
    char dir[] = "/tmp/mk_test_kb_kill_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256];
    snprintf(path, sizeof path, "%s/kill.kb", dir);
    mk_kb *kb;
    CHECK_OK(mk_kb_open(path, MK_KB_CREATE, &kb));
    mk_kb_close(kb);

    /* One undisturbed run tells how long a child lives. */
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) child_insert(path, 0);
    int status;
    waitpid(pid, &status, 0);
    double life = now_s() - t0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int64_t expect_edits = N_EDITS, expect_batches = 1;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    printf("child lifetime %.3f s; seed %u\n", life, seed);

    int none = 0, all = 0, bad = 0;
    for (int k = 1; k <= N_KILLS; k++) {
        if (k % 6 == 0) { /* a fresh file now and then keeps the checks fast */
            snprintf(path, sizeof path, "%s/kill%d.kb", dir, k / 6);
            CHECK_OK(mk_kb_open(path, MK_KB_CREATE, &kb));
            mk_kb_close(kb);
            expect_edits = expect_batches = 0;
        }
        double delay = life * 1.2 * ((double)rand() / RAND_MAX);
        pid = fork();
        if (pid == 0) child_insert(path, k);
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);

        /* Verify with a fresh handle (which also recovers the WAL). */
        mk_kb *v;
        if (mk_kb_open(path, 0, &v)) {
            fprintf(stderr, "kill %d: reopen failed: %s\n", k, mk_errmsg());
            bad++;
            continue;
        }
        if (mk_kb_integrity_check(v)) {
            fprintf(stderr, "kill %d: %s\n", k, mk_errmsg());
            bad++;
        }
        mk_kb_active act;
        int64_t n = -1;
        if (mk_kb_load_active(v, FP, R, T, D, 0, &act) == MK_OK) {
            n = act.n;
            /* the interrupted batch, if present, is intact */
            for (int64_t i = expect_edits; i < act.n; i++)
                if (act.keys[i * R] != (float)k || act.prompts[i * T * D] != (float)(i - expect_edits)) {
                    bad++;
                    break;
                }
            mk_kb_active_free(&act);
        }
        mk_kb_close(v);
        sqlite3 *db;
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
        int64_t n_hist = q1(db, "SELECT count(*) FROM history");
        int64_t n_batches = q1(db, "SELECT count(*) FROM batches");
        sqlite3_close(db);
        int got_all = n == expect_edits + N_EDITS && n_batches == expect_batches + 1;
        int got_none = n == expect_edits && n_batches == expect_batches;
        if ((!got_all && !got_none) || n_hist != n) {
            fprintf(stderr, "kill %d (after %.3f s): %lld edits, %lld batches, %lld history rows; expected %lld or %lld edits\n",
                    k, delay, (long long)n, (long long)n_batches, (long long)n_hist,
                    (long long)expect_edits, (long long)(expect_edits + N_EDITS));
            bad++;
            break;
        }
        if (got_all) {
            all++;
            expect_edits += N_EDITS;
            expect_batches++;
        } else {
            none++;
        }
    }
    CHECK(bad == 0);
    CHECK(none + all == N_KILLS);
    printf("%d kills: %d left nothing of the batch, %d left all of it, %d bad\n", N_KILLS, none, all, bad);
    int rc = check_summary("test_kb_kill");
    if (rc == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    return rc;
}
