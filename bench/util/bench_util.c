/* bench_util.c - shared helpers of the benchmark programs (bench_util.h). */
#include "util/bench_util.h"
#include "util/bench_roberta.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "io/safetensors.h"

const char *bench_prog = "bench";

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double bench_loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", bench_prog, what, mk_errmsg());
    exit(1);
}

void *bench_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", bench_prog, n);
        exit(1);
    }
    return p;
}

char *bench_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? bench_xmalloc((size_t)n + 1) : NULL;
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return NULL;
    }
    b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

void bench_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
        fprintf(stderr, "%s: cannot write %s\n", bench_prog, path);
        exit(1);
    }
}

float bench_urand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (float)(int32_t)(x >> 32) * (1.0f / 2147483648.0f);
}

/* GPT-2's byte -> printable code point table (bytes that are printable
 * stay, the others move to 256 + k). */
static void byte_symbols(int cp[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp[b] = keep ? b : 256 + k++;
    }
}

int bench_write_roberta_tokenizer(const char *dir, const char *gpt2_dir, int *real_bpe) {
    char path[1024];
    size_t vlen = 0, mlen = 0;
    snprintf(path, sizeof path, "%s/vocab.json", gpt2_dir);
    char *vj = bench_read_file(path, &vlen);
    snprintf(path, sizeof path, "%s/merges.txt", gpt2_dir);
    char *mt = bench_read_file(path, &mlen);
    cJSON *out = cJSON_CreateObject();
    int V = 0;
    cJSON_AddNumberToObject(out, "<s>", V++);
    cJSON_AddNumberToObject(out, "<pad>", V++);
    cJSON_AddNumberToObject(out, "</s>", V++);
    cJSON_AddNumberToObject(out, "<unk>", V++);
    cJSON *in = vj ? cJSON_Parse(vj) : NULL;
    if (in && mt) {
        /* RoBERTa's layout: GPT-2 entry with id i at 4 + i */
        int n = cJSON_GetArraySize(in);
        const char **name = calloc((size_t)n, sizeof *name);
        const cJSON *e;
        cJSON_ArrayForEach(e, in) {
            int id = (int)e->valuedouble;
            if (id >= 0 && id < n) name[id] = e->string;
        }
        for (int i = 0; i < n; i++)
            if (name[i]) cJSON_AddNumberToObject(out, name[i], V++);
        free(name);
        *real_bpe = 1;
    } else {
        int cp[256];
        byte_symbols(cp);
        for (int b = 0; b < 256; b++) {
            char u[4];
            int c = cp[b];
            if (c < 0x80) {
                u[0] = (char)c;
                u[1] = 0;
            } else {
                u[0] = (char)(0xC0 | (c >> 6));
                u[1] = (char)(0x80 | (c & 0x3F));
                u[2] = 0;
            }
            cJSON_AddNumberToObject(out, u, V++);
        }
        free(mt);
        mt = strdup("#version: 0.2\n");
        mlen = strlen(mt);
        *real_bpe = 0;
    }
    cJSON_AddNumberToObject(out, "<mask>", V++);
    char *txt = cJSON_PrintUnformatted(out);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    bench_write_file(path, txt, strlen(txt));
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    bench_write_file(path, mt, mlen);
    free(txt);
    cJSON_Delete(out);
    cJSON_Delete(in);
    free(vj);
    free(mt);
    return V;
}

void bench_write_roberta_encoder(const char *dir, const mk_enc_config *c) {
    char path[1024];
    char *cj = mk_enc_config_json(c);
    if (!cj) bench_die("config");
    snprintf(path, sizeof path, "%s/config.json", dir);
    bench_write_file(path, cj, strlen(cj));
    free(cj);
    size_t np = mk_enc_n_params(c);
    float *block = bench_xmalloc(np * sizeof(float));
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    mk_enc_params p;
    mk_enc_point(&p, block, c);
    mk_st_writer *w = mk_st_writer_new();
    if (!w) bench_die("writer");
    int nt = mk_enc_n_tensors(c);
    for (int i = 0; i < nt; i++) {
        char name[128], full[160];
        float *data;
        int nd;
        int64_t shape[2];
        mk_enc_tensor(c, &p, i, name, &data, &nd, shape);
        size_t n = (size_t)shape[0] * (nd > 1 ? (size_t)shape[1] : 1);
        size_t nl = strlen(name);
        int is_bias = nl > 5 && !strcmp(name + nl - 5, ".bias");
        int is_ln = strstr(name, "LayerNorm.weight") != NULL;
        for (size_t j = 0; j < n; j++)
            data[j] = is_ln ? 1.0f : is_bias ? 0.0f : 0.0346f * bench_urand(&rng);
        snprintf(full, sizeof full, "roberta.%s", name);
        if (mk_st_w_tensor(w, full, MK_F32, data, nd, shape)) bench_die("writer tensor");
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (mk_st_w_write(w, path)) bench_die("writing the encoder");
    mk_st_writer_free(w);
    free(block);
}
