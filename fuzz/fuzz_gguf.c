/* fuzz_gguf.c - libFuzzer target for the GGUF reader.
 *
 * Opens the input with mk_gguf_open_mem; on success reads every metadata
 * value (scalars, every array element) through the public getters, looks
 * every key and tensor up by name, and dequantises a bounded prefix of
 * every tensor, so ASan sees every byte the reader hands out.
 *
 *   CC=clang cmake -S . -B build-fuzz -DMK_FUZZ=ON -DMK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
 *   cmake --build build-fuzz --target fuzz_gguf
 *   ./build-fuzz/fuzz_gguf -max_total_time=60 <copy of fuzz/corpus/fuzz_gguf>
 * (MK_FUZZ instruments the whole library, so coverage reaches the reader.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"

#define MAX_ELEMS 4096 /* dequantised per tensor (a multiple of 32) */

static volatile uint64_t sink;

static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + b[i];
    sink += h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mk_gguf *g = NULL;
    if (mk_gguf_open_mem(data, size, "fuzz.gguf", &g) != MK_OK) {
        if (g) abort(); /* a failed open must not hand out a handle */
        if (!strstr(mk_errmsg(), "fuzz.gguf")) abort(); /* every error names the file */
        return 0;
    }
    size_t nkv = mk_gguf_n_kv(g);
    for (size_t i = 0; i < nkv; i++) {
        size_t kl;
        const char *k = mk_gguf_kv_key(g, i, &kl);
        touch(k, kl);
        /* a key without NUL bytes must be found again by name */
        if (!memchr(k, 0, kl)) {
            char *ks = malloc(kl + 1);
            memcpy(ks, k, kl);
            ks[kl] = 0;
            if (mk_gguf_find(g, ks) != (long)i) abort();
            uint64_t u;
            int64_t s64;
            float f;
            int b;
            const char *s;
            size_t sl;
            sink += (uint64_t)mk_gguf_get_u64(g, ks, &u) + (uint64_t)mk_gguf_get_i64(g, ks, &s64) +
                    (uint64_t)mk_gguf_get_f32(g, ks, &f) + (uint64_t)mk_gguf_get_bool(g, ks, &b);
            if (mk_gguf_get_str(g, ks, &s, &sl) == MK_OK) touch(s, sl);
            free(ks);
        }
        size_t rl;
        touch(mk_gguf_kv_raw(g, i, &rl), rl);
        if (mk_gguf_kv_type(g, i) != MK_GGUF_ARRAY) continue;
        mk_gguf_type et = mk_gguf_kv_arr_type(g, i);
        uint64_t n = mk_gguf_kv_arr_n(g, i);
        for (uint64_t e = 0; e < n; e++) {
            if (et == MK_GGUF_STRING) {
                const char *s;
                size_t sl;
                if (mk_gguf_arr_str(g, i, e, &s, &sl) != MK_OK) abort();
                touch(s, sl);
            } else {
                double d;
                int64_t v;
                if (mk_gguf_arr_f64(g, i, e, &d) != MK_OK) abort();
                sink += (uint64_t)mk_gguf_arr_i64(g, i, e, &v);
            }
        }
        double d;
        if (mk_gguf_arr_f64(g, i, n, &d) != MK_ERR_RANGE) abort();
    }
    static float buf[MAX_ELEMS];
    for (size_t i = 0; i < mk_gguf_n_tensors(g); i++) {
        const mk_tensor_view *t = mk_gguf_tensor(g, i);
        if (mk_gguf_find_tensor(g, t->name) != t) abort();
        if (mk_dtype_nbytes(t->dtype, t->n_elems) != t->nbytes) abort();
        uint64_t n = t->n_elems < MAX_ELEMS ? t->n_elems : MAX_ELEMS;
        n -= n % (uint64_t)mk_dtype_block(t->dtype);
        mk_dequantize(t->dtype, t->data, buf, (size_t)n);
        touch(buf, (size_t)n * sizeof(float));
        /* the last byte of the tensor is inside the input */
        touch((const uint8_t *)t->data + t->nbytes - 1, 1);
    }
    mk_gguf_close(g);
    return 0;
}
