/* cmd_tokenize.c - `medrek tokenize`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek tokenize: not implemented yet\n", stderr);
    return 2;
}
