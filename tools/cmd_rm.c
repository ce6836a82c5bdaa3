/* cmd_rm.c - `ttsm rm ENGINE [--model M] [--dry-run]`: takes a model out of
 * the hub cache through ttsm_remove(): its snapshot entries, and the blobs
 * no other snapshot references. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int run(cli_args *a)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    if (a->value[OPT_ENGINE] && a->n_pos)
        return cli_usage_error("rm", "ENGINE given twice ('%s' and -e %s)", a->pos[0],
                               a->value[OPT_ENGINE]);
    cli_load_config(a, &cfg);
    cfg.device = "cpu";
    int json = a->given[OPT_JSON] > 0, dry = a->given[OPT_DRY_RUN] > 0;
    if (!cfg.engine)
        return cli_usage_error("rm", "missing ENGINE");
    if (!ttsm_engine_find(cfg.engine))
        return cli_engine_not_found(cfg.engine);
    char *report = NULL;
    ttsm_error err;
    ttsm_status st = ttsm_remove(&cfg, cli_g.hf_cache, dry, &report, &err);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
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
    return CLI_EXIT_OK;
}

static const cli_opt options[] = {OPT_ENGINE, OPT_MODEL,   OPT_LANGUAGE, OPT_TYPE,
                                  OPT_PARAM,  OPT_DRY_RUN, OPT_JSON,     OPT_END};

const cli_command cli_cmd_rm = {
    "rm",
    "remove a model from the hub cache",
    "ENGINE",
    options,
    1,
    "Removes a model from the hub cache (--hf-cache, HF_HUB_CACHE, HF_HOME/hub):\n"
    "its own files' snapshot entries in every snapshot of its repos, then the\n"
    "blobs that no other snapshot entry references; a repo folder left empty\n"
    "goes whole. Files other models share or borrow stay, and models roots are\n"
    "never touched. --dry-run lists what would go.",
    "{\"engine\", \"model\", \"hub_cache\", \"dry_run\", \"links\": [...], \"blobs\": "
    "[{\"path\", \"bytes\"}], \"freed_bytes\", \"repos_removed\": [...]}",
    "ttsm rm chatterbox -m French --dry-run\n"
    "ttsm rm vibevoice -m VibeVoice-Large",
    NULL,
    run};
