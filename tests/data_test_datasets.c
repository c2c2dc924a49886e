/* data_test_datasets.c - the benchmark files in ../shared/datasets (path in
 * $MEDREK_DATASETS): every split parses as edit requests with the counts
 * the MedREK paper gives, every item carries its generality and locality
 * probes, and every text field round-trips through the GPT-2 byte-level
 * tokenizer (RoBERTa's) and the SentencePiece-style fixture tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/kb.h"
#include "text/tokenizer.h"
#include "util/check.h"

static const struct {
    const char *set, *split;
    int64_t n;
} splits[] = {
    {"medversa", "train", 3000}, {"medversa", "valid", 2000}, {"medversa", "test", 1000},
    {"medcf", "train", 2408},    {"medcf", "valid", 818},     {"medcf", "test", 802},
};

static long roundtrip_fail = 0, roundtrip_n = 0;

static void roundtrip(const mk_tokenizer *t, const char *s) {
    if (!s) return;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    char *back = NULL;
    roundtrip_n++;
    if (mk_tok_encode(t, s, strlen(s), 0, &ids, &n) != MK_OK ||
        mk_tok_decode(t, ids, n, 1, &back, &len) != MK_OK || len != strlen(s) ||
        memcmp(back, s, len) != 0) {
        if (roundtrip_fail++ < 5) fprintf(stderr, "round trip failed (%s): \"%s\"\n", mk_tok_kind(t), s);
    }
    free(ids);
    free(back);
}

int main(void) {
    const char *dir = getenv("MEDREK_DATASETS");
    if (!dir) {
        fprintf(stderr, "set MEDREK_DATASETS to the datasets folder (../shared/datasets)\n");
        return 1;
    }
    mk_tokenizer *gpt2 = NULL, *spm = NULL;
    CHECK_OK(mk_tok_load_vocab_merges("tests/data/tok/gpt2/vocab.json", "tests/data/tok/gpt2/merges.txt", &gpt2));
    CHECK_OK(mk_tok_load("tests/data/tok/spm", &spm));
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/%s.json", dir, splits[k].set, splits[k].split);
        mk_edit_request *r = NULL;
        int64_t n = 0;
        int rc = mk_edit_requests_parse_file(path, &r, &n);
        CHECK_OK(rc);
        if (rc) continue;
        CHECK(n == splits[k].n);
        int64_t missing = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!r[i].prompt || !r[i].target_new || !r[i].rephrase_prompt || !r[i].locality_prompt ||
                !r[i].locality_ground_truth || !r[i].ground_truth)
                missing++;
            const char *fields[] = {r[i].prompt, r[i].target_new, r[i].rephrase_prompt,
                                    r[i].locality_prompt, r[i].locality_ground_truth};
            for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
                if (gpt2) roundtrip(gpt2, fields[f]);
                if (spm && i < 200) roundtrip(spm, fields[f]);
            }
        }
        CHECK(missing == 0);
        printf("%s/%s: %lld items (expected %lld), %lld missing a probe\n", splits[k].set,
               splits[k].split, (long long)n, (long long)splits[k].n, (long long)missing);
        mk_edit_requests_free(r, n);
    }
    printf("tokenizer round trips: %ld of %ld failed\n", roundtrip_fail, roundtrip_n);
    check_count++;
    if (roundtrip_fail) check_failures++;
    mk_tok_free(gpt2);
    mk_tok_free(spm);
    return check_summary("data_test_datasets");
}
