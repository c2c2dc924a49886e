/* gguf.c - GGUF v2/v3 reader (mmap + strict validation) and v3 writer.
 *
 * Layout (little-endian throughout):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x  { string key | u32 type | value }
 *            value: scalar, string (u64 len + bytes), or
 *                   array (u32 elem type | u64 count | elems)
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] (innermost
 *                 first) | u32 ggml type | u64 offset from data start }
 *   zero padding to `general.alignment` (u32, default 32)
 *   tensor data, each tensor at an aligned offset
 *
 * Policy decisions (documented here and tested):
 *  - version 1 (32-bit counts) and versions > 3 are refused as
 *    MK_ERR_UNSUPPORTED; a byte-swapped version is reported as big-endian.
 *  - arrays of arrays are refused as MK_ERR_UNSUPPORTED (llama.cpp's own
 *    reader does not accept them either).
 *  - a tensor of a ggml type other than F32/F16/Q4_0/Q8_0/BF16 makes the
 *    whole open fail with MK_ERR_UNSUPPORTED naming the tensor and the
 *    type, so no caller ever sees a view it cannot decode.
 *  - we are stricter than llama.cpp in a few places that cost nothing on
 *    real files: bool values must be 0 or 1, keys and tensor names must be
 *    non-empty, tensor names may not contain NUL bytes, every dim >= 1.
 *    Tensor offsets need only be aligned, in bounds and non-overlapping
 *    (llama.cpp additionally wants them packed in order).
 */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "mapfile.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY 65535
#define GGML_MAX_NAME 64 /* llama.cpp's limit for tensor names, incl. NUL */
#define HEADER_BYTES 24
#define MIN_KV_BYTES 13     /* key len (8) + type (4) + smallest value (1) */
#define MIN_TENSOR_BYTES 32 /* name len (8) + n_dims (4) + 1 dim (8) + type (4) + offset (8) */

typedef struct {
    const char *key; /* into the mapping, key_len bytes, no NUL */
    size_t key_len;
    mk_gguf_type type;
    mk_gguf_type arr_type; /* arrays only */
    uint64_t arr_n;
    const uint8_t *val;    /* scalar bytes, or the first array element */
    size_t val_len;        /* bytes of the whole value as stored (arrays: from the elem type field) */
    uint64_t *str_off;     /* string arrays: offset of element i from val */
} gg_kv;

struct mk_gguf {
    char *label;
    mk_mapfile map; /* only for mk_gguf_open */
    const uint8_t *base;
    size_t size;
    uint32_t version, alignment;
    size_t data_start;
    size_t n_kv, kv_alloc; /* kv_alloc: entries allocated (cleanup) */
    gg_kv *kv;
    size_t n_t;
    mk_tensor_view *t;
    char *names;             /* all tensor names, NUL-terminated, back to back */
    size_t *kv_hash, kv_hcap; /* open addressing: slot holds index+1, 0 = empty */
    size_t *t_hash, t_hcap;
};

/* ---- little-endian loads and stores (any alignment) ---- */

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | ((uint64_t)ld32(p + 4) << 32); }

static size_t type_size(uint32_t t) {
    switch (t) {
    case MK_GGUF_UINT8: case MK_GGUF_INT8: case MK_GGUF_BOOL: return 1;
    case MK_GGUF_UINT16: case MK_GGUF_INT16: return 2;
    case MK_GGUF_UINT32: case MK_GGUF_INT32: case MK_GGUF_FLOAT32: return 4;
    case MK_GGUF_UINT64: case MK_GGUF_INT64: case MK_GGUF_FLOAT64: return 8;
    default: return 0; /* string, array: variable */
    }
}

const char *mk_gguf_type_name(mk_gguf_type t) {
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                  "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "invalid";
}

/* ggml's type numbers, for messages about types we do not decode. */
static const char *ggml_type_name(uint32_t t) {
    static const char *names[] = {
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1", "Q8_0",
        "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
        "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
        "BF16"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static int ggml_to_dtype(uint32_t t, mk_dtype *d) {
    switch (t) {
    case 0: *d = MK_F32; return 1;
    case 1: *d = MK_F16; return 1;
    case 2: *d = MK_Q4_0; return 1;
    case 8: *d = MK_Q8_0; return 1;
    case 30: *d = MK_BF16; return 1;
    default: return 0;
    }
}

static uint32_t dtype_to_ggml(mk_dtype d) {
    switch (d) {
    case MK_F32: return 0;
    case MK_F16: return 1;
    case MK_Q4_0: return 2;
    case MK_Q8_0: return 8;
    case MK_BF16: return 30;
    default: return 0;
    }
}

/* A printable copy of untrusted bytes for messages (at most 64 shown). */
static const char *printable(char buf[80], const void *s, size_t len) {
    const unsigned char *p = s;
    size_t n = len < 64 ? len : 64, o = 0;
    for (size_t i = 0; i < n; i++) buf[o++] = (p[i] >= 32 && p[i] < 127) ? (char)p[i] : '?';
    if (len > n) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o] = 0;
    return buf;
}

static uint64_t hash_bytes(const void *s, size_t n) {
    const unsigned char *p = s;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static size_t hash_cap(size_t n) {
    size_t c = 16;
    while (c < 2 * n) c *= 2;
    return c;
}

/* ---- reading ---- */

typedef struct {
    const uint8_t *p;
    size_t pos, size;
    const char *label;
    char ctx[128]; /* "key 'x' " / "tensor 'y' ": what is being read */
} rd;

static int need(rd *r, uint64_t n, const char *what) {
    if (n > r->size - r->pos)
        return mk_fail(MK_ERR_FORMAT, "%s: truncated: %s%s at offset %zu needs %llu bytes, only %zu left",
                       r->label, r->ctx, what, r->pos, (unsigned long long)n, r->size - r->pos);
    return MK_OK;
}

static int rd_u32(rd *r, uint32_t *v, const char *what) {
    int rc = need(r, 4, what);
    if (rc) return rc;
    *v = ld32(r->p + r->pos);
    r->pos += 4;
    return MK_OK;
}

static int rd_u64(rd *r, uint64_t *v, const char *what) {
    int rc = need(r, 8, what);
    if (rc) return rc;
    *v = ld64(r->p + r->pos);
    r->pos += 8;
    return MK_OK;
}

/* A GGUF string: u64 length then bytes; returns a pointer into the map. */
static int rd_str(rd *r, const uint8_t **s, uint64_t *len, const char *what) {
    size_t at = r->pos;
    int rc = rd_u64(r, len, what);
    if (rc) return rc;
    if (*len > r->size - r->pos)
        return mk_fail(MK_ERR_FORMAT, "%s: %s%s at offset %zu has length %llu, past the end of the file (%zu bytes left)",
                       r->label, r->ctx, what, at, (unsigned long long)*len, r->size - r->pos);
    *s = r->p + r->pos;
    r->pos += (size_t)*len;
    return MK_OK;
}

static long find_in(const size_t *tab, size_t cap, const void *key, size_t len,
                    int (*eq)(const mk_gguf *, size_t, const void *, size_t), const mk_gguf *g) {
    if (!tab) return -1;
    size_t h = (size_t)hash_bytes(key, len) & (cap - 1);
    while (tab[h]) {
        if (eq(g, tab[h] - 1, key, len)) return (long)(tab[h] - 1);
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

static int kv_eq(const mk_gguf *g, size_t i, const void *key, size_t len) {
    return g->kv[i].key_len == len && !memcmp(g->kv[i].key, key, len);
}

static int t_eq(const mk_gguf *g, size_t i, const void *key, size_t len) {
    return !strncmp(g->t[i].name, key, len) && g->t[i].name[len] == 0;
}

static void insert_in(size_t *tab, size_t cap, const void *key, size_t len, size_t idx) {
    size_t h = (size_t)hash_bytes(key, len) & (cap - 1);
    while (tab[h]) h = (h + 1) & (cap - 1);
    tab[h] = idx + 1;
}

static int parse_value(mk_gguf *g, rd *r, gg_kv *kv, const char *kname) {
    const char *L = g->label;
    uint32_t t;
    int rc = rd_u32(r, &t, "value type");
    if (rc) return rc;
    if (t > MK_GGUF_FLOAT64)
        return mk_fail(MK_ERR_FORMAT, "%s: key '%s' has invalid value type %u (valid: 0..12)", L, kname, t);
    kv->type = (mk_gguf_type)t;
    size_t start = r->pos;
    if (t == MK_GGUF_STRING) {
        const uint8_t *s;
        uint64_t n;
        if ((rc = rd_str(r, &s, &n, "string value"))) return rc;
    } else if (t == MK_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if ((rc = rd_u32(r, &et, "array element type")) || (rc = rd_u64(r, &n, "array length"))) return rc;
        if (et > MK_GGUF_FLOAT64)
            return mk_fail(MK_ERR_FORMAT, "%s: key '%s' is an array of invalid type %u (valid: 0..12)", L, kname, et);
        if (et == MK_GGUF_ARRAY)
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: key '%s' is an array of arrays, which is not supported", L, kname);
        kv->arr_type = (mk_gguf_type)et;
        kv->arr_n = n;
        size_t left = r->size - r->pos;
        if (et == MK_GGUF_STRING) {
            if (n > left / 8)
                return mk_fail(MK_ERR_FORMAT, "%s: key '%s' claims %llu strings but only %zu bytes follow",
                               L, kname, (unsigned long long)n, left);
            kv->str_off = malloc((n ? n : 1) * sizeof *kv->str_off);
            if (!kv->str_off) return mk_fail(MK_ERR_NOMEM, "%s: out of memory for key '%s'", L, kname);
            size_t first = r->pos;
            for (uint64_t i = 0; i < n; i++) {
                kv->str_off[i] = r->pos - first;
                const uint8_t *s;
                uint64_t sl;
                snprintf(r->ctx, sizeof r->ctx, "key '%s' element %llu: ", kname, (unsigned long long)i);
                if ((rc = rd_str(r, &s, &sl, "string"))) return rc;
            }
        } else {
            size_t es = type_size(et);
            if (n > left / es)
                return mk_fail(MK_ERR_FORMAT, "%s: key '%s' claims %llu elements of %zu bytes but only %zu bytes follow",
                               L, kname, (unsigned long long)n, es, left);
            if (et == MK_GGUF_BOOL)
                for (uint64_t i = 0; i < n; i++)
                    if (r->p[r->pos + i] > 1)
                        return mk_fail(MK_ERR_FORMAT, "%s: key '%s' element %llu is a bool with value %u (must be 0 or 1)",
                                       L, kname, (unsigned long long)i, r->p[r->pos + i]);
            r->pos += (size_t)(n * es);
        }
        kv->val = r->p + start + 12;
        kv->val_len = r->pos - start;
        return MK_OK;
    } else {
        size_t es = type_size(t);
        if ((rc = need(r, es, "value"))) return rc;
        if (t == MK_GGUF_BOOL && r->p[r->pos] > 1)
            return mk_fail(MK_ERR_FORMAT, "%s: key '%s' is a bool with value %u (must be 0 or 1)", L, kname, r->p[r->pos]);
        r->pos += es;
    }
    kv->val = r->p + start;
    kv->val_len = r->pos - start;
    return MK_OK;
}

typedef struct {
    const uint8_t *name;
    size_t name_len;
    uint64_t offset;
} t_raw;

static void sort_by_offset(size_t *idx, size_t n, const uint64_t *off) {
    /* Heap sort on indices (no global state, no recursion, O(n log n)). */
    for (size_t k = n / 2; k-- > 0;) {
        size_t i = k;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && off[idx[c + 1]] > off[idx[c]]) c++;
            if (off[idx[c]] <= off[idx[i]]) break;
            size_t tmp = idx[c]; idx[c] = idx[i]; idx[i] = tmp;
            i = c;
        }
    }
    for (size_t end = n; end-- > 1;) {
        size_t tmp = idx[0]; idx[0] = idx[end]; idx[end] = tmp;
        size_t i = 0;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= end) break;
            if (c + 1 < end && off[idx[c + 1]] > off[idx[c]]) c++;
            if (off[idx[c]] <= off[idx[i]]) break;
            size_t t2 = idx[c]; idx[c] = idx[i]; idx[i] = t2;
            i = c;
        }
    }
}

static int parse(mk_gguf *g) {
    const char *L = g->label;
    char pb[80], pb2[80];
    rd r = {g->base, 0, g->size, L, ""};
    t_raw *raw = NULL;
    uint64_t *offs = NULL;
    size_t *order = NULL;
    int rc = MK_OK;

    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        if (g->size < 4)
            return mk_fail(MK_ERR_FORMAT, "%s: not a GGUF file (only %zu bytes)", L, g->size);
        return mk_fail(MK_ERR_FORMAT, "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected 'GGUF')",
                       L, g->base[0], g->base[1], g->base[2], g->base[3]);
    }
    r.pos = 4;
    uint32_t ver;
    if ((rc = rd_u32(&r, &ver, "version"))) return rc;
    if (ver == 1)
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (it used 32-bit counts); re-convert the model with a current llama.cpp", L);
    if (ver != 2 && ver != 3) {
        if ((ver & 0xffff) == 0 && (ver >> 16) != 0)
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: big-endian GGUF (version field 0x%08x) is not supported", L, ver);
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (this reader knows versions 2 and 3)", L, ver);
    }
    g->version = ver;
    uint64_t n_t, n_kv;
    if ((rc = rd_u64(&r, &n_t, "tensor count")) || (rc = rd_u64(&r, &n_kv, "metadata count"))) return rc;
    size_t left = r.size - r.pos;
    if (n_kv > left / MIN_KV_BYTES)
        return mk_fail(MK_ERR_FORMAT, "%s: header claims %llu metadata entries but only %zu bytes follow (each needs at least %d)",
                       L, (unsigned long long)n_kv, left, MIN_KV_BYTES);
    if (n_t > left / MIN_TENSOR_BYTES)
        return mk_fail(MK_ERR_FORMAT, "%s: header claims %llu tensors but only %zu bytes follow (each needs at least %d)",
                       L, (unsigned long long)n_t, left, MIN_TENSOR_BYTES);
    if (n_kv * MIN_KV_BYTES + n_t * MIN_TENSOR_BYTES > left)
        return mk_fail(MK_ERR_FORMAT, "%s: header claims %llu metadata entries and %llu tensors, more than the %zu bytes that follow can hold",
                       L, (unsigned long long)n_kv, (unsigned long long)n_t, left);

    /* ---- metadata ----
     * Arrays grow with the entries actually parsed, so memory follows the
     * file's real content rather than the counts it claims. */
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        if (i == g->kv_alloc) {
            size_t c = g->kv_alloc ? 2 * g->kv_alloc : 16;
            if (c > n_kv) c = (size_t)n_kv;
            gg_kv *nk = realloc(g->kv, c * sizeof *nk);
            if (!nk) return mk_fail(MK_ERR_NOMEM, "%s: out of memory for %llu metadata entries", L, (unsigned long long)n_kv);
            memset(nk + g->kv_alloc, 0, (c - g->kv_alloc) * sizeof *nk);
            g->kv = nk;
            g->kv_alloc = c;
        }
        gg_kv *kv = &g->kv[i];
        const uint8_t *k;
        uint64_t kl;
        size_t at = r.pos;
        snprintf(r.ctx, sizeof r.ctx, "metadata entry %zu: ", i);
        if ((rc = rd_str(&r, &k, &kl, "key"))) return rc;
        if (kl == 0) return mk_fail(MK_ERR_FORMAT, "%s: metadata entry %zu at offset %zu has an empty key", L, i, at);
        if (kl > GGUF_MAX_KEY)
            return mk_fail(MK_ERR_FORMAT, "%s: metadata entry %zu has a %llu-byte key (limit %d)", L, i, (unsigned long long)kl, GGUF_MAX_KEY);
        kv->key = (const char *)k;
        kv->key_len = (size_t)kl;
        printable(pb, k, (size_t)kl);
        snprintf(r.ctx, sizeof r.ctx, "key '%s': ", pb);
        if ((rc = parse_value(g, &r, kv, pb))) return rc;
    }
    g->n_kv = (size_t)n_kv;
    g->kv_hcap = hash_cap(g->n_kv);
    g->kv_hash = calloc(g->kv_hcap, sizeof *g->kv_hash);
    if (!g->kv_hash) return mk_fail(MK_ERR_NOMEM, "%s: out of memory for %zu metadata entries", L, g->n_kv);
    for (size_t i = 0; i < g->n_kv; i++) {
        const gg_kv *kv = &g->kv[i];
        if (find_in(g->kv_hash, g->kv_hcap, kv->key, kv->key_len, kv_eq, g) >= 0)
            return mk_fail(MK_ERR_FORMAT, "%s: duplicate metadata key '%s'", L, printable(pb, kv->key, kv->key_len));
        insert_in(g->kv_hash, g->kv_hcap, kv->key, kv->key_len, i);
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    long ai = mk_gguf_find(g, "general.alignment");
    if (ai >= 0) {
        const gg_kv *kv = &g->kv[ai];
        if (kv->type != MK_GGUF_UINT32)
            return mk_fail(MK_ERR_FORMAT, "%s: general.alignment has type %s, expected uint32", L, mk_gguf_type_name(kv->type));
        uint32_t a = ld32(kv->val);
        if (a == 0 || (a & (a - 1)))
            return mk_fail(MK_ERR_FORMAT, "%s: general.alignment is %u, expected a non-zero power of two", L, a);
        g->alignment = a;
    }

    /* ---- tensor infos ---- */
    left = r.size - r.pos;
    if (n_t > left / MIN_TENSOR_BYTES)
        return mk_fail(MK_ERR_FORMAT, "%s: header claims %llu tensors but only %zu bytes follow the metadata (each needs at least %d)",
                       L, (unsigned long long)n_t, left, MIN_TENSOR_BYTES);
    size_t nt = (size_t)n_t, t_cap = 0;
    size_t names_bytes = 0;
    for (size_t i = 0; i < nt; i++) {
        if (i == t_cap) {
            size_t c = t_cap ? 2 * t_cap : 16;
            if (c > nt) c = nt;
            mk_tensor_view *ntv = realloc(g->t, c * sizeof *ntv);
            if (ntv) g->t = ntv;
            t_raw *nraw = realloc(raw, c * sizeof *nraw);
            if (nraw) raw = nraw;
            if (!ntv || !nraw) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory for %zu tensors", L, nt); goto fail; }
            memset(g->t + t_cap, 0, (c - t_cap) * sizeof *g->t);
            t_cap = c;
        }
        mk_tensor_view *tv = &g->t[i];
        const uint8_t *nm;
        uint64_t nl;
        size_t at = r.pos;
        snprintf(r.ctx, sizeof r.ctx, "tensor %zu: ", i);
        if ((rc = rd_str(&r, &nm, &nl, "name"))) goto fail;
        if (nl == 0) { rc = mk_fail(MK_ERR_FORMAT, "%s: tensor %zu at offset %zu has an empty name", L, i, at); goto fail; }
        printable(pb, nm, (size_t)nl);
        if (memchr(nm, 0, (size_t)nl)) { rc = mk_fail(MK_ERR_FORMAT, "%s: tensor %zu name '%s' contains a NUL byte", L, i, pb); goto fail; }
        raw[i].name = nm;
        raw[i].name_len = (size_t)nl;
        names_bytes += (size_t)nl + 1;
        uint32_t nd;
        snprintf(r.ctx, sizeof r.ctx, "tensor '%s': ", pb);
        if ((rc = rd_u32(&r, &nd, "n_dims"))) goto fail;
        if (nd < 1 || nd > MK_MAX_DIMS) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (supported: 1..%d)", L, pb, nd, MK_MAX_DIMS);
            goto fail;
        }
        uint64_t ne[MK_MAX_DIMS], n = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if ((rc = rd_u64(&r, &ne[d], "dimension"))) goto fail;
            if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' dimension %u is %llu (must be 1..2^63-1)", L, pb, d, (unsigned long long)ne[d]);
                goto fail;
            }
            if (ne[d] > (uint64_t)INT64_MAX / n) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' element count overflows (dimension %u is %llu)", L, pb, d, (unsigned long long)ne[d]);
                goto fail;
            }
            n *= ne[d];
        }
        uint32_t gt;
        if ((rc = rd_u32(&r, &gt, "type")) || (rc = rd_u64(&r, &raw[i].offset, "offset"))) goto fail;
        mk_dtype dt;
        if (!ggml_to_dtype(gt, &dt)) {
            rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: tensor '%s' has ggml type %u (%s), which medrek does not support (supported: F32, F16, BF16, Q8_0, Q4_0)",
                         L, pb, gt, ggml_type_name(gt));
            goto fail;
        }
        int blk = mk_dtype_block(dt);
        if (ne[0] % (uint64_t)blk) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' of type %s has innermost dimension %llu, not a multiple of %d",
                         L, pb, mk_dtype_name(dt), (unsigned long long)ne[0], blk);
            goto fail;
        }
        size_t nb = mk_dtype_nbytes(dt, n);
        if (nb == 0) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' byte size overflows (%llu elements of %s)", L, pb, (unsigned long long)n, mk_dtype_name(dt));
            goto fail;
        }
        tv->dtype = dt;
        tv->n_dims = (int)nd;
        for (uint32_t d = 0; d < nd; d++) tv->shape[d] = (int64_t)ne[nd - 1 - d];
        tv->n_elems = n;
        tv->nbytes = nb;
    }

    /* Names are copied so views can hand out NUL-terminated strings. */
    g->names = malloc(names_bytes ? names_bytes : 1);
    g->t_hcap = hash_cap(nt);
    g->t_hash = calloc(g->t_hcap, sizeof *g->t_hash);
    if (!g->names || !g->t_hash) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory for tensor names", L); goto fail; }
    char *np = g->names;
    for (size_t i = 0; i < nt; i++) {
        memcpy(np, raw[i].name, raw[i].name_len);
        np[raw[i].name_len] = 0;
        g->t[i].name = np;
        np += raw[i].name_len + 1;
    }
    g->n_t = nt;
    for (size_t i = 0; i < nt; i++) {
        if (find_in(g->t_hash, g->t_hcap, raw[i].name, raw[i].name_len, t_eq, g) >= 0) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: duplicate tensor name '%s'", L, printable(pb, raw[i].name, raw[i].name_len));
            goto fail;
        }
        insert_in(g->t_hash, g->t_hcap, raw[i].name, raw[i].name_len, i);
    }

    /* ---- data section ---- */
    size_t a = g->alignment;
    size_t end = r.pos;
    if (end > SIZE_MAX - (a - 1)) { rc = mk_fail(MK_ERR_FORMAT, "%s: data section offset overflows", L); goto fail; }
    g->data_start = (end + a - 1) / a * a;
    if (nt && g->data_start > g->size) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: tensor data should start at offset %zu (after the tensor infos, aligned to %zu) but the file has only %zu bytes",
                     L, g->data_start, a, g->size);
        goto fail;
    }
    size_t avail = nt ? g->size - g->data_start : 0;
    offs = malloc((nt ? nt : 1) * sizeof *offs);
    order = malloc((nt ? nt : 1) * sizeof *order);
    if (!offs || !order) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", L); goto fail; }
    for (size_t i = 0; i < nt; i++) {
        mk_tensor_view *tv = &g->t[i];
        uint64_t off = raw[i].offset;
        printable(pb, tv->name, raw[i].name_len);
        if (off % a) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' data offset %llu is not a multiple of the alignment %zu", L, pb, (unsigned long long)off, a);
            goto fail;
        }
        if (off > avail) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' data offset %llu (from the data section at %zu) is past the end of the file (size %zu)",
                         L, pb, (unsigned long long)off, g->data_start, g->size);
            goto fail;
        }
        if (tv->nbytes > avail - off) {
            unsigned long long b0 = (unsigned long long)g->data_start + off;
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%s' data [offset %llu..%llu] out of file bounds (size %zu)",
                         L, pb, b0, b0 + (unsigned long long)tv->nbytes, g->size);
            goto fail;
        }
        tv->data = g->base + g->data_start + off;
        offs[i] = off;
        order[i] = i;
    }
    sort_by_offset(order, nt, offs);
    for (size_t k = 1; k < nt; k++) {
        size_t p = order[k - 1], q = order[k];
        if (offs[p] + g->t[p].nbytes > offs[q]) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensors '%s' [data offset %llu..%llu] and '%s' [data offset %llu..] overlap",
                         L, printable(pb, g->t[p].name, strlen(g->t[p].name)), (unsigned long long)offs[p],
                         (unsigned long long)(offs[p] + g->t[p].nbytes), printable(pb2, g->t[q].name, strlen(g->t[q].name)),
                         (unsigned long long)offs[q]);
            goto fail;
        }
    }
    rc = MK_OK;
fail:
    free(raw);
    free(offs);
    free(order);
    return rc;
}

static int open_common(mk_gguf *g, const char *label, mk_gguf **out) {
    g->label = strdup(label ? label : "(memory)");
    if (!g->label) {
        mk_gguf_close(g);
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label ? label : "(memory)");
    }
    int rc = parse(g);
    if (rc) {
        mk_gguf_close(g);
        return rc;
    }
    *out = g;
    return MK_OK;
}

int mk_gguf_open_mem(const void *data, size_t size, const char *label, mk_gguf **out) {
    *out = NULL;
    mk_gguf *g = calloc(1, sizeof *g);
    if (!g) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label ? label : "(memory)");
    g->base = data;
    g->size = data ? size : 0;
    return open_common(g, label, out);
}

int mk_gguf_open(const char *path, mk_gguf **out) {
    *out = NULL;
    mk_gguf *g = calloc(1, sizeof *g);
    if (!g) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    int rc = mk_map_open(path, &g->map);
    if (rc) {
        free(g);
        return rc;
    }
    g->base = g->map.data;
    g->size = g->map.size;
    return open_common(g, path, out);
}

void mk_gguf_close(mk_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (size_t i = 0; i < g->kv_alloc; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->kv_hash);
    free(g->t);
    free(g->names);
    free(g->t_hash);
    mk_map_close(&g->map);
    free(g->label);
    free(g);
}

uint32_t mk_gguf_version(const mk_gguf *g) { return g->version; }
uint32_t mk_gguf_alignment(const mk_gguf *g) { return g->alignment; }
size_t mk_gguf_file_size(const mk_gguf *g) { return g->size; }
size_t mk_gguf_data_offset(const mk_gguf *g) { return g->data_start; }
const char *mk_gguf_label(const mk_gguf *g) { return g->label; }
size_t mk_gguf_n_kv(const mk_gguf *g) { return g->n_kv; }

long mk_gguf_find(const mk_gguf *g, const char *key) {
    return find_in(g->kv_hash, g->kv_hcap, key, strlen(key), kv_eq, g);
}

const char *mk_gguf_kv_key(const mk_gguf *g, size_t i, size_t *len) {
    if (i >= g->n_kv) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = g->kv[i].key_len;
    return g->kv[i].key;
}

mk_gguf_type mk_gguf_kv_type(const mk_gguf *g, size_t i) { return i < g->n_kv ? g->kv[i].type : (mk_gguf_type)-1; }
mk_gguf_type mk_gguf_kv_arr_type(const mk_gguf *g, size_t i) {
    return i < g->n_kv && g->kv[i].type == MK_GGUF_ARRAY ? g->kv[i].arr_type : (mk_gguf_type)0;
}
uint64_t mk_gguf_kv_arr_n(const mk_gguf *g, size_t i) {
    return i < g->n_kv && g->kv[i].type == MK_GGUF_ARRAY ? g->kv[i].arr_n : 0;
}

const void *mk_gguf_kv_raw(const mk_gguf *g, size_t i, size_t *len) {
    if (i >= g->n_kv) {
        if (len) *len = 0;
        return NULL;
    }
    const gg_kv *kv = &g->kv[i];
    /* Arrays' recorded value starts at the element type field. */
    const uint8_t *p = kv->type == MK_GGUF_ARRAY ? kv->val - 12 : kv->val;
    if (len) *len = kv->val_len;
    return p;
}

/* Decode one numeric element: kind 0 unsigned (u), 1 signed (s), 2 float
 * (f), 3 bool (u); -1 for strings/arrays. */
static int decode_num(mk_gguf_type t, const uint8_t *p, uint64_t *u, int64_t *s, double *f) {
    switch (t) {
    case MK_GGUF_UINT8: *u = p[0]; return 0;
    case MK_GGUF_UINT16: *u = ld16(p); return 0;
    case MK_GGUF_UINT32: *u = ld32(p); return 0;
    case MK_GGUF_UINT64: *u = ld64(p); return 0;
    case MK_GGUF_INT8: *s = (int8_t)p[0]; return 1;
    case MK_GGUF_INT16: *s = (int16_t)ld16(p); return 1;
    case MK_GGUF_INT32: *s = (int32_t)ld32(p); return 1;
    case MK_GGUF_INT64: *s = (int64_t)ld64(p); return 1;
    case MK_GGUF_FLOAT32: {
        uint32_t b = ld32(p);
        float x;
        memcpy(&x, &b, 4);
        *f = x;
        return 2;
    }
    case MK_GGUF_FLOAT64: {
        uint64_t b = ld64(p);
        double x;
        memcpy(&x, &b, 8);
        *f = x;
        return 2;
    }
    case MK_GGUF_BOOL: *u = p[0]; return 3;
    default: return -1;
    }
}

static int lookup(const mk_gguf *g, const char *key, const gg_kv **kv) {
    long i = mk_gguf_find(g, key);
    if (i < 0) return mk_fail(MK_ERR_NOTFOUND, "%s: metadata key '%s' not found", g->label, key);
    *kv = &g->kv[i];
    return MK_OK;
}

static int kv_name_fail(const mk_gguf *g, const gg_kv *kv, int code, const char *what) {
    char pb[80];
    return mk_fail(code, "%s: metadata key '%s' %s", g->label, printable(pb, kv->key, kv->key_len), what);
}

static int kv_u64(const mk_gguf *g, const gg_kv *kv, uint64_t *v) {
    uint64_t u = 0;
    int64_t s = 0;
    double f;
    int kind = decode_num(kv->type, kv->val, &u, &s, &f);
    if (kind == 0) { *v = u; return MK_OK; }
    if (kind == 1) {
        if (s < 0) return kv_name_fail(g, kv, MK_ERR_RANGE, "is negative, expected an unsigned value");
        *v = (uint64_t)s;
        return MK_OK;
    }
    return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not an integer");
}

static int kv_i64(const mk_gguf *g, const gg_kv *kv, int64_t *v) {
    uint64_t u = 0;
    int64_t s = 0;
    double f;
    int kind = decode_num(kv->type, kv->val, &u, &s, &f);
    if (kind == 1) { *v = s; return MK_OK; }
    if (kind == 0) {
        if (u > (uint64_t)INT64_MAX) return kv_name_fail(g, kv, MK_ERR_RANGE, "does not fit in int64");
        *v = (int64_t)u;
        return MK_OK;
    }
    return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not an integer");
}

int mk_gguf_kv_get_u64(const mk_gguf *g, size_t i, uint64_t *v) {
    if (i >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, i);
    return kv_u64(g, &g->kv[i], v);
}

int mk_gguf_kv_get_i64(const mk_gguf *g, size_t i, int64_t *v) {
    if (i >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, i);
    return kv_i64(g, &g->kv[i], v);
}

int mk_gguf_kv_get_f64(const mk_gguf *g, size_t i, double *v) {
    if (i >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, i);
    const gg_kv *kv = &g->kv[i];
    uint64_t u;
    int64_t s;
    if (decode_num(kv->type, kv->val, &u, &s, v) != 2) return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not a float");
    return MK_OK;
}

int mk_gguf_kv_get_bool(const mk_gguf *g, size_t i, int *v) {
    if (i >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, i);
    const gg_kv *kv = &g->kv[i];
    if (kv->type != MK_GGUF_BOOL) return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not a bool");
    *v = kv->val[0] != 0;
    return MK_OK;
}

int mk_gguf_kv_get_str(const mk_gguf *g, size_t i, const char **s, size_t *len) {
    if (i >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, i);
    const gg_kv *kv = &g->kv[i];
    if (kv->type != MK_GGUF_STRING) return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not a string");
    *s = (const char *)kv->val + 8;
    if (len) *len = (size_t)ld64(kv->val);
    return MK_OK;
}

int mk_gguf_get_u64(const mk_gguf *g, const char *key, uint64_t *v) {
    const gg_kv *kv = NULL;
    int rc = lookup(g, key, &kv);
    return rc ? rc : kv_u64(g, kv, v);
}

int mk_gguf_get_u32(const mk_gguf *g, const char *key, uint32_t *v) {
    uint64_t u;
    int rc = mk_gguf_get_u64(g, key, &u);
    if (rc) return rc;
    if (u > UINT32_MAX) return mk_fail(MK_ERR_RANGE, "%s: metadata key '%s' is %llu, too large for uint32", g->label, key, (unsigned long long)u);
    *v = (uint32_t)u;
    return MK_OK;
}

int mk_gguf_get_i64(const mk_gguf *g, const char *key, int64_t *v) {
    const gg_kv *kv = NULL;
    int rc = lookup(g, key, &kv);
    return rc ? rc : kv_i64(g, kv, v);
}

int mk_gguf_get_f32(const mk_gguf *g, const char *key, float *v) {
    long i = mk_gguf_find(g, key);
    if (i < 0) return mk_fail(MK_ERR_NOTFOUND, "%s: metadata key '%s' not found", g->label, key);
    double d;
    int rc = mk_gguf_kv_get_f64(g, (size_t)i, &d);
    if (rc) return rc;
    *v = (float)d;
    return MK_OK;
}

int mk_gguf_get_bool(const mk_gguf *g, const char *key, int *v) {
    long i = mk_gguf_find(g, key);
    if (i < 0) return mk_fail(MK_ERR_NOTFOUND, "%s: metadata key '%s' not found", g->label, key);
    return mk_gguf_kv_get_bool(g, (size_t)i, v);
}

int mk_gguf_get_str(const mk_gguf *g, const char *key, const char **s, size_t *len) {
    long i = mk_gguf_find(g, key);
    if (i < 0) return mk_fail(MK_ERR_NOTFOUND, "%s: metadata key '%s' not found", g->label, key);
    return mk_gguf_kv_get_str(g, (size_t)i, s, len);
}

static int arr_check(const mk_gguf *g, size_t k, uint64_t i, const gg_kv **kv) {
    if (k >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, k);
    *kv = &g->kv[k];
    if ((*kv)->type != MK_GGUF_ARRAY) return kv_name_fail(g, *kv, MK_ERR_FORMAT, "is not an array");
    if (i >= (*kv)->arr_n) {
        char pb[80];
        return mk_fail(MK_ERR_RANGE, "%s: metadata key '%s': index %llu out of range (array of %llu)", g->label,
                       printable(pb, (*kv)->key, (*kv)->key_len), (unsigned long long)i, (unsigned long long)(*kv)->arr_n);
    }
    return MK_OK;
}

int mk_gguf_arr_str(const mk_gguf *g, size_t k, uint64_t i, const char **s, size_t *len) {
    const gg_kv *kv = NULL;
    int rc = arr_check(g, k, i, &kv);
    if (rc) return rc;
    if (kv->arr_type != MK_GGUF_STRING) return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not an array of strings");
    const uint8_t *p = kv->val + kv->str_off[i];
    *s = (const char *)p + 8;
    if (len) *len = (size_t)ld64(p);
    return MK_OK;
}

int mk_gguf_arr_i64(const mk_gguf *g, size_t k, uint64_t i, int64_t *v) {
    const gg_kv *kv = NULL;
    int rc = arr_check(g, k, i, &kv);
    if (rc) return rc;
    uint64_t u = 0;
    int64_t s = 0;
    double f;
    int kind = kv->arr_type == MK_GGUF_STRING ? -1 : decode_num(kv->arr_type, kv->val + i * type_size(kv->arr_type), &u, &s, &f);
    if (kind == 1) { *v = s; return MK_OK; }
    if (kind == 0 || kind == 3) {
        if (u > (uint64_t)INT64_MAX) return kv_name_fail(g, kv, MK_ERR_RANGE, "has an element that does not fit in int64");
        *v = (int64_t)u;
        return MK_OK;
    }
    return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not an array of integers");
}

int mk_gguf_arr_f64(const mk_gguf *g, size_t k, uint64_t i, double *v) {
    const gg_kv *kv = NULL;
    int rc = arr_check(g, k, i, &kv);
    if (rc) return rc;
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    int kind = kv->arr_type == MK_GGUF_STRING ? -1 : decode_num(kv->arr_type, kv->val + i * type_size(kv->arr_type), &u, &s, &f);
    switch (kind) {
    case 0: case 3: *v = (double)u; return MK_OK;
    case 1: *v = (double)s; return MK_OK;
    case 2: *v = f; return MK_OK;
    default: return kv_name_fail(g, kv, MK_ERR_FORMAT, "is not an array of numbers");
    }
}

const void *mk_gguf_arr_data(const mk_gguf *g, size_t k) {
    if (k >= g->n_kv || g->kv[k].type != MK_GGUF_ARRAY || g->kv[k].arr_type == MK_GGUF_STRING) return NULL;
    return g->kv[k].val;
}

size_t mk_gguf_n_tensors(const mk_gguf *g) { return g->n_t; }

const mk_tensor_view *mk_gguf_tensor(const mk_gguf *g, size_t i) { return i < g->n_t ? &g->t[i] : NULL; }

const mk_tensor_view *mk_gguf_find_tensor(const mk_gguf *g, const char *name) {
    long i = find_in(g->t_hash, g->t_hcap, name, strlen(name), t_eq, g);
    return i < 0 ? NULL : &g->t[i];
}

uint64_t mk_gguf_tensor_offset(const mk_gguf *g, size_t i) {
    if (i >= g->n_t) return 0;
    return (uint64_t)((const uint8_t *)g->t[i].data - g->base - g->data_start);
}

/* ---- writing ---- */

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* value bytes exactly as stored in the file */
    size_t val_len;
} w_kv;

typedef struct {
    char *name;
    mk_dtype dtype;
    int n_dims;
    int64_t shape[MK_MAX_DIMS]; /* row-major, outermost first */
    uint8_t *data;
    size_t nbytes;
} w_tensor;

struct mk_gguf_writer {
    w_kv *kv;
    size_t n_kv, cap_kv;
    w_tensor *t;
    size_t n_t, cap_t;
};

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void wb_put(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > b->cap - b->n) {
        size_t c = b->cap ? b->cap : 64;
        while (c - b->n < n) {
            if (c > SIZE_MAX / 2) { b->oom = 1; return; }
            c *= 2;
        }
        uint8_t *np = realloc(b->p, c);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void wb_u32(wbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    wb_put(b, x, 4);
}

static void wb_u64(wbuf *b, uint64_t v) {
    wb_u32(b, (uint32_t)v);
    wb_u32(b, (uint32_t)(v >> 32));
}

static void wb_str(wbuf *b, const char *s, size_t n) {
    wb_u64(b, n);
    wb_put(b, s, n);
}

/* One element of a numeric type from host memory, stored little-endian. */
static void wb_num(wbuf *b, uint32_t t, const void *v) {
    size_t es = type_size(t);
    uint64_t u = 0;
    switch (es) {
    case 1: u = *(const uint8_t *)v; break;
    case 2: { uint16_t x; memcpy(&x, v, 2); u = x; break; }
    case 4: { uint32_t x; memcpy(&x, v, 4); u = x; break; }
    case 8: memcpy(&u, v, 8); break;
    }
    for (size_t i = 0; i < es; i++) {
        uint8_t c = (uint8_t)(u >> (8 * i));
        wb_put(b, &c, 1);
    }
}

mk_gguf_writer *mk_gguf_writer_new(void) { return calloc(1, sizeof(mk_gguf_writer)); }

void mk_gguf_writer_free(mk_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Takes ownership of the buffer in b (freed on failure). */
static int add_kv(mk_gguf_writer *w, const char *key, uint32_t type, wbuf *b) {
    int rc = MK_OK;
    char *k = NULL;
    if (!w) { rc = mk_fail(MK_ERR_ARG, "gguf writer: NULL writer"); goto fail; }
    if (!key || !key[0]) { rc = mk_fail(MK_ERR_ARG, "gguf writer: empty metadata key"); goto fail; }
    if (strlen(key) > GGUF_MAX_KEY) { rc = mk_fail(MK_ERR_ARG, "gguf writer: metadata key longer than %d bytes", GGUF_MAX_KEY); goto fail; }
    if (b->oom) { rc = mk_fail(MK_ERR_NOMEM, "gguf writer: out of memory for key '%s'", key); goto fail; }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) { rc = mk_fail(MK_ERR_ARG, "gguf writer: duplicate metadata key '%s'", key); goto fail; }
    if (w->n_kv == w->cap_kv) {
        size_t c = w->cap_kv ? 2 * w->cap_kv : 16;
        w_kv *nk = realloc(w->kv, c * sizeof *nk);
        if (!nk) { rc = mk_fail(MK_ERR_NOMEM, "gguf writer: out of memory"); goto fail; }
        w->kv = nk;
        w->cap_kv = c;
    }
    k = strdup(key);
    if (!k) { rc = mk_fail(MK_ERR_NOMEM, "gguf writer: out of memory"); goto fail; }
    w->kv[w->n_kv++] = (w_kv){k, type, b->p, b->n};
    return MK_OK;
fail:
    free(b->p);
    return rc;
}

int mk_gguf_w_scalar(mk_gguf_writer *w, const char *key, mk_gguf_type type, const void *v) {
    if (!v) return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': NULL value", key ? key : "");
    if (type_size(type) == 0)
        return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': mk_gguf_w_scalar takes numeric or bool types, not %s", key ? key : "", mk_gguf_type_name(type));
    if (type == MK_GGUF_BOOL && *(const uint8_t *)v > 1)
        return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': bool must be 0 or 1", key ? key : "");
    wbuf b = {0};
    wb_num(&b, type, v);
    return add_kv(w, key, type, &b);
}

int mk_gguf_w_u32(mk_gguf_writer *w, const char *key, uint32_t v) { return mk_gguf_w_scalar(w, key, MK_GGUF_UINT32, &v); }
int mk_gguf_w_i32(mk_gguf_writer *w, const char *key, int32_t v) { return mk_gguf_w_scalar(w, key, MK_GGUF_INT32, &v); }
int mk_gguf_w_u64(mk_gguf_writer *w, const char *key, uint64_t v) { return mk_gguf_w_scalar(w, key, MK_GGUF_UINT64, &v); }
int mk_gguf_w_f32(mk_gguf_writer *w, const char *key, float v) { return mk_gguf_w_scalar(w, key, MK_GGUF_FLOAT32, &v); }
int mk_gguf_w_bool(mk_gguf_writer *w, const char *key, int v) {
    uint8_t b = v ? 1 : 0;
    return mk_gguf_w_scalar(w, key, MK_GGUF_BOOL, &b);
}

int mk_gguf_w_strn(mk_gguf_writer *w, const char *key, const char *v, size_t len) {
    if (!v && len) return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
    wbuf b = {0};
    wb_str(&b, v, len);
    return add_kv(w, key, MK_GGUF_STRING, &b);
}

int mk_gguf_w_str(mk_gguf_writer *w, const char *key, const char *v) {
    if (!v) return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
    return mk_gguf_w_strn(w, key, v, strlen(v));
}

int mk_gguf_w_arr(mk_gguf_writer *w, const char *key, mk_gguf_type elem, const void *v, size_t n) {
    size_t es = type_size(elem);
    if (es == 0)
        return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': mk_gguf_w_arr takes numeric or bool elements, not %s", key ? key : "", mk_gguf_type_name(elem));
    const uint8_t *p = v;
    if (n && !v) return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': NULL array", key ? key : "");
    if (elem == MK_GGUF_BOOL)
        for (size_t i = 0; i < n; i++)
            if (p[i] > 1) return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': bool element %zu is not 0 or 1", key ? key : "", i);
    wbuf b = {0};
    wb_u32(&b, elem);
    wb_u64(&b, n);
    for (size_t i = 0; i < n; i++) wb_num(&b, elem, p + i * es);
    return add_kv(w, key, MK_GGUF_ARRAY, &b);
}

int mk_gguf_w_arr_strn(mk_gguf_writer *w, const char *key, const char *const *v, const size_t *lens, size_t n) {
    if (n && !v) return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': NULL array", key ? key : "");
    for (size_t i = 0; i < n; i++)
        if (!v[i] && (!lens || lens[i]))
            return mk_fail(MK_ERR_ARG, "gguf writer: key '%s': string %zu is NULL", key ? key : "", i);
    wbuf b = {0};
    wb_u32(&b, MK_GGUF_STRING);
    wb_u64(&b, n);
    for (size_t i = 0; i < n; i++) wb_str(&b, v[i], lens ? lens[i] : strlen(v[i]));
    return add_kv(w, key, MK_GGUF_ARRAY, &b);
}

int mk_gguf_w_arr_str(mk_gguf_writer *w, const char *key, const char *const *v, size_t n) {
    return mk_gguf_w_arr_strn(w, key, v, NULL, n);
}
int mk_gguf_w_arr_f32(mk_gguf_writer *w, const char *key, const float *v, size_t n) {
    return mk_gguf_w_arr(w, key, MK_GGUF_FLOAT32, v, n);
}
int mk_gguf_w_arr_i32(mk_gguf_writer *w, const char *key, const int32_t *v, size_t n) {
    return mk_gguf_w_arr(w, key, MK_GGUF_INT32, v, n);
}

int mk_gguf_w_copy_kv(mk_gguf_writer *w, const mk_gguf *g, size_t i) {
    if (i >= g->n_kv) return mk_fail(MK_ERR_RANGE, "%s: metadata index %zu out of range", g->label, i);
    const gg_kv *kv = &g->kv[i];
    char *key = malloc(kv->key_len + 1);
    if (!key) return mk_fail(MK_ERR_NOMEM, "gguf writer: out of memory");
    memcpy(key, kv->key, kv->key_len);
    key[kv->key_len] = 0;
    size_t len;
    const void *raw = mk_gguf_kv_raw(g, i, &len);
    wbuf b = {0};
    wb_put(&b, raw, len);
    int rc = strlen(key) != kv->key_len ? mk_fail(MK_ERR_ARG, "%s: metadata key %zu contains a NUL byte and cannot be copied", g->label, i)
                                        : add_kv(w, key, kv->type, &b);
    if (rc && strlen(key) != kv->key_len) free(b.p);
    free(key);
    return rc;
}

static int check_tensor_args(mk_gguf_writer *w, const char *name, mk_dtype dtype, int n_dims,
                             const int64_t *shape, uint64_t *n_out) {
    if (!w) return mk_fail(MK_ERR_ARG, "gguf writer: NULL writer");
    if (!name || !name[0]) return mk_fail(MK_ERR_ARG, "gguf writer: empty tensor name");
    if (!shape) return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s': NULL shape", name);
    if (strlen(name) >= GGML_MAX_NAME)
        return mk_fail(MK_ERR_ARG, "gguf writer: tensor name '%s' is longer than %d bytes (llama.cpp's limit)", name, GGML_MAX_NAME - 1);
    if ((unsigned)dtype >= MK_DTYPE_COUNT) return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (n_dims < 1 || n_dims > MK_MAX_DIMS)
        return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s' has %d dimensions (supported: 1..%d)", name, n_dims, MK_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 1 || (uint64_t)shape[d] > (uint64_t)INT64_MAX / n)
            return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s' has invalid shape (dimension %d is %lld)", name, d, (long long)shape[d]);
        n *= (uint64_t)shape[d];
    }
    if (shape[n_dims - 1] % mk_dtype_block(dtype))
        return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s' of type %s needs its innermost dimension (%lld) to be a multiple of %d",
                       name, mk_dtype_name(dtype), (long long)shape[n_dims - 1], mk_dtype_block(dtype));
    if (mk_dtype_nbytes(dtype, n) == 0) return mk_fail(MK_ERR_NOMEM, "gguf writer: tensor '%s' is too large", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return mk_fail(MK_ERR_ARG, "gguf writer: duplicate tensor name '%s'", name);
    *n_out = n;
    return MK_OK;
}

/* Adds a tensor from f32 data (quantize) or from bytes already in dtype's layout. */
static int add_tensor(mk_gguf_writer *w, const char *name, mk_dtype dtype, int n_dims, const int64_t *shape,
                      const void *src, int quantize, size_t src_bytes) {
    uint64_t n = 0;
    int rc = check_tensor_args(w, name, dtype, n_dims, shape, &n);
    if (rc) return rc;
    if (!src) return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s': NULL data", name);
    size_t nb = mk_dtype_nbytes(dtype, n);
    if (!quantize && src_bytes != nb)
        return mk_fail(MK_ERR_ARG, "gguf writer: tensor '%s': %zu bytes given, %s of this shape needs %zu", name, src_bytes, mk_dtype_name(dtype), nb);
    if (w->n_t == w->cap_t) {
        size_t c = w->cap_t ? 2 * w->cap_t : 16;
        w_tensor *nt = realloc(w->t, c * sizeof *nt);
        if (!nt) return mk_fail(MK_ERR_NOMEM, "gguf writer: out of memory");
        w->t = nt;
        w->cap_t = c;
    }
    w_tensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nb);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return mk_fail(MK_ERR_NOMEM, "gguf writer: out of memory for tensor '%s' (%zu bytes)", name, nb);
    }
    if (quantize) mk_quantize(dtype, src, t->data, (size_t)n);
    else memcpy(t->data, src, nb);
    t->dtype = dtype;
    t->n_dims = n_dims;
    memcpy(t->shape, shape, (size_t)n_dims * sizeof *shape);
    t->nbytes = nb;
    w->n_t++;
    return MK_OK;
}

int mk_gguf_w_tensor(mk_gguf_writer *w, const char *name, mk_dtype dtype, const float *data, int n_dims, const int64_t *shape) {
    return add_tensor(w, name, dtype, n_dims, shape, data, 1, 0);
}

int mk_gguf_w_tensor_raw(mk_gguf_writer *w, const char *name, mk_dtype dtype, const void *data, size_t nbytes,
                         int n_dims, const int64_t *shape) {
    return add_tensor(w, name, dtype, n_dims, shape, data, 0, nbytes);
}

static int write_zeros(mk_afile *af, size_t n) {
    static const uint8_t zeros[256];
    for (size_t k; n; n -= k) {
        k = n < sizeof zeros ? n : sizeof zeros;
        int rc = mk_afile_write(af, zeros, k);
        if (rc) return rc;
    }
    return MK_OK;
}

int mk_gguf_w_write(mk_gguf_writer *w, const char *path) {
    static const uint8_t zeros[1];
    wbuf b = {0};
    mk_afile af;
    int rc, af_open = 0;
    uint32_t align = GGUF_DEFAULT_ALIGNMENT;
    if (!w || !path) return mk_fail(MK_ERR_ARG, "gguf writer: NULL writer or path");
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        uint32_t a = w->kv[i].type == MK_GGUF_UINT32 ? ld32(w->kv[i].val) : 0;
        if (a == 0 || (a & (a - 1)) || a > (1u << 20)) {
            rc = mk_fail(MK_ERR_ARG, "%s: general.alignment must be a uint32 power of two up to 2^20", path);
            goto fail;
        }
        align = a;
    }
    /* Header, metadata and tensor infos are built in memory (small). */
    b.p = NULL;
    wb_put(&b, "GGUF", 4);
    wb_u32(&b, 3);
    wb_u64(&b, w->n_t);
    wb_u64(&b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        wb_str(&b, w->kv[i].key, strlen(w->kv[i].key));
        wb_u32(&b, w->kv[i].type);
        wb_put(&b, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const w_tensor *t = &w->t[i];
        wb_str(&b, t->name, strlen(t->name));
        wb_u32(&b, (uint32_t)t->n_dims);
        for (int d = t->n_dims - 1; d >= 0; d--) wb_u64(&b, (uint64_t)t->shape[d]); /* GGUF: innermost first */
        wb_u32(&b, dtype_to_ggml(t->dtype));
        wb_u64(&b, off);
        off += (t->nbytes + align - 1) / align * align;
    }
    while (b.n % align && !b.oom) wb_put(&b, zeros, 1);
    if (b.oom) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory building the GGUF header", path); goto fail; }
    if ((rc = mk_afile_open(&af, path))) goto fail;
    af_open = 1;
    if ((rc = mk_afile_write(&af, b.p, b.n))) goto fail;
    for (size_t i = 0; i < w->n_t; i++) {
        const w_tensor *t = &w->t[i];
        if ((rc = mk_afile_write(&af, t->data, t->nbytes))) goto fail;
        if ((rc = write_zeros(&af, (align - t->nbytes % align) % align))) goto fail;
    }
    af_open = 0;
    if ((rc = mk_afile_commit(&af))) goto fail;
    free(b.p);
    return MK_OK;
fail:
    if (af_open) mk_afile_abort(&af);
    free(b.p);
    return rc;
}
