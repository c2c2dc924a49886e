/* llama_gen.c - KV cache, incremental decoding, sampling and generation.
 *
 * mk_llama_decode appends positions to the cache in chunks of at most CHUNK
 * rows (a long prompt is prefilled in a few large matmuls; one generated
 * token is a chunk of one row). Keys are stored after RoPE.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/ops.h"
#include "llama_internal.h"

#define CHUNK 256 /* rows per prefill step */

struct mk_llama_kv {
    int n_ctx;    /* capacity in positions */
    int len;      /* positions filled */
    float *k;     /* (NL, n_ctx, NKV*HS) keys after RoPE */
    float *v;     /* (NL, n_ctx, NKV*HS) */
    /* scratch for one chunk of up to CHUNK rows */
    float *x;     /* (CHUNK, D) residual stream */
    float *xn;    /* (CHUNK, D) */
    float *tmp;   /* (CHUNK, D) */
    float *q;     /* (CHUNK, NH*HS) */
    float *ao;    /* (CHUNK, NH*HS) */
    float *g;     /* (CHUNK, F) */
    float *u;     /* (CHUNK, F) */
    float *rstd;  /* (CHUNK) */
    int *pos;     /* (CHUNK) */
    float *att;   /* (NH, rows, Tk), grown on demand */
    size_t att_cap;
    float *scratch;
};

int mk_llama_kv_new(const mk_llama *m, int n_ctx, mk_llama_kv **out) {
    const mk_llama_config *c = &m->c;
    *out = NULL;
    if (n_ctx <= 0 || n_ctx > c->n_ctx) n_ctx = c->n_ctx;
    mk_llama_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return mk_fail(MK_ERR_NOMEM, "llama: out of memory for the KV cache");
    size_t KD = (size_t)c->n_kv_heads * c->head_dim, QD = (size_t)c->n_heads * c->head_dim;
    size_t D = (size_t)c->dim, F = (size_t)c->ffn_dim;
    size_t cache = (size_t)c->n_layers * (size_t)n_ctx * KD;
    if (cache / KD / (size_t)n_ctx != (size_t)c->n_layers || cache > SIZE_MAX / 8) goto nomem;
    kv->n_ctx = n_ctx;
    kv->k = malloc(cache * sizeof(float));
    kv->v = malloc(cache * sizeof(float));
    size_t sn = CHUNK * (3 * D + 2 * QD + 2 * F + 1);
    kv->scratch = malloc(sn * sizeof(float));
    kv->pos = malloc(CHUNK * sizeof(int));
    if (!kv->k || !kv->v || !kv->scratch || !kv->pos) goto nomem;
    float *p = kv->scratch;
    kv->x = p; p += CHUNK * D;
    kv->xn = p; p += CHUNK * D;
    kv->tmp = p; p += CHUNK * D;
    kv->q = p; p += CHUNK * QD;
    kv->ao = p; p += CHUNK * QD;
    kv->g = p; p += CHUNK * F;
    kv->u = p; p += CHUNK * F;
    kv->rstd = p;
    *out = kv;
    return MK_OK;
nomem:
    mk_llama_kv_free(kv);
    return mk_fail(MK_ERR_NOMEM, "llama: out of memory for a KV cache of %d positions", n_ctx);
}

void mk_llama_kv_free(mk_llama_kv *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->scratch);
    free(kv->pos);
    free(kv->att);
    free(kv);
}

int mk_llama_kv_len(const mk_llama_kv *kv) { return kv->len; }

void mk_llama_kv_truncate(mk_llama_kv *kv, int n) {
    if (n >= 0 && n < kv->len) kv->len = n;
}

/* Run T rows (already in kv->x) through every layer at positions
 * kv->len .. kv->len+T-1; appends their keys/values. */
static int run_chunk(const mk_llama *m, mk_llama_kv *kv, int T) {
    const mk_llama_config *c = &m->c;
    int D = c->dim, F = c->ffn_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim;
    int QD = NH * HS, KD = NKV * HS;
    int p0 = kv->len, Tk = p0 + T;
    size_t need = (size_t)NH * T * Tk;
    if (need > kv->att_cap) {
        float *na = realloc(kv->att, need * sizeof(float));
        if (!na) return mk_fail(MK_ERR_NOMEM, "llama: out of memory for attention scores");
        kv->att = na;
        kv->att_cap = need;
    }
    for (int t = 0; t < T; t++) kv->pos[t] = p0 + t;
    size_t TD = (size_t)T * D;
    for (int l = 0; l < c->n_layers; l++) {
        const mk_llama_layer *L = &m->layers[l];
        float *kc = kv->k + (size_t)l * kv->n_ctx * KD; /* (n_ctx, KD) */
        float *vc = kv->v + (size_t)l * kv->n_ctx * KD;
        mk_rmsnorm_forward(kv->xn, kv->rstd, kv->x, L->attn_norm, T, D, c->norm_eps);
        mk_llama_mm(kv->q, kv->xn, L->wq, T, D, QD);
        mk_llama_mm(kc + (size_t)p0 * KD, kv->xn, L->wk, T, D, KD);
        mk_llama_mm(vc + (size_t)p0 * KD, kv->xn, L->wv, T, D, KD);
        mk_rope_forward(kv->q, kv->pos, T, NH, HS, c->rope_theta, m->rope_ff, c->rope_interleaved);
        mk_rope_forward(kc + (size_t)p0 * KD, kv->pos, T, NKV, HS, c->rope_theta, m->rope_ff,
                        c->rope_interleaved);
        mk_attention_forward(kv->ao, kv->att, kv->q, kc, vc, NULL, T, Tk, NH, NKV, HS, p0);
        mk_llama_mm(kv->tmp, kv->ao, L->wo, T, QD, D);
        for (size_t i = 0; i < TD; i++) kv->x[i] += kv->tmp[i];
        mk_rmsnorm_forward(kv->xn, kv->rstd, kv->x, L->ffn_norm, T, D, c->norm_eps);
        mk_llama_mm(kv->g, kv->xn, L->wg, T, D, F);
        mk_llama_mm(kv->u, kv->xn, L->wu, T, D, F);
        mk_swiglu_forward(kv->g, kv->g, kv->u, (size_t)T * F);
        mk_llama_mm(kv->tmp, kv->g, L->wd, T, F, D);
        for (size_t i = 0; i < TD; i++) kv->x[i] += kv->tmp[i];
    }
    kv->len = Tk;
    return MK_OK;
}

int mk_llama_decode(const mk_llama *m, mk_llama_kv *kv, const float *prefix, int n_prefix,
                    const int32_t *tokens, int n_tokens, float *logits) {
    const mk_llama_config *c = &m->c;
    if (n_prefix < 0 || n_tokens < 0 || (n_prefix && !prefix) || (n_tokens && !tokens))
        return mk_fail(MK_ERR_ARG, "llama decode: bad arguments");
    if (n_prefix + n_tokens == 0)
        return mk_fail(MK_ERR_ARG, "llama decode: nothing to decode");
    if ((int64_t)kv->len + n_prefix + n_tokens > kv->n_ctx)
        return mk_fail(MK_ERR_RANGE, "llama decode: %d cached + %d new positions exceed the "
                       "context of %d", kv->len, n_prefix + n_tokens, kv->n_ctx);
    int rc = mk_llama_check_ids(m, tokens, n_tokens);
    if (rc) return rc;
    size_t D = (size_t)c->dim;
    int total = n_prefix + n_tokens, done = 0;
    while (done < total) {
        int T = total - done < CHUNK ? total - done : CHUNK;
        for (int t = 0; t < T; t++) {
            int i = done + t;
            if (i < n_prefix)
                memcpy(kv->x + (size_t)t * D, prefix + (size_t)i * D, D * sizeof(float));
            else
                mk_llama_embed(m, tokens + (i - n_prefix), 1, kv->x + (size_t)t * D);
        }
        if ((rc = run_chunk(m, kv, T))) return rc;
        done += T;
        if (done == total && logits) {
            float *last = kv->x + (size_t)(T - 1) * D;
            mk_rmsnorm_forward(kv->xn, kv->rstd, last, m->out_norm, 1, (int)D, c->norm_eps);
            mk_llama_mm(logits, kv->xn, m->output, 1, (int)D, c->n_vocab);
        }
    }
    return MK_OK;
}

/* ---------------------------------------------------------------- sampling */

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mk_rng_seed(mk_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mk_rng_next(mk_rng *r) { /* xoshiro256** */
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

float mk_rng_uniform(mk_rng *r) { return (float)(mk_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

void mk_gen_params_default(mk_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 32;
    p->temperature = 0;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->seed = 42;
    p->eos_id = -1;
}

typedef struct {
    float v;
    int32_t i;
} cand;

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int32_t mk_sample(float *logits, int V, const mk_gen_params *p, mk_rng *rng) {
    if (V <= 0) return -1;
    if (!(p->temperature > 0)) return argmax(logits, V);
    int k = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    int use_p = p->top_p > 0 && p->top_p < 1;
    float inv_t = 1.0f / p->temperature;
    if (k == V && !use_p) {
        /* plain softmax sampling, no sort */
        float mx = logits[argmax(logits, V)];
        double sum = 0;
        for (int i = 0; i < V; i++) sum += (logits[i] = expf((logits[i] - mx) * inv_t));
        double r = mk_rng_uniform(rng) * sum, acc = 0;
        for (int i = 0; i < V; i++) {
            acc += logits[i];
            if (acc > r) return i;
        }
        return argmax(logits, V);
    }
    cand *cs = malloc((size_t)V * sizeof *cs);
    if (!cs) return argmax(logits, V); /* out of memory: fall back to greedy */
    for (int i = 0; i < V; i++) {
        cs[i].v = logits[i];
        cs[i].i = i;
    }
    qsort(cs, (size_t)V, sizeof *cs, cand_desc);
    double sum = 0, mx = cs[0].v;
    for (int i = 0; i < k; i++) sum += (cs[i].v = (float)exp((cs[i].v - mx) * inv_t));
    int n = k;
    if (use_p) { /* smallest prefix whose mass reaches top_p */
        double acc = 0;
        for (int i = 0; i < k; i++) {
            acc += cs[i].v / sum;
            if (acc >= p->top_p) {
                n = i + 1;
                break;
            }
        }
        sum = 0;
        for (int i = 0; i < n; i++) sum += cs[i].v;
    }
    double r = mk_rng_uniform(rng) * sum, acc = 0;
    int32_t pick = cs[n - 1].i;
    for (int i = 0; i < n; i++) {
        acc += cs[i].v;
        if (acc > r) {
            pick = cs[i].i;
            break;
        }
    }
    free(cs);
    return pick;
}

int mk_llama_generate(const mk_llama *m, const float *prefix, int n_prefix, const int32_t *prompt,
                      int n_prompt, const mk_gen_params *p, int32_t *out, int *n_out,
                      mk_gen_stats *stats) {
    const mk_llama_config *c = &m->c;
    *n_out = 0;
    if (stats) memset(stats, 0, sizeof *stats);
    if (n_prompt < 1 || !prompt)
        return mk_fail(MK_ERR_ARG, "llama generate: the prompt needs at least one token");
    if (p->max_tokens < 0) return mk_fail(MK_ERR_ARG, "llama generate: max_tokens < 0");
    int64_t first = (int64_t)n_prefix + n_prompt;
    if (first > c->n_ctx)
        return mk_fail(MK_ERR_RANGE, "llama generate: %lld prompt positions exceed the context "
                       "of %d", (long long)first, c->n_ctx);
    int rc = mk_llama_check_ids(m, prompt, n_prompt);
    if (rc) return rc;
    int64_t want = first + p->max_tokens;
    int cap = want > c->n_ctx ? c->n_ctx : (int)want;
    mk_llama_kv *kv = NULL;
    float *logits = malloc((size_t)c->n_vocab * sizeof(float));
    if (!logits) return mk_fail(MK_ERR_NOMEM, "llama generate: out of memory");
    if ((rc = mk_llama_kv_new(m, cap, &kv))) goto fail;
    mk_rng rng;
    mk_rng_seed(&rng, p->seed);
    double t0 = mk_llama_now();
    if ((rc = mk_llama_decode(m, kv, prefix, n_prefix, prompt, n_prompt, logits))) goto fail;
    double t1 = mk_llama_now();
    int n = 0;
    while (n < p->max_tokens) {
        int32_t id = mk_sample(logits, c->n_vocab, p, &rng);
        out[n++] = id;
        if (p->on_token && p->on_token(p->ud, id)) break;
        if (id == p->eos_id || n == p->max_tokens || kv->len >= kv->n_ctx) break;
        if ((rc = mk_llama_decode(m, kv, NULL, 0, &id, 1, logits))) goto fail;
    }
    *n_out = n;
    if (stats) {
        stats->n_prompt = (int)first;
        stats->n_generated = n;
        stats->prompt_s = t1 - t0;
        stats->gen_s = mk_llama_now() - t1;
    }
    rc = MK_OK;
fail:
    free(logits);
    mk_llama_kv_free(kv);
    return rc;
}
