/* cmd_eval.c - `medrek eval`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek eval: not implemented yet\n", stderr);
    return 2;
}
