/* ttsm.c - entry point of the ttsm command-line tool: dispatches to the
 * subcommands (one file each), prints the overview help and the version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command *const commands[] = {
    &cli_cmd_say,
    &cli_cmd_engines,
    &cli_cmd_ls,
    &cli_cmd_resolve,
    &cli_cmd_verify,
    &cli_cmd_devices,
    &cli_cmd_key,
    &cli_cmd_inspect,
    &cli_cmd_load,
    &cli_cmd_convert,
    &cli_cmd_pull,
    &cli_cmd_rm,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void overview(FILE *out)
{
    fprintf(out, "usage: ttsm <command> [options]\n\n"
                 "ttsm finds, validates, loads and caches the weights of text-to-speech\n"
                 "engines on CPU and CUDA.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\nglobal options (before or after the command):\n"
                 "  --models-dir DIRS   models roots, colon-separated (TTSM_MODELS_PATH)\n"
                 "  --hf-cache DIR      HuggingFace hub cache (HF_HUB_CACHE, HF_HOME)\n"
                 "  --budget SPEC       device budgets, e.g. cpu=8G,cuda:0=20G\n"
                 "  --io MODE           mmap (default) or read\n"
                 "  -v, --verbose       print the library's log (-vv: debug)\n"
                 "  -q, --quiet         no progress bar\n"
                 "\n'ttsm <command> --help' shows a command's options and examples;\n"
                 "'man ttsm' (docs/ttsm.1) has exit codes and JSON fields.\n"
                 "ttsm --version prints the version.\n");
}

int main(int argc, char **argv)
{
    if (cli_parse_globals(&argc, argv) != 0)
        return CLI_EXIT_USAGE;
    if (argc < 2) {
        overview(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc > 2) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(argv[2], commands[i]->name) == 0) {
                    commands[i]->help(stdout);
                    return CLI_EXIT_OK;
                }
        }
        overview(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("ttsm %s\n", ttsm_version());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i]->name) != 0)
            continue;
        for (int a = 2; a < argc; a++)
            if (cli_is_help(argv[a])) {
                commands[i]->help(stdout);
                return CLI_EXIT_OK;
            }
        return commands[i]->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "ttsm: unknown command '%s'\n\n", argv[1]);
    overview(stderr);
    return CLI_EXIT_USAGE;
}
