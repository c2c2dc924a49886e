/* tok_internal.h - the tokenizer's insides, shared by tokenizer.c (tables,
 * BPE, encode/decode), tok_pretok.c (pre-tokenization) and tok_load.c
 * (file formats). Not part of the public interface. */
#ifndef MK_TOK_INTERNAL_H
#define MK_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

enum { TOK_BYTE_LEVEL = 1, TOK_SPM = 2 };

/* per-id attributes */
enum {
    TA_SPECIAL = 1, /* control/special: skipped by decode(skip_special), matched
                       in text unless MK_TOK_SPLIT_SPECIAL */
    TA_ADDED = 2,   /* added token: matched in the input before BPE */
    TA_BYTE = 4,    /* <0xXX> byte-fallback token */
    TA_NOMERGE = 8, /* never the result of a merge (control, unknown, byte, unused) */
    TA_LSTRIP = 16, /* added token eats whitespace on its left */
    TA_RSTRIP = 32  /* ... and on its right */
};

/* pre-tokenizer split rules */
enum { SPLIT_NONE = 0, SPLIT_GPT2, SPLIT_LLAMA3, SPLIT_PCRE, SPLIT_METASPACE };
/* SentencePiece-style dummy prefix ("▁" at the start of a text segment) */
enum { PREPEND_NEVER = 0, PREPEND_FIRST, PREPEND_ALWAYS };

/* open-addressing hash: piece bytes -> id */
typedef struct {
    int32_t *slot; /* (cap) ids, -1 = empty */
    size_t cap;    /* power of two */
} tok_strmap;

/* open-addressing hash: (left id, right id) -> (rank, merged id) */
typedef struct {
    uint64_t *key;  /* (cap) (left << 32 | right), UINT64_MAX = empty */
    int32_t *rank;  /* (cap) lower merges first */
    int32_t *merged; /* (cap) */
    size_t cap, n;
} tok_pairmap;

typedef struct tok_cache tok_cache;

struct mk_tokenizer {
    int kind; /* TOK_BYTE_LEVEL or TOK_SPM */
    int32_t n_vocab;
    /* pieces as stored: blob holds them NUL-terminated */
    char *blob;
    size_t blob_len, blob_cap;
    uint32_t *off;   /* (n_vocab) offset into blob, UINT32_MAX = hole */
    uint32_t *plen;  /* (n_vocab) piece length in bytes */
    uint8_t *attr;   /* (n_vocab) TA_* */
    /* decoded bytes of each id (byte-level chars mapped back, "▁" -> " ",
       <0xXX> -> the byte) */
    char *dblob;
    uint32_t *doff, *dlen; /* (n_vocab) */

    tok_strmap vocab;
    tok_pairmap merges;
    uint8_t bl_char[256][2]; /* byte-level: UTF-8 of each byte's character */
    uint8_t bl_len[256];     /* ... and its length (1 or 2) */
    int32_t byte_id[256]; /* byte-level: id of the byte's unicode char;
                             SPM: id of <0xXX>; -1 when absent */

    /* pre-tokenization */
    int split;          /* SPLIT_* */
    void *re;           /* pcre2_code* for SPLIT_PCRE */
    int prefix_space;   /* ByteLevel add_prefix_space */
    int prepend;        /* PREPEND_* (SPM) */
    int prepend_if_missing; /* Metaspace: no prefix when the text starts with a space */
    int replace_space;  /* SPM: " " -> "▁" */
    int spm_presplit;   /* SPM: no piece has "▁" after another character, so
                           the text may be cut before each such "▁" (same
                           result, and the pieces can be cached) */
    int ignore_merges;  /* a whole pre-token found in the vocab is one id */
    int byte_fallback;  /* SPM: unknown chars -> <0xXX> */
    int fuse_unk;       /* consecutive unknowns -> one unk */

    /* added tokens, matched in the input before anything else */
    int32_t *added;     /* (n_added) ids, longest content first */
    size_t n_added;
    uint8_t added_first[256]; /* 1 for bytes that start some added token */

    /* MK_TOK_SPECIAL template: prefix ids + text + suffix ids */
    int32_t pre_ids[4], post_ids[4];
    int n_pre, n_post;
    int32_t bos, eos, pad, unk;
    tok_cache *cache; /* byte-level pre-token -> ids, behind its own mutex */
};

/* ---- tokenizer.c: building ---- */
tok_cache *tok_cache_new(void);
void tok_cache_free(tok_cache *c);
mk_tokenizer *tok_new(int kind);
/* Set piece of id (grows the table). MK_ERR_FORMAT on a duplicate piece or
 * id; label names the file. */
int tok_set_piece(mk_tokenizer *t, int32_t id, const char *s, size_t len, const char *label);
int tok_add_merge(mk_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged);
/* Build the piece -> id table (tok_find works from then on; no pieces may be
 * added after). tok_finish calls it when not done yet. */
int tok_index(mk_tokenizer *t, const char *label);
/* After all pieces and merges: hash tables, byte ids, decoded forms, added
 * token order. */
int tok_finish(mk_tokenizer *t, const char *label);
int32_t tok_find(const mk_tokenizer *t, const char *s, size_t len);

/* ---- tok_pretok.c ---- */
/* Unicode class of a code point for the split regexes. */
enum { CC_OTHER = 0, CC_L = 1, CC_N = 2, CC_WS = 3, CC_NL = 4 /* \r or \n */ };
/* Decode one unit at s (n > 0 bytes left): the code point's length, or 1 for
 * a byte that does not start a well-formed UTF-8 sequence (*cp = -1). */
size_t tok_utf8_next(const uint8_t *s, size_t n, int32_t *cp);
int tok_cp_class(int32_t cp);
/* Length of the pre-token starting at s (n > 0 bytes left), >= 1. */
size_t tok_split_gpt2(const uint8_t *s, size_t n);
size_t tok_split_llama3(const uint8_t *s, size_t n);
/* PCRE2 (compiled with UTF|UCP and MATCH_INVALID_UTF): next match in
 * [s, s+n) at or after *start: returns 1 and [*ms, *me) or 0 when none. */
int tok_re_compile(const char *pattern, size_t len, void **re, const char *label);
void tok_re_free(void *re);
int tok_re_next(void *re, const uint8_t *s, size_t n, size_t start, size_t *ms, size_t *me);

extern const char *const TOK_RE_GPT2;
extern const char *const TOK_RE_LLAMA3;

#endif
