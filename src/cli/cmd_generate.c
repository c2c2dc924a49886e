/* cmd_generate.c - `medrek generate`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek generate: not implemented yet\n", stderr);
    return 2;
}
