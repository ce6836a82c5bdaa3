/* cmd_rm.c - `ttsm rm ENGINE [--model M] [--dry-run]`: takes a model out of
 * the hub cache through ttsm_remove(): its snapshot entries, and the blobs
 * no other snapshot references. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: ttsm rm ENGINE [--model M] [--language L] [--type T] [--param k=v ...]\n"
            "               [--dry-run] [--json]\n\n"
            "Removes a model from the hub cache (--hf-cache, HF_HUB_CACHE, HF_HOME/hub):\n"
            "its own files' snapshot entries in every snapshot of its repos, then the\n"
            "blobs that no other snapshot entry references; a repo folder left empty\n"
            "goes whole. Files other models share or borrow stay, and models roots are\n"
            "never touched. --dry-run lists what would go.\n\n"
            "  --json   {\"engine\", \"model\", \"hub_cache\", \"dry_run\", \"links\": [...],\n"
            "           \"blobs\": [{\"path\", \"bytes\"}], \"freed_bytes\", \"repos_removed\"}\n\n"
            "examples:\n"
            "  ttsm rm chatterbox --model French --dry-run\n"
            "  ttsm rm vibevoice --model VibeVoice-Large\n");
}

static int run(int argc, char **argv)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.device = "cpu";
    cli_params ps = {0};
    int json = 0, dry = 0, rc = CLI_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **t = NULL;
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(a, "--dry-run") == 0) {
            dry = 1;
            continue;
        }
        if (a[0] != '-') {
            if (cfg.engine) {
                rc = cli_usage_error("rm", "one ENGINE only (got '%s' too)", a);
                goto out;
            }
            cfg.engine = a;
            continue;
        }
        if (strcmp(a, "--model") == 0)
            t = &cfg.model_name;
        else if (strcmp(a, "--language") == 0)
            t = &cfg.language;
        else if (strcmp(a, "--type") == 0)
            t = &cfg.model_type;
        else if (strcmp(a, "--param") != 0) {
            rc = cli_usage_error("rm", "unknown option '%s'", a);
            goto out;
        }
        if (i + 1 >= argc) {
            rc = cli_usage_error("rm", "%s needs a value", a);
            goto out;
        }
        if (t)
            *t = argv[++i];
        else if ((rc = cli_params_add("rm", &ps, argv[++i])) != 0)
            goto out;
    }
    if (!cfg.engine) {
        rc = cli_usage_error("rm", "missing ENGINE");
        goto out;
    }
    cfg.params = ps.p;
    cfg.n_params = ps.n;
    char *report = NULL;
    ttsm_error err;
    ttsm_status st = ttsm_remove(&cfg, cli_g.hf_cache, dry, &report, &err);
    if (st != TTSM_OK) {
        rc = cli_fail(st, &err);
        goto out;
    }
    if (json) {
        puts(report);
    } else {
        json_t *r = json_loads(report, 0, NULL);
        size_t i;
        json_t *v;
        const char *verb = dry ? "would remove" : "removed";
        json_array_foreach(json_object_get(r, "links"), i, v)
            printf("%s %s\n", verb, json_string_value(v));
        json_array_foreach(json_object_get(r, "blobs"), i, v)
            printf("%s %s (%lld bytes)\n", verb, json_string_value(json_object_get(v, "path")),
                   (long long)json_integer_value(json_object_get(v, "bytes")));
        json_array_foreach(json_object_get(r, "repos_removed"), i, v)
            printf("%s the repo folder of %s (nothing else was in it)\n", verb,
                   json_string_value(v));
        size_t n = json_array_size(json_object_get(r, "links"));
        printf("%s/%s: %zu file%s, %.1f MiB %s\n", json_string_value(json_object_get(r, "engine")),
               json_string_value(json_object_get(r, "model")), n, n == 1 ? "" : "s",
               (double)json_integer_value(json_object_get(r, "freed_bytes")) / 1048576.0,
               dry ? "would be freed" : n ? "freed" : "freed (the model is not in the hub cache)");
        json_decref(r);
    }
    ttsm_free(report);
out:
    cli_params_free(&ps);
    return rc;
}

const cli_command cli_cmd_rm = {"rm", "remove a model from the hub cache", run, help};
