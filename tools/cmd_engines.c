/* cmd_engines.c - `ttsm engines [--json] [NAME]`: the engine registry -
 * capabilities, languages, models, where each manifest came from. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
    ttsm_capability cap;
    const char *name;
} caps[] = {
    {TTSM_CAP_VOICE_CONVERSION, "supports_voice_conversion"},
    {TTSM_CAP_FALLBACK, "has_fallback"},
    {TTSM_CAP_CAN_CORRUPT, "can_corrupt"},
    {TTSM_CAP_SPECIAL_INIT, "requires_special_init"},
    {TTSM_CAP_LANGUAGE_SELECTS_MODEL, "language_selects_model"},
    {TTSM_CAP_SINGLE_INSTANCE, "single_instance"},
};

static json_t *engine_json(const ttsm_engine_info *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(ttsm_engine_name(e)));
    json_t *a = json_array();
    for (size_t i = 0; i < ttsm_engine_alias_count(e); i++)
        json_array_append_new(a, json_string(ttsm_engine_alias(e, i)));
    json_object_set_new(o, "aliases", a);
    json_object_set_new(o, "description", json_string(ttsm_engine_description(e)));
    json_object_set_new(o, "source", json_string(ttsm_engine_source(e)));
    json_object_set_new(o, "runtime", json_string(ttsm_engine_runtime(e)));
    const char *d = ttsm_engine_devices(e);
    json_object_set_new(o, "devices", d ? json_string(d) : json_null());
    a = json_array();
    for (size_t i = 0; i < ttsm_engine_model_type_count(e); i++)
        json_array_append_new(a, json_string(ttsm_engine_model_type(e, i)));
    json_object_set_new(o, "model_types", a);
    a = json_array();
    for (size_t i = 0; i < ttsm_engine_language_count(e); i++)
        json_array_append_new(a, json_string(ttsm_engine_language(e, i)));
    json_object_set_new(o, "languages", a);
    const char *dm = ttsm_engine_default_model(e);
    json_object_set_new(o, "default_model", dm ? json_string(dm) : json_null());
    a = json_array();
    for (size_t i = 0; i < ttsm_engine_model_count(e); i++) {
        const char *l = ttsm_engine_model_language(e, i);
        json_array_append_new(a, json_pack("{s:s, s:o}", "name", ttsm_engine_model_name(e, i),
                                           "language", l ? json_string(l) : json_null()));
    }
    json_object_set_new(o, "models", a);
    json_object_set_new(o, "recovery", json_string(ttsm_engine_recovery(e)));
    json_t *c = json_object();
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        json_object_set_new(c, caps[i].name, json_boolean(ttsm_engine_has(e, caps[i].cap)));
    json_object_set_new(o, "capabilities", c);
    const char *man = ttsm_engine_manifest(e);
    json_object_set_new(o, "manifest", man ? json_loads(man, 0, NULL) : json_null());
    return o;
}

static void print_engine(const ttsm_engine_info *e, int detail)
{
    if (!detail) {
        char flags[64] = "";
        if (ttsm_engine_has(e, TTSM_CAP_VOICE_CONVERSION))
            strcat(flags, "vc ");
        if (ttsm_engine_has(e, TTSM_CAP_LANGUAGE_SELECTS_MODEL))
            strcat(flags, "lang-model ");
        if (ttsm_engine_has(e, TTSM_CAP_CAN_CORRUPT))
            strcat(flags, "can-corrupt ");
        if (ttsm_engine_has(e, TTSM_CAP_SINGLE_INSTANCE))
            strcat(flags, "single ");
        printf("%-28s %-8s %-9s %3zu %4zu  %s\n", ttsm_engine_name(e), ttsm_engine_runtime(e),
               ttsm_engine_devices(e) ? ttsm_engine_devices(e) : "any",
               ttsm_engine_language_count(e), ttsm_engine_model_count(e), flags);
        return;
    }
    printf("%s: %s\n", ttsm_engine_name(e), ttsm_engine_description(e));
    printf("  source:        %s\n", ttsm_engine_source(e));
    printf("  runtime:       %s\n", ttsm_engine_runtime(e));
    printf("  devices:       %s\n", ttsm_engine_devices(e) ? ttsm_engine_devices(e) : "any");
    printf("  aliases:      ");
    for (size_t i = 0; i < ttsm_engine_alias_count(e); i++)
        printf(" %s%s", ttsm_engine_alias(e, i), i + 1 < ttsm_engine_alias_count(e) ? "," : "");
    printf("\n  model types:  ");
    for (size_t i = 0; i < ttsm_engine_model_type_count(e); i++)
        printf(" %s", ttsm_engine_model_type(e, i));
    printf("\n  languages:    ");
    for (size_t i = 0; i < ttsm_engine_language_count(e); i++)
        printf(" %s", ttsm_engine_language(e, i));
    printf("\n  capabilities:");
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        printf(" %s=%s", caps[i].name, ttsm_engine_has(e, caps[i].cap) ? "yes" : "no");
    printf("\n  recovery:      %s\n", ttsm_engine_recovery(e));
    if (ttsm_engine_default_model(e))
        printf("  default model: %s\n", ttsm_engine_default_model(e));
    if (ttsm_engine_model_count(e))
        printf("  models:\n");
    for (size_t i = 0; i < ttsm_engine_model_count(e); i++) {
        const char *l = ttsm_engine_model_language(e, i);
        printf("    %-28s %s\n", ttsm_engine_model_name(e, i), l ? l : "");
    }
}

static int run(cli_args *a)
{
    int json = a->given[OPT_JSON];
    const char *name = a->n_pos ? a->pos[0] : NULL;
    /* A manifest of TTSM_ENGINES_PATH that failed to load is said, and the
     * exit code says it too; the engines that did load are still listed. */
    ttsm_error err;
    ttsm_status st = ttsm_engines_status(&err);
    int rc = st == TTSM_OK ? CLI_EXIT_OK : cli_exit_code(st);
    const ttsm_engine_info *one = NULL;
    if (name && !(one = ttsm_engine_find(name)))
        return cli_engine_not_found(name);
    if (st != TTSM_OK)
        fprintf(stderr, "ttsm: warning: %s\n", err.message);
    if (json) {
        json_t *list = json_array();
        for (size_t i = 0; i < ttsm_engine_count(); i++)
            if (!one || ttsm_engine_get(i) == one)
                json_array_append_new(list, engine_json(ttsm_engine_get(i)));
        json_t *root = json_pack("{s:o}", "engines", list);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(root);
        return rc;
    }
    if (one) {
        print_engine(one, 1);
        return rc;
    }
    printf("%-28s %-8s %-9s %3s %4s  %s\n", "ENGINE", "RUNTIME", "DEVICES", "LNG", "MDLS",
           "CAPABILITIES");
    for (size_t i = 0; i < ttsm_engine_count(); i++)
        print_engine(ttsm_engine_get(i), 0);
    return rc;
}

static const cli_opt options[] = {OPT_JSON, OPT_END};

const cli_command cli_cmd_engines = {
    "engines",
    "list engines and their capabilities",
    "[NAME]",
    options,
    1,
    "Lists the engines ttsm knows: the manifests compiled in, those read from\n"
    "TTSM_ENGINES_PATH, and the built-in `file` engine. With NAME (a name or an\n"
    "alias), shows that engine's capabilities, languages and models. A manifest\n"
    "of TTSM_ENGINES_PATH that fails to load is reported, with why.",
    "{\"engines\": [{\"name\", \"aliases\", \"description\", \"source\", \"runtime\", "
    "\"devices\", \"model_types\", \"languages\", \"default_model\", \"models\": [{\"name\", "
    "\"language\"}], \"recovery\", \"capabilities\": {\"supports_voice_conversion\", "
    "\"has_fallback\", \"can_corrupt\", \"requires_special_init\", "
    "\"language_selects_model\", \"single_instance\"}, \"manifest\"}]}",
    "ttsm engines\n"
    "ttsm engines chatterbox\n"
    "ttsm engines --json | jq '.engines[] | select(.capabilities.can_corrupt)'\n"
    "TTSM_ENGINES_PATH=~/my-engines ttsm engines",
    NULL,
    run};
