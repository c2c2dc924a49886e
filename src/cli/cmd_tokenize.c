/* cmd_tokenize.c - `medrek tokenize`: the tokens of a text, on one line.
 *
 * Pieces are printed as the vocabulary stores them ("Ġthe", "▁the",
 * "<0x0A>"), separated by single spaces; bytes a terminal would act on
 * (controls, backslash, space, invalid UTF-8) are written as \xNN so a piece
 * can never be mistaken for two or drive the terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../text/tokenizer.h"
#include "cli.h"

static const char usage[] =
    "usage: medrek tokenize --tokenizer FILE [--ids] [--special] [--split-special] TEXT\n"
    "\n"
    "Print the tokens of TEXT on one line, separated by spaces. TEXT \"-\"\n"
    "reads standard input, byte for byte (a final newline is a token too).\n"
    "\n"
    "  --tokenizer FILE  tokenizer.json, vocab.json (merges.txt beside it), a\n"
    "                    .gguf model, or a directory holding one (required)\n"
    "  --ids             print token ids instead of pieces (default: pieces)\n"
    "  --special         add the tokenizer's BOS/EOS template, e.g. Llama's <s>\n"
    "                    or RoBERTa's <s> ... </s> (default: off)\n"
    "  --split-special   read special-token text such as \"<s>\" in TEXT as plain\n"
    "                    text (default: off, it becomes the special token)\n"
    "  --help            print this text\n"
    "\n"
    "Exit status: 0 on success, 1 when the tokenizer cannot be loaded or the\n"
    "input cannot be read, 2 on a usage error.\n";

static void put_piece(const char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        size_t l = 1;
        int ok = 1;
        if (c >= 0x80) { /* print a whole valid UTF-8 character, else escape */
            l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            ok = l > 0 && l <= 4 && i + l <= n && c <= 0xF4;
            for (size_t k = 1; ok && k < l; k++) ok = ((unsigned char)p[i + k] & 0xC0) == 0x80;
            if (ok && c == 0xC2 && (unsigned char)p[i + 1] < 0xA0) ok = 0; /* C1 control */
            if (!ok) l = 1;
        } else {
            ok = c > 0x20 && c != 0x7F && c != '\\';
        }
        if (ok) fwrite(p + i, 1, l, stdout);
        else printf("\\x%02x", c);
        i += l;
    }
}

static int read_stdin(char **out, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) return -1;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); return -1; }
            b = nb;
        }
        size_t got = fread(b + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) { free(b); return -1; }
    *out = b;
    *len = n;
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int ids_only = 0, special = 0, split_special = 0;
    const cli_opt opts[] = {
        {"--tokenizer", CLI_STR, &path},
        {"--ids", CLI_FLAG, &ids_only},
        {"--special", CLI_FLAG, &special},
        {"--split-special", CLI_FLAG, &split_special},
    };
    char *pos[2];
    int npos = 0;
    int rc = cli_parse(argc, argv, opts, 4, pos, 2, &npos, usage);
    if (rc == 1) return 0;
    if (rc) return rc;
    if (!path) return cli_usage_error("tokenize", usage, "--tokenizer FILE is required");
    if (npos != 1) return cli_usage_error("tokenize", usage, "give exactly one TEXT (or - for stdin)");

    char *text = NULL;
    size_t len;
    if (!strcmp(pos[0], "-")) {
        if (read_stdin(&text, &len)) {
            fputs("medrek tokenize: cannot read standard input\n", stderr);
            return 1;
        }
    } else {
        len = strlen(pos[0]);
    }
    mk_tokenizer *t = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int st = mk_tok_load(path, &t);
    if (!st) st = mk_tok_encode(t, text ? text : pos[0], len,
                                (special ? MK_TOK_SPECIAL : 0) | (split_special ? MK_TOK_SPLIT_SPECIAL : 0),
                                &ids, &n);
    if (st) {
        free(text);
        mk_tok_free(t);
        return cli_die_lib("tokenize", st);
    }
    for (size_t i = 0; i < n; i++) {
        if (i) putchar(' ');
        if (ids_only) {
            printf("%ld", (long)ids[i]);
        } else {
            size_t pl = 0;
            const char *p = mk_tok_piece(t, ids[i], &pl);
            put_piece(p ? p : "", pl);
        }
    }
    putchar('\n');
    free(ids);
    free(text);
    mk_tok_free(t);
    if (fflush(stdout) != 0) {
        fputs("medrek tokenize: cannot write the output\n", stderr);
        return 1;
    }
    return 0;
}
