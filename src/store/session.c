/* session.c - LLM + editor + knowledge base, checked and wired together. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../text/tokenizer.h"

#define ENCODE_CHUNK 64 /* requests encoded per editor call (progress granularity) */

static void fill_view(mk_session *s) {
    s->rkb.n_rows = s->act.lead + s->act.n;
    s->rkb.R = s->act.R;
    s->rkb.T = s->act.T;
    s->rkb.D = s->act.D;
    s->rkb.keys = s->act.keys;
    s->rkb.prompts = s->act.prompts;
    s->rkb.ids = s->act.ids;
}

int mk_session_reload(mk_session *s) {
    const mk_editor_config *c = &s->ed->cfg;
    mk_kb_active_free(&s->act);
    int rc = s->keys_only ? mk_kb_load_active_keys(s->kb, s->editor_fp, c->R, c->T, c->D, 1, &s->act)
                          : mk_kb_load_active(s->kb, s->editor_fp, c->R, c->T, c->D, 1, &s->act);
    if (rc) return rc;
    /* An empty knowledge base may not know the shape yet: the editor does. */
    s->act.R = c->R;
    s->act.T = c->T;
    s->act.D = c->D;
    if ((rc = mk_editor_prototype(s->ed, s->act.keys))) return rc;
    fill_view(s);
    return MK_OK;
}

int mk_session_open(const char *kb_path, const char *model_path, const char *editor_path,
                    int flags, mk_session **out) {
    *out = NULL;
    mk_session *s = calloc(1, sizeof *s);
    if (!s) return mk_fail(MK_ERR_NOMEM, "out of memory");
    int rc;
    int lflags = (flags & MK_SESSION_NO_LLM_TOKENIZER) ? MK_LLAMA_NO_TOKENIZER : 0;
    if ((rc = mk_llama_open_ex(model_path, lflags, &s->llm))) goto fail;
    if ((rc = mk_editor_load(editor_path, &s->ed))) goto fail;
    const mk_llama_config *lc = mk_llama_cfg(s->llm);
    if ((rc = mk_editor_check_llm(s->ed, lc->dim, mk_llama_fingerprint(s->llm)))) {
        rc = mk_fail_ctx(rc, "%s does not fit %s", editor_path, model_path);
        goto fail;
    }
    s->editor_fp = s->ed->fp; /* computed by mk_editor_load */
    s->keys_only = (flags & MK_SESSION_READONLY) != 0;
    int kflags = (flags & MK_SESSION_READONLY) ? MK_KB_READONLY : MK_KB_CREATE;
    if ((rc = mk_kb_open(kb_path, kflags, &s->kb))) goto fail;
    if (!(flags & MK_SESSION_NO_LOAD) && (rc = mk_session_reload(s))) goto fail;
    *out = s;
    return MK_OK;
fail:
    mk_session_close(s);
    return rc;
}

void mk_session_close(mk_session *s) {
    if (!s) return;
    mk_kb_active_free(&s->act);
    if (s->kb) mk_kb_close(s->kb);
    if (s->ed) mk_editor_free(s->ed);
    if (s->llm) mk_llama_close(s->llm);
    free(s);
}

/* Order of n requests by a length, shortest first: the encoder pads each
 * chunk to its longest sentence, and sorted chunks waste far less (1.3 to
 * 1.5x faster batches measured with bench_edit --sort). */
typedef struct {
    size_t len;
    int64_t i;
} len_idx;

static int cmp_len(const void *a, const void *b) {
    const len_idx *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static len_idx *sorted_order(const mk_edit_request *reqs, int64_t n, int with_target) {
    len_idx *o = malloc((size_t)n * sizeof *o);
    if (!o) return NULL;
    for (int64_t i = 0; i < n; i++) {
        o[i].len = strlen(reqs[i].prompt) + (with_target ? strlen(reqs[i].target_new) : 0);
        o[i].i = i;
    }
    qsort(o, (size_t)n, sizeof *o, cmp_len);
    return o;
}

int mk_session_encode(mk_session *s, const mk_edit_request *reqs, int64_t n, float **keys,
                      float **prompts, mk_progress_fn progress, void *ud) {
    *keys = NULL;
    *prompts = NULL;
    const mk_editor_config *c = &s->ed->cfg;
    size_t R = (size_t)c->R, TD = (size_t)c->T * (size_t)c->D;
    float *k = NULL, *p = NULL, *v = NULL, *kc = NULL, *pc = NULL;
    const char **pr = NULL, **tg = NULL;
    len_idx *ok = NULL, *ov = NULL;
    int rc = MK_OK;
    if (n <= 0) return mk_fail(MK_ERR_ARG, "no edits to encode");
    k = malloc((size_t)n * R * sizeof *k);
    p = malloc((size_t)n * TD * sizeof *p);
    v = malloc((size_t)ENCODE_CHUNK * R * sizeof *v);
    kc = malloc((size_t)ENCODE_CHUNK * R * sizeof *kc);
    pc = malloc((size_t)ENCODE_CHUNK * TD * sizeof *pc);
    pr = malloc(ENCODE_CHUNK * sizeof *pr);
    tg = malloc(ENCODE_CHUNK * sizeof *tg);
    ok = sorted_order(reqs, n, 0);
    ov = sorted_order(reqs, n, 1);
    if (!k || !p || !v || !kc || !pc || !pr || !tg || !ok || !ov) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory encoding %lld edits", (long long)n);
        goto fail;
    }
    /* keys: q head on the prompts, chunks in prompt-length order */
    for (int64_t i0 = 0; i0 < n; i0 += ENCODE_CHUNK) {
        int m = (int)(n - i0 < ENCODE_CHUNK ? n - i0 : ENCODE_CHUNK);
        for (int i = 0; i < m; i++) pr[i] = reqs[ok[i0 + i].i].prompt;
        if ((rc = mk_editor_keys(s->ed, pr, m, kc))) goto fail;
        for (int i = 0; i < m; i++) memcpy(k + (size_t)ok[i0 + i].i * R, kc + (size_t)i * R, R * sizeof *k);
        if (progress) progress(ud, (i0 + m) / 2, n);
    }
    /* values (k head on the knowledge sentences) and their prompts */
    for (int64_t i0 = 0; i0 < n; i0 += ENCODE_CHUNK) {
        int m = (int)(n - i0 < ENCODE_CHUNK ? n - i0 : ENCODE_CHUNK);
        for (int i = 0; i < m; i++) {
            pr[i] = reqs[ov[i0 + i].i].prompt;
            tg[i] = reqs[ov[i0 + i].i].target_new;
        }
        if ((rc = mk_editor_values(s->ed, pr, tg, m, v))) goto fail;
        if ((rc = mk_editor_prompts(s->ed, v, m, pc))) goto fail;
        for (int i = 0; i < m; i++)
            memcpy(p + (size_t)ov[i0 + i].i * TD, pc + (size_t)i * TD, TD * sizeof *p);
        if (progress) progress(ud, (n + i0 + m) / 2, n);
    }
    *keys = k;
    *prompts = p;
    k = p = NULL;
fail:
    free(k);
    free(p);
    free(v);
    free(kc);
    free(pc);
    free(pr);
    free(tg);
    free(ok);
    free(ov);
    return rc;
}

int mk_session_reencode(mk_session *s, const char *author, const char *reason,
                        int64_t *n_done, mk_progress_fn progress, void *ud) {
    mk_edit_request *stale = NULL;
    int64_t n = 0, *ids = NULL;
    float *keys = NULL, *prompts = NULL;
    if (n_done) *n_done = 0;
    int rc = mk_kb_list_stale(s->kb, s->editor_fp, &stale, &n);
    if (rc || n == 0) goto done;
    ids = malloc((size_t)n * sizeof *ids);
    if (!ids) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) ids[i] = stale[i].id;
    if ((rc = mk_session_encode(s, stale, n, &keys, &prompts, progress, ud))) goto done;
    const mk_editor_config *c = &s->ed->cfg;
    mk_kb_vectors vec = {s->editor_fp, c->R, c->T, c->D, keys, prompts};
    if ((rc = mk_kb_set_vectors(s->kb, ids, n, &vec, author, reason))) goto done;
    if (n_done) *n_done = n;
done:
    if (!rc) rc = mk_session_reload(s);
    free(ids);
    free(keys);
    free(prompts);
    mk_edit_requests_free(stale, n);
    return rc;
}

int mk_session_retrieve(mk_session *s, const char *const *questions, int n,
                        const mk_retr_opts *opts, mk_retr_result *res) {
    size_t R = (size_t)s->ed->cfg.R;
    float *q = malloc((size_t)(n > 0 ? n : 1) * R * sizeof *q);
    if (!q) return mk_fail(MK_ERR_NOMEM, "out of memory");
    int rc = mk_editor_query(s->ed, questions, n, q);
    if (!rc) rc = mk_retrieve(&s->rkb, q, n, opts, res);
    free(q);
    return rc;
}

int mk_session_prefix(mk_session *s, const mk_retr_result *res, int64_t b, float *prefix,
                      int64_t max_vecs, int64_t *n_vecs) {
    if (!s->keys_only) return mk_retr_gather(&s->rkb, res, b, prefix, max_vecs, n_vecs);
    int64_t T = s->rkb.T, D = s->rkb.D, k = res->n_kept[b];
    *n_vecs = 0;
    if (k * T > max_vecs)
        return mk_fail(MK_ERR_RANGE, "prefix of %lld vectors exceeds the buffer of %lld",
                       (long long)(k * T), (long long)max_vecs);
    for (int64_t j = 0; j < k; j++) {
        int rc = mk_kb_get_prompts(s->kb, res->ids[b * res->top_k + j], s->editor_fp, T, D,
                                   prefix + (size_t)(j * T) * (size_t)D);
        if (rc) return rc;
    }
    *n_vecs = k * T;
    return MK_OK;
}

int mk_session_answer(mk_session *s, const char *question, const float *prefix, int n_prefix,
                      const mk_gen_params *gp, char **text, mk_gen_stats *st) {
    *text = NULL;
    const mk_tokenizer *tok = mk_llama_tokenizer(s->llm);
    if (!tok) {
        const char *why = mk_llama_tokenizer_error(s->llm);
        return mk_fail(MK_ERR_ARG, "the model has no usable tokenizer%s%s", why[0] ? ": " : "", why);
    }
    int32_t *ids = NULL, *out = NULL;
    size_t n_ids = 0;
    int n_out = 0;
    int rc = mk_tok_encode(tok, question, strlen(question), MK_TOK_SPECIAL, &ids, &n_ids);
    if (rc) goto done;
    if (n_ids == 0) {
        rc = mk_fail(MK_ERR_ARG, "the question encodes to no tokens");
        goto done;
    }
    out = malloc((size_t)(gp->max_tokens > 0 ? gp->max_tokens : 1) * sizeof *out);
    if (!out) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory");
        goto done;
    }
    rc = mk_llama_generate(s->llm, prefix, n_prefix, ids, (int)n_ids, gp, out, &n_out, st);
    if (rc) goto done;
    size_t len;
    rc = mk_tok_decode(tok, out, (size_t)n_out, 1, text, &len);
done:
    free(ids);
    free(out);
    return rc;
}
