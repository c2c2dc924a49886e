/* editor.c - the MedREK editor: one parameter block, init, one-file
 * save/load, fingerprint, batched inference and training passes. */
#include "editor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/error.h"
#include "../core/ops.h"
#include "../io/mapfile.h"
#include "../io/safetensors.h"
#include "../io/weights.h"
#include "../text/tokenizer.h"

#define TOK_MAX_BYTES (64u << 20) /* tokenizer files larger than this are refused */
#define CHUNK_SENTENCES 32        /* sentences per encoder forward (inference) */
#define CHUNK_TOKENS 4096         /* padded tokens per encoder forward (inference) */
#define CHUNK_VALUES 256          /* values per prompt-encoder forward */

/* ---- small helpers ---- */

/* splitmix64: our seeded RNG for initialisation */
typedef struct {
    uint64_t s;
} ed_rng;

static uint64_t rng_next(ed_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_u01(void *r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }

static void fill_uniform(float *x, size_t n, double lo, double hi, ed_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_u01(r));
}

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

void mk_editor_config_default(mk_editor_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = MK_PENC_ATTN;
    c->T = 3;
    c->R = 4096;
    c->D = 0;
    c->NH = 8;
    c->P = 10;
    c->seed = 1;
    c->llm_fingerprint = "";
    c->llm_name = "";
}

char *mk_knowledge_sentence(const char *prompt, const char *target) {
    prompt = prompt ? prompt : "";
    target = target ? target : "";
    size_t a = strlen(prompt), b = strlen(target);
    int space = !(a && prompt[a - 1] == ' ') && !(b && target[0] == ' ');
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, prompt, a);
    if (space) s[a] = ' ';
    memcpy(s + a + space, target, b);
    s[a + space + b] = 0;
    return s;
}

/* ---- layout ---- */

static int check_dims(const mk_editor_config *c, const mk_enc_config *ec) {
    if (c->R <= 0 || c->R > (1 << 20))
        return mk_fail(MK_ERR_ARG, "editor: rep_dim R = %d out of range [1, 2^20]", c->R);
    if (c->P <= 0 || c->P > mk_enc_max_len(ec))
        return mk_fail(MK_ERR_ARG, "editor: proto_tokens P = %d out of range [1, %d]", c->P,
                       mk_enc_max_len(ec));
    if (c->D <= 0) return mk_fail(MK_ERR_ARG, "editor: the LLM width D = %d must be positive", c->D);
    mk_penc_config pc = {c->kind, c->R, c->T, c->D, c->NH};
    return mk_penc_config_check(&pc);
}

static float *point_all(mk_editor_params *p, float *base, const mk_editor *ed) {
    float *x = mk_enc_point(&p->enc, base, &ed->enc_cfg);
    x = mk_head_point(&p->q, x, ed->F, ed->cfg.R);
    x = mk_head_point(&p->k, x, ed->F, ed->cfg.R);
    p->proto = x;
    x += (size_t)ed->cfg.P * ed->enc_cfg.hidden;
    return mk_penc_point(&p->pe, x, &ed->pe_cfg);
}

/* Sizes from cfg + enc_cfg, then the parameter block. */
static int alloc_params(mk_editor *ed) {
    ed->F = 4 * ed->enc_cfg.hidden;
    ed->pe_cfg = (mk_penc_config){ed->cfg.kind, ed->cfg.R, ed->cfg.T, ed->cfg.D, ed->cfg.NH};
    size_t parts[4] = {mk_enc_n_params(&ed->enc_cfg), mk_head_n_params(ed->F, ed->cfg.R),
                       (size_t)ed->cfg.P * ed->enc_cfg.hidden, mk_penc_n_params(&ed->pe_cfg)};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        size_t add = i == 1 ? 2 * parts[1] : parts[i];
        if (!parts[i] || add < parts[i] || n > SIZE_MAX / sizeof(float) - add)
            return mk_fail(MK_ERR_NOMEM, "editor: parameter count overflows");
        n += add;
    }
    ed->n_params = n;
    if (!(ed->block = malloc(n * sizeof(float))))
        return mk_fail(MK_ERR_NOMEM, "editor: cannot allocate %zu MB of parameters",
                       n * sizeof(float) >> 20);
    float *end = point_all(&ed->p, ed->block, ed);
    if ((size_t)(end - ed->block) != n) return mk_fail(MK_ERR_ARG, "editor: internal layout error");
    return MK_OK;
}

static int load_tokenizer(mk_editor *ed, const char *label) {
    int rc;
    if (ed->tok_json) {
        rc = mk_tok_load_json_mem(ed->tok_json, strlen(ed->tok_json), label, &ed->tok);
    } else if (ed->tok_vocab && ed->tok_merges) {
        rc = mk_tok_load_vocab_merges_mem(ed->tok_vocab, strlen(ed->tok_vocab), ed->tok_merges,
                                          strlen(ed->tok_merges), label, &ed->tok);
    } else {
        return mk_fail(MK_ERR_FORMAT, "%s: no tokenizer text (tokenizer_json, or "
                                      "tokenizer_vocab_json + tokenizer_merges_txt)",
                       label);
    }
    return rc; /* the tokenizer's message already names label */
}

void mk_editor_free(mk_editor *ed) {
    if (!ed) return;
    free((char *)ed->cfg.llm_fingerprint);
    free((char *)ed->cfg.llm_name);
    free(ed->enc_config_json);
    free(ed->tok_json);
    free(ed->tok_vocab);
    free(ed->tok_merges);
    if (ed->tok) mk_tok_free(ed->tok);
    free(ed->block);
    free(ed->gblock);
    free(ed->mblock);
    free(ed->vblock);
    free(ed);
}

static mk_editor *editor_new(const mk_editor_config *cfg) {
    mk_editor *ed = calloc(1, sizeof *ed);
    if (!ed) return NULL;
    ed->cfg = *cfg;
    ed->cfg.llm_fingerprint = xstrdup(cfg->llm_fingerprint);
    ed->cfg.llm_name = xstrdup(cfg->llm_name);
    if (!ed->cfg.llm_fingerprint || !ed->cfg.llm_name) {
        mk_editor_free(ed);
        return NULL;
    }
    return ed;
}

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

/* The tokenizer files of an encoder directory, as mk_tok_load picks them:
 * tokenizer.json first, else vocab.json + merges.txt. */
static int read_tokenizer_text(mk_editor *ed, const char *dir) {
    size_t n = strlen(dir) + 32, len;
    char *p = malloc(n);
    int rc;
    if (!p) return mk_fail(MK_ERR_NOMEM, "out of memory");
    snprintf(p, n, "%s/tokenizer.json", dir);
    if (is_file(p)) {
        rc = mk_read_file(p, TOK_MAX_BYTES, &ed->tok_json, &len);
    } else {
        snprintf(p, n, "%s/vocab.json", dir);
        if (!is_file(p)) {
            rc = mk_fail(MK_ERR_NOTFOUND,
                         "%s: the encoder has no tokenizer.json or vocab.json + merges.txt", dir);
        } else if (!(rc = mk_read_file(p, TOK_MAX_BYTES, &ed->tok_vocab, &len))) {
            snprintf(p, n, "%s/merges.txt", dir);
            rc = mk_read_file(p, TOK_MAX_BYTES, &ed->tok_merges, &len);
        }
    }
    free(p);
    return rc;
}

int mk_editor_init(const mk_editor_config *cfg, const char *encoder_path, mk_editor **out) {
    *out = NULL;
    mk_encoder *enc = NULL;
    mk_editor *ed = editor_new(cfg);
    int rc;
    if (!ed) return mk_fail(MK_ERR_NOMEM, "editor: out of memory");
    if ((rc = mk_encoder_open(encoder_path, MK_ENC_NO_TOKENIZER, &enc))) goto fail;
    ed->enc_cfg = enc->cfg;
    if ((rc = check_dims(cfg, &enc->cfg))) goto fail;
    if ((rc = alloc_params(ed))) goto fail;
    if (!(ed->enc_config_json = strdup(enc->config_json))) {
        rc = mk_fail(MK_ERR_NOMEM, "editor: out of memory");
        goto fail;
    }
    if ((rc = read_tokenizer_text(ed, enc->dir))) goto fail;
    if ((rc = load_tokenizer(ed, enc->dir))) goto fail;
    memcpy(ed->block, enc->block, mk_enc_n_params(&enc->cfg) * sizeof(float));

    ed_rng r = {cfg->seed};
    const mk_head_params *heads[2] = {&ed->p.q, &ed->p.k};
    size_t F = (size_t)ed->F, R = (size_t)cfg->R;
    for (int h = 0; h < 2; h++) {
        double b1 = 1.0 / sqrt((double)F), b2 = 1.0 / sqrt((double)R);
        fill_uniform(heads[h]->w1, R * F, -b1, b1, &r);
        fill_uniform(heads[h]->b1, R, -b1, b1, &r);
        fill_uniform(heads[h]->w2, R * R, -b2, b2, &r);
        fill_uniform(heads[h]->b2, R, -b2, b2, &r);
    }
    fill_uniform(ed->p.proto, (size_t)cfg->P * ed->enc_cfg.hidden, -0.05, 0.05, &r);
    mk_penc_init(&ed->pe_cfg, &ed->p.pe, rng_u01, &r);
    mk_encoder_free(enc);
    *out = ed;
    return MK_OK;
fail:
    mk_encoder_free(enc);
    mk_editor_free(ed);
    return rc;
}

/* ---- tensors of the file ---- */

/* Calls fn for every tensor: name in the file, data, shape. */
typedef int (*tensor_fn)(void *ctx, const char *name, float *data, int nd, const int64_t *shape);

static int each_tensor(const mk_editor *ed, const mk_editor_params *p, tensor_fn fn, void *ctx) {
    char name[200], sub[128];
    float *data;
    int nd, rc;
    int64_t shape[2];
    const char *pre = ed->enc_cfg.type == MK_ENC_BERT ? "bert." : "roberta.";
    for (int i = 0; i < mk_enc_n_tensors(&ed->enc_cfg); i++) {
        mk_enc_tensor(&ed->enc_cfg, &p->enc, i, sub, &data, &nd, shape);
        snprintf(name, sizeof name, "%s%s", pre, sub);
        if ((rc = fn(ctx, name, data, nd, shape))) return rc;
    }
    const mk_head_params *h[2] = {&p->q, &p->k};
    const char *hn[2] = {"q_head", "k_head"};
    for (int k = 0; k < 2; k++) {
        int64_t s1[2] = {ed->cfg.R, ed->F}, s2[2] = {ed->cfg.R, ed->cfg.R}, sb[1] = {ed->cfg.R};
        snprintf(name, sizeof name, "%s.fc1.weight", hn[k]);
        if ((rc = fn(ctx, name, h[k]->w1, 2, s1))) return rc;
        snprintf(name, sizeof name, "%s.fc1.bias", hn[k]);
        if ((rc = fn(ctx, name, h[k]->b1, 1, sb))) return rc;
        snprintf(name, sizeof name, "%s.fc2.weight", hn[k]);
        if ((rc = fn(ctx, name, h[k]->w2, 2, s2))) return rc;
        snprintf(name, sizeof name, "%s.fc2.bias", hn[k]);
        if ((rc = fn(ctx, name, h[k]->b2, 1, sb))) return rc;
    }
    int64_t sp[2] = {ed->cfg.P, ed->enc_cfg.hidden};
    if ((rc = fn(ctx, "prototype", p->proto, 2, sp))) return rc;
    for (int i = 0; i < mk_penc_n_tensors(&ed->pe_cfg); i++) {
        char pn[64];
        mk_penc_tensor(&ed->pe_cfg, &p->pe, i, pn, &data, &nd, shape);
        snprintf(name, sizeof name, "prompt_encoder.%s", pn);
        if ((rc = fn(ctx, name, data, nd, shape))) return rc;
    }
    return MK_OK;
}

static int n_tensors(const mk_editor *ed) {
    return mk_enc_n_tensors(&ed->enc_cfg) + 8 + 1 + mk_penc_n_tensors(&ed->pe_cfg);
}

/* ---- fingerprint ---- */

/* FNV-1a 64 over bytes, and the same rule over 64-bit words for the
 * parameters (8x fewer multiplies; every step is a bijection of the
 * state, so any single changed word changes the result). */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
    s = s ? s : "";
    h = fnv_bytes(h, s, strlen(s));
    return fnv_bytes(h, "\0", 1); /* separator: "ab"+"c" != "a"+"bc" */
}

static uint64_t fingerprint64(const mk_editor *ed) {
    uint64_t h = 0xCBF29CE484222325ull;
    char num[160];
    snprintf(num, sizeof num, "%s/%d;%s;T=%d;R=%d;D=%d;NH=%d;P=%d;n=%zu", MK_EDITOR_FORMAT,
             MK_EDITOR_VERSION, mk_penc_kind_name(ed->cfg.kind), ed->cfg.T, ed->cfg.R, ed->cfg.D,
             ed->cfg.NH, ed->cfg.P, ed->n_params);
    h = fnv_str(h, num);
    h = fnv_str(h, ed->cfg.llm_fingerprint);
    char *ej = mk_enc_config_json(&ed->enc_cfg);
    h = fnv_str(h, ej);
    free(ej);
    h = fnv_str(h, ed->tok_json);
    h = fnv_str(h, ed->tok_vocab);
    h = fnv_str(h, ed->tok_merges);
    const float *x = ed->block;
    size_t n = ed->n_params, i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w;
        memcpy(&w, x + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
    }
    if (i < n) h = fnv_bytes(h, x + i, 4);
    /* final avalanche so that high-bit changes reach every output bit */
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    return h;
}

const char *mk_editor_fingerprint(mk_editor *ed) {
    snprintf(ed->fp, sizeof ed->fp, "editor-%016llx", (unsigned long long)fingerprint64(ed));
    return ed->fp;
}

int mk_editor_check_llm(const mk_editor *ed, int D, const char *fp) {
    if (D != ed->cfg.D)
        return mk_fail(MK_ERR_MISMATCH,
                       "the editor was made for an LLM of hidden size %d (%s), this LLM has %d: "
                       "create an editor for this LLM with `medrek editor init --llm ...`",
                       ed->cfg.D, ed->cfg.llm_name[0] ? ed->cfg.llm_name : "unnamed", D);
    if (fp && fp[0] && ed->cfg.llm_fingerprint[0] && strcmp(fp, ed->cfg.llm_fingerprint))
        return mk_fail(MK_ERR_MISMATCH,
                       "the editor was made for LLM %s (%s), this LLM is %s: its prompts would "
                       "not fit; use the editor trained for this LLM",
                       ed->cfg.llm_fingerprint, ed->cfg.llm_name[0] ? ed->cfg.llm_name : "unnamed",
                       fp);
    return MK_OK;
}

/* ---- save ---- */

static int save_one(void *ctx, const char *name, float *data, int nd, const int64_t *shape) {
    return mk_st_w_tensor(ctx, name, MK_F32, data, nd, shape);
}

int mk_editor_save(const mk_editor *ed, const char *path) {
    mk_st_writer *w = mk_st_writer_new();
    if (!w) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    char buf[64];
    int rc = MK_OK;
#define META(k, v) \
    if (!rc) rc = mk_st_w_meta(w, k, v)
#define META_INT(k, v) \
    snprintf(buf, sizeof buf, "%lld", (long long)(v)); \
    META(k, buf)
    META("format", MK_EDITOR_FORMAT);
    META_INT("version", MK_EDITOR_VERSION);
    META("prompt_encoder", mk_penc_kind_name(ed->cfg.kind));
    META_INT("prompt_tokens", ed->cfg.T);
    META_INT("rep_dim", ed->cfg.R);
    META_INT("llm_dim", ed->cfg.D);
    META_INT("prompt_heads", ed->cfg.NH);
    META_INT("proto_tokens", ed->cfg.P);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)ed->cfg.seed);
    META("seed", buf);
    META("llm_fingerprint", ed->cfg.llm_fingerprint);
    META("llm_name", ed->cfg.llm_name);
    META("encoder_config", ed->enc_config_json);
    if (ed->tok_json) {
        META("tokenizer_json", ed->tok_json);
    } else {
        META("tokenizer_vocab_json", ed->tok_vocab);
        META("tokenizer_merges_txt", ed->tok_merges);
    }
    snprintf(buf, sizeof buf, "editor-%016llx", (unsigned long long)fingerprint64(ed));
    META("fingerprint", buf);
#undef META
#undef META_INT
    if (!rc) rc = each_tensor(ed, &ed->p, save_one, w);
    if (!rc) rc = mk_st_w_write(w, path);
    if (rc) mk_fail_ctx(rc, "%s: writing the editor", path);
    mk_st_writer_free(w);
    return rc;
}

/* ---- load ---- */

static int meta_int(const mk_st *st, const char *path, const char *key, long long lo,
                    long long hi, long long *v) {
    const char *s = mk_st_meta(st, key);
    if (!s) return mk_fail(MK_ERR_FORMAT, "%s: metadata \"%s\" is missing", path, key);
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) || x < lo || x > hi)
        return mk_fail(MK_ERR_FORMAT, "%s: metadata %s = \"%.40s\" is not an integer in [%lld, %lld]",
                       path, key, s, lo, hi);
    *v = x;
    return MK_OK;
}

typedef struct {
    const mk_st *st;
    const char *path;
    int found;
} load_ctx;

static int load_one(void *vctx, const char *name, float *data, int nd, const int64_t *shape) {
    load_ctx *c = vctx;
    const mk_tensor_view *t = mk_st_find(c->st, name);
    if (!t) return mk_fail(MK_ERR_FORMAT, "%s: tensor %s is missing", c->path, name);
    if (t->n_dims != nd || t->shape[0] != shape[0] || (nd == 2 && t->shape[1] != shape[1]))
        return mk_fail(MK_ERR_FORMAT, "%s: tensor %s has %d dims (%lld, %lld), expected (%lld, %lld)",
                       c->path, name, t->n_dims, (long long)t->shape[0],
                       (long long)(t->n_dims > 1 ? t->shape[1] : 0), (long long)shape[0],
                       (long long)(nd > 1 ? shape[1] : 0));
    uint64_t n = (uint64_t)shape[0] * (uint64_t)(nd == 2 ? shape[1] : 1);
    int rc = mk_weights_to_f32(t, data, n);
    if (rc) return mk_fail_ctx(rc, "%s: tensor %s", c->path, name);
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(data[i]))
            return mk_fail(MK_ERR_FORMAT, "%s: tensor %s holds a non-finite value at %llu", c->path,
                           name, (unsigned long long)i);
    c->found++;
    return MK_OK;
}

static int dup_meta(const mk_st *st, const char *key, char **dst, const char *path) {
    const char *s = mk_st_meta(st, key);
    if (!s) return MK_OK;
    if (!(*dst = strdup(s))) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    return MK_OK;
}

int mk_editor_load(const char *path, mk_editor **out) {
    *out = NULL;
    mk_st *st = NULL;
    mk_editor *ed = NULL;
    int rc = mk_st_open(path, &st);
    if (rc) return rc;
    const char *fmt = mk_st_meta(st, "format");
    if (!fmt || strcmp(fmt, MK_EDITOR_FORMAT)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: not a medrek editor (metadata format is %s%s%s, expected "
                                    "\"%s\")",
                     path, fmt ? "\"" : "", fmt ? fmt : "absent", fmt ? "\"" : "", MK_EDITOR_FORMAT);
        goto fail;
    }
    long long ver, T, R, D, NH, P;
    if ((rc = meta_int(st, path, "version", 0, 1 << 30, &ver))) goto fail;
    if (ver != MK_EDITOR_VERSION) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: editor format version %lld, this program reads %d",
                     path, ver, MK_EDITOR_VERSION);
        goto fail;
    }
    mk_editor_config cfg;
    mk_editor_config_default(&cfg);
    const char *kind = mk_st_meta(st, "prompt_encoder");
    if (!(cfg.kind = mk_penc_kind_parse(kind))) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: metadata prompt_encoder \"%.40s\" is not attn or mlp", path,
                     kind ? kind : "(missing)");
        goto fail;
    }
    if ((rc = meta_int(st, path, "prompt_tokens", 1, 4096, &T)) ||
        (rc = meta_int(st, path, "rep_dim", 1, 1 << 20, &R)) ||
        (rc = meta_int(st, path, "llm_dim", 1, 1 << 18, &D)) ||
        (rc = meta_int(st, path, "prompt_heads", 1, 1 << 18, &NH)) ||
        (rc = meta_int(st, path, "proto_tokens", 1, 1 << 20, &P)))
        goto fail;
    cfg.T = (int)T, cfg.R = (int)R, cfg.D = (int)D, cfg.NH = (int)NH, cfg.P = (int)P;
    const char *seed = mk_st_meta(st, "seed");
    cfg.seed = seed ? strtoull(seed, NULL, 10) : 0;
    cfg.llm_fingerprint = mk_st_meta(st, "llm_fingerprint");
    cfg.llm_name = mk_st_meta(st, "llm_name");
    if (!(ed = editor_new(&cfg))) {
        rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    const char *ej = mk_st_meta(st, "encoder_config");
    if (!ej) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: metadata encoder_config is missing", path);
        goto fail;
    }
    char label[1100];
    snprintf(label, sizeof label, "%s: encoder_config", path);
    if ((rc = mk_enc_config_parse(ej, label, &ed->enc_cfg))) goto fail;
    if ((rc = check_dims(&ed->cfg, &ed->enc_cfg))) {
        rc = mk_fail_ctx(MK_ERR_FORMAT, "%s", path);
        goto fail;
    }
    if ((rc = dup_meta(st, "encoder_config", &ed->enc_config_json, path)) ||
        (rc = dup_meta(st, "tokenizer_json", &ed->tok_json, path)) ||
        (rc = dup_meta(st, "tokenizer_vocab_json", &ed->tok_vocab, path)) ||
        (rc = dup_meta(st, "tokenizer_merges_txt", &ed->tok_merges, path)))
        goto fail;
    if (ed->tok_json && (ed->tok_vocab || ed->tok_merges)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: both tokenizer_json and tokenizer_vocab_json/merges given",
                     path);
        goto fail;
    }
    snprintf(label, sizeof label, "%s: embedded tokenizer", path);
    if ((rc = load_tokenizer(ed, label))) goto fail;
    /* refuse a config whose parameters cannot be in this file before
     * allocating for them (a loose bound: one byte per parameter, where
     * f16/bf16 take two) */
    size_t stored = 0;
    for (size_t i = 0; i < mk_st_n_tensors(st); i++) stored += mk_st_tensor(st, i)->nbytes;
    ed->F = 4 * ed->enc_cfg.hidden;
    ed->pe_cfg = (mk_penc_config){ed->cfg.kind, ed->cfg.R, ed->cfg.T, ed->cfg.D, ed->cfg.NH};
    size_t need = mk_enc_n_params(&ed->enc_cfg) / 2 + mk_head_n_params(ed->F, ed->cfg.R) +
                  mk_penc_n_params(&ed->pe_cfg) / 2;
    if (need > stored) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: its configuration needs at least %zu bytes of tensors, "
                                    "the file holds %zu",
                     path, 2 * need, stored);
        goto fail;
    }
    if ((rc = alloc_params(ed))) goto fail;
    load_ctx lc = {st, path, 0};
    if ((rc = each_tensor(ed, &ed->p, load_one, &lc))) goto fail;
    if (mk_st_n_tensors(st) != (size_t)lc.found) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: %zu tensors, but an editor with this configuration has %d",
                     path, mk_st_n_tensors(st), n_tensors(ed));
        goto fail;
    }
    /* computed once here: callers read ed->fp instead of hashing again */
    const char *fp = mk_st_meta(st, "fingerprint"), *have = mk_editor_fingerprint(ed);
    if (fp && strcmp(fp, have)) {
        rc = mk_fail(MK_ERR_FORMAT,
                     "%s: the parameters do not match the stored fingerprint %s (computed %s): "
                     "the file was modified or corrupted",
                     path, fp, ed->fp);
        goto fail;
    }
    mk_st_close(st);
    *out = ed;
    return MK_OK;
fail:
    mk_st_close(st);
    mk_editor_free(ed);
    return rc;
}

/* ---- batched inference ---- */

/* out (n, R) = head(encode(ids)) with one encoder forward, no activations kept */
static int rep_ids(const mk_editor *ed, const mk_head_params *head, const int32_t *ids,
                   const float *mask, int n, int L, float *out) {
    mk_enc_acts a;
    int H = ed->enc_cfg.hidden, F = ed->F, R = ed->cfg.R;
    int rc = mk_enc_acts_alloc(&ed->enc_cfg, n, L, 1, 0, &a);
    if (rc) return rc;
    size_t N = (size_t)n;
    float *x = malloc((N * F + N * 2 * H + 2 * N * R) * sizeof(float));
    if (!x) {
        mk_enc_acts_free(&a);
        return mk_fail(MK_ERR_NOMEM, "editor: out of memory encoding %d sentences", n);
    }
    int32_t *arg = (int32_t *)(void *)(x + N * F);
    float *x1 = x + N * F + N * 2 * H, *h2 = x1 + N * R;
    if (!(rc = mk_enc_forward(&ed->enc_cfg, &ed->p.enc, ids, mask, &a))) {
        mk_krm_features_forward(x, arg, mk_enc_last_hidden(&a), a.mask, a.pooled, n, L, H);
        mk_head_forward(out, x1, h2, x, head, n, F, R);
    }
    free(x);
    mk_enc_acts_free(&a);
    return rc;
}

static int rep_texts(const mk_editor *ed, int which, const char *const *texts, int n, float *out) {
    if (n < 0 || (n && (!texts || !out))) return mk_fail(MK_ERR_ARG, "editor: bad sentence list");
    const mk_head_params *head = which == MK_HEAD_Q ? &ed->p.q : &ed->p.k;
    for (int s = 0; s < n; s += CHUNK_SENTENCES) {
        int m = n - s < CHUNK_SENTENCES ? n - s : CHUNK_SENTENCES, L;
        int32_t *ids;
        float *mask;
        int rc = mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, texts + s, m, &ids, &mask, &L);
        if (rc) return rc;
        int rows = CHUNK_TOKENS / L > 0 ? CHUNK_TOKENS / L : 1;
        for (int i = 0; i < m && !rc; i += rows) {
            int k = m - i < rows ? m - i : rows;
            rc = rep_ids(ed, head, ids + (size_t)i * L, mask + (size_t)i * L, k, L,
                         out + (size_t)(s + i) * ed->cfg.R);
        }
        free(ids);
        free(mask);
        if (rc) return rc;
    }
    return MK_OK;
}

int mk_editor_keys(const mk_editor *ed, const char *const *prompts, int n, float *keys) {
    return rep_texts(ed, MK_HEAD_Q, prompts, n, keys);
}

int mk_editor_query(const mk_editor *ed, const char *const *texts, int n, float *q) {
    return rep_texts(ed, MK_HEAD_Q, texts, n, q);
}

/* the knowledge sentences of n requests (malloc'd array of malloc'd strings) */
static char **knowledge(const char *const *prompts, const char *const *targets, int n) {
    char **ks = calloc(n > 0 ? (size_t)n : 1, sizeof *ks);
    if (!ks) return NULL;
    for (int i = 0; i < n; i++)
        if (!(ks[i] = mk_knowledge_sentence(prompts[i], targets[i]))) {
            for (int j = 0; j < i; j++) free(ks[j]);
            free(ks);
            return NULL;
        }
    return ks;
}

int mk_editor_values(const mk_editor *ed, const char *const *prompts,
                     const char *const *targets, int n, float *values) {
    if (n < 0 || (n && (!prompts || !targets)))
        return mk_fail(MK_ERR_ARG, "editor: bad request list");
    char **ks = knowledge(prompts, targets, n);
    if (!ks) return mk_fail(MK_ERR_NOMEM, "editor: out of memory");
    int rc = rep_texts(ed, MK_HEAD_K, (const char *const *)ks, n, values);
    for (int i = 0; i < n; i++) free(ks[i]);
    free(ks);
    return rc;
}

int mk_editor_prompts(const mk_editor *ed, const float *values, int n, float *prompts) {
    for (int s = 0; s < n; s += CHUNK_VALUES) {
        int m = n - s < CHUNK_VALUES ? n - s : CHUNK_VALUES;
        int rc = mk_penc_forward(&ed->pe_cfg, &ed->p.pe, values + (size_t)s * ed->cfg.R, m,
                                 prompts + (size_t)s * ed->cfg.T * ed->cfg.D, NULL);
        if (rc) return rc;
    }
    return MK_OK;
}

int mk_editor_prototype(const mk_editor *ed, float *key) {
    mk_krm_pass pass;
    int rc = mk_krm_forward_proto(&ed->enc_cfg, &ed->p.enc, &ed->p.k, ed->cfg.R, ed->p.proto,
                                  ed->cfg.P, key, &pass);
    if (!rc) mk_krm_pass_free(&pass);
    return rc;
}

/* ---- training ---- */

int mk_editor_train_alloc(mk_editor *ed) {
    if (ed->gblock) return MK_OK;
    size_t bytes = ed->n_params * sizeof(float);
    ed->gblock = calloc(1, bytes);
    ed->mblock = calloc(1, bytes);
    ed->vblock = calloc(1, bytes);
    if (!ed->gblock || !ed->mblock || !ed->vblock) {
        free(ed->gblock), free(ed->mblock), free(ed->vblock);
        ed->gblock = ed->mblock = ed->vblock = NULL;
        return mk_fail(MK_ERR_NOMEM, "editor: cannot allocate 3 x %zu MB for training", bytes >> 20);
    }
    point_all(&ed->g, ed->gblock, ed);
    point_all(&ed->m, ed->mblock, ed);
    point_all(&ed->v, ed->vblock, ed);
    ed->adam_t = 0;
    return MK_OK;
}

void mk_editor_zero_grad(mk_editor *ed) {
    if (ed->gblock) memset(ed->gblock, 0, ed->n_params * sizeof(float));
}

static int need_grads(const mk_editor *ed) {
    if (!ed->gblock) return mk_fail(MK_ERR_ARG, "editor: call mk_editor_train_alloc before a backward");
    return MK_OK;
}

int mk_editor_rep_forward(const mk_editor *ed, int head, const char *const *texts, int n,
                          float *out, mk_krm_pass *pass) {
    int32_t *ids;
    float *mask;
    int L;
    memset(pass, 0, sizeof *pass);
    int rc = mk_enc_tokenize_with(&ed->enc_cfg, ed->tok, texts, n, &ids, &mask, &L);
    if (rc) return rc;
    rc = mk_krm_forward(&ed->enc_cfg, &ed->p.enc, head == MK_HEAD_Q ? &ed->p.q : &ed->p.k,
                        ed->cfg.R, ids, mask, n, L, out, pass);
    free(ids);
    free(mask);
    return rc;
}

int mk_editor_rep_backward(mk_editor *ed, int head, const mk_krm_pass *pass, const float *dout) {
    int rc = need_grads(ed);
    if (rc) return rc;
    return mk_krm_backward(&ed->enc_cfg, &ed->p.enc, head == MK_HEAD_Q ? &ed->p.q : &ed->p.k, pass,
                           dout, &ed->g.enc, head == MK_HEAD_Q ? &ed->g.q : &ed->g.k, NULL);
}

int mk_editor_proto_forward(const mk_editor *ed, float *out, mk_krm_pass *pass) {
    return mk_krm_forward_proto(&ed->enc_cfg, &ed->p.enc, &ed->p.k, ed->cfg.R, ed->p.proto,
                                ed->cfg.P, out, pass);
}

int mk_editor_proto_backward(mk_editor *ed, const mk_krm_pass *pass, const float *dout) {
    int rc = need_grads(ed);
    if (rc) return rc;
    return mk_krm_backward(&ed->enc_cfg, &ed->p.enc, &ed->p.k, pass, dout, &ed->g.enc, &ed->g.k,
                           ed->g.proto);
}

int mk_editor_prompts_forward(const mk_editor *ed, const float *values, int n, float *prompts,
                              mk_penc_pass *pass) {
    return mk_penc_forward(&ed->pe_cfg, &ed->p.pe, values, n, prompts, pass);
}

int mk_editor_prompts_backward(mk_editor *ed, const mk_penc_pass *pass, const float *dprompts,
                               float *dvalues) {
    int rc = need_grads(ed);
    if (rc) return rc;
    return mk_penc_backward(&ed->pe_cfg, &ed->p.pe, pass, dprompts, dvalues, &ed->g.pe);
}

void mk_editor_adam_step(mk_editor *ed, float lr, float beta1, float beta2, float eps) {
    if (!ed->gblock) return;
    ed->adam_t++;
    double bc1 = 1.0 - pow(beta1, (double)ed->adam_t), bc2 = 1.0 - pow(beta2, (double)ed->adam_t);
    float *p = ed->block, *g = ed->gblock, *m = ed->mblock, *v = ed->vblock;
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    size_t n = ed->n_params;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        p[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}
