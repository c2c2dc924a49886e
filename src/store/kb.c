/* kb.c - the knowledge base in one SQLite file.
 *
 * Schema (version 1, PRAGMA user_version; PRAGMA application_id 'MREK'):
 *   batches(id, created, created_unix, author, reason, count, kind)
 *   edits(id, batch, status, superseded_by, text fields..., created,
 *         created_unix, author, reason, fingerprint, R, T, D, key, prompts)
 *         key = R little-endian float32, prompts = T*D little-endian float32
 *   history(seq, time, time_unix, action, edit_id, batch_id, author, reason,
 *           detail) - append-only: triggers RAISE on UPDATE and DELETE
 *   meta(key, value)
 *
 * Journal: WAL with synchronous=FULL. WAL alone makes every transaction
 * atomic against a killed process (an uncommitted batch never reaches the
 * database: its WAL frames lack a commit record). synchronous=NORMAL would
 * keep that, but could lose the last committed batches on power loss; an
 * audited store whose `medrek edit` said "written" must keep them, and the
 * price is one fsync of the WAL per batch, so FULL.
 */
#include "kb.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <sqlite3.h>

#include "../core/error.h"
#include "kb_internal.h"

#define KB_APP_ID 0x4D52454B /* "MREK" */
#define KB_SCHEMA_VERSION 1
#define KB_PAGE_SIZE 16384   /* vectors are big blobs: fewer overflow pages */
#define KB_BUSY_MS 30000

struct mk_kb {
    sqlite3 *db;
    char *path;
    int readonly;
};

static const char *SCHEMA =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE batches("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  created TEXT NOT NULL, created_unix INTEGER NOT NULL,"
    "  author TEXT NOT NULL, reason TEXT,"
    "  count INTEGER NOT NULL CHECK(count >= 0),"
    "  kind TEXT NOT NULL CHECK(kind IN ('edit','import')));"
    "CREATE TABLE edits("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  batch INTEGER NOT NULL REFERENCES batches(id),"
    "  status INTEGER NOT NULL DEFAULT 0 CHECK(status IN (0,1,2)),"
    "  superseded_by INTEGER REFERENCES edits(id) DEFERRABLE INITIALLY DEFERRED,"
    "  prompt TEXT NOT NULL CHECK(length(prompt) > 0),"
    "  target_new TEXT NOT NULL CHECK(length(target_new) > 0),"
    "  subject TEXT, ground_truth TEXT, rephrase_prompt TEXT,"
    "  locality_prompt TEXT, locality_ground_truth TEXT, source TEXT,"
    "  created TEXT NOT NULL, created_unix INTEGER NOT NULL,"
    "  author TEXT NOT NULL, reason TEXT,"
    "  fingerprint TEXT,"
    "  R INTEGER NOT NULL DEFAULT 0, T INTEGER NOT NULL DEFAULT 0, D INTEGER NOT NULL DEFAULT 0,"
    "  key BLOB, prompts BLOB,"
    "  CHECK((fingerprint IS NULL) = (key IS NULL) AND (key IS NULL) = (prompts IS NULL)),"
    "  CHECK(key IS NULL OR (length(key) = 4 * R AND length(prompts) = 4 * T * D)));"
    "CREATE INDEX edits_status ON edits(status, fingerprint);"
    "CREATE INDEX edits_batch ON edits(batch);"
    "CREATE TABLE history("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time TEXT NOT NULL, time_unix INTEGER NOT NULL,"
    "  action TEXT NOT NULL CHECK(action IN ('edit','import','revert','supersede','reencode')),"
    "  edit_id INTEGER REFERENCES edits(id) DEFERRABLE INITIALLY DEFERRED,"
    "  batch_id INTEGER REFERENCES batches(id) DEFERRABLE INITIALLY DEFERRED,"
    "  author TEXT NOT NULL, reason TEXT, detail TEXT);"
    "CREATE INDEX history_edit ON history(edit_id);"
    "CREATE TRIGGER history_no_update BEFORE UPDATE ON history"
    "  BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;"
    "CREATE TRIGGER history_no_delete BEFORE DELETE ON history"
    "  BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;"
    "CREATE TRIGGER edits_no_delete BEFORE DELETE ON edits"
    "  BEGIN SELECT RAISE(ABORT, 'edits are never deleted: revert them'); END;"
    "CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches"
    "  BEGIN SELECT RAISE(ABORT, 'batches are never deleted'); END;";

/* ---- small helpers ------------------------------------------------------ */

static int db_fail(mk_kb *kb, const char *what) {
    int ec = sqlite3_errcode(kb->db);
    const char *msg = sqlite3_errmsg(kb->db);
    if (ec == SQLITE_CORRUPT || ec == SQLITE_NOTADB)
        return mk_fail(MK_ERR_DB, "%s: the knowledge base is corrupted (%s: %s); restore it from a backup",
                       kb->path, what, msg);
    if (ec == SQLITE_BUSY || ec == SQLITE_LOCKED)
        return mk_fail(MK_ERR_DB, "%s: %s: the knowledge base stayed locked by another process for %d s",
                       kb->path, what, KB_BUSY_MS / 1000);
    if (ec == SQLITE_READONLY)
        return mk_fail(MK_ERR_DB, "%s: %s: the knowledge base is read-only (%s)", kb->path, what, msg);
    if (ec == SQLITE_FULL)
        return mk_fail(MK_ERR_DB, "%s: %s: the disk is full", kb->path, what);
    return mk_fail(MK_ERR_DB, "%s: %s: %s", kb->path, what, msg);
}

static int exec(mk_kb *kb, const char *sql, const char *what) {
    if (sqlite3_exec(kb->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(kb, what);
    return MK_OK;
}

static int prep(mk_kb *kb, const char *sql, sqlite3_stmt **st) {
    if (sqlite3_prepare_v2(kb->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_fail(kb, "preparing a query");
    }
    return MK_OK;
}

static void rollback(mk_kb *kb) {
    if (!sqlite3_get_autocommit(kb->db)) sqlite3_exec(kb->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Run a statement that returns one integer (or none: *v = def). */
static int query_i64(mk_kb *kb, const char *sql, int64_t bind1, const char *bind_s,
                     int64_t def, int64_t *v) {
    sqlite3_stmt *st;
    int rc = prep(kb, sql, &st);
    if (rc) return rc;
    if (sqlite3_bind_parameter_count(st) >= 1) {
        if (bind_s) sqlite3_bind_text(st, 1, bind_s, -1, SQLITE_STATIC);
        else sqlite3_bind_int64(st, 1, bind1);
    }
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
    else if (s == SQLITE_DONE) *v = def;
    else rc = db_fail(kb, "reading");
    sqlite3_finalize(st);
    return rc;
}

static void now_utc(char out[32], int64_t *unix_s) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    *unix_s = (int64_t)t;
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s) {
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? strdup((const char *)s) : NULL;
}

/* Blobs are little-endian float32; copy into host floats. */
static void le_to_floats(float *dst, const void *src, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)s[4 * i] | (uint32_t)s[4 * i + 1] << 8 |
                     (uint32_t)s[4 * i + 2] << 16 | (uint32_t)s[4 * i + 3] << 24;
        memcpy(&dst[i], &u, 4);
    }
#else
    memcpy(dst, src, n * sizeof(float));
#endif
}

/* Bind n host floats as a little-endian blob (tmp is a scratch buffer of
 * n floats on big-endian hosts, unused otherwise). */
static int bind_floats(sqlite3_stmt *st, int i, const float *v, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *b = malloc(n * 4);
    if (!b) return SQLITE_NOMEM;
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &v[k], 4);
        b[4 * k] = u; b[4 * k + 1] = u >> 8; b[4 * k + 2] = u >> 16; b[4 * k + 3] = u >> 24;
    }
    return sqlite3_bind_blob64(st, i, b, n * 4, free);
#else
    return sqlite3_bind_blob64(st, i, v, n * 4, SQLITE_STATIC);
#endif
}

static int check_text(const char *s, const char *what, const char *path, int required) {
    if (!s || !*s) {
        if (required) return mk_fail(MK_ERR_ARG, "%s: %s is required", path, what);
        return MK_OK;
    }
    if (strlen(s) > MK_REQ_MAX_FIELD)
        return mk_fail(MK_ERR_ARG, "%s: %s is longer than %d bytes", path, what, MK_REQ_MAX_FIELD);
    return MK_OK;
}

static int check_fingerprint(const char *fp, const char *path) {
    if (!fp || !*fp) return mk_fail(MK_ERR_ARG, "%s: an editor fingerprint is required", path);
    size_t n = strlen(fp);
    if (n > 256) return mk_fail(MK_ERR_ARG, "%s: editor fingerprint longer than 256 characters", path);
    for (size_t i = 0; i < n; i++) {
        char c = fp[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return mk_fail(MK_ERR_ARG, "%s: editor fingerprint '%s' has a character outside [0-9A-Za-z._:-]",
                           path, fp);
    }
    return MK_OK;
}

/* Bytes of one key and one edit's prompts, with overflow and size checks. */
static int vec_sizes(const char *path, int64_t R, int64_t T, int64_t D, size_t *kbytes,
                     size_t *pbytes) {
    const int64_t lim = (int64_t)1 << 28; /* SQLite blobs stay below 1e9 bytes */
    if (R < 1 || T < 1 || D < 1 || R > lim / 4 || T > lim || D > lim || T * D > lim / 4)
        return mk_fail(MK_ERR_ARG, "%s: vector shape R=%lld T=%lld D=%lld out of range", path,
                       (long long)R, (long long)T, (long long)D);
    *kbytes = (size_t)R * 4;
    *pbytes = (size_t)(T * D) * 4;
    return MK_OK;
}

/* Bind edit i's fingerprint, R, T, D, key and prompts to the six
 * consecutive parameters from col (insert and re-encode store the same). */
static int bind_vectors(const mk_kb *kb, sqlite3_stmt *st, int col, const mk_kb_vectors *vec,
                        int64_t i, size_t kbytes, size_t pbytes) {
    sqlite3_bind_text(st, col, vec->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, col + 1, vec->R);
    sqlite3_bind_int64(st, col + 2, vec->T);
    sqlite3_bind_int64(st, col + 3, vec->D);
    if (bind_floats(st, col + 4, vec->keys + (size_t)i * (kbytes / 4), kbytes / 4) ||
        bind_floats(st, col + 5, vec->prompts + (size_t)i * (pbytes / 4), pbytes / 4))
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path);
    return MK_OK;
}

static int add_history(mk_kb *kb, sqlite3_stmt *st, const char *when, int64_t when_unix,
                       const char *action, int64_t edit_id, int64_t batch_id, const char *author,
                       const char *reason, const char *detail) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, when, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, when_unix);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    if (edit_id > 0) sqlite3_bind_int64(st, 4, edit_id);
    else sqlite3_bind_null(st, 4);
    if (batch_id > 0) sqlite3_bind_int64(st, 5, batch_id);
    else sqlite3_bind_null(st, 5);
    sqlite3_bind_text(st, 6, author, -1, SQLITE_STATIC);
    bind_opt_text(st, 7, reason && *reason ? reason : NULL);
    bind_opt_text(st, 8, detail);
    if (sqlite3_step(st) != SQLITE_DONE) return db_fail(kb, "writing the history");
    return MK_OK;
}

static const char *HISTORY_INSERT =
    "INSERT INTO history(time, time_unix, action, edit_id, batch_id, author, reason, detail)"
    " VALUES(?,?,?,?,?,?,?,?)";

/* ---- open / close ------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Look at the file before SQLite does: a foreign or truncated file gets a
 * clear message. *fresh = 1 when the file is absent or empty. */
static int precheck_file(const char *path, int flags, int *fresh) {
    struct stat sb;
    *fresh = 0;
    if (stat(path, &sb) != 0) {
        if (!(flags & MK_KB_CREATE))
            return mk_fail(MK_ERR_NOTFOUND, "%s: no such knowledge base (`medrek edit --kb FILE` creates one)",
                           path);
        *fresh = 1;
        return MK_OK;
    }
    if (!S_ISREG(sb.st_mode)) return mk_fail(MK_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size == 0) {
        if (!(flags & MK_KB_CREATE) || (flags & MK_KB_READONLY))
            return mk_fail(MK_ERR_FORMAT, "%s: empty file, not a medrek knowledge base", path);
        *fresh = 1;
        return MK_OK;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return mk_fail(MK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t h[100];
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    if (got < 16 || memcmp(h, "SQLite format 3", 16))
        return mk_fail(MK_ERR_FORMAT, "%s: not a medrek knowledge base (not a SQLite database)", path);
    if (got < sizeof h)
        return mk_fail(MK_ERR_FORMAT, "%s: truncated knowledge base (%zu bytes)", path, got);
    uint32_t page = (uint32_t)h[16] << 8 | h[17];
    if (page == 1) page = 65536;
    uint32_t pages = be32(h + 28);
    /* The page count is trustworthy when the "version-valid-for" number
     * matches the change counter; while a WAL file holds frames the main
     * file may legitimately lag behind, so only check without one. */
    char *wal = malloc(strlen(path) + 5);
    if (!wal) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    sprintf(wal, "%s-wal", path);
    struct stat ws;
    int has_wal = stat(wal, &ws) == 0 && ws.st_size > 0;
    free(wal);
    if (!has_wal && be32(h + 24) == be32(h + 92) && page >= 512 &&
        (uint64_t)pages * page > (uint64_t)sb.st_size)
        return mk_fail(MK_ERR_FORMAT, "%s: truncated knowledge base (%llu of %llu bytes present); restore it from a backup",
                       path, (unsigned long long)sb.st_size, (unsigned long long)pages * page);
    return MK_OK;
}

static int run_check(mk_kb *kb, const char *pragma);

static int create_schema(mk_kb *kb) {
    int rc;
    char when[32], sql[512];
    int64_t unix_s;
    now_utc(when, &unix_s);
    /* Page size and application id go in before WAL, while the header is
     * written in place. Two processes creating at once: the second one's
     * BEGIN IMMEDIATE waits, then sees the schema and skips. */
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", KB_PAGE_SIZE);
    if ((rc = exec(kb, sql, "setting the page size"))) return rc;
    if ((rc = exec(kb, "BEGIN IMMEDIATE", "creating the knowledge base"))) return rc;
    int64_t ver = 0;
    if ((rc = query_i64(kb, "PRAGMA user_version", 0, NULL, 0, &ver))) goto fail;
    if (ver == 0) {
        int64_t n_tables = 0;
        if ((rc = query_i64(kb, "SELECT count(*) FROM sqlite_master", 0, NULL, 0, &n_tables))) goto fail;
        if (n_tables != 0) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: a SQLite database, but not a medrek knowledge base", kb->path);
            goto fail;
        }
        if ((rc = exec(kb, SCHEMA, "creating the schema"))) goto fail;
        snprintf(sql, sizeof sql,
                 "PRAGMA application_id=%d; PRAGMA user_version=%d;"
                 "INSERT INTO meta VALUES('created','%s'),('created_by','medrek 0.1.0');",
                 KB_APP_ID, KB_SCHEMA_VERSION, when);
        if ((rc = exec(kb, sql, "creating the schema"))) goto fail;
    }
    if ((rc = exec(kb, "COMMIT", "creating the knowledge base"))) goto fail;
    return MK_OK;
fail:
    rollback(kb);
    return rc;
}

int mk_kb_open(const char *path, int flags, mk_kb **out) {
    *out = NULL;
    if (!path || !*path) return mk_fail(MK_ERR_ARG, "knowledge base: no file name given");
    if ((flags & MK_KB_READONLY) && (flags & MK_KB_CREATE))
        return mk_fail(MK_ERR_ARG, "%s: cannot create a knowledge base read-only", path);
    int fresh, rc = precheck_file(path, flags, &fresh);
    if (rc) return rc;
    mk_kb *kb = calloc(1, sizeof *kb);
    if (!kb || !(kb->path = strdup(path))) {
        free(kb);
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    }
    kb->readonly = !!(flags & MK_KB_READONLY);
    int oflags = kb->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (fresh) oflags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &kb->db, oflags, NULL) != SQLITE_OK) {
        rc = kb->db ? db_fail(kb, "opening") : mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    sqlite3_extended_result_codes(kb->db, 0);
    sqlite3_busy_timeout(kb->db, KB_BUSY_MS);
    if ((rc = exec(kb, "PRAGMA foreign_keys=ON", "enabling foreign keys"))) goto fail;
    if (fresh && (rc = create_schema(kb))) goto fail;

    int64_t app = 0, ver = 0, n_tables = 0;
    if (query_i64(kb, "PRAGMA application_id", 0, NULL, 0, &app)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: not a medrek knowledge base (SQLite cannot read it: %s)", path,
                     sqlite3_errmsg(kb->db));
        goto fail;
    }
    if ((uint32_t)app != KB_APP_ID) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: a SQLite database, but not a medrek knowledge base (application_id 0x%08x)",
                     path, (unsigned)(uint32_t)app);
        goto fail;
    }
    if ((rc = query_i64(kb, "PRAGMA user_version", 0, NULL, 0, &ver))) goto fail;
    if (ver > KB_SCHEMA_VERSION) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: knowledge-base schema version %lld is newer than this medrek knows (%d); upgrade medrek",
                     path, (long long)ver, KB_SCHEMA_VERSION);
        goto fail;
    }
    if ((rc = query_i64(kb, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN"
                            " ('meta','batches','edits','history')", 0, NULL, 0, &n_tables)))
        goto fail;
    if (ver < 1 || n_tables != 4) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: damaged knowledge base: schema version %lld, %lld of 4 tables",
                     path, (long long)ver, (long long)n_tables);
        goto fail;
    }
    if (!kb->readonly) {
        char mode[16] = "";
        sqlite3_stmt *st;
        if ((rc = prep(kb, "PRAGMA journal_mode=WAL", &st))) goto fail;
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (strcmp(mode, "wal")) {
            rc = mk_fail(MK_ERR_DB, "%s: cannot switch the journal to WAL (%s)", path,
                         mode[0] ? mode : sqlite3_errmsg(kb->db));
            goto fail;
        }
    }
    if ((rc = exec(kb, "PRAGMA synchronous=FULL", "setting synchronous"))) goto fail;
    /* 64 MB page cache: a big batch then spills to the WAL less often.
     * Memory-mapped reads (up to SQLite's compiled-in cap) halve the time
     * to load the vectors (SQLite's trade-off: a file truncated by another
     * process while mapped could fault instead of failing a read). After a
     * checkpoint the WAL is cut back to 64 MB, so a big batch does not
     * leave a WAL of its size behind. */
    if ((rc = exec(kb, "PRAGMA cache_size=-65536", "setting the cache size")) ||
        (rc = exec(kb, "PRAGMA mmap_size=1099511627776", "setting the map size")) ||
        (!kb->readonly && (rc = exec(kb, "PRAGMA journal_size_limit=67108864", "setting the WAL limit"))))
        goto fail;
    if ((flags & MK_KB_CHECK) && (rc = run_check(kb, "PRAGMA quick_check"))) goto fail;
    *out = kb;
    return MK_OK;
fail:
    mk_kb_close(kb);
    return rc;
}

void mk_kb_close(mk_kb *kb) {
    if (!kb) return;
    if (kb->db) sqlite3_close_v2(kb->db);
    free(kb->path);
    free(kb);
}

const char *mk_kb_path(const mk_kb *kb) { return kb ? kb->path : NULL; }

/* PRAGMA integrity_check or quick_check; the first problem, on one line. */
static int run_check(mk_kb *kb, const char *pragma) {
    sqlite3_stmt *st;
    int rc = prep(kb, pragma, &st);
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s != SQLITE_ROW) rc = db_fail(kb, "checking integrity");
    else {
        const char *msg = (const char *)sqlite3_column_text(st, 0);
        if (!msg || strcmp(msg, "ok")) {
            char first[256];
            snprintf(first, sizeof first, "%s", msg ? msg : "?");
            for (char *c = first; *c; c++)
                if (*c == '\n') *c = ' ';
            rc = mk_fail(MK_ERR_DB, "%s: integrity check failed (the file is damaged; restore it from a backup): %s",
                         kb->path, first);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int mk_kb_integrity_check(mk_kb *kb) { return run_check(kb, "PRAGMA integrity_check"); }

/* ---- writing ------------------------------------------------------------ */

static const char *EDIT_INSERT =
    "INSERT INTO edits(id, batch, status, superseded_by, prompt, target_new, subject, ground_truth,"
    " rephrase_prompt, locality_prompt, locality_ground_truth, source, created, created_unix,"
    " author, reason, fingerprint, R, T, D, key, prompts)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

static int writable(mk_kb *kb) {
    if (kb->readonly)
        return mk_fail(MK_ERR_ARG, "%s: the knowledge base was opened read-only", kb->path);
    return MK_OK;
}

int mk_kb_insert(mk_kb *kb, const mk_edit_request *reqs, int64_t n,
                 const mk_kb_insert_args *args, int64_t *batch_id_out, int64_t *ids) {
    int rc;
    sqlite3_stmt *st_b = NULL, *st_e = NULL, *st_h = NULL, *st_s = NULL, *st_x = NULL;
    int64_t *new_ids = NULL;
    char when[32];
    int64_t when_unix, batch = 0;
    if (batch_id_out) *batch_id_out = 0;
    if ((rc = writable(kb))) return rc;
    if (!args || n < 1 || !reqs)
        return mk_fail(MK_ERR_ARG, "%s: nothing to insert", kb->path);
    if ((rc = check_text(args->author, "the author", kb->path, 1)) ||
        (rc = check_text(args->reason, "the reason", kb->path, 0)))
        return rc;
    const mk_kb_vectors *vec = args->vec;
    size_t kbytes = 0, pbytes = 0;
    if (vec) {
        if ((rc = check_fingerprint(vec->fingerprint, kb->path)) ||
            (rc = vec_sizes(kb->path, vec->R, vec->T, vec->D, &kbytes, &pbytes)))
            return rc;
        if (!vec->keys || !vec->prompts)
            return mk_fail(MK_ERR_ARG, "%s: vectors without keys or prompts", kb->path);
    }
    for (int64_t i = 0; i < n; i++) {
        char where[48];
        snprintf(where, sizeof where, "request %lld", (long long)i);
        if ((rc = mk_kb_check_request(&reqs[i], kb->path, where))) return rc;
        if (args->keep_ids) {
            if (reqs[i].id <= 0 || reqs[i].status < 0 || reqs[i].status > 2 || reqs[i].superseded_by < 0)
                return mk_fail(MK_ERR_ARG, "%s: %s: bad id, status or superseded_by", kb->path, where);
            if (reqs[i].created && strlen(reqs[i].created) > 64)
                return mk_fail(MK_ERR_ARG, "%s: %s: 'created' too long", kb->path, where);
        }
    }
    for (int64_t i = 0; i < args->n_supersede; i++)
        if (args->supersede[i].incoming < 0 || args->supersede[i].incoming >= n)
            return mk_fail(MK_ERR_ARG, "%s: supersede entry %lld names incoming edit %lld of %lld",
                           kb->path, (long long)i, (long long)args->supersede[i].incoming, (long long)n);
    if (!(new_ids = malloc((size_t)n * sizeof *new_ids)))
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path);
    const char *action = args->action ? args->action : args->keep_ids ? "import" : "edit";
    now_utc(when, &when_unix);

    if ((rc = exec(kb, "BEGIN IMMEDIATE", "starting a batch"))) goto fail;
    if (args->keep_ids) { /* refuse ids already present, before writing anything */
        if ((rc = prep(kb, "SELECT 1 FROM edits WHERE id=?", &st_x))) goto fail;
        for (int64_t i = 0; i < n; i++) {
            sqlite3_reset(st_x);
            sqlite3_bind_int64(st_x, 1, reqs[i].id);
            int s = sqlite3_step(st_x);
            if (s == SQLITE_ROW) {
                rc = mk_fail(MK_ERR_CONFLICT, "%s: edit id %lld (request %lld) is already in the knowledge base; nothing written",
                             kb->path, (long long)reqs[i].id, (long long)i);
                goto fail;
            }
            if (s != SQLITE_DONE) { rc = db_fail(kb, "checking ids"); goto fail; }
        }
        /* superseded_by must name an edit of this file or of the base */
        for (int64_t i = 0; i < n; i++) {
            int64_t sb = reqs[i].superseded_by;
            if (!sb) continue;
            int found = 0;
            for (int64_t j = 0; j < n && !found; j++) found = reqs[j].id == sb;
            if (!found) {
                sqlite3_reset(st_x);
                sqlite3_bind_int64(st_x, 1, sb);
                found = sqlite3_step(st_x) == SQLITE_ROW;
            }
            if (!found) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: edit %lld is superseded by %lld, which is neither in the file nor in the knowledge base; nothing written",
                             kb->path, (long long)reqs[i].id, (long long)sb);
                goto fail;
            }
        }
        sqlite3_finalize(st_x);
        st_x = NULL;
    }
    if (args->n_supersede > 0) {
        if ((rc = prep(kb, "SELECT status FROM edits WHERE id=?", &st_x))) goto fail;
        for (int64_t i = 0; i < args->n_supersede; i++) {
            sqlite3_reset(st_x);
            sqlite3_bind_int64(st_x, 1, args->supersede[i].existing_id);
            int s = sqlite3_step(st_x);
            if (s != SQLITE_ROW || sqlite3_column_int(st_x, 0) != MK_EDIT_ACTIVE) {
                rc = mk_fail(MK_ERR_CONFLICT, "%s: edit %lld to supersede is %s; nothing written",
                             kb->path, (long long)args->supersede[i].existing_id,
                             s == SQLITE_ROW ? "no longer active" : "not in the knowledge base");
                goto fail;
            }
        }
        sqlite3_finalize(st_x);
        st_x = NULL;
    }
    if ((rc = prep(kb, "INSERT INTO batches(created, created_unix, author, reason, count, kind)"
                       " VALUES(?,?,?,?,?,?)", &st_b)))
        goto fail;
    sqlite3_bind_text(st_b, 1, when, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st_b, 2, when_unix);
    sqlite3_bind_text(st_b, 3, args->author, -1, SQLITE_STATIC);
    bind_opt_text(st_b, 4, args->reason && *args->reason ? args->reason : NULL);
    sqlite3_bind_int64(st_b, 5, n);
    sqlite3_bind_text(st_b, 6, args->keep_ids ? "import" : "edit", -1, SQLITE_STATIC);
    if (sqlite3_step(st_b) != SQLITE_DONE) { rc = db_fail(kb, "writing the batch"); goto fail; }
    batch = sqlite3_last_insert_rowid(kb->db);

    if ((rc = prep(kb, EDIT_INSERT, &st_e)) || (rc = prep(kb, HISTORY_INSERT, &st_h))) goto fail;
    for (int64_t i = 0; i < n; i++) {
        const mk_edit_request *r = &reqs[i];
        int keep = args->keep_ids;
        sqlite3_reset(st_e);
        sqlite3_clear_bindings(st_e);
        if (keep) sqlite3_bind_int64(st_e, 1, r->id);
        sqlite3_bind_int64(st_e, 2, batch);
        sqlite3_bind_int(st_e, 3, keep ? r->status : MK_EDIT_ACTIVE);
        if (keep && r->superseded_by) sqlite3_bind_int64(st_e, 4, r->superseded_by);
        sqlite3_bind_text(st_e, 5, r->prompt, -1, SQLITE_STATIC);
        sqlite3_bind_text(st_e, 6, r->target_new, -1, SQLITE_STATIC);
        bind_opt_text(st_e, 7, r->subject);
        bind_opt_text(st_e, 8, r->ground_truth);
        bind_opt_text(st_e, 9, r->rephrase_prompt);
        bind_opt_text(st_e, 10, r->locality_prompt);
        bind_opt_text(st_e, 11, r->locality_ground_truth);
        bind_opt_text(st_e, 12, r->source);
        sqlite3_bind_text(st_e, 13, keep && r->created ? r->created : when, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st_e, 14, when_unix);
        sqlite3_bind_text(st_e, 15, keep && r->author && *r->author ? r->author : args->author, -1,
                          SQLITE_STATIC);
        const char *reason = keep ? r->reason : args->reason;
        bind_opt_text(st_e, 16, reason && *reason ? reason : NULL);
        if (vec) {
            if ((rc = bind_vectors(kb, st_e, 17, vec, i, kbytes, pbytes))) goto fail;
        } else {
            for (int k = 18; k <= 20; k++) sqlite3_bind_int(st_e, k, 0);
        }
        if (sqlite3_step(st_e) != SQLITE_DONE) { rc = db_fail(kb, "writing an edit"); goto fail; }
        new_ids[i] = sqlite3_last_insert_rowid(kb->db);
        if ((rc = add_history(kb, st_h, when, when_unix, action, new_ids[i], batch, args->author,
                              args->reason, NULL)))
            goto fail;
    }
    if (args->n_supersede > 0) {
        if ((rc = prep(kb, "UPDATE edits SET status=2, superseded_by=? WHERE id=? AND status=0", &st_s)))
            goto fail;
        for (int64_t i = 0; i < args->n_supersede; i++) {
            int64_t old = args->supersede[i].existing_id, nw = new_ids[args->supersede[i].incoming];
            sqlite3_reset(st_s);
            sqlite3_bind_int64(st_s, 1, nw);
            sqlite3_bind_int64(st_s, 2, old);
            if (sqlite3_step(st_s) != SQLITE_DONE) { rc = db_fail(kb, "superseding"); goto fail; }
            if (sqlite3_changes(kb->db) == 0) continue; /* listed twice: already superseded */
            char detail[96];
            snprintf(detail, sizeof detail, "superseded by %lld (key cosine %.4f)", (long long)nw,
                     (double)args->supersede[i].similarity);
            if ((rc = add_history(kb, st_h, when, when_unix, "supersede", old, batch, args->author,
                                  args->reason, detail)))
                goto fail;
        }
    }
    sqlite3_finalize(st_b);
    sqlite3_finalize(st_e);
    sqlite3_finalize(st_h);
    sqlite3_finalize(st_s);
    st_b = st_e = st_h = st_s = NULL;
    if ((rc = exec(kb, "COMMIT", "committing the batch"))) goto fail;
    if (ids) memcpy(ids, new_ids, (size_t)n * sizeof *ids);
    if (batch_id_out) *batch_id_out = batch;
    free(new_ids);
    return MK_OK;
fail:
    sqlite3_finalize(st_b);
    sqlite3_finalize(st_e);
    sqlite3_finalize(st_h);
    sqlite3_finalize(st_s);
    sqlite3_finalize(st_x);
    rollback(kb);
    free(new_ids);
    return rc;
}

/* Change the status of the given active edits in one transaction. */
static int change_status(mk_kb *kb, const int64_t *ids, int64_t n, int new_status,
                         int64_t superseded_by, int64_t batch, const char *action,
                         const char *author, const char *reason, const char *detail) {
    int rc;
    sqlite3_stmt *st_u = NULL, *st_h = NULL;
    char when[32];
    int64_t when_unix;
    now_utc(when, &when_unix);
    if ((rc = prep(kb, "UPDATE edits SET status=?, superseded_by=? WHERE id=? AND status=0", &st_u)) ||
        (rc = prep(kb, HISTORY_INSERT, &st_h)))
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        sqlite3_reset(st_u);
        sqlite3_bind_int(st_u, 1, new_status);
        if (superseded_by) sqlite3_bind_int64(st_u, 2, superseded_by);
        else sqlite3_bind_null(st_u, 2);
        sqlite3_bind_int64(st_u, 3, ids[i]);
        if (sqlite3_step(st_u) != SQLITE_DONE) { rc = db_fail(kb, "changing an edit's status"); goto fail; }
        if (sqlite3_changes(kb->db) != 1) {
            rc = mk_fail(MK_ERR_ARG, "%s: edit %lld is not active", kb->path, (long long)ids[i]);
            goto fail;
        }
        if ((rc = add_history(kb, st_h, when, when_unix, action, ids[i], batch, author, reason, detail)))
            goto fail;
    }
fail:
    sqlite3_finalize(st_u);
    sqlite3_finalize(st_h);
    return rc;
}

/* Status of edit id: MK_OK and *status, or MK_ERR_NOTFOUND. */
static int edit_status(mk_kb *kb, int64_t id, int *status, int64_t *batch) {
    sqlite3_stmt *st;
    int rc = prep(kb, "SELECT status, batch FROM edits WHERE id=?", &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        *status = sqlite3_column_int(st, 0);
        if (batch) *batch = sqlite3_column_int64(st, 1);
    } else if (s == SQLITE_DONE) {
        rc = mk_fail(MK_ERR_NOTFOUND, "%s: no edit with id %lld", kb->path, (long long)id);
    } else {
        rc = db_fail(kb, "reading an edit");
    }
    sqlite3_finalize(st);
    return rc;
}

int mk_kb_revert(mk_kb *kb, int64_t id, const char *author, const char *reason) {
    int rc, status = 0;
    int64_t batch = 0;
    if ((rc = writable(kb)) || (rc = check_text(author, "the author", kb->path, 1)) ||
        (rc = check_text(reason, "the reason", kb->path, 0)))
        return rc;
    if ((rc = exec(kb, "BEGIN IMMEDIATE", "starting a revert"))) return rc;
    if ((rc = edit_status(kb, id, &status, &batch))) goto fail;
    if (status != MK_EDIT_ACTIVE) {
        rc = mk_fail(MK_ERR_ARG, "%s: edit %lld is already %s", kb->path, (long long)id,
                     mk_edit_status_name(status));
        goto fail;
    }
    if ((rc = change_status(kb, &id, 1, MK_EDIT_REVERTED, 0, batch, "revert", author, reason, NULL)))
        goto fail;
    return exec(kb, "COMMIT", "committing the revert");
fail:
    rollback(kb);
    return rc;
}

int mk_kb_revert_batch(mk_kb *kb, int64_t batch, const char *author, const char *reason,
                       int64_t *n_reverted) {
    int rc;
    int64_t *ids = NULL, n = 0, cap = 0, exists = 0;
    sqlite3_stmt *st = NULL;
    if (n_reverted) *n_reverted = 0;
    if ((rc = writable(kb)) || (rc = check_text(author, "the author", kb->path, 1)) ||
        (rc = check_text(reason, "the reason", kb->path, 0)))
        return rc;
    if ((rc = exec(kb, "BEGIN IMMEDIATE", "starting a revert"))) return rc;
    if ((rc = query_i64(kb, "SELECT count(*) FROM batches WHERE id=?", batch, NULL, 0, &exists))) goto fail;
    if (!exists) {
        rc = mk_fail(MK_ERR_NOTFOUND, "%s: no batch with id %lld", kb->path, (long long)batch);
        goto fail;
    }
    if ((rc = prep(kb, "SELECT id FROM edits WHERE batch=? AND status=0 ORDER BY id", &st))) goto fail;
    sqlite3_bind_int64(st, 1, batch);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 256;
            int64_t *ni = realloc(ids, (size_t)nc * sizeof *ni);
            if (!ni) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
            ids = ni;
            cap = nc;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (s != SQLITE_DONE) { rc = db_fail(kb, "reading a batch"); goto fail; }
    sqlite3_finalize(st);
    st = NULL;
    if (n == 0) {
        rc = mk_fail(MK_ERR_ARG, "%s: batch %lld has no active edits", kb->path, (long long)batch);
        goto fail;
    }
    if ((rc = change_status(kb, ids, n, MK_EDIT_REVERTED, 0, batch, "revert", author, reason,
                            "batch revert")))
        goto fail;
    if ((rc = exec(kb, "COMMIT", "committing the revert"))) goto fail;
    free(ids);
    if (n_reverted) *n_reverted = n;
    return MK_OK;
fail:
    sqlite3_finalize(st);
    rollback(kb);
    free(ids);
    return rc;
}

int mk_kb_supersede(mk_kb *kb, int64_t old_id, int64_t new_id, const char *author,
                    const char *reason) {
    int rc, so = 0, sn = 0;
    int64_t batch = 0;
    if ((rc = writable(kb)) || (rc = check_text(author, "the author", kb->path, 1)) ||
        (rc = check_text(reason, "the reason", kb->path, 0)))
        return rc;
    if (old_id == new_id)
        return mk_fail(MK_ERR_ARG, "%s: edit %lld cannot supersede itself", kb->path, (long long)old_id);
    if ((rc = exec(kb, "BEGIN IMMEDIATE", "starting a supersede"))) return rc;
    if ((rc = edit_status(kb, old_id, &so, NULL)) || (rc = edit_status(kb, new_id, &sn, &batch))) goto fail;
    if (so != MK_EDIT_ACTIVE || sn != MK_EDIT_ACTIVE) {
        rc = mk_fail(MK_ERR_ARG, "%s: both edits must be active (edit %lld is %s, edit %lld is %s)",
                     kb->path, (long long)old_id, mk_edit_status_name(so), (long long)new_id,
                     mk_edit_status_name(sn));
        goto fail;
    }
    char detail[64];
    snprintf(detail, sizeof detail, "superseded by %lld", (long long)new_id);
    if ((rc = change_status(kb, &old_id, 1, MK_EDIT_SUPERSEDED, new_id, batch, "supersede", author,
                            reason, detail)))
        goto fail;
    return exec(kb, "COMMIT", "committing the supersede");
fail:
    rollback(kb);
    return rc;
}

int mk_kb_set_vectors(mk_kb *kb, const int64_t *ids, int64_t n, const mk_kb_vectors *vec,
                      const char *author, const char *reason) {
    int rc;
    size_t kbytes, pbytes;
    sqlite3_stmt *st_u = NULL, *st_h = NULL, *st_b = NULL;
    if ((rc = writable(kb)) || (rc = check_text(author, "the author", kb->path, 1)) ||
        (rc = check_text(reason, "the reason", kb->path, 0)))
        return rc;
    if (n < 0 || (n > 0 && (!ids || !vec || !vec->keys || !vec->prompts)))
        return mk_fail(MK_ERR_ARG, "%s: set_vectors: missing ids or vectors", kb->path);
    if (n == 0) return MK_OK;
    if ((rc = check_fingerprint(vec->fingerprint, kb->path)) ||
        (rc = vec_sizes(kb->path, vec->R, vec->T, vec->D, &kbytes, &pbytes)))
        return rc;
    char when[32], detail[352];
    int64_t when_unix;
    now_utc(when, &when_unix);
    snprintf(detail, sizeof detail, "fingerprint %s R=%lld T=%lld D=%lld", vec->fingerprint,
             (long long)vec->R, (long long)vec->T, (long long)vec->D);
    if ((rc = exec(kb, "BEGIN IMMEDIATE", "starting a re-encode"))) return rc;
    if ((rc = prep(kb, "UPDATE edits SET fingerprint=?, R=?, T=?, D=?, key=?, prompts=? WHERE id=?", &st_u)) ||
        (rc = prep(kb, HISTORY_INSERT, &st_h)) ||
        (rc = prep(kb, "SELECT batch FROM edits WHERE id=?", &st_b)))
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        sqlite3_reset(st_u);
        if ((rc = bind_vectors(kb, st_u, 1, vec, i, kbytes, pbytes))) goto fail;
        sqlite3_bind_int64(st_u, 7, ids[i]);
        if (sqlite3_step(st_u) != SQLITE_DONE) { rc = db_fail(kb, "writing vectors"); goto fail; }
        if (sqlite3_changes(kb->db) != 1) {
            rc = mk_fail(MK_ERR_NOTFOUND, "%s: no edit with id %lld; nothing re-encoded", kb->path,
                         (long long)ids[i]);
            goto fail;
        }
        sqlite3_reset(st_b);
        sqlite3_bind_int64(st_b, 1, ids[i]);
        int64_t batch = sqlite3_step(st_b) == SQLITE_ROW ? sqlite3_column_int64(st_b, 0) : 0;
        if ((rc = add_history(kb, st_h, when, when_unix, "reencode", ids[i], batch, author, reason,
                              detail)))
            goto fail;
    }
    sqlite3_finalize(st_u);
    sqlite3_finalize(st_h);
    sqlite3_finalize(st_b);
    return exec(kb, "COMMIT", "committing the re-encode") ? (rollback(kb), MK_ERR_DB) : MK_OK;
fail:
    sqlite3_finalize(st_u);
    sqlite3_finalize(st_h);
    sqlite3_finalize(st_b);
    rollback(kb);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

void mk_kb_active_free(mk_kb_active *a) {
    if (!a) return;
    free(a->ids);
    free(a->keys);
    free(a->prompts);
    memset(a, 0, sizeof *a);
}

/* a * b * c elements of `size` bytes, or 0 on overflow. */
static size_t nbytes3(int64_t a, int64_t b, int64_t c, size_t size) {
    size_t r;
    if (a < 0 || b < 0 || c < 0) return 0;
    if (__builtin_mul_overflow((size_t)a, (size_t)b, &r) || __builtin_mul_overflow(r, (size_t)c, &r) ||
        __builtin_mul_overflow(r, size, &r))
        return 0;
    return r;
}

/* with_prompts = 0: keys only (the question path needs just the prompts of
 * the edits it retrieves; see mk_kb_get_prompts). */
static int load_active(mk_kb *kb, const char *fingerprint, int64_t R, int64_t T, int64_t D,
                       int64_t lead, int with_prompts, mk_kb_active *out) {
    int rc;
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    if ((rc = check_fingerprint(fingerprint, kb->path))) return rc;
    if (lead < 0 || lead > 1024 || R < 0 || T < 0 || D < 0)
        return mk_fail(MK_ERR_ARG, "%s: load_active: bad lead rows or shape", kb->path);
    /* One read transaction: counts and rows come from the same snapshot. */
    if ((rc = exec(kb, "BEGIN", "starting a read"))) return rc;
    int64_t stale = 0;
    if ((rc = query_i64(kb, "SELECT count(*) FROM edits WHERE status=0 AND"
                            " (fingerprint IS NULL OR fingerprint<>?)", 0, fingerprint, 0, &stale)))
        goto fail;
    if (stale > 0) {
        int64_t no_vec = 0;
        if ((rc = query_i64(kb, "SELECT count(*) FROM edits WHERE status=0 AND fingerprint IS NULL", 0,
                            NULL, 0, &no_vec)))
            goto fail;
        rc = mk_fail(MK_ERR_MISMATCH, "%s: %lld active edits need re-encoding for editor %s (%lld without vectors, %lld from another editor); run `medrek kb reencode --kb %s --editor EDITOR --model MODEL`",
                     kb->path, (long long)stale, fingerprint, (long long)no_vec,
                     (long long)(stale - no_vec), kb->path);
        goto fail;
    }
    if ((rc = prep(kb, "SELECT count(*), min(R), max(R), min(T), max(T), min(D), max(D) FROM edits"
                       " WHERE status=0 AND fingerprint=?", &st)))
        goto fail;
    sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) { rc = db_fail(kb, "counting active edits"); goto fail; }
    int64_t n = sqlite3_column_int64(st, 0);
    int64_t v[6];
    for (int i = 0; i < 6; i++) v[i] = sqlite3_column_int64(st, i + 1);
    sqlite3_finalize(st);
    st = NULL;
    if (n > 0) {
        if (v[0] != v[1] || v[2] != v[3] || v[4] != v[5]) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: active edits of editor %s have different vector shapes (R %lld..%lld, T %lld..%lld, D %lld..%lld)",
                         kb->path, fingerprint, (long long)v[0], (long long)v[1], (long long)v[2],
                         (long long)v[3], (long long)v[4], (long long)v[5]);
            goto fail;
        }
        if ((R && R != v[0]) || (T && T != v[2]) || (D && D != v[4])) {
            rc = mk_fail(MK_ERR_MISMATCH, "%s: stored vectors are R=%lld T=%lld D=%lld, the editor expects R=%lld T=%lld D=%lld",
                         kb->path, (long long)v[0], (long long)v[2], (long long)v[4], (long long)R,
                         (long long)T, (long long)D);
            goto fail;
        }
        R = v[0];
        T = v[2];
        D = v[4];
    }
    size_t kb_row = 0, pb_row = 0;
    if (R > 0 && T > 0 && D > 0 && (rc = vec_sizes(kb->path, R, T, D, &kb_row, &pb_row))) goto fail;
    int64_t rows = lead + n;
    size_t kbytes = nbytes3(rows, R, 1, sizeof(float)), pbytes = nbytes3(rows, T, D, sizeof(float));
    if ((rows > 0 && R > 0 && !kbytes) || (rows > 0 && T > 0 && D > 0 && !pbytes)) {
        rc = mk_fail(MK_ERR_NOMEM, "%s: %lld edits of R=%lld T=%lld D=%lld overflow memory sizes",
                     kb->path, (long long)n, (long long)R, (long long)T, (long long)D);
        goto fail;
    }
    out->ids = calloc((size_t)rows + 1, sizeof *out->ids);
    out->keys = kbytes ? malloc(kbytes) : NULL;
    if (!with_prompts) pbytes = 0;
    out->prompts = pbytes ? malloc(pbytes) : NULL;
    if (!out->ids || (kbytes && !out->keys) || (pbytes && !out->prompts)) {
        rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory loading %lld edits (%.1f MB of vectors)", kb->path,
                     (long long)n, (double)(kbytes + pbytes) / 1e6);
        goto fail;
    }
    if (lead > 0) {
        if (out->keys) memset(out->keys, 0, (size_t)lead * kb_row);
        if (out->prompts) memset(out->prompts, 0, (size_t)lead * pb_row);
    }
    out->lead = lead;
    out->R = R;
    out->T = T;
    out->D = D;
    if ((rc = prep(kb, "SELECT id, key, prompts FROM edits WHERE status=0 AND fingerprint=? ORDER BY id", &st)))
        goto fail;
    sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    int64_t i = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (i >= n) {
            rc = mk_fail(MK_ERR_DB, "%s: more active edits than counted", kb->path);
            goto fail;
        }
        const void *kblob = sqlite3_column_blob(st, 1);
        size_t kl = (size_t)sqlite3_column_bytes(st, 1);
        const void *pblob = sqlite3_column_blob(st, 2);
        size_t pl = (size_t)sqlite3_column_bytes(st, 2);
        if (kl != kb_row || pl != pb_row || !kblob || !pblob) { /* checked even when not kept */
            rc = mk_fail(MK_ERR_FORMAT, "%s: edit %lld: vector blobs of %zu and %zu bytes, expected %zu and %zu (damaged knowledge base)",
                         kb->path, (long long)id, kl, pl, kb_row, pb_row);
            goto fail;
        }
        size_t row = (size_t)(lead + i);
        out->ids[row] = id;
        le_to_floats(out->keys + row * (kb_row / 4), kblob, kb_row / 4);
        if (out->prompts) le_to_floats(out->prompts + row * (pb_row / 4), pblob, pb_row / 4);
        i++;
    }
    if (s != SQLITE_DONE) { rc = db_fail(kb, "loading vectors"); goto fail; }
    if (i != n) {
        rc = mk_fail(MK_ERR_DB, "%s: %lld active edits counted, %lld read", kb->path, (long long)n, (long long)i);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    out->n = n;
    if ((rc = exec(kb, "COMMIT", "ending a read"))) goto fail;
    return MK_OK;
fail:
    sqlite3_finalize(st);
    rollback(kb);
    mk_kb_active_free(out);
    return rc;
}

int mk_kb_load_active(mk_kb *kb, const char *fingerprint, int64_t R, int64_t T, int64_t D,
                      int64_t lead, mk_kb_active *out) {
    return load_active(kb, fingerprint, R, T, D, lead, 1, out);
}

int mk_kb_load_active_keys(mk_kb *kb, const char *fingerprint, int64_t R, int64_t T, int64_t D,
                           int64_t lead, mk_kb_active *out) {
    return load_active(kb, fingerprint, R, T, D, lead, 0, out);
}

int mk_kb_get_prompts(mk_kb *kb, int64_t id, const char *fingerprint, int64_t T, int64_t D,
                      float *out) {
    sqlite3_stmt *st = NULL;
    size_t want = 0, kb_row = 0;
    int rc = vec_sizes(kb->path, 1, T, D, &kb_row, &want);
    if (rc) return rc;
    if ((rc = prep(kb, "SELECT prompts, fingerprint, status FROM edits WHERE id=?", &st))) return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = mk_fail(MK_ERR_NOTFOUND, "%s: no edit %lld", kb->path, (long long)id);
        goto done;
    }
    const void *blob = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    const char *fp = (const char *)sqlite3_column_text(st, 1);
    if (!fp || strcmp(fp, fingerprint)) {
        rc = mk_fail(MK_ERR_MISMATCH, "%s: edit %lld was not encoded by editor %s", kb->path,
                     (long long)id, fingerprint);
        goto done;
    }
    if (!blob || len != want) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: edit %lld: prompt blob of %zu bytes, expected %zu (damaged knowledge base)",
                     kb->path, (long long)id, len, want);
        goto done;
    }
    le_to_floats(out, blob, want / 4);
done:
    sqlite3_finalize(st);
    return rc;
}

/* Columns of a full edit row, in this order. */
#define EDIT_COLS                                                                          \
    "id, status, superseded_by, batch, prompt, target_new, subject, ground_truth,"        \
    " rephrase_prompt, locality_prompt, locality_ground_truth, source, created, author,"  \
    " reason, fingerprint, R, T, D"

static int read_edit_row(mk_kb *kb, sqlite3_stmt *st, mk_edit_request *e) {
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(st, 0);
    e->status = sqlite3_column_int(st, 1);
    e->superseded_by = sqlite3_column_int64(st, 2);
    e->batch = sqlite3_column_int64(st, 3);
    char **s[] = {&e->prompt, &e->target_new, &e->subject, &e->ground_truth, &e->rephrase_prompt,
                  &e->locality_prompt, &e->locality_ground_truth, &e->source, &e->created,
                  &e->author, &e->reason, &e->fingerprint};
    for (int i = 0; i < 12; i++) {
        if (sqlite3_column_type(st, 4 + i) == SQLITE_NULL) continue;
        if (!(*s[i] = col_dup(st, 4 + i))) {
            mk_edit_request_clear(e);
            return mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path);
        }
    }
    e->R = sqlite3_column_int64(st, 16);
    e->T = sqlite3_column_int64(st, 17);
    e->D = sqlite3_column_int64(st, 18);
    return MK_OK;
}

int mk_kb_get(mk_kb *kb, int64_t id, mk_edit_request *out) {
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    int rc = prep(kb, "SELECT " EDIT_COLS " FROM edits WHERE id=?", &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) rc = read_edit_row(kb, st, out);
    else if (s == SQLITE_DONE) rc = mk_fail(MK_ERR_NOTFOUND, "%s: no edit with id %lld", kb->path, (long long)id);
    else rc = db_fail(kb, "reading an edit");
    sqlite3_finalize(st);
    return rc;
}

/* Run a query returning EDIT_COLS rows into a growing array. */
static int collect_edits(mk_kb *kb, sqlite3_stmt *st, mk_edit_request **out, int64_t *n_out) {
    mk_edit_request *v = NULL;
    int64_t n = 0, cap = 0;
    int s, rc = MK_OK;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 64;
            mk_edit_request *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
            v = nv;
            cap = nc;
        }
        if ((rc = read_edit_row(kb, st, &v[n]))) goto fail;
        n++;
    }
    if (s != SQLITE_DONE) { rc = db_fail(kb, "listing edits"); goto fail; }
    *out = v;
    *n_out = n;
    return MK_OK;
fail:
    mk_edit_requests_free(v, n);
    return rc;
}

int mk_kb_list(mk_kb *kb, int status, int64_t limit, mk_edit_request **out, int64_t *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prep(kb, "SELECT " EDIT_COLS " FROM edits WHERE (?1 < 0 OR status=?1) ORDER BY id LIMIT ?2", &st);
    if (rc) return rc;
    sqlite3_bind_int(st, 1, status);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    rc = collect_edits(kb, st, out, n);
    sqlite3_finalize(st);
    return rc;
}

int mk_kb_list_stale(mk_kb *kb, const char *fingerprint, mk_edit_request **out, int64_t *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prep(kb, "SELECT " EDIT_COLS " FROM edits WHERE status=0 AND"
                      " (fingerprint IS NULL OR fingerprint<>?) ORDER BY id", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, fingerprint ? fingerprint : "", -1, SQLITE_STATIC);
    rc = collect_edits(kb, st, out, n);
    sqlite3_finalize(st);
    return rc;
}

/* Compare two targets ignoring leading/trailing spaces. */
static int same_target(const char *a, const char *b) {
    while (*a == ' ') a++;
    while (*b == ' ') b++;
    size_t la = strlen(a), lb = strlen(b);
    while (la && a[la - 1] == ' ') la--;
    while (lb && b[lb - 1] == ' ') lb--;
    return la == lb && !memcmp(a, b, la);
}

static int cmp_conflict(const void *x, const void *y) {
    const mk_kb_conflict *a = x, *b = y;
    if (a->incoming != b->incoming) return a->incoming < b->incoming ? -1 : 1;
    if (a->similarity != b->similarity) return a->similarity > b->similarity ? -1 : 1;
    return a->existing_id < b->existing_id ? -1 : a->existing_id > b->existing_id;
}

int mk_kb_find_conflicts(mk_kb *kb, const mk_kb_active *act, const mk_edit_request *reqs,
                         const float *keys, int64_t n, float threshold, mk_kb_conflict **out,
                         int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (threshold <= 0) threshold = MK_KB_CONFLICT_THRESHOLD;
    if (!act || act->n == 0 || n == 0) return MK_OK;
    if (!keys || !reqs || act->R < 1 || act->R > INT32_MAX || n > INT32_MAX)
        return mk_fail(MK_ERR_ARG, "%s: find_conflicts: missing keys", kb->path);
    const int64_t R = act->R, N = act->n;
    const float *ak = act->keys + (size_t)act->lead * (size_t)R; /* (N, R) */
    const int64_t chunk = 4096;
    float *anorm = malloc((size_t)N * sizeof *anorm), *qnorm = malloc((size_t)n * sizeof *qnorm);
    float *S = malloc((size_t)n * (size_t)(N < chunk ? N : chunk) * sizeof *S); /* (n, chunk) */
    mk_kb_conflict *v = NULL;
    int64_t nv = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    int rc = MK_OK;
    if (!anorm || !qnorm || !S) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
    for (int64_t j = 0; j < N; j++) anorm[j] = cblas_snrm2((int)R, ak + (size_t)j * R, 1);
    for (int64_t i = 0; i < n; i++) qnorm[i] = cblas_snrm2((int)R, keys + (size_t)i * R, 1);
    if ((rc = prep(kb, "SELECT target_new FROM edits WHERE id=?", &st))) goto fail;
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        int64_t c = N - r0 < chunk ? N - r0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)c, (int)R, 1.0f, keys,
                    (int)R, ak + (size_t)r0 * R, (int)R, 0.0f, S, (int)c);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < c; j++) {
                float den = qnorm[i] * anorm[r0 + j];
                if (!(den > 0)) continue;
                float cs = S[(size_t)i * c + j] / den;
                if (!(cs >= threshold)) continue;
                int64_t id = act->ids[act->lead + r0 + j];
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, id);
                int s = sqlite3_step(st);
                if (s != SQLITE_ROW) { rc = s == SQLITE_DONE ? MK_OK : db_fail(kb, "reading a target"); if (rc) goto fail; continue; }
                const char *t = (const char *)sqlite3_column_text(st, 0);
                if (t && same_target(t, reqs[i].target_new)) continue;
                if (nv == cap) {
                    int64_t nc = cap ? cap * 2 : 16;
                    mk_kb_conflict *nvv = realloc(v, (size_t)nc * sizeof *nvv);
                    if (!nvv) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
                    v = nvv;
                    cap = nc;
                }
                v[nv++] = (mk_kb_conflict){i, id, cs};
            }
    }
    if (nv) qsort(v, (size_t)nv, sizeof *v, cmp_conflict);
    *out = v;
    *n_out = nv;
    v = NULL;
fail:
    sqlite3_finalize(st);
    free(anorm);
    free(qnorm);
    free(S);
    free(v);
    return rc;
}

int mk_edit_requests_self_conflicts(const mk_edit_request *reqs, const float *keys, int64_t n,
                                    int64_t R, float threshold, mk_kb_conflict **out,
                                    int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (threshold <= 0) threshold = MK_KB_CONFLICT_THRESHOLD;
    if (n < 2) return MK_OK;
    if (!reqs || !keys || R < 1 || R > INT32_MAX || n > INT32_MAX)
        return mk_fail(MK_ERR_ARG, "self_conflicts: missing keys");
    float *norm = malloc((size_t)n * sizeof *norm);
    mk_kb_conflict *v = NULL;
    int64_t nv = 0, cap = 0;
    if (!norm) return mk_fail(MK_ERR_NOMEM, "self_conflicts: out of memory");
    for (int64_t i = 0; i < n; i++) norm[i] = cblas_snrm2((int)R, keys + (size_t)i * R, 1);
    /* O(n^2 R) dot products: fine for the batches people edit at once. */
    for (int64_t j = 1; j < n; j++)
        for (int64_t i = 0; i < j; i++) {
            float den = norm[i] * norm[j];
            if (!(den > 0)) continue;
            float cs = cblas_sdot((int)R, keys + (size_t)i * R, 1, keys + (size_t)j * R, 1) / den;
            if (!(cs >= threshold) || same_target(reqs[i].target_new, reqs[j].target_new)) continue;
            if (nv == cap) {
                int64_t nc = cap ? cap * 2 : 16;
                mk_kb_conflict *nw = realloc(v, (size_t)nc * sizeof *nw);
                if (!nw) {
                    free(v);
                    free(norm);
                    return mk_fail(MK_ERR_NOMEM, "self_conflicts: out of memory");
                }
                v = nw;
                cap = nc;
            }
            v[nv++] = (mk_kb_conflict){j, i, cs};
        }
    free(norm);
    *out = v;
    *n_out = nv;
    return MK_OK;
}

void mk_kb_events_free(mk_kb_event *ev, int64_t n) {
    if (!ev) return;
    for (int64_t i = 0; i < n; i++) {
        free(ev[i].time);
        free(ev[i].action);
        free(ev[i].author);
        free(ev[i].reason);
        free(ev[i].detail);
    }
    free(ev);
}

int mk_kb_history(mk_kb *kb, int64_t edit_id, int64_t limit, mk_kb_event **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *st;
    int rc = prep(kb, "SELECT * FROM (SELECT seq, time, action, edit_id, batch_id, author, reason, detail"
                      " FROM history WHERE (?1 <= 0 OR edit_id=?1) ORDER BY seq DESC LIMIT ?2)"
                      " ORDER BY seq", &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, edit_id);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    mk_kb_event *v = NULL;
    int64_t n = 0, cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 64;
            mk_kb_event *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
            v = nv;
            cap = nc;
        }
        mk_kb_event *e = &v[n++];
        memset(e, 0, sizeof *e);
        e->seq = sqlite3_column_int64(st, 0);
        e->edit_id = sqlite3_column_int64(st, 3);
        e->batch_id = sqlite3_column_int64(st, 4);
        e->time = col_dup(st, 1);
        e->action = col_dup(st, 2);
        e->author = col_dup(st, 5);
        e->reason = col_dup(st, 6);
        e->detail = col_dup(st, 7);
        if (!e->time || !e->action || !e->author) {
            rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory (or a damaged history row %lld)", kb->path,
                         (long long)e->seq);
            goto fail;
        }
    }
    if (s != SQLITE_DONE) { rc = db_fail(kb, "reading the history"); goto fail; }
    sqlite3_finalize(st);
    *out = v;
    *n_out = n;
    return MK_OK;
fail:
    sqlite3_finalize(st);
    mk_kb_events_free(v, n);
    return rc;
}

void mk_kb_stats_free(mk_kb_stats *s) {
    if (!s) return;
    for (int i = 0; i < s->n_fp; i++) free(s->fp[i].fingerprint);
    free(s->fp);
    memset(s, 0, sizeof *s);
}

int mk_kb_get_stats(mk_kb *kb, mk_kb_stats *out) {
    memset(out, 0, sizeof *out);
    int rc;
    sqlite3_stmt *st = NULL;
    if ((rc = exec(kb, "BEGIN", "starting a read"))) return rc;
    int64_t ver = 0;
    if ((rc = query_i64(kb, "SELECT count(*) FROM edits WHERE status=0", 0, NULL, 0, &out->n_active)) ||
        (rc = query_i64(kb, "SELECT count(*) FROM edits WHERE status=1", 0, NULL, 0, &out->n_reverted)) ||
        (rc = query_i64(kb, "SELECT count(*) FROM edits WHERE status=2", 0, NULL, 0, &out->n_superseded)) ||
        (rc = query_i64(kb, "SELECT count(*) FROM batches", 0, NULL, 0, &out->n_batches)) ||
        (rc = query_i64(kb, "SELECT count(*) FROM history", 0, NULL, 0, &out->n_history)) ||
        (rc = query_i64(kb, "SELECT coalesce(sum(length(key) + length(prompts)), 0) FROM edits", 0, NULL,
                        0, &out->vector_bytes)) ||
        (rc = query_i64(kb, "PRAGMA user_version", 0, NULL, 0, &ver)))
        goto fail;
    out->schema_version = (int)ver;
    if ((rc = prep(kb, "SELECT fingerprint, R, T, D, count(*), sum(status=0) FROM edits"
                       " GROUP BY fingerprint, R, T, D ORDER BY fingerprint", &st)))
        goto fail;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n_fp >= 1 << 20) break;
        mk_kb_fpstat *nf = realloc(out->fp, (size_t)(out->n_fp + 1) * sizeof *nf);
        if (!nf) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
        out->fp = nf;
        mk_kb_fpstat *f = &out->fp[out->n_fp++];
        f->fingerprint = col_dup(st, 0);
        f->R = sqlite3_column_int64(st, 1);
        f->T = sqlite3_column_int64(st, 2);
        f->D = sqlite3_column_int64(st, 3);
        f->n_edits = sqlite3_column_int64(st, 4);
        f->n_active = sqlite3_column_int64(st, 5);
    }
    if (s != SQLITE_DONE && s != SQLITE_ROW) { rc = db_fail(kb, "reading statistics"); goto fail; }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = exec(kb, "COMMIT", "ending a read"))) goto fail;
    struct stat sb;
    if (stat(kb->path, &sb) == 0) out->file_bytes = (int64_t)sb.st_size;
    char *wal = malloc(strlen(kb->path) + 5);
    if (wal) {
        sprintf(wal, "%s-wal", kb->path);
        if (stat(wal, &sb) == 0) out->file_bytes += (int64_t)sb.st_size;
        free(wal);
    }
    return MK_OK;
fail:
    sqlite3_finalize(st);
    rollback(kb);
    mk_kb_stats_free(out);
    return rc;
}

/* ---- export / import ---------------------------------------------------- */

int mk_kb_export(mk_kb *kb, FILE *f, const char *out_name) {
    sqlite3_stmt *st = NULL;
    int rc, s;
    const char *name = out_name ? out_name : "output";
    if ((rc = exec(kb, "BEGIN", "starting a read"))) return rc;
    if ((rc = prep(kb, "SELECT " EDIT_COLS " FROM edits ORDER BY id", &st))) goto fail;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        mk_edit_request e;
        if ((rc = read_edit_row(kb, st, &e))) goto fail;
        char *line = mk_kb_edit_to_json(&e);
        mk_edit_request_clear(&e);
        if (!line) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", kb->path); goto fail; }
        int bad = fputs(line, f) < 0 || fputc('\n', f) == EOF;
        free(line);
        if (bad) { rc = mk_fail(MK_ERR_IO, "%s: write failed: %s", name, strerror(errno)); goto fail; }
    }
    if (s != SQLITE_DONE) { rc = db_fail(kb, "exporting"); goto fail; }
    sqlite3_finalize(st);
    st = NULL;
    if (fflush(f) != 0 || ferror(f)) { rc = mk_fail(MK_ERR_IO, "%s: write failed: %s", name, strerror(errno)); goto fail; }
    return exec(kb, "COMMIT", "ending a read");
fail:
    sqlite3_finalize(st);
    rollback(kb);
    return rc;
}

int mk_kb_import(mk_kb *kb, const char *path, const char *author, const char *reason,
                 int64_t *batch_id, int64_t *n_out) {
    mk_edit_request *reqs = NULL;
    int64_t n = 0;
    if (batch_id) *batch_id = 0;
    if (n_out) *n_out = 0;
    int rc = writable(kb);
    if (rc) return rc;
    if ((rc = mk_edit_requests_parse_file_ex(path, MK_REQ_EXPORT, &reqs, &n))) return rc;
    mk_kb_insert_args args = {0};
    args.author = author;
    args.reason = reason;
    args.keep_ids = 1;
    args.action = "import";
    rc = mk_kb_insert(kb, reqs, n, &args, batch_id, NULL);
    if (rc) mk_fail_ctx(rc, "importing %s", path);
    else if (n_out) *n_out = n;
    mk_edit_requests_free(reqs, n);
    return rc;
}
