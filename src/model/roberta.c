/* roberta.c - BERT-family encoder: config, weights, forward, backward.
 * See roberta.h for the conventions. */
#include "roberta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/ops.h"
#include "../io/json.h"
#include "../io/weights.h"
#include "../text/tokenizer.h"

/* ---- sizes ---- */

/* *r = a * b, 0 on overflow */
static int mulz(size_t *r, size_t a, size_t b) {
    if (a && b > SIZE_MAX / a) return 0;
    *r = a * b;
    return 1;
}

static int addz(size_t *r, size_t a) {
    if (*r > SIZE_MAX - a) return 0;
    *r += a;
    return 1;
}

/* ---- config ---- */

int mk_enc_config_parse(const char *json, const char *label, mk_enc_config *cfg) {
    cJSON *root = NULL;
    int rc = mk_json_parse(json, strlen(json), label, &root);
    if (rc) return rc;
    mk_enc_config c;
    memset(&c, 0, sizeof c);
    const char *mt = NULL, *act = NULL, *pet = NULL;
    int64_t v;
    double eps;
    if (!cJSON_IsObject(root)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: config is not a JSON object", label);
        goto fail;
    }
    if ((rc = mk_json_get_str(root, "model_type", label, "", &mt))) goto fail;
    if (!strcmp(mt, "roberta") || !strcmp(mt, "xlm-roberta") || !strcmp(mt, "camembert")) {
        c.type = MK_ENC_ROBERTA;
    } else if (!strcmp(mt, "bert")) {
        c.type = MK_ENC_BERT;
    } else {
        rc = mk_fail(MK_ERR_UNSUPPORTED,
                     "%s: model_type \"%s\" is not a supported encoder (roberta or bert)", label,
                     mt);
        goto fail;
    }
    int is_rob = c.type == MK_ENC_ROBERTA;
    struct {
        const char *key;
        int *dst;
        int64_t def; /* -1: required */
        int64_t lo, hi;
    } ints[] = {
        {"vocab_size", &c.vocab, -1, 1, 10000000},
        {"hidden_size", &c.hidden, -1, 1, 65536},
        {"num_hidden_layers", &c.n_layers, -1, 1, 1024},
        {"num_attention_heads", &c.n_heads, -1, 1, 1024},
        {"intermediate_size", &c.inter, -1, 1, 1 << 20},
        {"max_position_embeddings", &c.max_pos, 512, 1, 1 << 20},
        {"type_vocab_size", &c.type_vocab, is_rob ? 1 : 2, 1, 1 << 16},
        {"pad_token_id", &c.pad_id, is_rob ? 1 : 0, 0, 10000000},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = ints[i].def;
        rc = ints[i].def < 0 ? mk_json_get_int(root, ints[i].key, label, "", &v)
                             : mk_json_get_int_opt(root, ints[i].key, label, "", &v);
        if (rc) goto fail;
        if (v < ints[i].lo || v > ints[i].hi) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: %s = %lld is out of range [%lld, %lld]", label,
                         ints[i].key, (long long)v, (long long)ints[i].lo, (long long)ints[i].hi);
            goto fail;
        }
        *ints[i].dst = (int)v;
    }
    eps = is_rob ? 1e-5 : 1e-12;
    if ((rc = mk_json_get_num_opt(root, "layer_norm_eps", label, "", &eps))) goto fail;
    if (!(eps > 0 && eps < 1)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: layer_norm_eps = %g must be in (0, 1)", label, eps);
        goto fail;
    }
    c.ln_eps = (float)eps;
    if ((rc = mk_json_get_str_opt(root, "hidden_act", label, "", &act))) goto fail;
    if (act && strcmp(act, "gelu")) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" unsupported (only exact \"gelu\")",
                     label, act);
        goto fail;
    }
    if ((rc = mk_json_get_str_opt(root, "position_embedding_type", label, "", &pet))) goto fail;
    if (pet && strcmp(pet, "absolute")) {
        rc = mk_fail(MK_ERR_UNSUPPORTED,
                     "%s: position_embedding_type \"%s\" unsupported (only \"absolute\")", label,
                     pet);
        goto fail;
    }
    if (c.hidden % c.n_heads) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                     label, c.hidden, c.n_heads);
        goto fail;
    }
    if (c.pad_id >= c.vocab) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: pad_token_id %d outside the vocabulary (%d)", label,
                     c.pad_id, c.vocab);
        goto fail;
    }
    if (is_rob && c.max_pos < c.pad_id + 3) {
        rc = mk_fail(MK_ERR_FORMAT,
                     "%s: max_position_embeddings %d leaves no positions after padding_idx %d",
                     label, c.max_pos, c.pad_id);
        goto fail;
    }
    if (!mk_enc_n_params(&c)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: encoder sizes overflow", label);
        goto fail;
    }
    *cfg = c;
    cJSON_Delete(root);
    return MK_OK;
fail:
    cJSON_Delete(root);
    return rc;
}

char *mk_enc_config_json(const mk_enc_config *c) {
    char *s = malloc(1024);
    if (!s) return NULL;
    snprintf(s, 1024,
             "{\"model_type\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"intermediate_size\": %d, \"max_position_embeddings\": %d, "
             "\"type_vocab_size\": %d, \"pad_token_id\": %d, \"layer_norm_eps\": %.9g, "
             "\"hidden_act\": \"gelu\", \"position_embedding_type\": \"absolute\"}",
             c->type == MK_ENC_BERT ? "bert" : "roberta", c->vocab, c->hidden, c->n_layers,
             c->n_heads, c->inter, c->max_pos, c->type_vocab, c->pad_id, (double)c->ln_eps);
    return s;
}

int mk_enc_max_len(const mk_enc_config *c) {
    return c->type == MK_ENC_ROBERTA ? c->max_pos - c->pad_id - 1 : c->max_pos;
}

/* ---- parameters ---- */

/* element counts of the parameter tensors, in block order */
static int enc_sizes(const mk_enc_config *c, size_t sz[20]) {
    size_t H = (size_t)c->hidden, I = (size_t)c->inter, NL = (size_t)c->n_layers;
    size_t HH, HI, t;
    if (!mulz(&HH, H, H) || !mulz(&HI, H, I)) return 0;
    int k = 0;
    if (!mulz(&sz[k++], (size_t)c->vocab, H)) return 0;     /* wte */
    if (!mulz(&sz[k++], (size_t)c->max_pos, H)) return 0;   /* wpe */
    if (!mulz(&sz[k++], (size_t)c->type_vocab, H)) return 0; /* wtt */
    sz[k++] = H;                                             /* emb_ln_w */
    sz[k++] = H;                                             /* emb_ln_b */
    if (!mulz(&t, NL, HH)) return 0;
    size_t nlh = NL * H, nli = NL * I;
    sz[k++] = t; sz[k++] = nlh; /* q */
    sz[k++] = t; sz[k++] = nlh; /* k */
    sz[k++] = t; sz[k++] = nlh; /* v */
    sz[k++] = t; sz[k++] = nlh; /* o */
    sz[k++] = nlh; sz[k++] = nlh; /* ln1 */
    if (!mulz(&t, NL, HI)) return 0;
    sz[k++] = t; sz[k++] = nli; /* fc */
    sz[k++] = t;                /* proj w; its bias and the rest follow */
    (void)k;
    return 1;
}

size_t mk_enc_n_params(const mk_enc_config *c) {
    if (c->hidden <= 0 || c->n_layers <= 0 || c->inter <= 0 || c->vocab <= 0 ||
        c->max_pos <= 0 || c->type_vocab <= 0)
        return 0;
    size_t sz[20], n = 0;
    if (!enc_sizes(c, sz)) return 0;
    for (int i = 0; i < 18; i++)
        if (!addz(&n, sz[i])) return 0;
    size_t H = (size_t)c->hidden, NL = (size_t)c->n_layers;
    /* projb, ln2_w, ln2_b (NL, H); pool_w (H, H); pool_b (H) */
    if (!addz(&n, 3 * NL * H) || !addz(&n, H * H) || !addz(&n, H)) return 0;
    return n;
}

float *mk_enc_point(mk_enc_params *p, float *base, const mk_enc_config *c) {
    size_t H = (size_t)c->hidden, I = (size_t)c->inter, NL = (size_t)c->n_layers;
    float *x = base;
#define TAKE(field, count) (p->field = x, x += (count))
    TAKE(wte, (size_t)c->vocab * H);
    TAKE(wpe, (size_t)c->max_pos * H);
    TAKE(wtt, (size_t)c->type_vocab * H);
    TAKE(emb_ln_w, H);
    TAKE(emb_ln_b, H);
    TAKE(qw, NL * H * H);
    TAKE(qb, NL * H);
    TAKE(kw, NL * H * H);
    TAKE(kb, NL * H);
    TAKE(vw, NL * H * H);
    TAKE(vb, NL * H);
    TAKE(ow, NL * H * H);
    TAKE(ob, NL * H);
    TAKE(ln1_w, NL * H);
    TAKE(ln1_b, NL * H);
    TAKE(fcw, NL * I * H);
    TAKE(fcb, NL * I);
    TAKE(projw, NL * H * I);
    TAKE(projb, NL * H);
    TAKE(ln2_w, NL * H);
    TAKE(ln2_b, NL * H);
    TAKE(pool_w, H * H);
    TAKE(pool_b, H);
#undef TAKE
    return x;
}

enum { ENC_N_EMB = 5, ENC_N_LAYER = 16, ENC_N_POOL = 2 };

int mk_enc_n_tensors(const mk_enc_config *c) {
    return ENC_N_EMB + ENC_N_LAYER * c->n_layers + ENC_N_POOL;
}

void mk_enc_tensor(const mk_enc_config *c, const mk_enc_params *p, int i, char name[128],
                   float **data, int *n_dims, int64_t shape[2]) {
    int64_t H = c->hidden, I = c->inter;
    *n_dims = 1;
    shape[0] = H;
    shape[1] = 0;
    if (i < ENC_N_EMB) {
        static const char *nm[] = {"embeddings.word_embeddings.weight",
                                   "embeddings.position_embeddings.weight",
                                   "embeddings.token_type_embeddings.weight",
                                   "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"};
        float *d[] = {p->wte, p->wpe, p->wtt, p->emb_ln_w, p->emb_ln_b};
        int64_t rows[] = {c->vocab, c->max_pos, c->type_vocab};
        snprintf(name, 128, "%s", nm[i]);
        *data = d[i];
        if (i < 3) {
            *n_dims = 2;
            shape[0] = rows[i];
            shape[1] = H;
        }
        return;
    }
    i -= ENC_N_EMB;
    if (i >= ENC_N_LAYER * c->n_layers) {
        i -= ENC_N_LAYER * c->n_layers;
        snprintf(name, 128, "pooler.dense.%s", i == 0 ? "weight" : "bias");
        *data = i == 0 ? p->pool_w : p->pool_b;
        if (i == 0) {
            *n_dims = 2;
            shape[1] = H;
        }
        return;
    }
    int l = i / ENC_N_LAYER, j = i % ENC_N_LAYER;
    size_t L = (size_t)l;
    static const char *nm[ENC_N_LAYER] = {
        "attention.self.query.weight", "attention.self.query.bias",
        "attention.self.key.weight",   "attention.self.key.bias",
        "attention.self.value.weight", "attention.self.value.bias",
        "attention.output.dense.weight", "attention.output.dense.bias",
        "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
        "intermediate.dense.weight",   "intermediate.dense.bias",
        "output.dense.weight",         "output.dense.bias",
        "output.LayerNorm.weight",     "output.LayerNorm.bias"};
    snprintf(name, 128, "encoder.layer.%d.%s", l, nm[j]);
    size_t HH = (size_t)H * H, HI = (size_t)H * I;
    switch (j) {
    case 0: *data = p->qw + L * HH; break;
    case 1: *data = p->qb + L * H; break;
    case 2: *data = p->kw + L * HH; break;
    case 3: *data = p->kb + L * H; break;
    case 4: *data = p->vw + L * HH; break;
    case 5: *data = p->vb + L * H; break;
    case 6: *data = p->ow + L * HH; break;
    case 7: *data = p->ob + L * H; break;
    case 8: *data = p->ln1_w + L * H; break;
    case 9: *data = p->ln1_b + L * H; break;
    case 10: *data = p->fcw + L * HI; break;
    case 11: *data = p->fcb + L * I; break;
    case 12: *data = p->projw + L * HI; break;
    case 13: *data = p->projb + L * H; break;
    case 14: *data = p->ln2_w + L * H; break;
    default: *data = p->ln2_b + L * H; break;
    }
    if (j == 10 || j == 11) shape[0] = I;
    if (j == 0 || j == 2 || j == 4 || j == 6 || j == 10 || j == 12) {
        *n_dims = 2;
        shape[1] = j == 12 ? I : H;
    }
}

static const mk_tensor_view *find_any(mk_tensor_find_fn find, void *ctx, const char *name) {
    const mk_tensor_view *t = find(ctx, name);
    if (t) return t;
    static const char *pre[] = {"roberta.", "bert."};
    char buf[160];
    for (int k = 0; k < 2; k++) {
        snprintf(buf, sizeof buf, "%s%s", pre[k], name);
        if ((t = find(ctx, buf))) return t;
    }
    return NULL;
}

int mk_enc_load_tensors(const mk_enc_config *cfg, mk_enc_params *p, mk_tensor_find_fn find,
                        void *ctx, const char *label, int *missing_pooler) {
    int nt = mk_enc_n_tensors(cfg);
    if (missing_pooler) *missing_pooler = 0;
    for (int i = 0; i < nt; i++) {
        char name[128];
        float *data;
        int nd;
        int64_t shape[2];
        mk_enc_tensor(cfg, p, i, name, &data, &nd, shape);
        const mk_tensor_view *t = find_any(find, ctx, name);
        if (!t) {
            if (missing_pooler && !strncmp(name, "pooler.", 7)) {
                *missing_pooler = 1;
                continue;
            }
            return mk_fail(MK_ERR_NOTFOUND, "%s: tensor %s is missing (also tried roberta./bert.)",
                           label, name);
        }
        int ok = t->n_dims == nd && t->shape[0] == shape[0] && (nd == 1 || t->shape[1] == shape[1]);
        if (!ok) {
            char got[96] = "", want[64];
            int o = 0;
            for (int d = 0; d < t->n_dims && d < MK_MAX_DIMS && o < 80; d++)
                o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", d ? ", " : "",
                              (long long)t->shape[d]);
            if (nd == 1) snprintf(want, sizeof want, "%lld", (long long)shape[0]);
            else snprintf(want, sizeof want, "%lld, %lld", (long long)shape[0], (long long)shape[1]);
            return mk_fail(MK_ERR_MISMATCH, "%s: tensor %s has shape (%s), the config says (%s)",
                           label, t->name, got, want);
        }
        uint64_t n = (uint64_t)shape[0] * (uint64_t)(nd == 2 ? shape[1] : 1);
        int rc = mk_weights_to_f32(t, data, n);
        if (rc) return mk_fail_ctx(rc, "%s: tensor %s", label, t->name);
    }
    return MK_OK;
}

/* ---- the standalone encoder ---- */

static const mk_tensor_view *weights_find(void *ctx, const char *name) {
    return mk_weights_find((const mk_weights *)ctx, name);
}

/* HF initialises a missing pooler with normal(0, 0.02) weights and zero
 * bias (e.g. RobertaModel from the roberta-base masked-LM checkpoint); we
 * do the same with a fixed seed so the result is reproducible. */
static void init_pooler(const mk_enc_config *c, mk_enc_params *p) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    size_t n = (size_t)c->hidden * c->hidden;
    for (size_t i = 0; i < n; i++) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            s += 0x9E3779B97F4A7C15ull;
            uint64_t z = s;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            u[k] = ((double)(z >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
        }
        p->pool_w[i] = (float)(0.02 * sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]));
    }
    memset(p->pool_b, 0, (size_t)c->hidden * sizeof(float));
}

int mk_encoder_open(const char *path, int flags, mk_encoder **out) {
    *out = NULL;
    mk_weights *w = NULL;
    mk_encoder *e = calloc(1, sizeof *e);
    int rc;
    if (!e) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    if ((rc = mk_weights_open(path, &w))) goto fail;
    const char *cj = mk_weights_config_json(w);
    if (!cj) {
        rc = mk_fail(MK_ERR_NOTFOUND,
                     "%s: no config.json found: give a Hugging Face encoder directory (or a "
                     ".safetensors file with config.json beside it)",
                     path);
        goto fail;
    }
    char label[1200];
    snprintf(label, sizeof label, "%s/config.json", mk_weights_dir(w));
    if ((rc = mk_enc_config_parse(cj, label, &e->cfg))) goto fail;
    e->config_json = strdup(cj);
    e->dir = strdup(mk_weights_dir(w));
    if (!e->config_json || !e->dir) {
        rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    size_t np = mk_enc_n_params(&e->cfg), stored = 0;
    for (size_t i = 0; i < mk_weights_n(w); i++) stored += mk_weights_at(w, i)->nbytes;
    /* a config far larger than the weights is refused before allocating
     * (loose bound: half a byte per parameter, Q4_0 takes 0.56) */
    if (np / 2 > stored) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: the config needs %zu parameters, the weights hold only %zu bytes",
                     label, np, stored);
        goto fail;
    }
    if (!np || np > SIZE_MAX / sizeof(float) || !(e->block = malloc(np * sizeof(float)))) {
        rc = mk_fail(MK_ERR_NOMEM, "%s: cannot allocate %zu encoder parameters", path, np);
        goto fail;
    }
    mk_enc_point(&e->p, e->block, &e->cfg);
    int no_pool = 0;
    if ((rc = mk_enc_load_tensors(&e->cfg, &e->p, weights_find, w, path, &no_pool))) goto fail;
    if (no_pool) init_pooler(&e->cfg, &e->p);
    e->pooler_initialised = no_pool;
    if (!(flags & MK_ENC_NO_TOKENIZER)) {
        if ((rc = mk_tok_load(e->dir, &e->tok))) {
            rc = mk_fail_ctx(rc, "%s: loading the encoder's tokenizer", e->dir);
            goto fail;
        }
    }
    mk_weights_close(w);
    *out = e;
    return MK_OK;
fail:
    mk_weights_close(w);
    mk_encoder_free(e);
    return rc;
}

void mk_encoder_free(mk_encoder *e) {
    if (!e) return;
    free(e->block);
    if (e->tok) mk_tok_free(e->tok);
    free(e->config_json);
    free(e->dir);
    free(e);
}

/* ---- tokenisation ---- */

int mk_enc_tokenize_with(const mk_enc_config *cfg, const mk_tokenizer *tok,
                         const char *const *texts, int n, int32_t **ids_out, float **mask_out,
                         int *L_out) {
    *ids_out = NULL;
    *mask_out = NULL;
    *L_out = 0;
    if (!tok) return mk_fail(MK_ERR_ARG, "encoder: no tokenizer loaded");
    if (n <= 0) return mk_fail(MK_ERR_ARG, "encoder: %d sentences to tokenize", n);
    int maxlen = mk_enc_max_len(cfg);
    int32_t **each = calloc((size_t)n, sizeof *each);
    int *len = calloc((size_t)n, sizeof *len);
    int32_t *ids = NULL;
    float *mask = NULL;
    int rc = MK_OK, L = 1;
    if (!each || !len) {
        rc = mk_fail(MK_ERR_NOMEM, "encoder: out of memory tokenizing %d sentences", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        size_t cnt = 0;
        const char *t = texts[i] ? texts[i] : "";
        if ((rc = mk_tok_encode(tok, t, strlen(t), MK_TOK_SPECIAL, &each[i], &cnt))) goto done;
        if (cnt == 0) {
            rc = mk_fail(MK_ERR_ARG, "encoder: sentence %d gives no tokens", i);
            goto done;
        }
        /* truncation keeps the first tokens and the closing </s> / [SEP] */
        if (cnt > (size_t)maxlen) {
            each[i][maxlen - 1] = each[i][cnt - 1];
            cnt = (size_t)maxlen;
        }
        len[i] = (int)cnt;
        if (len[i] > L) L = len[i];
    }
    size_t nl = (size_t)n * (size_t)L;
    ids = malloc(nl * sizeof *ids);
    mask = malloc(nl * sizeof *mask);
    if (!ids || !mask) {
        rc = mk_fail(MK_ERR_NOMEM, "encoder: out of memory tokenizing %d sentences", n);
        goto done;
    }
    for (int i = 0; i < n; i++)
        for (int t = 0; t < L; t++) {
            size_t o = (size_t)i * L + t;
            ids[o] = t < len[i] ? each[i][t] : cfg->pad_id;
            mask[o] = t < len[i] ? 1.0f : 0.0f;
        }
    *ids_out = ids;
    *mask_out = mask;
    *L_out = L;
    ids = NULL;
    mask = NULL;
done:
    if (each)
        for (int i = 0; i < n; i++) free(each[i]);
    free(each);
    free(len);
    free(ids);
    free(mask);
    return rc;
}

int mk_enc_tokenize(const mk_encoder *e, const char *const *texts, int n, int32_t **ids,
                    float **mask, int *L) {
    return mk_enc_tokenize_with(&e->cfg, e->tok, texts, n, ids, mask, L);
}

/* ---- activations ---- */

/* Layer l's slice of a per-layer buffer of `per` floats: with keep, every
 * layer has its own; without, one slice is reused. */
static size_t lay(const mk_enc_acts *a, int l, size_t per) {
    return a->keep ? (size_t)l * per : 0;
}

static float *hid(const mk_enc_acts *a, int l) {
    size_t nlh = (size_t)a->n * a->L * a->H;
    return a->hidden + (a->keep ? (size_t)l : (size_t)(l & 1)) * nlh;
}

float *mk_enc_last_hidden(const mk_enc_acts *a) { return hid(a, a->NL); }

int mk_enc_acts_alloc(const mk_enc_config *cfg, int n, int L, int from_ids, int keep,
                      mk_enc_acts *a) {
    memset(a, 0, sizeof *a);
    if (n <= 0 || L <= 0)
        return mk_fail(MK_ERR_ARG, "encoder: activations for n=%d, L=%d", n, L);
    a->n = n;
    a->L = L;
    a->NL = cfg->n_layers;
    a->H = cfg->hidden;
    a->NH = cfg->n_heads;
    a->I = cfg->inter;
    a->from_ids = from_ids;
    a->keep = keep;
    size_t nl, nlh, nli, att, nL = keep ? (size_t)cfg->n_layers : 1;
    size_t nhid = keep ? (size_t)cfg->n_layers + 1 : 2;
    if (!mulz(&nl, (size_t)n, (size_t)L) || !mulz(&nlh, nl, (size_t)a->H) ||
        !mulz(&nli, nl, (size_t)a->I) || !mulz(&att, nl, (size_t)L) ||
        !mulz(&att, att, (size_t)a->NH))
        return mk_fail(MK_ERR_NOMEM, "encoder: activation sizes overflow (n=%d, L=%d)", n, L);
    /* every count below is at most (NL + 1) * the largest per-layer size */
    size_t big = att > nli ? att : nli, lim;
    if (nlh > big) big = nlh;
    if (!mulz(&lim, big, nL + 1) || lim > SIZE_MAX / 64)
        return mk_fail(MK_ERR_NOMEM, "encoder: activation sizes overflow (n=%d, L=%d)", n, L);
    /* counts in 4-byte slots, in the order the pointers are taken */
    size_t cnt[] = {
        from_ids ? nl : 0, from_ids ? nl : 0, nl,           /* ids, pos, mask */
        from_ids ? nlh : 0, from_ids ? nl : 0, from_ids ? nl : 0, /* emb_sum, mean, rstd */
        nhid * nlh,                                         /* hidden */
        nL * nlh, nL * nlh, nL * nlh,                       /* q, k, v */
        nL * att,                                           /* att */
        nL * nlh, nL * nlh, nL * nlh,                       /* atty, res1, ln1 */
        nL * nl, nL * nl,                                   /* ln1 stats */
        nL * nli, nL * nli,                                 /* fch, fch_gelu */
        nL * nlh,                                           /* res2 */
        nL * nl, nL * nl,                                   /* ln2 stats */
        (size_t)n * a->H, (size_t)n * a->H, (size_t)n * a->H /* pool_in, pool_pre, pooled */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof cnt / sizeof cnt[0]; i++) {
        if (!addz(&total, cnt[i]))
            return mk_fail(MK_ERR_NOMEM, "encoder: activation sizes overflow");
    }
    if (total > SIZE_MAX / 4 || !(a->block = malloc(total * 4)))
        return mk_fail(MK_ERR_NOMEM, "encoder: cannot allocate %zu MB of activations (n=%d, L=%d)",
                       total * 4 >> 20, n, L);
    float *x = a->block;
    size_t k = 0;
#define TAKEF(field) (a->field = cnt[k] ? x : NULL, x += cnt[k++])
#define TAKEI(field) (a->field = cnt[k] ? (int32_t *)(void *)x : NULL, x += cnt[k++])
    TAKEI(ids);
    TAKEI(pos);
    TAKEF(mask);
    TAKEF(emb_sum);
    TAKEF(emb_mean);
    TAKEF(emb_rstd);
    TAKEF(hidden);
    TAKEF(q);
    TAKEF(k);
    TAKEF(v);
    TAKEF(att);
    TAKEF(atty);
    TAKEF(res1);
    TAKEF(ln1);
    TAKEF(ln1_mean);
    TAKEF(ln1_rstd);
    TAKEF(fch);
    TAKEF(fch_gelu);
    TAKEF(res2);
    TAKEF(ln2_mean);
    TAKEF(ln2_rstd);
    TAKEF(pool_in);
    TAKEF(pool_pre);
    TAKEF(pooled);
#undef TAKEF
#undef TAKEI
    return MK_OK;
}

void mk_enc_acts_free(mk_enc_acts *a) {
    if (!a) return;
    free(a->block);
    memset(a, 0, sizeof *a);
}

/* ---- forward ---- */

static void layers_forward(const mk_enc_config *cfg, const mk_enc_params *p, mk_enc_acts *a) {
    int n = a->n, L = a->L, H = a->H, NH = a->NH, I = a->I, HS = H / NH;
    int M = n * L;
    size_t nl = (size_t)n * L, nlh = nl * H, nli = nl * I, att = nl * L * NH;
    size_t HH = (size_t)H * H, HI = (size_t)H * I;
    for (int l = 0; l < a->NL; l++) {
        const float *x = hid(a, l);
        float *q = a->q + lay(a, l, nlh), *k = a->k + lay(a, l, nlh), *v = a->v + lay(a, l, nlh);
        float *A = a->att + lay(a, l, att), *atty = a->atty + lay(a, l, nlh);
        float *res1 = a->res1 + lay(a, l, nlh), *ln1 = a->ln1 + lay(a, l, nlh);
        float *m1 = a->ln1_mean + lay(a, l, nl), *r1 = a->ln1_rstd + lay(a, l, nl);
        float *fch = a->fch + lay(a, l, nli), *fg = a->fch_gelu + lay(a, l, nli);
        float *res2 = a->res2 + lay(a, l, nlh);
        float *m2 = a->ln2_mean + lay(a, l, nl), *r2 = a->ln2_rstd + lay(a, l, nl);
        float *y = hid(a, l + 1);
        size_t L_ = (size_t)l;
        mk_matmul_forward(q, x, p->qw + L_ * HH, p->qb + L_ * H, M, H, H);
        mk_matmul_forward(k, x, p->kw + L_ * HH, p->kb + L_ * H, M, H, H);
        mk_matmul_forward(v, x, p->vw + L_ * HH, p->vb + L_ * H, M, H, H);
        for (int b = 0; b < n; b++) {
            size_t o = (size_t)b * L * H;
            mk_attention_forward(atty + o, A + (size_t)b * NH * L * L, q + o, k + o, v + o,
                                 a->mask + (size_t)b * L, L, L, NH, NH, HS, -1);
        }
        mk_matmul_forward(res1, atty, p->ow + L_ * HH, p->ob + L_ * H, M, H, H);
        for (size_t i = 0; i < nlh; i++) res1[i] += x[i];
        mk_layernorm_forward(ln1, m1, r1, res1, p->ln1_w + L_ * H, p->ln1_b + L_ * H, M, H,
                             cfg->ln_eps);
        mk_matmul_forward(fch, ln1, p->fcw + L_ * HI, p->fcb + L_ * I, M, H, I);
        mk_gelu_forward(fg, fch, nli);
        mk_matmul_forward(res2, fg, p->projw + L_ * HI, p->projb + L_ * H, M, I, H);
        for (size_t i = 0; i < nlh; i++) res2[i] += ln1[i];
        mk_layernorm_forward(y, m2, r2, res2, p->ln2_w + L_ * H, p->ln2_b + L_ * H, M, H,
                             cfg->ln_eps);
    }
    const float *last = hid(a, a->NL);
    for (int b = 0; b < n; b++)
        memcpy(a->pool_in + (size_t)b * H, last + (size_t)b * L * H, (size_t)H * sizeof(float));
    mk_matmul_forward(a->pool_pre, a->pool_in, p->pool_w, p->pool_b, n, H, H);
    mk_tanh_forward(a->pooled, a->pool_pre, (size_t)n * H);
}

int mk_enc_forward(const mk_enc_config *cfg, const mk_enc_params *p, const int32_t *ids,
                   const float *mask, mk_enc_acts *a) {
    if (!a->from_ids || !a->ids)
        return mk_fail(MK_ERR_ARG, "encoder: activations were not allocated for token ids");
    int n = a->n, L = a->L, H = a->H;
    if (L > mk_enc_max_len(cfg))
        return mk_fail(MK_ERR_RANGE, "encoder: %d tokens exceed the encoder's limit of %d", L,
                       mk_enc_max_len(cfg));
    size_t nl = (size_t)n * L;
    for (size_t i = 0; i < nl; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab)
            return mk_fail(MK_ERR_RANGE, "encoder: token id %d outside the vocabulary (%d)",
                           (int)ids[i], cfg->vocab);
        a->ids[i] = ids[i];
        a->mask[i] = mask ? (mask[i] != 0 ? 1.0f : 0.0f) : (ids[i] != cfg->pad_id ? 1.0f : 0.0f);
    }
    /* positions as Hugging Face computes them: RoBERTa counts the non-pad
     * tokens (cumsum(ids != pad) * (ids != pad) + pad); BERT 0..L-1 */
    for (int b = 0; b < n; b++) {
        int c = 0;
        for (int t = 0; t < L; t++) {
            size_t o = (size_t)b * L + t;
            if (cfg->type == MK_ENC_ROBERTA) {
                int real = ids[o] != cfg->pad_id;
                c += real;
                a->pos[o] = real ? c + cfg->pad_id : cfg->pad_id;
            } else {
                a->pos[o] = t;
            }
        }
    }
    for (size_t i = 0; i < nl; i++) {
        float *e = a->emb_sum + i * H;
        const float *we = p->wte + (size_t)a->ids[i] * H, *pe = p->wpe + (size_t)a->pos[i] * H;
        for (int h = 0; h < H; h++) e[h] = we[h] + pe[h] + p->wtt[h];
    }
    mk_layernorm_forward(hid(a, 0), a->emb_mean, a->emb_rstd, a->emb_sum, p->emb_ln_w,
                         p->emb_ln_b, (int)nl, H, cfg->ln_eps);
    layers_forward(cfg, p, a);
    return MK_OK;
}

int mk_enc_forward_embeds(const mk_enc_config *cfg, const mk_enc_params *p, const float *inp,
                          mk_enc_acts *a) {
    size_t nl = (size_t)a->n * a->L;
    for (size_t i = 0; i < nl; i++) a->mask[i] = 1.0f;
    memcpy(hid(a, 0), inp, nl * a->H * sizeof(float));
    layers_forward(cfg, p, a);
    return MK_OK;
}

/* ---- backward ---- */

#define G(field) (g ? g->field : NULL)
#define GOFF(field, off) (g ? g->field + (off) : NULL)

int mk_enc_backward(const mk_enc_config *cfg, const mk_enc_params *p, const mk_enc_acts *a,
                    const float *dlast, const float *dpooled, mk_enc_params *g, float *dinp) {
    if (!a->keep)
        return mk_fail(MK_ERR_ARG, "encoder: backward needs a forward that kept its activations");
    int n = a->n, L = a->L, H = a->H, NH = a->NH, I = a->I, HS = H / NH, M = n * L;
    size_t nl = (size_t)n * L, nlh = nl * H, nli = nl * I, att = nl * L * NH;
    size_t HH = (size_t)H * H, HI = (size_t)H * I;
    /* scratch: dh, dx, dres2, dln1, dres1, datty, dq, dk, dv (nlh);
     * dfg, dfch (nli); dpool (n H) */
    size_t total = 9 * nlh + 2 * nli + 2 * (size_t)n * H;
    float *s = calloc(total, sizeof(float));
    if (!s) return mk_fail(MK_ERR_NOMEM, "encoder: cannot allocate %zu MB for the backward",
                           total * 4 >> 20);
    float *dh = s, *dx = dh + nlh, *dres2 = dx + nlh, *dln1 = dres2 + nlh, *dres1 = dln1 + nlh;
    float *datty = dres1 + nlh, *dq = datty + nlh, *dk = dq + nlh, *dv = dk + nlh;
    float *dfg = dv + nlh, *dfch = dfg + nli, *dpre = dfch + nli, *dpin = dpre + (size_t)n * H;

    if (dlast) memcpy(dh, dlast, nlh * sizeof(float));
    if (dpooled) {
        mk_tanh_backward(dpre, dpooled, a->pooled, (size_t)n * H);
        mk_matmul_backward(dpin, G(pool_w), G(pool_b), dpre, a->pool_in, p->pool_w, n, H, H);
        for (int b = 0; b < n; b++) {
            float *d = dh + (size_t)b * L * H;
            for (int h = 0; h < H; h++) d[h] += dpin[(size_t)b * H + h];
        }
    }
    for (int l = a->NL - 1; l >= 0; l--) {
        size_t L_ = (size_t)l;
        const float *x = hid(a, l);
        const float *q = a->q + L_ * nlh, *k = a->k + L_ * nlh, *v = a->v + L_ * nlh;
        const float *A = a->att + L_ * att, *atty = a->atty + L_ * nlh;
        const float *res1 = a->res1 + L_ * nlh, *ln1 = a->ln1 + L_ * nlh;
        const float *m1 = a->ln1_mean + L_ * nl, *r1 = a->ln1_rstd + L_ * nl;
        const float *fch = a->fch + L_ * nli, *fg = a->fch_gelu + L_ * nli;
        const float *res2 = a->res2 + L_ * nlh;
        const float *m2 = a->ln2_mean + L_ * nl, *r2 = a->ln2_rstd + L_ * nl;

        memset(dres2, 0, nlh * sizeof(float));
        mk_layernorm_backward(dres2, GOFF(ln2_w, L_ * H), GOFF(ln2_b, L_ * H), dh, res2,
                              p->ln2_w + L_ * H, m2, r2, M, H);
        memcpy(dln1, dres2, nlh * sizeof(float)); /* residual */
        memset(dfg, 0, 2 * nli * sizeof(float));
        mk_matmul_backward(dfg, GOFF(projw, L_ * HI), GOFF(projb, L_ * H), dres2, fg,
                           p->projw + L_ * HI, M, I, H);
        mk_gelu_backward(dfch, dfg, fch, nli);
        mk_matmul_backward(dln1, GOFF(fcw, L_ * HI), GOFF(fcb, L_ * I), dfch, ln1,
                           p->fcw + L_ * HI, M, H, I);
        memset(dres1, 0, nlh * sizeof(float));
        mk_layernorm_backward(dres1, GOFF(ln1_w, L_ * H), GOFF(ln1_b, L_ * H), dln1, res1,
                              p->ln1_w + L_ * H, m1, r1, M, H);
        memcpy(dx, dres1, nlh * sizeof(float)); /* residual */
        memset(datty, 0, 4 * nlh * sizeof(float)); /* datty, dq, dk, dv */
        mk_matmul_backward(datty, GOFF(ow, L_ * HH), GOFF(ob, L_ * H), dres1, atty,
                           p->ow + L_ * HH, M, H, H);
        for (int b = 0; b < n; b++) {
            size_t o = (size_t)b * L * H;
            mk_attention_backward(dq + o, dk + o, dv + o, datty + o, A + (size_t)b * NH * L * L,
                                  q + o, k + o, v + o, L, L, NH, NH, HS);
        }
        mk_matmul_backward(dx, GOFF(qw, L_ * HH), GOFF(qb, L_ * H), dq, x, p->qw + L_ * HH, M, H,
                           H);
        mk_matmul_backward(dx, GOFF(kw, L_ * HH), GOFF(kb, L_ * H), dk, x, p->kw + L_ * HH, M, H,
                           H);
        mk_matmul_backward(dx, GOFF(vw, L_ * HH), GOFF(vb, L_ * H), dv, x, p->vw + L_ * HH, M, H,
                           H);
        float *t = dh; /* dx becomes the gradient of the layer below's output */
        dh = dx;
        dx = t;
    }
    if (dinp)
        for (size_t i = 0; i < nlh; i++) dinp[i] += dh[i];
    if (a->from_ids && g) {
        float *demb = dres2; /* free now */
        memset(demb, 0, nlh * sizeof(float));
        mk_layernorm_backward(demb, g->emb_ln_w, g->emb_ln_b, dh, a->emb_sum, p->emb_ln_w,
                              a->emb_mean, a->emb_rstd, M, H);
        for (size_t i = 0; i < nl; i++) {
            const float *d = demb + i * H;
            float *we = g->wte + (size_t)a->ids[i] * H, *pe = g->wpe + (size_t)a->pos[i] * H;
            for (int h = 0; h < H; h++) {
                we[h] += d[h];
                pe[h] += d[h];
                g->wtt[h] += d[h];
            }
        }
    }
    free(s);
    return MK_OK;
}
