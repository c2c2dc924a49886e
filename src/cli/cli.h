/* cli.h - shared helpers of the command-line program: option parsing and
 * error reporting. Only cli/ prints and exits. */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stdint.h>

typedef enum { CLI_FLAG, CLI_STR, CLI_INT, CLI_I64, CLI_FLOAT } cli_kind;

typedef struct {
    const char *name; /* "--model" */
    cli_kind kind;
    void *dst;        /* int* (flag, int), int64_t*, float*, const char** */
} cli_opt;

/* Parse argv[1..argc-1] (argv[0] is the subcommand name). Options may be
 * given as "--name value" or "--name=value"; "--" ends options.
 * Returns 0 on success, 1 when --help/-h was given (usage printed to
 * stdout), 2 on a usage error (message + usage printed to stderr). */
int cli_parse(int argc, char **argv, const cli_opt *opts, int n_opts,
              char **pos, int max_pos, int *n_pos, const char *usage);

/* Print "medrek <cmd>: <library error message>" to stderr; returns 1. */
int cli_die_lib(const char *cmd, int status);
/* Print "medrek <cmd>: <formatted message>" to stderr; returns 2. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Progress of a long job on stderr: a rewritten line on a terminal, plain
 * lines (at most one every 2 s, and the last) otherwise. */
typedef struct {
    const char *what;  /* "encoding edits" */
    double t0, last;   /* monotonic seconds */
    int tty;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *what);
void cli_progress_update(cli_progress *p, int64_t done, int64_t total);
double cli_now(void); /* monotonic seconds */

/* Subcommands: each returns the process exit code. */
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_editor(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_kb(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* `medrek kb reencode` (cmd_edit.c: it needs the editor and the LLM) */
int cmd_kb_reencode(int argc, char **argv);

#endif
