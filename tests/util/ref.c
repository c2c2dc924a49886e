/* ref.c - committed reference tensors for the tests (see ref.h). */
#include "util/ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/weights.h"

mk_st *ref_open(const char *path, const char *hint) {
    mk_st *st = NULL;
    if (mk_st_open(path, &st) != MK_OK) {
        fprintf(stderr, "reference %s: %s (rerun %s)\n", path, mk_errmsg(), hint);
        exit(1);
    }
    return st;
}

float *ref_tensor(const mk_st *st, const char *name, size_t *n, const char *hint) {
    const mk_tensor_view *t = mk_st_find(st, name);
    if (!t) {
        fprintf(stderr, "reference tensor %s is missing (rerun %s)\n", name, hint);
        exit(1);
    }
    float *x = malloc((t->n_elems ? t->n_elems : 1) * sizeof *x);
    if (!x || mk_weights_to_f32(t, x, t->n_elems) != MK_OK) {
        fprintf(stderr, "reference tensor %s: %s\n", name, x ? mk_errmsg() : "out of memory");
        exit(1);
    }
    if (n) *n = (size_t)t->n_elems;
    return x;
}

float *ref_tensor_n(const mk_st *st, const char *name, size_t want, const char *hint) {
    size_t got;
    float *x = ref_tensor(st, name, &got, hint);
    if (got != want) {
        fprintf(stderr, "reference tensor %s has %zu values, expected %zu (rerun %s)\n", name, got,
                want, hint);
        exit(1);
    }
    return x;
}

void ref_tensor_into(const mk_st *st, const char *name, float *dst, size_t n, const char *hint) {
    float *x = ref_tensor_n(st, name, n, hint);
    memcpy(dst, x, n * sizeof *x);
    free(x);
}
