/* test_llama_quant.c - quantised weights read in place: the Q8_0/Q4_0 GGUF
 * files written by tools/ref_llama.py (GGML's quantisation rules) against
 * (1) torch logits computed with the dequantised weights (exactness of the
 * in-place path) and (2) the F32 model (quantisation error, top-1
 * agreement over 1024 positions). An F16 copy written with the project's
 * GGUF writer is compared too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "model/llama.h"
#include "util/check.h"
#include "llama_ref.h"

#define DIR "tests/data/llama/"

static void vs_dequant_reference(const char *path, const char *refname, mk_st *ref) {
    mk_llama *m = NULL;
    CHECK_OK(mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, &m));
    if (!m) return;
    ref_batch rb;
    ref_batch_load(&rb, ref, 64);
    size_t nl = (size_t)rb.Ltot * 512;
    float *lg = malloc(nl * sizeof(float));
    float *want = ref_get(ref, refname, nl);
    CHECK_OK(mk_llama_forward(m, rb.seqs, rb.B, lg, NULL));
    char buf[160];
    snprintf(buf, sizeof buf, "%s logits vs torch with the dequantised weights", path);
    check_close(buf, lg, want, nl, 2e-4, 1e-4);
    free(lg);
    free(want);
    ref_batch_free(&rb);
    mk_llama_close(m);
}

/* Token windows: 4 x 256 of the training corpus of model A (in
 * distribution, where a trained model's top-1 has real margins), or random
 * tokens (where the random-looking logits nearly tie). */
enum { B = 4, L = 256, V = 512 };
static int32_t ids[B][L];

static void set_windows(const float *corpus, size_t n) {
    mk_rng r;
    mk_rng_seed(&r, 1234);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            ids[b][t] = corpus && (size_t)(b * L + t) < n ? (int32_t)corpus[b * L + t]
                                                          : (int32_t)(mk_rng_next(&r) % V);
}

/* Top-1 agreement and logit differences of model q vs model f over the
 * B x L windows (1024 positions). */
static double agreement(const char *fpath, const char *qpath, double *maxdiff, double *meandiff) {
    mk_llama *f = NULL, *q = NULL;
    CHECK_OK(mk_llama_open_ex(fpath, MK_LLAMA_NO_TOKENIZER, &f));
    CHECK_OK(mk_llama_open_ex(qpath, MK_LLAMA_NO_TOKENIZER, &q));
    if (!f || !q) {
        mk_llama_close(f);
        mk_llama_close(q);
        return 0;
    }
    mk_llama_seq seqs[B];
    for (int b = 0; b < B; b++) seqs[b] = (mk_llama_seq){ids[b], L, NULL, 0};
    size_t n = (size_t)B * L * V;
    float *lf = malloc(n * sizeof(float)), *lq = malloc(n * sizeof(float));
    CHECK_OK(mk_llama_forward(f, seqs, B, lf, NULL));
    CHECK_OK(mk_llama_forward(q, seqs, B, lq, NULL));
    int agree = 0;
    double mx = 0, sum = 0;
    for (int p = 0; p < B * L; p++) {
        const float *a = lf + (size_t)p * V, *b = lq + (size_t)p * V;
        int ia = 0, ib = 0;
        for (int v = 0; v < V; v++) {
            if (a[v] > a[ia]) ia = v;
            if (b[v] > b[ib]) ib = v;
            double d = fabs((double)a[v] - b[v]);
            sum += d;
            if (d > mx) mx = d;
        }
        agree += ia == ib;
    }
    *maxdiff = mx;
    *meandiff = sum / (double)n;
    free(lf);
    free(lq);
    mk_llama_close(f);
    mk_llama_close(q);
    return agree / (double)(B * L);
}

int main(void) {
    mk_st *ra = NULL;
    CHECK_OK(mk_st_open(DIR "ref_a.safetensors", &ra));
    if (!ra) return check_summary("test_llama_quant");
    vs_dequant_reference(DIR "a_q8_0.gguf", "logits_q8_0", ra);
    vs_dequant_reference(DIR "a_q4_0.gguf", "logits_q4_0", ra);

    double mx, mean, ag;
    size_t nc;
    float *corpus = ref_get_any(ra, "corpus_ids", &nc);
    CHECK(nc >= (size_t)B * L);
    set_windows(corpus, nc);
    ag = agreement(DIR "a.gguf", DIR "a_q8_0.gguf", &mx, &mean);
    printf("%s Q8_0 vs F32 over 1024 corpus positions: top-1 agreement %.2f%% (goal >= 99%%), "
           "logits largest diff %.3g, mean %.3g\n", ag >= 0.99 ? "ok  " : "FAIL", 100 * ag, mx, mean);
    check_count++;
    if (ag < 0.99) check_failures++;
    CHECK(mx < 2.0);
    ag = agreement(DIR "a.gguf", DIR "a_q4_0.gguf", &mx, &mean);
    printf("     Q4_0 vs F32 over 1024 corpus positions: top-1 agreement %.2f%% (reported, not "
           "a goal), logits largest diff %.3g, mean %.3g\n", 100 * ag, mx, mean);
    CHECK(ag > 0.5);
    set_windows(NULL, 0);
    ag = agreement(DIR "a.gguf", DIR "a_q8_0.gguf", &mx, &mean);
    printf("     Q8_0 vs F32 over 1024 random-token positions: top-1 agreement %.2f%% (reported; "
           "near-tied logits), largest diff %.3g\n", 100 * ag, mx);
    ag = agreement(DIR "a.gguf", DIR "a_q4_0.gguf", &mx, &mean);
    printf("     Q4_0 vs F32 over 1024 random-token positions: top-1 agreement %.2f%% (reported), "
           "largest diff %.3g\n", 100 * ag, mx);
    set_windows(corpus, nc);
    free(corpus);

    /* F16 written by the project's GGUF writer */
    char tmp[] = "/tmp/mk_test_llamaq_XXXXXX";
    if (mkdtemp(tmp)) {
        char p[256];
        snprintf(p, sizeof p, "%s/a_f16.gguf", tmp);
        CHECK_OK(ref_write_gguf(DIR "a_hf", p, "llama", NULL, NULL, MK_F16));
        ag = agreement(DIR "a.gguf", p, &mx, &mean);
        printf("%s F16 vs F32 over 1024 positions: top-1 agreement %.2f%%, logits largest diff "
               "%.3g, mean %.3g\n", ag >= 0.99 ? "ok  " : "FAIL", 100 * ag, mx, mean);
        check_count++;
        if (ag < 0.99 || mx > 0.5) check_failures++;
        snprintf(p, sizeof p, "%s/a_q8c.gguf", tmp);
        /* Q8_0 written by the C writer reads back like the Python one */
        CHECK_OK(ref_write_gguf(DIR "a_hf", p, "llama", NULL, NULL, MK_Q8_0));
        double ag2 = agreement(DIR "a_q8_0.gguf", p, &mx, &mean);
        printf("     Q8_0 (C writer) vs Q8_0 (Python writer): top-1 agreement %.2f%%, largest "
               "diff %.3g\n", 100 * ag2, mx);
        CHECK(ag2 >= 0.99);
        ref_rmtree(tmp);
    }
    mk_st_close(ra);
    return check_summary("test_llama_quant");
}
