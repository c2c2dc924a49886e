/* bench_tokenizer.c - encoding throughput of the tokenizer (MB/s).
 *
 *   python3 tools/tok/make_bench_text.py            # >= 10 MB -> /tmp/tok_bench.txt
 *   ./build/bench_tokenizer [--tokenizer tests/data/tok/gpt2/vocab.json]
 *                           [--text /tmp/tok_bench.txt] [--runs 5]
 *
 * Two modes, each the median of --runs runs:
 *   lines: one mk_tok_encode call per line (what prompts look like);
 *   whole: the whole file in one call (the per-call pre-token cache helps).
 * Prints the id count too, so it can be compared with tok_node_bench.js.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "io/mapfile.h"
#include "text/tokenizer.h"
#include "util/bench_util.h"

int main(int argc, char **argv) {
    const char *tok_path = "tests/data/tok/gpt2/vocab.json", *text_path = "/tmp/tok_bench.txt";
    int runs = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text_path = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_tokenizer [--tokenizer FILE] [--text FILE] [--runs N]\n"
                            "  defaults: tests/data/tok/gpt2/vocab.json, /tmp/tok_bench.txt, 5\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 100) runs = 5;
    char *text = NULL;
    size_t len = 0;
    mk_tokenizer *t = NULL;
    double t0 = bench_now();
    if (mk_tok_load(tok_path, &t)) {
        fprintf(stderr, "bench_tokenizer: %s\n", mk_errmsg());
        return 1;
    }
    double t_load = bench_now() - t0;
    if (mk_read_file(text_path, (size_t)1 << 31, &text, &len)) {
        fprintf(stderr, "bench_tokenizer: %s (make it with tools/tok/make_bench_text.py)\n", mk_errmsg());
        return 1;
    }
    printf("tokenizer %s (%s, %zu ids), loaded in %.1f ms\n", tok_path, mk_tok_kind(t),
           mk_tok_n_vocab(t), 1e3 * t_load);
    printf("text %s: %.2f MB, %d runs each\n", text_path, (double)len / 1e6, runs);
    double *tm = malloc((size_t)runs * sizeof *tm);
    for (int mode = 0; mode < 2; mode++) {
        size_t total = 0;
        for (int r = 0; r < runs; r++) {
            total = 0;
            double a = bench_now();
            if (mode == 0) {
                for (size_t i = 0; i < len;) {
                    size_t e = i;
                    while (e < len && text[e] != '\n') e++;
                    int32_t *ids = NULL;
                    size_t n = 0;
                    if (mk_tok_encode(t, text + i, e - i, 0, &ids, &n)) {
                        fprintf(stderr, "bench_tokenizer: %s\n", mk_errmsg());
                        return 1;
                    }
                    total += n;
                    free(ids);
                    i = e + 1;
                }
            } else {
                int32_t *ids = NULL;
                size_t n = 0;
                if (mk_tok_encode(t, text, len, 0, &ids, &n)) {
                    fprintf(stderr, "bench_tokenizer: %s\n", mk_errmsg());
                    return 1;
                }
                total = n;
                free(ids);
            }
            tm[r] = bench_now() - a;
        }
        qsort(tm, (size_t)runs, sizeof *tm, bench_cmp_double);
        double med = tm[runs / 2];
        printf("%-5s %9zu ids  median %.3f s  %.1f MB/s  (min %.3f s, max %.3f s)\n",
               mode == 0 ? "lines" : "whole", total, med, (double)len / 1e6 / med, tm[0], tm[runs - 1]);
    }
    free(tm);
    free(text);
    mk_tok_free(t);
    return 0;
}
