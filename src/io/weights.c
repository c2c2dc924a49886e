/* weights.c - one name -> tensor lookup over a GGUF file, a .safetensors
 * file or a Hugging Face model directory (see weights.h).
 */
#include "weights.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/error.h"
#include "gguf.h"
#include "json.h"
#include "mapfile.h"
#include "safetensors.h"

#define MAX_CONFIG_BYTES ((size_t)16 << 20)
#define MAX_INDEX_BYTES ((size_t)64 << 20)

struct mk_weights {
    mk_wfmt fmt;
    char *path;    /* as given */
    char *dir;     /* directory holding the model files */
    char *config;  /* config.json text or NULL */
    mk_gguf *gguf; /* MK_WFMT_GGUF */
    mk_st **st;    /* (n_st) safetensors files */
    char **st_path; /* (n_st) */
    size_t n_st;
    const mk_tensor_view **t; /* (n) every tensor, file by file */
    size_t n;
    size_t *slot; /* (cap) hash: index into t + 1, 0 = empty */
    size_t cap;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static char *dirname_of(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    if (s == path) return strdup("/");
    size_t n = (size_t)(s - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Index every tensor of every opened file; refuses a name seen twice. */
static int build_index(mk_weights *w) {
    size_t n = 0;
    if (w->gguf) n = mk_gguf_n_tensors(w->gguf);
    for (size_t f = 0; f < w->n_st; f++) n += mk_st_n_tensors(w->st[f]);
    w->t = calloc(n ? n : 1, sizeof *w->t);
    w->cap = 16;
    while (w->cap < 2 * n) w->cap *= 2;
    w->slot = calloc(w->cap, sizeof *w->slot);
    if (!w->t || !w->slot) return mk_fail(MK_ERR_NOMEM, "%s: out of memory (%zu tensors)", w->path, n);
    for (size_t f = 0; f < (w->gguf ? 1 : w->n_st); f++) {
        size_t nf = w->gguf ? mk_gguf_n_tensors(w->gguf) : mk_st_n_tensors(w->st[f]);
        for (size_t i = 0; i < nf; i++) {
            const mk_tensor_view *v = w->gguf ? mk_gguf_tensor(w->gguf, i) : mk_st_tensor(w->st[f], i);
            size_t h = (size_t)hash_str(v->name) & (w->cap - 1);
            while (w->slot[h]) {
                if (!strcmp(w->t[w->slot[h] - 1]->name, v->name))
                    return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s' appears twice%s%s", w->path, v->name,
                                   w->n_st > 1 ? "; second copy in " : "", w->n_st > 1 ? w->st_path[f] : "");
                h = (h + 1) & (w->cap - 1);
            }
            w->t[w->n] = v;
            w->slot[h] = ++w->n;
        }
    }
    /* Skipped tensors count as names too (few: a linear scan). */
    for (size_t f = 0; f < w->n_st; f++) {
        for (size_t i = 0; i < mk_st_n_skipped(w->st[f]); i++) {
            const char *name = mk_st_skipped(w->st[f], i, NULL, NULL, NULL);
            int dup = mk_weights_find(w, name) != NULL;
            for (size_t g = 0; g <= f && !dup; g++)
                for (size_t k = 0; k < (g < f ? mk_st_n_skipped(w->st[g]) : i) && !dup; k++)
                    dup = !strcmp(mk_st_skipped(w->st[g], k, NULL, NULL, NULL), name);
            if (dup)
                return mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s' appears twice; second copy in %s", w->path, name,
                               w->st_path[f]);
        }
    }
    return MK_OK;
}

/* Read config.json; it must be a JSON object. */
static int read_config(mk_weights *w, const char *cfg_path) {
    size_t len;
    int rc = mk_read_file(cfg_path, MAX_CONFIG_BYTES, &w->config, &len);
    if (rc) return rc;
    cJSON *j = NULL;
    rc = mk_json_parse(w->config, len, cfg_path, &j);
    if (!rc && !cJSON_IsObject(j)) rc = mk_fail(MK_ERR_FORMAT, "%s: not a JSON object", cfg_path);
    cJSON_Delete(j);
    return rc;
}

static int add_st(mk_weights *w, const char *file_path) {
    mk_st **ns = realloc(w->st, (w->n_st + 1) * sizeof *ns);
    if (!ns) return mk_fail(MK_ERR_NOMEM, "out of memory");
    w->st = ns;
    char **np = realloc(w->st_path, (w->n_st + 1) * sizeof *np);
    if (!np) return mk_fail(MK_ERR_NOMEM, "out of memory");
    w->st_path = np;
    char *p = strdup(file_path);
    if (!p) return mk_fail(MK_ERR_NOMEM, "out of memory");
    /* Tensors of other dtypes (I64 position_ids buffers, ...) are skipped,
     * not fatal: a model loader asks for what it needs by name. */
    int rc = mk_st_open_flags(p, MK_ST_SKIP_UNSUPPORTED, &w->st[w->n_st]);
    if (rc) {
        free(p);
        return rc;
    }
    w->st_path[w->n_st++] = p;
    return MK_OK;
}

/* A shard must be a plain file name inside the model directory. */
static int shard_name_ok(const char *s) {
    return *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && !strchr(s, '\\');
}

/* The shard holds the tensor, as a view or as a skipped entry. */
static int st_holds(const mk_st *st, const char *name) {
    if (mk_st_find(st, name)) return 1;
    for (size_t i = 0; i < mk_st_n_skipped(st); i++)
        if (!strcmp(mk_st_skipped(st, i, NULL, NULL, NULL), name)) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int open_index(mk_weights *w, const char *index_path) {
    char *text = NULL;
    size_t len;
    cJSON *j = NULL;
    const char **shards = NULL;
    size_t n_shards = 0;
    char *sp = NULL;
    int rc = mk_read_file(index_path, MAX_INDEX_BYTES, &text, &len);
    if (rc) goto fail;
    if ((rc = mk_json_parse(text, len, index_path, &j))) goto fail;
    const cJSON *wm = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        goto fail;
    }
    if ((rc = mk_json_check_unique(wm, index_path, "weight_map"))) goto fail;
    size_t n = 0;
    for (const cJSON *c = wm->child; c; c = c->next) n++;
    if (!n) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto fail;
    }
    shards = calloc(n, sizeof *shards);
    if (!shards) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", index_path); goto fail; }
    for (const cJSON *c = wm->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: weight_map[\"%.100s\"] is not a file name", index_path, c->string);
            goto fail;
        }
        if (!shard_name_ok(c->valuestring)) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: weight_map[\"%.100s\"] = \"%.100s\" is not a plain file name in the model directory",
                         index_path, c->string, c->valuestring);
            goto fail;
        }
        shards[n_shards++] = c->valuestring;
    }
    /* Each shard once, in file-name order. */
    qsort(shards, n_shards, sizeof *shards, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n_shards; i++)
        if (!u || strcmp(shards[u - 1], shards[i])) shards[u++] = shards[i];
    n_shards = u;
    for (size_t i = 0; i < n_shards; i++) {
        if (!(sp = join(w->dir, shards[i]))) { rc = mk_fail(MK_ERR_NOMEM, "out of memory"); goto fail; }
        if ((rc = add_st(w, sp))) {
            mk_fail_ctx(rc, "%s: shard", index_path);
            goto fail;
        }
        free(sp);
        sp = NULL;
    }
    /* Every tensor the index names must be in the shard it names. */
    for (const cJSON *c = wm->child; c; c = c->next) {
        size_t f = 0;
        while (f < w->n_st && strcmp(strrchr(w->st_path[f], '/') + 1, c->valuestring)) f++;
        if (f == w->n_st || !st_holds(w->st[f], c->string)) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: tensor '%.100s' is listed in shard %s, which does not hold it",
                         index_path, c->string, c->valuestring);
            goto fail;
        }
    }
fail:
    free(sp);
    free(shards);
    cJSON_Delete(j);
    free(text);
    return rc;
}

static int open_dir(mk_weights *w) {
    char *cfg = NULL, *single = NULL, *index = NULL;
    int rc = MK_OK;
    cfg = join(w->dir, "config.json");
    single = join(w->dir, "model.safetensors");
    index = join(w->dir, "model.safetensors.index.json");
    if (!cfg || !single || !index) { rc = mk_fail(MK_ERR_NOMEM, "out of memory"); goto fail; }
    if (!is_file(cfg)) {
        rc = mk_fail(MK_ERR_NOTFOUND, "%s: no config.json (a Hugging Face model directory needs one)", w->path);
        goto fail;
    }
    if ((rc = read_config(w, cfg))) goto fail;
    /* Like transformers: the single file wins when both are present. */
    if (is_file(single)) rc = add_st(w, single);
    else if (is_file(index)) rc = open_index(w, index);
    else rc = mk_fail(MK_ERR_NOTFOUND, "%s: neither model.safetensors nor model.safetensors.index.json is there", w->path);
fail:
    free(cfg);
    free(single);
    free(index);
    return rc;
}

int mk_weights_open(const char *path, mk_weights **out) {
    *out = NULL;
    if (!path) return mk_fail(MK_ERR_ARG, "no model path given");
    mk_weights *w = calloc(1, sizeof *w);
    if (!w) return mk_fail(MK_ERR_NOMEM, "out of memory");
    int rc = MK_OK;
    char *cfg = NULL;
    if (!(w->path = strdup(path))) { rc = mk_fail(MK_ERR_NOMEM, "out of memory"); goto fail; }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        rc = mk_fail(MK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode)) {
        rc = mk_fail(MK_ERR_IO, "%s: not a regular file or a directory", path);
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        w->fmt = MK_WFMT_HFDIR;
        if (!(w->dir = strdup(path))) { rc = mk_fail(MK_ERR_NOMEM, "out of memory"); goto fail; }
        if ((rc = open_dir(w))) goto fail;
    } else {
        if (!(w->dir = dirname_of(path))) { rc = mk_fail(MK_ERR_NOMEM, "out of memory"); goto fail; }
        unsigned char magic[4] = {0};
        FILE *f = fopen(path, "rb");
        if (!f) { rc = mk_fail(MK_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        if (got == 4 && !memcmp(magic, "GGUF", 4)) {
            w->fmt = MK_WFMT_GGUF;
            if ((rc = mk_gguf_open(path, &w->gguf))) goto fail;
        } else {
            w->fmt = MK_WFMT_SAFETENSORS;
            if ((rc = add_st(w, path))) goto fail;
            if (!(cfg = join(w->dir, "config.json"))) { rc = mk_fail(MK_ERR_NOMEM, "out of memory"); goto fail; }
            if (is_file(cfg) && (rc = read_config(w, cfg))) goto fail;
        }
    }
    if ((rc = build_index(w))) goto fail;
    free(cfg);
    *out = w;
    return MK_OK;
fail:
    free(cfg);
    mk_weights_close(w);
    return rc;
}

void mk_weights_close(mk_weights *w) {
    if (!w) return;
    if (w->gguf) mk_gguf_close(w->gguf);
    for (size_t i = 0; i < w->n_st; i++) {
        mk_st_close(w->st[i]);
        free(w->st_path[i]);
    }
    free(w->st);
    free(w->st_path);
    free(w->t);
    free(w->slot);
    free(w->config);
    free(w->dir);
    free(w->path);
    free(w);
}

mk_wfmt mk_weights_format(const mk_weights *w) { return w->fmt; }
const char *mk_weights_path(const mk_weights *w) { return w->path; }
size_t mk_weights_n(const mk_weights *w) { return w->n; }

const mk_tensor_view *mk_weights_at(const mk_weights *w, size_t i) {
    return i < w->n ? w->t[i] : NULL;
}

const mk_tensor_view *mk_weights_find(const mk_weights *w, const char *name) {
    if (!name) return NULL;
    size_t h = (size_t)hash_str(name) & (w->cap - 1);
    while (w->slot[h]) {
        const mk_tensor_view *t = w->t[w->slot[h] - 1];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (w->cap - 1);
    }
    return NULL;
}

const mk_gguf *mk_weights_gguf(const mk_weights *w) { return w->gguf; }
const char *mk_weights_config_json(const mk_weights *w) { return w->config; }
const char *mk_weights_dir(const mk_weights *w) { return w->dir; }
size_t mk_weights_n_files(const mk_weights *w) { return w->n_st; }

const mk_st *mk_weights_file(const mk_weights *w, size_t i, const char **path) {
    if (i >= w->n_st) {
        if (path) *path = NULL;
        return NULL;
    }
    if (path) *path = w->st_path[i];
    return w->st[i];
}

int mk_weights_to_f32(const mk_tensor_view *t, float *dst, uint64_t n_expected) {
    if (!t) return mk_fail(MK_ERR_ARG, "no tensor given");
    if (t->n_elems != n_expected)
        return mk_fail(MK_ERR_MISMATCH, "tensor '%.100s' has %llu elements, expected %llu", t->name,
                       (unsigned long long)t->n_elems, (unsigned long long)n_expected);
    if ((unsigned)t->dtype >= MK_DTYPE_COUNT)
        return mk_fail(MK_ERR_UNSUPPORTED, "tensor '%.100s': unknown dtype %d", t->name, (int)t->dtype);
    if (t->n_elems % (uint64_t)mk_dtype_block(t->dtype))
        return mk_fail(MK_ERR_FORMAT, "tensor '%.100s': %llu elements is not a whole number of %s blocks", t->name,
                       (unsigned long long)t->n_elems, mk_dtype_name(t->dtype));
    if (t->n_elems > SIZE_MAX / sizeof(float))
        return mk_fail(MK_ERR_NOMEM, "tensor '%.100s' is too large", t->name);
    if (t->n_elems && !dst) return mk_fail(MK_ERR_ARG, "tensor '%.100s': no destination", t->name);
    if (t->n_elems) mk_dequantize(t->dtype, t->data, dst, (size_t)t->n_elems);
    return MK_OK;
}
