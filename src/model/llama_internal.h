/* llama_internal.h - the model struct shared by llama*.c (not public). */
#ifndef MK_LLAMA_INTERNAL_H
#define MK_LLAMA_INTERNAL_H

#include "../core/tensor.h"
#include "../io/weights.h"
#include "llama.h"

typedef struct {
    const mk_tensor_view *wq; /* (NH*HS, D) */
    const mk_tensor_view *wk; /* (NKV*HS, D) */
    const mk_tensor_view *wv; /* (NKV*HS, D) */
    const mk_tensor_view *wo; /* (D, NH*HS) */
    const mk_tensor_view *wg; /* (F, D) */
    const mk_tensor_view *wu; /* (F, D) */
    const mk_tensor_view *wd; /* (D, F) */
    float *attn_norm;         /* (D) f32 copy (small) */
    float *ffn_norm;          /* (D) */
} mk_llama_layer;

struct mk_llama {
    mk_llama_config c;
    mk_weights *w;
    mk_tokenizer *tok;
    char tok_err[256];
    char fp[96];
    size_t wbytes;                 /* weight bytes of the matrices used */
    const mk_tensor_view *tok_emb; /* (V, D) */
    const mk_tensor_view *output;  /* (V, D); == tok_emb when tied */
    mk_llama_layer *layers;        /* (NL) */
    float *norms;                  /* one block: attn_norm (NL,D), ffn_norm (NL,D), out_norm (D) */
    float *out_norm;               /* (D), inside norms */
    float *rope_ff;                /* (HS/2) frequency divisors, or NULL */
    int all_f32;                   /* every matrix stored as F32 (weight gradients) */
    float *own;                    /* MK_LLAMA_OWN_WEIGHTS: writable weights, grads layout */
    size_t own_n;                  /* floats in own */
    mk_tensor_view *own_views;     /* views into own replacing the file's */
};

/* Lay out every weight (or gradient) of config c in one block at base
 * (NULL: only count); fills g's pointers and returns the float count. */
size_t mk_llama_layout(const mk_llama_config *c, float *base, mk_llama_grads *g);

/* out (M,N) = inp (M,K) @ t^T for a stored weight view t (N, K). */
void mk_llama_mm(float *out, const float *inp, const mk_tensor_view *t, int M, int K, int N);
/* dinp (M,K) += dout (M,N) @ t (N,K). */
void mk_llama_mm_back(float *dinp, const float *dout, const mk_tensor_view *t, int M, int K,
                      int N);
/* Check ids against the vocabulary (MK_ERR_RANGE naming the bad one). */
int mk_llama_check_ids(const mk_llama *m, const int32_t *ids, int n);
double mk_llama_now(void);

#endif
