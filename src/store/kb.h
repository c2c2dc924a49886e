/* kb.h - the persistent, auditable knowledge base (one SQLite file).
 *
 * A knowledge base holds edits (prompt -> target_new plus provenance), the
 * vectors an editor computed for them (key (R), prompts (T, D), tagged with
 * the editor's fingerprint), the batches they came in, and an append-only
 * history of every change. Edits are never deleted: revert and supersede
 * change their status and are recorded in the history.
 *
 * Durability: WAL journal with synchronous=FULL, so a batch that
 * mk_kb_insert reported as written survives a crash or power loss, and a
 * batch interrupted at any point (even SIGKILL) is absent as a whole.
 *
 * Threads: one mk_kb handle per thread. Several processes may open the same
 * file; readers see a consistent snapshot (before or after a batch) while
 * one writer commits.
 *
 * All functions return MK_OK or an mk_status and set mk_errmsg() to a
 * message that names the file and the problem.
 */
#ifndef MK_KB_H
#define MK_KB_H

#include <stdint.h>
#include <stdio.h>

typedef struct mk_kb mk_kb; /* opaque */

/* mk_kb_open flags. */
enum {
    MK_KB_READONLY = 1, /* open read-only; the file must exist */
    MK_KB_CREATE = 2,   /* create a new knowledge base if the file is absent or empty */
    MK_KB_CHECK = 4     /* run SQLite's quick_check on open (reads the whole file) */
};

/* Edit status (stored as an integer). MK_EDIT_ANY is a filter only. */
typedef enum {
    MK_EDIT_ANY = -1,
    MK_EDIT_ACTIVE = 0,
    MK_EDIT_REVERTED = 1,
    MK_EDIT_SUPERSEDED = 2
} mk_edit_status;
const char *mk_edit_status_name(int status); /* "active", ... */
int mk_edit_status_parse(const char *s);     /* -2 when unknown; "any" = -1 */

#define MK_REQ_MAX_FIELD 4096 /* bytes: longest prompt / target / text field */

/* One edit: the request fields (what `medrek edit` reads from a file) and,
 * when it comes from the knowledge base, its stored metadata. Strings are
 * heap copies (NUL-terminated, valid UTF-8 is not checked); NULL = absent. */
typedef struct {
    /* request */
    char *prompt;                /* required, non-empty, <= MK_REQ_MAX_FIELD */
    char *target_new;            /* required, non-empty, <= MK_REQ_MAX_FIELD */
    char *subject;               /* optional ("subject" or "subject_name") */
    char *ground_truth;          /* optional: the answer being corrected */
    char *rephrase_prompt;       /* optional */
    char *locality_prompt;       /* optional (MedCF: first locality_*_prompt present) */
    char *locality_ground_truth; /* optional (paired with locality_prompt) */
    char *source;                /* optional provenance: reference, URL, document */
    /* stored metadata (from the knowledge base, or an export file read
     * with MK_REQ_EXPORT; 0 / NULL otherwise) */
    int64_t id;                  /* edit id (> 0) */
    int status;                  /* mk_edit_status */
    int64_t superseded_by;       /* id of the edit that replaced it, 0 = none */
    int64_t batch;               /* batch id */
    char *created;               /* "YYYY-MM-DDTHH:MM:SSZ" (UTC) */
    char *author;
    char *reason;
    /* vectors (filled by mk_kb_get / mk_kb_list only) */
    char *fingerprint;           /* editor fingerprint; NULL = needs vectors */
    int64_t R, T, D;             /* 0 when no vectors */
} mk_edit_request;

/* ---- parsing edit requests -------------------------------------------- */

/* mk_edit_requests_parse flags. */
enum {
    MK_REQ_EXPORT = 1 /* also read id, status, superseded_by, batch, created,
                         author, reason (the mk_kb_export format); ids are
                         then required, > 0 and unique within the file */
};

/* Read edit requests from a JSON array of objects or JSON lines (one object
 * per line; blank lines skipped). Accepted fields: prompt, target_new,
 * subject | subject_name, ground_truth, rephrase_prompt, locality_prompt,
 * locality_ground_truth, source; MedCF's locality_{target,mapping,struc,
 * tokenSem}_prompt/_ground_truth (the first present is taken); other fields
 * are ignored. Errors name the file, the line (JSON lines) or array index,
 * and the field: malformed JSON, missing/empty/over-long prompt or
 * target_new, a field of the wrong type. On error nothing is returned. */
int mk_edit_requests_parse(const char *buf, size_t len, const char *name, int flags,
                           mk_edit_request **reqs, int64_t *n);
int mk_edit_requests_parse_file(const char *path, mk_edit_request **reqs, int64_t *n);
int mk_edit_requests_parse_file_ex(const char *path, int flags, mk_edit_request **reqs,
                                   int64_t *n);
void mk_edit_request_clear(mk_edit_request *r); /* frees the strings */
void mk_edit_requests_free(mk_edit_request *reqs, int64_t n);


/* ---- open / close ------------------------------------------------------ */

/* Open (or with MK_KB_CREATE create) the knowledge base at path. Refuses a
 * file that is not a SQLite database, a SQLite database that is not a
 * medrek knowledge base (application_id), a newer schema version, or a
 * truncated file, with a message saying so. */
int mk_kb_open(const char *path, int flags, mk_kb **kb);
void mk_kb_close(mk_kb *kb);
const char *mk_kb_path(const mk_kb *kb);
/* PRAGMA integrity_check: MK_OK when "ok", else MK_ERR_DB with the first problem. */
int mk_kb_integrity_check(mk_kb *kb);

/* ---- writing ----------------------------------------------------------- */

/* Vectors for n edits, computed by one editor. */
typedef struct {
    const char *fingerprint; /* editor fingerprint (hex), non-empty */
    int64_t R, T, D;
    const float *keys;       /* (n, R) */
    const float *prompts;    /* (n, T, D) */
} mk_kb_vectors;

/* An incoming edit whose key is nearly identical to an active edit's key
 * while its target_new differs (see mk_kb_find_conflicts). */
typedef struct {
    int64_t incoming;    /* index into the incoming requests */
    int64_t existing_id; /* id of the active edit */
    float similarity;    /* cosine similarity of the two keys */
} mk_kb_conflict;

typedef struct {
    const char *author;          /* required, non-empty */
    const char *reason;          /* optional */
    const mk_kb_vectors *vec;    /* NULL: store the text only; the edits then
                                    need vectors (mk_kb_set_vectors) before
                                    mk_kb_load_active accepts them */
    /* Mark these active edits superseded by the incoming edit at
     * supersede[i].incoming, in the same transaction (history kept). Fails
     * with MK_ERR_CONFLICT, writing nothing, if one is no longer active. */
    const mk_kb_conflict *supersede;
    int64_t n_supersede;
    int keep_ids;                /* import: use reqs[i].id, .status,
                                    .superseded_by, .created, .author, .reason
                                    (refused before writing when an id exists) */
    const char *action;          /* history action: NULL = "edit" ("import" for imports) */
} mk_kb_insert_args;

/* Insert n >= 1 edits as one new batch in ONE transaction (all or none).
 * ids (n) receives the new edit ids in request order (may be NULL). */
int mk_kb_insert(mk_kb *kb, const mk_edit_request *reqs, int64_t n,
                 const mk_kb_insert_args *args, int64_t *batch_id, int64_t *ids);

/* Revert one active edit / every active edit of a batch (*n_reverted may be
 * NULL). Reverting an edit that is not active is MK_ERR_ARG. */
int mk_kb_revert(mk_kb *kb, int64_t id, const char *author, const char *reason);
int mk_kb_revert_batch(mk_kb *kb, int64_t batch, const char *author, const char *reason,
                       int64_t *n_reverted);
/* Mark active edit old_id superseded by edit new_id. */
int mk_kb_supersede(mk_kb *kb, int64_t old_id, int64_t new_id, const char *author,
                    const char *reason);
/* Replace the vectors and fingerprint of edits ids[0..n) in one transaction
 * (history action "reencode"). vec->keys (n, R), vec->prompts (n, T, D). */
int mk_kb_set_vectors(mk_kb *kb, const int64_t *ids, int64_t n, const mk_kb_vectors *vec,
                      const char *author, const char *reason);

/* ---- reading ----------------------------------------------------------- */

/* The active edits' vectors for one editor, contiguous (one allocation per
 * array). `lead` extra rows are reserved (zeroed) at the front of keys,
 * prompts and ids, so the retrieval's prototype row 0 needs no copy: call
 * with lead = 1 and write the prototype key into keys[0..R). */
typedef struct {
    int64_t n;           /* active edits loaded (rows lead .. lead+n-1) */
    int64_t lead;        /* reserved leading rows */
    int64_t R, T, D;     /* 0 when n == 0 and nothing told the shape */
    int64_t *ids;        /* (lead + n), ids[0..lead) = 0 */
    float *keys;         /* (lead + n, R) */
    float *prompts;      /* (lead + n, T, D) */
} mk_kb_active;

/* Load every ACTIVE edit computed by editor `fingerprint` (ordered by id).
 * If an active edit has no vectors or another fingerprint, fails with
 * MK_ERR_MISMATCH and a message saying how many and how to re-encode.
 * R, T, D (> 0 each, or 0 = take from the stored edits) must match the
 * stored vectors. On success the caller frees with mk_kb_active_free. */
int mk_kb_load_active(mk_kb *kb, const char *fingerprint, int64_t R, int64_t T, int64_t D,
                      int64_t lead, mk_kb_active *out);
void mk_kb_active_free(mk_kb_active *a);
/* The same with the keys only (prompts = NULL): what the question path
 * needs, a T*D/R-th of the memory; the retrieved edits' prompts then come
 * from mk_kb_get_prompts. */
int mk_kb_load_active_keys(mk_kb *kb, const char *fingerprint, int64_t R, int64_t T, int64_t D,
                           int64_t lead, mk_kb_active *out);
/* Edit id's prompt vectors (T, D) into out; MK_ERR_MISMATCH unless they
 * were computed by editor `fingerprint`. */
int mk_kb_get_prompts(mk_kb *kb, int64_t id, const char *fingerprint, int64_t T, int64_t D,
                      float *out);

/* Active edits that need (re-)encoding for `fingerprint`: no vectors, or
 * another fingerprint. Text fields filled (free with mk_edit_requests_free). */
int mk_kb_list_stale(mk_kb *kb, const char *fingerprint, mk_edit_request **edits,
                     int64_t *n);

/* Conflicts between incoming edits (keys (n, R), reqs for target_new) and
 * the active edits in `act` (rows from act->lead): pairs whose key cosine
 * similarity >= threshold (<= 0 means the default 0.98) and whose
 * target_new differs (byte comparison after trimming spaces). Pairs come
 * sorted by incoming index, then by decreasing similarity; *out is malloc'd
 * (NULL when none). */
#define MK_KB_CONFLICT_THRESHOLD 0.98f
int mk_kb_find_conflicts(mk_kb *kb, const mk_kb_active *act, const mk_edit_request *reqs,
                         const float *keys, int64_t n, float threshold,
                         mk_kb_conflict **out, int64_t *n_out);

/* Conflicts inside one incoming batch: pairs i < j of requests whose keys
 * (n, R) have cosine >= threshold (<= 0: default) and whose target_new
 * differ. Reported as {incoming = j, existing_id = i (an INDEX into the
 * batch, not an edit id), similarity}; sorted by j then i. Not for
 * mk_kb_insert_args.supersede. *out malloc'd (NULL when none). */
int mk_edit_requests_self_conflicts(const mk_edit_request *reqs, const float *keys, int64_t n,
                                    int64_t R, float threshold, mk_kb_conflict **out,
                                    int64_t *n_out);

/* One edit with all its fields (free with mk_edit_request_clear). */
int mk_kb_get(mk_kb *kb, int64_t id, mk_edit_request *out);
/* Edits with status `status` (MK_EDIT_ANY for all), by id ascending, at most
 * `limit` (<= 0: no limit); free with mk_edit_requests_free. */
int mk_kb_list(mk_kb *kb, int status, int64_t limit, mk_edit_request **out, int64_t *n);

/* One row of the append-only history. */
typedef struct {
    int64_t seq;      /* increasing */
    char *time;       /* UTC ISO-8601 */
    char *action;     /* "edit", "import", "revert", "supersede", "reencode" */
    int64_t edit_id;  /* 0 = none */
    int64_t batch_id; /* 0 = none */
    char *author;
    char *reason;     /* may be NULL */
    char *detail;     /* may be NULL, e.g. "superseded by 12" */
} mk_kb_event;
/* History in order (oldest first); edit_id > 0 restricts to that edit;
 * limit > 0 keeps the LAST `limit` events. Free with mk_kb_events_free. */
int mk_kb_history(mk_kb *kb, int64_t edit_id, int64_t limit, mk_kb_event **out, int64_t *n);
void mk_kb_events_free(mk_kb_event *ev, int64_t n);

typedef struct {
    char *fingerprint;   /* NULL entry = edits that need vectors */
    int64_t R, T, D;
    int64_t n_edits;     /* all statuses */
    int64_t n_active;
} mk_kb_fpstat;

typedef struct {
    int64_t n_active, n_reverted, n_superseded;
    int64_t n_batches, n_history;
    int64_t vector_bytes; /* bytes of key + prompt BLOBs */
    int64_t file_bytes;   /* database file (+ WAL) size */
    int schema_version;
    int n_fp;
    mk_kb_fpstat *fp;     /* (n_fp) */
} mk_kb_stats;
int mk_kb_get_stats(mk_kb *kb, mk_kb_stats *out);
void mk_kb_stats_free(mk_kb_stats *s);

/* ---- export / import --------------------------------------------------- */

/* Write every edit (all statuses), one JSON object per line: id, status,
 * prompt, target_new, the optional fields present, superseded_by (when
 * set), batch, created, author, reason. Vectors are not exported. */
int mk_kb_export(mk_kb *kb, FILE *out, const char *out_name);
/* Import such a file as ONE new batch in one transaction, keeping ids,
 * status, created, author and reason of every line; the batch and the
 * history record the importing author/reason. Ids duplicated in the file or
 * already in the knowledge base are refused before anything is written.
 * Imported edits carry no vectors: they need encoding
 * (mk_kb_list_stale + mk_kb_set_vectors, i.e. `medrek kb reencode`). */
int mk_kb_import(mk_kb *kb, const char *path, const char *author, const char *reason,
                 int64_t *batch_id, int64_t *n);

#endif
