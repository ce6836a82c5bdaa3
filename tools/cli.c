/* cli.c - what every subcommand shares (cli.h): exit codes by error
 * category, error and usage messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_exit_code(ttsm_status st)
{
    switch (st) {
    case TTSM_OK: return CLI_EXIT_OK;
    case TTSM_ERR_NOT_FOUND: return CLI_EXIT_NOT_FOUND;
    case TTSM_ERR_OUT_OF_MEMORY: return CLI_EXIT_OUT_OF_MEMORY;
    case TTSM_ERR_DEVICE: return CLI_EXIT_DEVICE;
    case TTSM_ERR_FORMAT: return CLI_EXIT_FORMAT;
    case TTSM_ERR_IO: return CLI_EXIT_IO;
    case TTSM_ERR_ENGINE: return CLI_EXIT_ENGINE;
    case TTSM_ERR_INVALID_ARGUMENT: return CLI_EXIT_USAGE;
    case TTSM_ERR_CANCELLED: return CLI_EXIT_CANCELLED;
    default: return CLI_EXIT_FAILURE;
    }
}

int cli_fail(ttsm_status st, const ttsm_error *err)
{
    fprintf(stderr, "ttsm: %s\n", err && err->message[0] ? err->message : ttsm_status_name(st));
    if (err && err->hint[0])
        fprintf(stderr, "hint: %s\n", err->hint);
    for (size_t i = 0; err && i < err->n_attempts; i++)
        fprintf(stderr, "  attempt %zu: %s\n", i + 1, err->attempts[i].message);
    return cli_exit_code(st);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ttsm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'ttsm %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_engine_not_found(const char *name)
{
    ttsm_error err;
    if (ttsm_engines_status(&err) != TTSM_OK)
        fprintf(stderr, "ttsm: engine not found: %s, and a manifest of TTSM_ENGINES_PATH failed "
                        "to load: %s\nhint: fix or remove that manifest (see 'ttsm engines')\n",
                name, err.message);
    else
        fprintf(stderr, "ttsm: engine not found: %s (see 'ttsm engines')\n", name);
    return CLI_EXIT_NOT_FOUND;
}
