/* check.h - tiny test helpers: every check that fails prints where and
 * why, and the test's main returns check_summary() (non-zero on failure). */
#ifndef MK_CHECK_H
#define MK_CHECK_H

#include <stddef.h>
#include <stdint.h>

extern int check_failures;
extern int check_count;

#define CHECK(cond)                                                               \
    do {                                                                          \
        check_count++;                                                            \
        if (!(cond)) {                                                            \
            check_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                         \
    } while (0)

#define CHECK_OK(expr)                                                            \
    do {                                                                          \
        check_count++;                                                            \
        int rc_ = (expr);                                                         \
        if (rc_ != 0) {                                                           \
            check_failures++;                                                     \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, \
                    rc_, mk_errmsg());                                            \
        }                                                                         \
    } while (0)

/* Compare n floats; prints the largest absolute and relative difference
 * under `what`; counts a failure when any |a-b| > atol + rtol*|b|. Returns
 * the largest absolute difference. */
double check_close(const char *what, const float *a, const float *b, size_t n,
                   double atol, double rtol);

/* Read a whole file (test data); aborts the test with a message if absent. */
void *check_read_file(const char *path, size_t *len);

/* Print "<name>: N passed, M failed" and return the exit code. */
int check_summary(const char *name);

#endif
