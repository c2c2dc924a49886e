/* triple.h - the token triple ("pt2xym", spec 7) of a (prompt, target)
 * pair, shared by training (the label and locality losses) and evaluation
 * (the token-level scores).
 *
 * The target gets a leading space if it has none; ids = tok(prompt +
 * target) with the tokenizer's own specials (BOS for Llama);
 * input = ids[:-1], label = ids[1:], mask = 1 on positions
 * >= len(tok(prompt)) - 1 (the positions that predict target tokens).
 * Sequences are not padded: the engine takes each at its own length,
 * which for causal attention equals the reference's right padding.
 */
#ifndef MK_TRIPLE_H
#define MK_TRIPLE_H

#include <stdint.h>

typedef struct mk_tokenizer mk_tokenizer;

typedef struct {
    int32_t *input; /* (L) ids[:-1] */
    int32_t *label; /* (L) ids[1:] */
    float *mask;    /* (L) 1 on target positions, else 0 */
    int L;          /* >= 1 */
    int n_mask;     /* positions with mask 1 (0 when the target adds no token) */
    int first;      /* first masked position (= len(tok(prompt)) - 1) */
} mk_triple;

/* MK_ERR_ARG when the tokenizer is missing, the target is empty, the
 * prompt encodes to nothing, or prompt + target give fewer than 2 ids. */
int mk_triple_make(const mk_tokenizer *tok, const char *prompt, const char *target, mk_triple *t);
void mk_triple_free(mk_triple *t);

#endif
