/* metrics.h - the paper's editing metrics (spec section 8), piece by piece.
 *
 * Token triples: editor/triple.h (shared with training).
 *
 * Token scores: the fraction of masked positions where argmax(logits) ==
 * label (efficacy, generality) or == the unedited model's argmax at that
 * position (locality). The argmax takes the lowest id on an exact tie.
 *
 * Fluency (n-gram entropy): the prompt and its sampled continuation are
 * decoded to text and split into words by mk_eval_words; H_n is the
 * entropy in bits of the frequency distribution of the n-grams of that
 * word list (each of the count - n + 1 n-grams counted once; H_n = 0 with
 * fewer than n words); score = mean(2/3 H_2, 4/3 H_3).
 *
 * Word splitting (ours, deterministic; the reference used NLTK's word
 * tokenizer): bytes are scanned left to right;
 *   - ASCII whitespace separates words and is dropped;
 *   - a word is a maximal run of "word bytes": ASCII letters and digits,
 *     '_' and every byte >= 0x80 (so UTF-8 letters, whatever the script,
 *     stay inside words, and no byte sequence is ever split mid-character);
 *     an apostrophe or hyphen between two word bytes stays inside the word
 *     ("don't", "beta-blocker");
 *   - every other byte (ASCII punctuation and control) is a word of one byte.
 * Case is kept.
 */
#ifndef MK_EVAL_METRICS_H
#define MK_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../editor/triple.h"

/* Index of the largest of x[0..n) (lowest index on a tie; NaN never wins
 * over a number). */
int32_t mk_argmax(const float *x, int64_t n);

/* Masked positions of a triple where argmax(logits row) == want[k] (the
 * k-th masked position); logits (t->L, V). want == NULL: compare with the
 * labels. */
int mk_triple_hits(const mk_triple *t, const float *logits, int V, const int32_t *want);
/* The argmax at each masked position, into out (t->n_mask). */
void mk_triple_argmax(const mk_triple *t, const float *logits, int V, int32_t *out);

/* Words of text (len bytes) as above: *starts and *lens (n words each),
 * malloc'd (NULL when n is 0). */
int mk_eval_words(const char *text, size_t len, size_t **starts, size_t **lens, size_t *n);
/* Entropy in bits of the n-gram frequency distribution of the words. */
double mk_ngram_entropy(const char *text, const size_t *starts, const size_t *lens, size_t nw,
                        int n);
/* mean(2/3 H_2, 4/3 H_3) of the words of text; *h2, *h3 may be NULL. */
int mk_fluency_score(const char *text, size_t len, double *score, double *h2, double *h3);

#endif
