/* cmd_resolve.c - `ttsm resolve ENGINE ...` (where each file of a model
 * comes from, and with --where where each one goes in every root) and
 * `ttsm ls [ENGINE]` (which models are installed: complete or not, size
 * on disk, where, last modified), both from the library's ttsm_resolve_with()
 * report. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static char *report_of(const ttsm_load_config *cfg, ttsm_status *st, ttsm_error *err)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    cli_manager_options(&o);
    char *report = NULL;
    *st = ttsm_resolve_with(cfg, &o, &report, err);
    return *st == TTSM_OK ? report : NULL;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* "hub org/name@main (7d40c92)", or the root's path. */
static void where_text(json_t *loc, char *buf, size_t size)
{
    if (json_object_get(loc, "repo")) {
        const char *rev = json_string_value(json_object_get(loc, "revision"));
        snprintf(buf, size, "hub %s@%s (%.7s)", str(loc, "repo"), rev ? rev : "?",
                 str(loc, "commit"));
    } else {
        snprintf(buf, size, "%s", str(loc, "root"));
    }
}

static void print_where(json_t *r)
{
    size_t i, k;
    json_t *c, *x;
    json_t *roots = json_object_get(r, "roots");
    printf("%s/%s (%s): where each file goes\n", str(r, "engine"), str(r, "model"),
           str(r, "model_type"));
    printf("roots, in search order:\n");
    json_array_foreach(roots, i, x)
        printf("  %zu  %s  (%s, from %s)%s\n", i + 1, str(x, "path"), str(x, "kind"),
               str(x, "origin"), json_is_true(json_object_get(x, "exists")) ? "" : " [missing]");
    if (json_array_size(roots) == 0)
        printf("  (none: --models-dir, --comfyui, TTSM_MODELS_PATH or TTSM_COMFYUI_PATH)\n");
    const char *hub = json_string_value(json_object_get(r, "hub_cache"));
    printf("  hub  %s\n", hub ? hub : "(none)");
    json_array_foreach(json_object_get(r, "components"), i, c) {
        const char *path = json_string_value(json_object_get(c, "path"));
        const char *from = json_string_value(json_object_get(c, "from_model"));
        printf("\n%s (%s%s%s%s): ", str(c, "name"), str(c, "kind"), from ? ", from " : "",
               from ? from : "", json_is_true(json_object_get(c, "optional")) ? ", optional" : "");
        json_array_foreach(json_object_get(c, "names"), k, x)
            printf("%s%s", k ? " | " : "", json_string_value(x));
        printf("\n");
        json_array_foreach(json_object_get(c, "where"), k, x)
            printf("  %zu  %s/\n", k + 1, json_string_value(x));
        json_t *dl = json_object_get(c, "download");
        if (json_is_object(dl))
            printf("  hub  %s%s@%s: %s\n", str(dl, "repo"),
                   json_is_true(json_object_get(dl, "dataset")) ? " (dataset)" : "",
                   str(dl, "revision"), str(dl, "path"));
        if (path)
            printf("  found: %s  [%s]\n", path, str(c, "origin"));
        else
            printf("  missing%s\n", json_is_string(json_object_get(c, "broken"))
                                        ? " (a broken hub link: see ttsm resolve)"
                                        : "");
    }
}

static void print_resolve(json_t *r)
{
    int complete = json_is_true(json_object_get(r, "complete"));
    printf("%s/%s (%s): %s\n", str(r, "engine"), str(r, "model"), str(r, "model_type"),
           complete ? "complete" : "incomplete");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "components"), i, c) {
        const char *path = json_string_value(json_object_get(c, "path"));
        const char *from = json_string_value(json_object_get(c, "from_model"));
        printf("  %-22s %-8s ", str(c, "name"), str(c, "kind"));
        if (path) {
            printf("%s  [%s%s%s]\n", path, str(c, "origin"), from ? ", from " : "",
                   from ? from : "");
            continue;
        }
        printf("%s%s\n", json_is_true(json_object_get(c, "optional")) ? "(optional) " : "",
               "MISSING");
        const char *broken = json_string_value(json_object_get(c, "broken"));
        if (broken)
            printf("      broken hub link %s\n", broken);
        size_t j;
        json_t *s;
        json_array_foreach(json_object_get(c, "searched"), j, s)
            printf("      searched %s\n", json_string_value(s));
    }
}

static int run_resolve(cli_args *a)
{
    if (a->value[OPT_ENGINE] && a->n_pos)
        return cli_usage_error("resolve", "ENGINE given twice");
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.device = "cpu"; /* resolution does not depend on the device */
    cli_load_config(a, &cfg);
    if (!cfg.engine)
        return cli_usage_error("resolve", "missing ENGINE");
    cli_root_warnings();
    ttsm_error err;
    ttsm_status st;
    char *report = report_of(&cfg, &st, &err);
    if (!report)
        return cli_fail(st, &err);
    json_t *r = json_loads(report, 0, NULL);
    int complete = json_is_true(json_object_get(r, "complete"));
    if (a->given[OPT_JSON])
        puts(report);
    else if (a->given[OPT_WHERE])
        print_where(r);
    else
        print_resolve(r);
    json_decref(r);
    ttsm_free(report);
    return complete ? CLI_EXIT_OK : CLI_EXIT_NOT_FOUND;
}

/* ---- ls ------------------------------------------------------------------ */

/* Sums what a model has on disk, its newest file and its places, into one
 * line of `ttsm ls`: its own files, each once (borrowed and shared files
 * count with the model they belong to, so sizes add up). */
static json_t *ls_entry(json_t *r)
{
    json_t *seen = json_object(), *where = json_array(), *names = json_array();
    json_int_t bytes = 0, modified = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "components"), i, c) {
        const char *path = json_string_value(json_object_get(c, "path"));
        if (!path || json_object_get(seen, path) ||
            json_is_true(json_object_get(c, "borrowed")) ||
            json_is_true(json_object_get(c, "shared")))
            continue;
        json_object_set_new(seen, path, json_true());
        bytes += json_integer_value(json_object_get(c, "bytes"));
        json_int_t m = json_integer_value(json_object_get(c, "modified"));
        modified = m > modified ? m : modified;
        json_t *loc = json_object_get(c, "location");
        if (!json_is_object(loc))
            continue;
        char text[1024];
        where_text(loc, text, sizeof text);
        size_t k;
        json_t *x;
        int dup = 0;
        json_array_foreach(names, k, x)
            dup |= strcmp(json_string_value(x), text) == 0;
        if (!dup) {
            json_array_append_new(names, json_string(text));
            json_array_append(where, loc);
        }
    }
    json_decref(seen);
    json_decref(names);
    char iso[32] = "";
    time_t t = (time_t)modified;
    struct tm tm;
    if (modified && gmtime_r(&t, &tm))
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:I, s:o, s:o, s:O}", "engine",
                     json_object_get(r, "engine"), "model", json_object_get(r, "model"),
                     "model_type", json_object_get(r, "model_type"), "language",
                     json_object_get(r, "language"), "installed", json_object_get(r, "installed"),
                     "complete", json_object_get(r, "complete"), "missing",
                     json_object_get(r, "missing"), "bytes", bytes, "modified",
                     modified ? json_string(iso) : json_null(), "where", where, "pull",
                     json_object_get(r, "pull"));
}

static void human_size(json_int_t b, char *buf, size_t size)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* Seconds since 1970 of a UTC date (days from the civil calendar). */
static long long epoch_of(int y, int mo, int d, int h, int mi, int s)
{
    y -= mo <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return ((era * 146097 + doe - 719468) * 24 + h) * 3600 + mi * 60 + s;
}

/* "3 days ago" for an ISO 8601 UTC time, as ollama list and hf scan-cache show it. */
static void age(const char *iso, char *buf, size_t size)
{
    int y, mo, d, h, mi, sec;
    if (!iso || sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &sec) != 6) {
        snprintf(buf, size, "-");
        return;
    }
    double s = (double)((long long)time(NULL) - epoch_of(y, mo, d, h, mi, sec));
    static const struct {
        double secs;
        const char *unit;
    } steps[] = {{31536000, "year"}, {2592000, "month"}, {86400, "day"},
                 {3600, "hour"},     {60, "minute"}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (s >= steps[i].secs) {
            long n = (long)(s / steps[i].secs);
            snprintf(buf, size, "%ld %s%s ago", n, steps[i].unit, n == 1 ? "" : "s");
            return;
        }
    snprintf(buf, size, "just now");
}

static void status_text(json_t *r, char *buf, size_t size)
{
    json_int_t missing = json_integer_value(json_object_get(r, "missing"));
    if (!json_is_true(json_object_get(r, "installed")))
        snprintf(buf, size, "not installed");
    else if (missing)
        snprintf(buf, size, "incomplete (%lld file%s missing)", (long long)missing,
                 missing == 1 ? "" : "s");
    else
        snprintf(buf, size, "complete");
}

static void print_ls(json_t *list)
{
    /* Columns as wide as their longest value. */
    int we = 6, wm = 5, ws = 6, wt = 4;
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r) {
        char status[64];
        status_text(r, status, sizeof status);
        int le = (int)strlen(str(r, "engine")), lm = (int)strlen(str(r, "model"));
        int ls = (int)strlen(status), lt = (int)strlen(str(r, "model_type"));
        wt = lt > wt ? lt : wt;
        we = le > we ? le : we;
        wm = lm > wm ? lm : wm;
        ws = ls > ws ? ls : ws;
    }
    printf("%-*s  %-*s  %-*s %-5s %10s  %-15s %-*s  %s\n", we, "ENGINE", wm, "MODEL", wt, "TYPE",
           "LANG", "SIZE", "MODIFIED", ws, "STATUS", "WHERE");
    json_array_foreach(list, i, r) {
        const char *lang = json_string_value(json_object_get(r, "language"));
        char size[32], when[48], status[64], where[1100] = "-";
        human_size(json_integer_value(json_object_get(r, "bytes")), size, sizeof size);
        age(json_string_value(json_object_get(r, "modified")), when, sizeof when);
        status_text(r, status, sizeof status);
        json_t *w = json_object_get(r, "where");
        if (json_array_size(w)) {
            where_text(json_array_get(w, 0), where, sizeof where - 32);
            if (json_array_size(w) > 1)
                snprintf(where + strlen(where), 32, " +%zu more", json_array_size(w) - 1);
        }
        printf("%-*s  %-*s  %-*s %-5s %10s  %-15s %-*s  %s\n", we, str(r, "engine"), wm,
               str(r, "model"), wt, str(r, "model_type"), lang ? lang : "-", size, when, ws,
               status, where);
    }
    if (json_array_size(list) == 0)
        printf("(no models found; use --models-dir, --comfyui or TTSM_MODELS_PATH, or --all)\n");
    /* What a pull would add to the models that are not complete. */
    int head = 0;
    json_array_foreach(list, i, r) {
        json_t *pull = json_object_get(r, "pull");
        const char *cmd = json_string_value(json_object_get(pull, "command"));
        if (!cmd)
            continue;
        if (!head++)
            printf("\nwhat a pull would add:\n");
        char what[512] = "";
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(pull, "components"), k, c)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", k ? ", " : "",
                     json_string_value(c));
        printf("  %s/%s: %s: %s\n", str(r, "engine"), str(r, "model"), what, cmd);
    }
}

static int run_ls(cli_args *a)
{
    const char *name = cli_engine(a, NULL);
    if (a->value[OPT_ENGINE] && a->n_pos)
        return cli_usage_error("ls", "ENGINE given twice");
    const ttsm_engine_info *only = NULL;
    if (name && !(only = ttsm_engine_find(name)))
        return cli_engine_not_found(name);
    cli_root_warnings();
    json_t *list = json_array(), *roots = NULL, *hub = NULL;
    for (size_t i = 0; i < ttsm_engine_count(); i++) {
        const ttsm_engine_info *e = ttsm_engine_get(i);
        if ((only && e != only) || !ttsm_engine_manifest(e))
            continue;
        for (size_t m = 0; m < ttsm_engine_model_count(e); m++) {
            for (size_t t = 0; t < ttsm_engine_model_type_count(e); t++) {
                ttsm_load_config c = ttsm_load_config_default();
                c.engine = ttsm_engine_name(e);
                c.model_name = ttsm_engine_model_name(e, m);
                c.model_type = ttsm_engine_model_type(e, t);
                c.device = "cpu";
                ttsm_status st;
                ttsm_error err;
                char *report = report_of(&c, &st, &err);
                if (!report)
                    continue; /* a model without this type */
                json_t *r = json_loads(report, 0, NULL);
                ttsm_free(report);
                if (!r)
                    continue;
                if (!roots) {
                    roots = json_incref(json_object_get(r, "roots"));
                    hub = json_incref(json_object_get(r, "hub_cache"));
                }
                /* One line per model: its first type that resolves as itself. */
                int same = strcmp(str(r, "model"), c.model_name) == 0;
                if (same && (a->given[OPT_ALL] || json_is_true(json_object_get(r, "installed"))))
                    json_array_append_new(list, ls_entry(r));
                json_decref(r);
                if (same)
                    break;
            }
        }
    }
    if (a->given[OPT_JSON]) {
        json_t *root = json_pack("{s:o, s:o, s:o}", "models", list, "roots",
                                 roots ? roots : json_array(), "hub_cache",
                                 hub ? hub : json_null());
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(root);
    } else {
        print_ls(list);
        json_decref(list);
        json_decref(roots);
        json_decref(hub);
    }
    return CLI_EXIT_OK;
}

static const cli_opt resolve_options[] = {OPT_ENGINE,     OPT_MODEL,   OPT_LANGUAGE, OPT_TYPE,
                                          OPT_MODEL_PATH, OPT_REPO_ID, OPT_PARAM,    OPT_WHERE,
                                          OPT_JSON,       OPT_END};

const cli_command cli_cmd_resolve = {
    "resolve",
    "show where each file of a model comes from, or goes",
    "ENGINE",
    resolve_options,
    1,
    "Shows where every file of a model comes from - the explicit path, a models\n"
    "root (<root>/TTS/<engine>/<model>, or <folder>/<engine>/<model> for a TTS\n"
    "folder of ComfyUI's extra_model_paths.yaml), a legacy folder or the\n"
    "HuggingFace hub cache - and, for missing files, every place searched. With\n"
    "--where, lists the roots in search order and, for each file, the exact\n"
    "folder and names it is looked for under in every root and its path in the\n"
    "hub repo. Nothing is opened.",
    "{\"engine\", \"model\", \"model_type\", \"language\", \"complete\", \"installed\", "
    "\"missing\", \"hub_cache\", \"roots\": [{\"path\", \"kind\", \"origin\", \"exists\"}], "
    "\"warnings\", \"components\": [{\"name\", \"kind\", \"files\", \"path\", \"origin\", "
    "\"from_model\", \"borrowed\", \"shared\", \"optional\", \"searched\", \"names\", \"where\", "
    "\"download\": {\"repo\", \"revision\", \"path\", \"dataset\"}, \"broken\", \"bytes\", "
    "\"modified\", \"location\"}], \"pull\": {\"components\": the required ones missing, "
    "\"command\": the ttsm pull command, or null}}",
    "ttsm resolve chatterbox -l fr --models-dir ~/ComfyUI/models\n"
    "ttsm resolve f5tts --where --comfyui ~/ComfyUI\n"
    "ttsm resolve vibevoice --json | jq '.components[] | {name, path}'",
    "exit codes: 0 complete, 2 usage, 3 a required file is missing (or the engine, model or "
    "language is unknown), 6 an unsafe hub cache entry.",
    run_resolve};

static const cli_opt ls_options[] = {OPT_ENGINE, OPT_ALL, OPT_JSON, OPT_END};

const cli_command cli_cmd_ls = {
    "ls",
    "list installed models: complete or not, size, where, last modified",
    "[ENGINE]",
    ls_options,
    1,
    "Lists the models found in the models roots and the hub cache: whether each\n"
    "is complete (every required file present), its size on disk (each file\n"
    "once, shards included), when its newest file was modified, and where it is\n"
    "- a root, or a hub repo with the revision and commit; then, for the models\n"
    "that are not complete, what a pull would add and the `ttsm pull` command.\n"
    "--all also lists models with no file at all.",
    "{\"models\": [{\"engine\", \"model\", \"model_type\", \"language\", \"installed\", "
    "\"complete\", \"missing\", \"bytes\", \"modified\", \"where\": [{\"root\"} | {\"repo\", "
    "\"revision\", \"commit\"}], \"pull\": {\"components\", \"command\"}}], \"roots\", "
    "\"hub_cache\"}",
    "ttsm ls --models-dir examples/models\n"
    "ttsm ls chatterbox --all\n"
    "ttsm ls --json | jq '.models[] | select(.complete | not)'",
    NULL,
    run_ls};
