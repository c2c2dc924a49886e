/* fuzz_merges.c - libFuzzer target for vocab.json + merges.txt.
 *
 * First byte even: the rest is "vocab.json NUL merges.txt" (both hostile).
 * First byte odd: the rest is a merges.txt against a fixed vocabulary that
 * holds the 256 byte characters and some merged tokens, so many lines are
 * valid merges and the BPE loop runs on odd rank orders.
 * When it loads, a fixed string and a slice of the input are encoded and
 * decoded; byte-level BPE must give the bytes back exactly.
 *
 *   ./build-fuzz-tok/fuzz_merges -max_total_time=60 <copy of fuzz/corpus/fuzz_merges>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *fixed_vocab; /* JSON */
static size_t fixed_len;
static char byte_chars[256][4]; /* UTF-8 of each byte's character, NUL-terminated */

/* GPT-2's byte -> character table, then "ab"-style pairs of printable ASCII */
static void build_vocab(void) {
    size_t cap = 1 << 16, k = 0;
    int id = 0;
    fixed_vocab = malloc(cap);
    k += (size_t)snprintf(fixed_vocab + k, cap - k, "{");
    for (int b = 0, extra = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        int c = printable ? b : 256 + extra++;
        if (c < 0x80) byte_chars[b][0] = (char)c;
        else { byte_chars[b][0] = (char)(0xC0 | (c >> 6)); byte_chars[b][1] = (char)(0x80 | (c & 0x3F)); }
        k += (size_t)snprintf(fixed_vocab + k, cap - k, "\"\\u%04x\":%d,", c, id++);
    }
    const char *more[] = {"ab", "abc", "bc", "aa", "aaa", "aaaa", "\\u0120a", "\\u0120ab", "12", "123", "ll", "he", "hell", "hello"};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++)
        k += (size_t)snprintf(fixed_vocab + k, cap - k, "\"%s\":%d,", more[i], id++);
    k += (size_t)snprintf(fixed_vocab + k, cap - k, "\"<s>\":%d,\"</s>\":%d}", id, id + 1);
    fixed_len = k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fixed_vocab) build_vocab();
    if (size < 1) return 0;
    const char *v, *m;
    size_t vl, ml;
    if (data[0] & 1) {
        v = fixed_vocab;
        vl = fixed_len;
        m = (const char *)data + 1;
        ml = size - 1;
    } else {
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        v = (const char *)data + 1;
        vl = nul ? (size_t)(nul - data - 1) : size - 1;
        m = nul ? (const char *)nul + 1 : "";
        ml = nul ? size - (size_t)(nul - data) - 1 : 0;
    }
    mk_tokenizer *t = NULL;
    if (mk_tok_load_vocab_merges_mem(v, vl, m, ml, "fuzz", &t) != MK_OK) {
        if (t || !strstr(mk_errmsg(), "fuzz")) abort();
        return 0;
    }
    static const char fixed[] = "hello aaaa abc 123 hell\xFF\xC3 <s> x";
    const char *texts[2] = {fixed, m};
    size_t lens[2] = {sizeof fixed - 1, ml > 200 ? 200 : ml};
    for (int k = 0; k < 2; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (mk_tok_encode(t, texts[k], lens[k], MK_TOK_SPLIT_SPECIAL, &ids, &n) != MK_OK) abort();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= mk_tok_n_vocab(t)) abort();
        char *out = NULL;
        size_t ol = 0;
        if (mk_tok_decode(t, ids, n, 0, &out, &ol) != MK_OK) abort();
        /* lossless unless some byte has no token (then <unk> or nothing) */
        int all_bytes = 1;
        for (int b = 0; b < 256 && all_bytes; b++) all_bytes = mk_tok_id(t, byte_chars[b]) >= 0;
        if (all_bytes && (ol != lens[k] || memcmp(out, texts[k], ol))) abort();
        free(out);
        free(ids);
    }
    mk_tok_free(t);
    return 0;
}
