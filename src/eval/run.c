/* run.c - evaluation modes and measurement (see run.h). */
#include "run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/error.h"
#include "../text/tokenizer.h"
#include "metrics.h"

#define ITEM_BLOCK 16               /* items whose probes are queried together */
#define MAX_LOGIT_FLOATS ((size_t)1 << 25) /* 128 MB of logits per forward */

static const char *const mode_names[] = {"single", "batch", "sequential"};

const char *mk_eval_mode_name(mk_eval_mode m) {
    return (unsigned)m < 3 ? mode_names[m] : "?";
}

int mk_eval_mode_parse(const char *s) {
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, mode_names[i]) == 0) return i;
    return -1;
}

void mk_eval_opts_default(mk_eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = MK_EVAL_SINGLE;
    o->n = 1;
    o->seed = 1;
    o->fluency = 1;
    o->fluency_tokens = 100;
    o->fluency_top_k = 5;
    o->retr = (mk_retr_opts)MK_RETR_OPTS_DEFAULT;
    o->fwd_batch = 16;
}

void mk_eval_shuffle(int64_t n, uint64_t seed, int64_t *out) {
    mk_rng r;
    mk_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mk_rng_next(&r) % (uint64_t)(i + 1));
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

void mk_eval_result_free(mk_eval_result *r) {
    if (!r) return;
    free(r->items);
    free(r->order);
    memset(r, 0, sizeof *r);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


/* A triple that has something to score: the target must add a token. */
static int scored_triple(const mk_tokenizer *tok, const char *prompt, const char *target,
                         mk_triple *t) {
    int rc = mk_triple_make(tok, prompt, target, t);
    if (rc == MK_OK && t->n_mask == 0) {
        mk_triple_free(t);
        rc = mk_fail(MK_ERR_ARG, "target \"%.60s\" adds no token to prompt \"%.60s\"", target, prompt);
    }
    return rc;
}

/* Token triples of one item, tokenized once. */
typedef struct {
    mk_triple eff;
    mk_triple gen[MK_EVAL_MAX_PROBES];
    mk_triple loc[MK_EVAL_MAX_PROBES];
    int32_t *ypre[MK_EVAL_MAX_PROBES]; /* (n_mask) unedited argmax per locality probe */
} prep;

/* One sequence to score. */
typedef struct {
    const mk_triple *t;
    const float *prefix; /* (n_prefix, D) */
    int n_prefix;
    const int32_t *want; /* NULL: labels */
    int32_t *argmax_out; /* not NULL: record the argmax instead of counting */
    int *hits;
} job;

typedef struct {
    const mk_llama *llm;
    const mk_editor *ed;
    const mk_eval_set *set;
    const mk_eval_opts *o;
    const mk_tokenizer *tok;
    int V, D, T;
    int64_t R;
    prep *pp;              /* (n items) */
    mk_eval_score *sc;     /* (n items) */
    /* in-memory knowledge base: row 0 = prototype */
    float *keys;           /* (1 + cap, R) */
    float *prompts;        /* (1 + cap, T, D) */
    int64_t *row_item;     /* (1 + cap) dataset index of each row */
    int64_t rows, cap;
    float *logits;         /* forward output buffer */
    size_t logits_cap;     /* floats */
    mk_llama_seq *seqs;    /* (fwd_batch) */
    int64_t done;
} ctx;

static int run_jobs(ctx *c, job *jobs, int nj) {
    int fb = c->o->fwd_batch > 0 ? c->o->fwd_batch : 16;
    for (int j0 = 0; j0 < nj;) {
        /* a group: up to fb sequences and a bounded logits buffer */
        int m = 0;
        size_t rows = 0;
        while (j0 + m < nj && m < fb) {
            size_t add = (size_t)jobs[j0 + m].t->L;
            if (m > 0 && (rows + add) * (size_t)c->V > MAX_LOGIT_FLOATS) break;
            rows += add;
            m++;
        }
        size_t need = rows * (size_t)c->V;
        if (need > c->logits_cap) {
            float *nl = realloc(c->logits, need * sizeof *nl);
            if (!nl) return mk_fail(MK_ERR_NOMEM, "out of memory for %zu logits", need);
            c->logits = nl;
            c->logits_cap = need;
        }
        for (int k = 0; k < m; k++) {
            const job *jb = &jobs[j0 + k];
            c->seqs[k] = (mk_llama_seq){jb->t->input, jb->t->L, jb->prefix, jb->n_prefix};
        }
        int rc = mk_llama_forward(c->llm, c->seqs, m, c->logits, NULL);
        if (rc) return rc;
        size_t off = 0;
        for (int k = 0; k < m; k++) {
            const job *jb = &jobs[j0 + k];
            const float *lg = c->logits + off * (size_t)c->V;
            if (jb->argmax_out)
                mk_triple_argmax(jb->t, lg, c->V, jb->argmax_out);
            else
                *jb->hits = mk_triple_hits(jb->t, lg, c->V, jb->want);
            off += (size_t)jb->t->L;
        }
        j0 += m;
    }
    return MK_OK;
}

static void prep_free(prep *p) {
    mk_triple_free(&p->eff);
    for (int k = 0; k < MK_EVAL_MAX_PROBES; k++) {
        mk_triple_free(&p->gen[k]);
        mk_triple_free(&p->loc[k]);
        free(p->ypre[k]);
    }
}

static int prepare(ctx *c) {
    const mk_eval_set *s = c->set;
    int rc = MK_OK;
    for (int64_t i = 0; i < s->n; i++) {
        const mk_eval_item *it = &s->items[i];
        prep *p = &c->pp[i];
        if ((rc = scored_triple(c->tok, it->prompt, it->target_new, &p->eff)))
            return mk_fail_ctx(rc, "item %lld (prompt)", (long long)i);
        for (int g = 0; g < it->n_gen; g++)
            if ((rc = scored_triple(c->tok, it->gen[g].prompt, it->gen[g].target, &p->gen[g])))
                return mk_fail_ctx(rc, "item %lld (%s probe)", (long long)i, it->gen[g].kind);
        for (int l = 0; l < it->n_loc; l++) {
            if ((rc = scored_triple(c->tok, it->loc[l].prompt, it->loc[l].target, &p->loc[l])))
                return mk_fail_ctx(rc, "item %lld (locality %s probe)", (long long)i, it->loc[l].kind);
            p->ypre[l] = malloc((size_t)p->loc[l].n_mask * sizeof *p->ypre[l]);
            if (!p->ypre[l]) return mk_fail(MK_ERR_NOMEM, "out of memory");
        }
    }
    /* every sequence must fit the context with the most prefix vectors a
     * retrieval can give */
    int64_t topk = c->o->retr.top_k > 0 ? c->o->retr.top_k : 1;
    int64_t most = (int64_t)mk_llama_cfg(c->llm)->n_ctx - topk * c->T;
    for (int64_t i = 0; i < s->n; i++) {
        const prep *p = &c->pp[i];
        const mk_eval_item *it = &s->items[i];
        const char *what = p->eff.L > most ? "prompt" : NULL;
        for (int g = 0; !what && g < it->n_gen; g++)
            if (p->gen[g].L > most) what = it->gen[g].kind;
        for (int l = 0; !what && l < it->n_loc; l++)
            if (p->loc[l].L > most) what = it->loc[l].kind;
        if (what)
            return mk_fail(MK_ERR_RANGE, "item %lld (%s probe): too many tokens for the model's "
                           "context of %d with %lld prefix vectors", (long long)i, what,
                           mk_llama_cfg(c->llm)->n_ctx, (long long)(topk * c->T));
    }
    return MK_OK;
}

/* Unedited argmax on every locality probe, before any edit. */
static int record_ypre(ctx *c) {
    const mk_eval_set *s = c->set;
    int fb = c->o->fwd_batch > 0 ? c->o->fwd_batch : 16;
    job *jobs = calloc((size_t)fb * MK_EVAL_MAX_PROBES, sizeof *jobs);
    if (!jobs) return mk_fail(MK_ERR_NOMEM, "out of memory");
    int rc = MK_OK;
    for (int64_t i0 = 0; i0 < s->n && !rc; i0 += fb) {
        int nj = 0;
        for (int64_t i = i0; i < s->n && i < i0 + fb; i++)
            for (int l = 0; l < s->items[i].n_loc; l++)
                jobs[nj++] = (job){&c->pp[i].loc[l], NULL, 0, NULL, c->pp[i].ypre[l], NULL};
        rc = run_jobs(c, jobs, nj);
    }
    free(jobs);
    return rc;
}

/* Append edits for items idx[0..m) as rows (one encoding call). */
static int kb_append(ctx *c, const int64_t *idx, int m) {
    const mk_eval_set *s = c->set;
    if (c->rows + m > 1 + c->cap) return mk_fail(MK_ERR_ARG, "knowledge base capacity exceeded");
    const char **pr = malloc((size_t)m * sizeof *pr), **tg = malloc((size_t)m * sizeof *tg);
    float *val = malloc((size_t)m * (size_t)c->R * sizeof *val);
    int rc = MK_OK;
    if (!pr || !tg || !val) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < m; k++) {
        pr[k] = s->items[idx[k]].prompt;
        tg[k] = s->items[idx[k]].target_new;
        c->row_item[c->rows + k] = idx[k];
    }
    size_t TD = (size_t)c->T * (size_t)c->D;
    if ((rc = mk_editor_keys(c->ed, pr, m, c->keys + (size_t)c->rows * (size_t)c->R))) goto done;
    if ((rc = mk_editor_values(c->ed, pr, tg, m, val))) goto done;
    if ((rc = mk_editor_prompts(c->ed, val, m, c->prompts + (size_t)c->rows * TD))) goto done;
    c->rows += m;
done:
    free(pr);
    free(tg);
    free(val);
    return rc;
}

/* Measure items idx[0..m) against the current knowledge base. */
static int measure(ctx *c, const int64_t *idx, int64_t m, int64_t chunk) {
    const mk_eval_set *s = c->set;
    const mk_eval_opts *o = c->o;
    int topk = o->retr.top_k > 0 ? o->retr.top_k : 1;
    size_t R = (size_t)c->R, D = (size_t)c->D;
    size_t vec_cap = (size_t)topk * (size_t)c->T; /* prefix vectors per query */
    int maxq = ITEM_BLOCK * (1 + 2 * MK_EVAL_MAX_PROBES);
    mk_retr_kb kb = {c->rows, c->R, c->T, c->D, c->keys, c->prompts, NULL};
    const char **texts = malloc((size_t)maxq * sizeof *texts);     /* (maxq) query texts */
    float *q = malloc((size_t)maxq * R * sizeof *q);                 /* (maxq, R) */
    float *pre = malloc((size_t)maxq * vec_cap * D * sizeof *pre);   /* (maxq, topk*T, D) */
    int64_t *nvec = malloc((size_t)maxq * sizeof *nvec);             /* (maxq) vectors kept */
    job *jobs = malloc((size_t)maxq * sizeof *jobs);                 /* (maxq) */
    int32_t *gen_ids = NULL;
    mk_retr_result res;
    memset(&res, 0, sizeof res);
    int rc = MK_OK;
    if (!texts || !q || !pre || !nvec || !jobs) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory measuring %lld items", (long long)m);
        goto done;
    }
    if (o->fluency) {
        gen_ids = malloc((size_t)(o->fluency_tokens > 0 ? o->fluency_tokens : 1) * sizeof *gen_ids);
        if (!gen_ids) {
            rc = mk_fail(MK_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    for (int64_t b0 = 0; b0 < m; b0 += ITEM_BLOCK) {
        int64_t bn = m - b0 < ITEM_BLOCK ? m - b0 : ITEM_BLOCK;
        /* queries: per item its prompt, rephrases, locality prompts */
        int nq = 0;
        for (int64_t k = 0; k < bn; k++) {
            const mk_eval_item *it = &s->items[idx[b0 + k]];
            texts[nq++] = it->prompt;
            for (int g = 0; g < it->n_gen; g++) texts[nq++] = it->gen[g].prompt;
            for (int l = 0; l < it->n_loc; l++) texts[nq++] = it->loc[l].prompt;
        }
        if ((rc = mk_editor_query(c->ed, texts, nq, q))) goto done;
        mk_retr_result_free(&res);
        if ((rc = mk_retrieve(&kb, q, nq, &o->retr, &res))) goto done;
        for (int b = 0; b < nq; b++)
            if ((rc = mk_retr_gather(&kb, &res, b, pre + (size_t)b * vec_cap * D, (int64_t)vec_cap,
                                     &nvec[b])))
                goto done;
        /* jobs */
        int nj = 0, b = 0;
        for (int64_t k = 0; k < bn; k++) {
            int64_t i = idx[b0 + k];
            const mk_eval_item *it = &s->items[i];
            prep *p = &c->pp[i];
            mk_eval_score *sc = &c->sc[i];
            sc->chunk = chunk;
            sc->n_gen = it->n_gen;
            sc->n_loc = it->n_loc;
#define RET(bq) (res.n_kept[bq] > 0 ? c->row_item[res.rows[(size_t)(bq) * (size_t)res.top_k]] : -1)
#define PRE(bq) (pre + (size_t)(bq) * vec_cap * D)
            sc->eff_ret = RET(b);
            sc->eff_n = p->eff.n_mask;
            jobs[nj++] = (job){&p->eff, PRE(b), (int)nvec[b], NULL, NULL, &sc->eff_hits};
            b++;
            for (int g = 0; g < it->n_gen; g++, b++) {
                sc->gen_ret[g] = RET(b);
                sc->gen_n[g] = p->gen[g].n_mask;
                jobs[nj++] = (job){&p->gen[g], PRE(b), (int)nvec[b], NULL, NULL, &sc->gen_hits[g]};
            }
            for (int l = 0; l < it->n_loc; l++, b++) {
                sc->loc_ret[l] = RET(b);
                sc->loc_n[l] = p->loc[l].n_mask;
                if (nvec[b] == 0)
                    sc->loc_hits[l] = p->loc[l].n_mask; /* unedited computation */
                else
                    jobs[nj++] = (job){&p->loc[l], PRE(b), (int)nvec[b], p->ypre[l], NULL,
                                       &sc->loc_hits[l]};
            }
        }
        if ((rc = run_jobs(c, jobs, nj))) goto done;
        /* per-item fractions and fluency */
        b = 0;
        for (int64_t k = 0; k < bn; k++) {
            int64_t i = idx[b0 + k];
            const mk_eval_item *it = &s->items[i];
            mk_eval_score *sc = &c->sc[i];
            int bq = b; /* the prompt's query */
            b += 1 + it->n_gen + it->n_loc;
            sc->eff = (double)sc->eff_hits / sc->eff_n;
            double a = 0;
            for (int g = 0; g < it->n_gen; g++) a += (double)sc->gen_hits[g] / sc->gen_n[g];
            sc->gen = a / it->n_gen;
            a = 0;
            for (int l = 0; l < it->n_loc; l++) a += (double)sc->loc_hits[l] / sc->loc_n[l];
            sc->loc = a / it->n_loc;
            sc->flu = sc->h2 = sc->h3 = NAN;
            if (o->fluency) {
                int32_t *pids = NULL;
                size_t npz = 0;
                if ((rc = mk_tok_encode(c->tok, it->prompt, strlen(it->prompt), MK_TOK_SPECIAL,
                                        &pids, &npz)))
                    goto fail_item;
                int np = (int)npz;
                mk_gen_params gp;
                mk_gen_params_default(&gp);
                gp.max_tokens = o->fluency_tokens;
                gp.temperature = 1.0f;
                gp.top_k = o->fluency_top_k;
                gp.seed = o->seed + 1 + (uint64_t)i;
                gp.eos_id = mk_tok_eos(c->tok);
                int n_out = 0;
                rc = mk_llama_generate(c->llm, PRE(bq), (int)nvec[bq], pids, np, &gp, gen_ids,
                                       &n_out, NULL);
                int32_t *all = rc ? NULL : malloc((size_t)(np + n_out) * sizeof *all);
                if (!rc && !all) rc = mk_fail(MK_ERR_NOMEM, "out of memory");
                if (rc) {
                    free(pids);
                    goto fail_item;
                }
                memcpy(all, pids, (size_t)np * sizeof *all);
                free(pids);
                memcpy(all + np, gen_ids, (size_t)n_out * sizeof *all);
                char *text = NULL;
                size_t len = 0;
                rc = mk_tok_decode(c->tok, all, (size_t)(np + n_out), 1, &text, &len);
                free(all);
                if (!rc) rc = mk_fluency_score(text, len, &sc->flu, &sc->h2, &sc->h3);
                free(text);
                if (rc) goto fail_item;
            }
            c->done++;
            if (o->progress) o->progress(o->ud, c->done, s->n);
            continue;
fail_item:
            rc = mk_fail_ctx(rc, "item %lld (fluency)", (long long)i);
            goto done;
        }
#undef RET
#undef PRE
    }
done:
    mk_retr_result_free(&res);
    free(texts);
    free(q);
    free(pre);
    free(nvec);
    free(jobs);
    free(gen_ids);
    return rc;
}

static void summarize(ctx *c, mk_eval_result *r) {
    const mk_eval_set *s = c->set;
    double e = 0, g = 0, l = 0, f = 0, re = 0, rg = 0, rl = 0;
    int64_t ng = 0, nl = 0;
    double kind_sum[8] = {0};
    int64_t kind_n[8] = {0};
    r->n_loc_kinds = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const mk_eval_score *sc = &c->sc[i];
        const mk_eval_item *it = &s->items[i];
        e += sc->eff;
        g += sc->gen;
        l += sc->loc;
        f += sc->flu;
        re += sc->eff_ret == i;
        for (int k = 0; k < it->n_gen; k++, ng++) rg += sc->gen_ret[k] == i;
        for (int k = 0; k < it->n_loc; k++, nl++) {
            rl += sc->loc_ret[k] < 0;
            int slot = -1;
            for (int q = 0; q < r->n_loc_kinds; q++)
                if (strcmp(r->loc_kind[q], it->loc[k].kind) == 0) slot = q;
            if (slot < 0 && r->n_loc_kinds < 8) {
                slot = r->n_loc_kinds++;
                r->loc_kind[slot] = it->loc[k].kind;
            }
            if (slot >= 0) {
                kind_sum[slot] += (double)sc->loc_hits[k] / sc->loc_n[k];
                kind_n[slot]++;
            }
        }
    }
    double n = (double)s->n;
    r->eff = 100 * e / n;
    r->gen = 100 * g / n;
    r->loc = 100 * l / n;
    r->flu = c->o->fluency ? 100 * f / n : NAN;
    r->avg = ((r->eff + r->gen) / 2 + r->loc) / 2;
    r->ret_eff = 100 * re / n;
    r->ret_gen = ng ? 100 * rg / (double)ng : NAN;
    r->ret_loc_none = nl ? 100 * rl / (double)nl : NAN;
    for (int q = 0; q < r->n_loc_kinds; q++) r->loc_by_kind[q] = 100 * kind_sum[q] / (double)kind_n[q];
}

int mk_eval_run(const mk_llama *llm, const mk_editor *ed, const mk_eval_set *set,
                const mk_eval_opts *opts, mk_eval_result *res) {
    memset(res, 0, sizeof *res);
    double t0 = now_s();
    ctx c;
    memset(&c, 0, sizeof c);
    c.llm = llm;
    c.ed = ed;
    c.set = set;
    c.o = opts;
    const mk_llama_config *lc = mk_llama_cfg(llm);
    c.V = lc->n_vocab;
    c.D = lc->dim;
    c.T = ed->cfg.T;
    c.R = ed->cfg.R;
    int64_t n = set->n;
    int rc = MK_OK;
    if (n <= 0) return mk_fail(MK_ERR_ARG, "no items to evaluate");
    if (ed->cfg.D != lc->dim)
        return mk_fail(MK_ERR_MISMATCH, "the editor makes prompts of width %d, the LLM's is %d",
                       ed->cfg.D, lc->dim);
    if (!(c.tok = mk_llama_tokenizer(llm))) {
        const char *why = mk_llama_tokenizer_error(llm);
        return mk_fail(MK_ERR_ARG, "the model has no usable tokenizer%s%s", why[0] ? ": " : "", why);
    }
    if ((unsigned)opts->mode > MK_EVAL_SEQUENTIAL) return mk_fail(MK_ERR_ARG, "unknown evaluation mode");
    if (opts->mode != MK_EVAL_SINGLE && opts->n < 0)
        return mk_fail(MK_ERR_ARG, "chunk size %lld must be >= 0", (long long)opts->n);
    if (opts->mode == MK_EVAL_BATCH && opts->n == 0)
        return mk_fail(MK_ERR_ARG, "batch mode needs a batch size >= 1");
    if (opts->fluency && opts->fluency_tokens < 1)
        return mk_fail(MK_ERR_ARG, "fluency needs at least 1 new token");
    int64_t N = opts->mode == MK_EVAL_SINGLE ? 1 : (opts->n == 0 || opts->n > n ? n : opts->n);
    int fb = opts->fwd_batch > 0 ? opts->fwd_batch : 16;

    c.pp = calloc((size_t)n, sizeof *c.pp);
    c.sc = calloc((size_t)n, sizeof *c.sc);
    res->order = malloc((size_t)n * sizeof *res->order);
    c.cap = N;
    c.keys = malloc((size_t)(1 + N) * (size_t)c.R * sizeof *c.keys);
    c.prompts = malloc((size_t)(1 + N) * (size_t)c.T * (size_t)c.D * sizeof *c.prompts);
    c.row_item = malloc((size_t)(1 + N) * sizeof *c.row_item);
    c.seqs = malloc((size_t)fb * sizeof *c.seqs);
    if (!c.pp || !c.sc || !res->order || !c.keys || !c.prompts || !c.row_item || !c.seqs) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory for %lld items", (long long)n);
        goto fail;
    }
    /* the order */
    if (opts->order) {
        char *seen = calloc((size_t)n, 1);
        if (!seen) {
            rc = mk_fail(MK_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t v = opts->order[i];
            if (v < 0 || v >= n || seen[v]) {
                free(seen);
                rc = mk_fail(MK_ERR_ARG, "order is not a permutation of 0..%lld (entry %lld)",
                             (long long)(n - 1), (long long)i);
                goto fail;
            }
            seen[v] = 1;
            res->order[i] = v;
        }
        free(seen);
    } else if (opts->mode == MK_EVAL_BATCH) {
        mk_eval_shuffle(n, opts->seed, res->order);
    } else {
        for (int64_t i = 0; i < n; i++) res->order[i] = i;
    }
    if ((rc = prepare(&c))) goto fail;
    if ((rc = record_ypre(&c))) goto fail;
    if ((rc = mk_editor_prototype(ed, c.keys))) goto fail;
    c.row_item[0] = -1;

    int64_t chunk = 0;
    for (int64_t i0 = 0; i0 < n; i0 += N, chunk++) {
        int64_t m = n - i0 < N ? n - i0 : N;
        c.rows = 1; /* restore: the prototype row only */
        if (opts->mode == MK_EVAL_BATCH) {
            if ((rc = kb_append(&c, res->order + i0, (int)m))) goto fail;
        } else {
            for (int64_t k = 0; k < m; k++)
                if ((rc = kb_append(&c, res->order + i0 + k, 1))) goto fail;
        }
        if ((rc = measure(&c, res->order + i0, m, chunk))) goto fail;
    }
    c.rows = 1;
    res->n = n;
    res->n_chunks = chunk;
    summarize(&c, res);
    res->items = c.sc;
    c.sc = NULL;
    res->seconds = now_s() - t0;
fail:
    if (c.pp)
        for (int64_t i = 0; i < n; i++) prep_free(&c.pp[i]);
    free(c.pp);
    free(c.sc);
    free(c.keys);
    free(c.prompts);
    free(c.row_item);
    free(c.seqs);
    free(c.logits);
    if (rc) mk_eval_result_free(res);
    return rc;
}
