/* llama.c - opening a Llama-family model: configuration from GGUF metadata
 * or config.json, weight lookup and validation, tokenizer, fingerprint,
 * embedding lookup. The forward/backward live in llama_fwd.c, the KV cache
 * and sampling in llama_gen.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/error.h"
#include "../core/ops.h"
#include "../io/gguf.h"
#include "../io/json.h"
#include "../text/tokenizer.h"
#include "llama_internal.h"

#define MAX_DIM (1 << 20)      /* sanity bound on every size in a config */
#define MAX_VOCAB (1 << 24)

double mk_llama_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mk_llama_mm(float *out, const float *inp, const mk_tensor_view *t, int M, int K, int N) {
    mk_matmul_forward_dt(out, inp, t->data, t->dtype, NULL, M, K, N);
}

void mk_llama_mm_back(float *dinp, const float *dout, const mk_tensor_view *t, int M, int K,
                      int N) {
    mk_matmul_backward_dt(dinp, dout, t->data, t->dtype, M, K, N);
}

int mk_llama_check_ids(const mk_llama *m, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->c.n_vocab)
            return mk_fail(MK_ERR_RANGE, "token id %d at position %d is out of range (vocabulary of %d)",
                           (int)ids[i], i, m->c.n_vocab);
    return MK_OK;
}

/* ---------------------------------------------------------------- config */

static int check_int(const char *path, const char *what, int64_t v, int64_t lo, int64_t hi,
                     int *dst) {
    if (v < lo || v > hi)
        return mk_fail(MK_ERR_FORMAT, "%s: %s = %lld is out of range [%lld, %lld]", path, what,
                       (long long)v, (long long)lo, (long long)hi);
    *dst = (int)v;
    return MK_OK;
}

static int gg_int(const mk_gguf *g, const char *path, const char *key, int required, int64_t dflt,
                  int64_t lo, int64_t hi, int *dst) {
    uint64_t v;
    int rc = mk_gguf_get_u64(g, key, &v);
    if (rc == MK_ERR_NOTFOUND && !required) {
        mk_clear_error();
        v = (uint64_t)dflt;
    } else if (rc) {
        return mk_fail_ctx(rc, "%s", path);
    }
    if (v > (uint64_t)hi) return check_int(path, key, hi + 1, lo, hi, dst);
    return check_int(path, key, (int64_t)v, lo, hi, dst);
}

static int gg_float(const mk_gguf *g, const char *path, const char *key, float dflt, float *dst) {
    int rc = mk_gguf_get_f32(g, key, dst);
    if (rc == MK_ERR_NOTFOUND) {
        mk_clear_error();
        *dst = dflt;
        return MK_OK;
    }
    if (rc) return mk_fail_ctx(rc, "%s", path);
    if (!isfinite(*dst)) return mk_fail(MK_ERR_FORMAT, "%s: %s is not finite", path, key);
    return MK_OK;
}

static int config_from_gguf(mk_llama *m, const mk_gguf *g, const char *path) {
    mk_llama_config *c = &m->c;
    const char *arch;
    size_t alen;
    int rc = mk_gguf_get_str(g, "general.architecture", &arch, &alen);
    if (rc) return mk_fail_ctx(rc, "%s: no general.architecture", path);
    if (alen != 5 || memcmp(arch, "llama", 5) != 0)
        return mk_fail(MK_ERR_UNSUPPORTED,
                       "%s: architecture '%.*s' is not supported (only 'llama')", path,
                       (int)(alen > 64 ? 64 : alen), arch);
    if ((rc = gg_int(g, path, "llama.embedding_length", 1, 0, 1, MAX_DIM, &c->dim))) return rc;
    if ((rc = gg_int(g, path, "llama.block_count", 1, 0, 1, 4096, &c->n_layers))) return rc;
    if ((rc = gg_int(g, path, "llama.attention.head_count", 1, 0, 1, 4096, &c->n_heads))) return rc;
    if ((rc = gg_int(g, path, "llama.attention.head_count_kv", 0, c->n_heads, 1, 4096,
                     &c->n_kv_heads)))
        return rc;
    if ((rc = gg_int(g, path, "llama.feed_forward_length", 1, 0, 1, MAX_DIM, &c->ffn_dim)))
        return rc;
    if ((rc = gg_int(g, path, "llama.context_length", 0, 2048, 1, 1 << 24, &c->n_ctx))) return rc;
    if ((rc = gg_int(g, path, "llama.attention.key_length", 0,
                     c->dim / c->n_heads ? c->dim / c->n_heads : 1, 1, 65536, &c->head_dim)))
        return rc;
    int rope_dim;
    if ((rc = gg_int(g, path, "llama.rope.dimension_count", 0, c->head_dim, 1, 65536, &rope_dim)))
        return rc;
    if (rope_dim != c->head_dim)
        return mk_fail(MK_ERR_UNSUPPORTED,
                       "%s: llama.rope.dimension_count = %d but the head size is %d: partial "
                       "rotary embeddings are not supported", path, rope_dim, c->head_dim);
    /* vocabulary: the key, else the token list, else token_embd's rows */
    uint64_t nv = 0;
    if (mk_gguf_get_u64(g, "llama.vocab_size", &nv) != MK_OK) {
        mk_clear_error();
        long k = mk_gguf_find(g, "tokenizer.ggml.tokens");
        if (k >= 0 && mk_gguf_kv_type(g, (size_t)k) == MK_GGUF_ARRAY) nv = mk_gguf_kv_arr_n(g, (size_t)k);
        const mk_tensor_view *te = mk_gguf_find_tensor(g, "token_embd.weight");
        if (nv == 0 && te && te->n_dims == 2) nv = (uint64_t)te->shape[0];
    }
    if (nv == 0) return mk_fail(MK_ERR_FORMAT, "%s: cannot tell the vocabulary size (no llama.vocab_size, token list or token_embd.weight)", path);
    if ((rc = check_int(path, "vocabulary size", (int64_t)(nv > MAX_VOCAB ? MAX_VOCAB + 1 : nv),
                        1, MAX_VOCAB, &c->n_vocab)))
        return rc;
    if ((rc = gg_float(g, path, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &c->norm_eps)))
        return rc;
    if ((rc = gg_float(g, path, "llama.rope.freq_base", 10000.0f, &c->rope_theta))) return rc;
    /* rope scaling: "none", "linear"; Llama-3.1 stores its factors as the
     * rope_freqs.weight tensor (read with the weights) */
    const char *st;
    size_t slen;
    if (mk_gguf_get_str(g, "llama.rope.scaling.type", &st, &slen) == MK_OK) {
        if (slen == 6 && memcmp(st, "linear", 6) == 0) {
            c->rope_scaling = MK_ROPE_SCALING_LINEAR;
            if ((rc = gg_float(g, path, "llama.rope.scaling.factor", 1.0f, &c->rope_factor)))
                return rc;
            if (!(c->rope_factor > 0))
                return mk_fail(MK_ERR_FORMAT, "%s: llama.rope.scaling.factor must be > 0", path);
        } else if (!(slen == 4 && memcmp(st, "none", 4) == 0)) {
            return mk_fail(MK_ERR_UNSUPPORTED,
                           "%s: rope scaling type '%.*s' is not supported (none, linear, "
                           "or Llama-3.1 rope_freqs.weight)", path, (int)(slen > 32 ? 32 : slen), st);
        }
    } else {
        mk_clear_error();
    }
    c->rope_interleaved = 1;
    c->tied_embeddings = mk_gguf_find_tensor(g, "output.weight") == NULL;
    return MK_OK;
}

static int js_int(const cJSON *o, const char *key, const char *label, int required, int dflt,
                  int64_t lo, int64_t hi, int *dst) {
    int64_t v = dflt;
    int rc = required ? mk_json_get_int(o, key, label, "", &v)
                      : mk_json_get_int_opt(o, key, label, "", &v);
    if (rc) return rc;
    return check_int(label, key, v, lo, hi, dst);
}

static int config_from_json(mk_llama *m, const char *json, const char *label) {
    mk_llama_config *c = &m->c;
    cJSON *root = NULL;
    int rc = mk_json_parse(json, strlen(json), label, &root);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: not a JSON object", label);
        goto fail;
    }
    /* architecture: LlamaForCausalLM, or model_type "llama" */
    int ok = 0;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *mt = NULL;
    if ((rc = mk_json_get_str_opt(root, "model_type", label, "", &mt))) goto fail;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0) {
        const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
        if (!cJSON_IsString(a0)) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: architectures[0] is not a string", label);
            goto fail;
        }
        if (strcmp(a0->valuestring, "LlamaForCausalLM") != 0) {
            rc = mk_fail(MK_ERR_UNSUPPORTED,
                         "%s: architecture '%.64s' is not supported (only LlamaForCausalLM)",
                         label, a0->valuestring);
            goto fail;
        }
        ok = 1;
    }
    if (mt && strcmp(mt, "llama") != 0) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: model_type '%.64s' is not supported (only llama)",
                     label, mt);
        goto fail;
    }
    if (!ok && !mt) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: neither architectures nor model_type says llama", label);
        goto fail;
    }
    if ((rc = js_int(root, "vocab_size", label, 1, 0, 1, MAX_VOCAB, &c->n_vocab))) goto fail;
    if ((rc = js_int(root, "hidden_size", label, 1, 0, 1, MAX_DIM, &c->dim))) goto fail;
    if ((rc = js_int(root, "num_hidden_layers", label, 1, 0, 1, 4096, &c->n_layers))) goto fail;
    if ((rc = js_int(root, "num_attention_heads", label, 1, 0, 1, 4096, &c->n_heads))) goto fail;
    if ((rc = js_int(root, "num_key_value_heads", label, 0, c->n_heads, 1, 4096, &c->n_kv_heads)))
        goto fail;
    if ((rc = js_int(root, "intermediate_size", label, 1, 0, 1, MAX_DIM, &c->ffn_dim))) goto fail;
    if ((rc = js_int(root, "max_position_embeddings", label, 0, 2048, 1, 1 << 24, &c->n_ctx)))
        goto fail;
    if ((rc = js_int(root, "head_dim", label, 0, c->dim / c->n_heads ? c->dim / c->n_heads : 1, 1,
                     65536, &c->head_dim)))
        goto fail;
    double eps = 1e-6, theta = 10000.0;
    if ((rc = mk_json_get_num_opt(root, "rms_norm_eps", label, "", &eps))) goto fail;
    if ((rc = mk_json_get_num_opt(root, "rope_theta", label, "", &theta))) goto fail;
    if (!(eps >= 0 && eps < 1) || !(theta > 0 && theta < 1e30)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: rms_norm_eps or rope_theta out of range", label);
        goto fail;
    }
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    int tied = 0;
    if ((rc = mk_json_get_bool_opt(root, "tie_word_embeddings", label, "", &tied))) goto fail;
    c->tied_embeddings = tied;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs)) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: rope_scaling is not an object", label);
            goto fail;
        }
        const char *type = NULL;
        if ((rc = mk_json_get_str_opt(rs, "rope_type", label, "rope_scaling", &type))) goto fail;
        if (!type && (rc = mk_json_get_str_opt(rs, "type", label, "rope_scaling", &type))) goto fail;
        double f = 1, lo = 1, hi = 4;
        int64_t orig = 8192;
        if (!type || strcmp(type, "default") == 0) {
            c->rope_scaling = MK_ROPE_SCALING_NONE;
        } else if (strcmp(type, "linear") == 0 || strcmp(type, "llama3") == 0) {
            if ((rc = mk_json_get_num(rs, "factor", label, "rope_scaling", &f))) goto fail;
            if (!(f > 0 && f < 1e6)) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: rope_scaling.factor must be > 0", label);
                goto fail;
            }
            c->rope_factor = (float)f;
            c->rope_scaling = MK_ROPE_SCALING_LINEAR;
            if (strcmp(type, "llama3") == 0) {
                if ((rc = mk_json_get_num(rs, "low_freq_factor", label, "rope_scaling", &lo)) ||
                    (rc = mk_json_get_num(rs, "high_freq_factor", label, "rope_scaling", &hi)) ||
                    (rc = mk_json_get_int(rs, "original_max_position_embeddings", label,
                                          "rope_scaling", &orig)))
                    goto fail;
                if (!(lo > 0 && hi > lo && orig > 0 && orig < (1 << 24))) {
                    rc = mk_fail(MK_ERR_FORMAT, "%s: rope_scaling needs 0 < low_freq_factor < "
                                 "high_freq_factor and original_max_position_embeddings > 0", label);
                    goto fail;
                }
                c->rope_scaling = MK_ROPE_SCALING_LLAMA3;
                c->rope_low_freq_factor = (float)lo;
                c->rope_high_freq_factor = (float)hi;
                c->rope_orig_ctx = (int)orig;
            }
        } else {
            rc = mk_fail(MK_ERR_UNSUPPORTED,
                         "%s: rope_scaling type '%.32s' is not supported (default, linear, llama3)",
                         label, type);
            goto fail;
        }
    }
    c->rope_interleaved = 0;
    rc = MK_OK;
fail:
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- weights */

static int is_block(mk_dtype t) { return t == MK_Q8_0 || t == MK_Q4_0; }

/* Find a matrix and check its dtype and (rows, cols) shape. */
static int get_mat(mk_llama *m, const char *name, int64_t rows, int64_t cols,
                   const mk_tensor_view **out) {
    const char *path = mk_weights_path(m->w);
    const mk_tensor_view *t = mk_weights_find(m->w, name);
    if (!t) return mk_fail(MK_ERR_NOTFOUND, "%s: tensor %s is missing", path, name);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char got[96] = "";
        size_t o = 0;
        for (int i = 0; i < t->n_dims && i < MK_MAX_DIMS && o < sizeof got - 24; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        return mk_fail(MK_ERR_MISMATCH, "%s: tensor %s has shape [%s], expected [%lld, %lld]",
                       path, name, got, (long long)rows, (long long)cols);
    }
    if (t->dtype != MK_F32 && t->dtype != MK_F16 && t->dtype != MK_BF16 && !is_block(t->dtype))
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: tensor %s has unsupported type %s", path, name,
                       mk_dtype_name(t->dtype));
    if (is_block(t->dtype) && cols % MK_QK != 0)
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: tensor %s is %s but its rows (%lld) are not a "
                       "multiple of %d", path, name, mk_dtype_name(t->dtype), (long long)cols, MK_QK);
    size_t need = mk_dtype_nbytes(t->dtype, (uint64_t)rows * (uint64_t)cols);
    if (need == 0 || t->nbytes < need || !t->data)
        return mk_fail(MK_ERR_FORMAT, "%s: tensor %s holds %zu bytes, expected %zu", path, name,
                       t->nbytes, need);
    if (t->dtype != MK_F32) m->all_f32 = 0;
    m->wbytes += need;
    *out = t;
    return MK_OK;
}

/* A vector (norm weight, rope factors) copied to f32. */
static int get_vec(mk_llama *m, const char *name, int64_t n, float *dst) {
    const char *path = mk_weights_path(m->w);
    const mk_tensor_view *t = mk_weights_find(m->w, name);
    if (!t) return mk_fail(MK_ERR_NOTFOUND, "%s: tensor %s is missing", path, name);
    if (t->n_dims != 1 || t->shape[0] != n)
        return mk_fail(MK_ERR_MISMATCH, "%s: tensor %s has %d dims (first %lld), expected [%lld]",
                       path, name, t->n_dims, (long long)(t->n_dims ? t->shape[0] : 0),
                       (long long)n);
    if (t->dtype != MK_F32 && t->dtype != MK_F16 && t->dtype != MK_BF16)
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: tensor %s has unsupported type %s for a vector",
                       path, name, mk_dtype_name(t->dtype));
    int rc = mk_weights_to_f32(t, dst, (uint64_t)n);
    if (rc) return mk_fail_ctx(rc, "%s: tensor %s", path, name);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return mk_fail(MK_ERR_FORMAT, "%s: tensor %s holds a non-finite value", path, name);
    return MK_OK;
}

static void lname(char *buf, size_t n, int gguf, int l, const char *gg, const char *hf) {
    if (gguf)
        snprintf(buf, n, "blk.%d.%s.weight", l, gg);
    else
        snprintf(buf, n, "model.layers.%d.%s.weight", l, hf);
}

/* Llama-3.1 frequency divisors, from the definition of its rope scaling. */
static void llama3_factors(const mk_llama_config *c, float *ff) {
    int half = c->head_dim / 2;
    double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
    double hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
    for (int i = 0; i < half; i++) {
        double f = pow((double)c->rope_theta, -2.0 * i / c->head_dim);
        double wl = 2 * M_PI / f, nf;
        if (wl < hi_wl) {
            nf = f;
        } else if (wl > lo_wl) {
            nf = f / c->rope_factor;
        } else {
            double s = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                       (c->rope_high_freq_factor - c->rope_low_freq_factor);
            nf = (1 - s) * f / c->rope_factor + s * f;
        }
        ff[i] = (float)(f / nf);
    }
}

static int load_weights(mk_llama *m) {
    mk_llama_config *c = &m->c;
    int gguf = mk_weights_format(m->w) == MK_WFMT_GGUF;
    const char *path = mk_weights_path(m->w);
    int rc;
    if (c->n_heads % c->n_kv_heads != 0)
        return mk_fail(MK_ERR_FORMAT, "%s: %d attention heads are not a multiple of %d key/value heads",
                       path, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return mk_fail(MK_ERR_FORMAT, "%s: head size %d is odd (RoPE rotates pairs)", path, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > MAX_DIM)
        return mk_fail(MK_ERR_FORMAT, "%s: attention width too large", path);
    int64_t D = c->dim, V = c->n_vocab, F = c->ffn_dim, NL = c->n_layers;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    m->all_f32 = 1;
    m->layers = calloc((size_t)NL, sizeof *m->layers);
    m->norms = malloc(((size_t)(2 * NL + 1) * (size_t)D + (size_t)c->head_dim) * sizeof(float));
    if (!m->layers || !m->norms) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    m->out_norm = m->norms + 2 * NL * D;
    if ((rc = get_mat(m, gguf ? "token_embd.weight" : "model.embed_tokens.weight", V, D,
                      &m->tok_emb)))
        return rc;
    const char *oname = gguf ? "output.weight" : "lm_head.weight";
    if (!c->tied_embeddings || mk_weights_find(m->w, oname)) {
        /* a HF file may carry lm_head even when tied: use it then */
        if ((rc = get_mat(m, oname, V, D, &m->output))) return rc;
        c->tied_embeddings = 0;
    } else {
        m->output = m->tok_emb;
    }
    if ((rc = get_vec(m, gguf ? "output_norm.weight" : "model.norm.weight", D, m->out_norm)))
        return rc;
    char nm[160];
    for (int l = 0; l < NL; l++) {
        mk_llama_layer *L = &m->layers[l];
        L->attn_norm = m->norms + (size_t)l * D;
        L->ffn_norm = m->norms + (size_t)(NL + l) * D;
        lname(nm, sizeof nm, gguf, l, "attn_norm", "input_layernorm");
        if ((rc = get_vec(m, nm, D, L->attn_norm))) return rc;
        lname(nm, sizeof nm, gguf, l, "ffn_norm", "post_attention_layernorm");
        if ((rc = get_vec(m, nm, D, L->ffn_norm))) return rc;
        lname(nm, sizeof nm, gguf, l, "attn_q", "self_attn.q_proj");
        if ((rc = get_mat(m, nm, QD, D, &L->wq))) return rc;
        lname(nm, sizeof nm, gguf, l, "attn_k", "self_attn.k_proj");
        if ((rc = get_mat(m, nm, KD, D, &L->wk))) return rc;
        lname(nm, sizeof nm, gguf, l, "attn_v", "self_attn.v_proj");
        if ((rc = get_mat(m, nm, KD, D, &L->wv))) return rc;
        lname(nm, sizeof nm, gguf, l, "attn_output", "self_attn.o_proj");
        if ((rc = get_mat(m, nm, D, QD, &L->wo))) return rc;
        lname(nm, sizeof nm, gguf, l, "ffn_gate", "mlp.gate_proj");
        if ((rc = get_mat(m, nm, F, D, &L->wg))) return rc;
        lname(nm, sizeof nm, gguf, l, "ffn_up", "mlp.up_proj");
        if ((rc = get_mat(m, nm, F, D, &L->wu))) return rc;
        lname(nm, sizeof nm, gguf, l, "ffn_down", "mlp.down_proj");
        if ((rc = get_mat(m, nm, D, F, &L->wd))) return rc;
    }
    c->wtype = m->layers[0].wq->dtype;
    /* rope frequency divisors */
    float *ff = m->out_norm + D;
    int half = c->head_dim / 2;
    int have = 0;
    if (gguf && mk_weights_find(m->w, "rope_freqs.weight")) {
        if ((rc = get_vec(m, "rope_freqs.weight", half, ff))) return rc;
        for (int i = 0; i < half; i++)
            if (!(ff[i] > 0))
                return mk_fail(MK_ERR_FORMAT, "%s: rope_freqs.weight holds a value <= 0", path);
        have = 1;
        if (c->rope_scaling == MK_ROPE_SCALING_NONE) c->rope_scaling = MK_ROPE_SCALING_LLAMA3;
    } else if (c->rope_scaling == MK_ROPE_SCALING_LLAMA3) {
        llama3_factors(c, ff);
        have = 1;
    }
    if (c->rope_scaling == MK_ROPE_SCALING_LINEAR) {
        /* linear: positions divided by the factor = every frequency divided */
        for (int i = 0; i < half; i++) ff[i] = (have ? ff[i] : 1.0f) * c->rope_factor;
        have = 1;
    }
    m->rope_ff = have ? ff : NULL;
    return MK_OK;
}

/* ---------------------------------------------------------------- owned weights */

/* Copy (dequantise) src into dst and make *v a F32 view of it. */
static int own_one(mk_llama *m, const mk_tensor_view **slot, mk_tensor_view *v, float *dst) {
    const mk_tensor_view *src = *slot;
    int rc = mk_weights_to_f32(src, dst, src->n_elems);
    if (rc) return mk_fail_ctx(rc, "%s: tensor %s", mk_weights_path(m->w), src->name);
    *v = *src;
    v->dtype = MK_F32;
    v->data = dst;
    v->nbytes = (size_t)src->n_elems * sizeof(float);
    *slot = v;
    return MK_OK;
}

static int own_weights(mk_llama *m) {
    const mk_llama_config *c = &m->c;
    mk_llama_grads g;
    size_t n = mk_llama_layout(c, NULL, &g);
    size_t D = (size_t)c->dim, F = (size_t)c->ffn_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    m->own = malloc(n * sizeof(float));
    m->own_views = calloc(2 + 7 * (size_t)c->n_layers, sizeof *m->own_views);
    if (!m->own || !m->own_views)
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory for an F32 copy of the weights (%zu MB)",
                       mk_weights_path(m->w), n * sizeof(float) >> 20);
    m->own_n = n;
    mk_llama_layout(c, m->own, &g);
    mk_tensor_view *v = m->own_views;
    int rc;
    int tied = m->output == m->tok_emb;
    if ((rc = own_one(m, &m->tok_emb, v++, g.tok_emb))) return rc;
    if (tied) m->output = m->tok_emb;
    else if ((rc = own_one(m, &m->output, v++, g.output))) return rc;
    for (int l = 0; l < c->n_layers; l++) {
        mk_llama_layer *L = &m->layers[l];
        if ((rc = own_one(m, &L->wq, v++, g.wq + l * QD * D)) ||
            (rc = own_one(m, &L->wk, v++, g.wk + l * KD * D)) ||
            (rc = own_one(m, &L->wv, v++, g.wv + l * KD * D)) ||
            (rc = own_one(m, &L->wo, v++, g.wo + l * D * QD)) ||
            (rc = own_one(m, &L->wg, v++, g.w_gate + l * F * D)) ||
            (rc = own_one(m, &L->wu, v++, g.w_up + l * F * D)) ||
            (rc = own_one(m, &L->wd, v++, g.w_down + l * D * F)))
            return rc;
        memcpy(g.attn_norm + l * D, L->attn_norm, D * sizeof(float));
        memcpy(g.ffn_norm + l * D, L->ffn_norm, D * sizeof(float));
        L->attn_norm = g.attn_norm + l * D;
        L->ffn_norm = g.ffn_norm + l * D;
    }
    memcpy(g.out_norm, m->out_norm, D * sizeof(float));
    m->out_norm = g.out_norm; /* rope_ff keeps pointing into m->norms */
    m->all_f32 = 1;
    m->c.wtype = MK_F32;
    return MK_OK;
}

int mk_llama_params(mk_llama *m, mk_llama_grads *p) {
    memset(p, 0, sizeof *p);
    if (!m->own)
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: the weights are read in place; open the model "
                       "with MK_LLAMA_OWN_WEIGHTS to change them", mk_weights_path(m->w));
    mk_llama_layout(&m->c, m->own, p);
    return MK_OK;
}

/* ---------------------------------------------------------------- saving */

static int save_mat(mk_gguf_writer *w, const char *name, const mk_tensor_view *t, int64_t rows,
                    int64_t cols, int permute_heads, mk_dtype dt, float *buf, float *buf2) {
    int rc = mk_weights_to_f32(t, buf, (uint64_t)(rows * cols));
    if (rc) return rc;
    if (permute_heads) { /* rotate-half rows -> GGUF's interleaved pairs, per head */
        int64_t hs = rows / permute_heads;
        for (int64_t h = 0; h < permute_heads; h++)
            for (int64_t i = 0; i < hs / 2; i++)
                for (int j = 0; j < 2; j++)
                    memcpy(buf2 + (size_t)(h * hs + 2 * i + j) * cols,
                           buf + (size_t)(h * hs + j * (hs / 2) + i) * cols, (size_t)cols * sizeof(float));
        buf = buf2;
    }
    int64_t shape[2] = {rows, cols};
    return mk_gguf_w_tensor(w, name, dt, buf, 2, shape);
}

int mk_llama_save_gguf(const mk_llama *m, const char *path, mk_dtype dt) {
    const mk_llama_config *c = &m->c;
    int64_t D = c->dim, V = c->n_vocab, F = c->ffn_dim, HS = c->head_dim;
    int64_t QD = (int64_t)c->n_heads * HS, KD = (int64_t)c->n_kv_heads * HS;
    if (dt != MK_F32 && dt != MK_F16 && dt != MK_Q8_0 && dt != MK_Q4_0)
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: cannot write matrices as %s", path, mk_dtype_name(dt));
    if ((dt == MK_Q8_0 || dt == MK_Q4_0) && (D % MK_QK || F % MK_QK || QD % MK_QK))
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: %s needs rows that are multiples of %d", path,
                       mk_dtype_name(dt), MK_QK);
    int64_t big = V * D;
    if (F * D > big) big = F * D;
    if (QD * D > big) big = QD * D;
    float *buf = malloc((size_t)big * sizeof(float)), *buf2 = malloc((size_t)big * sizeof(float));
    mk_gguf_writer *w = mk_gguf_writer_new();
    int rc = MK_OK;
    if (!buf || !buf2 || !w) {
        rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((rc = mk_gguf_w_str(w, "general.architecture", "llama")) ||
        (rc = mk_gguf_w_u32(w, "llama.context_length", (uint32_t)c->n_ctx)) ||
        (rc = mk_gguf_w_u32(w, "llama.embedding_length", (uint32_t)D)) ||
        (rc = mk_gguf_w_u32(w, "llama.block_count", (uint32_t)c->n_layers)) ||
        (rc = mk_gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)F)) ||
        (rc = mk_gguf_w_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads)) ||
        (rc = mk_gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads)) ||
        (rc = mk_gguf_w_u32(w, "llama.attention.key_length", (uint32_t)HS)) ||
        (rc = mk_gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)HS)) ||
        (rc = mk_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps)) ||
        (rc = mk_gguf_w_f32(w, "llama.rope.freq_base", c->rope_theta)) ||
        (rc = mk_gguf_w_u32(w, "llama.vocab_size", (uint32_t)V)))
        goto fail;
    int perm = !c->rope_interleaved;
    if ((rc = save_mat(w, "token_embd.weight", m->tok_emb, V, D, 0, dt, buf, buf2))) goto fail;
    if (m->output != m->tok_emb &&
        (rc = save_mat(w, "output.weight", m->output, V, D, 0, dt, buf, buf2)))
        goto fail;
    int64_t sd[1] = {D};
    if ((rc = mk_gguf_w_tensor(w, "output_norm.weight", MK_F32, m->out_norm, 1, sd))) goto fail;
    if (m->rope_ff) { /* frequency divisors, as llama.cpp's rope_freqs.weight */
        int64_t sh[1] = {HS / 2};
        if ((rc = mk_gguf_w_tensor(w, "rope_freqs.weight", MK_F32, m->rope_ff, 1, sh))) goto fail;
    }
    char nm[96];
    for (int l = 0; l < c->n_layers; l++) {
        const mk_llama_layer *L = &m->layers[l];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if ((rc = mk_gguf_w_tensor(w, nm, MK_F32, L->attn_norm, 1, sd))) goto fail;
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if ((rc = mk_gguf_w_tensor(w, nm, MK_F32, L->ffn_norm, 1, sd))) goto fail;
        struct { const char *n; const mk_tensor_view *t; int64_t r, k; int ph; } mats[] = {
            {"attn_q", L->wq, QD, D, perm ? c->n_heads : 0},
            {"attn_k", L->wk, KD, D, perm ? c->n_kv_heads : 0},
            {"attn_v", L->wv, KD, D, 0},
            {"attn_output", L->wo, D, QD, 0},
            {"ffn_gate", L->wg, F, D, 0},
            {"ffn_up", L->wu, F, D, 0},
            {"ffn_down", L->wd, D, F, 0},
        };
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mats[i].n);
            if ((rc = save_mat(w, nm, mats[i].t, mats[i].r, mats[i].k, mats[i].ph, dt, buf, buf2)))
                goto fail;
        }
    }
    rc = mk_gguf_w_write(w, path);
fail:
    if (rc) mk_fail_ctx(rc, "%s", path);
    mk_gguf_writer_free(w);
    free(buf);
    free(buf2);
    return rc;
}

/* ---------------------------------------------------------------- fingerprint */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int make_fingerprint(mk_llama *m) {
    const mk_llama_config *c = &m->c;
    int32_t ints[] = {c->n_vocab, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                      c->ffn_dim, c->tied_embeddings, (int32_t)c->rope_scaling};
    /* FNV-1a 64 with start value 1469598103934665603 (one digit short of the
     * usual offset basis): kept, because fingerprints already written into
     * editors must stay valid; any fixed start value identifies as well. */
    uint64_t h = fnv(1469598103934665603ull, ints, sizeof ints);
    float fl[] = {c->norm_eps, c->rope_theta};
    h = fnv(h, fl, sizeof fl);
    float *row = malloc((size_t)c->dim * sizeof(float));
    if (!row) return mk_fail(MK_ERR_NOMEM, "out of memory");
    int ids[4] = {0, c->n_vocab / 3, 2 * (c->n_vocab / 3), c->n_vocab - 1};
    for (int i = 0; i < 4; i++) {
        mk_llama_embed(m, &ids[i], 1, row);
        h = fnv(h, row, (size_t)c->dim * sizeof(float));
    }
    free(row);
    snprintf(m->fp, sizeof m->fp, "llama-V%d-D%d-L%d-H%d-K%d-F%d-%016llx", c->n_vocab, c->dim,
             c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, (unsigned long long)h);
    return MK_OK;
}

/* ---------------------------------------------------------------- open */

static void load_tokenizer(mk_llama *m) {
    int rc = MK_OK;
    m->tok_err[0] = 0;
    if (mk_weights_gguf(m->w)) {
        const mk_gguf *g = mk_weights_gguf(m->w);
        if (mk_gguf_find(g, "tokenizer.ggml.model") < 0) return;
        rc = mk_tok_from_gguf(g, &m->tok);
    } else if (mk_weights_dir(m->w)) {
        char p[4096];
        const char *dir = mk_weights_dir(m->w);
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        FILE *f = fopen(p, "rb");
        if (!f) {
            snprintf(p, sizeof p, "%s/vocab.json", dir);
            f = fopen(p, "rb");
        }
        if (!f) return;
        fclose(f);
        rc = mk_tok_load(dir, &m->tok);
    }
    if (rc) {
        m->tok = NULL;
        snprintf(m->tok_err, sizeof m->tok_err, "%s", mk_errmsg());
        mk_clear_error();
    }
}

int mk_llama_open_ex(const char *path, int flags, mk_llama **out) {
    *out = NULL;
    mk_llama *m = calloc(1, sizeof *m);
    if (!m) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", path);
    int rc = mk_weights_open(path, &m->w);
    if (rc) goto fail;
    if (mk_weights_gguf(m->w)) {
        rc = config_from_gguf(m, mk_weights_gguf(m->w), path);
    } else if (mk_weights_config_json(m->w)) {
        char label[4200];
        snprintf(label, sizeof label, "%s/config.json",
                 mk_weights_dir(m->w) ? mk_weights_dir(m->w) : path);
        rc = config_from_json(m, mk_weights_config_json(m->w), label);
    } else {
        rc = mk_fail(MK_ERR_FORMAT, "%s: no model configuration (a GGUF file, or config.json "
                     "beside the safetensors)", path);
    }
    if (rc) goto fail;
    if ((rc = load_weights(m))) goto fail;
    if ((flags & MK_LLAMA_OWN_WEIGHTS) && (rc = own_weights(m))) goto fail;
    if ((rc = make_fingerprint(m))) goto fail;
    if (!(flags & MK_LLAMA_NO_TOKENIZER)) load_tokenizer(m);
    *out = m;
    return MK_OK;
fail:
    mk_llama_close(m);
    return rc;
}

int mk_llama_open(const char *path, mk_llama **out) { return mk_llama_open_ex(path, 0, out); }

void mk_llama_close(mk_llama *m) {
    if (!m) return;
    if (m->tok) mk_tok_free(m->tok);
    mk_weights_close(m->w);
    free(m->layers);
    free(m->norms);
    free(m->own);
    free(m->own_views);
    free(m);
}

const mk_llama_config *mk_llama_cfg(const mk_llama *m) { return &m->c; }
const mk_tokenizer *mk_llama_tokenizer(const mk_llama *m) { return m->tok; }
void mk_llama_set_tokenizer(mk_llama *m, mk_tokenizer *tok) {
    if (m->tok && m->tok != tok) mk_tok_free(m->tok);
    m->tok = tok;
    m->tok_err[0] = 0;
}
const char *mk_llama_tokenizer_error(const mk_llama *m) { return m->tok_err; }
const char *mk_llama_fingerprint(const mk_llama *m) { return m->fp; }
size_t mk_llama_weight_bytes(const mk_llama *m) { return m->wbytes; }

int mk_llama_embed(const mk_llama *m, const int32_t *ids, int n, float *out) {
    int rc = mk_llama_check_ids(m, ids, n);
    if (rc) return rc;
    const mk_tensor_view *t = m->tok_emb;
    size_t D = (size_t)m->c.dim;
    size_t rowb = mk_dtype_nbytes(t->dtype, D);
    for (int i = 0; i < n; i++)
        mk_dequantize(t->dtype, (const unsigned char *)t->data + (size_t)ids[i] * rowb,
                      out + (size_t)i * D, D);
    return MK_OK;
}
