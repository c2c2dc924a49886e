/* cmd_edit.c - `medrek edit`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_edit(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek edit: not implemented yet\n", stderr);
    return 2;
}
