/* weights.h - one name -> tensor lookup over the files a model comes in:
 * a GGUF file, a single .safetensors file, or a Hugging Face model
 * directory (config.json plus model.safetensors, or several shards listed
 * in model.safetensors.index.json).
 */
#ifndef MK_WEIGHTS_H
#define MK_WEIGHTS_H

#include "../core/tensor.h"

typedef enum { MK_WFMT_GGUF = 1, MK_WFMT_SAFETENSORS = 2, MK_WFMT_HFDIR = 3 } mk_wfmt;

typedef struct mk_gguf mk_gguf;
typedef struct mk_weights mk_weights;

int mk_weights_open(const char *path, mk_weights **out);
void mk_weights_close(mk_weights *w);
mk_wfmt mk_weights_format(const mk_weights *w);
const char *mk_weights_path(const mk_weights *w);
size_t mk_weights_n(const mk_weights *w);
const mk_tensor_view *mk_weights_at(const mk_weights *w, size_t i);
const mk_tensor_view *mk_weights_find(const mk_weights *w, const char *name);
/* The GGUF handle (metadata) when the format is GGUF, else NULL. */
const mk_gguf *mk_weights_gguf(const mk_weights *w);
/* For a HF directory (or a .safetensors file with a config.json beside it):
 * the config.json text (NUL-terminated), else NULL. */
const char *mk_weights_config_json(const mk_weights *w);
/* Directory holding the model files (for tokenizer.json etc.). */
const char *mk_weights_dir(const mk_weights *w);

/* Safetensors tensors of dtypes medrek does not compute with (I64, U8,
 * F64, ...) are validated but skipped: absent from the lookup, listed by
 * mk_st_skipped on the file handles below. GGUF refuses them at open.
 *
 * The safetensors files behind the handle, for inspection: 1 for a
 * .safetensors file, the shards of a HF directory (in the order first
 * named by the index), 0 for GGUF. *path (optional) gets the file's path. */
typedef struct mk_st mk_st;
size_t mk_weights_n_files(const mk_weights *w);
const mk_st *mk_weights_file(const mk_weights *w, size_t i, const char **path);

/* Copy a tensor to f32 (any stored dtype), checking the element count. */
int mk_weights_to_f32(const mk_tensor_view *t, float *dst, uint64_t n_expected);

#endif
