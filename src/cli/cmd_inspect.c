/* cmd_inspect.c - `medrek inspect PATH`: what a model file holds.
 *
 * Prints the format, the metadata (GGUF: every key with its type and value;
 * safetensors: the __metadata__ pairs of each file), every tensor (name,
 * dtype, shape) and the parameter count. Strings from the file are escaped
 * and truncated: a hostile file must not be able to drive the terminal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../core/dtype.h"
#include "../core/error.h"
#include "../io/gguf.h"
#include "../io/json.h"
#include "../io/safetensors.h"
#include "../io/weights.h"
#include "cli.h"

#define MAX_STR 120      /* bytes of a string value shown */
#define MAX_ARR_STR 40   /* bytes of each string shown inside an array */
#define ARR_SHOWN 8      /* array elements shown */

static const char usage[] =
    "usage: medrek inspect PATH\n"
    "\n"
    "Print what a model file holds: its format, metadata (GGUF key/value\n"
    "pairs with their types; safetensors __metadata__), every tensor's name,\n"
    "dtype and shape, and the total parameter count.\n"
    "\n"
    "  PATH      a .gguf file, a .safetensors file, or a Hugging Face model\n"
    "            directory (config.json + model.safetensors or\n"
    "            model.safetensors.index.json with its shards)\n"
    "  --help    print this text\n"
    "\n"
    "Exit status: 0 when the file is valid, 1 (with the problem on stderr)\n"
    "when it is not, 2 on a usage error.\n";

/* Print len bytes as a quoted string: control characters, quotes and
 * backslashes escaped; invalid UTF-8 shown as \xNN; at most max bytes,
 * cut on a character boundary, with the full length when cut. */
static void put_str(const char *s, size_t len, size_t max) {
    size_t n = len;
    int utf8 = mk_utf8_valid(s, len);
    if (n > max) {
        n = max;
        while (utf8 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) printf("\\x%02x", c);
        else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] < 0xA0) {
            printf("\\u%04x", (unsigned char)s[i + 1]); /* C1 control */
            i++;
        } else putchar(c);
    }
    putchar('"');
    if (n < len) printf("...(%zu bytes)", len);
}

static void put_cstr(const char *s, size_t max) { put_str(s, strlen(s), max); }

/* Names (keys, tensors, paths) print bare when nothing in them needs
 * escaping, else quoted like a value. Returns the bytes printed. */
static size_t put_name(const char *s, size_t len, size_t max) {
    int plain = len > 0 && len <= max && mk_utf8_valid(s, len);
    for (size_t i = 0; plain && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\' ||
            (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] < 0xA0))
            plain = 0;
    }
    if (!plain) {
        put_str(s, len, max);
        return len < max ? len + 2 : max + 2;
    }
    fwrite(s, 1, len, stdout);
    return len;
}

static size_t put_cname(const char *s, size_t max) { return put_name(s, strlen(s), max); }

static void pad(size_t have, size_t want) {
    for (; have < want; have++) putchar(' ');
}

static int is_signed(mk_gguf_type t) {
    return t == MK_GGUF_INT8 || t == MK_GGUF_INT16 || t == MK_GGUF_INT32 || t == MK_GGUF_INT64;
}

static int is_float(mk_gguf_type t) { return t == MK_GGUF_FLOAT32 || t == MK_GGUF_FLOAT64; }

static void put_gguf_value(const mk_gguf *g, size_t i) {
    mk_gguf_type t = mk_gguf_kv_type(g, i);
    int rc = MK_OK;
    if (t == MK_GGUF_STRING) {
        const char *s;
        size_t len;
        if (!(rc = mk_gguf_kv_get_str(g, i, &s, &len))) put_str(s, len, MAX_STR);
    } else if (t == MK_GGUF_BOOL) {
        int b;
        if (!(rc = mk_gguf_kv_get_bool(g, i, &b))) fputs(b ? "true" : "false", stdout);
    } else if (is_float(t)) {
        double d;
        if (!(rc = mk_gguf_kv_get_f64(g, i, &d))) printf("%.9g", d);
    } else if (is_signed(t)) {
        int64_t v;
        if (!(rc = mk_gguf_kv_get_i64(g, i, &v))) printf("%" PRId64, v);
    } else if (t == MK_GGUF_ARRAY) {
        mk_gguf_type et = mk_gguf_kv_arr_type(g, i);
        uint64_t n = mk_gguf_kv_arr_n(g, i);
        fputs("[", stdout);
        for (uint64_t k = 0; k < n && k < ARR_SHOWN; k++) {
            if (k) fputs(", ", stdout);
            if (et == MK_GGUF_STRING) {
                const char *s;
                size_t len;
                if (mk_gguf_arr_str(g, i, k, &s, &len) == MK_OK) put_str(s, len, MAX_ARR_STR);
                else fputs("?", stdout);
            } else if (is_float(et)) {
                double d;
                if (mk_gguf_arr_f64(g, i, k, &d) == MK_OK) printf("%.9g", d);
                else fputs("?", stdout);
            } else if (et == MK_GGUF_UINT64 && mk_gguf_arr_data(g, i)) {
                uint64_t v = 0; /* may exceed INT64_MAX: read the LE bytes */
                const unsigned char *p = (const unsigned char *)mk_gguf_arr_data(g, i) + 8 * k;
                for (int b = 7; b >= 0; b--) v = (v << 8) | p[b];
                printf("%" PRIu64, v);
            } else {
                int64_t v;
                double d;
                if (mk_gguf_arr_i64(g, i, k, &v) == MK_OK) {
                    if (et == MK_GGUF_BOOL) fputs(v ? "true" : "false", stdout);
                    else printf("%" PRId64, v);
                } else if (mk_gguf_arr_f64(g, i, k, &d) == MK_OK) {
                    printf("%.17g", d); /* a uint64 above INT64_MAX */
                } else {
                    fputs("?", stdout);
                }
            }
        }
        if (n > ARR_SHOWN) printf(", ... %" PRIu64 " more", n - ARR_SHOWN);
        fputs("]", stdout);
    } else {
        uint64_t v;
        if (!(rc = mk_gguf_kv_get_u64(g, i, &v))) printf("%" PRIu64, v);
    }
    if (rc) fputs("?", stdout);
}

static void print_gguf_meta(const mk_gguf *g) {
    size_t n = mk_gguf_n_kv(g);
    printf("metadata: %zu entries\n", n);
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *key = mk_gguf_kv_key(g, i, &klen);
        mk_gguf_type t = mk_gguf_kv_type(g, i);
        fputs("  ", stdout);
        put_name(key, klen, MAX_STR);
        if (t == MK_GGUF_ARRAY)
            printf(" %s[%" PRIu64 "] = ", mk_gguf_type_name(mk_gguf_kv_arr_type(g, i)), mk_gguf_kv_arr_n(g, i));
        else
            printf(" %s = ", mk_gguf_type_name(t));
        put_gguf_value(g, i);
        putchar('\n');
    }
}

static void print_st_meta(const mk_st *st, const char *file, int name_it) {
    size_t n = mk_st_n_meta(st);
    if (name_it) {
        const char *base = strrchr(file, '/');
        printf("metadata of ");
        put_cname(base ? base + 1 : file, 4096);
        printf(": %zu entries\n", n);
    } else {
        printf("metadata: %zu entries\n", n);
    }
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        mk_st_meta_at(st, i, &k, &v);
        fputs("  ", stdout);
        put_cname(k, MAX_STR);
        fputs(" = ", stdout);
        put_cstr(v, MAX_STR);
        putchar('\n');
    }
}

static void human(double x, char *buf, size_t n) {
    const char *u[] = {"", "K", "M", "B", "T"};
    int k = 0;
    while (x >= 1000 && k < 4) {
        x /= 1000;
        k++;
    }
    snprintf(buf, n, k ? "%.2f%s" : "%.0f%s", x, u[k]);
}

int cmd_inspect(int argc, char **argv) {
    char *pos[1];
    int npos = 0;
    int prc = cli_parse(argc, argv, NULL, 0, pos, 1, &npos, usage);
    if (prc == 1) return 0;
    if (prc) return prc;
    if (npos != 1) return cli_usage_error("inspect", usage, "give one file or directory to inspect");
    const char *path = pos[0];

    mk_weights *w = NULL;
    int rc = mk_weights_open(path, &w);
    if (rc) return cli_die_lib("inspect", rc);

    fputs("path: ", stdout);
    put_cname(path, 4096);
    putchar('\n');
    mk_wfmt fmt = mk_weights_format(w);
    size_t nf = mk_weights_n_files(w);
    if (fmt == MK_WFMT_GGUF) {
        const mk_gguf *g = mk_weights_gguf(w);
        printf("format: GGUF v%u (alignment %u, data at byte %zu, %zu bytes)\n", mk_gguf_version(g),
               mk_gguf_alignment(g), mk_gguf_data_offset(g), mk_gguf_file_size(g));
        print_gguf_meta(g);
    } else {
        if (fmt == MK_WFMT_HFDIR) printf("format: HF directory with %zu shard%s\n", nf, nf == 1 ? "" : "s");
        else printf("format: safetensors\n");
        if (mk_weights_config_json(w)) {
            fputs("config: ", stdout);
            put_cname(mk_weights_dir(w), 4096);
            printf("/config.json (%zu bytes)\n", strlen(mk_weights_config_json(w)));
        }
        for (size_t f = 0; f < nf; f++) {
            const char *fp;
            const mk_st *st = mk_weights_file(w, f, &fp);
            print_st_meta(st, fp, fmt == MK_WFMT_HFDIR);
        }
    }

    size_t n = mk_weights_n(w);
    uint64_t params = 0, bytes = 0;
    printf("tensors: %zu\n", n);
    size_t width = 0; /* name column, capped so one long name cannot push all */
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(mk_weights_at(w, i)->name);
        if (l > width) width = l < 60 ? l : 60;
    }
    for (size_t i = 0; i < n; i++) {
        const mk_tensor_view *t = mk_weights_at(w, i);
        fputs("  ", stdout);
        pad(put_cname(t->name, 200), width);
        printf("  %-4s [", mk_dtype_name(t->dtype));
        for (int d = 0; d < t->n_dims; d++) printf(d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
        printf("]\n");
        /* Readers bound every tensor by its file's size, so no overflow. */
        params += t->n_elems;
        bytes += t->nbytes;
    }
    size_t nsk = 0;
    for (size_t f = 0; f < nf; f++) nsk += mk_st_n_skipped(mk_weights_file(w, f, NULL));
    if (nsk) {
        printf("skipped (dtype medrek does not compute with): %zu\n", nsk);
        for (size_t f = 0; f < nf; f++) {
            const mk_st *st = mk_weights_file(w, f, NULL);
            for (size_t i = 0; i < mk_st_n_skipped(st); i++) {
                const char *dt;
                int nd;
                const int64_t *sh;
                const char *name = mk_st_skipped(st, i, &dt, &nd, &sh);
                fputs("  ", stdout);
                pad(put_cname(name, 200), width);
                printf("  %-4s [", dt);
                for (int d = 0; d < nd; d++) printf(d ? ", %" PRId64 : "%" PRId64, sh[d]);
                printf("]\n");
            }
        }
    }
    char h1[32], h2[32];
    human((double)params, h1, sizeof h1);
    human((double)bytes, h2, sizeof h2);
    printf("parameters: %" PRIu64 " (%s)\n", params, h1);
    printf("tensor bytes: %" PRIu64 " (%sB)\n", bytes, h2);
    mk_weights_close(w);
    return 0;
}
