/* triple.c - token triples of (prompt, target) pairs (see triple.h). */
#include "triple.h"

#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../text/tokenizer.h"

void mk_triple_free(mk_triple *t) {
    if (!t) return;
    free(t->input);
    free(t->label);
    free(t->mask);
    memset(t, 0, sizeof *t);
}

int mk_triple_make(const mk_tokenizer *tok, const char *prompt, const char *target, mk_triple *t) {
    memset(t, 0, sizeof *t);
    if (!tok) return mk_fail(MK_ERR_ARG, "the LLM has no tokenizer");
    if (!prompt || !target || !target[0])
        return mk_fail(MK_ERR_ARG, "a token triple needs a prompt and a non-empty target");
    int32_t *ids = NULL, *pids = NULL;
    size_t n = 0, np = 0, lp = strlen(prompt), lt = strlen(target);
    int sp = lt == 0 || target[0] != ' '; /* the target gets a leading space */
    char *text = malloc(lp + lt + 2);
    int rc = MK_OK;
    if (!text) return mk_fail(MK_ERR_NOMEM, "out of memory");
    memcpy(text, prompt, lp);
    if (sp) text[lp] = ' ';
    memcpy(text + lp + (size_t)sp, target, lt);
    text[lp + (size_t)sp + lt] = 0;
    if ((rc = mk_tok_encode(tok, text, lp + (size_t)sp + lt, MK_TOK_SPECIAL, &ids, &n))) goto fail;
    if ((rc = mk_tok_encode(tok, prompt, lp, MK_TOK_SPECIAL, &pids, &np))) goto fail;
    if (np == 0) {
        rc = mk_fail(MK_ERR_ARG, "prompt \"%.60s\" encodes to no token", prompt);
        goto fail;
    }
    if (n < 2 || n - 1 > (size_t)INT32_MAX / 2) {
        rc = mk_fail(MK_ERR_ARG, "prompt \"%.60s\" + target \"%.60s\" give %zu tokens", prompt, target, n);
        goto fail;
    }
    t->L = (int)(n - 1);
    t->first = (int)np - 1;
    t->input = malloc((size_t)t->L * sizeof *t->input);
    t->label = malloc((size_t)t->L * sizeof *t->label);
    t->mask = malloc((size_t)t->L * sizeof *t->mask);
    if (!t->input || !t->label || !t->mask) {
        rc = mk_fail(MK_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < t->L; i++) {
        t->input[i] = ids[i];
        t->label[i] = ids[i + 1];
        t->mask[i] = i >= t->first ? 1.0f : 0.0f;
        t->n_mask += i >= t->first;
    }
    free(text);
    free(ids);
    free(pids);
    return MK_OK;
fail:
    free(text);
    free(ids);
    free(pids);
    mk_triple_free(t);
    return rc;
}
