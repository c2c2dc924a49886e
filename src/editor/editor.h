/* editor.h - the MedREK editor as a whole: the fine-tuned encoder (with
 * its tokenizer), the q and k heads, the prototype and the prompt encoder,
 * with their parameters in ONE block; creation, one-file save/load,
 * fingerprint, the batched inference entry points the knowledge base uses
 * (keys, values, prompts, prototype, queries) and the per-module
 * forward/backward passes training uses.
 *
 * Editor file: one safetensors file. Tensors (f32):
 *   roberta.* / bert.*            the encoder, Hugging Face names
 *   q_head.fc1.{weight,bias}      (R, 4H), (R)
 *   q_head.fc2.{weight,bias}      (R, R), (R)
 *   k_head.*                      same shapes
 *   prototype                     (P, H)
 *   prompt_encoder.*              see prompt_encoder.h (query_proj, key_proj,
 *                                 value_proj, mha.in_proj_weight, ... | fc1, fc2)
 * __metadata__ (all strings): format "medrek-editor", version "1",
 *   prompt_encoder "attn"|"mlp", prompt_tokens T, rep_dim R, llm_dim D,
 *   prompt_heads NH, proto_tokens P, llm_fingerprint, llm_name,
 *   seed, encoder_config (config.json text), the tokenizer text:
 *   tokenizer_json, or tokenizer_vocab_json + tokenizer_merges_txt, and
 *   fingerprint (mk_editor_fingerprint at save; load recomputes and refuses
 *   a mismatch, so a modified or corrupted file is caught).
 * The file alone is enough to use the editor.
 *
 * Dimension letters: n sentences, H encoder hidden, R representation,
 * T prompt tokens, D LLM hidden, P prototype tokens.
 */
#ifndef MK_EDITOR_H
#define MK_EDITOR_H

#include <stddef.h>
#include <stdint.h>

#include "../model/roberta.h"
#include "krm.h"
#include "prompt_encoder.h"

#define MK_EDITOR_FORMAT "medrek-editor"
#define MK_EDITOR_VERSION 1

typedef struct {
    mk_penc_kind kind; /* MK_PENC_ATTN (MedREK) or MK_PENC_MLP (RECIPE) */
    int T;             /* prompt tokens (default 3) */
    int R;             /* rep_dim (default 4096) */
    int D;             /* LLM hidden size (required) */
    int NH;            /* prompt-encoder heads (default 8; must divide D) */
    int P;             /* prototype tokens (default 10) */
    uint64_t seed;     /* initialisation seed (default 1) */
    const char *llm_fingerprint; /* mk_llama_fingerprint of the LLM ("" if unknown) */
    const char *llm_name;        /* path or name of the LLM ("" if unknown) */
} mk_editor_config;

void mk_editor_config_default(mk_editor_config *c);

/* Named pointers into one parameter block (also used for the gradient and
 * Adam blocks, which have the same layout). */
typedef struct {
    mk_enc_params enc;  /* encoder, see roberta.h */
    mk_head_params q;   /* q head: F = 4H -> R */
    mk_head_params k;   /* k head */
    float *proto;       /* (P, H) prototype vectors */
    mk_penc_params pe;  /* prompt encoder */
} mk_editor_params;

typedef struct mk_editor {
    mk_editor_config cfg;   /* strings owned by the editor */
    mk_enc_config enc_cfg;
    mk_penc_config pe_cfg;
    int F;                  /* 4H */
    char *enc_config_json;  /* the encoder's config.json text */
    /* tokenizer text embedded in the file: either tok_json, or vocab+merges */
    char *tok_json, *tok_vocab, *tok_merges;
    mk_tokenizer *tok;

    size_t n_params;        /* floats in each block */
    float *block;           /* parameters */
    mk_editor_params p;
    /* Training state (NULL until mk_editor_train_alloc). */
    float *gblock, *mblock, *vblock;
    mk_editor_params g;     /* gradients */
    mk_editor_params m, v;  /* Adam moments */
    int64_t adam_t;         /* Adam steps taken */

    char fp[64];            /* last computed fingerprint */
} mk_editor;

/* A randomly initialised editor (reference init: every Linear of the heads
 * and prompt encoder uniform(-1/sqrt(in), 1/sqrt(in)) for weight and bias,
 * MultiheadAttention as torch initialises it, prototype uniform
 * [-0.05, 0.05), all from our own RNG seeded with cfg->seed) around the
 * encoder at encoder_path (HF directory, or .safetensors with config.json
 * beside it; its tokenizer is required). */
int mk_editor_init(const mk_editor_config *cfg, const char *encoder_path, mk_editor **out);
/* One safetensors file, written atomically. */
int mk_editor_save(const mk_editor *ed, const char *path);
/* Validates format, version, metadata, every tensor's presence and shape,
 * and the stored fingerprint; leaves the fingerprint in ed->fp (no need to
 * hash the parameters again until they change). */
int mk_editor_load(const char *path, mk_editor **out);
void mk_editor_free(mk_editor *ed);

/* Stable identity of the editor, "editor-<16 hex>": FNV-1a 64 over its
 * configuration (kind, T, R, D, NH, P, the LLM fingerprint, the encoder
 * config, the tokenizer text) and then the parameters taken 8 bytes at a
 * time, with a final avalanche. Not the LLM's name or the seed. The
 * knowledge base tags stored vectors with it. Reads every parameter (about
 * 0.3 ms per MB); the string is stored in ed->fp (overwritten by the next
 * call). */
const char *mk_editor_fingerprint(mk_editor *ed);
/* MK_ERR_MISMATCH (with a message saying what differs) unless the editor
 * was made for an LLM of width D and, when both are non-empty, the same
 * fingerprint. */
int mk_editor_check_llm(const mk_editor *ed, int D, const char *llm_fingerprint);

/* The knowledge sentence prompt + " " + target, without the space when
 * the prompt ends with a space or the target starts with one. malloc'd
 * (NULL when out of memory). */
char *mk_knowledge_sentence(const char *prompt, const char *target);

/* ---- batched inference (chunked internally; thread-safe on a const
 *      editor: each call uses its own buffers) ---- */

/* keys (n, R) = q_head(encode(prompts)) */
int mk_editor_keys(const mk_editor *ed, const char *const *prompts, int n, float *keys);
/* q (n, R) = q_head(encode(texts)): the retrieval query (same module as keys) */
int mk_editor_query(const mk_editor *ed, const char *const *texts, int n, float *q);
/* values (n, R) = k_head(encode(knowledge sentence of prompts[i], targets[i])) */
int mk_editor_values(const mk_editor *ed, const char *const *prompts,
                     const char *const *targets, int n, float *values);
/* prompts (n, T, D) = prompt_encoder(values (n, R)) */
int mk_editor_prompts(const mk_editor *ed, const float *values, int n, float *prompts);
/* key (R): the prototype's k-head representation (row 0 of the knowledge base) */
int mk_editor_prototype(const mk_editor *ed, float *key);

/* ---- training: passes with backward into ed->g ---- */

enum { MK_HEAD_Q = 0, MK_HEAD_K = 1 };

/* Allocate (zeroed) gradients and Adam moments. */
int mk_editor_train_alloc(mk_editor *ed);
void mk_editor_zero_grad(mk_editor *ed);
/* out (n, R) = head(encode(texts)) in one pass (no chunking), keeping the
 * activations in pass for mk_editor_rep_backward. */
int mk_editor_rep_forward(const mk_editor *ed, int head, const char *const *texts, int n,
                          float *out, mk_krm_pass *pass);
/* Adds d/dparams of sum(out * dout) into ed->g (encoder and the head). */
int mk_editor_rep_backward(mk_editor *ed, int head, const mk_krm_pass *pass, const float *dout);
/* out (R): the prototype representation, keeping the pass. */
int mk_editor_proto_forward(const mk_editor *ed, float *out, mk_krm_pass *pass);
/* Adds into ed->g (encoder, k head, prototype). */
int mk_editor_proto_backward(mk_editor *ed, const mk_krm_pass *pass, const float *dout);
/* prompts (n, T, D) from values (n, R), keeping the pass. */
int mk_editor_prompts_forward(const mk_editor *ed, const float *values, int n, float *prompts,
                              mk_penc_pass *pass);
/* Adds into ed->g (prompt encoder) and dvalues (n, R) (may be NULL). */
int mk_editor_prompts_backward(mk_editor *ed, const mk_penc_pass *pass, const float *dprompts,
                               float *dvalues);
/* One Adam step over every parameter (no weight decay):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr mhat / (sqrt(vhat) + eps). */
void mk_editor_adam_step(mk_editor *ed, float lr, float beta1, float beta2, float eps);

#endif
