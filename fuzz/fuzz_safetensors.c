/* fuzz_safetensors.c - libFuzzer target for the safetensors reader.
 *
 * Whatever mk_st_open_mem accepts must be safe to use: every view is
 * touched (name, shape, every data byte), a bounded number of elements is
 * converted to f32, lookups by name must find the same view, and the
 * metadata strings are read. Failures must leave a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"

#define MAX_CONVERT 4096 /* elements converted per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy: ASan then flags any read past the input's end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    mk_st *st = NULL;
    mk_clear_error();
    /* Skipping mode validates everything strict mode does, and more files
     * pass it: run it first, then check strict mode agrees. */
    int rc = mk_st_open_mem_flags(buf, size, "fuzz", MK_ST_SKIP_UNSUPPORTED, &st);
    if (rc == MK_OK) {
        for (size_t i = 0; i < mk_st_n_skipped(st); i++) {
            const char *dt;
            int nd;
            const int64_t *sh;
            const char *name = mk_st_skipped(st, i, &dt, &nd, &sh);
            if (!name || !*dt || nd < 0 || nd > MK_MAX_DIMS || mk_st_find(st, name)) abort();
            for (int d = 0; d < nd; d++)
                if (sh[d] < 0) abort();
        }
        size_t nsk = mk_st_n_skipped(st);
        mk_st_close(st);
        st = NULL;
        rc = mk_st_open_mem(buf, size, "fuzz", &st);
        if ((rc == MK_OK) != (nsk == 0)) abort();
        if (rc != MK_OK && rc != MK_ERR_UNSUPPORTED) abort();
    }
    if (rc != MK_OK) {
        if (st || !strstr(mk_errmsg(), "fuzz")) abort(); /* a message naming the input */
        free(buf);
        return 0;
    }
    static float out[MAX_CONVERT];
    size_t budget = MAX_CONVERT;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < mk_st_n_tensors(st); i++) {
        const mk_tensor_view *t = mk_st_tensor(st, i);
        if (mk_st_find(st, t->name) != t) abort();
        size_t len = strlen(t->name);
        if (!len) abort();
        uint64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) {
            if (t->shape[d] < 0) abort();
            n *= (uint64_t)t->shape[d];
        }
        if (t->n_dims < 0 || t->n_dims > MK_MAX_DIMS || n != t->n_elems) abort();
        if (t->nbytes != mk_dtype_nbytes(t->dtype, t->n_elems)) abort();
        const uint8_t *p = t->data;
        if (p < buf + 8 || p + t->nbytes > buf + size) abort();
        for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
        size_t m = t->n_elems < budget ? (size_t)t->n_elems : budget;
        mk_dequantize(t->dtype, t->data, out, m);
        budget -= m;
    }
    for (size_t i = 0; i < mk_st_n_meta(st); i++) {
        const char *k, *v;
        mk_st_meta_at(st, i, &k, &v);
        if (!k || !v) abort();
        sink ^= (uint8_t)(strlen(k) + strlen(v));
        if (mk_st_meta(st, k) == NULL) abort();
    }
    (void)sink;
    mk_st_close(st);
    free(buf);
    return 0;
}
