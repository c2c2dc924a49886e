/* cmd_generate.c - `medrek generate`: text (or ids) from a Llama model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../model/llama.h"
#include "../text/tokenizer.h"
#include "cli.h"

static const char *USAGE =
    "usage: medrek generate --model PATH --prompt TEXT [options]\n"
    "  --model PATH        a .gguf file or a Hugging Face model directory (required)\n"
    "  --tokenizer FILE    tokenizer.json, vocab.json or .gguf to use instead of the\n"
    "                      model's own (default: the model's)\n"
    "  --prompt TEXT       the prompt (encoded with the tokenizer's BOS template)\n"
    "  --prompt-ids LIST   the prompt as space-separated token ids instead of text\n"
    "  --max-tokens N      new tokens at most (default 64)\n"
    "  --temp T            sampling temperature; 0 = greedy (default 0)\n"
    "  --top-k K           keep the K most likely tokens; 0 = off (default 0)\n"
    "  --top-p P           keep the smallest set with probability >= P; 1 = off (default 1)\n"
    "  --seed S            sampling seed (default 42)\n"
    "  --ids               print the generated ids (space-separated, one line) instead of text\n"
    "Prints the generated text on stdout and the speed (tokens/s) on stderr.\n";

typedef struct {
    const mk_tokenizer *tok;
    int32_t *ids;
    int n;
    size_t printed; /* bytes of the decoded text already written */
    int as_ids;
} stream;

/* Print the text the new token adds (decoding everything so far keeps
 * multi-token characters and leading-space rules right). */
static int on_token(void *ud, int32_t id) {
    stream *s = ud;
    s->ids[s->n++] = id;
    if (s->as_ids) return 0;
    char *txt = NULL;
    size_t len = 0;
    if (mk_tok_decode(s->tok, s->ids, (size_t)s->n, 1, &txt, &len) == MK_OK) {
        if (len > s->printed) {
            fwrite(txt + s->printed, 1, len - s->printed, stdout);
            fflush(stdout);
            s->printed = len;
        }
    } else {
        mk_clear_error();
    }
    free(txt);
    return 0;
}

static int parse_ids(const char *s, int32_t **out, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < -2147483647L || x > 2147483647L) {
            free(v);
            return -1;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        s = end;
    }
    *out = v;
    *n = k;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *prompt = NULL, *prompt_ids = NULL;
    int max_tokens = 64, top_k = 0, as_ids = 0;
    float temp = 0.0f, top_p = 1.0f;
    int64_t seed = 42;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model},       {"--tokenizer", CLI_STR, &tokfile},
        {"--prompt", CLI_STR, &prompt},     {"--prompt-ids", CLI_STR, &prompt_ids},
        {"--max-tokens", CLI_INT, &max_tokens}, {"--temp", CLI_FLOAT, &temp},
        {"--top-k", CLI_INT, &top_k},       {"--top-p", CLI_FLOAT, &top_p},
        {"--seed", CLI_I64, &seed},         {"--ids", CLI_FLAG, &as_ids},
    };
    int r = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL, USAGE);
    if (r == 1) return 0;
    if (r) return r;
    if (!model) return cli_usage_error("generate", USAGE, "--model is required");
    if (!prompt && !prompt_ids)
        return cli_usage_error("generate", USAGE, "--prompt (or --prompt-ids) is required");
    if (prompt && prompt_ids)
        return cli_usage_error("generate", USAGE, "give --prompt or --prompt-ids, not both");
    if (max_tokens < 0 || max_tokens > 1000000)
        return cli_usage_error("generate", USAGE, "--max-tokens must be in [0, 1000000]");
    if (!(temp >= 0) || top_k < 0 || !(top_p > 0 && top_p <= 1))
        return cli_usage_error("generate", USAGE,
                               "need --temp >= 0, --top-k >= 0 and 0 < --top-p <= 1");

    mk_llama *m = NULL;
    mk_tokenizer *tok = NULL;
    int32_t *ids = NULL, *out = NULL;
    size_t n_ids = 0;
    int rc, ret = 1;
    if ((rc = mk_llama_open_ex(model, tokfile ? MK_LLAMA_NO_TOKENIZER : 0, &m))) {
        ret = cli_die_lib("generate", rc);
        goto done;
    }
    if (tokfile) {
        if ((rc = mk_tok_load(tokfile, &tok))) {
            ret = cli_die_lib("generate", rc);
            goto done;
        }
        mk_llama_set_tokenizer(m, tok);
    }
    const mk_tokenizer *t = mk_llama_tokenizer(m);
    if (!t && (prompt || !as_ids)) {
        const char *why = mk_llama_tokenizer_error(m);
        fprintf(stderr, "medrek generate: %s: no usable tokenizer%s%s; pass --tokenizer FILE%s\n",
                model, why[0] ? ": " : "", why, prompt ? "" : " or --ids");
        goto done;
    }
    if (t && mk_tok_n_vocab(t) > (size_t)mk_llama_cfg(m)->n_vocab) {
        fprintf(stderr, "medrek generate: the tokenizer has %zu entries but the model only %d "
                "embeddings\n", mk_tok_n_vocab(t), mk_llama_cfg(m)->n_vocab);
        goto done;
    }
    if (prompt) {
        if ((rc = mk_tok_encode(t, prompt, strlen(prompt), MK_TOK_SPECIAL, &ids, &n_ids))) {
            ret = cli_die_lib("generate", rc);
            goto done;
        }
    } else if (parse_ids(prompt_ids, &ids, &n_ids) != 0) {
        ret = cli_usage_error("generate", USAGE, "--prompt-ids: expected integers");
        goto done;
    }
    if (n_ids == 0) {
        fprintf(stderr, "medrek generate: the prompt encodes to no tokens\n");
        goto done;
    }
    if (n_ids > (size_t)mk_llama_cfg(m)->n_ctx) {
        fprintf(stderr, "medrek generate: the prompt has %zu tokens, more than the context of %d\n",
                n_ids, mk_llama_cfg(m)->n_ctx);
        goto done;
    }
    out = malloc(((size_t)max_tokens + 1) * sizeof *out);
    stream st = {t, malloc(((size_t)max_tokens + 1) * sizeof(int32_t)), 0, 0, as_ids};
    if (!out || !st.ids) {
        free(st.ids);
        fprintf(stderr, "medrek generate: out of memory\n");
        goto done;
    }
    mk_gen_params p;
    mk_gen_params_default(&p);
    p.max_tokens = max_tokens;
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.seed = (uint64_t)seed;
    p.eos_id = t ? mk_tok_eos(t) : -1;
    p.on_token = on_token;
    p.ud = &st;
    int n_out = 0;
    mk_gen_stats gs;
    rc = max_tokens ? mk_llama_generate(m, NULL, 0, ids, (int)n_ids, &p, out, &n_out, &gs) : MK_OK;
    free(st.ids);
    if (rc) {
        if (!as_ids && st.printed) putchar('\n');
        ret = cli_die_lib("generate", rc);
        goto done;
    }
    if (as_ids) {
        for (int i = 0; i < n_out; i++) printf(i ? " %d" : "%d", (int)out[i]);
        putchar('\n');
    } else if (st.printed) {
        putchar('\n');
    }
    fflush(stdout);
    if (max_tokens)
        fprintf(stderr, "prompt: %d positions in %.3f s (%.1f tokens/s); generated: %d tokens in "
                "%.3f s (%.1f tokens/s)\n", gs.n_prompt, gs.prompt_s,
                gs.prompt_s > 0 ? gs.n_prompt / gs.prompt_s : 0.0, gs.n_generated, gs.gen_s,
                gs.gen_s > 0 ? gs.n_generated / gs.gen_s : 0.0);
    ret = 0;
done:
    free(ids);
    free(out);
    mk_llama_close(m);
    return ret;
}
