/* run.h - evaluation of an editor on a benchmark (spec section 8).
 *
 * Modes:
 *   single       items in dataset order; each is edited alone, measured,
 *                and the knowledge base restored.
 *   batch N      the items are shuffled (Fisher-Yates with mk_rng seeded
 *                by `seed`: for i = n-1 .. 1, j = mk_rng_next % (i + 1),
 *                swap) and cut into consecutive chunks of N (the last may
 *                be shorter); a chunk is edited at once (one batched
 *                encoding), its items measured, the knowledge base restored.
 *   sequential N items in dataset order, in segments of N (N = 0: one
 *                segment of every item); the items of a segment are edited
 *                one after another (one encoding per edit, appended), then
 *                all of them are measured, then the knowledge base is
 *                restored.
 * An explicit order (opts.order) replaces the dataset order / shuffle.
 *
 * "Restore" = the in-memory knowledge base back to the prototype row only.
 * Nothing is written to disk: keys and prompts come straight from the
 * editor (mk_editor_keys / _values / _prompts) into in-memory arrays.
 *
 * Measures per item (spec 8), with retrieval (spec 5) queried with the
 * probe's prompt only, and the kept rows' prompt vectors prepended:
 *   efficacy    fraction of target tokens of (prompt, target_new) whose
 *               argmax is the label;
 *   generality  the same for each rephrase probe; the item's score is the
 *               mean over its probes;
 *   locality    fraction of the locality answer's token positions where
 *               the argmax equals the UNEDITED model's argmax there
 *               (recorded for every item before any edit); mean over the
 *               item's probes. A probe that retrieves nothing runs exactly
 *               the unedited computation, so its agreement is 1 without a
 *               second forward.
 *   fluency     (optional) n-gram entropy score (metrics.h) of the prompt
 *               and `fluency_tokens` new tokens sampled with top-k
 *               `fluency_top_k`, temperature 1, from the edit prompt WITH
 *               retrieval (our choice, spec 10), stopping early at the
 *               tokenizer's EOS; the RNG of item i (dataset index) is
 *               seeded with seed + 1 + i, so a score does not depend on the
 *               mode or the order.
 * Means over items, x100 (fluency too, as entropy x100, as ROME reports
 * it); Avg = ((Efficacy + Generality)/2 + Locality)/2.
 */
#ifndef MK_EVAL_RUN_H
#define MK_EVAL_RUN_H

#include <stdint.h>

#include "../editor/editor.h"
#include "../editor/retrieve.h"
#include "../model/llama.h"
#include "datasets.h"

typedef enum { MK_EVAL_SINGLE = 0, MK_EVAL_BATCH = 1, MK_EVAL_SEQUENTIAL = 2 } mk_eval_mode;
const char *mk_eval_mode_name(mk_eval_mode m);
int mk_eval_mode_parse(const char *s); /* -1 when unknown */

typedef struct {
    mk_eval_mode mode;
    int64_t n;             /* batch size / segment length (single: ignored) */
    uint64_t seed;         /* shuffle (batch) and fluency sampling */
    const int64_t *order;  /* (set->n) a permutation of 0..n-1, or NULL */
    int fluency;           /* measure fluency (sampling is the slow part) */
    int fluency_tokens;    /* new tokens sampled (100) */
    int fluency_top_k;     /* 5 */
    mk_retr_opts retr;     /* top_k 1, min_sim -999 */
    int fwd_batch;         /* sequences per LLM forward (16) */
    /* Called after each measured item (may be NULL). */
    void (*progress)(void *ud, int64_t done, int64_t total);
    void *ud;
} mk_eval_opts;

/* single mode, n 1, seed 1, fluency on (100 tokens, top-k 5), top-1
 * retrieval with min_sim -999, 16 sequences per forward. */
void mk_eval_opts_default(mk_eval_opts *o);

/* Scores of one item. Counts are exact: a score is hits / n. */
typedef struct {
    int64_t chunk;           /* chunk / segment it was edited in */
    int eff_hits, eff_n;
    int n_gen, n_loc;
    int gen_hits[MK_EVAL_MAX_PROBES], gen_n[MK_EVAL_MAX_PROBES];
    int loc_hits[MK_EVAL_MAX_PROBES], loc_n[MK_EVAL_MAX_PROBES];
    double eff, gen, loc;    /* fractions in [0, 1] */
    double flu, h2, h3;      /* fluency score and its entropies (bits); NAN when off */
    /* retrieval (top-1 kept row) as the dataset index of the edit, -1 = none */
    int64_t eff_ret, gen_ret[MK_EVAL_MAX_PROBES], loc_ret[MK_EVAL_MAX_PROBES];
} mk_eval_score;

typedef struct {
    int64_t n;
    mk_eval_score *items;    /* (n) in dataset order */
    int64_t *order;          /* (n) the evaluation order used */
    int64_t n_chunks;
    double eff, gen, loc, flu, avg;  /* means x100 (flu NAN when off) */
    /* locality mean x100 per probe kind (MedCF: target, mapping, ...) */
    int n_loc_kinds;
    const char *loc_kind[8];
    double loc_by_kind[8];
    /* retrieval rates x100: prompt -> own edit, rephrase -> own edit,
     * locality prompt -> nothing */
    double ret_eff, ret_gen, ret_loc_none;
    double seconds;          /* wall time of mk_eval_run */
} mk_eval_result;

/* Evaluate the editor on set. The editor must fit the LLM (width); the LLM
 * needs its tokenizer. Errors name the item and probe. */
int mk_eval_run(const mk_llama *llm, const mk_editor *ed, const mk_eval_set *set,
                const mk_eval_opts *opts, mk_eval_result *res);
void mk_eval_result_free(mk_eval_result *r);

/* The batch-mode order for n items and a seed (out (n)). */
void mk_eval_shuffle(int64_t n, uint64_t seed, int64_t *out);

/* Report: JSON text (settings, means, per-item scores), malloc'd. */
typedef struct {
    const char *model, *editor, *data;
    const mk_eval_opts *opts;
    const mk_eval_set *set;
} mk_eval_report_info;
int mk_eval_report_json(const mk_eval_report_info *info, const mk_eval_result *res, char **json);

#endif
