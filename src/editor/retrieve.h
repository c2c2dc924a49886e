/* retrieve.h - retrieval over the in-memory knowledge base (spec section 5).
 *
 * The in-memory knowledge base is row 0 = the prototype key, rows 1..N =
 * the active edits' keys, with each edit's T prompt vectors (D each).
 * For a query q (R): sims_j = q . key_j / sqrt(R) for every row j
 * (prototype included); the top_k rows by sim are taken, and a row is kept
 * only if sim > min_sim and sim > sim(prototype). The prototype row itself
 * is never kept. Ties rank the lower row first.
 */
#ifndef MK_RETRIEVE_H
#define MK_RETRIEVE_H

#include <stdint.h>

/* A view (nothing owned). mk_kb_active with lead = 1 fits it directly. */
typedef struct {
    int64_t n_rows;       /* N + 1 (>= 1) */
    int64_t R, T, D;
    const float *keys;    /* (N+1, R), row 0 = prototype key */
    const float *prompts; /* (N+1, T, D), row 0 unused; may be NULL when
                             only decisions are wanted */
    const int64_t *ids;   /* (N+1) edit ids, ids[0] unused; may be NULL */
} mk_retr_kb;

typedef struct {
    int top_k;            /* rows taken per query (>= 1); default 1 */
    float min_sim;        /* default -999 */
    int64_t chunk_rows;   /* rows scored per GEMM; <= 0: automatic (bounds
                             the B x chunk similarity buffer to ~16 MB) */
} mk_retr_opts;
#define MK_RETR_OPTS_DEFAULT {1, -999.0f, 0}

/* Results for B queries (arrays owned, free with mk_retr_result_free). */
typedef struct {
    int64_t B;
    int top_k;
    int *n_kept;          /* (B) kept rows per query, 0..top_k */
    int64_t *rows;        /* (B, top_k) kept row indices (>= 1) in rank
                             order; -1 past n_kept */
    int64_t *ids;         /* (B, top_k) their edit ids (kb.ids), 0 when
                             kb.ids is NULL or past n_kept */
    float *sims;          /* (B, top_k) their similarities; -INF past n_kept */
    float *proto_sim;     /* (B) s(q, prototype) */
    float *best_sim;      /* (B) best edit row's sim (kept or not, min_sim
                             ignored); -INF when N = 0 */
    float *margin;        /* (B) best kept sim - prototype sim; when nothing
                             is kept: best_sim - proto_sim (<= 0 unless
                             min_sim blocked it; -INF when N = 0) */
} mk_retr_result;

/* Score the queries q (B, R) against kb; one GEMM (cblas_sgemm) per chunk
 * of rows, so memory stays bounded for any N. */
int mk_retrieve(const mk_retr_kb *kb, const float *q, int64_t B, const mk_retr_opts *opts,
                mk_retr_result *out);
void mk_retr_result_free(mk_retr_result *r);

/* Copy query b's kept rows' prompt vectors, in rank order, into
 * prefix (n_kept*T, D) (capacity max_vecs vectors of D floats); *n_vecs =
 * n_kept * T (0: run unedited). Needs kb->prompts. */
int mk_retr_gather(const mk_retr_kb *kb, const mk_retr_result *res, int64_t b, float *prefix,
                   int64_t max_vecs, int64_t *n_vecs);

#endif
