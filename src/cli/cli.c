/* cli.c - option parsing and error printing shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/error.h"

static int parse_value(const cli_opt *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_STR: *(const char **)o->dst = v; return 0;
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (errno || !*v || *end || x < -2147483647L || x > 2147483647L) return -1;
        *(int *)o->dst = (int)x;
        return 0;
    }
    case CLI_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end) return -1;
        *(int64_t *)o->dst = (int64_t)x;
        return 0;
    }
    case CLI_FLOAT: {
        float x = strtof(v, &end);
        if (errno || !*v || *end) return -1;
        *(float *)o->dst = x;
        return 0;
    }
    case CLI_FLAG: return -1;
    }
    return -1;
}

int cli_parse(int argc, char **argv, const cli_opt *opts, int n_opts,
              char **pos, int max_pos, int *n_pos, const char *usage) {
    const char *cmd = argv[0];
    int np = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            fputs(usage, stdout);
            return 1;
        }
        if (!only_pos && !strcmp(a, "--")) { only_pos = 1; continue; }
        if (only_pos || a[0] != '-' || a[1] != '-') {
            if (np >= max_pos) return cli_usage_error(cmd, usage, "unexpected argument '%s'", a);
            pos[np++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == nl && !strncmp(opts[k].name, a, nl)) { o = &opts[k]; break; }
        if (!o) return cli_usage_error(cmd, usage, "unknown option '%.*s'", (int)nl, a);
        if (o->kind == CLI_FLAG) {
            if (eq) return cli_usage_error(cmd, usage, "option %s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_usage_error(cmd, usage, "option %s needs a value", o->name);
        if (parse_value(o, v) != 0)
            return cli_usage_error(cmd, usage, "bad value '%s' for %s", v, o->name);
    }
    if (n_pos) *n_pos = np;
    return 0;
}

int cli_die_lib(const char *cmd, int status) {
    (void)status;
    fprintf(stderr, "medrek %s: %s\n", cmd, mk_errmsg());
    return 1;
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "medrek %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (usage) fputs(usage, stderr);
    return 2;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *what) {
    p->what = what;
    p->t0 = p->last = cli_now();
    p->tty = isatty(2);
}

void cli_progress_update(cli_progress *p, int64_t done, int64_t total) {
    double now = cli_now();
    int last = done >= total;
    if (!last && now - p->last < (p->tty ? 0.2 : 2.0)) return;
    p->last = now;
    double el = now - p->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "%s%s: %lld/%lld (%.1f/s, %.0f s elapsed, ETA %.0f s)%s", p->tty ? "\r" : "",
            p->what, (long long)done, (long long)total, rate, el, eta,
            p->tty && !last ? "" : "\n");
}
