/* cmd_devices.c - placeholder. */
#include "cli.h"
static void help(FILE *out) { fprintf(out, "usage: ttsm devices\n"); }
static int run(int argc, char **argv) { (void)argc; (void)argv; return 1; }
const cli_command cli_cmd_devices = {"devices", "devices", run, help};
