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

    ttsm__roots roots = {ctx->models_dirs, ctx->hf_cache, ctx->comfyui_dirs};
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
    }
    ttsm__resolution_free(&r);
    if (st == TTSM_OK)
        *out = model;
    return st;
}
