/* test_weights.c - one lookup over a HF directory (sharded fixture from
 * tools/st_fixture.py), a single .safetensors file and a GGUF file, and
 * the directory layouts that must be refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "util/check.h"

#define DATA "tests/data/safetensors/"

static char tmpdir[64];

static void write_bytes(const char *dir, const char *name, const void *buf, size_t len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
}

static void write_text(const char *dir, const char *name, const char *text) {
    write_bytes(dir, name, text, strlen(text));
}

/* A small shard: tensors named by names[] (NULL-terminated), each (2, 3). */
static void write_shard(const char *dir, const char *file, const char *const *names) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    mk_st_writer *w = mk_st_writer_new();
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    for (size_t i = 0; names[i]; i++) CHECK_OK(mk_st_w_tensor(w, names[i], MK_F32, v, 2, sh));
    CHECK_OK(mk_st_w_write(w, p));
    mk_st_writer_free(w);
}

static char *mkdir_case(const char *name) {
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    CHECK(mkdir(p, 0755) == 0);
    return p;
}

static void expect_fail(const char *path, int want, const char *must_contain) {
    mk_weights *w = NULL;
    mk_clear_error();
    int rc = mk_weights_open(path, &w);
    check_count++;
    if (rc == MK_OK || (want && rc != want) || w || !strstr(mk_errmsg(), must_contain)) {
        check_failures++;
        fprintf(stderr, "FAIL %s: rc=%d (want %d), message \"%s\" should contain \"%s\"\n", path, rc, want,
                mk_errmsg(), must_contain);
    } else {
        printf("ok   refused: %s\n", mk_errmsg());
    }
    mk_weights_close(w);
}

static void test_hfdir(void) {
    char *js = check_read_file(DATA "hfdir_ref.json", NULL);
    float *vals = check_read_file(DATA "hfdir_ref.f32", NULL);
    cJSON *ref = cJSON_Parse(js);
    free(js);
    mk_weights *w = NULL;
    CHECK_OK(mk_weights_open(DATA "hfdir", &w));
    if (!w) goto done;
    CHECK(mk_weights_format(w) == MK_WFMT_HFDIR);
    CHECK(!strcmp(mk_weights_dir(w), DATA "hfdir"));
    CHECK(!strcmp(mk_weights_path(w), DATA "hfdir"));
    CHECK(mk_weights_gguf(w) == NULL);
    CHECK(mk_weights_config_json(w) && strstr(mk_weights_config_json(w), "\"llama\""));
    CHECK(mk_weights_n(w) == 4);
    CHECK(mk_weights_n_files(w) == 2);
    const char *fp = NULL;
    CHECK(mk_weights_file(w, 0, &fp) && strstr(fp, "model-00001-of-00002.safetensors"));
    CHECK(mk_weights_file(w, 2, &fp) == NULL && fp == NULL);
    CHECK(mk_weights_at(w, 4) == NULL);
    for (cJSON *e = ref->child; e; e = e->next) {
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        size_t n = (size_t)cJSON_GetObjectItem(e, "n")->valuedouble;
        size_t off = (size_t)cJSON_GetObjectItem(e, "ref_offset")->valuedouble;
        const mk_tensor_view *t = mk_weights_find(w, name);
        CHECK(t != NULL);
        if (!t) continue;
        float *got = calloc(n, sizeof *got);
        CHECK_OK(mk_weights_to_f32(t, got, n));
        char what[160];
        snprintf(what, sizeof what, "hfdir %s", name);
        check_close(what, got, vals + off, n, 0, 0);
        CHECK(mk_weights_to_f32(t, got, n + 1) == MK_ERR_MISMATCH);
        CHECK(strstr(mk_errmsg(), name) != NULL);
        free(got);
    }
    CHECK(mk_weights_find(w, "model.missing.weight") == NULL);
    CHECK(mk_weights_find(w, NULL) == NULL);
    mk_weights_close(w);

    /* A shard opened on its own: a .safetensors file with config.json beside it. */
    CHECK_OK(mk_weights_open(DATA "hfdir/model-00002-of-00002.safetensors", &w));
    if (w) {
        CHECK(mk_weights_format(w) == MK_WFMT_SAFETENSORS);
        CHECK(mk_weights_n(w) == 2 && mk_weights_n_files(w) == 1);
        CHECK(mk_weights_find(w, "lm_head.weight") && !mk_weights_find(w, "model.embed_tokens.weight"));
        CHECK(mk_weights_config_json(w) != NULL);
        CHECK(!strcmp(mk_weights_dir(w), DATA "hfdir"));
        mk_weights_close(w);
    }
done:
    cJSON_Delete(ref);
    free(vals);
}

static void test_layouts(void) {
    const char *ab[] = {"a", "b", NULL}, *cd[] = {"c", "d", NULL}, *c_only[] = {"c", NULL}, *bc[] = {"b", "c", NULL};
    const char *cfg = "{\"model_type\":\"llama\"}";
    char *d;

    /* Single model.safetensors; no config beside a lone file. */
    d = mkdir_case("single");
    write_text(d, "config.json", cfg);
    write_shard(d, "model.safetensors", ab);
    mk_weights *w = NULL;
    CHECK_OK(mk_weights_open(d, &w));
    if (w) {
        CHECK(mk_weights_format(w) == MK_WFMT_HFDIR && mk_weights_n(w) == 2 && mk_weights_n_files(w) == 1);
        mk_weights_close(w);
    }
    d = mkdir_case("lone");
    write_shard(d, "x.safetensors", ab);
    char p[512];
    snprintf(p, sizeof p, "%s/x.safetensors", d);
    CHECK_OK(mk_weights_open(p, &w));
    if (w) {
        CHECK(mk_weights_config_json(w) == NULL && !strcmp(mk_weights_dir(w), d));
        mk_weights_close(w);
    }
    expect_fail(d, MK_ERR_NOTFOUND, "config.json");

    d = mkdir_case("noweights");
    write_text(d, "config.json", cfg);
    expect_fail(d, MK_ERR_NOTFOUND, d);

    d = mkdir_case("badconfig");
    write_text(d, "config.json", "{\"model_type\":");
    write_shard(d, "model.safetensors", ab);
    expect_fail(d, MK_ERR_FORMAT, "config.json");

    /* Sharded layouts. */
    static const struct {
        const char *name, *index;
        int want;
        const char *msg;
    } bad[] = {
        {"escape", "{\"weight_map\":{\"a\":\"../s1.safetensors\",\"b\":\"s1.safetensors\"}}", MK_ERR_FORMAT, "../s1"},
        {"absolute", "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", MK_ERR_FORMAT, "/etc/passwd"},
        {"subdir", "{\"weight_map\":{\"a\":\"x/s1.safetensors\"}}", MK_ERR_FORMAT, "x/s1"},
        {"missing-tensor", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}", MK_ERR_FORMAT, "'zz'"},
        {"wrong-shard", "{\"weight_map\":{\"a\":\"s2.safetensors\",\"c\":\"s2.safetensors\"}}", MK_ERR_FORMAT, "'a'"},
        {"missing-shard", "{\"weight_map\":{\"a\":\"s9.safetensors\"}}", MK_ERR_IO, "s9.safetensors"},
        {"no-weight-map", "{\"metadata\":{}}", MK_ERR_FORMAT, "weight_map"},
        {"weight-map-array", "{\"weight_map\":[\"s1.safetensors\"]}", MK_ERR_FORMAT, "weight_map"},
        {"empty-weight-map", "{\"weight_map\":{}}", MK_ERR_FORMAT, "empty"},
        {"shard-not-string", "{\"weight_map\":{\"a\":1}}", MK_ERR_FORMAT, "\"a\""},
        {"dup-index-key", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"a\":\"s1.safetensors\"}}", MK_ERR_FORMAT, "more than once"},
        {"index-not-json", "{\"weight_map\":", MK_ERR_FORMAT, "index.json"},
        {"dup-across-shards", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s3.safetensors\"}}", MK_ERR_FORMAT, "'b' appears twice"},
        {"corrupt-shard", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"x\":\"bad.safetensors\"}}", MK_ERR_FORMAT, "bad.safetensors"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = mkdir_case(bad[i].name);
        write_text(d, "config.json", cfg);
        write_shard(d, "s1.safetensors", ab);
        write_shard(d, "s2.safetensors", cd);
        write_shard(d, "s3.safetensors", bc);
        write_bytes(d, "bad.safetensors", "\x08\0\0\0\0\0\0\0{\"x\":1} ", 16);
        write_text(d, "model.safetensors.index.json", bad[i].index);
        expect_fail(d, bad[i].want, bad[i].msg);
    }
    /* A valid sharded directory: a shard holding tensors the index does
     * not list still has them indexed; each shard opened once. */
    d = mkdir_case("good-shards");
    write_text(d, "config.json", cfg);
    write_shard(d, "s1.safetensors", ab);
    write_shard(d, "s2.safetensors", c_only);
    write_text(d, "model.safetensors.index.json",
               "{\"metadata\":{\"total_size\":72},\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}");
    CHECK_OK(mk_weights_open(d, &w));
    if (w) {
        CHECK(mk_weights_n(w) == 3 && mk_weights_n_files(w) == 2);
        CHECK(mk_weights_find(w, "a") && mk_weights_find(w, "b") && mk_weights_find(w, "c"));
        mk_weights_close(w);
    }
    expect_fail("/nonexistent/model", MK_ERR_IO, "/nonexistent/model");
    expect_fail("/dev/null", MK_ERR_IO, "/dev/null");

    /* Shards holding an I64 buffer: skipped, still counted as a name. */
    d = mkdir_case("skipped");
    write_text(d, "config.json", cfg);
    write_shard(d, "s1.safetensors", ab);
    const char *hdr = "{\"pos\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}";
    unsigned char file[8 + 64 + 16] = {0};
    size_t hl = strlen(hdr);
    file[0] = (unsigned char)hl;
    memcpy(file + 8, hdr, hl);
    write_bytes(d, "s2.safetensors", file, 8 + hl + 16);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"pos\":\"s2.safetensors\"}}");
    CHECK_OK(mk_weights_open(d, &w));
    if (w) {
        CHECK(mk_weights_n(w) == 2 && !mk_weights_find(w, "pos"));
        CHECK(mk_st_n_skipped(mk_weights_file(w, 1, NULL)) == 1);
        mk_weights_close(w);
    }
    write_bytes(d, "s3.safetensors", file, 8 + hl + 16);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"s1.safetensors\",\"pos\":\"s2.safetensors\",\"x\":\"s3.safetensors\"}}");
    expect_fail(d, MK_ERR_FORMAT, "'x' is listed");
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"s1.safetensors\",\"pos\":\"s2.safetensors\",\"b\":\"s1.safetensors\",\"z\":\"s1.safetensors\"}}");
    expect_fail(d, MK_ERR_FORMAT, "'z' is listed");
    /* The same skipped name in two shards. */
    const char *hdr3 = "{\"pos\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                       "\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}";
    unsigned char file3[8 + 128 + 20] = {0};
    size_t hl3 = strlen(hdr3);
    file3[0] = (unsigned char)hl3;
    memcpy(file3 + 8, hdr3, hl3);
    write_bytes(d, "s3.safetensors", file3, 8 + hl3 + 20);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"s1.safetensors\",\"pos\":\"s2.safetensors\",\"q\":\"s3.safetensors\"}}");
    expect_fail(d, MK_ERR_FORMAT, "'pos' appears twice");
}

/* Many tensors: every name found through the hash. */
static void test_many(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/many.safetensors", tmpdir);
    mk_st_writer *sw = mk_st_writer_new();
    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        char name[64];
        float v = (float)i;
        snprintf(name, sizeof name, "model.layers.%d.weight", i);
        CHECK_OK(mk_st_w_tensor(sw, name, MK_F32, &v, 0, NULL));
    }
    CHECK_OK(mk_st_w_write(sw, p));
    mk_st_writer_free(sw);
    mk_weights *w = NULL;
    CHECK_OK(mk_weights_open(p, &w));
    if (!w) return;
    int ok = mk_weights_n(w) == N;
    for (int i = 0; i < N && ok; i++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%d.weight", i);
        const mk_tensor_view *t = mk_weights_find(w, name);
        float v = -1;
        ok = t && mk_weights_to_f32(t, &v, 1) == MK_OK && v == (float)i && t == mk_weights_at(w, (size_t)i);
    }
    CHECK(ok);
    mk_weights_close(w);
}

static void test_gguf(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/m.gguf", tmpdir);
    mk_gguf_writer *gw = mk_gguf_writer_new();
    float a[64], b[6] = {0.5f, -1.25f, 2, 3, 4, 65504};
    for (int i = 0; i < 64; i++) a[i] = (float)(i - 32) / 8;
    int64_t sa[2] = {2, 32}, sb[2] = {3, 2};
    CHECK_OK(mk_gguf_w_str(gw, "general.architecture", "llama"));
    CHECK_OK(mk_gguf_w_tensor(gw, "tok_embd.weight", MK_Q8_0, a, 2, sa));
    CHECK_OK(mk_gguf_w_tensor(gw, "output_norm.weight", MK_F16, b, 2, sb));
    CHECK_OK(mk_gguf_w_write(gw, p));
    mk_gguf_writer_free(gw);
    mk_weights *w = NULL;
    CHECK_OK(mk_weights_open(p, &w));
    if (!w) return;
    CHECK(mk_weights_format(w) == MK_WFMT_GGUF && mk_weights_gguf(w) != NULL);
    CHECK(mk_weights_config_json(w) == NULL && mk_weights_n_files(w) == 0 && mk_weights_n(w) == 2);
    const mk_tensor_view *t = mk_weights_find(w, "output_norm.weight");
    float got[64];
    CHECK(t && t->n_dims == 2 && t->shape[0] == 3 && t->shape[1] == 2);
    if (t) {
        CHECK_OK(mk_weights_to_f32(t, got, 6));
        check_close("gguf f16", got, b, 6, 0, 0);
    }
    t = mk_weights_find(w, "tok_embd.weight");
    CHECK(t && t->dtype == MK_Q8_0);
    if (t) {
        CHECK_OK(mk_weights_to_f32(t, got, 64));
        check_close("gguf q8_0 (scale 4/127: error <= half a step)", got, a, 64, 4.0 / 127 / 2 + 1e-6, 0);
    }
    mk_weights_close(w);
    /* A corrupt GGUF through the same entry point names the file. */
    FILE *f = fopen(p, "r+b");
    fseek(f, 8, SEEK_SET);
    fputc(0xff, f); /* tensor count */
    fputc(0xff, f);
    fclose(f);
    expect_fail(p, 0, p);
}

/* The strict cJSON helpers (io/json.h) config readers use. */
static void test_json(void) {
    const char *txt = "{\"n\": 12, \"big\": 9007199254740993, \"f\": 0.5, \"s\": \"x\", \"b\": true,"
                      " \"nul\": null, \"sub\": {\"k\": 2.5}}  \n";
    cJSON *j = NULL;
    CHECK_OK(mk_json_parse(txt, strlen(txt), "cfg.json", &j));
    int64_t v = -1;
    double d = -1;
    const char *str = NULL;
    int b = -1;
    CHECK_OK(mk_json_get_int(j, "n", "cfg.json", "", &v));
    CHECK(v == 12);
    CHECK(mk_json_get_int(j, "big", "cfg.json", "", &v) == MK_ERR_FORMAT && strstr(mk_errmsg(), "cfg.json: big"));
    CHECK(mk_json_get_int(j, "f", "cfg.json", "", &v) == MK_ERR_FORMAT);
    CHECK(mk_json_get_int(j, "s", "cfg.json", "", &v) == MK_ERR_FORMAT);
    CHECK(mk_json_get_int(j, "absent", "cfg.json", "", &v) == MK_ERR_NOTFOUND && strstr(mk_errmsg(), "absent"));
    CHECK(mk_json_get_int(j, "nul", "cfg.json", "", &v) == MK_ERR_NOTFOUND);
    v = 7;
    CHECK_OK(mk_json_get_int_opt(j, "absent", "cfg.json", "", &v));
    CHECK_OK(mk_json_get_int_opt(j, "nul", "cfg.json", "", &v));
    CHECK(v == 7);
    CHECK_OK(mk_json_get_num(j, "f", "cfg.json", "", &d));
    CHECK(d == 0.5);
    CHECK(mk_json_get_num(j, "s", "cfg.json", "", &d) == MK_ERR_FORMAT);
    CHECK(mk_json_get_num(cJSON_GetObjectItem(j, "sub"), "k", "cfg.json", "sub", &d) == MK_OK && d == 2.5);
    CHECK(mk_json_get_int(cJSON_GetObjectItem(j, "sub"), "k", "cfg.json", "sub", &v) == MK_ERR_FORMAT);
    CHECK(strstr(mk_errmsg(), "cfg.json: sub.k") != NULL);
    CHECK_OK(mk_json_get_str(j, "s", "cfg.json", "", &str));
    CHECK(str && !strcmp(str, "x"));
    CHECK(mk_json_get_str(j, "n", "cfg.json", "", &str) == MK_ERR_FORMAT);
    CHECK_OK(mk_json_get_bool_opt(j, "b", "cfg.json", "", &b));
    CHECK(b == 1);
    CHECK(mk_json_get_bool_opt(j, "n", "cfg.json", "", &b) == MK_ERR_FORMAT);
    CHECK_OK(mk_json_check_unique(j, "cfg.json", ""));
    cJSON_Delete(j);

    static const char *const bad[] = {"{\"a\":1} x", "{\"a\":", "", "{\"a\":\"\xff\"}", "[1,]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = NULL;
        CHECK(mk_json_parse(bad[i], strlen(bad[i]), "bad.json", &j) == MK_ERR_FORMAT && !j);
        CHECK(strstr(mk_errmsg(), "bad.json") != NULL);
    }
    CHECK(mk_json_parse("{\"a\":\"b\0\"}", 9, "nul.json", &j) == MK_ERR_FORMAT);
    const char *dup = "{\"a\":1,\"b\":2,\"a\":3}";
    CHECK_OK(mk_json_parse(dup, strlen(dup), "dup.json", &j));
    CHECK(mk_json_check_unique(j, "dup.json", "") == MK_ERR_FORMAT && strstr(mk_errmsg(), "\"a\""));
    cJSON_Delete(j);
    CHECK(mk_utf8_valid("\xe2\x82\xac", 3) && !mk_utf8_valid("\xe2\x82", 2) && !mk_utf8_valid("\xf4\x90\x80\x80", 4));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mk_test_weights_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_json();
    test_hfdir();
    test_layouts();
    test_many();
    test_gguf();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return check_summary("test_weights");
}
