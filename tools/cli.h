/* cli.h - what the ttsm subcommands share: the one table of options and its
 * parser (cli_opts.c), the command table, exit codes by error category,
 * error printing and the global options. The CLI uses only the public API. */
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

/* Every option of every command. One name means one thing wherever a
 * command takes it; the table (cli_opts.c) gives its spelling, argument
 * and meaning, and --help, the man page and docs/cli.md come from it. */
typedef enum cli_opt {
    /* global: every command, before or after its name */
    OPT_MODELS_DIR, OPT_COMFYUI, OPT_HF_CACHE, OPT_BUDGET, OPT_IO, OPT_VERBOSE, OPT_QUIET,
    OPT_HELP,
    /* what to load */
    OPT_ENGINE, OPT_MODEL, OPT_LANGUAGE, OPT_TYPE, OPT_DEVICE, OPT_MODEL_PATH, OPT_REPO_ID,
    OPT_PARAM, OPT_CPU_FALLBACK, OPT_REPEAT, OPT_KEEP_ALIVE, OPT_KEEP_ALIVE_TIMER, OPT_HOLD,
    OPT_PREFETCH,
    /* output and behaviour */
    OPT_JSON, OPT_ALL, OPT_WHERE, OPT_EXPLAIN, OPT_TENSORS, OPT_FORCE, OPT_MAX_OUTPUT,
    OPT_OUTPUT, OPT_VOICE, OPT_RATE, OPT_PITCH, OPT_LIST_VOICES,
    /* downloads from the Hugging Face Hub */
    OPT_DOWNLOAD, OPT_REVISION, OPT_DRY_RUN, OPT_JOBS, OPT_TO_MODELS_ROOT,
    OPT_END /* ends a command's list; the number of options */
} cli_opt;

typedef struct cli_option {
    const char *name;  /* "language": --language */
    char short_name;   /* 'l': -l; 0 for none */
    const char *arg;   /* "L"; NULL for a flag */
    int global;        /* taken by every command */
    const char *help;  /* what it means, everywhere */
} cli_option;
extern const cli_option cli_options[OPT_END];

#define CLI_MAX_POSITIONAL 256

/* --param k=v, repeated: keys are copied, values borrowed from argv. */
typedef struct cli_params {
    ttsm_param p[TTSM_CONFIG_PARAMS_MAX];
    char *keys[TTSM_CONFIG_PARAMS_MAX];
    size_t n;
} cli_params;

/* A parsed command line. */
typedef struct cli_args {
    const struct cli_command *cmd;
    int given[OPT_END];           /* how often each option was given */
    const char *value[OPT_END];   /* its last value */
    cli_params params;            /* every --param */
    const char *pos[CLI_MAX_POSITIONAL];
    size_t n_pos;
} cli_args;

typedef struct cli_command {
    const char *name;
    const char *summary;     /* one line, for `ttsm --help` */
    const char *synopsis;    /* what follows the name: "[ENGINE]", "FILE..." */
    const cli_opt *options;  /* its own options, ending with OPT_END */
    size_t max_pos;          /* positional arguments at most */
    const char *description; /* paragraphs, lines of at most 78 characters */
    const char *json;        /* the shape of its --json output, or NULL */
    const char *examples;    /* one command per line */
    const char *exits;       /* its exit codes, or NULL for the common list */
    int (*run)(cli_args *a);
} cli_command;

/* The commands, in the order `ttsm --help` lists them (cli_docs.c). */
extern const cli_command *const cli_commands[];
extern const size_t cli_n_commands;
const cli_command *cli_command_named(const char *name);

/* Parses argv[first..argc) for `cmd` (NULL: only global options, up to
 * the first argument that is not one, whose index goes to *stop). Global
 * options go to cli_g. @return 0, or CLI_EXIT_USAGE after printing why. */
int cli_parse(const cli_command *cmd, int argc, char **argv, int first, cli_args *out,
              int *stop);
void cli_args_free(cli_args *a);
/* 1 when the command takes option `o`. */
int cli_takes(const cli_command *cmd, cli_opt o);
/* The ENGINE of a command line: -e/--engine, else the first positional
 * (then *used is set). NULL when neither. */
const char *cli_engine(const cli_args *a, int *used);
/* Fills a load config from --engine/ENGINE, --model, --language, --type,
 * --device, --model-path, --repo-id and --param. */
void cli_load_config(const cli_args *a, ttsm_load_config *cfg);

/* --help of a command; the overview (`ttsm --help`); the man page; the
 * generated part of docs/cli.md (`ttsm help --man`, `ttsm help --markdown`). */
void cli_help(const cli_command *cmd, FILE *out);
/* "-l, --language L"; `text` wrapped at 78 columns and indented (the first
 * line continues at column `first`). */
void cli_spelling(const cli_option *o, char *buf, size_t size);
void cli_wrap(FILE *out, const char *text, int indent, int first);
void cli_overview(FILE *out);
void cli_man_page(FILE *out);
void cli_markdown(FILE *out);

/* Maps a status to its exit code. */
int cli_exit_code(ttsm_status st);
/* Prints "ttsm: <message>" (+ hint, attempts) to stderr; returns the exit code. */
int cli_fail(ttsm_status st, const ttsm_error *err);
/* Prints "ttsm <cmd>: <msg>" and a pointer to --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints that ENGINE is unknown, with the error of a manifest of
 * TTSM_ENGINES_PATH that failed to load, if one did; returns exit code 3. */
int cli_engine_not_found(const char *name);

/* The global options (--models-dir, --comfyui, --hf-cache, --budget, --io,
 * -v, -q), as the parser left them. */
typedef struct cli_globals {
    const char *models_dirs, *comfyui_dirs, *hf_cache;
    ttsm_device_budget budgets[TTSM_MANAGER_MAX_DEVICES];
    char budget_names[TTSM_MANAGER_MAX_DEVICES][TTSM_DEVICE_NAME_MAX];
    size_t n_budgets;
    ttsm_io_mode io;
    int io_set, verbose, quiet;
} cli_globals;
extern cli_globals cli_g;

/* Applies a global option's value. @return 0, or -1 after printing why. */
int cli_global_value(cli_opt o, const char *value);
/* Applies them: roots, hub cache, budgets, I/O mode, -v log, progress bar. */
void cli_manager_options(ttsm_manager_options *o);
/* Prints the warnings about models roots (a missing root, a YAML file that
 * cannot be read) on stderr, once per process. */
void cli_root_warnings(void);
/* The progress bar: start before a load or a verify, end after. */
void cli_progress_start(void);
int cli_progress(void *user, const char *key, uint64_t done, uint64_t total);
void cli_progress_end(void);
/* A one-line notice on stderr when a load fell back: what was asked, what
 * was loaded and why (shown without -v: a different model is news). */
void cli_fallback_notice(const ttsm_load_report *r, const char *engine);

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
