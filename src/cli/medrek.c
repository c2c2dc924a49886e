/* medrek.c - the command-line program: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"inspect", cmd_inspect, "print a GGUF or safetensors file's metadata and tensors"},
    {"tokenize", cmd_tokenize, "split text into tokens with a model's tokenizer"},
    {"generate", cmd_generate, "generate text with a Llama-family model"},
    {"editor", cmd_editor, "create (init) an editor: encoder, heads, prototype, prompt encoder"},
    {"edit", cmd_edit, "add a batch of corrections to a knowledge base"},
    {"ask", cmd_ask, "answer a question with the knowledge base's edits applied"},
    {"kb", cmd_kb, "list, show, revert, export, import the edits of a knowledge base"},
    {"train", cmd_train, "train an editor (retriever + prompt encoder) on edit data"},
    {"eval", cmd_eval, "measure efficacy, generality, locality, fluency on a benchmark"},
};

static void usage(FILE *f) {
    fputs("usage: medrek COMMAND [OPTIONS]   (medrek COMMAND --help for its options)\n\n"
          "MedREK: retrieval-based knowledge editing of a frozen LLM, in C.\n\ncommands:\n",
          f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("medrek 0.1.0");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "medrek: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
