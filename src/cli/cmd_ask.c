/* cmd_ask.c - `medrek ask`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_ask(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek ask: not implemented yet\n", stderr);
    return 2;
}
