/* ref.h - reading the committed reference tensors (safetensors files
 * written by the PyTorch scripts in tools/). A missing or misshaped tensor
 * stops the test with a message naming the script to rerun. */
#ifndef MK_TEST_REF_H
#define MK_TEST_REF_H

#include <stddef.h>

#include "io/safetensors.h"

/* Open a reference file; exits with the hint when it cannot be read. */
mk_st *ref_open(const char *path, const char *hint);
/* Tensor `name` as a malloc'd f32 copy; *n (may be NULL) its size. */
float *ref_tensor(const mk_st *st, const char *name, size_t *n, const char *hint);
/* Same, checking it has exactly `want` values. */
float *ref_tensor_n(const mk_st *st, const char *name, size_t want, const char *hint);
/* Copy tensor `name` (exactly n values) into dst. */
void ref_tensor_into(const mk_st *st, const char *name, float *dst, size_t n, const char *hint);

#endif
