/* krm.h - MedREK's knowledge-representation modules (spec section 2):
 * encoder features x = concat(po, mean, max, min), the q and k heads
 *   x1 = W1 x + b1;  out = ReLU(W2 x1 + b2) + x1
 * and passes that chain encoder -> features -> head (for sentences, or for
 * the prototype vectors fed straight into the encoder layers), with their
 * backward.
 *
 * Dimension letters: n sentences, L tokens, H encoder hidden, F = 4H
 * feature size, R representation size, P prototype tokens.
 */
#ifndef MK_KRM_H
#define MK_KRM_H

#include <stddef.h>
#include <stdint.h>

#include "../model/roberta.h"

/* x (n, 4H) = [po | mean_t | max_t | min_t] of the last hidden states hs
 * (n, L, H) under mask (n, L) (1 token, 0 padding), exactly as the
 * reference: max over hs + (m - 1) * 999999, min over hs + (1 - m) * 999999,
 * mean = sum(hs * m) / sum(m). arg (n, 2, H) receives the positions of the
 * max and the min (the backward routes their gradient there). */
void mk_krm_features_forward(float *x, int32_t *arg, const float *hs, const float *mask,
                             const float *pooled, int n, int L, int H);
/* dhs (n, L, H) and dpooled (n, H) += the gradient from dx (n, 4H). */
void mk_krm_features_backward(float *dhs, float *dpooled, const float *dx, const float *mask,
                              const int32_t *arg, int n, int L, int H);

/* One head's parameters (q and k heads have the same shapes). */
typedef struct {
    float *w1; /* (R, F) */
    float *b1; /* (R) */
    float *w2; /* (R, R) */
    float *b2; /* (R) */
} mk_head_params;

size_t mk_head_n_params(int F, int R);
float *mk_head_point(mk_head_params *p, float *base, int F, int R);

/* out (n, R); x1 and h2 = W2 x1 + b2 (n, R) are kept for the backward. */
void mk_head_forward(float *out, float *x1, float *h2, const float *x, const mk_head_params *p,
                     int n, int F, int R);
/* dx (n, F) (may be NULL) and g (may be NULL) += gradients from dout (n, R).
 * MK_ERR_NOMEM when scratch cannot be allocated. */
int mk_head_backward(float *dx, mk_head_params *g, const float *dout, const float *x,
                     const float *x1, const float *h2, const mk_head_params *p, int n, int F,
                     int R);

/* A pass encoder -> features -> head, holding everything its backward
 * needs. */
typedef struct {
    int n, L, H, F, R;
    int proto;        /* 1: the prototype path (embedding-free) */
    mk_enc_acts enc;  /* encoder activations */
    float *x;         /* (n, F) features */
    int32_t *arg;     /* (n, 2, H) max/min positions */
    float *x1, *h2;   /* (n, R) head internals */
    float *out;       /* (n, R) representations */
    float *block;     /* one allocation for x .. out */
} mk_krm_pass;

/* Sentences as ids (n, L) with mask (n, L) (NULL: ids != pad). On success
 * pass->out holds (n, R); copied to out (n, R) when out is not NULL. */
int mk_krm_forward(const mk_enc_config *cfg, const mk_enc_params *enc, const mk_head_params *head,
                   int R, const int32_t *ids, const float *mask, int n, int L, float *out,
                   mk_krm_pass *pass);
/* The prototype representation: proto (P, H) through the encoder layers
 * (all-ones mask), pooler, features and the given head (the k head) ->
 * out (1, R). */
int mk_krm_forward_proto(const mk_enc_config *cfg, const mk_enc_params *enc,
                         const mk_head_params *head, int R, const float *proto, int P, float *out,
                         mk_krm_pass *pass);
/* Backward from dout (n, R): adds into genc (encoder weights), ghead, and
 * for the prototype path dproto (P, H); any may be NULL. */
int mk_krm_backward(const mk_enc_config *cfg, const mk_enc_params *enc,
                    const mk_head_params *head, const mk_krm_pass *pass, const float *dout,
                    mk_enc_params *genc, mk_head_params *ghead, float *dproto);
void mk_krm_pass_free(mk_krm_pass *pass);

#endif
