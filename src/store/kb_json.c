/* kb_json.c - edit requests from JSON (arrays, JSON lines, MedVersa, MedCF)
 * and the JSON-lines export format of the knowledge base. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/error.h"
#include "../io/mapfile.h"
#include "kb_internal.h"

#define MAX_REQUEST_FILE ((size_t)4 << 30) /* 4 GiB of JSON is far beyond any batch */

const char *mk_edit_status_name(int status) {
    switch (status) {
    case MK_EDIT_ACTIVE: return "active";
    case MK_EDIT_REVERTED: return "reverted";
    case MK_EDIT_SUPERSEDED: return "superseded";
    case MK_EDIT_ANY: return "any";
    default: return "unknown";
    }
}

int mk_edit_status_parse(const char *s) {
    if (!s) return -2;
    if (!strcmp(s, "active")) return MK_EDIT_ACTIVE;
    if (!strcmp(s, "reverted")) return MK_EDIT_REVERTED;
    if (!strcmp(s, "superseded")) return MK_EDIT_SUPERSEDED;
    if (!strcmp(s, "any") || !strcmp(s, "all")) return MK_EDIT_ANY;
    return -2;
}

void mk_edit_request_clear(mk_edit_request *r) {
    if (!r) return;
    free(r->prompt);
    free(r->target_new);
    free(r->subject);
    free(r->ground_truth);
    free(r->rephrase_prompt);
    free(r->locality_prompt);
    free(r->locality_ground_truth);
    free(r->source);
    free(r->created);
    free(r->author);
    free(r->reason);
    free(r->fingerprint);
    memset(r, 0, sizeof *r);
}

void mk_edit_requests_free(mk_edit_request *reqs, int64_t n) {
    if (!reqs) return;
    for (int64_t i = 0; i < n; i++) mk_edit_request_clear(&reqs[i]);
    free(reqs);
}

int mk_kb_check_request(const mk_edit_request *r, const char *name, const char *where) {
    struct { const char *field; const char *v; int required; } f[] = {
        {"prompt", r->prompt, 1},
        {"target_new", r->target_new, 1},
        {"subject", r->subject, 0},
        {"ground_truth", r->ground_truth, 0},
        {"rephrase_prompt", r->rephrase_prompt, 0},
        {"locality_prompt", r->locality_prompt, 0},
        {"locality_ground_truth", r->locality_ground_truth, 0},
        {"source", r->source, 0},
        {"author", r->author, 0},
        {"reason", r->reason, 0},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].v) {
            if (f[i].required)
                return mk_fail(MK_ERR_FORMAT, "%s: %s: missing field '%s'", name, where, f[i].field);
            continue;
        }
        size_t len = strlen(f[i].v);
        if (f[i].required && len == 0)
            return mk_fail(MK_ERR_FORMAT, "%s: %s: field '%s' is empty", name, where, f[i].field);
        if (len > MK_REQ_MAX_FIELD)
            return mk_fail(MK_ERR_FORMAT, "%s: %s: field '%s' is %zu bytes long (limit %d)", name,
                           where, f[i].field, len, MK_REQ_MAX_FIELD);
    }
    return MK_OK;
}

/* ---- parsing ------------------------------------------------------------ */

/* Copy string field `key` of obj into *dst (NULL when absent or null). */
static int take_str(const cJSON *obj, const char *key, char **dst, const char *name,
                    const char *where) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return MK_OK;
    if (!cJSON_IsString(it) || !it->valuestring)
        return mk_fail(MK_ERR_FORMAT, "%s: %s: field '%s' must be a string", name, where, key);
    if (*dst) return MK_OK; /* an earlier alias already gave it */
    if (!(*dst = strdup(it->valuestring)))
        return mk_fail(MK_ERR_NOMEM, "%s: out of memory", name);
    return MK_OK;
}

/* Integer field (a JSON number with no fraction, within int64). */
static int take_int(const cJSON *obj, const char *key, int64_t *dst, int required,
                    const char *name, const char *where) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return mk_fail(MK_ERR_FORMAT, "%s: %s: missing field '%s'", name, where, key);
        return MK_OK;
    }
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(v == floor(v)) || fabs(v) > 9007199254740992.0)
        return mk_fail(MK_ERR_FORMAT, "%s: %s: field '%s' must be an integer", name, where, key);
    *dst = (int64_t)v;
    return MK_OK;
}

static int parse_object(const cJSON *obj, int flags, const char *name, const char *where,
                        mk_edit_request *r) {
    int rc;
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(obj))
        return mk_fail(MK_ERR_FORMAT, "%s: %s: expected a JSON object {\"prompt\": ..., \"target_new\": ...}",
                       name, where);
    if ((rc = take_str(obj, "prompt", &r->prompt, name, where)) ||
        (rc = take_str(obj, "target_new", &r->target_new, name, where)) ||
        (rc = take_str(obj, "subject", &r->subject, name, where)) ||
        (rc = take_str(obj, "subject_name", &r->subject, name, where)) ||
        (rc = take_str(obj, "ground_truth", &r->ground_truth, name, where)) ||
        (rc = take_str(obj, "rephrase_prompt", &r->rephrase_prompt, name, where)) ||
        (rc = take_str(obj, "locality_prompt", &r->locality_prompt, name, where)) ||
        (rc = take_str(obj, "locality_ground_truth", &r->locality_ground_truth, name, where)) ||
        (rc = take_str(obj, "source", &r->source, name, where)))
        return rc;
    /* MedCF / MedFE: several locality probes; keep the first one present. */
    if (!r->locality_prompt) {
        static const char *kinds[] = {"target", "mapping", "struc", "tokenSem", "topic"};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !r->locality_prompt; i++) {
            char kp[64], kg[64];
            snprintf(kp, sizeof kp, "locality_%s_prompt", kinds[i]);
            snprintf(kg, sizeof kg, "locality_%s_ground_truth", kinds[i]);
            if ((rc = take_str(obj, kp, &r->locality_prompt, name, where))) return rc;
            if (r->locality_prompt && (rc = take_str(obj, kg, &r->locality_ground_truth, name, where)))
                return rc;
        }
    }
    if (flags & MK_REQ_EXPORT) {
        char *status = NULL;
        if ((rc = take_int(obj, "id", &r->id, 1, name, where)) ||
            (rc = take_int(obj, "superseded_by", &r->superseded_by, 0, name, where)) ||
            (rc = take_int(obj, "batch", &r->batch, 0, name, where)) ||
            (rc = take_str(obj, "created", &r->created, name, where)) ||
            (rc = take_str(obj, "author", &r->author, name, where)) ||
            (rc = take_str(obj, "reason", &r->reason, name, where)))
            return rc;
        if (r->id <= 0)
            return mk_fail(MK_ERR_FORMAT, "%s: %s: field 'id' must be a positive integer", name, where);
        if (r->superseded_by < 0)
            return mk_fail(MK_ERR_FORMAT, "%s: %s: field 'superseded_by' must be a positive integer",
                           name, where);
        /* status last: nothing may return between its copy and its free */
        if ((rc = take_str(obj, "status", &status, name, where))) return rc;
        r->status = status ? mk_edit_status_parse(status) : MK_EDIT_ACTIVE;
        int bad = r->status < 0;
        if (bad)
            mk_fail(MK_ERR_FORMAT, "%s: %s: field 'status' is '%s' (expected active, reverted or superseded)",
                    name, where, status);
        free(status);
        if (bad) return MK_ERR_FORMAT;
        if (r->created && strlen(r->created) > 64)
            return mk_fail(MK_ERR_FORMAT, "%s: %s: field 'created' is too long", name, where);
    }
    return mk_kb_check_request(r, name, where);
}

/* 1-based line of byte offset off in buf. */
static int64_t line_of(const char *buf, size_t off) {
    int64_t line = 1;
    for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
    return line;
}

typedef struct { int64_t id; int64_t idx; } id_idx;
static int cmp_id(const void *a, const void *b) {
    const id_idx *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int mk_edit_requests_parse(const char *buf, size_t len, const char *name, int flags,
                           mk_edit_request **reqs_out, int64_t *n_out) {
    *reqs_out = NULL;
    *n_out = 0;
    mk_edit_request *reqs = NULL;
    int64_t n = 0, cap = 0;
    int64_t *lines = NULL; /* (n) where each request came from (line, or index) */
    cJSON *root = NULL;
    int rc = MK_OK, is_array = 0;
    char where[64];
    size_t p = 0;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) p = 3; /* UTF-8 byte-order mark */
    while (p < len && (buf[p] == ' ' || buf[p] == '\t' || buf[p] == '\r' || buf[p] == '\n')) p++;
    if (p == len) return mk_fail(MK_ERR_FORMAT, "%s: no edit requests (the file is empty)", name);
    if (memchr(buf, 0, len))
        return mk_fail(MK_ERR_FORMAT, "%s: contains a NUL byte at line %lld (not a JSON text file)",
                       name, (long long)line_of(buf, (size_t)((const char *)memchr(buf, 0, len) - buf)));
    if (buf[p] == '[') {
        is_array = 1;
        const char *end = NULL;
        root = cJSON_ParseWithLengthOpts(buf + p, len - p, &end, 0);
        if (!root) {
            const char *e = cJSON_GetErrorPtr();
            size_t off = e && e >= buf && e <= buf + len ? (size_t)(e - buf) : len;
            rc = mk_fail(MK_ERR_FORMAT, "%s: malformed JSON at line %lld", name,
                         (long long)line_of(buf, off));
            goto fail;
        }
        size_t q = end ? (size_t)(end - buf) : len;
        while (q < len && (buf[q] == ' ' || buf[q] == '\t' || buf[q] == '\r' || buf[q] == '\n')) q++;
        if (q < len) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: text after the JSON array at line %lld", name,
                         (long long)line_of(buf, q));
            goto fail;
        }
        cap = cJSON_GetArraySize(root);
        if (cap == 0) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: no edit requests (the array is empty)", name);
            goto fail;
        }
        reqs = calloc((size_t)cap, sizeof *reqs);
        lines = calloc((size_t)cap, sizeof *lines);
        if (!reqs || !lines) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", name); goto fail; }
        const cJSON *it;
        cJSON_ArrayForEach(it, root) {
            snprintf(where, sizeof where, "array index %lld", (long long)n);
            lines[n] = n;
            if ((rc = parse_object(it, flags, name, where, &reqs[n]))) { n++; goto fail; }
            n++;
        }
        cJSON_Delete(root);
        root = NULL;
    } else {
        /* JSON lines: one object per non-blank line. */
        int64_t line = 0;
        size_t s = 0;
        while (s < len) {
            const char *nl = memchr(buf + s, '\n', len - s);
            size_t e = nl ? (size_t)(nl - buf) : len;
            line++;
            size_t a = s, b = e;
            while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
            while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r')) b--;
            s = e + 1;
            if (a == b) continue;
            snprintf(where, sizeof where, "line %lld", (long long)line);
            if (buf[a] != '{') {
                rc = mk_fail(MK_ERR_FORMAT, "%s: %s: expected a JSON object or a JSON array of objects",
                             name, where);
                goto fail;
            }
            const char *end = NULL;
            root = cJSON_ParseWithLengthOpts(buf + a, b - a, &end, 0);
            if (!root || (end && end != buf + b)) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: %s: malformed JSON%s", name, where,
                             root ? " (text after the object; one object per line)" : "");
                goto fail;
            }
            if (n == cap) {
                int64_t nc = cap ? cap * 2 : 64;
                mk_edit_request *nr = realloc(reqs, (size_t)nc * sizeof *nr);
                if (nr) reqs = nr;
                int64_t *nli = nr ? realloc(lines, (size_t)nc * sizeof *nli) : NULL;
                if (nli) lines = nli;
                if (!nr || !nli) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", name); goto fail; }
                cap = nc;
            }
            lines[n] = line;
            rc = parse_object(root, flags, name, where, &reqs[n]);
            n++;
            if (rc) goto fail;
            cJSON_Delete(root);
            root = NULL;
        }
        if (n == 0) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: no edit requests", name);
            goto fail;
        }
    }
    if (flags & MK_REQ_EXPORT) { /* ids unique within the file */
        id_idx *v = malloc((size_t)n * sizeof *v);
        if (!v) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", name); goto fail; }
        for (int64_t i = 0; i < n; i++) v[i] = (id_idx){reqs[i].id, i};
        qsort(v, (size_t)n, sizeof *v, cmp_id);
        for (int64_t i = 1; i < n; i++)
            if (v[i].id == v[i - 1].id) {
                const char *unit = is_array ? "array index" : "line";
                rc = mk_fail(MK_ERR_FORMAT, "%s: %s %lld: id %lld repeats %s %lld", name, unit,
                             (long long)lines[v[i].idx], (long long)v[i].id, unit,
                             (long long)lines[v[i - 1].idx]);
                free(v);
                goto fail;
            }
        free(v);
    }
    free(lines);
    *reqs_out = reqs;
    *n_out = n;
    return MK_OK;
fail:
    cJSON_Delete(root);
    free(lines);
    mk_edit_requests_free(reqs, n);
    return rc;
}

int mk_edit_requests_parse_file_ex(const char *path, int flags, mk_edit_request **reqs,
                                   int64_t *n) {
    *reqs = NULL;
    *n = 0;
    char *buf = NULL;
    size_t len = 0;
    int rc = mk_read_file(path, MAX_REQUEST_FILE, &buf, &len);
    if (rc) return rc;
    rc = mk_edit_requests_parse(buf, len, path, flags, reqs, n);
    free(buf);
    return rc;
}

int mk_edit_requests_parse_file(const char *path, mk_edit_request **reqs, int64_t *n) {
    return mk_edit_requests_parse_file_ex(path, 0, reqs, n);
}

/* ---- export ------------------------------------------------------------- */

static int add_str(cJSON *o, const char *k, const char *v) {
    return !v || cJSON_AddStringToObject(o, k, v) != NULL;
}

char *mk_kb_edit_to_json(const mk_edit_request *e) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = cJSON_AddNumberToObject(o, "id", (double)e->id) &&
             add_str(o, "status", mk_edit_status_name(e->status)) &&
             add_str(o, "prompt", e->prompt) && add_str(o, "target_new", e->target_new) &&
             add_str(o, "subject", e->subject) && add_str(o, "ground_truth", e->ground_truth) &&
             add_str(o, "rephrase_prompt", e->rephrase_prompt) &&
             add_str(o, "locality_prompt", e->locality_prompt) &&
             add_str(o, "locality_ground_truth", e->locality_ground_truth) &&
             add_str(o, "source", e->source) &&
             (!e->superseded_by || cJSON_AddNumberToObject(o, "superseded_by", (double)e->superseded_by)) &&
             cJSON_AddNumberToObject(o, "batch", (double)e->batch) &&
             add_str(o, "created", e->created) && add_str(o, "author", e->author) &&
             add_str(o, "reason", e->reason);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}
