/* cli_opts.c - the one table of options every ttsm command draws from and
 * the one parser for it; cli_docs.c generates --help, the man page and
 * docs/cli.md's option table from the same table. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const cli_option cli_options[OPT_END] = {
    [OPT_MODELS_DIR] = {"models-dir", 0, "DIRS", 1,
                        "models roots, colon-separated, searched first (default "
                        "TTSM_MODELS_PATH); each holds TTS/<engine>/<model>"},
    [OPT_COMFYUI] = {"comfyui", 0, "DIRS", 1,
                     "ComfyUI folders, colon-separated (default TTSM_COMFYUI_PATH): each "
                     "one's models/ and the TTS folders its extra_model_paths.yaml names "
                     "are searched after --models-dir"},
    [OPT_HF_CACHE] = {"hf-cache", 0, "DIR", 1,
                      "the HuggingFace hub cache (default HF_HUB_CACHE, $HF_HOME/hub, "
                      "~/.cache/huggingface/hub)"},
    [OPT_BUDGET] = {"budget", 0, "SPEC", 1,
                    "device budgets, e.g. cpu=8G,cuda:0=20G (binary units); repeatable"},
    [OPT_IO] = {"io", 0, "MODE", 1, "how checkpoints are read: mmap (default) or read"},
    [OPT_VERBOSE] = {"verbose", 'v', NULL, 1,
                     "print the library's log on standard error; -vv adds debug messages"},
    [OPT_QUIET] = {"quiet", 'q', NULL, 1, "no progress bar (pull: no output but errors)"},
    [OPT_HELP] = {"help", 'h', NULL, 1, "show the command's options and examples"},
    [OPT_ENGINE] = {"engine", 'e', "E", 0,
                    "the engine, a name or alias (ttsm engines); the same as the ENGINE "
                    "argument (say: default espeak-ng)"},
    [OPT_MODEL] = {"model", 'm', "M", 0,
                   "model name (default: the language's model, else the engine's default)"},
    [OPT_LANGUAGE] = {"language", 'l', "L", 0,
                      "language name or code (English, en): picks the model where the engine "
                      "has one per language, and the voice for say"},
    [OPT_TYPE] = {"type", 't', "T", 0, "model type: tts (default), vc, hubert, ..."},
    [OPT_DEVICE] = {"device", 'd', "D", 0, "auto (default), cpu, cuda, cuda:N"},
    [OPT_MODEL_PATH] = {"model-path", 0, "P", 0,
                        "an explicit model folder or checkpoint file, searched first"},
    [OPT_REPO_ID] = {"repo-id", 0, "R", 0,
                     "a HuggingFace repo id, optionally @revision: the only repo searched in "
                     "the hub cache"},
    [OPT_PARAM] = {"param", 0, "K=V", 0, "an engine parameter; repeatable"},
    [OPT_CPU_FALLBACK] = {"cpu-fallback", 0, NULL, 0,
                          "load on cpu when the device's budget is too small"},
    [OPT_REPEAT] = {"repeat", 0, "N", 0, "load N times (1..1000), keeping each reference"},
    [OPT_KEEP_ALIVE] = {"keep-alive", 0, "D", 0,
                        "evict entries idle longer than D (250ms, 30s, 5m, 1h)"},
    [OPT_KEEP_ALIVE_TIMER] = {"keep-alive-timer", 0, NULL, 0,
                              "a thread of the manager evicts them when D is up, not the "
                              "next call"},
    [OPT_HOLD] = {"hold", 0, "D", 0,
                  "release the references and wait D before reporting (what the keep-alive "
                  "evicted meanwhile is counted)"},
    [OPT_PREFETCH] = {"prefetch", 0, NULL, 0,
                      "bring the model's bytes into memory in the background once it is "
                      "loaded (mmap mode), and wait for that before reporting"},
    [OPT_JSON] = {"json", 0, NULL, 0,
                  "print JSON on standard output: one object (pull: one a line, its progress "
                  "then its report)"},
    [OPT_ALL] = {"all", 0, NULL, 0,
                 "every model: ls also lists those with no file at all; pull fetches every "
                 "model of ENGINE, or of every engine"},
    [OPT_WHERE] = {"where", 0, NULL, 0,
                   "show the folder and file names each file goes in, in every root"},
    [OPT_EXPLAIN] = {"explain", 0, NULL, 0, "also print the canonical string that is hashed"},
    [OPT_TENSORS] = {"tensors", 0, NULL, 0, "also list every tensor"},
    [OPT_FORCE] = {"force", 'f', NULL, 0, "replace an existing output file"},
    [OPT_MAX_OUTPUT] = {"max-output", 0, "BYTES", 0,
                        "the largest output to write (suffix K, M, G or T: powers of 1024); "
                        "default 16 times the input's tensor bytes plus 64 MiB, at most 256 GiB"},
    [OPT_OUTPUT] = {"output", 'o', "F", 0,
                    "the WAV file to write, or - for standard output (the default when it "
                    "is not a terminal)"},
    [OPT_VOICE] = {"voice", 0, "V", 0,
                   "a voice: a name, an id or a language id as espeak-ng's -v takes them "
                   "(en-us, gmw/en-US, English (America))"},
    [OPT_RATE] = {"rate", 0, "WPM", 0, "speed, 80..450 words per minute"},
    [OPT_PITCH] = {"pitch", 0, "P", 0, "pitch, 0..100"},
    [OPT_LIST_VOICES] = {"list-voices", 0, NULL, 0, "list the engine's voices instead of speaking"},
    [OPT_DOWNLOAD] = {"download", 0, NULL, 0,
                      "pull what the model lacks from the Hugging Face Hub first (as ttsm "
                      "pull does)"},
    [OPT_REVISION] = {"revision", 0, "R", 0,
                      "the model's first repo at this branch, tag or commit instead of its "
                      "manifest revision (load it with --repo-id ORG/NAME@R)"},
    [OPT_DRY_RUN] = {"dry-run", 0, NULL, 0, "say what would be fetched or removed, change nothing"},
    [OPT_JOBS] = {"jobs", 0, "N", 0, "files downloaded in parallel, 1..16 (default 4)"},
    [OPT_TO_MODELS_ROOT] = {"to-models-root", 0, "DIR", 0,
                            "write DIR/TTS/<engine>/<model>/... (the ComfyUI layout) instead "
                            "of the hub cache, with the same checks"},
};

int cli_takes(const cli_command *cmd, cli_opt o)
{
    if (cli_options[o].global)
        return 1;
    for (const cli_opt *p = cmd ? cmd->options : NULL; p && *p != OPT_END; p++)
        if (*p == o)
            return 1;
    return 0;
}

static int by_long(const char *name, size_t len)
{
    for (int i = 0; i < OPT_END; i++)
        if (strlen(cli_options[i].name) == len && strncmp(cli_options[i].name, name, len) == 0)
            return i;
    return -1;
}

static int by_short(char c)
{
    for (int i = 0; i < OPT_END; i++)
        if (cli_options[i].short_name == c)
            return i;
    return -1;
}

static int unknown(const cli_command *cmd, const char *arg)
{
    if (cmd)
        return cli_usage_error(cmd->name, "unknown option '%s'", arg);
    fprintf(stderr, "ttsm: unknown option '%s'\nTry 'ttsm --help'.\n", arg);
    return CLI_EXIT_USAGE;
}

static int not_here(const cli_command *cmd, const char *arg)
{
    if (cmd)
        return cli_usage_error(cmd->name, "'%s' is not an option of ttsm %s", arg, cmd->name);
    fprintf(stderr, "ttsm: '%s' goes after a command name\nTry 'ttsm --help'.\n", arg);
    return CLI_EXIT_USAGE;
}

/* Records option `o` with `value` (NULL for a flag). */
static int take(const cli_command *cmd, cli_args *a, cli_opt o, const char *value)
{
    a->given[o]++;
    a->value[o] = value;
    if (o == OPT_VERBOSE) {
        cli_g.verbose++;
        return 0;
    }
    if (o == OPT_QUIET) {
        cli_g.quiet = 1;
        return 0;
    }
    if (o == OPT_PARAM) {
        int rc = cli_params_add(cmd ? cmd->name : "ttsm", &a->params, value);
        return rc ? rc : 0;
    }
    if (cli_options[o].global && o != OPT_HELP)
        return cli_global_value(o, value) == 0 ? 0 : CLI_EXIT_USAGE;
    return 0;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, int first, cli_args *out,
              int *stop)
{
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    int only_options = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (only_options || arg[0] != '-' || arg[1] == '\0') {
            if (!cmd) { /* the command name: the caller takes over */
                *stop = i;
                return 0;
            }
            if (out->n_pos == CLI_MAX_POSITIONAL || out->n_pos == cmd->max_pos)
                return cli_usage_error(cmd->name, cmd->max_pos ? "unexpected argument '%s'"
                                                               : "takes no argument, got '%s'",
                                       arg);
            out->pos[out->n_pos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0 && cmd) {
            only_options = 1;
            continue;
        }
        if (arg[1] == '-') { /* --name, --name=value, --name value */
            const char *eq = strchr(arg + 2, '=');
            size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
            int o = by_long(arg + 2, len);
            if (o < 0)
                return unknown(cmd, arg);
            if (!cmd && !cli_options[o].global)
                return not_here(cmd, arg);
            if (!cli_takes(cmd, (cli_opt)o))
                return not_here(cmd, arg);
            const char *value = NULL;
            if (cli_options[o].arg) {
                if (eq)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else if (cmd)
                    return cli_usage_error(cmd->name, "--%s needs a value", cli_options[o].name);
                else {
                    fprintf(stderr, "ttsm: --%s needs a value\n", cli_options[o].name);
                    return CLI_EXIT_USAGE;
                }
            } else if (eq) {
                return cmd ? cli_usage_error(cmd->name, "--%s takes no value",
                                             cli_options[o].name)
                           : unknown(cmd, arg);
            }
            int rc = take(cmd, out, (cli_opt)o, value);
            if (rc)
                return rc;
            continue;
        }
        /* -x, clusters of flags (-vv, -vq), -l fr, -lfr. */
        for (const char *c = arg + 1; *c; c++) {
            int o = by_short(*c);
            char one[3] = {'-', *c, '\0'};
            if (o < 0)
                return unknown(cmd, c == arg + 1 && !c[1] ? arg : one);
            if ((!cmd && !cli_options[o].global) || !cli_takes(cmd, (cli_opt)o))
                return not_here(cmd, one);
            const char *value = NULL;
            if (cli_options[o].arg) {
                if (c[1])
                    value = c + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else if (cmd)
                    return cli_usage_error(cmd->name, "%s needs a value", one);
                else {
                    fprintf(stderr, "ttsm: %s needs a value\n", one);
                    return CLI_EXIT_USAGE;
                }
            }
            int rc = take(cmd, out, (cli_opt)o, value);
            if (rc)
                return rc;
            if (value)
                break;
        }
    }
    if (!cmd)
        *stop = argc;
    return 0;
}

void cli_args_free(cli_args *a)
{
    cli_params_free(&a->params);
}

const char *cli_engine(const cli_args *a, int *used)
{
    if (used)
        *used = 0;
    if (a->value[OPT_ENGINE])
        return a->value[OPT_ENGINE];
    if (a->n_pos) {
        if (used)
            *used = 1;
        return a->pos[0];
    }
    return NULL;
}

void cli_load_config(const cli_args *a, ttsm_load_config *cfg)
{
    const char *e = cli_engine(a, NULL);
    if (e)
        cfg->engine = e;
    if (a->value[OPT_MODEL])
        cfg->model_name = a->value[OPT_MODEL];
    if (a->value[OPT_LANGUAGE])
        cfg->language = a->value[OPT_LANGUAGE];
    if (a->value[OPT_TYPE])
        cfg->model_type = a->value[OPT_TYPE];
    if (a->value[OPT_DEVICE])
        cfg->device = a->value[OPT_DEVICE];
    if (a->value[OPT_MODEL_PATH])
        cfg->model_path = a->value[OPT_MODEL_PATH];
    if (a->value[OPT_REPO_ID])
        cfg->repo_id = a->value[OPT_REPO_ID];
    cfg->params = a->params.p;
    cfg->n_params = a->params.n;
}

/* ---- what the generated help shares ----------------------------------- */

/* "-l, --language L" */
void cli_spelling(const cli_option *o, char *buf, size_t size)
{
    if (o->short_name)
        snprintf(buf, size, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    else
        snprintf(buf, size, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

/* Prints `text` wrapped at 78 columns, each line indented by `indent`
 * (the first by `first` when it continues a line already started). */
void cli_wrap(FILE *out, const char *text, int indent, int first)
{
    int col = first;
    for (const char *p = text; *p;) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (col > indent && col + 1 + (int)w > 78) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        } else if (col < indent) {
            fprintf(out, "%*s", indent - col, "");
            col = indent;
        }
        fwrite(p, 1, w, out);
        col += (int)w;
        p += w;
    }
    fputc('\n', out);
}
