/* llama.h - the frozen decoder-only LLM (Llama family) that MedREK edits:
 * configuration, weights read in place, batched forward with per-sequence
 * continuous prefixes, backward to the prefixes (and optionally to every
 * F32 weight), KV-cache decoding and sampling.
 *
 * A model is opened from a GGUF file (llama architecture) or a Hugging Face
 * directory / .safetensors file with config.json (LlamaForCausalLM). The
 * weights stay in the file mapping (F32, F16, BF16, Q8_0, Q4_0); the matmuls
 * read them in place. An opened model is read-only: several threads may run
 * forwards on it at once (each call allocates its own buffers).
 *
 * Dimension letters: B sequences, L_i tokens and n_i prefix vectors of
 * sequence i, T_i = n_i + L_i positions, D hidden, V vocab, NH heads,
 * NKV key/value heads, HS head size, F feed-forward size, NL layers.
 */
#ifndef MK_LLAMA_H
#define MK_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "../core/dtype.h"

typedef struct mk_tokenizer mk_tokenizer;

typedef enum { MK_ROPE_SCALING_NONE = 0, MK_ROPE_SCALING_LINEAR = 1, MK_ROPE_SCALING_LLAMA3 = 2 } mk_rope_scaling;

typedef struct {
    int n_vocab;      /* V */
    int dim;          /* D, the width of the input embeddings = prefix vectors */
    int n_layers;     /* NL */
    int n_heads;      /* NH */
    int n_kv_heads;   /* NKV (divides NH) */
    int head_dim;     /* HS (usually D / NH); RoPE rotates all HS dims */
    int ffn_dim;      /* F */
    int n_ctx;        /* largest number of positions (prefix + tokens) */
    float norm_eps;   /* RMSNorm epsilon */
    float rope_theta; /* RoPE base */
    mk_rope_scaling rope_scaling;
    float rope_factor;           /* linear / llama3 factor */
    float rope_low_freq_factor;  /* llama3 */
    float rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;           /* llama3 original_max_position_embeddings */
    int tied_embeddings;  /* output projection = token embedding */
    int rope_interleaved; /* 1: GGUF's permuted Q/K (pairs 2i,2i+1); 0: HF rotate-half */
    mk_dtype wtype;       /* dtype of the attention Q weight of layer 0 (informative) */
} mk_llama_config;

typedef struct mk_llama mk_llama;

enum {
    MK_LLAMA_NO_TOKENIZER = 1, /* open flag: do not load the model's tokenizer */
    /* open flag: copy every weight (dequantised) into one private, writable
     * F32 block laid out like mk_llama_grads (for pretraining small models:
     * see mk_llama_params); the default reads the file mapping in place */
    MK_LLAMA_OWN_WEIGHTS = 2
};

/* Open a model: a .gguf file, a HF model directory, or a .safetensors file
 * with config.json beside it. Validates every tensor (presence, dtype,
 * shape) against the config. The model's own tokenizer is loaded when
 * present; failing to load it is not an error (mk_llama_tokenizer gives
 * NULL). */
int mk_llama_open(const char *path, mk_llama **out);
int mk_llama_open_ex(const char *path, int flags, mk_llama **out);
void mk_llama_close(mk_llama *m);

const mk_llama_config *mk_llama_cfg(const mk_llama *m);
/* The model's tokenizer, or NULL when it has none (or it failed to load). */
const mk_tokenizer *mk_llama_tokenizer(const mk_llama *m);
/* Replace the tokenizer; the model takes ownership (NULL allowed). */
void mk_llama_set_tokenizer(mk_llama *m, mk_tokenizer *tok);
/* Why the tokenizer could not be loaded ("" when it was or none exists). */
const char *mk_llama_tokenizer_error(const mk_llama *m);
/* Stable identity of the model, e.g. "llama-V512-D64-L2-H4-K2-F172-<16 hex>":
 * the config plus a hash of a few embedding rows (as f32). The same model in
 * HF and GGUF layout with the same embedding dtype gives the same string.
 * Used to refuse an editor built for another LLM. */
const char *mk_llama_fingerprint(const mk_llama *m);
/* Bytes of weight data the model maps (for GB/s figures). */
size_t mk_llama_weight_bytes(const mk_llama *m);

/* Token embeddings: out (n, D) = emb(ids). MK_ERR_RANGE for a bad id. */
int mk_llama_embed(const mk_llama *m, const int32_t *ids, int n, float *out);

/* ---- batched forward / backward (training and scoring) ---- */

typedef struct {
    const int32_t *tokens; /* (L) token ids */
    int n_tokens;          /* L >= 1 */
    const float *prefix;   /* (n, D) continuous prompt vectors, or NULL */
    int n_prefix;          /* n >= 0 */
} mk_llama_seq;

/* Activations a forward keeps for the backward (layer inputs; the rest is
 * recomputed one layer at a time during the backward). */
typedef struct mk_llama_acts mk_llama_acts;

/* Forward B sequences; the model sees [prefix_i ; emb(tokens_i)] at
 * positions 0..T_i-1, causal. logits (sum_i L_i, V) receive the logits of
 * the token positions, sequence after sequence (row offset of sequence i
 * = L_0 + .. + L_{i-1}). When acts is not NULL the activations needed by
 * mk_llama_backward are returned there (free with mk_llama_acts_free).
 * Errors: MK_ERR_RANGE (token id out of range, T_i > n_ctx), MK_ERR_ARG. */
int mk_llama_forward(const mk_llama *m, const mk_llama_seq *seqs, int B, float *logits,
                     mk_llama_acts **acts);
void mk_llama_acts_free(mk_llama_acts *a);

/* Gradients of every weight, in one block (F32 models only), each in the
 * stored layout of its tensor (GGUF rows of Q/K stay permuted). */
typedef struct {
    float *tok_emb;   /* (V, D) */
    float *attn_norm; /* (NL, D) */
    float *wq;        /* (NL, NH*HS, D) */
    float *wk;        /* (NL, NKV*HS, D) */
    float *wv;        /* (NL, NKV*HS, D) */
    float *wo;        /* (NL, D, NH*HS) */
    float *ffn_norm;  /* (NL, D) */
    float *w_gate;    /* (NL, F, D) */
    float *w_up;      /* (NL, F, D) */
    float *w_down;    /* (NL, D, F) */
    float *out_norm;  /* (D) */
    float *output;    /* (V, D); NULL when tied (its gradient goes to tok_emb) */
    float *block;     /* the one allocation holding all of the above */
    size_t n;         /* floats in block */
} mk_llama_grads;

/* Allocate (zeroed) weight gradients; MK_ERR_UNSUPPORTED unless every
 * weight matrix is F32. */
int mk_llama_grads_init(const mk_llama *m, mk_llama_grads *g);
void mk_llama_grads_zero(mk_llama_grads *g);
void mk_llama_grads_free(mk_llama_grads *g);

/* For a model opened with MK_LLAMA_OWN_WEIGHTS: pointers to its writable
 * weights, with exactly the layout of mk_llama_grads (p->block and p->n
 * included, owned by the model), so an optimiser can run one flat loop
 * over params.block and grads.block. Changes take effect at the next
 * forward. MK_ERR_UNSUPPORTED for a model reading its file in place. */
int mk_llama_params(mk_llama *m, mk_llama_grads *p);

/* Write the model's current weights as a GGUF file (llama architecture,
 * Q/K rows in GGUF's interleaved order, rope_freqs.weight when the RoPE
 * frequencies are scaled), matrices stored as dtype (MK_F32, MK_F16,
 * MK_Q8_0, MK_Q4_0), norms F32. The tokenizer is not written. */
int mk_llama_save_gguf(const mk_llama *m, const char *path, mk_dtype dtype);

/* Backward from dlogits (sum_i L_i, V) (same layout as the forward's
 * logits). dprefix[i] (n_i, D) receive (ADD) d/d prefix_i; dprefix or any
 * dprefix[i] may be NULL. dw (may be NULL) receives (ADDS) the weight
 * gradients; with dw NULL no weight-gradient memory is touched. acts stay
 * valid (the backward may run again with other dlogits). */
int mk_llama_backward(const mk_llama *m, mk_llama_acts *acts, const float *dlogits,
                      float **dprefix, mk_llama_grads *dw);

/* ---- KV cache and incremental decoding ---- */

typedef struct mk_llama_kv mk_llama_kv;

/* A cache for up to n_ctx positions (0: the model's context length). */
int mk_llama_kv_new(const mk_llama *m, int n_ctx, mk_llama_kv **out);
void mk_llama_kv_free(mk_llama_kv *kv);
int mk_llama_kv_len(const mk_llama_kv *kv);      /* positions filled */
void mk_llama_kv_truncate(mk_llama_kv *kv, int n); /* keep the first n positions */

/* Append positions to the cache: first n_prefix prefix vectors (n_prefix, D)
 * (may be 0/NULL), then n_tokens tokens. logits (V), when not NULL,
 * receives the logits of the last appended position. MK_ERR_RANGE when the
 * cache would overflow or an id is out of range. */
int mk_llama_decode(const mk_llama *m, mk_llama_kv *kv, const float *prefix, int n_prefix,
                    const int32_t *tokens, int n_tokens, float *logits);

/* ---- sampling and generation ---- */

typedef struct {
    int max_tokens;    /* new tokens at most (default 32) */
    float temperature; /* <= 0: greedy (argmax) */
    int top_k;         /* 0: off */
    float top_p;       /* >= 1: off */
    uint64_t seed;
    int32_t eos_id;    /* stop after producing this id; -1: never */
    /* Called with every new token; returning non-zero stops generation. */
    int (*on_token)(void *ud, int32_t id);
    void *ud;
} mk_gen_params;

void mk_gen_params_default(mk_gen_params *p);

typedef struct {
    int n_prompt;        /* positions fed before the first sampled token */
    int n_generated;
    double prompt_s;     /* seconds spent on the prompt (prefill) */
    double gen_s;        /* seconds spent generating */
} mk_gen_stats;

/* Small seeded RNG (splitmix64 seeding + xoshiro256**), and one sampling
 * step over logits (V) (modified in place: temperature, top-k, top-p). */
typedef struct { uint64_t s[4]; } mk_rng;
void mk_rng_seed(mk_rng *r, uint64_t seed);
uint64_t mk_rng_next(mk_rng *r);
float mk_rng_uniform(mk_rng *r); /* [0, 1) */
int32_t mk_sample(float *logits, int V, const mk_gen_params *p, mk_rng *rng);

/* Generate from [prefix ; prompt]: out (max_tokens) receives the new ids,
 * *n_out their number (the EOS, when produced, is included). The prompt
 * must have at least one token. stats may be NULL. */
int mk_llama_generate(const mk_llama *m, const float *prefix, int n_prefix,
                      const int32_t *prompt, int n_prompt, const mk_gen_params *p,
                      int32_t *out, int *n_out, mk_gen_stats *stats);

#endif
