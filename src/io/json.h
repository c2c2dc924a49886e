/* json.h - strict helpers over cJSON for the files we read (safetensors
 * headers, config.json, index files).
 *
 * cJSON keeps duplicate keys and turns every number into a double; these
 * helpers refuse what a strict reader must refuse (duplicate keys,
 * fractional or out-of-range integers, wrong types) with a message that
 * names the file and the field path: "cfg.json: rope_scaling.factor: ...".
 * `label` is the file name used in messages; `path` the field path of obj
 * ("" or NULL for the top level).
 */
#ifndef MK_JSON_H
#define MK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Parse len bytes of JSON (need not be NUL-terminated). Only whitespace
 * may follow the value. Refuses invalid UTF-8 and NUL bytes. */
int mk_json_parse(const char *text, size_t len, const char *label, cJSON **out);

/* 1 when the bytes are valid UTF-8 (no overlongs, surrogates or values
 * above U+10FFFF), else 0. */
int mk_utf8_valid(const void *s, size_t len);

/* MK_ERR_FORMAT naming the first duplicated key of object obj. */
int mk_json_check_unique(const cJSON *obj, const char *label, const char *path);

/* The value of an integral JSON number that is exactly representable
 * (|v| < 2^53); MK_ERR_FORMAT otherwise. `what` names it in messages. */
int mk_json_int_value(const cJSON *item, const char *label, const char *what, int64_t *v);

/* Field getters on an object. A missing field is MK_ERR_NOTFOUND (message
 * set), a wrong type or range MK_ERR_FORMAT. The _opt variants leave *v
 * unchanged and return MK_OK when the field is absent or null. */
int mk_json_get_int(const cJSON *obj, const char *key, const char *label, const char *path,
                    int64_t *v);
int mk_json_get_int_opt(const cJSON *obj, const char *key, const char *label,
                        const char *path, int64_t *v);
int mk_json_get_num(const cJSON *obj, const char *key, const char *label, const char *path,
                    double *v);
int mk_json_get_num_opt(const cJSON *obj, const char *key, const char *label,
                        const char *path, double *v);
int mk_json_get_bool_opt(const cJSON *obj, const char *key, const char *label,
                         const char *path, int *v);
/* *v points into the cJSON tree. */
int mk_json_get_str(const cJSON *obj, const char *key, const char *label, const char *path,
                    const char **v);
int mk_json_get_str_opt(const cJSON *obj, const char *key, const char *label,
                        const char *path, const char **v);

#endif
