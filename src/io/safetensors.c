/* safetensors.c - Hugging Face safetensors reader (mmap + strict header
 * validation) and atomic writer.
 *
 * Layout (facts from the format's documentation): u64 LE header length N;
 * N bytes of UTF-8 JSON starting with '{' (may be padded at the end with
 * spaces); then the data section, which the tensors' [begin, end) offsets
 * must cover exactly: no overlaps, no holes, nothing after the last
 * tensor (the reference implementation refuses holes too, and so do we:
 * unindexed bytes are where a polyglot file would hide its payload).
 */
#include "safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "json.h"
#include "mapfile.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader maps it in place"
#endif

typedef struct {
    char *name;
    char dtype[12];
    int n_dims;
    int64_t shape[MK_MAX_DIMS];
} skipped;

struct mk_st {
    mk_mapfile map;      /* owned mapping (mk_st_open); empty for _open_mem */
    mk_tensor_view *t;   /* (n) in header order; names are heap copies */
    size_t n;
    skipped *sk;         /* (n_sk) MK_ST_SKIP_UNSUPPORTED tensors */
    size_t n_sk;
    char **mkey, **mval; /* (n_meta) __metadata__ pairs, header order */
    size_t n_meta;
    size_t *slot;        /* (cap) hash of names: tensor index + 1, 0 = empty */
    size_t cap;
};

/* ---------------------------------------------------------------- names */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Build the name table; returns the index of a duplicate name + 1, or 0. */
static size_t build_index(mk_st *st) {
    for (size_t i = 0; i < st->n; i++) {
        size_t h = (size_t)hash_str(st->t[i].name) & (st->cap - 1);
        while (st->slot[h]) {
            if (!strcmp(st->t[st->slot[h] - 1].name, st->t[i].name)) return i + 1;
            h = (h + 1) & (st->cap - 1);
        }
        st->slot[h] = i + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- dtypes */

static int dtype_of(const char *s, mk_dtype *t, size_t *esz) {
    if (!strcmp(s, "F32")) { *t = MK_F32; *esz = 4; return 1; }
    if (!strcmp(s, "F16")) { *t = MK_F16; *esz = 2; return 1; }
    if (!strcmp(s, "BF16")) { *t = MK_BF16; *esz = 2; return 1; }
    return 0;
}

/* Types the format defines that medrek does not compute with, with their
 * element size in bytes (0: packed sub-byte types). Returns -1 if s is
 * not a safetensors dtype at all. */
static int known_dtype(const char *s) {
    static const struct {
        const char *name;
        int size;
    } known[] = {{"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
                 {"F8_E8M0", 1}, {"U16", 2}, {"I16", 2}, {"U32", 4}, {"I32", 4},
                 {"U64", 8}, {"I64", 8}, {"F64", 8}, {"C64", 8},
                 {"F6_E2M3", 0}, {"F6_E3M2", 0}, {"F4", 0}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(s, known[i].name)) return known[i].size;
    return -1;
}

static const char *st_dtype_name(mk_dtype t) {
    switch (t) {
    case MK_F32: return "F32";
    case MK_F16: return "F16";
    case MK_BF16: return "BF16";
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- reader */

/* Lexical checks cJSON does not make, on a header that already parsed:
 * every number must be a plain non-negative integer (the only numbers the
 * format has are shapes and offsets; cJSON would silently accept 2.0 or
 * 1e3), strings hold no raw control characters and no \u0000 (which would
 * cut a C string short and let two different names collide). */
static int scan_header(const char *h, size_t n, const char *label) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)h[i];
        if (c == '"') {
            for (i++; i < n && h[i] != '"'; i++) {
                if ((unsigned char)h[i] < 0x20)
                    return mk_fail(MK_ERR_FORMAT, "%s: header string holds a raw control character at byte %zu", label, i);
                if (h[i] == '\\') {
                    if (i + 5 < n && h[i + 1] == 'u' && !memcmp(h + i + 2, "0000", 4))
                        return mk_fail(MK_ERR_FORMAT, "%s: header string holds \\u0000 at byte %zu", label, i);
                    i++;
                }
            }
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            int plain = 1;
            while (j < n && h[j] && strchr("0123456789+-.eE", h[j])) {
                if (h[j] < '0' || h[j] > '9') plain = 0;
                j++;
            }
            if (!plain)
                return mk_fail(MK_ERR_FORMAT, "%s: header number '%.*s' at byte %zu is not a non-negative integer",
                               label, (int)(j - i > 40 ? 40 : j - i), h + i, i);
            i = j;
        } else {
            i++;
        }
    }
    return MK_OK;
}

typedef struct {
    uint64_t b, e;
    size_t i;
} range;

static int cmp_range(const void *pa, const void *pb) {
    const range *a = pa, *b = pb;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    if (a->e != b->e) return a->e < b->e ? -1 : 1;
    return 0;
}

static int parse_meta(mk_st *st, const cJSON *m, const char *label) {
    if (!cJSON_IsObject(m))
        return mk_fail(MK_ERR_FORMAT, "%s: __metadata__ must be an object of strings", label);
    int rc = mk_json_check_unique(m, label, "__metadata__");
    if (rc) return rc;
    size_t n = 0;
    for (const cJSON *c = m->child; c; c = c->next) n++;
    st->mkey = calloc(n ? n : 1, sizeof *st->mkey);
    st->mval = calloc(n ? n : 1, sizeof *st->mval);
    if (!st->mkey || !st->mval) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return mk_fail(MK_ERR_FORMAT, "%s: __metadata__ value of \"%.100s\" is not a string", label, c->string);
        st->mkey[st->n_meta] = strdup(c->string);
        st->mval[st->n_meta] = strdup(c->valuestring);
        st->n_meta++; /* counted first so close() frees a half-made pair */
        if (!st->mkey[st->n_meta - 1] || !st->mval[st->n_meta - 1])
            return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
    }
    return MK_OK;
}

/* One tensor entry -> st->t[i] (data pointer set later) and its range.
 * *skip is set for a tensor of an unsupported dtype kept under
 * MK_ST_SKIP_UNSUPPORTED (its dtype string goes to *skip_dtype). */
static int parse_entry(mk_st *st, size_t i, const cJSON *e, const char *label,
                       uint64_t dsize, int flags, range *r, int *skip, const char **skip_dtype) {
    const char *name = e->string;
    if (!*name) return mk_fail(MK_ERR_FORMAT, "%s: a tensor has an empty name", label);
    if (!cJSON_IsObject(e))
        return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': entry must be an object", label, name);
    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **dst = !strcmp(c->string, "dtype")          ? &jd
                            : !strcmp(c->string, "shape")        ? &js
                            : !strcmp(c->string, "data_offsets") ? &jo
                                                                 : NULL;
        if (!dst)
            return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': unknown field \"%.40s\"", label, name, c->string);
        if (*dst)
            return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': field \"%s\" appears twice", label, name, c->string);
        *dst = c;
    }
    if (!jd || !js || !jo)
        return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': missing \"%s\"", label, name,
                       !jd ? "dtype" : !js ? "shape" : "data_offsets");

    mk_tensor_view *t = &st->t[i];
    size_t esz = 0;
    if (!cJSON_IsString(jd) || !jd->valuestring)
        return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': dtype must be a string", label, name);
    *skip = 0;
    if (!dtype_of(jd->valuestring, &t->dtype, &esz)) {
        int ksz = known_dtype(jd->valuestring);
        if (ksz < 0)
            return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': unknown dtype \"%.20s\"", label, name, jd->valuestring);
        if (!(flags & MK_ST_SKIP_UNSUPPORTED) || ksz == 0)
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: tensor '%.100s': dtype %s is not supported (medrek reads F32, F16 and BF16; convert the file)",
                           label, name, jd->valuestring);
        *skip = 1;
        *skip_dtype = jd->valuestring;
        esz = (size_t)ksz;
    }

    if (!cJSON_IsArray(js))
        return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': shape must be an array", label, name);
    int nd = 0;
    uint64_t n = 1;
    int zero = 0;
    for (const cJSON *c = js->child; c; c = c->next, nd++) {
        char what[160];
        snprintf(what, sizeof what, "tensor '%.100s': shape[%d]", name, nd);
        int64_t d;
        int rc = mk_json_int_value(c, label, what, &d);
        if (rc) return rc;
        if (d < 0) return mk_fail(MK_ERR_FORMAT, "%s: %s is negative", label, what);
        if (nd >= MK_MAX_DIMS)
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: tensor '%.100s': more than %d dimensions", label, name, MK_MAX_DIMS);
        t->shape[nd] = d;
        if (d == 0) { zero = 1; continue; }
        /* Overflow is refused even when another dim is 0: such shapes
         * would overflow any size product computed from them later. */
        if (__builtin_mul_overflow(n, (uint64_t)d, &n) || n > (uint64_t)INT64_MAX)
            return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': element count overflows", label, name);
    }
    t->n_dims = nd;
    t->n_elems = zero ? 0 : n;

    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': data_offsets must be [begin, end]", label, name);
    char what[160];
    int64_t b, en;
    snprintf(what, sizeof what, "tensor '%.100s': data_offsets[0]", name);
    int rc = mk_json_int_value(jo->child, label, what, &b);
    snprintf(what, sizeof what, "tensor '%.100s': data_offsets[1]", name);
    if (!rc) rc = mk_json_int_value(jo->child->next, label, what, &en);
    if (rc) return rc;
    snprintf(what, sizeof what, "tensor '%.100s': data_offsets", name);
    if (b < 0 || en < 0) return mk_fail(MK_ERR_FORMAT, "%s: %s are negative", label, what);
    if (b > en)
        return mk_fail(MK_ERR_FORMAT, "%s: %s [%" PRId64 ", %" PRId64 "] are reversed", label, what, b, en);
    if ((uint64_t)en > dsize)
        return mk_fail(MK_ERR_FORMAT, "%s: %s [%" PRId64 ", %" PRId64 "] run past the %" PRIu64 "-byte data section",
                       label, what, b, en, dsize);
    /* Compare by division first: n_elems * esz may not fit in 64 bits. */
    uint64_t want = t->n_elems <= dsize / esz ? t->n_elems * esz : 0;
    if (t->n_elems > dsize / esz || (uint64_t)(en - b) != want)
        return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s': data_offsets span %" PRId64 " bytes but %s x %" PRIu64 " elements need %s",
                       label, name, en - b, jd->valuestring, t->n_elems,
                       t->n_elems > dsize / esz ? "more than the file holds" : "a different size");
    t->nbytes = (size_t)want;
    r->b = (uint64_t)b;
    r->e = (uint64_t)en;
    r->i = i;
    return MK_OK;
}

static int st_parse(mk_st *st, const uint8_t *buf, size_t size, const char *label, int flags) {
    cJSON *root = NULL;
    range *rg = NULL;
    unsigned char *skip = NULL;
    int rc;
    if (size < 8)
        return mk_fail(MK_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header", label, size);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | buf[k];
    if (hlen > MK_ST_MAX_HEADER)
        return mk_fail(MK_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %u-byte limit (not a safetensors file?)",
                       label, hlen, MK_ST_MAX_HEADER);
    if (hlen > size - 8)
        return mk_fail(MK_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the %zu-byte file (truncated?)",
                       label, hlen, size);
    if (hlen == 0) return mk_fail(MK_ERR_FORMAT, "%s: header is empty", label);
    if (buf[8] != '{')
        return mk_fail(MK_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file?)", label);
    const char *h = (const char *)buf + 8;
    rc = mk_json_parse(h, (size_t)hlen, label, &root);
    if (rc) goto fail;
    if (!cJSON_IsObject(root)) { rc = mk_fail(MK_ERR_FORMAT, "%s: header is not a JSON object", label); goto fail; }
    if ((rc = scan_header(h, (size_t)hlen, label))) goto fail;
    if ((rc = mk_json_check_unique(root, label, "header"))) goto fail;

    const uint8_t *dbase = buf + 8 + hlen;
    uint64_t dsize = size - 8 - hlen;
    size_t n = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__")) n++;
    st->t = calloc(n ? n : 1, sizeof *st->t);
    rg = calloc(n ? n : 1, sizeof *rg);
    skip = calloc(n ? n : 1, 1);
    st->sk = calloc(n ? n : 1, sizeof *st->sk);
    st->cap = 16;
    while (st->cap < 2 * n) st->cap *= 2;
    st->slot = calloc(st->cap, sizeof *st->slot);
    if (!st->t || !rg || !skip || !st->sk || !st->slot) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory (%zu tensors)", label, n); goto fail; }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) {
            if ((rc = parse_meta(st, c, label))) goto fail;
            continue;
        }
        size_t i = st->n;
        if (!(st->t[i].name = strdup(c->string))) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", label); goto fail; }
        st->n++;
        int sk = 0;
        const char *skd = NULL;
        if ((rc = parse_entry(st, i, c, label, dsize, flags, &rg[i], &sk, &skd))) goto fail;
        st->t[i].data = dbase + rg[i].b;
        if (sk) {
            skip[i] = 1;
            snprintf(st->sk[i].dtype, sizeof st->sk[i].dtype, "%s", skd);
        }
    }

    /* The ranges must tile the data section exactly. */
    qsort(rg, n, sizeof *rg, cmp_range);
    uint64_t at = 0;
    for (size_t k = 0; k < n; k++) {
        if (rg[k].b < at) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s' [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%.100s'",
                         label, st->t[rg[k].i].name, rg[k].b, rg[k].e, st->t[rg[k - 1].i].name);
            goto fail;
        }
        if (rg[k].b > at) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: %" PRIu64 " unindexed bytes at data offset %" PRIu64 " before tensor '%.100s' (the format allows no holes)",
                         label, rg[k].b - at, at, st->t[rg[k].i].name);
            goto fail;
        }
        at = rg[k].e;
    }
    if (at != dsize) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: %" PRIu64 " bytes after the last tensor are not indexed by the header (the format allows no holes)",
                     label, dsize - at);
        goto fail;
    }
    /* Move skipped tensors out of the list (st->sk[i] was filled in
     * place; both compactions keep header order). */
    size_t kept = 0, nsk = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (skip[i]) {
            skipped s = st->sk[i];
            s.name = (char *)st->t[i].name;
            s.n_dims = st->t[i].n_dims;
            memcpy(s.shape, st->t[i].shape, sizeof s.shape);
            st->sk[nsk++] = s;
        } else {
            st->t[kept++] = st->t[i];
        }
    }
    st->n = kept;
    st->n_sk = nsk;
    size_t dup = build_index(st);
    if (dup) { rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s' appears twice", label, st->t[dup - 1].name); goto fail; }
    free(skip);
    free(rg);
    cJSON_Delete(root);
    return MK_OK;
fail:
    free(skip);
    free(rg);
    cJSON_Delete(root);
    return rc;
}

void mk_st_close(mk_st *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free((char *)st->t[i].name);
    for (size_t i = 0; i < st->n_sk; i++) free(st->sk[i].name);
    free(st->sk);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->mkey[i]);
        free(st->mval[i]);
    }
    free(st->t);
    free(st->mkey);
    free(st->mval);
    free(st->slot);
    mk_map_close(&st->map);
    free(st);
}

int mk_st_open_mem(const void *data, size_t size, const char *label, mk_st **out) {
    return mk_st_open_mem_flags(data, size, label, 0, out);
}

int mk_st_open(const char *path, mk_st **out) { return mk_st_open_flags(path, 0, out); }

int mk_st_open_mem_flags(const void *data, size_t size, const char *label, int flags,
                         mk_st **out) {
    *out = NULL;
    if (!label) label = "<memory>";
    if (!data && size) return mk_fail(MK_ERR_ARG, "%s: no data", label);
    mk_st *st = calloc(1, sizeof *st);
    if (!st) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
    int rc = st_parse(st, data, size, label, flags);
    if (rc) {
        mk_st_close(st);
        return rc;
    }
    *out = st;
    return MK_OK;
}

int mk_st_open_flags(const char *path, int flags, mk_st **out) {
    *out = NULL;
    mk_st *st = calloc(1, sizeof *st);
    if (!st) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    int rc = mk_map_open(path, &st->map);
    if (!rc) rc = st_parse(st, st->map.data, st->map.size, path, flags);
    if (rc) {
        mk_st_close(st);
        return rc;
    }
    *out = st;
    return MK_OK;
}

size_t mk_st_n_tensors(const mk_st *st) { return st->n; }

const mk_tensor_view *mk_st_tensor(const mk_st *st, size_t i) {
    return i < st->n ? &st->t[i] : NULL;
}

const mk_tensor_view *mk_st_find(const mk_st *st, const char *name) {
    if (!name) return NULL;
    size_t h = (size_t)hash_str(name) & (st->cap - 1);
    while (st->slot[h]) {
        const mk_tensor_view *t = &st->t[st->slot[h] - 1];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (st->cap - 1);
    }
    return NULL;
}

size_t mk_st_n_skipped(const mk_st *st) { return st->n_sk; }

const char *mk_st_skipped(const mk_st *st, size_t i, const char **dtype, int *n_dims,
                          const int64_t **shape) {
    if (i >= st->n_sk) return NULL;
    if (dtype) *dtype = st->sk[i].dtype;
    if (n_dims) *n_dims = st->sk[i].n_dims;
    if (shape) *shape = st->sk[i].shape;
    return st->sk[i].name;
}

size_t mk_st_n_meta(const mk_st *st) { return st->n_meta; }

void mk_st_meta_at(const mk_st *st, size_t i, const char **key, const char **val) {
    if (key) *key = i < st->n_meta ? st->mkey[i] : NULL;
    if (val) *val = i < st->n_meta ? st->mval[i] : NULL;
}

const char *mk_st_meta(const mk_st *st, const char *key) {
    for (size_t i = 0; key && i < st->n_meta; i++)
        if (!strcmp(st->mkey[i], key)) return st->mval[i];
    return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *name;
    mk_dtype dtype;
    int n_dims;
    int64_t shape[MK_MAX_DIMS];
    void *data; /* (nbytes) converted at mk_st_w_tensor */
    size_t nbytes;
} wtensor;

struct mk_st_writer {
    wtensor *t;
    size_t n, cap;
    char **mkey, **mval;
    size_t n_meta, cap_meta;
};

mk_st_writer *mk_st_writer_new(void) { return calloc(1, sizeof(mk_st_writer)); }

void mk_st_writer_free(mk_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

int mk_st_w_meta(mk_st_writer *w, const char *key, const char *val) {
    if (!w || !key || !val) return mk_fail(MK_ERR_ARG, "safetensors writer: NULL metadata key or value");
    if (!mk_utf8_valid(key, strlen(key)) || !mk_utf8_valid(val, strlen(val)))
        return mk_fail(MK_ERR_ARG, "safetensors writer: metadata \"%.100s\" is not valid UTF-8", key);
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->mkey[i], key))
            return mk_fail(MK_ERR_ARG, "safetensors writer: metadata key \"%.100s\" given twice", key);
    if (w->n_meta == w->cap_meta) {
        size_t nc = w->cap_meta ? 2 * w->cap_meta : 8;
        char **nk = realloc(w->mkey, nc * sizeof *nk);
        if (!nk) return mk_fail(MK_ERR_NOMEM, "safetensors writer: out of memory");
        w->mkey = nk;
        char **nv = realloc(w->mval, nc * sizeof *nv);
        if (!nv) return mk_fail(MK_ERR_NOMEM, "safetensors writer: out of memory");
        w->mval = nv;
        w->cap_meta = nc;
    }
    char *k = strdup(key), *v = strdup(val);
    if (!k || !v) {
        free(k);
        free(v);
        return mk_fail(MK_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->mkey[w->n_meta] = k;
    w->mval[w->n_meta] = v;
    w->n_meta++;
    return MK_OK;
}

int mk_st_w_tensor(mk_st_writer *w, const char *name, mk_dtype dtype,
                   const float *data, int n_dims, const int64_t *shape) {
    if (!w || !name || !*name) return mk_fail(MK_ERR_ARG, "safetensors writer: tensor needs a non-empty name");
    if (!strcmp(name, "__metadata__") || !mk_utf8_valid(name, strlen(name)))
        return mk_fail(MK_ERR_ARG, "safetensors writer: invalid tensor name \"%.100s\"", name);
    const char *dn = st_dtype_name(dtype);
    if (!dn) return mk_fail(MK_ERR_UNSUPPORTED, "safetensors writer: tensor '%.100s': dtype must be F32, F16 or BF16", name);
    if (n_dims < 0 || n_dims > MK_MAX_DIMS || (n_dims && !shape))
        return mk_fail(MK_ERR_ARG, "safetensors writer: tensor '%.100s': %d dims (0..%d allowed)", name, n_dims, MK_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[d], &n) || n > ((uint64_t)1 << 53))
            return mk_fail(MK_ERR_ARG, "safetensors writer: tensor '%.100s': bad shape", name);
    }
    if (n && !data) return mk_fail(MK_ERR_ARG, "safetensors writer: tensor '%.100s': no data", name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return mk_fail(MK_ERR_ARG, "safetensors writer: tensor '%.100s' added twice", name);
    size_t esz = dtype == MK_F32 ? 4 : 2;
    if (n > SIZE_MAX / esz) return mk_fail(MK_ERR_NOMEM, "safetensors writer: tensor '%.100s' too large", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 16;
        wtensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) return mk_fail(MK_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->nbytes = (size_t)n * esz;
    t->name = strdup(name);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return mk_fail(MK_ERR_NOMEM, "safetensors writer: out of memory for tensor '%.100s'", name);
    }
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    if (n) {
        if (dtype == MK_F32) memcpy(t->data, data, t->nbytes);
        else mk_quantize(dtype, data, t->data, (size_t)n);
    }
    w->n++;
    return MK_OK;
}

/* A growable string for the header. */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + len + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void sb_cat(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_cat(b, tmp);
}

/* JSON string: quotes, backslashes and control characters escaped; the
 * rest is UTF-8 already checked at the call that stored it. */
static void sb_jstr(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_cat(b, e);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

int mk_st_w_write(mk_st_writer *w, const char *path) {
    if (!w || !path) return mk_fail(MK_ERR_ARG, "safetensors writer: no writer or path");
    sbuf h = {0};
    sb_cat(&h, "{");
    if (w->n_meta) {
        sb_cat(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) sb_cat(&h, ",");
            sb_jstr(&h, w->mkey[i]);
            sb_cat(&h, ":");
            sb_jstr(&h, w->mval[i]);
        }
        sb_cat(&h, "}");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->n_meta) sb_cat(&h, ",");
        sb_jstr(&h, t->name);
        sb_cat(&h, ":{\"dtype\":\"");
        sb_cat(&h, st_dtype_name(t->dtype));
        sb_cat(&h, "\",\"shape\":[");
        for (int d = 0; d < t->n_dims; d++) {
            if (d) sb_cat(&h, ",");
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_cat(&h, "],\"data_offsets\":[");
        sb_u64(&h, off);
        sb_cat(&h, ",");
        off += t->nbytes;
        sb_u64(&h, off);
        sb_cat(&h, "]}");
    }
    sb_cat(&h, "}");
    /* Pad with spaces so the data section starts 8-byte aligned. */
    while (!h.oom && h.n % 8) sb_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    if (h.n > MK_ST_MAX_HEADER) {
        free(h.p);
        return mk_fail(MK_ERR_RANGE, "%s: header of %zu bytes exceeds the %u-byte limit", path, h.n, MK_ST_MAX_HEADER);
    }
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)h.n >> (8 * k));

    mk_afile a;
    int rc = mk_afile_open(&a, path);
    if (rc) {
        free(h.p);
        return rc;
    }
    rc = mk_afile_write(&a, len8, 8);
    if (!rc) rc = mk_afile_write(&a, h.p, h.n);
    for (size_t i = 0; !rc && i < w->n; i++) rc = mk_afile_write(&a, w->t[i].data, w->t[i].nbytes);
    free(h.p);
    if (rc) {
        mk_afile_abort(&a);
        return rc;
    }
    return mk_afile_commit(&a);
}
