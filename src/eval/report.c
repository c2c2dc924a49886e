/* report.c - the JSON report of an evaluation (settings, means, per-item
 * scores with their exact counts and retrievals). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/error.h"
#include "run.h"

static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *pair(int a, int b) {
    cJSON *p = cJSON_CreateArray();
    if (p) {
        cJSON_AddItemToArray(p, cJSON_CreateNumber(a));
        cJSON_AddItemToArray(p, cJSON_CreateNumber(b));
    }
    return p;
}

int mk_eval_report_json(const mk_eval_report_info *info, const mk_eval_result *r, char **json) {
    *json = NULL;
    const mk_eval_opts *o = info->opts;
    cJSON *root = cJSON_CreateObject();
    if (!root) return mk_fail(MK_ERR_NOMEM, "out of memory");
    cJSON *st = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddStringToObject(st, "model", info->model ? info->model : "");
    cJSON_AddStringToObject(st, "editor", info->editor ? info->editor : "");
    cJSON_AddStringToObject(st, "data", info->data ? info->data : "");
    cJSON_AddStringToObject(st, "format", mk_ds_format_name(info->set->format));
    cJSON_AddStringToObject(st, "mode", mk_eval_mode_name(o->mode));
    cJSON_AddNumberToObject(st, "n", (double)o->n);
    cJSON_AddNumberToObject(st, "seed", (double)o->seed);
    cJSON_AddBoolToObject(st, "fluency", o->fluency);
    cJSON_AddNumberToObject(st, "fluency_tokens", o->fluency_tokens);
    cJSON_AddNumberToObject(st, "fluency_top_k", o->fluency_top_k);
    cJSON_AddNumberToObject(st, "retrieve_top_k", o->retr.top_k);
    cJSON_AddNumberToObject(st, "min_sim", o->retr.min_sim);
    cJSON_AddNumberToObject(root, "n_items", (double)r->n);
    cJSON_AddNumberToObject(root, "n_chunks", (double)r->n_chunks);
    cJSON_AddNumberToObject(root, "seconds", r->seconds);
    cJSON *m = cJSON_AddObjectToObject(root, "means_x100");
    cJSON_AddItemToObject(m, "efficacy", num(r->eff));
    cJSON_AddItemToObject(m, "generality", num(r->gen));
    cJSON_AddItemToObject(m, "locality", num(r->loc));
    cJSON_AddItemToObject(m, "fluency", num(r->flu));
    cJSON_AddItemToObject(m, "avg", num(r->avg));
    cJSON *lk = cJSON_AddObjectToObject(m, "locality_by_kind");
    for (int k = 0; k < r->n_loc_kinds; k++) cJSON_AddItemToObject(lk, r->loc_kind[k], num(r->loc_by_kind[k]));
    cJSON *rt = cJSON_AddObjectToObject(root, "retrieval_x100");
    cJSON_AddItemToObject(rt, "prompt_own_edit", num(r->ret_eff));
    cJSON_AddItemToObject(rt, "rephrase_own_edit", num(r->ret_gen));
    cJSON_AddItemToObject(rt, "locality_none", num(r->ret_loc_none));
    cJSON *ord = cJSON_AddArrayToObject(root, "order"); /* evaluation order (dataset indices) */
    for (int64_t i = 0; i < r->n && ord; i++) cJSON_AddItemToArray(ord, cJSON_CreateNumber((double)r->order[i]));
    cJSON *items = cJSON_AddArrayToObject(root, "items");
    for (int64_t i = 0; i < r->n && items; i++) {
        const mk_eval_score *s = &r->items[i];
        const mk_eval_item *it = &info->set->items[i];
        cJSON *x = cJSON_CreateObject();
        if (!x) break;
        cJSON_AddItemToArray(items, x);
        cJSON_AddNumberToObject(x, "index", (double)i);
        cJSON_AddNumberToObject(x, "chunk", (double)s->chunk);
        cJSON_AddItemToObject(x, "efficacy", num(s->eff));
        cJSON_AddItemToObject(x, "generality", num(s->gen));
        cJSON_AddItemToObject(x, "locality", num(s->loc));
        cJSON_AddItemToObject(x, "fluency", num(s->flu));
        cJSON_AddItemToObject(x, "efficacy_counts", pair(s->eff_hits, s->eff_n));
        cJSON_AddNumberToObject(x, "efficacy_retrieved", (double)s->eff_ret);
        cJSON *g = cJSON_AddArrayToObject(x, "generality_probes");
        for (int k = 0; k < s->n_gen && g; k++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddItemToArray(g, p);
            cJSON_AddStringToObject(p, "kind", it->gen[k].kind);
            cJSON_AddItemToObject(p, "counts", pair(s->gen_hits[k], s->gen_n[k]));
            cJSON_AddNumberToObject(p, "retrieved", (double)s->gen_ret[k]);
        }
        cJSON *l = cJSON_AddArrayToObject(x, "locality_probes");
        for (int k = 0; k < s->n_loc && l; k++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddItemToArray(l, p);
            cJSON_AddStringToObject(p, "kind", it->loc[k].kind);
            cJSON_AddItemToObject(p, "counts", pair(s->loc_hits[k], s->loc_n[k]));
            cJSON_AddNumberToObject(p, "retrieved", (double)s->loc_ret[k]);
        }
        if (isfinite(s->flu)) {
            cJSON_AddItemToObject(x, "h2", num(s->h2));
            cJSON_AddItemToObject(x, "h3", num(s->h3));
        }
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return mk_fail(MK_ERR_NOMEM, "out of memory writing the report");
    *json = txt;
    return MK_OK;
}
