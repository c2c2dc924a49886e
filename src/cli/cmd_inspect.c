/* cmd_inspect.c - `medrek inspect`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek inspect: not implemented yet\n", stderr);
    return 2;
}
