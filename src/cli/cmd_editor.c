/* cmd_editor.c - `medrek editor init` (a randomly initialised editor for an
 * LLM around a Hugging Face encoder) and `medrek editor info` (what an
 * editor file holds). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../editor/editor.h"
#include "../io/safetensors.h"
#include "../model/llama.h"
#include "../text/tokenizer.h"
#include "cli.h"

static const char usage_top[] =
    "usage: medrek editor init --llm FILE --encoder DIR --out FILE [options]\n"
    "       medrek editor info FILE [--llm FILE]\n"
    "\n"
    "  init   create a randomly initialised MedREK editor (encoder, q/k heads,\n"
    "         prototype, prompt encoder) for an LLM, in one .safetensors file\n"
    "  info   print an editor file's configuration (and check it against an LLM)\n"
    "\n"
    "medrek editor COMMAND --help lists the options of COMMAND.\n";

static const char usage_init[] =
    "usage: medrek editor init --llm FILE --encoder DIR|FILE --out FILE [options]\n"
    "\n"
    "Create a randomly initialised editor: the encoder's weights are copied in,\n"
    "the heads and prompt encoder get PyTorch's default Linear init, the\n"
    "prototype uniform [-0.05, 0.05). The LLM gives the prompt width D and the\n"
    "fingerprint the editor is tied to; the encoder's tokenizer is embedded.\n"
    "\n"
    "  --llm FILE               the LLM to edit: .gguf, HF directory or .safetensors\n"
    "                           with config.json beside it (required unless --llm-dim)\n"
    "  --llm-dim D              no LLM at hand: prompt width D, no fingerprint\n"
    "  --encoder DIR|FILE       Hugging Face RoBERTa/BERT directory with config.json,\n"
    "                           weights and tokenizer files (required)\n"
    "  --out FILE               the editor file to write (required)\n"
    "  --prompt-encoder KIND    attn (MedREK) or mlp (RECIPE) (default: attn)\n"
    "  --prompt-tokens T        prompt vectors per edit (default: 3)\n"
    "  --rep-dim R              knowledge-representation size (default: 4096)\n"
    "  --heads NH               prompt-encoder attention heads, dividing D (default: 8)\n"
    "  --proto-tokens P         prototype vectors (default: 10)\n"
    "  --seed S                 initialisation seed (default: 1)\n"
    "  --help                   print this text\n"
    "\n"
    "Exit status: 0 on success, 1 when a file cannot be read or written, 2 on a\n"
    "usage error.\n";

static const char usage_info[] =
    "usage: medrek editor info FILE [--llm FILE]\n"
    "\n"
    "Print the configuration of an editor file: prompt encoder, dimensions,\n"
    "encoder, tokenizer, the LLM it was made for, parameter count and the\n"
    "editor's fingerprint.\n"
    "\n"
    "  --llm FILE   also check that the editor fits this LLM (width and\n"
    "               fingerprint); exit status 1 when it does not\n"
    "  --help       print this text\n";

/* run cli_parse with "editor <sub>" as the command name in messages */
static int parse(int argc, char **argv, const char *name, const cli_opt *opts, int n_opts,
                 char **pos, int max_pos, int *n_pos, const char *usage) {
    char **v = malloc((size_t)(argc + 1) * sizeof *v);
    if (!v) return 2;
    v[0] = (char *)name;
    for (int i = 1; i < argc; i++) v[i] = argv[i];
    v[argc] = NULL;
    int rc = cli_parse(argc, v, opts, n_opts, pos, max_pos, n_pos, usage);
    free(v);
    return rc;
}

static int open_llm(const char *cmd, const char *path, mk_llama **m) {
    int rc = mk_llama_open_ex(path, MK_LLAMA_NO_TOKENIZER, m);
    if (rc) return cli_die_lib(cmd, rc);
    return 0;
}

static int cmd_init(int argc, char **argv) {
    const char *cmd = "editor init";
    const char *llm = NULL, *encoder = NULL, *out = NULL, *kind = "attn";
    int T = 3, R = 4096, NH = 8, P = 10, llm_dim = 0;
    int64_t seed = 1;
    const cli_opt opts[] = {
        {"--llm", CLI_STR, &llm},           {"--llm-dim", CLI_INT, &llm_dim},
        {"--encoder", CLI_STR, &encoder},   {"--out", CLI_STR, &out},
        {"--prompt-encoder", CLI_STR, &kind}, {"--prompt-tokens", CLI_INT, &T},
        {"--rep-dim", CLI_INT, &R},         {"--heads", CLI_INT, &NH},
        {"--proto-tokens", CLI_INT, &P},    {"--seed", CLI_I64, &seed},
    };
    char *pos[1];
    int npos = 0;
    int rc = parse(argc, argv, cmd, opts, (int)(sizeof opts / sizeof opts[0]), pos, 0, &npos,
                   usage_init);
    if (rc == 1) return 0;
    if (rc) return rc;
    if (!encoder) return cli_usage_error(cmd, usage_init, "--encoder is required");
    if (!out) return cli_usage_error(cmd, usage_init, "--out is required");
    if (!llm && llm_dim <= 0)
        return cli_usage_error(cmd, usage_init, "--llm is required (or --llm-dim D without an LLM)");
    if (llm && llm_dim)
        return cli_usage_error(cmd, usage_init, "give --llm or --llm-dim, not both");
    mk_editor_config c;
    mk_editor_config_default(&c);
    if (!(c.kind = mk_penc_kind_parse(kind)))
        return cli_usage_error(cmd, usage_init, "--prompt-encoder must be attn or mlp, not '%s'",
                               kind);
    if (seed < 0) return cli_usage_error(cmd, usage_init, "--seed must be >= 0");
    c.T = T, c.R = R, c.NH = NH, c.P = P, c.seed = (uint64_t)seed;
    mk_llama *m = NULL;
    if (llm) {
        if ((rc = open_llm(cmd, llm, &m))) return rc;
        c.D = mk_llama_cfg(m)->dim;
        c.llm_fingerprint = mk_llama_fingerprint(m);
        c.llm_name = llm;
    } else {
        c.D = llm_dim;
    }
    printf("editor init: prompt encoder %s, T=%d, R=%d, D=%d, NH=%d, P=%d, seed %" PRId64 "\n",
           mk_penc_kind_name(c.kind), c.T, c.R, c.D, c.NH, c.P, seed);
    printf("  llm     %s%s%s\n", llm ? llm : "(none)", llm ? "  " : "",
           llm ? c.llm_fingerprint : "");
    printf("  encoder %s\n", encoder);
    fflush(stdout);
    mk_editor *ed = NULL;
    rc = mk_editor_init(&c, encoder, &ed);
    mk_llama_close(m);
    if (rc) {
        /* a bad dimension is the user's choice of flags */
        if (rc == MK_ERR_ARG) return cli_usage_error(cmd, usage_init, "%s", mk_errmsg());
        return cli_die_lib(cmd, rc);
    }
    if ((rc = mk_editor_save(ed, out))) {
        mk_editor_free(ed);
        return cli_die_lib(cmd, rc);
    }
    printf("wrote %s: %zu parameters (%.1f MB), fingerprint %s\n", out, ed->n_params,
           (double)ed->n_params * 4 / 1e6, mk_editor_fingerprint(ed));
    mk_editor_free(ed);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    const char *cmd = "editor info";
    const char *llm = NULL;
    const cli_opt opts[] = {{"--llm", CLI_STR, &llm}};
    char *pos[1];
    int npos = 0;
    int rc = parse(argc, argv, cmd, opts, 1, pos, 1, &npos, usage_info);
    if (rc == 1) return 0;
    if (rc) return rc;
    if (npos != 1) return cli_usage_error(cmd, usage_info, "give one editor FILE");
    mk_editor *ed = NULL;
    if ((rc = mk_editor_load(pos[0], &ed))) return cli_die_lib(cmd, rc);
    const mk_enc_config *e = &ed->enc_cfg;
    size_t n_enc = mk_enc_n_params(e), n_head = mk_head_n_params(ed->F, ed->cfg.R);
    size_t n_pe = mk_penc_n_params(&ed->pe_cfg);
    printf("editor          %s\n", pos[0]);
    printf("format          %s version %d\n", MK_EDITOR_FORMAT, MK_EDITOR_VERSION);
    printf("fingerprint     %s\n", ed->fp); /* computed by mk_editor_load */
    printf("prompt_encoder  %s%s\n", mk_penc_kind_name(ed->cfg.kind),
           ed->cfg.kind == MK_PENC_ATTN ? " (MedREK, faithful: one key token)" : " (RECIPE)");
    printf("prompt_tokens   %d\n", ed->cfg.T);
    printf("rep_dim         %d\n", ed->cfg.R);
    printf("llm_dim         %d\n", ed->cfg.D);
    if (ed->cfg.kind == MK_PENC_ATTN) printf("prompt_heads    %d\n", ed->cfg.NH);
    printf("proto_tokens    %d\n", ed->cfg.P);
    printf("seed            %" PRIu64 "\n", ed->cfg.seed);
    printf("llm             %s\n", ed->cfg.llm_name[0] ? ed->cfg.llm_name : "(unnamed)");
    printf("llm_fingerprint %s\n", ed->cfg.llm_fingerprint[0] ? ed->cfg.llm_fingerprint : "(none)");
    printf("encoder         %s: H=%d layers=%d heads=%d inter=%d vocab=%d max_pos=%d\n",
           e->type == MK_ENC_BERT ? "bert" : "roberta", e->hidden, e->n_layers, e->n_heads,
           e->inter, e->vocab, e->max_pos);
    printf("tokenizer       %s (embedded, %zu tokens)\n",
           ed->tok_json ? "tokenizer.json" : "vocab.json + merges.txt", mk_tok_n_vocab(ed->tok));
    printf("parameters      %zu (%.1f MB): encoder %zu, heads 2 x %zu, prototype %d, "
           "prompt encoder %zu\n",
           ed->n_params, (double)ed->n_params * 4 / 1e6, n_enc, n_head,
           ed->cfg.P * e->hidden, n_pe);
    rc = 0;
    if (llm) {
        mk_llama *m = NULL;
        if ((rc = open_llm(cmd, llm, &m))) {
            mk_editor_free(ed);
            return rc;
        }
        int st = mk_editor_check_llm(ed, mk_llama_cfg(m)->dim, mk_llama_fingerprint(m));
        if (st) {
            rc = cli_die_lib(cmd, st);
        } else {
            printf("llm check       ok: %s fits (D=%d, %s)\n", llm, mk_llama_cfg(m)->dim,
                   mk_llama_fingerprint(m));
        }
        mk_llama_close(m);
    }
    mk_editor_free(ed);
    return rc;
}

int cmd_editor(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_top, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_top, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "init")) return cmd_init(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    fprintf(stderr, "medrek editor: unknown command '%s'\n", argv[1]);
    fputs(usage_top, stderr);
    return 2;
}
