/* check.c - shared test helpers. */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "util/check.h"

int check_failures = 0;
int check_count = 0;

double check_close(const char *what, const float *a, const float *b, size_t n,
                   double atol, double rtol) {
    double maxabs = 0, maxrel = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i])) d = INFINITY;
        double r = d / (fabs((double)b[i]) + 1e-12);
        if (d > maxabs) { maxabs = d; worst = i; }
        if (r > maxrel && fabs(b[i]) > atol) maxrel = r;
        if (!(d <= atol + rtol * fabs((double)b[i]))) bad++;
    }
    check_count++;
    if (bad) {
        check_failures++;
        fprintf(stderr, "FAIL %s: %zu of %zu outside atol=%g rtol=%g; largest abs diff %.3g at [%zu] (%g vs %g), largest rel diff %.3g\n",
                what, bad, n, atol, rtol, maxabs, worst, n ? a[worst] : 0.0f, n ? b[worst] : 0.0f, maxrel);
    } else {
        printf("ok   %s: n=%zu largest abs diff %.3g, rel %.3g\n", what, n, maxabs, maxrel);
    }
    return maxabs;
}

void *check_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open test data %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read test data %s\n", path);
        exit(1);
    }
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_count - check_failures, check_failures);
    return check_failures ? 1 : 0;
}
