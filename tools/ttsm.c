/* ttsm.c - entry point of the ttsm command-line tool: the global options
 * before the command, dispatch to the subcommands (one file each, listed
 * in cli_docs.c), the version, and `ttsm help [COMMAND | --man |
 * --markdown]` (the man page and the generated part of docs/cli.md). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("ttsm %s\n", ttsm_version());
        return CLI_EXIT_OK;
    }
    cli_args g;
    int at = argc;
    /* Global options may come before the command name. */
    int rc = cli_parse(NULL, argc, argv, 1, &g, &at);
    int help = g.given[OPT_HELP];
    cli_args_free(&g);
    if (rc)
        return rc;
    if (at >= argc) {
        cli_overview(help ? stdout : stderr);
        return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    const char *name = argv[at];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("ttsm %s\n", ttsm_version());
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) {
        const char *what = at + 1 < argc ? argv[at + 1] : NULL;
        const cli_command *c = what ? cli_command_named(what) : NULL;
        if (c)
            cli_help(c, stdout);
        else if (what && strcmp(what, "--man") == 0)
            cli_man_page(stdout);
        else if (what && strcmp(what, "--markdown") == 0)
            cli_markdown(stdout);
        else
            cli_overview(stdout);
        return CLI_EXIT_OK;
    }
    const cli_command *cmd = cli_command_named(name);
    if (!cmd) {
        fprintf(stderr, "ttsm: unknown command '%s'\n\n", name);
        cli_overview(stderr);
        return CLI_EXIT_USAGE;
    }
    cli_args a;
    rc = cli_parse(cmd, argc, argv, at + 1, &a, NULL);
    if (rc == 0 && (help || a.given[OPT_HELP]))
        cli_help(cmd, stdout);
    else if (rc == 0)
        rc = cmd->run(&a);
    cli_args_free(&a);
    return rc;
}
