/* json.c - strict helpers over cJSON (see json.h). */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"

int mk_utf8_valid(const void *s, size_t len) {
    const uint8_t *p = s;
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (len - i - 1 < n) return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += n + 1;
    }
    return 1;
}

int mk_json_parse(const char *text, size_t len, const char *label, cJSON **out) {
    *out = NULL;
    if (memchr(text, 0, len)) return mk_fail(MK_ERR_FORMAT, "%s: JSON contains a NUL byte", label);
    if (!mk_utf8_valid(text, len)) return mk_fail(MK_ERR_FORMAT, "%s: JSON is not valid UTF-8", label);
    /* cJSON wants a NUL-terminated buffer to be safe on every path. */
    char *buf = malloc(len + 1);
    if (!buf) return mk_fail(MK_ERR_NOMEM, "%s: out of memory parsing JSON (%zu bytes)", label, len);
    memcpy(buf, text, len);
    buf[len] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        free(buf);
        return mk_fail(MK_ERR_FORMAT, "%s: invalid JSON near byte %zu", label, at);
    }
    for (const char *p = end; p < buf + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            size_t at = (size_t)(p - buf);
            free(buf);
            cJSON_Delete(j);
            return mk_fail(MK_ERR_FORMAT, "%s: unexpected bytes after the JSON value at byte %zu", label, at);
        }
    }
    free(buf);
    *out = j;
    return MK_OK;
}

/* "label: path.key" prefix helpers. */
static const char *dot(const char *path) { return path && *path ? "." : ""; }
static const char *pth(const char *path) { return path ? path : ""; }

static uint64_t json_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int mk_json_check_unique(const cJSON *obj, const char *label, const char *path) {
    size_t n = 0;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next) n++;
    if (n < 2) return MK_OK;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    const cJSON **slot = calloc(cap, sizeof *slot);
    if (!slot) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
    int rc = MK_OK;
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        size_t h = (size_t)json_hash(k) & (cap - 1);
        while (slot[h] && strcmp(slot[h]->string ? slot[h]->string : "", k)) h = (h + 1) & (cap - 1);
        if (slot[h]) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: %s%skey \"%.200s\" appears more than once", label,
                         pth(path), *pth(path) ? ": " : "", k);
            break;
        }
        slot[h] = c;
    }
    free(slot);
    return rc;
}

int mk_json_int_value(const cJSON *item, const char *label, const char *what, int64_t *v) {
    if (!cJSON_IsNumber(item))
        return mk_fail(MK_ERR_FORMAT, "%s: %s must be an integer", label, what);
    double d = item->valuedouble;
    /* 2^53: beyond it a double no longer holds every integer exactly. */
    if (!isfinite(d) || d != floor(d) || fabs(d) >= 9007199254740992.0)
        return mk_fail(MK_ERR_FORMAT, "%s: %s must be an integer below 2^53, got %g", label, what, d);
    *v = (int64_t)d;
    return MK_OK;
}

static const cJSON *field(const cJSON *obj, const char *key) {
    if (!cJSON_IsObject(obj)) return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(it) ? NULL : it;
}

static int missing(const char *label, const char *path, const char *key) {
    return mk_fail(MK_ERR_NOTFOUND, "%s: %s%s%s is missing", label, pth(path), dot(path), key);
}

static int get_int(const cJSON *obj, const char *key, const char *label, const char *path,
                   int64_t *v, int opt) {
    const cJSON *it = field(obj, key);
    if (!it) return opt ? MK_OK : missing(label, path, key);
    char what[256];
    snprintf(what, sizeof what, "%s%s%s", pth(path), dot(path), key);
    return mk_json_int_value(it, label, what, v);
}

int mk_json_get_int(const cJSON *obj, const char *key, const char *label, const char *path,
                    int64_t *v) {
    return get_int(obj, key, label, path, v, 0);
}

int mk_json_get_int_opt(const cJSON *obj, const char *key, const char *label,
                        const char *path, int64_t *v) {
    return get_int(obj, key, label, path, v, 1);
}

static int get_num(const cJSON *obj, const char *key, const char *label, const char *path,
                   double *v, int opt) {
    const cJSON *it = field(obj, key);
    if (!it) return opt ? MK_OK : missing(label, path, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return mk_fail(MK_ERR_FORMAT, "%s: %s%s%s must be a finite number", label, pth(path),
                       dot(path), key);
    *v = it->valuedouble;
    return MK_OK;
}

int mk_json_get_num(const cJSON *obj, const char *key, const char *label, const char *path,
                    double *v) {
    return get_num(obj, key, label, path, v, 0);
}

int mk_json_get_num_opt(const cJSON *obj, const char *key, const char *label,
                        const char *path, double *v) {
    return get_num(obj, key, label, path, v, 1);
}

int mk_json_get_bool_opt(const cJSON *obj, const char *key, const char *label,
                         const char *path, int *v) {
    const cJSON *it = field(obj, key);
    if (!it) return MK_OK;
    if (!cJSON_IsBool(it))
        return mk_fail(MK_ERR_FORMAT, "%s: %s%s%s must be true or false", label, pth(path),
                       dot(path), key);
    *v = cJSON_IsTrue(it);
    return MK_OK;
}

static int get_str(const cJSON *obj, const char *key, const char *label, const char *path,
                   const char **v, int opt) {
    const cJSON *it = field(obj, key);
    if (!it) return opt ? MK_OK : missing(label, path, key);
    if (!cJSON_IsString(it) || !it->valuestring)
        return mk_fail(MK_ERR_FORMAT, "%s: %s%s%s must be a string", label, pth(path), dot(path),
                       key);
    *v = it->valuestring;
    return MK_OK;
}

int mk_json_get_str(const cJSON *obj, const char *key, const char *label, const char *path,
                    const char **v) {
    return get_str(obj, key, label, path, v, 0);
}

int mk_json_get_str_opt(const cJSON *obj, const char *key, const char *label,
                        const char *path, const char **v) {
    return get_str(obj, key, label, path, v, 1);
}
