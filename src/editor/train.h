/* train.h - MedREK training (spec section 7): token triples, the losses of
 * one batch with their backward into the editor's gradient block, and the
 * Adam step.
 *
 * One step on a batch of B edits (mk_train_step):
 *   r1 = q_head(q1), r2 = q_head(q2)   q1/q2 = prompt/rephrase by a coin flip
 *   keys = q_head(prompts), vals = k_head(knowledge sentences),
 *   proto = prototype representation (k head), r3 = q_head(locality prompts)
 *   L_q1, L_q2, L_q3   contrastive terms (temperatures t_qk, t_qp, hinge h)
 *   prompts_i = prompt_encoder(vals_i)   injected before each item's own
 *                                        sequences (oracle retrieval)
 *   L_rel, L_gen       hinge label losses on (prompt, target) and
 *                      (rephrase, target)
 *   L_loc              KL(p_pre || p_post) on (locality prompt, its truth)
 *   L = lc (L_q1 + L_q2 + L_q3) + lr L_rel + lg L_gen + ll L_loc
 * The LLM is frozen: gradients pass through it (mk_llama_backward) into the
 * prompt vectors, then the prompt encoder, the k head and the encoder; the
 * contrastive terms reach the q head, the k head (prototype), the encoder
 * and the prototype vectors. Every use of a module adds to its gradient
 * (keys and queries share the q head and the encoder).
 *
 * Exact rules (the PyTorch reference tools/ref_train.py does the same):
 *  - "second largest p" is the second entry of the row sorted by value,
 *    the row's own entry included (ties count twice); the keep/count
 *    decisions are constants for the backward (no gradient through them).
 *  - L_q1 = mean over the B items of -log(p_ii + eps), row
 *    t_qk * [s(r1_i, key_1..B), s(r1_i, proto)].
 *  - L_q2 row of item i: t_qp * s(r2_i, key_j) for j != i, and
 *    t_qp * s(r2_i, proto) at j = i (B entries); kept when
 *    p_ii < h * second largest; mean over kept rows of -log(p_ii + eps),
 *    0 when none. With B = 1 a row has nothing to compete with: no row.
 *  - L_q3 row: t_qp * [s(r3, key_1..B), s(r3, proto)], target the
 *    prototype entry, same keep rule.
 *  - L_rel / L_gen: a target position (mask 1) counts when
 *    p[label] < h * second largest p over the vocabulary; the loss is
 *    -sum log(p[label] + eps) over the counted positions of the whole
 *    batch divided by their number (0 when none).
 *  - L_loc: sum over the vocabulary of p_pre (log p_pre - log p_post)
 *    (exact log-softmax, no eps), summed over the masked positions of the
 *    batch and divided by their number; p_pre from the LLM without prompts.
 *
 * Incomplete items (documented choice; the reference data always has both):
 *  - no rephrase (NULL or ""): q1 = prompt (no coin flip), no L_q2 row and
 *    no L_gen sequence for that item;
 *  - no locality prompt: no L_q3 row and no L_loc sequence; a locality
 *    prompt without a ground truth: L_q3 row only (L_loc needs a target).
 *
 * Token triples ("pt2xym"): triple.h. The reference right-pads a batch;
 * we give mk_llama_forward each sequence at its own length, which is the
 * same for causal attention (a position never sees the padding after it,
 * and padded positions carry mask 0).
 *
 * Memory: activations of one batch only. The LLM runs group by group
 * (rel, gen, loc) in chunks of at most MK_TRAIN_CHUNK_LOGITS logits
 * (at least one sequence), forward and backward per chunk; every gradient
 * is linear in the per-position terms, so each chunk's prefix gradient is
 * accumulated unnormalised and scaled once the group's count is known.
 */
#ifndef MK_TRAIN_H
#define MK_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "../model/llama.h"
#include "editor.h"
#include "triple.h"

/* Largest number of logits (positions x V) one LLM chunk holds (64 MiB of
 * floats per buffer). */
#define MK_TRAIN_CHUNK_LOGITS ((size_t)1 << 24)

typedef struct {
    float lambda_c, lambda_r, lambda_g, lambda_l; /* default 1 each */
    float t_qk, t_qp;    /* temperatures (multiply the similarities), default 1 */
    float hinge;         /* h, default 1.2 */
    float eps;           /* inside -log(p + eps), default 1e-8 */
    float lr;            /* Adam learning rate, default 1e-5 */
    float beta1, beta2;  /* default 0.9, 0.999 */
    float adam_eps;      /* default 1e-8 */
} mk_train_config;

void mk_train_config_default(mk_train_config *c);
/* MK_ERR_ARG with a message for a value out of range. */
int mk_train_config_check(const mk_train_config *c);


/* One training edit (strings borrowed; NULL or "" = absent, except prompt
 * and target_new which are required). */
typedef struct {
    const char *prompt;
    const char *target_new;
    const char *rephrase;
    const char *loc_prompt;
    const char *loc_truth;
} mk_train_item;

typedef struct {
    double total, q1, q2, q3, rel, gen, loc; /* the terms (unweighted) and L */
    int q2_rows, q2_kept, q3_rows, q3_kept;  /* contrastive rows and kept rows */
    int rel_pos, rel_counted;                /* target positions, counted ones */
    int gen_pos, gen_counted;
    int loc_pos;                             /* masked locality positions */
    int n_tokens;                            /* LLM positions run (prefixes included) */
} mk_train_losses;

/* The losses of one batch. flips (B): 1 = q1 is the rephrase and q2 the
 * prompt, 0 = the other way (ignored for items without a rephrase).
 * With backward != 0 the gradient of L is ADDED into ed->g (call
 * mk_editor_train_alloc first; mk_editor_zero_grad is the caller's).
 * The editor's parameters are not changed. */
int mk_train_loss(mk_editor *ed, const mk_llama *llm, const mk_train_config *cfg,
                  const mk_train_item *items, int B, const uint8_t *flips, int backward,
                  mk_train_losses *out);

/* Zero the gradients, mk_train_loss with backward, one Adam step
 * (allocates the training state on first use). */
int mk_train_step(mk_editor *ed, const mk_llama *llm, const mk_train_config *cfg,
                  const mk_train_item *items, int B, const uint8_t *flips, mk_train_losses *out);

/* B coin flips from rng (one 64-bit draw each, lowest bit). */
void mk_train_flips(mk_rng *rng, int B, uint8_t *flips);

#endif
