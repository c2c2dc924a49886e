/* test_eval_datasets.c - the five benchmark schemas (spec 9) read into
 * evaluation items: fields mapped to request / generality / locality
 * probes, all four MedCF locality probes, schema detection, JSON lines,
 * --limit, and errors that name the item index and the field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/datasets.h"
#include "util/check.h"

static int parse(const char *js, mk_ds_format f, int64_t limit, mk_eval_set *s) {
    return mk_eval_set_parse(js, strlen(js), "t.json", f, limit, s);
}

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The call fails with a message containing every given piece. */
static void expect_err(const char *js, mk_ds_format f, const char *p1, const char *p2) {
    mk_eval_set s;
    int rc = parse(js, f, 0, &s);
    const char *m = mk_errmsg();
    int ok = rc != MK_OK && s.n == 0 && s.items == NULL && strstr(m, "t.json") &&
             (!p1 || strstr(m, p1)) && (!p2 || strstr(m, p2));
    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "FAIL expected an error with \"%s\" and \"%s\" for %s; got rc %d: %s\n",
                p1 ? p1 : "", p2 ? p2 : "", js, rc, m);
    }
    if (rc == MK_OK) mk_eval_set_free(&s);
}

int main(void) {
    mk_eval_set s;
    /* MedVersa */
    const char *mv = "[{\"prompt\":\"P0\",\"ground_truth\":\"G\",\"target_new\":\"T0\","
                     "\"rephrase_prompt\":\"R0\",\"subject_name\":\"S\",\"topic_name\":\"x\",\"id\":1,"
                     "\"locality_prompt\":\"L0\",\"locality_ground_truth\":\"LG0\",\"locality_id\":2},"
                     "{\"prompt\":\"P1\",\"target_new\":\"T1\",\"rephrase_prompt\":\"R1\","
                     "\"locality_prompt\":\"L1\",\"locality_ground_truth\":\"LG1\",\"subject_name\":\"S\"}]";
    CHECK_OK(parse(mv, MK_DS_AUTO, 0, &s));
    CHECK(s.format == MK_DS_MEDVERSA && s.n == 2);
    if (s.n == 2) {
        mk_eval_item *a = &s.items[0];
        CHECK(streq(a->prompt, "P0") && streq(a->target_new, "T0") && streq(a->ground_truth, "G") &&
              streq(a->subject, "S") && a->n_gen == 1 && streq(a->gen[0].prompt, "R0") &&
              streq(a->gen[0].target, "T0") && a->n_loc == 1 && streq(a->loc[0].prompt, "L0") &&
              streq(a->loc[0].target, "LG0") && streq(a->loc[0].kind, "locality"));
        CHECK(s.items[1].ground_truth == NULL);
    }
    mk_eval_set_free(&s);
    CHECK_OK(parse(mv, MK_DS_AUTO, 1, &s)); /* --limit */
    CHECK(s.n == 1);
    mk_eval_set_free(&s);

    /* MedCF: all four locality probes, in a fixed order */
    const char *cf = "[{\"prompt\":\"P\",\"target_new\":\"T\",\"subject\":\"S\",\"ground_truth\":\"G\","
                     "\"rephrase_prompt\":\"R\","
                     "\"locality_target_prompt\":\"a\",\"locality_target_ground_truth\":\"A\","
                     "\"locality_mapping_prompt\":\"b\",\"locality_mapping_ground_truth\":\"B\","
                     "\"locality_struc_prompt\":\"c\",\"locality_struc_ground_truth\":\"C\","
                     "\"locality_tokenSem_prompt\":\"d\",\"locality_tokenSem_ground_truth\":\"D\"},"
                     "{\"prompt\":\"P\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\","
                     "\"locality_tokenSem_prompt\":\"d\",\"locality_tokenSem_ground_truth\":\"D\","
                     "\"locality_mapping_prompt\":\"b\",\"locality_mapping_ground_truth\":\"B\"}]";
    CHECK_OK(parse(cf, MK_DS_AUTO, 0, &s));
    CHECK(s.format == MK_DS_MEDCF && s.n == 2);
    if (s.n == 2) {
        mk_eval_item *a = &s.items[0], *b = &s.items[1];
        CHECK(a->n_loc == 4 && streq(a->loc[0].kind, "target") && streq(a->loc[1].kind, "mapping") &&
              streq(a->loc[2].kind, "struc") && streq(a->loc[3].kind, "tokenSem") &&
              streq(a->loc[0].prompt, "a") && streq(a->loc[3].target, "D") && streq(a->subject, "S"));
        CHECK(b->n_loc == 2 && streq(b->loc[0].kind, "mapping") && streq(b->loc[1].kind, "tokenSem"));
    }
    mk_eval_set_free(&s);

    /* MedFE: ground truth = target_new, topic + tokenSem probes */
    const char *fe = "[{\"subject\":\"S\",\"subject_type\":\"x\",\"topic_type\":\"y\",\"prompt\":\"P\","
                     "\"target_new\":\"T\",\"rephrase_prompt\":\"R\","
                     "\"locality_topic_prompt\":\"a\",\"locality_topic_ground_truth\":\"A\","
                     "\"locality_tokenSem_prompt\":\"d\",\"locality_tokenSem_ground_truth\":\"D\"}]";
    CHECK_OK(parse(fe, MK_DS_AUTO, 0, &s));
    CHECK(s.format == MK_DS_MEDFE && s.n == 1 && s.items[0].n_loc == 2 &&
          streq(s.items[0].ground_truth, "T") && streq(s.items[0].loc[0].kind, "topic"));
    mk_eval_set_free(&s);

    /* ZsRE, as JSON lines */
    const char *zs = "{\"subject\":\"S\",\"src\":\"Q?\",\"pred\":\"x\",\"rephrase\":\"Q2?\",\"alt\":\"A\","
                     "\"answers\":[\"G\",\"H\"],\"loc\":\"nq question: who\",\"loc_ans\":\"LA\",\"cond\":\"c\"}\n"
                     "\n"
                     "{\"src\":\"Q\",\"alt\":\"A\",\"rephrase\":\"Q2\",\"loc\":\"l\",\"loc_ans\":\"m\"}\n";
    CHECK_OK(parse(zs, MK_DS_AUTO, 0, &s));
    CHECK(s.format == MK_DS_ZSRE && s.n == 2);
    if (s.n == 2)
        CHECK(streq(s.items[0].prompt, "Q?") && streq(s.items[0].target_new, "A") &&
              streq(s.items[0].ground_truth, "G") && streq(s.items[0].gen[0].prompt, "Q2?") &&
              streq(s.items[0].gen[0].target, "A") && streq(s.items[0].loc[0].prompt, "nq question: who") &&
              streq(s.items[0].loc[0].target, "LA") && s.items[1].ground_truth == NULL);
    mk_eval_set_free(&s);

    /* CounterFact */
    const char *cft = "[{\"prompt\":\"P\",\"target_new\":\"T\",\"subject\":\"S\",\"ground_truth\":\"G\","
                      "\"rephrase_prompt\":\"R\",\"locality_prompt\":\"L\",\"locality_ground_truth\":\"LG\"}]";
    CHECK_OK(parse(cft, MK_DS_AUTO, 0, &s));
    CHECK(s.format == MK_DS_COUNTERFACT && s.n == 1 && streq(s.items[0].loc[0].target, "LG"));
    mk_eval_set_free(&s);
    /* an explicit format wins over detection */
    CHECK_OK(parse(cft, MK_DS_MEDVERSA, 0, &s));
    CHECK(s.format == MK_DS_MEDVERSA && s.n == 1);
    mk_eval_set_free(&s);

    /* errors name the item (from 0) and the field */
    expect_err("[{\"prompt\":\"P\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\",\"locality_prompt\":\"L\","
               "\"locality_ground_truth\":\"G\"},{\"prompt\":\"P\",\"target_new\":\"T\","
               "\"locality_prompt\":\"L\",\"locality_ground_truth\":\"G\"}]",
               MK_DS_COUNTERFACT, "item 1", "\"rephrase_prompt\": missing");
    expect_err("[{\"prompt\":\"P\",\"target_new\":5,\"rephrase_prompt\":\"R\"}]", MK_DS_COUNTERFACT,
               "item 0", "\"target_new\": not a string");
    expect_err("[{\"prompt\":\"\",\"target_new\":\"T\"}]", MK_DS_COUNTERFACT, "item 0", "\"prompt\": empty");
    expect_err("[{\"prompt\":\"P\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\",\"locality_prompt\":\"L\"}]",
               MK_DS_COUNTERFACT, "item 0", "\"locality_ground_truth\": missing");
    expect_err("[{\"prompt\":\"P\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\","
               "\"locality_struc_ground_truth\":\"x\",\"locality_target_prompt\":\"a\","
               "\"locality_target_ground_truth\":\"A\"}]",
               MK_DS_MEDCF, "item 0", "\"locality_struc_prompt\": missing (its answer is present)");
    expect_err("[{\"prompt\":\"P\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\"}]", MK_DS_MEDCF,
               "item 0", "no locality probe");
    expect_err("[{\"prompt\":\"P\",\"target_new\":\"T\",\"rephrase_prompt\":\"R\","
               "\"locality_topic_prompt\":\"a\",\"locality_topic_ground_truth\":\"A\"}]",
               MK_DS_MEDFE, "item 0", "\"locality_tokenSem_prompt\": missing");
    expect_err("{\"src\":\"Q\",\"alt\":\"A\",\"rephrase\":\"Q2\",\"loc\":\"l\",\"loc_ans\":\"m\"}\n"
               "{\"src\":\"Q\",\"alt\":\"A\",\"rephrase\":\"Q2\",\"loc\":\"l\"}\n",
               MK_DS_ZSRE, "item 1 (line 2)", "\"loc_ans\": missing");
    expect_err("{\"src\":\"Q\",\"alt\":\"A\",\"rephrase\":\"Q2\",\"loc\":\"l\",\"loc_ans\":\"m\"}\n{oops\n",
               MK_DS_ZSRE, "line 2", "invalid JSON");
    expect_err("[{\"question\":\"Q\"}]", MK_DS_AUTO, "item 0", "--format");
    expect_err("[3]", MK_DS_MEDVERSA, "item 0", "not a JSON object");
    expect_err("[]", MK_DS_AUTO, "no items", NULL);
    expect_err("  ", MK_DS_AUTO, "empty", NULL);
    expect_err("[{\"prompt\":\"P\",\"prompt\":\"Q\",\"target_new\":\"T\"}]", MK_DS_COUNTERFACT, "item 0",
               "prompt");
    expect_err("[{\"src\":\"Q\",\"alt\":\"A\",\"rephrase\":\"Q2\",\"loc\":\"l\",\"loc_ans\":\"m\",\"answers\":[1]}]",
               MK_DS_ZSRE, "item 0", "answers[0]");
    /* an over-long field */
    size_t big = MK_EVAL_MAX_FIELD + 10;
    char *js = malloc(big + 200);
    int k = snprintf(js, 200, "[{\"prompt\":\"");
    memset(js + k, 'a', big);
    snprintf(js + k + big, 200, "\",\"target_new\":\"T\"}]");
    expect_err(js, MK_DS_COUNTERFACT, "item 0", "\"prompt\": longer than");
    free(js);
    /* a file that does not exist */
    CHECK(mk_eval_set_load("tests/data/eval/absent.json", MK_DS_AUTO, 0, &s) != MK_OK &&
          strstr(mk_errmsg(), "absent.json"));
    /* mutation fuzzing: truncations, byte flips and insertions of valid
     * documents of every schema never crash; each result is a set or an
     * error naming the file */
    {
        const char *docs[] = {mv, cf, fe, zs, cft};
        uint64_t x = 88172645463325252ull;
        int bad = 0, n_ok = 0, n_err = 0;
        char buf[2048];
        const char bytes[] = "{}[]\",:\\ \n0aZ\x80\xff";
        for (int it = 0; it < 6000; it++) {
            const char *d = docs[it % 5];
            size_t len = strlen(d);
            memcpy(buf, d, len);
            int muts = 1 + it % 4;
            for (int m = 0; m < muts; m++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = (size_t)(x >> 11) % (len ? len : 1);
                int kind = (int)((x >> 3) % 3);
                char b = bytes[(x >> 40) % (sizeof bytes - 1)];
                if (kind == 0) len = at;                       /* truncate */
                else if (kind == 1 && len) buf[at] = b;        /* replace */
                else if (len + 1 < sizeof buf) {               /* insert */
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = b;
                    len++;
                }
            }
            mk_eval_set fs;
            int rc = mk_eval_set_parse(buf, len, "t.json", MK_DS_AUTO, 0, &fs);
            if (rc == MK_OK) {
                n_ok++;
                for (int64_t i = 0; i < fs.n; i++)
                    if (!fs.items[i].prompt || !fs.items[i].target_new || fs.items[i].n_gen < 1 ||
                        fs.items[i].n_loc < 1)
                        bad++;
                mk_eval_set_free(&fs);
            } else {
                n_err++;
                if (!strstr(mk_errmsg(), "t.json") || fs.n != 0) bad++;
            }
        }
        CHECK(bad == 0);
        printf("mutations: %d parsed, %d refused, %d bad\n", n_ok, n_err, bad);
    }
    CHECK(mk_ds_format_parse("medcf") == MK_DS_MEDCF && mk_ds_format_parse("x") == -1 &&
          streq(mk_ds_format_name(MK_DS_ZSRE), "zsre"));
    return check_summary("test_eval_datasets");
}
