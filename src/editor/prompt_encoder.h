/* prompt_encoder.h - turns a value vector v (R) into T continuous prompt
 * vectors of the LLM's width D (spec section 3).
 *
 * "attn" (MedREK, reproduced faithfully):
 *   Q = reshape(query_proj(v), [T, D]); K = key_proj(v) [1, D];
 *   V = value_proj(v) [1, D]; prompts = MultiheadAttention(Q, K, V)
 * with NH heads, in-projections D -> D (with bias) and an out-projection,
 * as torch.nn.MultiheadAttention (dropout 0).
 * Quirk (spec section 10): there is ONE key token, so every attention
 * weight is 1, the T prompts are all out_proj(in_proj_v(V)), and
 * query_proj / the q in-projection get zero gradient. We still run the
 * general attention kernels, so the numbers (and the zero gradient) are
 * what torch computes, and a corrected variant can reuse this code.
 *
 * "mlp" (RECIPE): x = ReLU(W1 v + b1) + v; prompts = reshape(W2 x + b2, [T, D]).
 *
 * Dimension letters: B values, R value size, T prompt tokens, D LLM
 * hidden, NH heads (divides D), HS = D / NH.
 */
#ifndef MK_PROMPT_ENCODER_H
#define MK_PROMPT_ENCODER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MK_PENC_ATTN = 1, MK_PENC_MLP = 2 } mk_penc_kind;

typedef struct {
    mk_penc_kind kind;
    int R, T, D, NH; /* NH is used by "attn" only */
} mk_penc_config;

/* "attn" / "mlp" -> kind; 0 when unknown. */
mk_penc_kind mk_penc_kind_parse(const char *s);
const char *mk_penc_kind_name(mk_penc_kind k);
/* Range checks (MK_ERR_ARG with a message). */
int mk_penc_config_check(const mk_penc_config *c);

typedef struct {
    /* kind "attn" (NULL otherwise) */
    float *qp_w;  /* (T*D, R) query_proj.weight */
    float *qp_b;  /* (T*D) */
    float *kp_w;  /* (D, R) key_proj.weight */
    float *kp_b;  /* (D) */
    float *vp_w;  /* (D, R) value_proj.weight */
    float *vp_b;  /* (D) */
    float *in_w;  /* (3D, D) mha.in_proj_weight: rows of q, then k, then v */
    float *in_b;  /* (3D) mha.in_proj_bias */
    float *out_w; /* (D, D) mha.out_proj.weight */
    float *out_b; /* (D) */
    /* kind "mlp" (NULL otherwise) */
    float *w1;    /* (R, R) fc1.weight */
    float *b1;    /* (R) */
    float *w2;    /* (T*D, R) fc2.weight */
    float *b2;    /* (T*D) */
} mk_penc_params;

size_t mk_penc_n_params(const mk_penc_config *c); /* 0 on overflow */
float *mk_penc_point(mk_penc_params *p, float *base, const mk_penc_config *c);

/* Tensors in PyTorch naming ("query_proj.weight", "mha.in_proj_weight",
 * "fc1.weight", ...), i in [0, mk_penc_n_tensors). */
int mk_penc_n_tensors(const mk_penc_config *c);
void mk_penc_tensor(const mk_penc_config *c, const mk_penc_params *p, int i, char name[64],
                    float **data, int *n_dims, int64_t shape[2]);
/* PyTorch's default Linear init for every weight and bias:
 * uniform(-1/sqrt(in), 1/sqrt(in)); MultiheadAttention's in_proj_weight
 * gets xavier-uniform and zero biases, as torch does. uniform01 returns
 * values in [0, 1). */
void mk_penc_init(const mk_penc_config *c, mk_penc_params *p, float (*uniform01)(void *),
                  void *rng);

/* What the backward needs, one allocation. */
typedef struct {
    int B;
    mk_penc_config cfg;
    float *v;     /* (B, R) the input values (copied) */
    /* attn */
    float *Q0;    /* (B, T, D) query_proj(v) */
    float *K0;    /* (B, D) key_proj(v) */
    float *V0;    /* (B, D) value_proj(v) */
    float *q;     /* (B, T, D) in-projected queries */
    float *k;     /* (B, D) */
    float *vv;    /* (B, D) */
    float *att;   /* (B, NH, T, 1) */
    float *atty;  /* (B, T, D) */
    /* mlp */
    float *h;     /* (B, R) W1 v + b1 */
    float *x;     /* (B, R) ReLU(h) + v */
    float *block;
} mk_penc_pass;

/* prompts (B, T, D). pass (may be NULL) keeps the activations. */
int mk_penc_forward(const mk_penc_config *c, const mk_penc_params *p, const float *v, int B,
                    float *prompts, mk_penc_pass *pass);
/* dv (B, R) (may be NULL) and g (may be NULL) += gradients from
 * dprompts (B, T, D). */
int mk_penc_backward(const mk_penc_config *c, const mk_penc_params *p, const mk_penc_pass *pass,
                     const float *dprompts, float *dv, mk_penc_params *g);
void mk_penc_pass_free(mk_penc_pass *pass);

#endif
