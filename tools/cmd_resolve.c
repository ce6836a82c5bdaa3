/* cmd_resolve.c - `ttsm resolve ENGINE ...` (where each file of a model
 * comes from) and `ttsm ls [ENGINE]` (which models are installed, and
 * whether completely), both from the library's ttsm_resolve() report. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void resolve_help(FILE *out)
{
    fprintf(out,
            "usage: ttsm resolve ENGINE [--model M] [--language L] [--type T]\n"
            "                    [--param k=v ...] [--model-path P] [--repo-id R]\n"
            "                    [--models-dir DIRS] [--hf-cache DIR] [--json]\n\n"
            "Shows where every file of a model comes from - the explicit path, a models\n"
            "root (ComfyUI layout <root>/TTS/<engine>/<model>), a legacy folder or the\n"
            "HuggingFace hub cache - and, for missing files, every place searched.\n"
            "Nothing is opened. Exit code 3 when a required file is missing.\n\n"
            "examples:\n"
            "  ttsm resolve chatterbox --language fr --models-dir ~/ComfyUI/models\n"
            "  ttsm resolve vibevoice --json | jq '.components[] | {name, path}'\n");
}

static void ls_help(FILE *out)
{
    fprintf(out,
            "usage: ttsm ls [ENGINE] [--all] [--models-dir DIRS] [--hf-cache DIR] [--json]\n\n"
            "Lists the models found in the models roots and the hub cache, and whether\n"
            "each is complete (every required file present); for one that is not, what\n"
            "a pull would add and the `ttsm pull` command. --all also lists models with\n"
            "no file at all.\n\n"
            "  --json   {\"models\": [{\"engine\", \"model\", \"model_type\", \"language\",\n"
            "           \"installed\", \"complete\", \"missing\", \"pull\": {\"components\",\n"
            "           \"command\"}}]}\n\n"
            "examples:\n"
            "  ttsm ls --models-dir examples/models\n"
            "  ttsm ls chatterbox --all\n");
}

typedef struct opts {
    ttsm_load_config cfg;
    const char *models_dirs, *hf_cache;
    cli_params ps;
    int json, all;
} opts;

static void free_opts(opts *o)
{
    cli_params_free(&o->ps);
}

static int parse(const char *cmd, int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->models_dirs = cli_g.models_dirs;
    o->hf_cache = cli_g.hf_cache;
    o->cfg = ttsm_load_config_default();
    o->cfg.device = "cpu"; /* resolution does not depend on the device */
    o->cfg.params = o->ps.p;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **t = NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--all") == 0 && strcmp(cmd, "ls") == 0) {
            o->all = 1;
            continue;
        }
        if (a[0] != '-') {
            if (o->cfg.engine)
                return cli_usage_error(cmd, "one ENGINE only");
            o->cfg.engine = a;
            continue;
        }
        if (strcmp(cmd, "resolve") == 0) {
            if (strcmp(a, "--model") == 0)
                t = &o->cfg.model_name;
            else if (strcmp(a, "--language") == 0)
                t = &o->cfg.language;
            else if (strcmp(a, "--type") == 0)
                t = &o->cfg.model_type;
            else if (strcmp(a, "--model-path") == 0)
                t = &o->cfg.model_path;
            else if (strcmp(a, "--repo-id") == 0)
                t = &o->cfg.repo_id;
        }
        int is_param = strcmp(a, "--param") == 0 && strcmp(cmd, "resolve") == 0;
        if (!t && !is_param)
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return cli_usage_error(cmd, "%s needs a value", a);
        const char *v = argv[++i];
        if (t) {
            *t = v;
            continue;
        }
        int rc = cli_params_add(cmd, &o->ps, v);
        if (rc)
            return rc;
        o->cfg.n_params = o->ps.n;
    }
    return 0;
}

static int run_resolve(int argc, char **argv)
{
    opts o;
    int rc = parse("resolve", argc, argv, &o);
    if (rc == 0 && !o.cfg.engine)
        rc = cli_usage_error("resolve", "missing ENGINE");
    if (rc) {
        free_opts(&o);
        return rc;
    }
    char *report = NULL;
    ttsm_error err;
    ttsm_status st = ttsm_resolve(&o.cfg, o.models_dirs, o.hf_cache, &report, &err);
    free_opts(&o);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
    json_t *r = json_loads(report, 0, NULL);
    int complete = json_is_true(json_object_get(r, "complete"));
    if (o.json) {
        puts(report);
    } else {
        printf("%s/%s (%s): %s\n", json_string_value(json_object_get(r, "engine")),
               json_string_value(json_object_get(r, "model")),
               json_string_value(json_object_get(r, "model_type")),
               complete ? "complete" : "incomplete");
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(r, "components"), i, c) {
            const char *path = json_string_value(json_object_get(c, "path"));
            const char *origin = json_string_value(json_object_get(c, "origin"));
            const char *from = json_string_value(json_object_get(c, "from_model"));
            printf("  %-22s %-8s ", json_string_value(json_object_get(c, "name")),
                   json_string_value(json_object_get(c, "kind")));
            if (path)
                printf("%s  [%s%s%s]\n", path, origin, from ? ", from " : "", from ? from : "");
            else
                printf("%s%s\n", json_is_true(json_object_get(c, "optional")) ? "(optional) " : "",
                       "MISSING");
            if (!path) {
                size_t j;
                json_t *s;
                json_array_foreach(json_object_get(c, "searched"), j, s)
                    printf("      searched %s\n", json_string_value(s));
            }
        }
    }
    json_decref(r);
    ttsm_free(report);
    return complete ? CLI_EXIT_OK : CLI_EXIT_NOT_FOUND;
}

static int run_ls(int argc, char **argv)
{
    opts o;
    int rc = parse("ls", argc, argv, &o);
    if (rc)
        return rc;
    const ttsm_engine_info *only = NULL;
    if (o.cfg.engine && !(only = ttsm_engine_find(o.cfg.engine))) {
        fprintf(stderr, "ttsm: engine not found: %s (see 'ttsm engines')\n", o.cfg.engine);
        return CLI_EXIT_NOT_FOUND;
    }
    json_t *list = json_array();
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
                char *report;
                ttsm_error err;
                if (ttsm_resolve(&c, o.models_dirs, o.hf_cache, &report, &err) != TTSM_OK)
                    continue; /* a model without this type */
                json_t *r = json_loads(report, 0, NULL);
                ttsm_free(report);
                if (!r)
                    continue;
                /* One line per model: its first type that resolves as itself. */
                int same = strcmp(json_string_value(json_object_get(r, "model")), c.model_name) == 0;
                if (same && (o.all || json_is_true(json_object_get(r, "installed"))))
                    json_array_append_new(
                        list, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "engine",
                                        json_object_get(r, "engine"), "model",
                                        json_object_get(r, "model"), "model_type",
                                        json_object_get(r, "model_type"), "language",
                                        json_object_get(r, "language"), "installed",
                                        json_object_get(r, "installed"), "complete",
                                        json_object_get(r, "complete"), "missing",
                                        json_object_get(r, "missing"), "pull",
                                        json_object_get(r, "pull")));
                json_decref(r);
                if (same)
                    break;
            }
        }
    }
    if (o.json) {
        json_t *root = json_pack("{s:o}", "models", list);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(root);
    } else {
        printf("%-28s %-28s %-8s %-5s %s\n", "ENGINE", "MODEL", "TYPE", "LANG", "STATUS");
        size_t i;
        json_t *r;
        json_array_foreach(list, i, r) {
            const char *lang = json_string_value(json_object_get(r, "language"));
            json_int_t missing = json_integer_value(json_object_get(r, "missing"));
            printf("%-28s %-28s %-8s %-5s ", json_string_value(json_object_get(r, "engine")),
                   json_string_value(json_object_get(r, "model")),
                   json_string_value(json_object_get(r, "model_type")), lang ? lang : "-");
            if (!json_is_true(json_object_get(r, "installed")))
                printf("not installed");
            else if (missing)
                printf("incomplete (%lld file%s missing)", (long long)missing,
                       missing == 1 ? "" : "s");
            else
                printf("complete");
            /* What a pull would add, and the command. */
            json_t *pull = json_object_get(r, "pull");
            const char *cmd = json_string_value(json_object_get(pull, "command"));
            if (cmd) {
                printf("; a pull adds ");
                size_t k;
                json_t *c;
                json_array_foreach(json_object_get(pull, "components"), k, c)
                    printf("%s%s", k ? ", " : "", json_string_value(c));
                printf(": %s", cmd);
            }
            printf("\n");
        }
        if (json_array_size(list) == 0)
            printf("(no models found; use --models-dir or TTSM_MODELS_PATH, or --all)\n");
        json_decref(list);
    }
    free_opts(&o);
    return CLI_EXIT_OK;
}

const cli_command cli_cmd_resolve = {"resolve", "show where each file of a model comes from",
                                     run_resolve, resolve_help};
const cli_command cli_cmd_ls = {"ls", "list installed models and whether they are complete",
                                run_ls, ls_help};
