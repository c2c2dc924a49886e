/* roberta.h - the BERT-family encoder MedREK fine-tunes (RoBERTa or BERT):
 * configuration, weights (f32, in a block the caller may own), batched
 * forward over token ids with padding, the "embedding-free" forward used by
 * the prototype, and the backward to every weight and to the layer inputs.
 *
 * Layers are post-LN (x = LN(x + attn(x)); x = LN(x + ffn(x))) with exact
 * GELU; the pooler is tanh(Wp h0 + bp) on the first token.
 * RoBERTa position ids start at pad_id + 1 and padding gets pad_id; BERT's
 * are 0..L-1. Every token uses token type 0.
 *
 * Dimension letters: n sentences, L tokens (padded), H hidden, NH heads,
 * HS = H / NH, I intermediate size, NL layers, V vocab.
 */
#ifndef MK_ROBERTA_H
#define MK_ROBERTA_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tensor.h"

typedef struct mk_tokenizer mk_tokenizer;

typedef enum { MK_ENC_ROBERTA = 1, MK_ENC_BERT = 2 } mk_enc_type;

typedef struct {
    mk_enc_type type;
    int vocab;      /* V */
    int hidden;     /* H */
    int n_layers;   /* NL */
    int n_heads;    /* NH (divides H) */
    int inter;      /* I */
    int max_pos;    /* rows of the position table */
    int type_vocab; /* rows of the token-type table (>= 1) */
    int pad_id;     /* padding token id (RoBERTa: also padding_idx of positions) */
    float ln_eps;
} mk_enc_config;

/* Parse a Hugging Face config.json (model_type "roberta" or "bert"), with
 * range checks. label names the file in messages. */
int mk_enc_config_parse(const char *json, const char *label, mk_enc_config *cfg);
/* The config as a compact config.json text (malloc'd), readable by
 * mk_enc_config_parse and by Hugging Face. */
char *mk_enc_config_json(const mk_enc_config *cfg);
/* Longest token sequence the encoder accepts, specials included
 * (RoBERTa: max_pos - pad_id - 1, i.e. 512 for roberta-base; BERT: max_pos). */
int mk_enc_max_len(const mk_enc_config *cfg);

/* Pointers into one float block; every weight f32. */
typedef struct {
    float *wte;        /* (V, H) word embeddings */
    float *wpe;        /* (max_pos, H) position embeddings */
    float *wtt;        /* (type_vocab, H) token-type embeddings */
    float *emb_ln_w;   /* (H) */
    float *emb_ln_b;   /* (H) */
    float *qw, *kw, *vw; /* (NL, H, H) attention.self.{query,key,value}.weight */
    float *qb, *kb, *vb; /* (NL, H) */
    float *ow;         /* (NL, H, H) attention.output.dense.weight */
    float *ob;         /* (NL, H) */
    float *ln1_w;      /* (NL, H) attention.output.LayerNorm */
    float *ln1_b;      /* (NL, H) */
    float *fcw;        /* (NL, I, H) intermediate.dense.weight */
    float *fcb;        /* (NL, I) */
    float *projw;      /* (NL, H, I) output.dense.weight */
    float *projb;      /* (NL, H) */
    float *ln2_w;      /* (NL, H) output.LayerNorm */
    float *ln2_b;      /* (NL, H) */
    float *pool_w;     /* (H, H) pooler.dense.weight */
    float *pool_b;     /* (H) */
} mk_enc_params;

/* Floats needed by the parameters (0 on overflow / invalid config). */
size_t mk_enc_n_params(const mk_enc_config *cfg);
/* Point p into base (mk_enc_n_params floats); returns base + that count. */
float *mk_enc_point(mk_enc_params *p, float *base, const mk_enc_config *cfg);

/* The tensors in Hugging Face naming (no "roberta."/"bert." prefix), one per
 * layer-indexed weight: i in [0, mk_enc_n_tensors). name receives e.g.
 * "encoder.layer.3.attention.self.query.weight"; *data points at the
 * tensor's floats inside p; shape/n_dims describe it. */
int mk_enc_n_tensors(const mk_enc_config *cfg);
void mk_enc_tensor(const mk_enc_config *cfg, const mk_enc_params *p, int i, char name[128],
                   float **data, int *n_dims, int64_t shape[2]);

/* Fill p from stored tensors found by `find` (a name without prefix is
 * tried as is, then with "roberta." / "bert."). Checks presence, shape and
 * converts any dtype to f32. label names the source in messages. With
 * missing_pooler not NULL, an absent pooler is allowed (*missing_pooler
 * set to 1, p->pool_* left untouched): masked-LM checkpoints such as
 * roberta-base have none. */
typedef const mk_tensor_view *(*mk_tensor_find_fn)(void *ctx, const char *name);
int mk_enc_load_tensors(const mk_enc_config *cfg, mk_enc_params *p, mk_tensor_find_fn find,
                        void *ctx, const char *label, int *missing_pooler);

/* A standalone encoder: config, its own parameter block, its tokenizer. */
typedef struct {
    mk_enc_config cfg;
    mk_enc_params p;
    float *block;        /* mk_enc_n_params(cfg) floats */
    mk_tokenizer *tok;   /* may be NULL (ids-only use) */
    char *config_json;   /* config.json text as read */
    char *dir;           /* where it came from */
    int pooler_initialised; /* 1: the checkpoint had no pooler; it was
                               initialised as HF does (normal(0, 0.02), bias 0) */
} mk_encoder;

/* Open a Hugging Face encoder directory (config.json + model.safetensors
 * or shards, tokenizer files) or a .safetensors file with config.json
 * beside it. The tokenizer is required unless flags has
 * MK_ENC_NO_TOKENIZER. */
enum { MK_ENC_NO_TOKENIZER = 1 };
int mk_encoder_open(const char *path, int flags, mk_encoder **out);
void mk_encoder_free(mk_encoder *e);

/* ---- forward / backward ---- */

/* Activations of one forward, in one block with named pointers. Layer l
 * reads hidden[l] and writes hidden[l+1]; hidden[0] is the embedding
 * output (or the caller's vectors for the embedding-free path). */
typedef struct {
    int n, L, NL, H, NH, I;
    int from_ids;      /* 1: embeddings were used (ids valid) */
    int keep;          /* 1: every layer's activations kept (backward possible);
                          0: one layer's buffers reused (inference), and
                          hidden holds 2 slots */
    int32_t *ids;      /* (n, L) token ids (pads = pad_id) */
    int32_t *pos;      /* (n, L) position ids */
    float *mask;       /* (n, L) 1 real token, 0 padding */
    float *emb_sum;    /* (n, L, H) word + position + type, before the LayerNorm */
    float *emb_mean, *emb_rstd;   /* (n, L) */
    float *hidden;     /* (NL+1, n, L, H) */
    float *q, *k, *v;  /* (NL, n, L, H) */
    float *att;        /* (NL, n, NH, L, L) attention probabilities */
    float *atty;       /* (NL, n, L, H) heads concatenated, before the output dense */
    float *res1;       /* (NL, n, L, H) hidden + attention output (LayerNorm 1 input) */
    float *ln1;        /* (NL, n, L, H) */
    float *ln1_mean, *ln1_rstd;   /* (NL, n, L) */
    float *fch;        /* (NL, n, L, I) intermediate before GELU */
    float *fch_gelu;   /* (NL, n, L, I) */
    float *res2;       /* (NL, n, L, H) ln1 + FFN output (LayerNorm 2 input) */
    float *ln2_mean, *ln2_rstd;   /* (NL, n, L) */
    float *pool_in;    /* (n, H) first token of the last hidden states */
    float *pool_pre;   /* (n, H) Wp h0 + bp */
    float *pooled;     /* (n, H) tanh(pool_pre) */
    void *block;       /* the one allocation */
} mk_enc_acts;

/* Tokenise n texts (with <s> ... </s>), truncate to mk_enc_max_len
 * (keeping the final </s>) and pad to the longest: ids (n, L) and mask
 * (n, L) malloc'd, *L set. */
int mk_enc_tokenize(const mk_encoder *e, const char *const *texts, int n, int32_t **ids,
                    float **mask, int *L);
int mk_enc_tokenize_with(const mk_enc_config *cfg, const mk_tokenizer *tok,
                         const char *const *texts, int n, int32_t **ids, float **mask, int *L);

/* Allocate activations for n sequences of L tokens (with embeddings when
 * from_ids; every layer kept when keep); free with mk_enc_acts_free. */
int mk_enc_acts_alloc(const mk_enc_config *cfg, int n, int L, int from_ids, int keep,
                      mk_enc_acts *a);
void mk_enc_acts_free(mk_enc_acts *a);

/* Forward n sentences of token ids (n, L) with mask (n, L) (mask NULL:
 * derived from ids != pad_id). a must be allocated for (n, L, from_ids=1).
 * Results: a->hidden + NL*n*L*H (last hidden states), a->pooled, a->mask.
 * MK_ERR_RANGE for an id outside the vocabulary or L too long. */
int mk_enc_forward(const mk_enc_config *cfg, const mk_enc_params *p, const int32_t *ids,
                   const float *mask, mk_enc_acts *a);
/* Embedding-free forward: inp (n, L, H) goes straight into the layers with
 * an all-ones mask (a allocated with from_ids=0). */
int mk_enc_forward_embeds(const mk_enc_config *cfg, const mk_enc_params *p, const float *inp,
                          mk_enc_acts *a);
/* Last hidden states (n, L, H) of a forward. */
float *mk_enc_last_hidden(const mk_enc_acts *a);

/* Backward from dlast (n, L, H) and dpooled (n, H) (either may be NULL);
 * the forward must have kept its activations.
 * Adds weight gradients into g (NULL: none) and, when dinp is not NULL,
 * the gradient of the layer inputs hidden[0] (n, L, H) into dinp. With
 * from_ids, embedding gradients are scattered into g->wte/wpe/wtt. The
 * activations are not changed (backward may run again). */
int mk_enc_backward(const mk_enc_config *cfg, const mk_enc_params *p, const mk_enc_acts *a,
                    const float *dlast, const float *dpooled, mk_enc_params *g, float *dinp);

#endif
