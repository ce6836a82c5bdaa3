/* cli.h - what the ttsm subcommands share: the command table, exit codes by
 * error category, and error printing. The CLI uses only the public API. */
#ifndef TTSM_CLI_H
#define TTSM_CLI_H

#include <stdio.h>

#include "ttsm.h"

/* Exit codes (documented in docs/cli.md and the man page). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,     /* any other failure */
    CLI_EXIT_USAGE = 2,       /* bad command line */
    CLI_EXIT_NOT_FOUND = 3,
    CLI_EXIT_DEVICE = 4,      /* device errors other than memory */
    CLI_EXIT_OUT_OF_MEMORY = 5,
    CLI_EXIT_FORMAT = 6,
    CLI_EXIT_IO = 7,
    CLI_EXIT_ENGINE = 8,
    CLI_EXIT_CANCELLED = 9
};

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*help)(FILE *out);
} cli_command;

/* Maps a status to its exit code. */
int cli_exit_code(ttsm_status st);
/* Prints "ttsm: <message>" (+ hint, attempts) to stderr; returns the exit code. */
int cli_fail(ttsm_status st, const ttsm_error *err);
/* Prints "ttsm <cmd>: <msg>" and a pointer to --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 when argv[i] is -h or --help. */
int cli_is_help(const char *arg);

/* Options every command takes, before or after its name (cli_globals.c). */
typedef struct cli_globals {
    const char *models_dirs, *hf_cache;
    ttsm_device_budget budgets[TTSM_MANAGER_MAX_DEVICES];
    char budget_names[TTSM_MANAGER_MAX_DEVICES][TTSM_DEVICE_NAME_MAX];
    size_t n_budgets;
    ttsm_io_mode io;
    int io_set, verbose, quiet;
} cli_globals;
extern cli_globals cli_g;

/* Removes the global options from argv. @return 0, or -1 after printing why. */
int cli_parse_globals(int *argc, char **argv);
/* Applies them: roots, hub cache, budgets, I/O mode, -v log, progress bar. */
void cli_manager_options(ttsm_manager_options *o);
/* The progress bar: start before a load or a verify, end after. */
void cli_progress_start(void);
int cli_progress(void *user, const char *key, uint64_t done, uint64_t total);
void cli_progress_end(void);

/* --param k=v, repeated: keys are copied, values borrowed from argv. */
typedef struct cli_params {
    ttsm_param p[TTSM_CONFIG_PARAMS_MAX];
    char *keys[TTSM_CONFIG_PARAMS_MAX];
    size_t n;
} cli_params;
/* @return 0, or the usage exit code after printing why. */
int cli_params_add(const char *cmd, cli_params *ps, const char *kv);
void cli_params_free(cli_params *ps);

/* One entry per subcommand, each defined in its own tools/cmd_<name>.c. */
extern const cli_command cli_cmd_devices, cli_cmd_key, cli_cmd_inspect;
extern const cli_command cli_cmd_load;
extern const cli_command cli_cmd_engines, cli_cmd_ls, cli_cmd_resolve, cli_cmd_say,
    cli_cmd_verify;
extern const cli_command cli_cmd_convert;
extern const cli_command cli_cmd_pull, cli_cmd_rm;

#endif
