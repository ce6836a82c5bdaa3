/* config.c - ttsm_load_config defaults and validation, and language
 * normalisation ("English" and "en" are one language). Validation never
 * touches the file system or devices; ttsm_cache_key() does that. */
#include <ctype.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "base/config.h"
#include "base/error.h"

ttsm_load_config ttsm_load_config_default(void)
{
    ttsm_load_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.model_type = "tts";
    c.device = "auto";
    return c;
}

/* Checks one optional string field. */
/* 1 when check_string has nothing to say: the hit path validates every
 * config, and naming a param field costs a printf. */
static int string_ok(const char *value, size_t max)
{
    size_t n = strnlen(value, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
            return 0;
    return 1;
}

static ttsm_status check_string(const char *field, const char *value, size_t max, ttsm_error *err)
{
    if (!value)
        return TTSM_OK;
    size_t n = strnlen(value, max + 1);
    if (n == 0)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "%s is an empty string; leave it NULL for the default", field);
    if (n > max)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "%s is longer than %zu bytes (starts \"%.40s\")", field, max, value);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                             "%s holds control character 0x%02x at byte %zu", field, c, i);
    }
    return TTSM_OK;
}

static int is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

ttsm_status ttsm_load_config_validate(const ttsm_load_config *cfg, ttsm_error *err)
{
    if (!cfg)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid argument",
                         "config is NULL");
    if (cfg->struct_size < sizeof(ttsm_load_config))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "struct_size is %zu, expected %zu; start from ttsm_load_config_default()",
                         cfg->struct_size, sizeof(ttsm_load_config));
    if (cfg->struct_size > sizeof(ttsm_load_config))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "struct_size is %zu, larger than this library's %zu: the program was "
                         "built against a newer ttsm.h",
                         cfg->struct_size, sizeof(ttsm_load_config));
    if (!cfg->engine)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "engine is required (e.g. \"chatterbox\")");
    const struct {
        const char *name, *value;
        size_t max;
    } fields[] = {
        {"engine", cfg->engine, TTSM_CONFIG_NAME_MAX},
        {"model_type", cfg->model_type, TTSM_CONFIG_NAME_MAX},
        {"model_name", cfg->model_name, TTSM_CONFIG_NAME_MAX},
        {"device", cfg->device, TTSM_CONFIG_VALUE_MAX},
        {"language", cfg->language, TTSM_CONFIG_NAME_MAX},
        {"model_path", cfg->model_path, TTSM_CONFIG_VALUE_MAX},
        {"repo_id", cfg->repo_id, TTSM_CONFIG_VALUE_MAX},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        ttsm_status st = check_string(fields[i].name, fields[i].value, fields[i].max, err);
        if (st != TTSM_OK)
            return st;
    }
    if (cfg->n_params > 0 && !cfg->params)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "params is NULL but n_params is %zu", cfg->n_params);
    if (cfg->n_params > TTSM_CONFIG_PARAMS_MAX)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "%zu params, the limit is %d", cfg->n_params, TTSM_CONFIG_PARAMS_MAX);
    for (size_t i = 0; i < cfg->n_params; i++) {
        const ttsm_param *p = &cfg->params[i];
        char field[48];
        int key_ok = p->key && string_ok(p->key, TTSM_CONFIG_NAME_MAX);
        if (!key_ok)
            ttsm__format_trunc(field, sizeof field, "params[%zu].key", i);
        if (!p->key)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                             "%s is NULL", field);
        ttsm_status st = key_ok ? TTSM_OK : check_string(field, p->key, TTSM_CONFIG_NAME_MAX, err);
        if (st != TTSM_OK)
            return st;
        for (const char *c = p->key; *c; c++)
            if (!is_key_char(*c))
                return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                                 "params[%zu].key \"%s\" may hold only letters, digits, '_', "
                                 "'-' and '.'",
                                 i, p->key);
        if (!p->value || !string_ok(p->value, TTSM_CONFIG_VALUE_MAX)) {
            ttsm__format_trunc(field, sizeof field, "params[%zu].value", i);
            if (!p->value)
                return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                                 "%s (key \"%s\") is NULL", field, p->key);
            if ((st = check_string(field, p->value, TTSM_CONFIG_VALUE_MAX, err)) != TTSM_OK)
                return st;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->params[j].key, p->key) == 0)
                return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                                 "params[%zu].key \"%s\" repeats params[%zu].key", i, p->key, j);
    }
    return TTSM_OK;
}

/* Names and ISO 639-1 codes of the languages the suite's engines speak.
 * Engines may add their own; unknown names are kept lower-cased. */
static const struct {
    const char *code, *name;
} languages[] = {
    {"ar", "arabic"},   {"da", "danish"},     {"de", "german"},   {"el", "greek"},
    {"en", "english"},  {"es", "spanish"},    {"fi", "finnish"},  {"fr", "french"},
    {"he", "hebrew"},   {"hi", "hindi"},      {"hy", "armenian"}, {"it", "italian"},
    {"ja", "japanese"}, {"ka", "georgian"},   {"ko", "korean"},   {"ms", "malay"},
    {"nl", "dutch"},    {"no", "norwegian"},  {"pl", "polish"},   {"pt", "portuguese"},
    {"ru", "russian"},  {"sv", "swedish"},    {"sw", "swahili"},  {"th", "thai"},
    {"tr", "turkish"},  {"zh", "chinese"},    {"uk", "ukrainian"}, {"cs", "czech"},
    {"hu", "hungarian"}, {"ro", "romanian"},  {"vi", "vietnamese"}, {"id", "indonesian"},
    {"fa", "persian"},  {"bn", "bengali"},    {"ta", "tamil"},    {"ur", "urdu"},
};

const char *ttsm__language_code(const char *name)
{
    for (size_t i = 0; i < sizeof languages / sizeof languages[0]; i++)
        if (strcasecmp(name, languages[i].code) == 0 || strcasecmp(name, languages[i].name) == 0)
            return languages[i].code;
    return NULL;
}

const char *ttsm__language_name(const char *code)
{
    for (size_t i = 0; i < sizeof languages / sizeof languages[0]; i++)
        if (strcmp(code, languages[i].code) == 0)
            return languages[i].name;
    return NULL;
}

ttsm_status ttsm_language_normalize(const char *language, char *out, size_t out_size,
                                    ttsm_error *err)
{
    if (!language || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "language", "invalid argument",
                         "language and out must be given");
    const char *code = ttsm__language_code(language);
    size_t n = code ? strlen(code) : strlen(language);
    if (n + 1 > out_size)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "language", "invalid argument",
                         "output buffer of %zu bytes is too small for %zu", out_size, n + 1);
    if (code) {
        memcpy(out, code, n + 1);
        return TTSM_OK;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)language[i]);
    out[n] = '\0';
    return TTSM_OK;
}

/* Process-wide, like the engine and backend tables whose changes it counts. */
static _Atomic uint64_t generation = 1;

uint64_t ttsm__config_generation(void)
{
    return atomic_load(&generation);
}

void ttsm__config_changed(void)
{
    atomic_fetch_add(&generation, 1);
}
