/* cmd_key.c - `ttsm key ENGINE ...`: prints the cache key of a load config,
 * and with --explain the canonical string it hashes (docs/cache-key.md). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int run(cli_args *a)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    int explain = a->given[OPT_EXPLAIN], json = a->given[OPT_JSON], rc;
    if (a->value[OPT_ENGINE] && a->n_pos)
        return cli_usage_error("key", "one ENGINE only, got '%s' and '%s'", a->value[OPT_ENGINE],
                               a->pos[0]);
    cli_load_config(a, &cfg);
    if (!cfg.engine)
        return cli_usage_error("key", "missing ENGINE");

    ttsm_error err;
    char key[TTSM_KEY_HEX_SIZE];
    char *canon = NULL;
    ttsm_status st = ttsm_cache_key(&cfg, key, &err);
    if (st == TTSM_OK && (explain || json))
        st = ttsm_cache_key_canonical(&cfg, &canon, NULL, &err);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
    if (json) {
        json_t *o = json_pack("{s:s, s:s}", "key", key, "canonical", canon);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(o);
    } else if (explain) {
        fputs(canon, stdout);
        printf("key: %s\n", key);
    } else {
        puts(key);
    }
    ttsm_free(canon);
    rc = CLI_EXIT_OK;
    return rc;
}

static const cli_opt options[] = {OPT_ENGINE,     OPT_MODEL,   OPT_LANGUAGE, OPT_TYPE,
                                  OPT_DEVICE,     OPT_MODEL_PATH, OPT_REPO_ID, OPT_PARAM,
                                  OPT_EXPLAIN,    OPT_JSON,    OPT_END};

const cli_command cli_cmd_key = {
    "key",
    "print the cache key of a load config",
    "ENGINE",
    options,
    1,
    "Prints the cache key (32 hex digits) that a load with this config gets.\n"
    "Configs that name the same model on the same device share a key: auto and\n"
    "the device it resolves to are one key, so are cuda and cuda:0, English and\n"
    "en. Configs that spell the same files differently (no repo id, the model's\n"
    "own repo, that repo at its commit) keep their keys and share one cache\n"
    "entry (docs/cache-key.md).",
    "{\"key\", \"canonical\"}",
    "ttsm key chatterbox -l English\n"
    "ttsm key chatterbox_official_23lang --param model_version=v2 --explain\n"
    "ttsm key f5tts -m F5TTS_Base -d cuda:0",
    NULL,
    run};
