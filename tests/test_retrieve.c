/* test_retrieve.c - retrieval (spec section 5) against the PyTorch
 * reference tools/ref_retrieve.py wrote: every decision (kept rows, in
 * order) must match exactly, similarities within 1e-4. Also checks that
 * chunking does not change anything, the prefix gather, and a larger
 * random case against a double-precision brute force. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "editor/retrieve.h"
#include "util/check.h"

static const unsigned char *rd;
static size_t rd_left;
static void take(void *dst, size_t n) {
    if (n > rd_left) {
        fprintf(stderr, "retrieve_ref.bin: truncated\n");
        exit(1);
    }
    memcpy(dst, rd, n);
    rd += n;
    rd_left -= n;
}
static int32_t take_i32(void) { int32_t v; take(&v, 4); return v; }
static float take_f32(void) { float v; take(&v, 4); return v; }

/* Compare two results exactly in their decisions. */
static int same_decisions(const mk_retr_result *a, const mk_retr_result *b) {
    if (a->B != b->B || a->top_k != b->top_k) return 0;
    for (int64_t i = 0; i < a->B; i++) {
        if (a->n_kept[i] != b->n_kept[i]) return 0;
        for (int j = 0; j < a->n_kept[i]; j++)
            if (a->rows[i * a->top_k + j] != b->rows[i * b->top_k + j]) return 0;
    }
    return 1;
}

static void reference_cases(void) {
    size_t len;
    unsigned char *buf = check_read_file("tests/data/kb/retrieve_ref.bin", &len);
    rd = buf;
    rd_left = len;
    char magic[4];
    take(magic, 4);
    CHECK(!memcmp(magic, "MKRT", 4));
    int N1 = take_i32(), R = take_i32(), B = take_i32(), n_cases = take_i32();
    CHECK(N1 > 50 && R > 0 && B >= 20 && n_cases > 0);
    float *keys = malloc((size_t)N1 * R * sizeof(float));
    float *q = malloc((size_t)B * R * sizeof(float));
    take(keys, (size_t)N1 * R * 4);
    take(q, (size_t)B * R * 4);
    int64_t *ids = malloc((size_t)N1 * sizeof *ids);
    for (int i = 0; i < N1; i++) ids[i] = i ? 1000 + i : 0;
    mk_retr_kb kb = {N1, R, 0, 0, keys, NULL, ids};
    int total_kept = 0, n_near_proto_none = 0;
    for (int c = 0; c < n_cases; c++) {
        int top_k = take_i32();
        float min_sim = take_f32();
        float *ref_sims = malloc((size_t)B * top_k * sizeof(float));
        float *got_sims = malloc((size_t)B * top_k * sizeof(float));
        float *ref_proto = malloc((size_t)B * sizeof(float));
        float *ref_margin = malloc((size_t)B * sizeof(float));
        int *ref_n = malloc((size_t)B * sizeof(int));
        int *ref_rows = malloc((size_t)B * top_k * sizeof(int));
        for (int b = 0; b < B; b++) {
            ref_proto[b] = take_f32();
            ref_margin[b] = take_f32();
            ref_n[b] = take_i32();
            for (int j = 0; j < top_k; j++) {
                ref_rows[b * top_k + j] = take_i32();
                ref_sims[b * top_k + j] = take_f32();
            }
        }
        mk_retr_opts o = {top_k, min_sim, 0};
        mk_retr_result res, res7;
        CHECK_OK(mk_retrieve(&kb, q, B, &o, &res));
        o.chunk_rows = 7; /* many chunks, one of them partial */
        CHECK_OK(mk_retrieve(&kb, q, B, &o, &res7));
        int bad = 0;
        for (int b = 0; b < B; b++) {
            if (res.n_kept[b] != ref_n[b]) {
                bad++;
                fprintf(stderr, "case top_k=%d min_sim=%g query %d: kept %d rows, reference %d\n",
                        top_k, min_sim, b, res.n_kept[b], ref_n[b]);
                continue;
            }
            total_kept += ref_n[b];
            if (ref_n[b] == 0) n_near_proto_none++;
            for (int j = 0; j < top_k; j++) {
                int64_t r = res.rows[b * top_k + j];
                if (r != ref_rows[b * top_k + j]) {
                    bad++;
                    fprintf(stderr, "case top_k=%d min_sim=%g query %d rank %d: row %lld, reference %d\n",
                            top_k, min_sim, b, j, (long long)r, ref_rows[b * top_k + j]);
                }
                if (j < ref_n[b]) CHECK(res.ids[b * top_k + j] == 1000 + r);
                got_sims[b * top_k + j] = j < ref_n[b] ? res.sims[b * top_k + j] : 0;
                if (j >= ref_n[b]) ref_sims[b * top_k + j] = 0;
            }
        }
        CHECK(bad == 0);
        CHECK(same_decisions(&res, &res7));
        /* One query at a time (the GEMV path) decides the same. */
        int single_bad = 0;
        for (int b = 0; b < B; b++) {
            mk_retr_result one;
            mk_retr_opts o1 = {top_k, min_sim, 0};
            CHECK_OK(mk_retrieve(&kb, q + (size_t)b * R, 1, &o1, &one));
            if (one.n_kept[0] != res.n_kept[b]) single_bad++;
            for (int j = 0; j < one.n_kept[0] && one.n_kept[0] == res.n_kept[b]; j++)
                if (one.rows[j] != res.rows[b * top_k + j] ||
                    fabsf(one.sims[j] - res.sims[b * top_k + j]) > 1e-4f)
                    single_bad++;
            if (fabsf(one.proto_sim[0] - res.proto_sim[b]) > 1e-4f) single_bad++;
            mk_retr_result_free(&one);
        }
        CHECK(single_bad == 0);
        char what[96];
        snprintf(what, sizeof what, "sims top_k=%d min_sim=%g", top_k, min_sim);
        check_close(what, got_sims, ref_sims, (size_t)B * top_k, 1e-4, 1e-5);
        snprintf(what, sizeof what, "proto_sim top_k=%d min_sim=%g", top_k, min_sim);
        check_close(what, res.proto_sim, ref_proto, (size_t)B, 1e-4, 1e-5);
        snprintf(what, sizeof what, "margin top_k=%d min_sim=%g", top_k, min_sim);
        check_close(what, res.margin, ref_margin, (size_t)B, 1e-4, 1e-5);
        for (size_t i = 0; i < (size_t)B * top_k; i++) /* -inf past n_kept */
            if (isinf(res.sims[i]) && isinf(res7.sims[i])) res.sims[i] = res7.sims[i] = 0;
        check_close("chunked sims", res7.sims, res.sims, (size_t)B * top_k, 1e-5, 1e-6);
        mk_retr_result_free(&res);
        mk_retr_result_free(&res7);
        free(ref_sims); free(got_sims); free(ref_proto); free(ref_margin); free(ref_n); free(ref_rows);
    }
    CHECK(rd_left == 0);
    /* The reference exercises both outcomes. */
    CHECK(total_kept > 0 && n_near_proto_none > 0);
    printf("reference: %d cases, %d kept rows, %d queries with none kept\n", n_cases, total_kept,
           n_near_proto_none);

    /* Gather: prompts (N1, T, D) filled with a pattern naming row, t, d. */
    const int T = 2, D = 3;
    float *prompts = malloc((size_t)N1 * T * D * sizeof(float));
    for (int r = 0; r < N1; r++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) prompts[((size_t)r * T + t) * D + d] = r * 100 + t * 10 + d;
    kb.T = T;
    kb.D = D;
    kb.prompts = prompts;
    mk_retr_opts o3 = {3, -999.0f, 0};
    mk_retr_result res;
    CHECK_OK(mk_retrieve(&kb, q, B, &o3, &res));
    float prefix[3 * 2 * 3];
    int gathered_ok = 1;
    for (int b = 0; b < B; b++) {
        int64_t nv = -1;
        CHECK_OK(mk_retr_gather(&kb, &res, b, prefix, 3 * T, &nv));
        if (nv != (int64_t)res.n_kept[b] * T) gathered_ok = 0;
        for (int i = 0; i < res.n_kept[b]; i++)
            for (int t = 0; t < T; t++)
                for (int d = 0; d < D; d++)
                    if (prefix[((size_t)i * T + t) * D + d] != res.rows[b * 3 + i] * 100 + t * 10 + d)
                        gathered_ok = 0;
        if (res.n_kept[b] >= 2) {
            int64_t nv2;
            CHECK(mk_retr_gather(&kb, &res, b, prefix, T, &nv2) == MK_ERR_RANGE);
        }
    }
    CHECK(gathered_ok);
    mk_retr_result_free(&res);
    free(prompts);
    free(keys);
    free(q);
    free(ids);
    free(buf);
}

/* A larger random case against double precision, and chunk sizes. */
static void random_case(void) {
    const int64_t N1 = 5001, R = 96, B = 64;
    float *keys = malloc((size_t)N1 * R * sizeof(float));
    float *q = malloc((size_t)B * R * sizeof(float));
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)N1 * R; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        keys[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < R; r++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            float noise = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
            q[b * R + r] = keys[(size_t)((b * 79) % N1) * R + r] + 0.3f * noise;
        }
    mk_retr_kb kb = {N1, R, 0, 0, keys, NULL, NULL};
    mk_retr_opts o = {4, -999.0f, 0};
    mk_retr_result full, chunked;
    CHECK_OK(mk_retrieve(&kb, q, B, &o, &full));
    o.chunk_rows = 333;
    CHECK_OK(mk_retrieve(&kb, q, B, &o, &chunked));
    CHECK(same_decisions(&full, &chunked));
    /* Brute force in double: the top row of every query whose best sim is
     * clearly above the runner-up and the prototype. */
    int checked = 0, bad = 0;
    for (int64_t b = 0; b < B; b++) {
        double best = -1e30, second = -1e30, proto = 0;
        int64_t arg = -1;
        for (int64_t j = 0; j < N1; j++) {
            double d = 0;
            for (int64_t r = 0; r < R; r++) d += (double)q[b * R + r] * keys[j * R + r];
            d /= sqrt((double)R);
            if (j == 0) { proto = d; continue; }
            if (d > best) { second = best; best = d; arg = j; }
            else if (d > second) second = d;
        }
        if (best - second < 1e-3 || fabs(best - proto) < 1e-3) continue;
        checked++;
        int want = best > proto;
        if (want != (full.n_kept[b] > 0) || (want && full.rows[b * 4] != arg)) bad++;
        if (want && fabs(full.sims[b * 4] - best) > 1e-4) bad++;
        if (fabs(full.best_sim[b] - best) > 1e-4) bad++;
    }
    CHECK(bad == 0);
    CHECK(checked > B / 2);
    printf("random: %d of %lld queries checked against double precision, %d bad\n", checked,
           (long long)B, bad);
    mk_retr_result_free(&full);
    mk_retr_result_free(&chunked);

    /* Prototype only (N = 0): nothing kept, margin -inf. */
    mk_retr_kb k0 = {1, R, 0, 0, keys, NULL, NULL};
    mk_retr_result r0;
    CHECK_OK(mk_retrieve(&k0, q, 3, NULL, &r0));
    CHECK(r0.n_kept[0] == 0 && r0.n_kept[2] == 0 && isinf(r0.margin[1]) && r0.margin[1] < 0);
    mk_retr_result_free(&r0);
    /* Bad arguments. */
    mk_retr_opts bad_k = {0, -999.0f, 0};
    CHECK(mk_retrieve(&kb, q, B, &bad_k, &r0) == MK_ERR_ARG);
    free(keys);
    free(q);
}

int main(void) {
    reference_cases();
    random_case();
    return check_summary("test_retrieve");
}
