/* metrics.c - token triples, argmax scores, words and n-gram entropy
 * (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../text/tokenizer.h"

int32_t mk_argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best] || (isnan(x[best]) && !isnan(x[i]))) best = i;
    return (int32_t)best;
}

int mk_triple_hits(const mk_triple *t, const float *logits, int V, const int32_t *want) {
    int hits = 0, k = 0;
    for (int i = 0; i < t->L; i++) {
        if (!t->mask[i]) continue;
        int32_t a = mk_argmax(logits + (size_t)i * (size_t)V, V);
        hits += a == (want ? want[k] : t->label[i]);
        k++;
    }
    return hits;
}

void mk_triple_argmax(const mk_triple *t, const float *logits, int V, int32_t *out) {
    int k = 0;
    for (int i = 0; i < t->L; i++)
        if (t->mask[i]) out[k++] = mk_argmax(logits + (size_t)i * (size_t)V, V);
}

/* ---- words and n-gram entropy ---- */

static int word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

static int space_byte(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int mk_eval_words(const char *text, size_t len, size_t **starts, size_t **lens, size_t *n) {
    *starts = *lens = NULL;
    *n = 0;
    size_t cap = 0, cnt = 0, *s = NULL, *l = NULL;
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        if (space_byte(u[i])) {
            i++;
            continue;
        }
        size_t a = i;
        if (word_byte(u[i])) {
            i++;
            while (i < len && (word_byte(u[i]) || ((u[i] == '\'' || u[i] == '-') && i + 1 < len &&
                                                   word_byte(u[i + 1]))))
                i++;
        } else {
            i++;
        }
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 64;
            size_t *ns = realloc(s, nc * sizeof *ns);
            if (!ns) goto oom;
            s = ns;
            size_t *nl = realloc(l, nc * sizeof *nl);
            if (!nl) goto oom;
            l = nl;
            cap = nc;
        }
        s[cnt] = a;
        l[cnt] = i - a;
        cnt++;
    }
    *starts = s;
    *lens = l;
    *n = cnt;
    return MK_OK;
oom:
    free(s);
    free(l);
    return mk_fail(MK_ERR_NOMEM, "out of memory splitting %zu bytes into words", len);
}

#define MAX_N 8

typedef struct {
    const char *p;
    size_t len, idx;
} word_ref;

static int cmp_word(const void *a, const void *b) {
    const word_ref *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, m);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

typedef struct {
    size_t w[MAX_N];
} gram;

static _Thread_local int tl_gram_n;

static int cmp_gram(const void *a, const void *b) {
    const gram *x = a, *y = b;
    for (int k = 0; k < tl_gram_n; k++)
        if (x->w[k] != y->w[k]) return x->w[k] < y->w[k] ? -1 : 1;
    return 0;
}

double mk_ngram_entropy(const char *text, const size_t *starts, const size_t *lens, size_t nw,
                        int n) {
    if (n < 1 || n > MAX_N || nw < (size_t)n) return 0.0;
    word_ref *wr = malloc(nw * sizeof *wr);
    size_t *id = malloc(nw * sizeof *id);
    size_t ng = nw - (size_t)n + 1;
    gram *g = malloc(ng * sizeof *g);
    double h = NAN;
    if (!wr || !id || !g) goto done;
    /* word ids: equal byte strings share an id */
    for (size_t i = 0; i < nw; i++) wr[i] = (word_ref){text + starts[i], lens[i], i};
    qsort(wr, nw, sizeof *wr, cmp_word);
    size_t cur = 0;
    for (size_t i = 0; i < nw; i++) {
        if (i > 0 && (wr[i].len != wr[i - 1].len || memcmp(wr[i].p, wr[i - 1].p, wr[i].len) != 0))
            cur++;
        id[wr[i].idx] = cur;
    }
    for (size_t i = 0; i < ng; i++) {
        memset(&g[i], 0, sizeof g[i]);
        for (int k = 0; k < n; k++) g[i].w[k] = id[i + (size_t)k];
    }
    tl_gram_n = n;
    qsort(g, ng, sizeof *g, cmp_gram);
    h = 0.0;
    for (size_t i = 0; i < ng;) {
        size_t j = i + 1;
        while (j < ng && cmp_gram(&g[i], &g[j]) == 0) j++;
        double p = (double)(j - i) / (double)ng;
        h -= p * log2(p);
        i = j;
    }
done:
    free(wr);
    free(id);
    free(g);
    return h;
}

int mk_fluency_score(const char *text, size_t len, double *score, double *h2, double *h3) {
    size_t *s = NULL, *l = NULL, n = 0;
    int rc = mk_eval_words(text, len, &s, &l, &n);
    if (rc) return rc;
    double a = mk_ngram_entropy(text, s, l, n, 2), b = mk_ngram_entropy(text, s, l, n, 3);
    free(s);
    free(l);
    if (isnan(a) || isnan(b)) return mk_fail(MK_ERR_NOMEM, "out of memory counting n-grams");
    if (h2) *h2 = a;
    if (h3) *h3 = b;
    *score = (2.0 / 3.0 * a + 4.0 / 3.0 * b) / 2.0;
    return MK_OK;
}
