/* datasets.h - benchmark items for evaluation (spec sections 8 and 9).
 *
 * One item = the edit request (prompt, target_new), its generality probes
 * (rephrased prompt -> target_new) and its locality probes (an unrelated
 * prompt -> its own ground truth). The five schemas:
 *
 *   medversa     prompt, target_new, rephrase_prompt, locality_prompt,
 *                locality_ground_truth (+ ground_truth, subject_name, ...)
 *   medcf        prompt, target_new, rephrase_prompt and FOUR locality
 *                probes locality_{target,mapping,struc,tokenSem}_prompt /
 *                _ground_truth (each probe that is present is kept; at
 *                least one is required)
 *   medfe        prompt, target_new, rephrase_prompt,
 *                locality_{topic,tokenSem}_prompt / _ground_truth
 *                (ground_truth = target_new)
 *   zsre         src -> prompt, alt -> target_new, answers[0] ->
 *                ground_truth, rephrase, loc, loc_ans
 *   counterfact  prompt, target_new, rephrase_prompt, locality_prompt,
 *                locality_ground_truth
 *
 * A file is a JSON array of objects, or JSON lines (one object per line,
 * blank lines skipped). Every text a schema needs must be a non-empty
 * string of at most MK_EVAL_MAX_FIELD bytes; a problem is reported as
 * "<file>: item <index>: field \"<name>\": <what is wrong>" (index from 0,
 * in file order). Unknown fields are ignored.
 */
#ifndef MK_EVAL_DATASETS_H
#define MK_EVAL_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#define MK_EVAL_MAX_PROBES 4     /* probes of one kind per item */
#define MK_EVAL_MAX_FIELD 8192   /* bytes: longest accepted text field */

typedef enum {
    MK_DS_AUTO = 0,
    MK_DS_MEDVERSA,
    MK_DS_MEDCF,
    MK_DS_MEDFE,
    MK_DS_ZSRE,
    MK_DS_COUNTERFACT
} mk_ds_format;

const char *mk_ds_format_name(mk_ds_format f); /* "medversa", ... ("auto") */
int mk_ds_format_parse(const char *s);         /* -1 when unknown */

/* One probe: a prompt whose answer is scored token by token. */
typedef struct {
    char *prompt;
    char *target;     /* target_new (generality) or the ground truth (locality) */
    const char *kind; /* static: "rephrase", "locality", "target", "mapping",
                         "struc", "tokenSem", "topic" */
} mk_eval_probe;

typedef struct {
    char *prompt;        /* the edit request */
    char *target_new;
    char *ground_truth;  /* may be NULL */
    char *subject;       /* may be NULL */
    int n_gen, n_loc;    /* 1..MK_EVAL_MAX_PROBES each */
    mk_eval_probe gen[MK_EVAL_MAX_PROBES];
    mk_eval_probe loc[MK_EVAL_MAX_PROBES];
} mk_eval_item;

typedef struct {
    mk_ds_format format; /* the schema read (resolved when AUTO was asked) */
    int64_t n;
    mk_eval_item *items; /* (n) */
} mk_eval_set;

/* Guess the schema from the fields of one JSON object (cJSON *); AUTO when
 * nothing fits. Order: zsre (src + alt), medcf (a locality_{target,mapping,
 * struc}_prompt), medfe (locality_topic_prompt), medversa (locality_id,
 * topic_name or subject_name), counterfact (locality_prompt). */
mk_ds_format mk_ds_detect(const void *obj);

/* Parse len bytes; `name` labels messages. limit > 0 keeps only the first
 * `limit` items (the rest is still checked to be JSON, not read as items). */
int mk_eval_set_parse(const char *buf, size_t len, const char *name, mk_ds_format fmt,
                      int64_t limit, mk_eval_set *out);
int mk_eval_set_load(const char *path, mk_ds_format fmt, int64_t limit, mk_eval_set *out);
void mk_eval_set_free(mk_eval_set *s);

#endif
