/* cmd_train.c - `medrek train`. Not written yet: says so and fails. */
#include <stdio.h>

#include "cli.h"

int cmd_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("medrek train: not implemented yet\n", stderr);
    return 2;
}
