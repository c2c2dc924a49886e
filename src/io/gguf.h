/* gguf.h - GGUF (v2, v3) reader through mmap with strict validation, and a
 * writer for the models this project makes.
 *
 * Tensor views use row-major shapes (outermost first); see core/tensor.h.
 * Every string handed out points into the mapping and is NOT NUL-terminated
 * unless stated: use the returned length.
 */
#ifndef MK_GGUF_H
#define MK_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tensor.h"

typedef enum {
    MK_GGUF_UINT8 = 0, MK_GGUF_INT8 = 1, MK_GGUF_UINT16 = 2, MK_GGUF_INT16 = 3,
    MK_GGUF_UINT32 = 4, MK_GGUF_INT32 = 5, MK_GGUF_FLOAT32 = 6, MK_GGUF_BOOL = 7,
    MK_GGUF_STRING = 8, MK_GGUF_ARRAY = 9, MK_GGUF_UINT64 = 10, MK_GGUF_INT64 = 11,
    MK_GGUF_FLOAT64 = 12
} mk_gguf_type;

typedef struct mk_gguf mk_gguf;

/* ---- reading ----
 * Refused at open: GGUF v1 and versions > 3, big-endian files, arrays of
 * arrays, and any tensor whose ggml type is not F32/F16/BF16/Q8_0/Q4_0
 * (MK_ERR_UNSUPPORTED, the message names the tensor and the type number);
 * every structural problem is MK_ERR_FORMAT with the file and the fault. */
int mk_gguf_open(const char *path, mk_gguf **out);
/* Same validation on a buffer the caller keeps alive (fuzzing, tests). */
int mk_gguf_open_mem(const void *data, size_t size, const char *label, mk_gguf **out);
void mk_gguf_close(mk_gguf *g);

uint32_t mk_gguf_version(const mk_gguf *g);
uint32_t mk_gguf_alignment(const mk_gguf *g);
size_t mk_gguf_file_size(const mk_gguf *g);

size_t mk_gguf_n_kv(const mk_gguf *g);
/* Index of key, or -1. */
long mk_gguf_find(const mk_gguf *g, const char *key);
const char *mk_gguf_kv_key(const mk_gguf *g, size_t i, size_t *len);
mk_gguf_type mk_gguf_kv_type(const mk_gguf *g, size_t i);
/* For arrays: element type and count (count 0 and type 0 for scalars). */
mk_gguf_type mk_gguf_kv_arr_type(const mk_gguf *g, size_t i);
uint64_t mk_gguf_kv_arr_n(const mk_gguf *g, size_t i);

/* Typed getters by key. Integer getters accept any integer type whose value
 * fits; float getter accepts FLOAT32/FLOAT64. MK_ERR_NOTFOUND when absent
 * (message set), MK_ERR_FORMAT on a type mismatch. */
int mk_gguf_get_u64(const mk_gguf *g, const char *key, uint64_t *v);
int mk_gguf_get_u32(const mk_gguf *g, const char *key, uint32_t *v);
int mk_gguf_get_i64(const mk_gguf *g, const char *key, int64_t *v);
int mk_gguf_get_f32(const mk_gguf *g, const char *key, float *v);
int mk_gguf_get_bool(const mk_gguf *g, const char *key, int *v);
int mk_gguf_get_str(const mk_gguf *g, const char *key, const char **s, size_t *len);

/* Arrays: element i of the array at kv index k. Numeric elements are
 * converted (integers to int64/f64 as requested); strings by pointer. */
int mk_gguf_arr_str(const mk_gguf *g, size_t k, uint64_t i, const char **s, size_t *len);
int mk_gguf_arr_i64(const mk_gguf *g, size_t k, uint64_t i, int64_t *v);
int mk_gguf_arr_f64(const mk_gguf *g, size_t k, uint64_t i, double *v);

/* ---- additions (gguf.c owner) ----
 * Value that does not fit the requested integer type: MK_ERR_RANGE.
 * By-index getters (for printing every entry): same rules as by key. */
const char *mk_gguf_type_name(mk_gguf_type t); /* "uint32", "string", ... */
const char *mk_gguf_label(const mk_gguf *g);   /* path or label given at open */
size_t mk_gguf_data_offset(const mk_gguf *g);  /* file offset of the data section */
int mk_gguf_kv_get_u64(const mk_gguf *g, size_t i, uint64_t *v);
int mk_gguf_kv_get_i64(const mk_gguf *g, size_t i, int64_t *v);
int mk_gguf_kv_get_f64(const mk_gguf *g, size_t i, double *v); /* FLOAT32/64 */
int mk_gguf_kv_get_bool(const mk_gguf *g, size_t i, int *v);
int mk_gguf_kv_get_str(const mk_gguf *g, size_t i, const char **s, size_t *len);
/* Numeric/bool arrays: pointer to the first element in the mapping
 * (little-endian, any alignment); NULL for strings and scalars. */
const void *mk_gguf_arr_data(const mk_gguf *g, size_t k);
/* The value of entry i exactly as stored (arrays: from the element type
 * field on); used to copy entries between files. */
const void *mk_gguf_kv_raw(const mk_gguf *g, size_t i, size_t *len);
/* Offset of tensor i's data relative to the data section. */
uint64_t mk_gguf_tensor_offset(const mk_gguf *g, size_t i);

size_t mk_gguf_n_tensors(const mk_gguf *g);
const mk_tensor_view *mk_gguf_tensor(const mk_gguf *g, size_t i);
const mk_tensor_view *mk_gguf_find_tensor(const mk_gguf *g, const char *name);

/* ---- writing ----
 * Values and tensor data are copied or converted at the call; the file is
 * written atomically (path.tmp then rename). Version 3, alignment 32. */
typedef struct mk_gguf_writer mk_gguf_writer;
mk_gguf_writer *mk_gguf_writer_new(void);
void mk_gguf_writer_free(mk_gguf_writer *w);
int mk_gguf_w_u32(mk_gguf_writer *w, const char *key, uint32_t v);
int mk_gguf_w_i32(mk_gguf_writer *w, const char *key, int32_t v);
int mk_gguf_w_u64(mk_gguf_writer *w, const char *key, uint64_t v);
int mk_gguf_w_f32(mk_gguf_writer *w, const char *key, float v);
int mk_gguf_w_bool(mk_gguf_writer *w, const char *key, int v);
int mk_gguf_w_str(mk_gguf_writer *w, const char *key, const char *v);
int mk_gguf_w_arr_str(mk_gguf_writer *w, const char *key, const char *const *v, size_t n);
int mk_gguf_w_arr_f32(mk_gguf_writer *w, const char *key, const float *v, size_t n);
int mk_gguf_w_arr_i32(mk_gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Add a tensor from f32 data (row-major shape, outermost first), stored as
 * dtype (MK_F32, MK_F16, MK_BF16, MK_Q8_0, MK_Q4_0; block types need the innermost
 * dim to be a multiple of 32). */
int mk_gguf_w_tensor(mk_gguf_writer *w, const char *name, mk_dtype dtype,
                     const float *data, int n_dims, const int64_t *shape);
int mk_gguf_w_write(mk_gguf_writer *w, const char *path);

/* ---- writer additions (gguf.c owner) ----
 * Keys and tensors are written in insertion order; duplicate keys or
 * tensor names are refused (MK_ERR_ARG). Tensor names must be shorter than
 * 64 bytes (llama.cpp's limit). A "general.alignment" uint32 entry (power
 * of two <= 256) changes the alignment used; default 32. */
/* Any numeric or bool type; v points to one value of the matching C type
 * (uint8_t .. double; bool as a uint8_t 0/1). */
int mk_gguf_w_scalar(mk_gguf_writer *w, const char *key, mk_gguf_type type, const void *v);
/* Array of a numeric or bool type; v points to n packed host values. */
int mk_gguf_w_arr(mk_gguf_writer *w, const char *key, mk_gguf_type elem, const void *v, size_t n);
int mk_gguf_w_strn(mk_gguf_writer *w, const char *key, const char *v, size_t len);
/* lens may be NULL (strings are then NUL-terminated). */
int mk_gguf_w_arr_strn(mk_gguf_writer *w, const char *key, const char *const *v, const size_t *lens, size_t n);
/* Copy metadata entry i of an open file verbatim. */
int mk_gguf_w_copy_kv(mk_gguf_writer *w, const mk_gguf *g, size_t i);
/* Add a tensor from bytes already in dtype's layout (nbytes must match the
 * shape), e.g. BF16 data or blocks copied from another file. */
int mk_gguf_w_tensor_raw(mk_gguf_writer *w, const char *name, mk_dtype dtype, const void *data, size_t nbytes,
                         int n_dims, const int64_t *shape);

#endif
