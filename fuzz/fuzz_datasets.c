/* fuzz_datasets.c - libFuzzer target for the benchmark-file parser
 * (`medrek eval --data`): the first byte picks the schema (auto, MedVersa,
 * MedCF, MedFE, ZsRE, CounterFact), the rest is the file. What parses must
 * hold the invariants the metrics rely on: every item has a prompt and a
 * target, and 1..MK_EVAL_MAX_PROBES probes of each kind, all non-NULL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/datasets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    mk_ds_format fmt = (mk_ds_format)(data[0] % 6);
    mk_eval_set s;
    memset(&s, 0, sizeof s);
    int rc = mk_eval_set_parse((const char *)data + 1, size - 1, "fuzz", fmt, data[0] >> 4, &s);
    if (rc != MK_OK) {
        if (!mk_errmsg()[0]) abort();
        return 0;
    }
    for (int64_t i = 0; i < s.n; i++) {
        const mk_eval_item *it = &s.items[i];
        if (!it->prompt || !it->target_new) abort();
        if (it->n_gen < 1 || it->n_gen > MK_EVAL_MAX_PROBES) abort();
        if (it->n_loc < 1 || it->n_loc > MK_EVAL_MAX_PROBES) abort();
        for (int k = 0; k < it->n_gen; k++)
            if (!it->gen[k].prompt || !it->gen[k].target) abort();
        for (int k = 0; k < it->n_loc; k++)
            if (!it->loc[k].prompt || !it->loc[k].target) abort();
    }
    mk_eval_set_free(&s);
    return 0;
}
