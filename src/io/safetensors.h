/* safetensors.h - Hugging Face safetensors reader (mmap, strict header
 * validation) and writer.
 *
 * File: u64 little-endian header size N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"k": "v", ...}}
 * then the data section; offsets are relative to its start.
 */
#ifndef MK_SAFETENSORS_H
#define MK_SAFETENSORS_H

#include <stddef.h>

#include "../core/tensor.h"

#define MK_ST_MAX_HEADER (100u << 20) /* refuse headers over 100 MiB */

typedef struct mk_st mk_st;

int mk_st_open(const char *path, mk_st **out);
int mk_st_open_mem(const void *data, size_t size, const char *label, mk_st **out);
void mk_st_close(mk_st *st);

/* ---- additions (safetensors.c owner) ----
 * By default a tensor of a dtype medrek does not compute with (I64, U8,
 * F64, F8_*, ...) fails the open with MK_ERR_UNSUPPORTED naming it. With
 * MK_ST_SKIP_UNSUPPORTED such tensors are validated like the others
 * (shape, offsets, size, coverage) but left out of the tensor list and
 * the name lookup; they are listed by mk_st_skipped. Real checkpoints
 * carry such buffers (e.g. an I64 "position_ids"). F4/F6 types, whose byte
 * size this reader does not know, still fail. */
enum { MK_ST_SKIP_UNSUPPORTED = 1 };
int mk_st_open_flags(const char *path, int flags, mk_st **out);
int mk_st_open_mem_flags(const void *data, size_t size, const char *label, int flags,
                         mk_st **out);
size_t mk_st_n_skipped(const mk_st *st);
/* Skipped tensor i: its name (returned), safetensors dtype string and
 * shape (n_dims <= MK_MAX_DIMS). NULL when i is out of range. */
const char *mk_st_skipped(const mk_st *st, size_t i, const char **dtype, int *n_dims,
                          const int64_t **shape);

size_t mk_st_n_tensors(const mk_st *st);
const mk_tensor_view *mk_st_tensor(const mk_st *st, size_t i);
const mk_tensor_view *mk_st_find(const mk_st *st, const char *name);

size_t mk_st_n_meta(const mk_st *st);
/* NUL-terminated key and value of metadata entry i. */
void mk_st_meta_at(const mk_st *st, size_t i, const char **key, const char **val);
const char *mk_st_meta(const mk_st *st, const char *key); /* NULL if absent */

/* Writer: tensors are converted from f32 to dtype (MK_F32, MK_F16, MK_BF16)
 * at the call; written atomically. */
typedef struct mk_st_writer mk_st_writer;
mk_st_writer *mk_st_writer_new(void);
void mk_st_writer_free(mk_st_writer *w);
int mk_st_w_meta(mk_st_writer *w, const char *key, const char *val);
int mk_st_w_tensor(mk_st_writer *w, const char *name, mk_dtype dtype,
                   const float *data, int n_dims, const int64_t *shape);
int mk_st_w_write(mk_st_writer *w, const char *path);

#endif
