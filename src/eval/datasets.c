/* datasets.c - the five benchmark schemas read into mk_eval_set (see
 * datasets.h). */
#include "datasets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/error.h"
#include "../io/json.h"
#include "../io/mapfile.h"

#define MAX_FILE_BYTES ((size_t)1 << 31) /* 2 GiB: far above any benchmark */

static const char *const format_names[] = {"auto", "medversa", "medcf", "medfe", "zsre",
                                           "counterfact"};

const char *mk_ds_format_name(mk_ds_format f) {
    if ((int)f < 0 || (size_t)f >= sizeof format_names / sizeof format_names[0]) return "?";
    return format_names[f];
}

int mk_ds_format_parse(const char *s) {
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (s && strcmp(s, format_names[i]) == 0) return (int)i;
    return -1;
}

static int has(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k) != NULL; }

mk_ds_format mk_ds_detect(const void *obj) {
    const cJSON *o = obj;
    if (!cJSON_IsObject(o)) return MK_DS_AUTO;
    if (has(o, "src") && has(o, "alt")) return MK_DS_ZSRE;
    if (has(o, "locality_target_prompt") || has(o, "locality_mapping_prompt") ||
        has(o, "locality_struc_prompt"))
        return MK_DS_MEDCF;
    if (has(o, "locality_topic_prompt")) return MK_DS_MEDFE;
    if (has(o, "locality_id") || has(o, "topic_name") || has(o, "subject_name")) return MK_DS_MEDVERSA;
    if (has(o, "locality_prompt")) return MK_DS_COUNTERFACT;
    return MK_DS_AUTO;
}

/* Where we are, for messages. */
typedef struct {
    const char *name;
    int64_t index;
    int64_t line; /* JSON lines: 1-based line; 0 for an array */
} where;

static int field_fail(const where *w, const char *field, const char *what) {
    if (w->line)
        return mk_fail(MK_ERR_FORMAT, "%s: item %lld (line %lld): field \"%s\": %s", w->name,
                       (long long)w->index, (long long)w->line, field, what);
    return mk_fail(MK_ERR_FORMAT, "%s: item %lld: field \"%s\": %s", w->name, (long long)w->index,
                   field, what);
}

/* A copy of the string field `key` of o. required: absent/null is an error;
 * otherwise *out stays NULL. Present strings must be non-empty and bounded. */
static int get_text(const cJSON *o, const char *key, int required, const where *w, char **out) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return required ? field_fail(w, key, "missing") : MK_OK;
    if (!cJSON_IsString(v) || !v->valuestring) return field_fail(w, key, "not a string");
    size_t len = strlen(v->valuestring);
    if (len == 0) return field_fail(w, key, "empty");
    if (len > MK_EVAL_MAX_FIELD) return field_fail(w, key, "longer than 8192 bytes");
    *out = malloc(len + 1);
    if (!*out) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", w->name);
    memcpy(*out, v->valuestring, len + 1);
    return MK_OK;
}

/* ZsRE's answers: a non-empty array whose first element is a string (or a
 * plain string). Optional. */
static int get_answer0(const cJSON *o, const where *w, char **out) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "answers");
    if (!v || cJSON_IsNull(v)) return MK_OK;
    if (cJSON_IsString(v)) return get_text(o, "answers", 0, w, out);
    if (!cJSON_IsArray(v)) return field_fail(w, "answers", "not an array");
    const cJSON *a = cJSON_GetArrayItem(v, 0);
    if (!a) return MK_OK;
    if (!cJSON_IsString(a) || !a->valuestring || !a->valuestring[0])
        return field_fail(w, "answers", "answers[0] is not a non-empty string");
    size_t len = strlen(a->valuestring);
    if (len > MK_EVAL_MAX_FIELD) return field_fail(w, "answers", "answers[0] longer than 8192 bytes");
    if (!(*out = strdup(a->valuestring))) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", w->name);
    return MK_OK;
}

static void item_free(mk_eval_item *it) {
    free(it->prompt);
    free(it->target_new);
    free(it->ground_truth);
    free(it->subject);
    for (int i = 0; i < MK_EVAL_MAX_PROBES; i++) {
        free(it->gen[i].prompt);
        free(it->gen[i].target);
        free(it->loc[i].prompt);
        free(it->loc[i].target);
    }
    memset(it, 0, sizeof *it);
}

/* A probe from two fields; required or skipped when the prompt is absent. */
static int add_probe(const cJSON *o, mk_eval_probe *arr, int *n, const char *pkey,
                     const char *tkey, const char *kind, int required, const where *w) {
    char *p = NULL, *t = NULL;
    int rc = get_text(o, pkey, required, w, &p);
    if (rc) return rc;
    if (!p) {
        /* an answer without its prompt is a malformed probe */
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(o, tkey);
        if (tv && !cJSON_IsNull(tv)) return field_fail(w, pkey, "missing (its answer is present)");
        return MK_OK;
    }
    if (tkey) {
        if ((rc = get_text(o, tkey, 1, w, &t))) {
            free(p);
            return rc;
        }
    }
    arr[*n].prompt = p;
    arr[*n].target = t;
    arr[*n].kind = kind;
    (*n)++;
    return MK_OK;
}

static const char *const medcf_kinds[4] = {"target", "mapping", "struc", "tokenSem"};
static const char *const medfe_kinds[2] = {"topic", "tokenSem"};

static int read_item(const cJSON *o, mk_ds_format fmt, const where *w, mk_eval_item *it) {
    memset(it, 0, sizeof *it);
    int rc;
    if (!cJSON_IsObject(o)) return mk_fail(MK_ERR_FORMAT, "%s: item %lld: not a JSON object", w->name, (long long)w->index);
    if ((rc = mk_json_check_unique(o, w->name, ""))) return mk_fail_ctx(rc, "item %lld", (long long)w->index);
    char key[64], key2[64];
    if (fmt == MK_DS_ZSRE) {
        if ((rc = get_text(o, "src", 1, w, &it->prompt))) goto fail;
        if ((rc = get_text(o, "alt", 1, w, &it->target_new))) goto fail;
        if ((rc = get_text(o, "subject", 0, w, &it->subject))) goto fail;
        if ((rc = get_answer0(o, w, &it->ground_truth))) goto fail;
        if ((rc = add_probe(o, it->gen, &it->n_gen, "rephrase", NULL, "rephrase", 1, w))) goto fail;
        if ((rc = add_probe(o, it->loc, &it->n_loc, "loc", "loc_ans", "locality", 1, w))) goto fail;
    } else {
        if ((rc = get_text(o, "prompt", 1, w, &it->prompt))) goto fail;
        if ((rc = get_text(o, "target_new", 1, w, &it->target_new))) goto fail;
        const char *sk = has(o, "subject") ? "subject" : "subject_name";
        if ((rc = get_text(o, sk, 0, w, &it->subject))) goto fail;
        if (fmt == MK_DS_MEDFE) {
            if (!(it->ground_truth = strdup(it->target_new))) {
                rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", w->name);
                goto fail;
            }
        } else if ((rc = get_text(o, "ground_truth", 0, w, &it->ground_truth))) {
            goto fail;
        }
        if ((rc = add_probe(o, it->gen, &it->n_gen, "rephrase_prompt", NULL, "rephrase", 1, w)))
            goto fail;
        if (fmt == MK_DS_MEDCF || fmt == MK_DS_MEDFE) {
            const char *const *kinds = fmt == MK_DS_MEDCF ? medcf_kinds : medfe_kinds;
            int nk = fmt == MK_DS_MEDCF ? 4 : 2;
            for (int k = 0; k < nk; k++) {
                snprintf(key, sizeof key, "locality_%s_prompt", kinds[k]);
                snprintf(key2, sizeof key2, "locality_%s_ground_truth", kinds[k]);
                /* MedFE needs both probes; MedCF items keep those present */
                if ((rc = add_probe(o, it->loc, &it->n_loc, key, key2, kinds[k],
                                    fmt == MK_DS_MEDFE, w)))
                    goto fail;
            }
            if (it->n_loc == 0) {
                rc = field_fail(w, "locality_target_prompt", "no locality probe (none of "
                                "locality_{target,mapping,struc,tokenSem}_prompt)");
                goto fail;
            }
        } else {
            if ((rc = add_probe(o, it->loc, &it->n_loc, "locality_prompt", "locality_ground_truth",
                                "locality", 1, w)))
                goto fail;
        }
    }
    /* the rephrase probes are scored against target_new */
    for (int g = 0; g < it->n_gen; g++) {
        if (!(it->gen[g].target = strdup(it->target_new))) {
            rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", w->name);
            goto fail;
        }
    }
    return MK_OK;
fail:
    item_free(it);
    return rc;
}

void mk_eval_set_free(mk_eval_set *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) item_free(&s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
}

/* Append one object (grows the array). */
static int push(mk_eval_set *s, int64_t *cap, const cJSON *o, const where *w) {
    if (s->format == MK_DS_AUTO) {
        s->format = mk_ds_detect(o);
        if (s->format == MK_DS_AUTO)
            return mk_fail(MK_ERR_FORMAT, "%s: item %lld: cannot tell the dataset schema from its "
                           "fields; pass --format medversa|medcf|medfe|zsre|counterfact",
                           w->name, (long long)w->index);
    }
    if (s->n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 64;
        mk_eval_item *p = realloc(s->items, (size_t)nc * sizeof *p);
        if (!p) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", w->name);
        s->items = p;
        *cap = nc;
    }
    int rc = read_item(o, s->format, w, &s->items[s->n]);
    if (rc) return rc;
    s->n++;
    return MK_OK;
}

int mk_eval_set_parse(const char *buf, size_t len, const char *name, mk_ds_format fmt,
                      int64_t limit, mk_eval_set *out) {
    memset(out, 0, sizeof *out);
    out->format = fmt;
    int64_t cap = 0;
    int rc = MK_OK;
    cJSON *root = NULL;
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')) i++;
    if (i == len) return mk_fail(MK_ERR_FORMAT, "%s: empty file (expected a JSON array of items)", name);
    if (buf[i] == '[') {
        if ((rc = mk_json_parse(buf, len, name, &root))) goto fail;
        int64_t idx = 0;
        for (const cJSON *o = root->child; o && (limit <= 0 || idx < limit); o = o->next, idx++) {
            where w = {name, idx, 0};
            if ((rc = push(out, &cap, o, &w))) goto fail;
        }
    } else {
        /* JSON lines */
        int64_t line = 0, idx = 0;
        size_t p = 0;
        while (p < len && (limit <= 0 || idx < limit)) {
            const char *nl = memchr(buf + p, '\n', len - p);
            size_t e = nl ? (size_t)(nl - buf) : len;
            line++;
            size_t a = p;
            while (a < e && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
            if (a < e) {
                char label[600];
                snprintf(label, sizeof label, "%s: line %lld", name, (long long)line);
                if ((rc = mk_json_parse(buf + a, e - a, label, &root))) goto fail;
                where w = {name, idx, line};
                if ((rc = push(out, &cap, root, &w))) goto fail;
                cJSON_Delete(root);
                root = NULL;
                idx++;
            }
            p = e + 1;
        }
    }
    if (out->n == 0) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: no items", name);
        goto fail;
    }
    cJSON_Delete(root);
    return MK_OK;
fail:
    cJSON_Delete(root);
    mk_eval_set_free(out);
    return rc;
}

int mk_eval_set_load(const char *path, mk_ds_format fmt, int64_t limit, mk_eval_set *out) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    int rc = mk_read_file(path, MAX_FILE_BYTES, &buf, &len);
    if (rc) return rc;
    rc = mk_eval_set_parse(buf, len, path, fmt, limit, out);
    free(buf);
    return rc;
}
