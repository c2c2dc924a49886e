/* fuzz_tokenizer_json.c - libFuzzer target for the tokenizer.json loader
 * (and, for inputs starting with "GGUF", the GGUF tokenizer metadata path).
 *
 * Loads the input with mk_tok_load_json_mem (or mk_gguf_open_mem +
 * mk_tok_from_gguf); when it loads, encodes a fixed mixed string and a slice
 * of the input itself, checks every id is in the vocabulary, and decodes.
 *
 *   CC=clang cmake -S . -B build-fuzz-tok -DMK_FUZZ=ON -DMK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
 *   cmake --build build-fuzz-tok --target fuzz_tokenizer_json
 *   ./build-fuzz-tok/fuzz_tokenizer_json -max_total_time=60 <copy of fuzz/corpus/fuzz_tokenizer_json>
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/gguf.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const mk_tokenizer *t, const char *text, size_t len) {
    for (int flags = 0; flags < 4; flags++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (mk_tok_encode(t, text, len, flags, &ids, &n) != MK_OK) abort(); /* never fails on text */
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= mk_tok_n_vocab(t)) abort();
        char *out = NULL;
        size_t ol = 0;
        if (mk_tok_decode(t, ids, n, flags & 1, &out, &ol) != MK_OK) abort();
        free(out);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mk_tokenizer *t = NULL;
    mk_gguf *g = NULL;
    int rc;
    if (size >= 4 && !memcmp(data, "GGUF", 4)) {
        if (mk_gguf_open_mem(data, size, "fuzz.gguf", &g) != MK_OK) return 0;
        rc = mk_tok_from_gguf(g, &t);
    } else {
        rc = mk_tok_load_json_mem((const char *)data, size, "fuzz.json", &t);
        if (rc != MK_OK && !strstr(mk_errmsg(), "fuzz.json")) abort(); /* errors name the file */
    }
    if (rc != MK_OK) {
        if (t) abort();
        mk_gguf_close(g);
        return 0;
    }
    static const char mixed[] = "Hello  world's 12345 <s></s> caf\xC3\xA9 \xE6\xBC\xA2\t\n\xFF\xC3 <|endoftext|>!";
    exercise(t, mixed, sizeof mixed - 1);
    exercise(t, (const char *)data, size > 256 ? 256 : size);
    mk_tok_free(t);
    mk_gguf_close(g);
    return 0;
}
