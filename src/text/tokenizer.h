/* tokenizer.h - BPE tokenizers: byte-level (GPT-2, RoBERTa, Llama-3) and
 * SentencePiece-style with byte fallback (Llama-2), loaded from
 * tokenizer.json, vocab.json + merges.txt, or GGUF metadata.
 *
 * Behaviour worth knowing (tests/test_tokenizer.c checks each):
 *  - Byte-level BPE is lossless for any bytes: decode(encode(x)) == x.
 *    Invalid UTF-8 never fails: each byte that does not start a well-formed
 *    sequence is a unit of class "other" for the split regexes (it groups
 *    like punctuation) and is then encoded as its byte token.
 *  - SentencePiece-style BPE with byte fallback is lossless for any bytes
 *    except the character U+2581 "▁" itself (it decodes to a space, as in
 *    SentencePiece); unknown characters and invalid bytes become <0xXX>.
 *    A dummy "▁" is put before each text segment (after a special token
 *    too, as Hugging Face's Llama-2 normalizer and llama.cpp do) and decode
 *    drops the leading space of the first non-special token again. (A
 *    Metaspace pre-tokenizer adds the "▁" only when the text does not start
 *    with a space, as Hugging Face does; then one leading space is lost.)
 *  - Added tokens (tokenizer.json added_tokens, GGUF control/user-defined
 *    tokens, RoBERTa/GPT-2 specials of vocab.json) are found in the input
 *    before anything else, longest first; MK_TOK_SPLIT_SPECIAL turns that
 *    off for the special ones. lstrip/rstrip eat ASCII whitespace;
 *    single_word and normalized are not read.
 *  - bos/eos/pad: GGUF ids, else the template's first token (BOS), else
 *    well-known names (<s>, <|begin_of_text|>, <|endoftext|>; </s>,
 *    <|end_of_text|>, <|endoftext|>; <pad>, [PAD]).
 *  - GGUF "llama" (score) vocabularies: merges are derived from the scores
 *    (every split of a piece into two pieces; higher score first); pieces
 *    over 256 bytes are never merge results.
 *  - A tokenizer may be shared by threads: encode() only touches its
 *    pre-token cache, under a try-lock (a thread that cannot take it goes
 *    on without the shared cache).
 */
#ifndef MK_TOKENIZER_H
#define MK_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mk_gguf mk_gguf;
typedef struct mk_tokenizer mk_tokenizer;

/* Load by path: a tokenizer.json, a vocab.json (merges.txt beside it), a
 * .gguf file (found by its magic), or a directory holding one of those
 * (tokenizer.json first, then vocab.json, then the first *.gguf by name). */
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

/* The bytes one id stands for in decoded text ("Ġthe" -> " the", "▁the" ->
 * " the", "<0x0A>" -> "\n", special tokens: their text), for printing
 * tokens as they are generated. No dummy-prefix strip (decode does that).
 * NULL (and *len 0) for an id outside the vocabulary. */
const char *mk_tok_token_bytes(const mk_tokenizer *t, int32_t id, size_t *len);

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
