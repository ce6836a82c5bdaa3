/* canonical.c - turns a load config into its canonical form before it is
 * keyed or loaded: the engine's canonical name for an alias, the model the
 * language or the default selects, the language only where it selects the
 * model, identity params with their defaults. So configs that name the same
 * model get one cache entry - the seed's double loads came from keys that
 * differed while the files were the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/convert.h"
#include "base/error.h"
#include "base/strbuf.h"
#include "engines/registry.h"
#include "cache/canonical.h"

static ttsm_status list_error(ttsm_error *err, ttsm_status code, const char *subject,
                              const char *what, const char *detail, char *const *names, size_t n)
{
    ttsm__sb b = {0};
    for (size_t i = 0; i < n; i++)
        ttsm__sb_addf(&b, "%s%s", i ? ", " : "", names[i]);
    ttsm_status st = ttsm__err(err, code, subject, what, "%s (%s)", detail,
                               n ? ttsm__sb_str(&b) : "none");
    ttsm__sb_free(&b);
    return st;
}

static ttsm_status model_list_error(ttsm_error *err, const ttsm__manifest *m, const char *name)
{
    ttsm__sb b = {0};
    for (size_t i = 0; i < m->n_models; i++)
        ttsm__sb_addf(&b, "%s%s", i ? ", " : "", m->models[i].name);
    ttsm_status st = ttsm__err(err, TTSM_ERR_NOT_FOUND, m->name, "model not found",
                               "no model \"%s\" (models: %s)", name, ttsm__sb_str(&b));
    ttsm__sb_free(&b);
    return st;
}

/* 1 when model `ms` lists the repo of `repo_id` ("org/name[@rev]"). */
static int model_has_repo(const ttsm__model_spec *ms, const char *repo_id)
{
    size_t n = strcspn(repo_id, "@");
    for (size_t i = 0; i < ms->n_repos; i++)
        if (strlen(ms->repos[i].id) == n && strncmp(ms->repos[i].id, repo_id, n) == 0)
            return 1;
    return 0;
}

/* The first model of `m` that lists the repo, or NULL. */
static const ttsm__model_spec *repo_owner(const ttsm__manifest *m, const char *repo_id)
{
    for (size_t i = 0; i < m->n_models; i++)
        if (model_has_repo(&m->models[i], repo_id))
            return &m->models[i];
    return NULL;
}

static int cmp_param(const void *a, const void *b)
{
    return strcmp(((const ttsm_param *)a)->key, ((const ttsm_param *)b)->key);
}

/* The `dtype` param every engine takes (docs/manager.md): its value, checked. */
static ttsm_status explicit_dtype(const ttsm_load_config *in, ttsm_dtype *out, ttsm_error *err)
{
    *out = TTSM_DTYPE_INVALID;
    for (size_t i = 0; i < in->n_params; i++) {
        if (strcmp(in->params[i].key, "dtype") != 0)
            continue;
        if (!(*out = ttsm__load_dtype(in->params[i].value)))
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, in->engine, "invalid param",
                             "dtype=%.200s is not an allowed value (float16, bfloat16, float32)",
                             in->params[i].value);
    }
    return TTSM_OK;
}

ttsm_status ttsm__canonicalize(const ttsm_load_config *in, ttsm__canon *out, ttsm_error *err)
{
    memset(out, 0, sizeof *out);
    ttsm_status st = ttsm_load_config_validate(in, err);
    if (st != TTSM_OK || (st = explicit_dtype(in, &out->dtype, err)) != TTSM_OK)
        return st;
    out->cfg = *in;
    if (in->language) {
        st = ttsm_language_normalize(in->language, out->language, sizeof out->language, err);
        if (st != TTSM_OK)
            return st;
        out->cfg.language = out->language;
    }
    const ttsm__manifest *m = ttsm__registry_manifest(in->engine);
    out->manifest = m;
    if (!m)
        return TTSM_OK; /* file engine, engines in code, unknown names: as given */

    out->cfg.engine = m->name;

    /* Model type: "tts" is the default of every config; an engine without
     * it (RVC) answers with its first type. */
    const char *type = in->model_type ? in->model_type : "tts";
    int known = 0;
    for (size_t i = 0; i < m->n_model_types && !known; i++)
        known = strcmp(m->model_types[i], type) == 0;
    if (!known && strcmp(type, "tts") == 0) {
        type = m->model_types[0];
        known = 1;
    }
    if (!known)
        return list_error(err, TTSM_ERR_NOT_FOUND, m->name, "model type not found", type,
                          m->model_types, m->n_model_types);
    out->cfg.model_type = type;

    if (in->language && m->n_languages) {
        int ok = 0;
        for (size_t i = 0; i < m->n_languages && !ok; i++)
            ok = strcmp(m->languages[i], out->language) == 0;
        if (!ok) {
            char detail[TTSM_CONFIG_NAME_MAX + 64];
            snprintf(detail, sizeof detail, "\"%s\" is not a language of this engine",
                     in->language);
            return list_error(err, TTSM_ERR_NOT_FOUND, m->name, "language not found", detail,
                              m->languages, m->n_languages);
        }
    }

    const ttsm__model_spec *ms = NULL;
    if (in->model_name) {
        if (!(ms = ttsm__manifest_model(m, in->model_name)))
            return model_list_error(err, m, in->model_name);
    } else if (in->model_path || in->repo_id) {
        /* An explicit place holds the default model of the language. */
        ms = m->language_selects_model && in->language
                 ? ttsm__manifest_model_for_language(m, out->language)
                 : NULL;
        if (!ms)
            ms = ttsm__manifest_model(m, m->default_model);
        /* Unless the repo is one the manifest gives another model: then
         * its files are that model's, and so is the label (French asked
         * with ResembleAI/chatterbox loads English, and says so). */
        const ttsm__model_spec *owner = in->model_path ? NULL : repo_owner(m, in->repo_id);
        if (owner && owner != ms && !model_has_repo(ms, in->repo_id)) {
            out->asked = ms;
            ms = owner;
        }
    } else if (m->language_selects_model && in->language) {
        ms = ttsm__manifest_model_for_language(m, out->language);
        if (!ms) {
            char detail[TTSM_CONFIG_NAME_MAX + 64];
            snprintf(detail, sizeof detail, "no model for language \"%s\"", out->language);
            return ttsm__err(err, TTSM_ERR_NOT_FOUND, m->name, "model not found", "%s", detail);
        }
    } else {
        ms = ttsm__manifest_model(m, m->default_model);
    }
    if (!ttsm__model_serves(m, ms, type)) {
        const ttsm__model_spec *first = NULL;
        for (size_t i = 0; i < m->n_models && !first && !in->model_name; i++)
            if (ttsm__model_serves(m, &m->models[i], type))
                first = &m->models[i];
        if (!first) {
            /* Name the types it has: RVC's HuBERT models are "hubert", and
             * `ttsm load rvc --model content-vec-best` asks for "vc". */
            const char *own = ms->n_types ? ms->types[0] : m->model_types[0];
            ttsm__sb b = {0};
            for (size_t i = 0; i < ms->n_types; i++)
                ttsm__sb_addf(&b, "%s%s", i ? ", " : "", ms->types[i]);
            st = ttsm__err(err, TTSM_ERR_NOT_FOUND, m->name, "model type not found",
                           "model \"%s\" has no type \"%s\" (its types: %s)", ms->name, type,
                           ms->n_types ? ttsm__sb_str(&b) : own);
            ttsm__err_hint(err, "load it as model type \"%s\" (ttsm: --type %s)", own, own);
            ttsm__sb_free(&b);
            return st;
        }
        ms = first;
    }
    out->model = ms;
    out->cfg.model_name = ms->name;

    /* The language is identity only where it selects the model; there it
     * defaults to the model's own. */
    if (!m->language_selects_model)
        out->cfg.language = NULL;
    else if ((!in->language || out->asked) && ms->language)
        out->cfg.language = ms->language;

    /* Params: declared ones only, values checked; identity params keep (or
     * get) a value, the others reach the factory but not the key. */
    for (size_t i = 0; i < in->n_params; i++) {
        if (strcmp(in->params[i].key, "dtype") == 0)
            continue; /* every engine's, checked above */
        const ttsm__param_spec *ps = ttsm__manifest_param(m, in->params[i].key);
        if (!ps) {
            ttsm__sb b = {0};
            for (size_t j = 0; j < m->n_params; j++)
                ttsm__sb_addf(&b, "%s%s", j ? ", " : "", m->params[j].name);
            st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, m->name, "unknown param",
                           "\"%s\" (params of this engine: %s)", in->params[i].key,
                           m->n_params ? ttsm__sb_str(&b) : "none");
            ttsm__sb_free(&b);
            return st;
        }
        int ok = ps->n_values == 0;
        for (size_t j = 0; j < ps->n_values && !ok; j++)
            ok = strcmp(ps->values[j], in->params[i].value) == 0;
        if (!ok) {
            char detail[TTSM_CONFIG_NAME_MAX * 2 + 32];
            snprintf(detail, sizeof detail, "%s=%s is not an allowed value", ps->name,
                     in->params[i].value);
            return list_error(err, TTSM_ERR_INVALID_ARGUMENT, m->name, "invalid param", detail,
                              ps->values, ps->n_values);
        }
    }
    /* A param the manifest maps to a load dtype (IndexTTS's use_fp16=true:
     * float16), with its value or its default; the dtype param must agree. */
    for (size_t i = 0; i < m->n_params; i++) {
        const ttsm__param_spec *ps = &m->params[i];
        const char *v = ps->def;
        for (size_t j = 0; j < in->n_params; j++)
            if (strcmp(in->params[j].key, ps->name) == 0)
                v = in->params[j].value;
        for (size_t k = 0; k < ps->n_dtypes; k++) {
            if (strcmp(ps->dtype_values[k], v) != 0)
                continue;
            if (out->dtype && out->dtype != ps->dtypes[k])
                return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, m->name, "invalid param",
                                 "dtype=%s contradicts %s=%s, which means dtype=%s",
                                 ttsm__load_dtype_name(out->dtype), ps->name, v,
                                 ttsm__load_dtype_name(ps->dtypes[k]));
            out->dtype = ps->dtypes[k];
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < m->n_params && n < TTSM_CONFIG_PARAMS_MAX; i++) {
        const ttsm__param_spec *ps = &m->params[i];
        if (!ps->identity)
            continue;
        const char *v = ps->def;
        for (size_t j = 0; j < in->n_params; j++)
            if (strcmp(in->params[j].key, ps->name) == 0)
                v = in->params[j].value;
        out->params[n].key = ps->name;
        out->params[n++].value = v;
    }
    /* The load dtype changes the bytes of the entry, so it is identity. */
    if (out->dtype && n < TTSM_CONFIG_PARAMS_MAX) {
        out->params[n].key = "dtype";
        out->params[n++].value = ttsm__load_dtype_name(out->dtype);
    }
    qsort(out->params, n, sizeof out->params[0], cmp_param);
    out->cfg.params = out->params;
    out->cfg.n_params = n;
    /* Non-identity params still reach the factory through `all`. */
    out->factory_params = in->params;
    out->n_factory_params = in->n_params;

    /* An engine that runs on the CPU only resolves "auto" to it. */
    int cuda = 0;
    for (size_t i = 0; i < m->n_devices; i++)
        cuda |= strcmp(m->devices[i], "cuda") == 0;
    if (!cuda && (!in->device || strcmp(in->device, "auto") == 0))
        out->cfg.device = "cpu";
    return TTSM_OK;
}
