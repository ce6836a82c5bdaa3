/* factory_manifest.c - the factory of every engine whose manifest needs no
 * code: it resolves the model's files (resolve.c) and adds each component
 * by kind - tensors through the checkpoint readers, JSON validated, blobs
 * checked. Borrowed and shared components are ordinary files here; the
 * manager's host table opens each path once, however many models use it. */
#include <string.h>

#include "base/error.h"
#include "store/resolve.h"
#include "engines/factory_manifest.h"
#include "engines/model.h"

/* A file of the model breaks its format's rules: say how to check the
 * whole model and to download that file again. A reader's own hint (which
 * shard of which index) stays in front; the generic one of
 * ttsm_checkpoint_open() gives way to this more precise one. */
static void corrupt_hint(const ttsm__manifest *m, const ttsm__model_spec *ms,
                         const ttsm_load_config *cfg, const ttsm__resolved_comp *rc,
                         ttsm_error *err)
{
    if (!err)
        return;
    char check[TTSM_CONFIG_NAME_MAX * 2 + 64];
    int is_default = m->default_model && strcmp(m->default_model, ms->name) == 0;
    int other_type = cfg->model_type && strcmp(cfg->model_type, m->model_types[0]) != 0;
    ttsm__format_trunc(check, sizeof check, "`ttsm verify %s%s%s%s%s%s`", m->name,
                       is_default ? "" : " -m \"", is_default ? "" : ms->name,
                       is_default ? "" : "\"", other_type ? " -t " : "",
                       other_type ? cfg->model_type : "");
    char repo[TTSM_CONFIG_VALUE_MAX];
    repo[0] = '\0';
    if (rc->dl_repo)
        ttsm__format_trunc(repo, sizeof repo, " from %s", rc->dl_repo);
    if (err->hint[0] && strncmp(err->hint, "the file is damaged", 19) != 0) {
        char had[TTSM_ERROR_HINT_MAX];
        memcpy(had, err->hint, sizeof had);
        ttsm__err_hint(err, "%s; check the model with %s, then download the damaged file again",
                       had, check);
        return;
    }
    ttsm__err_hint(err, "the file is damaged: %s checks every file of the model; delete this "
                        "one and download it again%s",
                   check, repo);
}

ttsm_status ttsm__manifest_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                   ttsm_model **out, ttsm_error *err)
{
    const ttsm__manifest *m = ctx->manifest;
    if (!m)
        return ttsm__err(err, TTSM_ERR_ENGINE, cfg->engine, "no manifest",
                         "the manifest factory was called for an engine without one");
    /* The manager hands factories a canonical config: the model is named. */
    const ttsm__model_spec *ms = ttsm__manifest_model(m, cfg->model_name);
    if (!ms)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, cfg->engine, "model not found",
                         "no model \"%s\" in %s", cfg->model_name ? cfg->model_name : "(none)",
                         m->source);
    char subject[2 * TTSM_CONFIG_NAME_MAX];
    ttsm__format_trunc(subject, sizeof subject, "%s/%s", m->name, ms->name);

    ttsm__roots roots = {ctx->models_dirs, ctx->hf_cache, ctx->comfyui_dirs, 0};
    ttsm__resolution r;
    ttsm_status st = ttsm__resolve_model(m, ms, cfg, &roots, &r, err);
    if (st != TTSM_OK)
        return st;
    if (r.n_missing) {
        st = ttsm__resolution_error(&r, subject, err);
        ttsm__resolution_free(&r);
        return st;
    }
    ttsm_model *model;
    st = ttsm_model_create(ctx, &model, err);
    for (size_t i = 0; i < r.n_comps && st == TTSM_OK; i++) {
        const ttsm__resolved_comp *rc = &r.comps[i];
        if (!rc->path)
            continue; /* optional and absent */
        switch (rc->spec->kind) {
        case TTSM__KIND_TENSORS:
            st = ttsm_model_add_checkpoint(model, rc->name, rc->path, err);
            break;
        case TTSM__KIND_JSON:
            st = ttsm_model_add_file(model, rc->name, rc->path, TTSM_FILE_JSON, err);
            break;
        default:
            st = ttsm_model_add_file(model, rc->name, rc->path, TTSM_FILE_BLOB, err);
            break;
        }
        if (st == TTSM_ERR_FORMAT)
            corrupt_hint(m, ms, cfg, rc, err);
    }
    ttsm__resolution_free(&r);
    if (st == TTSM_OK)
        *out = model;
    return st;
}
