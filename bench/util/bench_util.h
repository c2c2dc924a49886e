/* bench_util.h - what every benchmark program needs: a monotonic clock,
 * the load average (figures mean little when it exceeds the cores),
 * medians, small files, a cheap seeded RNG (and, in bench_roberta.h, a
 * random RoBERTa-base-sized encoder directory for the editing benchmarks). Failures print
 * "<program>: ..." and exit: these are programs, not library code. */
#ifndef MK_BENCH_UTIL_H
#define MK_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

extern const char *bench_prog; /* set by main, used in messages */

double bench_now(void);      /* monotonic seconds */
double bench_loadavg(void);  /* 1-minute load average, -1 if unknown */
int bench_cmp_double(const void *a, const void *b);
double bench_median(double *v, int n); /* sorts v */
/* "<prog>: what: <library error>", exit 1 */
void bench_die(const char *what) __attribute__((noreturn));
void *bench_xmalloc(size_t n);
/* whole file, NUL-terminated; NULL when it cannot be read */
char *bench_read_file(const char *path, size_t *len);
void bench_write_file(const char *path, const void *data, size_t len);
/* uniform [-1, 1) from a xorshift state */
float bench_urand(uint64_t *state);

#endif
