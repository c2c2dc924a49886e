/* tensor.h - a read-only view of a stored tensor (inside an mmap). */
#ifndef MK_TENSOR_H
#define MK_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define MK_MAX_DIMS 4

typedef struct {
    const char *name;  /* NUL-terminated, owned by the file handle */
    mk_dtype dtype;
    int n_dims;
    /* Row-major shape, outermost first, as PyTorch and safetensors write
     * it: a Linear weight is (out, in). GGUF stores its dims innermost
     * first; the GGUF reader reverses them so every view agrees. */
    int64_t shape[MK_MAX_DIMS];
    uint64_t n_elems;
    const void *data;  /* points into the mapping; any alignment */
    size_t nbytes;
} mk_tensor_view;

#endif
