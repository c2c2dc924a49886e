/* tokenizer.c - vocabulary tables, the BPE merge loop, encode and decode.
 *
 * One BPE engine serves both families: a word is a list of symbols (one per
 * byte for byte-level BPE, one per UTF-8 character for SentencePiece-style),
 * and the adjacent pair with the lowest rank is merged first, leftmost on a
 * tie, one merge at a time (what Hugging Face's BPE and SentencePiece do).
 * Merge lists give the rank directly; SentencePiece scores are turned into
 * ranks by the loader (highest score = rank 0).
 *
 * The tokenizer may be shared by threads: encode() changes nothing but the
 * pre-token cache, which is behind a mutex (see "word cache").
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "tok_internal.h"

static const char SPM_SPACE[] = "\xE2\x96\x81"; /* U+2581 "▁" */

/* ---------------------------------------------------------------- hashing */

static inline uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 32;
    return h;
}

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

/* ------------------------------------------------------------- building */

mk_tokenizer *tok_new(int kind) {
    mk_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->bos = t->eos = t->pad = t->unk = -1;
    t->byte_fallback = 0;
    t->cache = tok_cache_new();
    if (!t->cache) { free(t); return NULL; }
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return t;
}

void mk_tok_free(mk_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->plen);
    free(t->attr);
    free(t->dblob);
    free(t->doff);
    free(t->dlen);
    free(t->vocab.slot);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.merged);
    free(t->added);
    if (t->re) tok_re_free(t->re);
    tok_cache_free(t->cache);
    free(t);
}

/* make room for ids [0, n) */
static int grow_ids(mk_tokenizer *t, int32_t n) {
    if (n <= t->n_vocab) return MK_OK;
    size_t cap = 16;
    while (cap < (size_t)n) cap *= 2;
    /* arrays are sized to powers of two: realloc only when crossing one */
    size_t old = 16;
    while (old < (size_t)t->n_vocab) old *= 2;
    if (t->n_vocab == 0 || cap > old) {
        uint32_t *o = realloc(t->off, cap * sizeof *o);
        if (!o) return mk_fail(MK_ERR_NOMEM, "tokenizer: out of memory (%d ids)", n);
        t->off = o;
        uint32_t *l = realloc(t->plen, cap * sizeof *l);
        if (!l) return mk_fail(MK_ERR_NOMEM, "tokenizer: out of memory (%d ids)", n);
        t->plen = l;
        uint8_t *a = realloc(t->attr, cap);
        if (!a) return mk_fail(MK_ERR_NOMEM, "tokenizer: out of memory (%d ids)", n);
        t->attr = a;
    }
    for (int32_t i = t->n_vocab; i < n; i++) {
        t->off[i] = UINT32_MAX;
        t->plen[i] = 0;
        t->attr[i] = 0;
    }
    t->n_vocab = n;
    return MK_OK;
}

int tok_set_piece(mk_tokenizer *t, int32_t id, const char *s, size_t len, const char *label) {
    if (id < 0 || id >= (1 << 24))
        return mk_fail(MK_ERR_FORMAT, "%s: token id %ld out of range (0..16777215)", label, (long)id);
    if (len > 65536)
        return mk_fail(MK_ERR_FORMAT, "%s: token %ld is %zu bytes long (limit 65536)", label,
                       (long)id, len);
    int rc = grow_ids(t, id + 1);
    if (rc) return rc;
    if (t->off[id] != UINT32_MAX)
        return mk_fail(MK_ERR_FORMAT, "%s: token id %ld given twice", label, (long)id);
    if (t->blob_len + len + 1 > UINT32_MAX)
        return mk_fail(MK_ERR_FORMAT, "%s: vocabulary text over 4 GiB", label);
    if (t->blob_len + len + 1 > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 4096;
        while (cap < t->blob_len + len + 1) cap *= 2;
        char *b = realloc(t->blob, cap);
        if (!b) return mk_fail(MK_ERR_NOMEM, "%s: out of memory for the vocabulary", label);
        t->blob = b;
        t->blob_cap = cap;
    }
    memcpy(t->blob + t->blob_len, s, len);
    t->blob[t->blob_len + len] = 0;
    t->off[id] = (uint32_t)t->blob_len;
    t->plen[id] = (uint32_t)len;
    t->blob_len += len + 1;
    return MK_OK;
}

static int pairmap_grow(tok_pairmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *key = malloc(cap * sizeof *key);
    int32_t *rank = malloc(cap * sizeof *rank);
    int32_t *merged = malloc(cap * sizeof *merged);
    if (!key || !rank || !merged) {
        free(key);
        free(rank);
        free(merged);
        return mk_fail(MK_ERR_NOMEM, "tokenizer: out of memory for the merges");
    }
    memset(key, 0xFF, cap * sizeof *key);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->key[i] == UINT64_MAX) continue;
        size_t j = hash_u64(m->key[i]) & (cap - 1);
        while (key[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
        key[j] = m->key[i];
        rank[j] = m->rank[i];
        merged[j] = m->merged[i];
    }
    free(m->key);
    free(m->rank);
    free(m->merged);
    m->key = key;
    m->rank = rank;
    m->merged = merged;
    m->cap = cap;
    return MK_OK;
}

int tok_add_merge(mk_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    tok_pairmap *m = &t->merges;
    if ((m->n + 1) * 2 > m->cap) {
        int rc = pairmap_grow(m);
        if (rc) return rc;
    }
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = hash_u64(k) & (m->cap - 1);
    while (m->key[j] != UINT64_MAX) {
        if (m->key[j] == k) { /* the same pair twice: the first (lower) rank wins */
            if (rank < m->rank[j]) { m->rank[j] = rank; m->merged[j] = merged; }
            return MK_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->key[j] = k;
    m->rank[j] = rank;
    m->merged[j] = merged;
    m->n++;
    return MK_OK;
}

/* rank of the pair (a, b), INT32_MAX when it does not merge */
static inline int32_t pair_rank(const mk_tokenizer *t, int32_t a, int32_t b, int32_t *merged) {
    const tok_pairmap *m = &t->merges;
    if (a < 0 || b < 0 || !m->cap) return INT32_MAX;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = hash_u64(k) & (m->cap - 1);
    for (;;) {
        uint64_t kk = m->key[j];
        if (kk == k) { *merged = m->merged[j]; return m->rank[j]; }
        if (kk == UINT64_MAX) return INT32_MAX;
        j = (j + 1) & (m->cap - 1);
    }
}

int32_t tok_find(const mk_tokenizer *t, const char *s, size_t len) {
    const tok_strmap *m = &t->vocab;
    if (!m->cap) return -1;
    size_t j = hash_bytes(s, len) & (m->cap - 1);
    for (;;) {
        int32_t id = m->slot[j];
        if (id < 0) return -1;
        if (t->plen[id] == len && !memcmp(t->blob + t->off[id], s, len)) return id;
        j = (j + 1) & (m->cap - 1);
    }
}

/* GPT-2's byte <-> unicode table: printable Latin-1 bytes stand for
 * themselves, the other 68 bytes get U+0100 onwards in byte order. */
static uint32_t byte_char(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) k++;
    return 256u + (uint32_t)k;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

static int cmp_added(const void *pa, const void *pb);

int tok_index(mk_tokenizer *t, const char *label) {
    if (t->vocab.slot) return MK_OK;
    if (t->n_vocab == 0) return mk_fail(MK_ERR_FORMAT, "%s: empty vocabulary", label);
    /* piece -> id */
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    t->vocab.slot = malloc(cap * sizeof *t->vocab.slot);
    if (!t->vocab.slot) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
    memset(t->vocab.slot, 0xFF, cap * sizeof *t->vocab.slot);
    t->vocab.cap = cap;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->off[id] == UINT32_MAX) continue; /* a hole in the id range */
        const char *s = t->blob + t->off[id];
        size_t j = hash_bytes(s, t->plen[id]) & (cap - 1), dup = 0;
        while (t->vocab.slot[j] >= 0) {
            int32_t o = t->vocab.slot[j];
            if (t->plen[o] == t->plen[id] && !memcmp(t->blob + t->off[o], s, t->plen[id])) {
                dup = 1; /* the same piece twice: the lower id is found */
                break;
            }
            j = (j + 1) & (cap - 1);
        }
        if (!dup) t->vocab.slot[j] = id;
    }
    return MK_OK;
}

int tok_finish(mk_tokenizer *t, const char *label) {
    int rc = tok_index(t, label);
    if (rc) return rc;
    /* the ids of single bytes */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        size_t n;
        if (t->kind == TOK_BYTE_LEVEL) {
            n = put_utf8(buf, byte_char(b));
            memcpy(t->bl_char[b], buf, n);
            t->bl_len[b] = (uint8_t)n;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(buf, "<0x", 3);
            buf[3] = hex[b >> 4];
            buf[4] = hex[b & 15];
            buf[5] = '>';
            n = 6;
        }
        t->byte_id[b] = tok_find(t, buf, n);
        if (t->kind == TOK_SPM && t->byte_id[b] >= 0) t->attr[t->byte_id[b]] |= TA_BYTE | TA_NOMERGE;
    }
    /* decoded form of every id */
    size_t total = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) total += t->plen[id];
    t->dblob = malloc(total + 1);
    t->doff = malloc((size_t)t->n_vocab * sizeof *t->doff);
    t->dlen = malloc((size_t)t->n_vocab * sizeof *t->dlen);
    if (!t->dblob || !t->doff || !t->dlen) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
    int32_t inv[512]; /* byte-level: code point (< 512) -> byte, -1 if none */
    for (int c = 0; c < 512; c++) inv[c] = -1;
    for (int b = 0; b < 256; b++) inv[byte_char(b)] = b;
    size_t at = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *s = (const uint8_t *)t->blob + (t->off[id] == UINT32_MAX ? 0 : t->off[id]);
        size_t n = t->plen[id], i = 0;
        t->doff[id] = (uint32_t)at;
        if (t->attr[id] & (TA_ADDED | TA_SPECIAL)) {
            memcpy(t->dblob + at, s, n);
            at += n;
        } else if (t->attr[id] & TA_BYTE) {
            unsigned v = 0;
            for (int k = 3; k < 5; k++) v = v * 16 + (unsigned)(s[k] <= '9' ? s[k] - '0' : s[k] - 'A' + 10);
            t->dblob[at++] = (char)v;
        } else {
            while (i < n) {
                int32_t cp;
                size_t l = tok_utf8_next(s + i, n - i, &cp);
                if (t->kind == TOK_BYTE_LEVEL && cp >= 0 && cp < 512 && inv[cp] >= 0) {
                    t->dblob[at++] = (char)inv[cp];
                } else if (t->kind == TOK_SPM && cp == 0x2581) {
                    t->dblob[at++] = ' ';
                } else {
                    memcpy(t->dblob + at, s + i, l);
                    at += l;
                }
                i += l;
            }
        }
        t->dlen[id] = (uint32_t)(at - t->doff[id]);
    }
    /* SPM: may words be cut apart before "▁"? */
    if (t->kind == TOK_SPM) {
        t->spm_presplit = 1;
        for (int32_t id = 0; id < t->n_vocab && t->spm_presplit; id++) {
            if (t->attr[id] & (TA_SPECIAL | TA_BYTE)) continue;
            const char *p = t->blob + (t->off[id] == UINT32_MAX ? 0 : t->off[id]);
            size_t pl = t->plen[id];
            for (size_t i = 1; i + 3 <= pl; i++)
                if (!memcmp(p + i, SPM_SPACE, 3) && (i < 3 || memcmp(p + i - 3, SPM_SPACE, 3))) {
                    t->spm_presplit = 0;
                    break;
                }
        }
    }
    /* added tokens: longest first so the longest match wins */
    size_t na = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & TA_ADDED) && t->plen[id] > 0) na++;
    if (na) {
        t->added = malloc(na * sizeof *t->added);
        if (!t->added) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
        uint64_t *key = malloc(na * sizeof *key);
        if (!key) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
        t->n_added = 0;
        for (int32_t id = 0; id < t->n_vocab; id++)
            if ((t->attr[id] & TA_ADDED) && t->plen[id] > 0)
                key[t->n_added++] = ((uint64_t)(UINT32_MAX - t->plen[id]) << 32) | (uint32_t)id;
        qsort(key, t->n_added, sizeof *key, cmp_added);
        for (size_t k = 0; k < t->n_added; k++) t->added[k] = (int32_t)(key[k] & 0xFFFFFFFFu);
        free(key);
        for (size_t k = 0; k < t->n_added; k++) t->added_first[(uint8_t)t->blob[t->off[t->added[k]]]] = 1;
    }
    return MK_OK;
}

/* keys (UINT32_MAX - length) << 32 | id: longest first, then lower id */
static int cmp_added(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* ------------------------------------------------------------ id vector */

typedef struct {
    int32_t *v;
    size_t n, cap;
    int oom;
} ivec;

static inline void ipush(ivec *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) { o->oom = 1; return; }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
}

/* ------------------------------------------------------------ BPE merges */

/* Symbols of one word during merging: a doubly linked list over the initial
 * units; a merged symbol keeps the index of its left part. */
typedef struct {
    int32_t *id;    /* (n) vocabulary id, -1 = unknown unit */
    int32_t *prev, *next; /* (n) neighbours, -1 at the ends */
    uint32_t *start, *len; /* (n) bytes of the word covered */
    size_t n, cap;
    /* heap of candidate merges for long words */
    uint64_t *heap; /* (rank << 32 | left index) */
    size_t hn, hcap;
} bpe_work;

static void work_free(bpe_work *w) {
    free(w->id);
    free(w->prev);
    free(w->next);
    free(w->start);
    free(w->len);
    free(w->heap);
}

static int work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(w->id, cap * sizeof *a);
    if (a) w->id = a;
    int32_t *b = realloc(w->prev, cap * sizeof *b);
    if (b) w->prev = b;
    int32_t *c = realloc(w->next, cap * sizeof *c);
    if (c) w->next = c;
    uint32_t *d = realloc(w->start, cap * sizeof *d);
    if (d) w->start = d;
    uint32_t *e = realloc(w->len, cap * sizeof *e);
    if (e) w->len = e;
    if (!a || !b || !c || !d || !e) return -1;
    w->cap = cap;
    return 0;
}

static int heap_push(bpe_work *w, uint64_t x) {
    if (w->hn == w->hcap) {
        size_t cap = w->hcap ? w->hcap * 2 : 256;
        uint64_t *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return -1;
        w->heap = h;
        w->hcap = cap;
    }
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p] <= x) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = x;
    return 0;
}

static uint64_t heap_pop(bpe_work *w) {
    uint64_t top = w->heap[0], x = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap[c + 1] < w->heap[c]) c++;
        if (w->heap[c] >= x) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = x;
    return top;
}

/* Merge the symbols in w (w->n units already set, linked in order). Words up
 * to SMALL units use a rank array and linear scans (fast for the usual short
 * pre-token); longer ones a heap, so a megabyte without spaces stays
 * O(n log n). Both merge the lowest rank first, leftmost on ties. */
enum { BPE_SMALL = 48 };

static void merge_small(const mk_tokenizer *t, bpe_work *w) {
    size_t n = w->n;
    int32_t rank[BPE_SMALL], mid[BPE_SMALL];
    for (size_t i = 0; i + 1 < n; i++) rank[i] = pair_rank(t, w->id[i], w->id[i + 1], &mid[i]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        w->id[best] = mid[best];
        w->len[best] += w->len[best + 1];
        /* drop unit best+1 */
        for (size_t i = best + 1; i + 1 < n; i++) {
            w->id[i] = w->id[i + 1];
            w->start[i] = w->start[i + 1];
            w->len[i] = w->len[i + 1];
        }
        for (size_t i = best + 1; i + 2 < n; i++) {
            rank[i] = rank[i + 1];
            mid[i] = mid[i + 1];
        }
        n--;
        if (best > 0) rank[best - 1] = pair_rank(t, w->id[best - 1], w->id[best], &mid[best - 1]);
        if (best + 1 < n) rank[best] = pair_rank(t, w->id[best], w->id[best + 1], &mid[best]);
    }
    for (size_t i = 0; i < n; i++) {
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->n = n;
}

static int merge_heap(const mk_tokenizer *t, bpe_work *w) {
    size_t n = w->n;
    w->hn = 0;
    for (size_t i = 0; i < n; i++) {
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t m = -1;
        int32_t r = pair_rank(t, w->id[i], w->id[i + 1], &m);
        if (r != INT32_MAX && heap_push(w, ((uint64_t)(uint32_t)r << 32) | i)) return -1;
    }
    while (w->hn) {
        uint64_t top = heap_pop(w);
        int32_t r = (int32_t)(top >> 32);
        size_t i = (size_t)(top & 0xFFFFFFFFu);
        int32_t j = w->next[i];
        if (w->len[i] == 0 || j < 0) continue; /* stale */
        int32_t m = -1;
        if (pair_rank(t, w->id[i], w->id[j], &m) != r) continue; /* stale */
        w->id[i] = m;
        w->len[i] += w->len[j];
        w->len[j] = 0;
        w->next[i] = w->next[j];
        if (w->next[j] >= 0) w->prev[w->next[j]] = (int32_t)i;
        int32_t p = w->prev[i], q = w->next[i];
        if (p >= 0) {
            int32_t rr = pair_rank(t, w->id[p], w->id[i], &m);
            if (rr != INT32_MAX && heap_push(w, ((uint64_t)(uint32_t)rr << 32) | (uint32_t)p)) return -1;
        }
        if (q >= 0) {
            int32_t rr = pair_rank(t, w->id[i], w->id[q], &m);
            if (rr != INT32_MAX && heap_push(w, ((uint64_t)(uint32_t)rr << 32) | i)) return -1;
        }
    }
    return 0;
}

/* Emit the merged symbols of w; unknown units (-1) become <0xXX> byte tokens
 * (byte fallback), else unk (once per run when fuse_unk), else nothing. */
static void emit(const mk_tokenizer *t, const bpe_work *w, const uint8_t *word, ivec *out) {
    int prev_unk = 0;
    for (int32_t i = w->n ? 0 : -1; i >= 0; i = w->next[i]) {
        if (w->len[i] == 0) continue;
        if (w->id[i] >= 0) { ipush(out, w->id[i]); prev_unk = 0; continue; }
        const uint8_t *s = word + w->start[i];
        int done = 1;
        if (t->byte_fallback || t->kind == TOK_BYTE_LEVEL) {
            for (uint32_t k = 0; k < w->len[i]; k++)
                if (t->byte_id[s[k]] < 0) done = 0;
            if (done) {
                for (uint32_t k = 0; k < w->len[i]; k++) ipush(out, t->byte_id[s[k]]);
                prev_unk = 0;
                continue;
            }
        }
        if (t->unk >= 0 && !(t->fuse_unk && prev_unk)) ipush(out, t->unk);
        prev_unk = 1;
    }
}

/* BPE over one pre-token. Byte-level: units are bytes; SPM: UTF-8 units. */
static int bpe_word(const mk_tokenizer *t, bpe_work *w, const uint8_t *word, size_t n, ivec *out) {
    if (n == 0) return 0;
    if (t->ignore_merges) {
        /* the vocabulary spells byte-level words in byte characters */
        char buf[2 * 256];
        const char *key = (const char *)word;
        size_t kl = n;
        if (t->kind == TOK_BYTE_LEVEL) {
            key = buf;
            kl = 0;
            for (size_t i = 0; i < n && kl + 2 <= sizeof buf; i++) {
                memcpy(buf + kl, t->bl_char[word[i]], t->bl_len[word[i]]);
                kl += t->bl_len[word[i]];
            }
            if (n > 256) kl = 0; /* longer than any real piece: merge instead */
        }
        int32_t id = kl ? tok_find(t, key, kl) : -1;
        if (id >= 0 && !(t->attr[id] & TA_NOMERGE)) { ipush(out, id); return 0; }
    }
    if (work_reserve(w, n)) return -1;
    size_t k = 0;
    if (t->kind == TOK_BYTE_LEVEL) {
        for (size_t i = 0; i < n; i++) {
            w->id[k] = t->byte_id[word[i]];
            w->start[k] = (uint32_t)i;
            w->len[k] = 1;
            k++;
        }
    } else {
        for (size_t i = 0; i < n;) {
            int32_t cp;
            size_t l = tok_utf8_next(word + i, n - i, &cp);
            int32_t id = cp < 0 ? -1 : tok_find(t, (const char *)word + i, l);
            if (id >= 0 && (t->attr[id] & (TA_BYTE | TA_SPECIAL))) id = -1;
            w->id[k] = id;
            w->start[k] = (uint32_t)i;
            w->len[k] = (uint32_t)l;
            k++;
            i += l;
        }
    }
    w->n = k;
    if (k <= BPE_SMALL) merge_small(t, w);
    else if (merge_heap(t, w)) return -1;
    emit(t, w, word, out);
    return 0;
}

/* ------------------------------------------------------- word cache */

/* Byte-level pre-tokens repeat a lot ("Ġthe", "Ġof"): their ids are cached.
 * The tokenizer owns one cache behind a mutex that encode() only tries to
 * take: the thread that gets it uses it, others fall back to a cache of their
 * own for the call (long texts) or none. Keys and ids live in two arenas; a
 * full cache is emptied and refilled. */
/* sizes start small (a tokenizer used for a few strings costs little) and
 * double up to these limits */
enum { CACHE_BITS = 16, CACHE_MAXLEN = 64, CACHE_KEYS = 1 << 20, CACHE_IDS = 1 << 18,
       CACHE_BITS0 = 10, CACHE_KEYS0 = 1 << 14, CACHE_IDS0 = 1 << 12 };

typedef struct {
    uint64_t hash;        /* 0 = empty */
    uint32_t koff, klen;  /* key bytes: keys[koff .. koff+klen) */
    uint32_t ioff, icnt;  /* ids[ioff .. ioff+icnt) */
} cache_slot;

struct tok_cache {
    pthread_mutex_t mu;
    int ready;
    cache_slot *slot;        /* (1 << bits) */
    uint8_t *keys;           /* (cap_keys) */
    int32_t *ids;            /* (cap_ids) */
    size_t bits, cap_keys, cap_ids;
    size_t n_keys, n_ids, used;
};

static int cache_init(tok_cache *c) {
    c->bits = CACHE_BITS0;
    c->cap_keys = CACHE_KEYS0;
    c->cap_ids = CACHE_IDS0;
    c->slot = calloc((size_t)1 << c->bits, sizeof *c->slot);
    c->keys = malloc(c->cap_keys);
    c->ids = malloc(c->cap_ids * sizeof *c->ids);
    c->n_keys = c->n_ids = c->used = 0;
    c->ready = c->slot && c->keys && c->ids;
    return c->ready ? 0 : -1;
}

static void cache_release(tok_cache *c) {
    free(c->slot);
    free(c->keys);
    free(c->ids);
    c->ready = 0;
}

tok_cache *tok_cache_new(void) {
    tok_cache *c = calloc(1, sizeof *c);
    if (c && pthread_mutex_init(&c->mu, NULL)) { free(c); return NULL; }
    return c;
}

void tok_cache_free(tok_cache *c) {
    if (!c) return;
    cache_release(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Room for one more entry of n key bytes and cnt ids: grow what is short
 * while under the limits, else empty the cache. 0 when there is room. */
static int cache_room(tok_cache *c, size_t n, size_t cnt) {
    if (cnt > CACHE_IDS || n > CACHE_KEYS) return -1;
    while (c->n_keys + n > c->cap_keys && c->cap_keys < CACHE_KEYS) {
        uint8_t *k = realloc(c->keys, c->cap_keys * 2);
        if (!k) break;
        c->keys = k;
        c->cap_keys *= 2;
    }
    while (c->n_ids + cnt > c->cap_ids && c->cap_ids < CACHE_IDS) {
        int32_t *v = realloc(c->ids, c->cap_ids * 2 * sizeof *v);
        if (!v) break;
        c->ids = v;
        c->cap_ids *= 2;
    }
    size_t mask = ((size_t)1 << c->bits) - 1;
    if ((c->used + 1) * 4 > mask * 3 && c->bits < CACHE_BITS) {
        size_t nb = c->bits + 1, nmask = ((size_t)1 << nb) - 1;
        cache_slot *ns = calloc(nmask + 1, sizeof *ns);
        if (ns) {
            for (size_t i = 0; i <= mask; i++) {
                if (!c->slot[i].hash) continue;
                size_t j = c->slot[i].hash & nmask;
                while (ns[j].hash) j = (j + 1) & nmask;
                ns[j] = c->slot[i];
            }
            free(c->slot);
            c->slot = ns;
            c->bits = nb;
            mask = nmask;
        }
    }
    if ((c->used + 1) * 4 > mask * 3 || c->n_keys + n > c->cap_keys || c->n_ids + cnt > c->cap_ids) {
        memset(c->slot, 0, (mask + 1) * sizeof *c->slot); /* full: start over */
        c->used = c->n_ids = c->n_keys = 0;
        if (c->n_keys + n > c->cap_keys || c->n_ids + cnt > c->cap_ids) return -1;
    }
    return 0;
}

/* encode one pre-token, through the cache when there is one */
static int encode_word(const mk_tokenizer *t, bpe_work *w, tok_cache *c, const uint8_t *word,
                       size_t n, ivec *out) {
    if (!c || n > CACHE_MAXLEN) return bpe_word(t, w, word, n, out);
    uint64_t h = hash_bytes(word, n) | 1;
    size_t mask = ((size_t)1 << c->bits) - 1, j = h & mask;
    cache_slot *e;
    while ((e = &c->slot[j])->hash) {
        if (e->hash == h && e->klen == n && !memcmp(c->keys + e->koff, word, n)) {
            const int32_t *v = c->ids + e->ioff;
            uint32_t cnt = e->icnt;
            if (out->n + cnt > out->cap) {
                for (uint32_t k = 0; k < cnt; k++) ipush(out, v[k]);
            } else if (cnt) {
                memcpy(out->v + out->n, v, cnt * sizeof *v);
                out->n += cnt;
            }
            return 0;
        }
        j = (j + 1) & mask;
    }
    size_t before = out->n;
    if (bpe_word(t, w, word, n, out)) return -1;
    if (out->oom) return 0;
    size_t cnt = out->n - before;
    if (cache_room(c, n, cnt)) return 0;
    mask = ((size_t)1 << c->bits) - 1; /* the table may have grown or been emptied */
    j = h & mask;
    while (c->slot[j].hash) j = (j + 1) & mask;
    e = &c->slot[j];
    e->hash = h;
    e->koff = (uint32_t)c->n_keys;
    e->klen = (uint32_t)n;
    memcpy(c->keys + c->n_keys, word, n);
    c->n_keys += n;
    e->ioff = (uint32_t)c->n_ids;
    e->icnt = (uint32_t)cnt;
    if (cnt) memcpy(c->ids + c->n_ids, out->v + before, cnt * sizeof *c->ids);
    c->n_ids += cnt;
    c->used++;
    return 0;
}

/* ---------------------------------------------------------------- encode */

/* one stretch of text between added tokens; first = it starts the input */
static int encode_segment(const mk_tokenizer *t, bpe_work *w, tok_cache *c, const uint8_t *s,
                          size_t n, int first, ivec *out) {
    uint8_t *tmp = NULL;
    int rc = 0;
    if (n == 0) return 0;
    if (t->kind == TOK_SPM) {
        /* normalize: spaces -> "▁", dummy prefix */
        int pre = t->prepend == PREPEND_ALWAYS || (t->prepend == PREPEND_FIRST && first);
        size_t spaces = 0;
        if (t->replace_space)
            for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
        if (t->prepend_if_missing && pre && s[0] == ' ') pre = 0;
        size_t m = n + 2 * spaces + (pre ? 3 : 0), k = 0;
        tmp = malloc(m);
        if (!tmp) return -1;
        if (pre) { memcpy(tmp, SPM_SPACE, 3); k = 3; }
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ' && t->replace_space) { memcpy(tmp + k, SPM_SPACE, 3); k += 3; }
            else tmp[k++] = s[i];
        }
        if (t->split == SPLIT_METASPACE) {
            /* words start at each "▁" */
            size_t a = 0;
            for (size_t i = 1; i <= m; i++) {
                if (i == m || (i + 3 <= m && !memcmp(tmp + i, SPM_SPACE, 3))) {
                    if (encode_word(t, w, c, tmp + a, i - a, out)) { rc = -1; goto done; }
                    a = i;
                }
            }
        } else if (t->spm_presplit) {
            /* words: a run of "▁" and what follows up to the next "▁" */
            size_t a = 0;
            for (size_t i = 1; i <= m; i++) {
                if (i == m || (i + 3 <= m && !memcmp(tmp + i, SPM_SPACE, 3) &&
                               (i < 3 || memcmp(tmp + i - 3, SPM_SPACE, 3)))) {
                    if (encode_word(t, w, c, tmp + a, i - a, out)) { rc = -1; goto done; }
                    a = i;
                }
            }
        } else {
            rc = bpe_word(t, w, tmp, m, out);
        }
        goto done;
    }
    /* byte-level */
    if (t->prefix_space && s[0] != ' ') {
        tmp = malloc(n + 1);
        if (!tmp) return -1;
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        s = tmp;
        n++;
    }
    if (t->split == SPLIT_GPT2 || t->split == SPLIT_LLAMA3) {
        size_t (*next)(const uint8_t *, size_t) =
            t->split == SPLIT_GPT2 ? tok_split_gpt2 : tok_split_llama3;
        for (size_t i = 0; i < n;) {
            size_t l = next(s + i, n - i);
            if (encode_word(t, w, c, s + i, l, out)) { rc = -1; goto done; }
            i += l;
        }
    } else if (t->split == SPLIT_PCRE) {
        /* Isolated: matches and the gaps between them are pre-tokens */
        size_t i = 0, ms, me;
        while (i < n && tok_re_next(t->re, s, n, i, &ms, &me)) {
            if (ms > i && encode_word(t, w, c, s + i, ms - i, out)) { rc = -1; goto done; }
            if (encode_word(t, w, c, s + ms, me - ms, out)) { rc = -1; goto done; }
            i = me;
        }
        if (i < n && encode_word(t, w, c, s + i, n - i, out)) { rc = -1; goto done; }
    } else {
        rc = encode_word(t, w, c, s, n, out);
    }
done:
    free(tmp);
    return rc;
}

static inline int is_space_byte(uint8_t b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

int mk_tok_encode(const mk_tokenizer *t, const char *text, size_t len, int flags, int32_t **ids,
                  size_t *n) {
    ivec out = {0};
    bpe_work w = {0};
    tok_cache local, *c = NULL;
    int locked = 0;
    int rc = MK_OK;
    if (!t || !ids || !n || (!text && len)) return mk_fail(MK_ERR_ARG, "mk_tok_encode: NULL argument");
    *ids = NULL;
    *n = 0;
    if (len > (size_t)UINT32_MAX)
        return mk_fail(MK_ERR_RANGE, "mk_tok_encode: text of %zu bytes is over the 4 GiB limit", len);
    memset(&local, 0, sizeof local);
    int cacheable = t->kind == TOK_BYTE_LEVEL || t->spm_presplit || t->split == SPLIT_METASPACE;
    if (cacheable && t->cache && pthread_mutex_trylock(&t->cache->mu) == 0) {
        locked = 1;
        if (t->cache->ready || cache_init(t->cache) == 0) c = t->cache;
        else cache_release(t->cache);
    }
    if (!c && cacheable && len >= 4096) {
        if (cache_init(&local) == 0) c = &local;
        else cache_release(&local);
    }
    if (flags & MK_TOK_SPECIAL)
        for (int i = 0; i < t->n_pre; i++) ipush(&out, t->pre_ids[i]);
    const uint8_t *s = (const uint8_t *)text;
    size_t seg = 0; /* start of the pending text segment */
    int first = 1;
    for (size_t i = 0; i < len && t->n_added;) {
        if (!t->added_first[s[i]]) { i++; continue; }
        int32_t hit = -1;
        for (size_t k = 0; k < t->n_added; k++) {
            int32_t id = t->added[k];
            uint32_t pl = t->plen[id];
            if ((t->attr[id] & TA_SPECIAL) && (flags & MK_TOK_SPLIT_SPECIAL)) continue;
            if (pl <= len - i && (uint8_t)t->blob[t->off[id]] == s[i] &&
                !memcmp(t->blob + t->off[id], s + i, pl)) {
                hit = id;
                break;
            }
        }
        if (hit < 0) { i++; continue; }
        size_t end = i;
        if (t->attr[hit] & TA_LSTRIP)
            while (end > seg && is_space_byte(s[end - 1])) end--;
        if (encode_segment(t, &w, c, s + seg, end - seg, first, &out)) goto oom;
        if (end > seg) first = 0;
        ipush(&out, hit);
        first = 0;
        i += t->plen[hit];
        if (t->attr[hit] & TA_RSTRIP)
            while (i < len && is_space_byte(s[i])) i++;
        seg = i;
    }
    if (encode_segment(t, &w, c, s + seg, len - seg, first, &out)) goto oom;
    if (flags & MK_TOK_SPECIAL)
        for (int i = 0; i < t->n_post; i++) ipush(&out, t->post_ids[i]);
    if (out.oom) goto oom;
    *ids = out.v;
    *n = out.n;
    if (!out.v) *ids = malloc(sizeof(int32_t)); /* never NULL on success */
    if (!*ids) goto oom;
    goto done;
oom:
    free(out.v);
    rc = mk_fail(MK_ERR_NOMEM, "mk_tok_encode: out of memory for %zu bytes of text", len);
done:
    work_free(&w);
    if (local.ready) cache_release(&local);
    if (locked) pthread_mutex_unlock(&t->cache->mu);
    return rc;
}

/* ---------------------------------------------------------------- decode */

int mk_tok_decode(const mk_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                  char **out, size_t *len) {
    if (!t || !out || (!ids && n)) return mk_fail(MK_ERR_ARG, "mk_tok_decode: NULL argument");
    *out = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || t->off[ids[i]] == UINT32_MAX)
            return mk_fail(MK_ERR_RANGE, "mk_tok_decode: id %ld at position %zu is not in the "
                           "vocabulary (%ld ids)", (long)ids[i], i, (long)t->n_vocab);
        total += t->dlen[ids[i]];
    }
    char *o = malloc(total + 1);
    if (!o) return mk_fail(MK_ERR_NOMEM, "mk_tok_decode: out of memory (%zu bytes)", total);
    size_t k = 0;
    /* SentencePiece: the dummy prefix's space goes away again */
    int strip = t->kind == TOK_SPM && t->prepend != PREPEND_NEVER;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (skip_special && (t->attr[id] & TA_SPECIAL)) continue;
        const char *d = t->dblob + t->doff[id];
        size_t l = t->dlen[id];
        if (strip && !(t->attr[id] & TA_SPECIAL)) {
            if (l && d[0] == ' ') { d++; l--; }
            strip = 0;
        }
        memcpy(o + k, d, l);
        k += l;
    }
    o[k] = 0;
    *out = o;
    if (len) *len = k;
    return MK_OK;
}

/* ------------------------------------------------------------- accessors */

size_t mk_tok_n_vocab(const mk_tokenizer *t) { return t ? (size_t)t->n_vocab : 0; }

const char *mk_tok_piece(const mk_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab || t->off[id] == UINT32_MAX) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->plen[id];
    return t->blob + t->off[id];
}

const char *mk_tok_token_bytes(const mk_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab || t->off[id] == UINT32_MAX) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->dlen[id];
    return t->dblob + t->doff[id];
}

int32_t mk_tok_id(const mk_tokenizer *t, const char *piece) {
    return t && piece ? tok_find(t, piece, strlen(piece)) : -1;
}

int32_t mk_tok_bos(const mk_tokenizer *t) { return t ? t->bos : -1; }
int32_t mk_tok_eos(const mk_tokenizer *t) { return t ? t->eos : -1; }
int32_t mk_tok_pad(const mk_tokenizer *t) { return t ? t->pad : -1; }
int32_t mk_tok_unk(const mk_tokenizer *t) { return t ? t->unk : -1; }

const char *mk_tok_kind(const mk_tokenizer *t) {
    if (!t) return "none";
    return t->kind == TOK_BYTE_LEVEL ? "byte-level-bpe" : "sentencepiece-bpe";
}
