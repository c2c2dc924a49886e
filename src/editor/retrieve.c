/* retrieve.c - top-k retrieval over the in-memory knowledge base (spec 5).
 *
 * Similarities come from one sgemm per chunk of rows (sgemv for a single
 * query): S (B, c) = q (B, R) @ keys[r0:r0+c]^T, then divided by sqrt(R) as
 * the reference does. Each query
 * keeps a sorted list of its top_k edit rows with sim > min_sim; since the
 * rows that fail "sim > prototype" sit at the bottom of the ranking, taking
 * top_k of the edit rows and then cutting at the prototype's sim keeps
 * exactly the rows the spec keeps from the top_k of all N+1 rows.
 */
#include "retrieve.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"

#define AUTO_CHUNK_BYTES ((size_t)16 << 20)

void mk_retr_result_free(mk_retr_result *r) {
    if (!r) return;
    free(r->n_kept);
    free(r->rows);
    free(r->ids);
    free(r->sims);
    free(r->proto_sim);
    free(r->best_sim);
    free(r->margin);
    memset(r, 0, sizeof *r);
}

/* Insert (s, row) into the descending list (sims, rows) of length *n, at
 * most k long. Rows arrive in increasing order, so an equal sim goes after
 * the ones already there (ties rank the lower row first). */
static void topk_push(float *sims, int64_t *rows, int *n, int k, float s, int64_t row) {
    if (*n == k && !(s > sims[k - 1])) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && s > sims[i - 1]) {
        sims[i] = sims[i - 1];
        rows[i] = rows[i - 1];
        i--;
    }
    sims[i] = s;
    rows[i] = row;
}

int mk_retrieve(const mk_retr_kb *kb, const float *q, int64_t B, const mk_retr_opts *opts,
                mk_retr_result *out) {
    memset(out, 0, sizeof *out);
    mk_retr_opts o = MK_RETR_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (!kb || !kb->keys || kb->n_rows < 1 || kb->R < 1 || kb->R > INT32_MAX)
        return mk_fail(MK_ERR_ARG, "retrieve: knowledge base needs at least the prototype row and R >= 1");
    if (B < 0 || (B > 0 && !q) || B > INT32_MAX)
        return mk_fail(MK_ERR_ARG, "retrieve: bad query batch (B = %lld)", (long long)B);
    if (o.top_k < 1 || o.top_k > 4096)
        return mk_fail(MK_ERR_ARG, "retrieve: top_k must be in 1..4096 (got %d)", o.top_k);
    const int64_t R = kb->R, N1 = kb->n_rows;
    const int k = o.top_k;
    size_t Bk;
    if (__builtin_mul_overflow((size_t)B, (size_t)k, &Bk))
        return mk_fail(MK_ERR_NOMEM, "retrieve: result size overflows");
    int64_t chunk = o.chunk_rows;
    if (chunk <= 0) {
        size_t per_row = (size_t)(B > 0 ? B : 1) * sizeof(float);
        chunk = (int64_t)(AUTO_CHUNK_BYTES / per_row);
        if (chunk < 64) chunk = 64;
    }
    if (chunk > N1) chunk = N1;
    if (chunk > INT32_MAX) chunk = INT32_MAX;
    float *S = NULL; /* (B, chunk) */
    int rc = MK_OK;

    out->B = B;
    out->top_k = k;
    out->n_kept = calloc((size_t)B + 1, sizeof *out->n_kept);
    out->rows = malloc((Bk + 1) * sizeof *out->rows);
    out->ids = calloc(Bk + 1, sizeof *out->ids);
    out->sims = malloc((Bk + 1) * sizeof *out->sims);
    out->proto_sim = calloc((size_t)B + 1, sizeof *out->proto_sim);
    out->best_sim = malloc(((size_t)B + 1) * sizeof *out->best_sim);
    out->margin = malloc(((size_t)B + 1) * sizeof *out->margin);
    if (!out->n_kept || !out->rows || !out->ids || !out->sims || !out->proto_sim ||
        !out->best_sim || !out->margin) {
        rc = mk_fail(MK_ERR_NOMEM, "retrieve: out of memory for %lld queries", (long long)B);
        goto fail;
    }
    for (size_t i = 0; i < Bk; i++) {
        out->rows[i] = -1;
        out->sims[i] = -INFINITY;
    }
    for (int64_t b = 0; b < B; b++) out->best_sim[b] = -INFINITY;
    if (B == 0) return MK_OK;

    size_t sbytes;
    if (__builtin_mul_overflow((size_t)B * sizeof(float), (size_t)chunk, &sbytes) ||
        !(S = malloc(sbytes))) {
        rc = mk_fail(MK_ERR_NOMEM, "retrieve: out of memory for a %lld x %lld similarity block",
                     (long long)B, (long long)chunk);
        goto fail;
    }
    const float scale = sqrtf((float)R);
    for (int64_t r0 = 0; r0 < N1; r0 += chunk) {
        int64_t c = N1 - r0 < chunk ? N1 - r0 : chunk;
        /* S (B, c) = q (B, R) @ keys[r0 : r0+c] (c, R)^T. One query is the
         * same product as a GEMV, which OpenBLAS runs ~3x faster than a
         * 1-row GEMM (no packing of the keys): memory-bound as it should be. */
        const float *kc = kb->keys + (size_t)r0 * (size_t)R;
        if (B == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)c, (int)R, 1.0f, kc, (int)R, q, 1, 0.0f, S, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)c, (int)R, 1.0f, q,
                        (int)R, kc, (int)R, 0.0f, S, (int)c);
#pragma omp parallel for schedule(static) if (B > 1 && c * B > 65536)
        for (int64_t b = 0; b < B; b++) {
            float *srow = S + (size_t)b * (size_t)c;
            float *ts = out->sims + (size_t)b * (size_t)k;
            int64_t *tr = out->rows + (size_t)b * (size_t)k;
            int n = out->n_kept[b];
            float best = out->best_sim[b];
            int64_t j0 = 0;
            if (r0 == 0) {
                out->proto_sim[b] = srow[0] / scale;
                j0 = 1;
            }
            for (int64_t j = j0; j < c; j++) {
                float s = srow[j] / scale;
                if (s > best) best = s;
                if (s > o.min_sim) topk_push(ts, tr, &n, k, s, r0 + j);
            }
            out->n_kept[b] = n;
            out->best_sim[b] = best;
        }
    }
    for (int64_t b = 0; b < B; b++) {
        float *ts = out->sims + (size_t)b * (size_t)k;
        int64_t *tr = out->rows + (size_t)b * (size_t)k;
        float p = out->proto_sim[b];
        int n = 0;
        while (n < out->n_kept[b] && ts[n] > p) n++;
        for (int i = n; i < k; i++) {
            ts[i] = -INFINITY;
            tr[i] = -1;
        }
        out->n_kept[b] = n;
        for (int i = 0; i < n; i++)
            out->ids[(size_t)b * (size_t)k + (size_t)i] = kb->ids ? kb->ids[tr[i]] : 0;
        out->margin[b] = n > 0 ? ts[0] - p : out->best_sim[b] - p;
    }
    free(S);
    return MK_OK;
fail:
    free(S);
    mk_retr_result_free(out);
    return rc;
}

int mk_retr_gather(const mk_retr_kb *kb, const mk_retr_result *res, int64_t b, float *prefix,
                   int64_t max_vecs, int64_t *n_vecs) {
    *n_vecs = 0;
    if (!kb || !res || b < 0 || b >= res->B)
        return mk_fail(MK_ERR_ARG, "retrieve: query %lld out of range", (long long)b);
    int n = res->n_kept[b];
    if (n == 0) return MK_OK;
    if (!kb->prompts || kb->T < 1 || kb->D < 1)
        return mk_fail(MK_ERR_ARG, "retrieve: the knowledge base has no prompt vectors loaded");
    const int64_t T = kb->T, D = kb->D;
    if ((int64_t)n * T > max_vecs)
        return mk_fail(MK_ERR_RANGE, "retrieve: prefix buffer holds %lld vectors, %lld needed",
                       (long long)max_vecs, (long long)n * T);
    size_t row = (size_t)T * (size_t)D;
    for (int i = 0; i < n; i++) {
        int64_t r = res->rows[(size_t)b * (size_t)res->top_k + (size_t)i];
        if (r < 1 || r >= kb->n_rows)
            return mk_fail(MK_ERR_RANGE, "retrieve: kept row %lld out of range", (long long)r);
        memcpy(prefix + (size_t)i * row, kb->prompts + (size_t)r * row, row * sizeof(float));
    }
    *n_vecs = (int64_t)n * T;
    return MK_OK;
}
