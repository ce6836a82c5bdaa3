/* cmd_key.c - placeholder. */
#include "cli.h"
static void help(FILE *out) { fprintf(out, "usage: ttsm key\n"); }
static int run(int argc, char **argv) { (void)argc; (void)argv; return 1; }
const cli_command cli_cmd_key = {"key", "key", run, help};
