/* cli_globals.c - what the options every command shares (--models-dir,
 * --comfyui, --hf-cache, --budget, --io, -v, -q) become: manager options,
 * a log printer and a progress bar on a terminal; the warnings about
 * models roots and the notice of a fallback, both on standard error. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

cli_globals cli_g;

/* "8G", "512MiB", "1.5GB", "4000000000": binary units (K/KiB/KB = 1024). */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    char unit = (char)toupper((unsigned char)*end);
    double mul = 1;
    if (unit) {
        const char *u = "BKMGT";
        const char *p = strchr(u, unit);
        if (!p)
            return -1;
        for (long i = p - u; i > 0; i--)
            mul *= 1024;
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if ((*end == 'B' || *end == 'b') && unit != 'B')
            end++;
        if (*end)
            return -1;
    }
    double bytes = v * mul;
    if (bytes > 1.8e19)
        return -1;
    *out = (uint64_t)bytes;
    return 0;
}

static int add_budgets(const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        uint64_t bytes;
        if (!eq || eq == item || parse_size(eq + 1, &bytes) != 0 ||
            cli_g.n_budgets == TTSM_MANAGER_MAX_DEVICES) {
            fprintf(stderr, "ttsm: --budget wants DEVICE=SIZE[,DEVICE=SIZE...] with sizes "
                            "like 8G or 512MiB, got '%s'\n",
                    item);
            rc = -1;
            break;
        }
        *eq = '\0';
        snprintf(cli_g.budget_names[cli_g.n_budgets], sizeof cli_g.budget_names[0], "%s", item);
        cli_g.budgets[cli_g.n_budgets].device = cli_g.budget_names[cli_g.n_budgets];
        cli_g.budgets[cli_g.n_budgets].bytes = bytes;
        cli_g.n_budgets++;
    }
    free(copy);
    return rc;
}

int cli_global_value(cli_opt o, const char *val)
{
    switch (o) {
    case OPT_MODELS_DIR:
        cli_g.models_dirs = val;
        return 0;
    case OPT_COMFYUI:
        cli_g.comfyui_dirs = val;
        return 0;
    case OPT_HF_CACHE:
        cli_g.hf_cache = val;
        return 0;
    case OPT_BUDGET:
        return add_budgets(val);
    case OPT_IO:
        if (strcmp(val, "mmap") == 0)
            cli_g.io = TTSM_IO_MMAP;
        else if (strcmp(val, "read") == 0)
            cli_g.io = TTSM_IO_READ;
        else {
            fprintf(stderr, "ttsm: --io wants mmap or read, got '%s'\n", val);
            return -1;
        }
        cli_g.io_set = 1;
        return 0;
    default:
        return 0;
    }
}

static void log_line(void *user, int level, const char *message)
{
    (void)user;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < TTSM_LOG_INFO && cli_g.verbose < 2)
        return;
    fprintf(stderr, "ttsm: [%s] %s\n", names[level >= 0 && level <= 3 ? level : 3], message);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A bar on standard error for work that lasts more than half a second,
 * only on a terminal and without -q. */
static struct {
    double started;
    int shown;
} bar;

void cli_progress_start(void)
{
    bar.started = now_s();
    bar.shown = 0;
}

int cli_progress(void *user, const char *key, uint64_t done, uint64_t total)
{
    (void)user;
    (void)key;
    if (cli_g.quiet || !isatty(STDERR_FILENO) || now_s() - bar.started < 0.5)
        return 0;
    int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %.1f/%.1f MiB", fill, "##############################",
            width - fill, "", total ? (int)(100.0 * (double)done / (double)total) : 100,
            (double)done / 1048576.0, (double)total / 1048576.0);
    bar.shown = 1;
    return 0;
}

void cli_progress_end(void)
{
    if (bar.shown)
        fprintf(stderr, "\r%60s\r", "");
    bar.shown = 0;
}

void cli_manager_options(ttsm_manager_options *o)
{
    o->models_dirs = cli_g.models_dirs;
    o->comfyui_dirs = cli_g.comfyui_dirs;
    o->hf_cache = cli_g.hf_cache;
    o->budgets = cli_g.budgets;
    o->n_budgets = cli_g.n_budgets;
    if (cli_g.io_set)
        o->io_mode = cli_g.io;
    if (cli_g.verbose)
        o->log = log_line;
    o->progress = cli_progress;
}

void cli_root_warnings(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    ttsm_manager_options o = ttsm_manager_options_default();
    cli_manager_options(&o);
    char *text = NULL;
    if (ttsm_search_paths(&o, &text, NULL) != TTSM_OK)
        return;
    json_t *j = json_loads(text, 0, NULL);
    ttsm_free(text);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(j, "warnings"), i, w)
        fprintf(stderr, "ttsm: warning: %s\n", json_string_value(w));
    json_decref(j);
}

void cli_fallback_notice(const ttsm_load_report *r, const char *engine)
{
    if (!r->fell_back)
        return;
    int dev = strcmp(r->asked_device, r->loaded_device) != 0;
    fprintf(stderr, "ttsm: note: loaded %s/%s%s%s instead of %s/%s%s%s: %s\n", engine,
            r->loaded, dev ? " on " : "", dev ? r->loaded_device : "", engine, r->asked,
            dev ? " on " : "", dev ? r->asked_device : "", r->why);
}

int cli_params_add(const char *cmd, cli_params *ps, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return cli_usage_error(cmd, "--param wants k=v, got '%s'", kv);
    if (ps->n == TTSM_CONFIG_PARAMS_MAX)
        return cli_usage_error(cmd, "more than %d params", TTSM_CONFIG_PARAMS_MAX);
    if (!(ps->keys[ps->n] = strndup(kv, (size_t)(eq - kv))))
        return cli_usage_error(cmd, "out of memory");
    ps->p[ps->n].key = ps->keys[ps->n];
    ps->p[ps->n].value = eq + 1;
    ps->n++;
    return 0;
}

void cli_params_free(cli_params *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->keys[i]);
    ps->n = 0;
}
