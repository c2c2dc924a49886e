/* bench_roberta.h - a random RoBERTa encoder directory (config.json,
 * model.safetensors, vocab.json, merges.txt) for the editing benchmarks;
 * implemented in bench_util.c. Kept apart from bench_util.h because
 * roberta.h's names clash with <complex.h>, which cblas.h may include. */
#ifndef MK_BENCH_ROBERTA_H
#define MK_BENCH_ROBERTA_H

#include "model/roberta.h"

/* vocab.json + merges.txt in dir in RoBERTa's layout (<s> <pad> </s> <unk>,
 * GPT-2's entries from gpt2_dir at id + 4, <mask> last); when gpt2_dir
 * cannot be read, a byte-only vocabulary (*real_bpe = 0). Returns V. */
int bench_write_roberta_tokenizer(const char *dir, const char *gpt2_dir, int *real_bpe);
/* config.json + model.safetensors: random weights (uniform, std 0.02 as
 * BERT's init), LayerNorm weights 1, biases 0. */
void bench_write_roberta_encoder(const char *dir, const mk_enc_config *c);

#endif
