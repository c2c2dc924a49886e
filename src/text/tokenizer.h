/* tokenizer.h - BPE tokenizers: byte-level (GPT-2, RoBERTa, Llama-3) and
 * SentencePiece-style with byte fallback (Llama-2), loaded from
 * tokenizer.json, vocab.json + merges.txt, or GGUF metadata.
 */
#ifndef MK_TOKENIZER_H
#define MK_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mk_gguf mk_gguf;
typedef struct mk_tokenizer mk_tokenizer;

/* Load by path: a tokenizer.json, a vocab.json (merges.txt beside it), a
 * .gguf file, or a directory holding one of those. */
int mk_tok_load(const char *path, mk_tokenizer **out);
int mk_tok_load_json(const char *path, mk_tokenizer **out);
int mk_tok_load_json_mem(const char *json, size_t len, const char *label, mk_tokenizer **out);
int mk_tok_load_vocab_merges(const char *vocab_json, const char *merges_txt, mk_tokenizer **out);
/* The same from two buffers (fuzzing, tests); label names them in messages. */
int mk_tok_load_vocab_merges_mem(const char *vocab_json, size_t vocab_len, const char *merges,
                                 size_t merges_len, const char *label, mk_tokenizer **out);
int mk_tok_from_gguf(const mk_gguf *g, mk_tokenizer **out);
void mk_tok_free(mk_tokenizer *t);

enum {
    MK_TOK_SPECIAL = 1,      /* add the tokenizer's own BOS/EOS template
                                (Llama: BOS; RoBERTa: <s> ... </s>) */
    MK_TOK_SPLIT_SPECIAL = 2 /* treat the text of special tokens ("<s>",
                                "<|endoftext|>") in the input as plain text;
                                by default it becomes the special id, as in
                                Hugging Face tokenizers */
};

/* Encode len bytes (any bytes; invalid UTF-8 never crashes). *ids is
 * malloc'd; the caller frees it. */
int mk_tok_encode(const mk_tokenizer *t, const char *text, size_t len, int flags,
                  int32_t **ids, size_t *n);
/* Decode ids to bytes (NUL-terminated, malloc'd). Special tokens are
 * skipped when skip_special is set. */
int mk_tok_decode(const mk_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                  char **out, size_t *len);

size_t mk_tok_n_vocab(const mk_tokenizer *t);
/* The vocabulary entry of id (as stored: "Ġthe", "▁the", "<0x0A>"). */
const char *mk_tok_piece(const mk_tokenizer *t, int32_t id, size_t *len);
int32_t mk_tok_id(const mk_tokenizer *t, const char *piece); /* -1 if absent */
int32_t mk_tok_bos(const mk_tokenizer *t); /* -1 when the tokenizer has none */
int32_t mk_tok_eos(const mk_tokenizer *t);
int32_t mk_tok_pad(const mk_tokenizer *t);
int32_t mk_tok_unk(const mk_tokenizer *t);
const char *mk_tok_kind(const mk_tokenizer *t); /* "byte-level-bpe", "sentencepiece-bpe" */

#endif
