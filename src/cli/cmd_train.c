/* cmd_train.c - `medrek train`: train an editor (encoder, q/k heads,
 * prototype, prompt encoder) on edit data with the frozen LLM (spec 7).
 *
 * Order of batches: each epoch shuffles the items (Fisher-Yates with the
 * seeded RNG) and cuts them into consecutive batches of --batch (the last
 * one may be smaller); the coin flips of each batch come from the same RNG.
 * The editor file is written atomically at the end, every --save-every
 * steps, and on SIGINT/SIGTERM (after the step in progress; a second
 * signal kills at once, the last saved file stays intact). Adam's moments
 * are not saved: a later run starts them from zero. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/ops.h"
#include "../editor/train.h"
#include "../store/kb.h"
#include "cli.h"

static const char *USAGE =
    "usage: medrek train --model PATH --editor IN --data FILE --out OUT [options]\n"
    "  --model PATH       the frozen LLM: .gguf file or Hugging Face directory\n"
    "  --editor IN        editor file to start from (medrek editor init, or a trained one)\n"
    "  --data FILE        training edits: MedVersa / MedCF JSON, or a JSON array / JSON\n"
    "                     lines of {prompt, target_new, rephrase_prompt, locality_prompt,\n"
    "                     locality_ground_truth}; an item without a rephrase trains no\n"
    "                     L_q2 / L_gen term (q1 = its prompt), one without a locality\n"
    "                     probe no L_q3 / L_loc term\n"
    "  --valid FILE       validation edits: mean losses at every save and at the end\n"
    "  --out OUT          where the trained editor is written (atomically)\n"
    "  --steps N          optimisation steps (default: --epochs)\n"
    "  --epochs E         passes over the data (default 1; ignored with --steps)\n"
    "  --batch B          edits per step (default 8)\n"
    "  --lr LR            Adam learning rate (default 1e-5; betas 0.9/0.999, eps 1e-8)\n"
    "  --seed S           shuffling and coin flips (default 1)\n"
    "  --lambda-c X       weight of L_q1 + L_q2 + L_q3 (default 1)\n"
    "  --lambda-r X       weight of L_rel (default 1)\n"
    "  --lambda-g X       weight of L_gen (default 1)\n"
    "  --lambda-l X       weight of L_loc (default 1)\n"
    "  --t-qk X           temperature of L_q1 (default 1)\n"
    "  --t-qp X           temperature of L_q2 and L_q3 (default 1)\n"
    "  --hinge X          hinge scale h (default 1.2)\n"
    "  --log-every N      print mean losses every N steps (default 10)\n"
    "  --save-every N     write OUT every N steps (default 100; 0: only at the end)\n"
    "Ctrl-C (SIGINT) or SIGTERM: finish the current step, write OUT, exit 130.\n"
    "Exit status: 0 done, 1 error, 2 bad arguments, 130 interrupted (OUT written).\n";

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) { g_stop = sig; }

/* SA_RESETHAND: a second signal ends the process at once */
static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void to_item(const mk_edit_request *r, mk_train_item *it) {
    it->prompt = r->prompt;
    it->target_new = r->target_new;
    it->rephrase = r->rephrase_prompt;
    it->loc_prompt = r->locality_prompt;
    it->loc_truth = r->locality_ground_truth;
}

static int has(const char *s) { return s && *s; }

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

typedef struct { double total, q1, q2, q3, rel, gen, loc; int n; } loss_acc;

static void acc_add(loss_acc *a, const mk_train_losses *l, int w) {
    a->total += w * l->total, a->q1 += w * l->q1, a->q2 += w * l->q2, a->q3 += w * l->q3;
    a->rel += w * l->rel, a->gen += w * l->gen, a->loc += w * l->loc;
    a->n += w;
}

static void acc_print(const char *what, const loss_acc *a) {
    double n = a->n ? a->n : 1;
    fprintf(stderr, "%s L %.4f (q1 %.4f q2 %.4f q3 %.4f rel %.4f gen %.4f loc %.4f)", what,
            a->total / n, a->q1 / n, a->q2 / n, a->q3 / n, a->rel / n, a->gen / n, a->loc / n);
}

/* Mean losses over a whole file (batches in file order, flips from a fixed
 * seed so that every evaluation sees the same queries). */
static int evaluate(mk_editor *ed, const mk_llama *llm, const mk_train_config *c,
                    const mk_train_item *items, int64_t n, int B, loss_acc *out) {
    mk_rng rng;
    uint8_t *flips = malloc((size_t)B);
    memset(out, 0, sizeof *out);
    if (!flips) return mk_fail(MK_ERR_NOMEM, "train: out of memory");
    mk_rng_seed(&rng, 12345);
    for (int64_t s = 0; s < n; s += B) {
        int b = (int)(n - s < B ? n - s : B);
        mk_train_losses l;
        mk_train_flips(&rng, b, flips);
        int rc = mk_train_loss(ed, llm, c, items + s, b, flips, 0, &l);
        if (rc) {
            free(flips);
            return rc;
        }
        acc_add(out, &l, b);
    }
    free(flips);
    return MK_OK;
}

int cmd_train(int argc, char **argv) {
    const char *model = NULL, *edp = NULL, *data = NULL, *valid = NULL, *outp = NULL;
    int steps = 0, epochs = 0, batch = 8, log_every = 10, save_every = 100;
    int64_t seed = 1;
    mk_train_config c;
    mk_train_config_default(&c);
    cli_opt opts[] = {
        {"--model", CLI_STR, &model},       {"--editor", CLI_STR, &edp},
        {"--data", CLI_STR, &data},         {"--valid", CLI_STR, &valid},
        {"--out", CLI_STR, &outp},          {"--steps", CLI_INT, &steps},
        {"--epochs", CLI_INT, &epochs},     {"--batch", CLI_INT, &batch},
        {"--lr", CLI_FLOAT, &c.lr},         {"--seed", CLI_I64, &seed},
        {"--lambda-c", CLI_FLOAT, &c.lambda_c}, {"--lambda-r", CLI_FLOAT, &c.lambda_r},
        {"--lambda-g", CLI_FLOAT, &c.lambda_g}, {"--lambda-l", CLI_FLOAT, &c.lambda_l},
        {"--t-qk", CLI_FLOAT, &c.t_qk},     {"--t-qp", CLI_FLOAT, &c.t_qp},
        {"--hinge", CLI_FLOAT, &c.hinge},   {"--log-every", CLI_INT, &log_every},
        {"--save-every", CLI_INT, &save_every},
    };
    int r = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL, USAGE);
    if (r == 1) return 0;
    if (r) return r;
    if (!model || !edp || !data || !outp)
        return cli_usage_error("train", USAGE, "--model, --editor, --data and --out are required");
    if (steps < 0 || epochs < 0) return cli_usage_error("train", USAGE, "--steps and --epochs must be >= 0");
    if (steps && epochs)
        return cli_usage_error("train", USAGE, "give --steps or --epochs, not both");
    if (batch < 1 || batch > 4096) return cli_usage_error("train", USAGE, "--batch must be in 1..4096");
    if (log_every < 1) return cli_usage_error("train", USAGE, "--log-every must be >= 1");
    if (save_every < 0) return cli_usage_error("train", USAGE, "--save-every must be >= 0");
    if (mk_train_config_check(&c)) return cli_usage_error("train", USAGE, "%s", mk_errmsg());
    if (!epochs) epochs = 1;

    mk_edit_request *reqs = NULL, *vreqs = NULL;
    int64_t n = 0, nv = 0, *order = NULL;
    mk_train_item *items = NULL, *vitems = NULL, *bat = NULL;
    uint8_t *flips = NULL;
    mk_llama *llm = NULL;
    mk_editor *ed = NULL;
    int rc, ret = 1;

    if ((rc = mk_edit_requests_parse_file(data, &reqs, &n))) goto lib_fail;
    if (n == 0) {
        fprintf(stderr, "medrek train: %s: no edits in the file\n", data);
        goto done;
    }
    if (valid && (rc = mk_edit_requests_parse_file(valid, &vreqs, &nv))) goto lib_fail;
    items = malloc((size_t)n * sizeof *items);
    order = malloc((size_t)n * sizeof *order);
    vitems = malloc((size_t)(nv ? nv : 1) * sizeof *vitems);
    bat = malloc((size_t)batch * sizeof *bat);
    flips = malloc((size_t)batch);
    if (!items || !order || !vitems || !bat || !flips) {
        fprintf(stderr, "medrek train: out of memory\n");
        goto done;
    }
    int64_t no_rep = 0, no_loc = 0;
    for (int64_t i = 0; i < n; i++) {
        to_item(&reqs[i], &items[i]);
        order[i] = i;
        no_rep += !has(items[i].rephrase);
        no_loc += !(has(items[i].loc_prompt) && has(items[i].loc_truth));
    }
    for (int64_t i = 0; i < nv; i++) to_item(&vreqs[i], &vitems[i]);

    if ((rc = mk_llama_open(model, &llm))) goto lib_fail;
    if (!mk_llama_tokenizer(llm)) {
        fprintf(stderr, "medrek train: %s: the LLM's tokenizer is needed for training (%s)\n", model,
                mk_llama_tokenizer_error(llm));
        goto done;
    }
    if ((rc = mk_editor_load(edp, &ed))) goto lib_fail;
    const mk_llama_config *lc = mk_llama_cfg(llm);
    if ((rc = mk_editor_check_llm(ed, lc->dim, mk_llama_fingerprint(llm)))) goto lib_fail;
    if ((rc = mk_editor_train_alloc(ed))) goto lib_fail;

    int64_t per_epoch = (n + batch - 1) / batch;
    int64_t total = steps ? steps : per_epoch * epochs;
    fprintf(stderr,
            "medrek train: model %s (%s, V=%d D=%d)\n"
            "  editor %s (%s, T=%d R=%d D=%d P=%d, %zu parameters) -> %s\n"
            "  data %s: %lld edits (%lld without rephrase, %lld without locality probe)%s%s\n"
            "  steps %lld (%lld per epoch, %s), batch %d, Adam lr %g betas %g/%g eps %g, seed %lld\n"
            "  lambda c %g r %g g %g l %g, t_qk %g t_qp %g, hinge %g, eps %g\n"
            "  log every %d steps, save every %d steps%s, %d threads\n",
            model, mk_llama_fingerprint(llm), lc->n_vocab, lc->dim, edp,
            mk_penc_kind_name(ed->cfg.kind), ed->cfg.T, ed->cfg.R, ed->cfg.D, ed->cfg.P,
            ed->n_params, outp, data, (long long)n, (long long)no_rep, (long long)no_loc,
            valid ? "; valid " : "", valid ? valid : "", (long long)total, (long long)per_epoch,
            steps ? "--steps" : "--epochs", batch, c.lr, c.beta1, c.beta2, c.adam_eps,
            (long long)seed, c.lambda_c, c.lambda_r, c.lambda_g, c.lambda_l, c.t_qk, c.t_qp,
            c.hinge, c.eps, log_every, save_every, save_every ? "" : " (only at the end)",
            mk_num_threads());
    if (valid)
        fprintf(stderr, "  valid %s: %lld edits\n", valid, (long long)nv);

    catch_signals();
    mk_rng rng;
    mk_rng_seed(&rng, (uint64_t)seed);
    int64_t pos = n; /* position in the epoch's order; n = reshuffle */
    int64_t step = 0, edits_done = 0, epoch = 0;
    loss_acc win;
    memset(&win, 0, sizeof win);
    double t0 = cli_now();
    int interrupted = 0;
    while (step < total) {
        if (pos >= n) { /* new epoch */
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)(mk_rng_next(&rng) % (uint64_t)(i + 1)), t = order[i];
                order[i] = order[j], order[j] = t;
            }
            pos = 0;
            epoch++;
        }
        int b = (int)(n - pos < batch ? n - pos : batch);
        for (int k = 0; k < b; k++) bat[k] = items[order[pos + k]];
        pos += b;
        mk_train_flips(&rng, b, flips);
        mk_train_losses l;
        if ((rc = mk_train_step(ed, llm, &c, bat, b, flips, &l))) goto lib_fail;
        if (!isfinite(l.total)) {
            fprintf(stderr, "medrek train: the loss is not finite at step %lld (lower --lr?); "
                    "%s not written at this step\n", (long long)step + 1, outp);
            goto done;
        }
        step++;
        edits_done += b;
        acc_add(&win, &l, b);
        if (step % log_every == 0 || step == total) {
            double el = cli_now() - t0, rate = el > 0 ? (double)edits_done / el : 0;
            char eta[32], els[32];
            fmt_time(el / (double)step * (double)(total - step), eta, sizeof eta);
            fmt_time(el, els, sizeof els);
            char what[96];
            snprintf(what, sizeof what, "step %lld/%lld epoch %lld |", (long long)step,
                     (long long)total, (long long)epoch);
            acc_print(what, &win);
            fprintf(stderr, " | %.2f edits/s | %s elapsed, ETA %s\n", rate, els, eta);
            memset(&win, 0, sizeof win);
        }
        if (g_stop && step < total) { /* the final save below is the same */
            interrupted = 1;
            break;
        }
        if (save_every && step % save_every == 0 && step < total) {
            if ((rc = mk_editor_save(ed, outp))) goto lib_fail;
            fprintf(stderr, "saved %s at step %lld\n", outp, (long long)step);
            if (valid && nv) {
                loss_acc va;
                if ((rc = evaluate(ed, llm, &c, vitems, nv, batch, &va))) goto lib_fail;
                acc_print("  valid", &va);
                fputc('\n', stderr);
            }
        }
    }
    if ((rc = mk_editor_save(ed, outp))) goto lib_fail;
    if (valid && nv && !interrupted) {
        loss_acc va;
        if ((rc = evaluate(ed, llm, &c, vitems, nv, batch, &va))) goto lib_fail;
        acc_print("valid", &va);
        fputc('\n', stderr);
    }
    double el = cli_now() - t0;
    if (interrupted) {
        fprintf(stderr, "medrek train: interrupted (signal %d) after step %lld; wrote %s\n",
                (int)g_stop, (long long)step, outp);
        ret = 130;
    } else {
        printf("trained %lld steps (%lld edits, %.1f s, %.2f edits/s); wrote %s (%s)\n",
               (long long)step, (long long)edits_done, el, el > 0 ? edits_done / el : 0.0, outp,
               mk_editor_fingerprint(ed));
        ret = 0;
    }
    goto done;
lib_fail:
    ret = cli_die_lib("train", rc);
done:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    mk_editor_free(ed);
    mk_llama_close(llm);
    free(flips);
    free(bat);
    free(vitems);
    free(items);
    free(order);
    mk_edit_requests_free(reqs, n);
    mk_edit_requests_free(vreqs, nv);
    return ret;
}
