/* cmd_editor.c - `medrek editor`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_editor(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek editor: not implemented yet\n", stderr);
    return 2;
}
