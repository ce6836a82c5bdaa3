/* cmd_key.c - `ttsm key ENGINE ...`: prints the cache key of a load config,
 * and with --explain the canonical string it hashes (docs/cache-key.md). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: ttsm key ENGINE [--model M] [--type T] [--device D] [--language L]\n"
            "                [--model-path P] [--repo-id ORG/NAME[@REV]] [--param k=v ...]\n"
            "                [--explain] [--json]\n\n"
            "Prints the cache key (32 hex digits) that a load with this config gets.\n"
            "Configs that name the same model on the same device share a key: auto and\n"
            "the device it resolves to are one key, so are cuda and cuda:0.\n\n"
            "options:\n"
            "  --model M        model name (default: the engine's default model)\n"
            "  --type T         model type (default: tts)\n"
            "  --device D       auto (default), cpu, cuda, cuda:N\n"
            "  --language L     language name or code (English and en are one)\n"
            "  --model-path P   explicit model folder or file (must exist)\n"
            "  --repo-id R      HuggingFace repo id, optionally @revision\n"
            "  --param k=v      an additional parameter; repeatable\n"
            "  --explain        also print the canonical string that is hashed\n"
            "  --json           print {\"key\", \"canonical\"}\n\n"
            "examples:\n"
            "  ttsm key chatterbox --language English\n"
            "  ttsm key chatterbox_official_23lang --param model_version=v2 --explain\n"
            "  ttsm key f5tts --model F5TTS_Base --device cuda:0\n");
}

static int run(int argc, char **argv)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    cli_params ps = {0};
    int explain = 0, json = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (strcmp(a, "--explain") == 0) {
            explain = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(a, "--model") == 0)
            target = &cfg.model_name;
        else if (strcmp(a, "--type") == 0)
            target = &cfg.model_type;
        else if (strcmp(a, "--device") == 0)
            target = &cfg.device;
        else if (strcmp(a, "--language") == 0)
            target = &cfg.language;
        else if (strcmp(a, "--model-path") == 0)
            target = &cfg.model_path;
        else if (strcmp(a, "--repo-id") == 0)
            target = &cfg.repo_id;
        if (target || strcmp(a, "--param") == 0) {
            if (i + 1 >= argc) {
                rc = cli_usage_error("key", "%s needs a value", a);
                goto out;
            }
            const char *v = argv[++i];
            if (target) {
                *target = v;
                continue;
            }
            if ((rc = cli_params_add("key", &ps, v)) != 0)
                goto out;
            continue;
        }
        if (a[0] == '-') {
            rc = cli_usage_error("key", "unknown option '%s'", a);
            goto out;
        }
        if (cfg.engine) {
            rc = cli_usage_error("key", "one ENGINE only, got '%s' and '%s'", cfg.engine, a);
            goto out;
        }
        cfg.engine = a;
    }
    if (!cfg.engine) {
        rc = cli_usage_error("key", "missing ENGINE");
        goto out;
    }
    cfg.params = ps.p;
    cfg.n_params = ps.n;

    ttsm_error err;
    char key[TTSM_KEY_HEX_SIZE];
    char *canon = NULL;
    ttsm_status st = ttsm_cache_key(&cfg, key, &err);
    if (st == TTSM_OK && (explain || json))
        st = ttsm_cache_key_canonical(&cfg, &canon, NULL, &err);
    if (st != TTSM_OK) {
        rc = cli_fail(st, &err);
        goto out;
    }
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
out:
    cli_params_free(&ps);
    return rc;
}

const cli_command cli_cmd_key = {"key", "print the cache key of a load config", run, help};
