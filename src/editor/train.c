/* train.c - MedREK training step (spec section 7); see train.h for the
 * exact rules. Scalars of the losses are computed in double; the
 * gradients go back to float for the module backwards. */
#include "train.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../text/tokenizer.h"

void mk_train_config_default(mk_train_config *c) {
    c->lambda_c = c->lambda_r = c->lambda_g = c->lambda_l = 1.0f;
    c->t_qk = c->t_qp = 1.0f;
    c->hinge = 1.2f;
    c->eps = 1e-8f;
    c->lr = 1e-5f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->adam_eps = 1e-8f;
}

static int finite_ge0(float x) { return isfinite(x) && x >= 0; }

int mk_train_config_check(const mk_train_config *c) {
    if (!finite_ge0(c->lambda_c) || !finite_ge0(c->lambda_r) || !finite_ge0(c->lambda_g) ||
        !finite_ge0(c->lambda_l))
        return mk_fail(MK_ERR_ARG, "train: loss weights must be finite and >= 0");
    if (!isfinite(c->t_qk) || !isfinite(c->t_qp) || c->t_qk <= 0 || c->t_qp <= 0)
        return mk_fail(MK_ERR_ARG, "train: temperatures must be finite and > 0");
    if (!isfinite(c->hinge) || c->hinge <= 0)
        return mk_fail(MK_ERR_ARG, "train: hinge scale must be finite and > 0");
    if (!finite_ge0(c->eps) || !finite_ge0(c->adam_eps))
        return mk_fail(MK_ERR_ARG, "train: eps must be finite and >= 0");
    if (!isfinite(c->lr) || c->lr <= 0)
        return mk_fail(MK_ERR_ARG, "train: learning rate must be finite and > 0 (got %g)", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return mk_fail(MK_ERR_ARG, "train: Adam betas must be in [0, 1)");
    return MK_OK;
}

static int is_set(const char *s) { return s && *s; }

/* ---- token triples ---- */

void mk_train_flips(mk_rng *rng, int B, uint8_t *flips) {
    for (int i = 0; i < B; i++) flips[i] = (uint8_t)(mk_rng_next(rng) & 1);
}

/* ---- contrastive rows ---- */

static double dotf(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* z (n) = t * s(q, cand_j); p = softmax(z). Returns -log(p[a] + eps);
 * *kept = 1 unless hinge: then p[a] < h * (second largest p). */
static double row_eval(const float *q, const float *const *cand, int n, int a, double t, int R,
                       int hinge, const mk_train_config *c, double *p, int *kept) {
    double isr = 1.0 / sqrt((double)R), mx = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++) {
        p[j] = t * dotf(q, cand[j], R) * isr;
        if (p[j] > mx) mx = p[j];
    }
    for (int j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
    double b1 = -1, b2 = -1; /* the two largest values, ties counted twice */
    for (int j = 0; j < n; j++) {
        p[j] /= sum;
        if (p[j] > b1) b2 = b1, b1 = p[j];
        else if (p[j] > b2) b2 = p[j];
    }
    *kept = hinge ? p[a] < (double)c->hinge * b2 : 1;
    return -log(p[a] + (double)c->eps);
}

/* Gradient of coef * -log(p[a] + eps) (p from row_eval) into dq (R) and
 * dcand[j] (R) (double accumulators). */
static void row_grad(const float *q, const float *const *cand, double *dq, double *const *dcand,
                     int n, int a, double t, int R, const mk_train_config *c, const double *p,
                     double coef) {
    double isr = 1.0 / sqrt((double)R);
    double g = -coef * p[a] / (p[a] + (double)c->eps); /* d/d log p[a] */
    for (int j = 0; j < n; j++) {
        double ds = t * isr * g * ((j == a) - p[j]); /* d/d dot(q, cand_j) */
        if (ds == 0) continue;
        for (int r = 0; r < R; r++) {
            dq[r] += ds * cand[j][r];
            dcand[j][r] += ds * q[r];
        }
    }
}

/* ---- LLM groups ---- */

enum { GROUP_LABEL = 0, GROUP_KL = 1 };

typedef struct {
    int item;            /* whose prompts are injected */
    mk_triple tr;
} seq_t;

typedef struct {
    double sum;   /* sum of per-position terms */
    int counted;  /* positions in the sum (the divisor) */
    int pos;      /* target positions */
    int tokens;   /* positions run */
} group_out;

/* Per-row label term: returns whether counted; when counted, *term =
 * -log(p_y + eps) and (if d) d holds d term / d z (may alias z). */
static int label_row(const float *z, float *d, int V, int32_t y, const mk_train_config *c,
                     double *term) {
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++)
        if (z[v] > mx) mx = z[v];
    float b1 = -INFINITY, b2 = -INFINITY; /* the two largest logits */
    for (int v = 0; v < V; v++) {
        sum += exp((double)z[v] - mx);
        if (z[v] > b1) b2 = b1, b1 = z[v];
        else if (z[v] > b2) b2 = z[v];
    }
    double py = exp((double)z[y] - mx) / sum, p2 = exp((double)b2 - mx) / sum;
    if (!(py < (double)c->hinge * p2)) return 0;
    *term = -log(py + (double)c->eps);
    if (d) {
        double g = -py / (py + (double)c->eps); /* d term / d log p_y */
        for (int v = 0; v < V; v++) {
            double pv = exp((double)z[v] - mx) / sum;
            d[v] = (float)(g * ((v == y) - pv));
        }
    }
    return 1;
}

/* KL(p_pre || p_post) of one row; d (may alias post) = p_post - p_pre. */
static double kl_row(const float *pre, const float *post, float *d, int V) {
    double m1 = -INFINITY, m2 = -INFINITY, s1 = 0, s2 = 0, kl = 0;
    for (int v = 0; v < V; v++) {
        if (pre[v] > m1) m1 = pre[v];
        if (post[v] > m2) m2 = post[v];
    }
    for (int v = 0; v < V; v++) {
        s1 += exp((double)pre[v] - m1);
        s2 += exp((double)post[v] - m2);
    }
    double l1 = m1 + log(s1), l2 = m2 + log(s2);
    for (int v = 0; v < V; v++) {
        double lp = (double)pre[v] - l1, lq = (double)post[v] - l2, pp = exp(lp);
        kl += pp * (lp - lq);
        if (d) d[v] = (float)(exp(lq) - pp);
    }
    return kl;
}

/* Run one group of sequences through the LLM with their items' prompts,
 * in chunks; with dP (B, T, D) not NULL, add the unnormalised gradient of
 * the group's sum into dP. */
static int run_group(const mk_llama *llm, int kind, const seq_t *seqs, int n,
                     const float *prompts, int T, const mk_train_config *c, float *dP,
                     group_out *go) {
    const mk_llama_config *lc = mk_llama_cfg(llm);
    int V = lc->n_vocab, D = lc->dim, rc = MK_OK;
    memset(go, 0, sizeof *go);
    for (int s = 0; s < n;) {
        /* chunk [s, e): at least one sequence, at most MK_TRAIN_CHUNK_LOGITS logits */
        size_t rows = 0;
        int e = s;
        while (e < n && (e == s || (rows + (size_t)seqs[e].tr.L) * (size_t)V <= MK_TRAIN_CHUNK_LOGITS))
            rows += (size_t)seqs[e++].tr.L;
        int m = e - s;
        mk_llama_seq *sq = calloc((size_t)m, sizeof *sq);
        float **dpre = calloc((size_t)m, sizeof *dpre);
        float *logits = malloc(rows * V * sizeof(float));
        float *pre = kind == GROUP_KL ? malloc(rows * V * sizeof(float)) : NULL;
        mk_llama_acts *acts = NULL;
        if (!sq || !dpre || !logits || (kind == GROUP_KL && !pre)) {
            rc = mk_fail(MK_ERR_NOMEM, "train: out of memory for %zu x %d logits", rows, V);
            goto chunk_done;
        }
        for (int k = 0; k < m; k++) {
            const seq_t *q = &seqs[s + k];
            sq[k].tokens = q->tr.input;
            sq[k].n_tokens = q->tr.L;
            if (dP) dpre[k] = dP + (size_t)q->item * T * D;
            go->tokens += q->tr.L + T;
        }
        if (kind == GROUP_KL) { /* locality targets: the LLM without prompts */
            if ((rc = mk_llama_forward(llm, sq, m, pre, NULL))) goto chunk_done;
            for (int k = 0; k < m; k++) go->tokens += seqs[s + k].tr.L;
        }
        for (int k = 0; k < m; k++) {
            sq[k].prefix = prompts + (size_t)seqs[s + k].item * T * D;
            sq[k].n_prefix = T;
        }
        if ((rc = mk_llama_forward(llm, sq, m, logits, dP ? &acts : NULL))) goto chunk_done;
        /* per position: the term, and its gradient written over the logits */
        int any = 0;
        size_t r = 0;
        for (int k = 0; k < m; k++) {
            const mk_triple *tr = &seqs[s + k].tr;
            for (int t = 0; t < tr->L; t++, r++) {
                float *z = logits + r * V, *d = dP ? z : NULL;
                int used = 0;
                if (tr->mask[t] != 0) {
                    go->pos++;
                    if (kind == GROUP_LABEL) {
                        double term;
                        if (tr->label[t] < 0 || tr->label[t] >= V) {
                            rc = mk_fail(MK_ERR_RANGE, "train: label id %d outside the vocabulary",
                                         (int)tr->label[t]);
                            goto chunk_done;
                        }
                        if (label_row(z, d, V, tr->label[t], c, &term)) {
                            go->sum += term;
                            go->counted++;
                            used = 1;
                        }
                    } else {
                        go->sum += kl_row(pre + r * V, z, d, V);
                        go->counted++;
                        used = 1;
                    }
                }
                if (d && !used) memset(d, 0, (size_t)V * sizeof(float));
                any |= used;
            }
        }
        if (dP && any) rc = mk_llama_backward(llm, acts, logits, dpre, NULL);
    chunk_done:
        mk_llama_acts_free(acts);
        free(pre);
        free(logits);
        free(dpre);
        free(sq);
        if (rc) return rc;
        s = e;
    }
    return MK_OK;
}

/* ---- the step ---- */

int mk_train_loss(mk_editor *ed, const mk_llama *llm, const mk_train_config *c,
                  const mk_train_item *items, int B, const uint8_t *flips, int backward,
                  mk_train_losses *out) {
    const mk_llama_config *lc = mk_llama_cfg(llm);
    int R = ed->cfg.R, T = ed->cfg.T, D = ed->cfg.D, rc;
    mk_train_losses L;
    memset(&L, 0, sizeof L);
    if (out) memset(out, 0, sizeof *out);
    if (B < 1 || !items || !flips) return mk_fail(MK_ERR_ARG, "train: empty batch");
    if ((rc = mk_train_config_check(c))) return rc;
    if (lc->dim != D)
        return mk_fail(MK_ERR_MISMATCH, "train: the editor makes prompts of width %d but the LLM's "
                       "width is %d (use an editor created for this LLM)", D, lc->dim);
    if (backward && !ed->gblock)
        return mk_fail(MK_ERR_ARG, "train: call mk_editor_train_alloc before a backward");
    const mk_tokenizer *ltok = mk_llama_tokenizer(llm);
    if (!ltok) return mk_fail(MK_ERR_ARG, "train: the LLM has no tokenizer (%s)",
                              mk_llama_tokenizer_error(llm));
    for (int i = 0; i < B; i++)
        if (!is_set(items[i].prompt) || !is_set(items[i].target_new))
            return mk_fail(MK_ERR_ARG, "train: batch item %d has no prompt or target_new", i);

    /* which items have which probes; rows of the one q-head pass:
     * [r1 (B) | r2 (n2) | keys (B) | r3 (n3)] */
    int n2 = 0, n3 = 0, nl = 0;
    int *idx2 = malloc(3 * (size_t)B * sizeof(int)), *idx3 = idx2 ? idx2 + B : NULL,
        *idxl = idx2 ? idx2 + 2 * B : NULL;
    const char **qt = malloc(4 * (size_t)B * sizeof(char *)); /* nq <= 4B texts */
    const char **ks = calloc((size_t)B, sizeof(char *));
    seq_t *seqs = calloc(3 * (size_t)B, sizeof(seq_t)); /* rel | gen | loc */
    int nseq = 0;
    mk_krm_pass qp, kp, pp;
    mk_penc_pass pe;
    memset(&qp, 0, sizeof qp), memset(&kp, 0, sizeof kp), memset(&pp, 0, sizeof pp);
    memset(&pe, 0, sizeof pe);
    float *fbuf = NULL;
    double *dbuf = NULL, *prow = NULL;
    double **dcand = NULL;
    const float **cand = NULL;
    if (!idx2 || !qt || !ks || !seqs) {
        rc = mk_fail(MK_ERR_NOMEM, "train: out of memory");
        goto done;
    }
    for (int i = 0; i < B; i++) {
        if (is_set(items[i].rephrase)) idx2[n2++] = i;
        if (is_set(items[i].loc_prompt)) {
            idx3[n3++] = i;
            if (is_set(items[i].loc_truth)) idxl[nl++] = i;
        }
    }
    int nq = 2 * B + n2 + n3;
    float *r1, *r2, *keys, *r3;
    for (int i = 0; i < B; i++) {
        int rep = is_set(items[i].rephrase);
        qt[i] = rep && flips[i] ? items[i].rephrase : items[i].prompt;
        qt[B + n2 + i] = items[i].prompt;
    }
    for (int a = 0; a < n2; a++) {
        int i = idx2[a];
        qt[B + a] = flips[i] ? items[i].prompt : items[i].rephrase;
    }
    for (int a = 0; a < n3; a++) qt[2 * B + n2 + a] = items[idx3[a]].loc_prompt;

    /* float buffers: q out (nq, R), vals (B, R), proto (R), prompts (B, T, D),
     * dprompts (B, T, D), dP (B, T, D), dvals (B, R), dq (nq, R), dproto (R) */
    size_t nR = (size_t)R, BTD = (size_t)B * T * D;
    size_t nf = (size_t)nq * nR * 2 + (size_t)B * nR * 2 + 2 * nR + 3 * BTD;
    fbuf = calloc(nf, sizeof(float));
    dbuf = calloc((size_t)nq * nR + nR, sizeof(double)); /* dq, dproto accumulators */
    prow = malloc(((size_t)B + 1) * sizeof(double));
    cand = malloc(((size_t)B + 1) * sizeof(float *));
    dcand = malloc(((size_t)B + 1) * sizeof(double *));
    if (!fbuf || !dbuf || !prow || !cand || !dcand) {
        rc = mk_fail(MK_ERR_NOMEM, "train: out of memory");
        goto done;
    }
    float *qout = fbuf, *vals = qout + (size_t)nq * nR, *proto = vals + (size_t)B * nR;
    float *prompts = proto + nR, *dprompts = prompts + BTD, *dP = dprompts + BTD;
    float *dvals = dP + BTD, *dq = dvals + (size_t)B * nR, *dproto = dq + (size_t)nq * nR;
    double *dqd = dbuf, *dprotod = dbuf + (size_t)nq * nR;
    r1 = qout, r2 = qout + (size_t)B * nR, keys = r2 + (size_t)n2 * nR, r3 = keys + (size_t)B * nR;
    double *dr1 = dqd, *dr2 = dqd + (size_t)B * nR, *dkeys = dr2 + (size_t)n2 * nR,
           *dr3 = dkeys + (size_t)B * nR;

    /* representations */
    for (int i = 0; i < B; i++)
        if (!(ks[i] = mk_knowledge_sentence(items[i].prompt, items[i].target_new))) {
            rc = mk_fail(MK_ERR_NOMEM, "train: out of memory");
            goto done;
        }
    if ((rc = mk_editor_rep_forward(ed, MK_HEAD_Q, qt, nq, qout, &qp))) goto done;
    if ((rc = mk_editor_rep_forward(ed, MK_HEAD_K, ks, B, vals, &kp))) goto done;
    if ((rc = mk_editor_proto_forward(ed, proto, &pp))) goto done;

    /* L_q1: [keys ; proto], target i, no hinge */
    double lam_c = c->lambda_c;
    for (int j = 0; j < B; j++) cand[j] = keys + (size_t)j * R, dcand[j] = dkeys + (size_t)j * R;
    cand[B] = proto, dcand[B] = dprotod;
    for (int i = 0; i < B; i++) {
        int kept;
        L.q1 += row_eval(r1 + (size_t)i * R, cand, B + 1, i, c->t_qk, R, 0, c, prow, &kept) / B;
        if (backward && lam_c > 0)
            row_grad(r1 + (size_t)i * R, cand, dr1 + (size_t)i * R, dcand, B + 1, i, c->t_qk, R,
                     c, prow, lam_c / B);
    }
    /* L_q2: keys with the item's own replaced by the prototype */
    if (B >= 2) {
        for (int pass = 0; pass < 2; pass++)
            for (int a = 0; a < n2; a++) {
                int i = idx2[a], kept;
                cand[i] = proto, dcand[i] = dprotod;
                double l = row_eval(r2 + (size_t)a * R, cand, B, i, c->t_qp, R, 1, c, prow, &kept);
                if (pass == 0) {
                    L.q2_rows++;
                    if (kept) L.q2_kept++, L.q2 += l;
                } else if (kept && backward && lam_c > 0) {
                    row_grad(r2 + (size_t)a * R, cand, dr2 + (size_t)a * R, dcand, B, i, c->t_qp,
                             R, c, prow, lam_c / L.q2_kept);
                }
                cand[i] = keys + (size_t)i * R, dcand[i] = dkeys + (size_t)i * R;
            }
        if (L.q2_kept) L.q2 /= L.q2_kept;
    }
    /* L_q3: locality queries, target the prototype */
    for (int pass = 0; pass < 2; pass++)
        for (int a = 0; a < n3; a++) {
            int kept;
            double l = row_eval(r3 + (size_t)a * R, cand, B + 1, B, c->t_qp, R, 1, c, prow, &kept);
            if (pass == 0) {
                L.q3_rows++;
                if (kept) L.q3_kept++, L.q3 += l;
            } else if (kept && backward && lam_c > 0) {
                row_grad(r3 + (size_t)a * R, cand, dr3 + (size_t)a * R, dcand, B + 1, B, c->t_qp,
                         R, c, prow, lam_c / L.q3_kept);
            }
        }
    if (L.q3_kept) L.q3 /= L.q3_kept;

    /* prompts, then the LLM groups */
    if ((rc = mk_editor_prompts_forward(ed, vals, B, prompts, &pe))) goto done;
    for (int i = 0; i < B; i++, nseq++) {
        seqs[nseq].item = i;
        if ((rc = mk_triple_make(ltok, items[i].prompt, items[i].target_new, &seqs[nseq].tr)))
            goto done;
    }
    for (int a = 0; a < n2; a++, nseq++) {
        seqs[nseq].item = idx2[a];
        if ((rc = mk_triple_make(ltok, items[idx2[a]].rephrase, items[idx2[a]].target_new,
                                       &seqs[nseq].tr)))
            goto done;
    }
    for (int a = 0; a < nl; a++, nseq++) {
        seqs[nseq].item = idxl[a];
        if ((rc = mk_triple_make(ltok, items[idxl[a]].loc_prompt, items[idxl[a]].loc_truth,
                                       &seqs[nseq].tr)))
            goto done;
    }
    struct {
        int kind, first, n;
        float lambda;
        double *loss;
        int *pos, *counted;
    } grp[3] = {
        {GROUP_LABEL, 0, B, c->lambda_r, &L.rel, &L.rel_pos, &L.rel_counted},
        {GROUP_LABEL, B, n2, c->lambda_g, &L.gen, &L.gen_pos, &L.gen_counted},
        {GROUP_KL, B + n2, nl, c->lambda_l, &L.loc, &L.loc_pos, NULL},
    };
    for (int g = 0; g < 3; g++) {
        group_out go;
        int bw = backward && grp[g].lambda > 0;
        if (bw) memset(dP, 0, BTD * sizeof(float));
        if ((rc = run_group(llm, grp[g].kind, seqs + grp[g].first, grp[g].n, prompts, T, c,
                            bw ? dP : NULL, &go)))
            goto done;
        *grp[g].loss = go.counted ? go.sum / go.counted : 0.0;
        *grp[g].pos = go.pos;
        if (grp[g].counted) *grp[g].counted = go.counted;
        L.n_tokens += go.tokens;
        if (bw && go.counted) {
            float sc = (float)((double)grp[g].lambda / go.counted);
            for (size_t k = 0; k < BTD; k++) dprompts[k] += sc * dP[k];
        }
    }
    L.total = c->lambda_c * (L.q1 + L.q2 + L.q3) + c->lambda_r * L.rel + c->lambda_g * L.gen +
              c->lambda_l * L.loc;

    if (backward) {
        if ((rc = mk_editor_prompts_backward(ed, &pe, dprompts, dvals))) goto done;
        if ((rc = mk_editor_rep_backward(ed, MK_HEAD_K, &kp, dvals))) goto done;
        for (size_t k = 0; k < (size_t)nq * nR; k++) dq[k] = (float)dqd[k];
        for (size_t k = 0; k < nR; k++) dproto[k] = (float)dprotod[k];
        if ((rc = mk_editor_rep_backward(ed, MK_HEAD_Q, &qp, dq))) goto done;
        if ((rc = mk_editor_proto_backward(ed, &pp, dproto))) goto done;
    }
    if (out) *out = L;
done:
    for (int k = 0; k < nseq; k++) mk_triple_free(&seqs[k].tr);
    if (ks)
        for (int i = 0; i < B; i++) free((char *)ks[i]);
    mk_krm_pass_free(&qp);
    mk_krm_pass_free(&kp);
    mk_krm_pass_free(&pp);
    mk_penc_pass_free(&pe);
    free(seqs);
    free(ks);
    free(qt);
    free(idx2);
    free(fbuf);
    free(dbuf);
    free(prow);
    free(cand);
    free(dcand);
    return rc;
}

int mk_train_step(mk_editor *ed, const mk_llama *llm, const mk_train_config *c,
                  const mk_train_item *items, int B, const uint8_t *flips, mk_train_losses *out) {
    int rc = mk_editor_train_alloc(ed);
    if (rc) return rc;
    mk_editor_zero_grad(ed);
    if ((rc = mk_train_loss(ed, llm, c, items, B, flips, 1, out))) return rc;
    mk_editor_adam_step(ed, c->lr, c->beta1, c->beta2, c->adam_eps);
    return MK_OK;
}
