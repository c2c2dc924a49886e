/* session.h - the edit path and the question path of MedREK put together:
 * a frozen LLM, an editor and a knowledge base, checked against each other.
 *
 * Edit path (spec 4):     key = q_head(prompt), value = k_head(sentence),
 *                         prompts = prompt_encoder(value) -> knowledge base
 * Question path (5, 6):   q = q_head(question); retrieve against
 *                         [prototype key ; active keys]; the kept rows'
 *                         prompt vectors are prepended to the question.
 */
#ifndef MK_SESSION_H
#define MK_SESSION_H

#include <stdint.h>

#include "../editor/editor.h"
#include "../editor/retrieve.h"
#include "../model/llama.h"
#include "kb.h"

typedef struct {
    mk_llama *llm;
    mk_editor *ed;
    mk_kb *kb;
    const char *editor_fp;  /* mk_editor_fingerprint(ed) */
    mk_kb_active act;       /* row 0 = prototype key, rows 1.. = active edits;
                               read-only sessions hold keys only (prompts NULL) */
    mk_retr_kb rkb;         /* view of act */
    int keys_only;
} mk_session;

enum {
    MK_SESSION_READONLY = 1, /* open the knowledge base read-only and load the
                                keys only (ask: prompts come per retrieved edit) */
    MK_SESSION_NO_LLM_TOKENIZER = 2,
    MK_SESSION_NO_LOAD = 4   /* do not load the active edits (re-encoding) */
};

/* Open the three, check the editor was made for this LLM (width and
 * fingerprint), and load the active edits (refusing, with the re-encode
 * command, edits encoded by another editor). A missing knowledge base is
 * created unless MK_SESSION_READONLY. */
int mk_session_open(const char *kb_path, const char *model_path, const char *editor_path,
                    int flags, mk_session **out);
void mk_session_close(mk_session *s);
/* Reload the active edits after the knowledge base changed. */
int mk_session_reload(mk_session *s);

/* Progress callback for long encodings: done of total; may be NULL. */
typedef void (*mk_progress_fn)(void *ud, int64_t done, int64_t total);

/* Encode n edit requests: keys (n, R) and prompts (n, T, D), malloc'd
 * (one allocation each), computed in chunks so progress can be shown. */
int mk_session_encode(mk_session *s, const mk_edit_request *reqs, int64_t n, float **keys,
                      float **prompts, mk_progress_fn progress, void *ud);

/* Re-encode every active edit whose vectors are missing or come from
 * another editor (after an import, or with a new editor), in one
 * transaction recorded in the history. *n_done (may be NULL) receives the
 * count; the active edits are reloaded afterwards. */
int mk_session_reencode(mk_session *s, const char *author, const char *reason,
                        int64_t *n_done, mk_progress_fn progress, void *ud);

/* Retrieve for n questions (spec 5); res as mk_retrieve's. */
int mk_session_retrieve(mk_session *s, const char *const *questions, int n,
                        const mk_retr_opts *opts, mk_retr_result *res);

/* The prefix of query b of res: its kept edits' prompt vectors in rank
 * order into prefix (capacity max_vecs vectors of D floats), *n_vecs of
 * them (0: run unedited). Read from the knowledge base when the session
 * holds keys only. */
int mk_session_prefix(mk_session *s, const mk_retr_result *res, int64_t b, float *prefix,
                      int64_t max_vecs, int64_t *n_vecs);

/* Generate an answer to `question` with the prefix (n_prefix, D) (may be
 * 0/NULL: unedited). *text is malloc'd (the new text only). */
int mk_session_answer(mk_session *s, const char *question, const float *prefix, int n_prefix,
                      const mk_gen_params *gp, char **text, mk_gen_stats *st);

#endif
