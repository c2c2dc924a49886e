/* llama_ref.h - helpers of the Llama tests (static, header only): reading
 * the reference files of tools/ref_llama.py, and writing modified copies of
 * a test model (perturbed, broken, or converted to GGUF with the project's
 * writers). */
#ifndef MK_TEST_LLAMA_REF_H
#define MK_TEST_LLAMA_REF_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/llama.h"
#include "util/ref.h"

static inline float *ref_get_any(const mk_st *st, const char *name, size_t *n) {
    return ref_tensor(st, name, n, "tools/ref_llama.py");
}
static inline float *ref_get(const mk_st *st, const char *name, size_t n) {
    return ref_tensor_n(st, name, n, "tools/ref_llama.py");
}

typedef struct {
    int B, Ltot;
    mk_llama_seq seqs[8];
    int32_t *targets; /* (Ltot) */
    float *mask;      /* (Ltot) */
} ref_batch;

static inline void ref_batch_load(ref_batch *rb, const mk_st *st, int D) {
    memset(rb, 0, sizeof *rb);
    char nm[32];
    for (int i = 0; i < 8; i++) {
        snprintf(nm, sizeof nm, "tokens_%d", i);
        if (!mk_st_find(st, nm)) break;
        rb->B++;
    }
    int total = 0;
    for (int i = 0; i < rb->B; i++) {
        size_t n;
        snprintf(nm, sizeof nm, "tokens_%d", i);
        float *t = ref_get_any(st, nm, &n);
        total += (int)n;
        free(t);
    }
    rb->Ltot = total;
    rb->targets = malloc((size_t)total * sizeof(int32_t));
    rb->mask = malloc((size_t)total * sizeof(float));
    int off = 0;
    for (int i = 0; i < rb->B; i++) {
        size_t n;
        snprintf(nm, sizeof nm, "tokens_%d", i);
        float *t = ref_get_any(st, nm, &n);
        int32_t *ids = malloc(n * sizeof(int32_t));
        for (size_t j = 0; j < n; j++) ids[j] = (int32_t)t[j];
        free(t);
        rb->seqs[i].tokens = ids;
        rb->seqs[i].n_tokens = (int)n;
        snprintf(nm, sizeof nm, "targets_%d", i);
        t = ref_get(st, nm, n);
        for (size_t j = 0; j < n; j++) rb->targets[off + j] = (int32_t)t[j];
        free(t);
        snprintf(nm, sizeof nm, "mask_%d", i);
        t = ref_get(st, nm, n);
        memcpy(rb->mask + off, t, n * sizeof(float));
        free(t);
        snprintf(nm, sizeof nm, "prefix_%d", i);
        if (mk_st_find(st, nm)) {
            size_t np;
            rb->seqs[i].prefix = ref_get_any(st, nm, &np);
            rb->seqs[i].n_prefix = (int)(np / (size_t)D);
        }
        off += (int)n;
    }
}

static inline void ref_batch_free(ref_batch *rb) {
    for (int i = 0; i < rb->B; i++) {
        free((void *)rb->seqs[i].tokens);
        free((void *)rb->seqs[i].prefix);
    }
    free(rb->targets);
    free(rb->mask);
}

static inline int ref_copy_text(const char *src, const char *dst) {
    char *buf = NULL;
    size_t len = 0;
    int rc = mk_read_file(src, 1 << 20, &buf, &len);
    if (!rc) rc = mk_write_file_atomic(dst, buf, len);
    free(buf);
    return rc;
}

/* Copy the HF model in src_dir to dst_dir (model.safetensors + config.json),
 * all tensors as F32, with these changes: entry idx of tensor `perturb`
 * moved by delta; tensor `drop` left out (or, when it starts with '!',
 * written with one row too few); config.json replaced by `config`. */
static inline int ref_write_variant(const char *src_dir, const char *dst_dir, const char *perturb,
                             size_t idx, float delta, const char *drop, const char *config) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", src_dir);
    mk_st *st = NULL;
    int rc = mk_st_open(p, &st);
    if (rc) return rc;
    mk_st_writer *w = mk_st_writer_new();
    for (size_t i = 0; i < mk_st_n_tensors(st) && !rc; i++) {
        const mk_tensor_view *t = mk_st_tensor(st, i);
        int misshape = drop && drop[0] == '!' && strcmp(drop + 1, t->name) == 0;
        if (drop && strcmp(drop, t->name) == 0) continue;
        float *d = malloc(t->n_elems * sizeof(float));
        rc = mk_weights_to_f32(t, d, t->n_elems);
        if (perturb && strcmp(perturb, t->name) == 0) d[idx] += delta;
        int64_t shape[MK_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (misshape) shape[0] -= 1;
        if (!rc) rc = mk_st_w_tensor(w, t->name, MK_F32, d, t->n_dims, shape);
        free(d);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dst_dir);
    if (!rc) rc = mk_st_w_write(w, p);
    mk_st_writer_free(w);
    mk_st_close(st);
    if (rc) return rc;
    char q[1024];
    snprintf(q, sizeof q, "%s/config.json", dst_dir);
    if (config) return mk_write_file_atomic(q, config, strlen(config));
    snprintf(p, sizeof p, "%s/config.json", src_dir);
    return ref_copy_text(p, q);
}

/* Write the HF model in src_dir as a GGUF file with our writer: Q/K rows
 * permuted for interleaved RoPE, matrices stored as mtype (norms F32),
 * general.architecture = arch; tensor `drop` left out; tensor `as_q8` (a
 * norm) stored as Q8_0. */
static inline int ref_write_gguf(const char *src_dir, const char *path, const char *arch,
                          const char *drop, const char *as_q8, mk_dtype mtype) {
    mk_llama *m = NULL;
    int rc = mk_llama_open_ex(src_dir, MK_LLAMA_NO_TOKENIZER, &m);
    if (rc) return rc;
    const mk_llama_config c = *mk_llama_cfg(m);
    mk_llama_close(m);
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", src_dir);
    mk_st *st = NULL;
    if ((rc = mk_st_open(p, &st))) return rc;
    mk_gguf_writer *w = mk_gguf_writer_new();
    rc = mk_gguf_w_str(w, "general.architecture", arch);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.context_length", (uint32_t)c.n_ctx);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.embedding_length", (uint32_t)c.dim);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.block_count", (uint32_t)c.n_layers);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)c.ffn_dim);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.attention.head_count", (uint32_t)c.n_heads);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)c.n_kv_heads);
    if (!rc) rc = mk_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", c.norm_eps);
    if (!rc) rc = mk_gguf_w_f32(w, "llama.rope.freq_base", c.rope_theta);
    if (!rc) rc = mk_gguf_w_u32(w, "llama.vocab_size", (uint32_t)c.n_vocab);
    static const char *map[][2] = {
        {"input_layernorm", "attn_norm"}, {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"}, {"mlp.down_proj", "ffn_down"}};
    for (size_t i = 0; i < mk_st_n_tensors(st) && !rc; i++) {
        const mk_tensor_view *t = mk_st_tensor(st, i);
        char name[256] = "";
        int nh = 0, l = -1;
        char rest[200];
        if (strcmp(t->name, "model.embed_tokens.weight") == 0) snprintf(name, sizeof name, "token_embd.weight");
        else if (strcmp(t->name, "model.norm.weight") == 0) snprintf(name, sizeof name, "output_norm.weight");
        else if (strcmp(t->name, "lm_head.weight") == 0) snprintf(name, sizeof name, "output.weight");
        else if (sscanf(t->name, "model.layers.%d.%199s", &l, rest) == 2) {
            size_t rl = strlen(rest);
            if (rl > 7) rest[rl - 7] = 0; /* drop ".weight" */
            for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
                if (strcmp(rest, map[k][0]) == 0) snprintf(name, sizeof name, "blk.%d.%s.weight", l, map[k][1]);
            if (strcmp(rest, "self_attn.q_proj") == 0) nh = c.n_heads;
            if (strcmp(rest, "self_attn.k_proj") == 0) nh = c.n_kv_heads;
        }
        if (!name[0] || (drop && strcmp(drop, name) == 0)) continue;
        float *d = malloc(t->n_elems * sizeof(float));
        rc = mk_weights_to_f32(t, d, t->n_elems);
        if (nh) { /* per head: rows [first half; second half] -> interleaved pairs */
            int64_t rows = t->shape[0], cols = t->shape[1], hs = rows / nh;
            float *o = malloc(t->n_elems * sizeof(float));
            for (int h = 0; h < nh; h++)
                for (int64_t i2 = 0; i2 < hs / 2; i2++)
                    for (int j = 0; j < 2; j++)
                        memcpy(o + (size_t)(h * hs + 2 * i2 + j) * cols,
                               d + (size_t)(h * hs + j * hs / 2 + i2) * cols, (size_t)cols * sizeof(float));
            free(d);
            d = o;
        }
        mk_dtype dt = t->n_dims == 1 ? MK_F32 : mtype;
        if (as_q8 && strcmp(as_q8, name) == 0) dt = MK_Q8_0;
        if (!rc) rc = mk_gguf_w_tensor(w, name, dt, d, t->n_dims, t->shape);
        free(d);
    }
    if (!rc) rc = mk_gguf_w_write(w, path);
    mk_gguf_writer_free(w);
    mk_st_close(st);
    return rc;
}

/* Overwrite the GGML type field of tensor `name` in a GGUF file. */
static inline int ref_patch_gguf_type(const char *path, const char *name, uint32_t type) {
    char *buf = NULL;
    size_t len = 0;
    int rc = mk_read_file(path, 64u << 20, &buf, &len);
    if (rc) return rc;
    size_t nl = strlen(name);
    rc = MK_ERR_NOTFOUND;
    for (size_t i = 8; i + nl + 4 <= len; i++) {
        uint64_t sl;
        memcpy(&sl, buf + i - 8, 8);
        if (sl == nl && memcmp(buf + i, name, nl) == 0) {
            size_t o = i + nl;
            uint32_t nd;
            memcpy(&nd, buf + o, 4);
            o += 4 + 8 * (size_t)nd;
            if (o + 4 > len) break;
            memcpy(buf + o, &type, 4);
            rc = mk_write_file_atomic(path, buf, len);
            break;
        }
    }
    free(buf);
    return rc;
}

static inline void ref_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

#endif
