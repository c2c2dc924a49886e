/* cmd_kb.c - `medrek kb`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_kb(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek kb: not implemented yet\n", stderr);
    return 2;
}
