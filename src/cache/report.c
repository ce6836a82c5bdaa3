/* report.c - ttsm_resolve(): what `ttsm resolve` and `ttsm ls` show of a
 * model, as JSON - every component, the file found or every place searched.
 * It canonicalises the config first, so it sits above the store. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/alloc.h"
#include "base/error.h"
#include "store/resolve.h"
#include "cache/canonical.h"

static const char *kind_name(int kind)
{
    return kind == TTSM__KIND_TENSORS ? "tensors" : kind == TTSM__KIND_JSON ? "json" : "blob";
}

ttsm_status ttsm_resolve(const ttsm_load_config *cfg, const char *models_dirs,
                         const char *hf_cache, char **report, ttsm_error *err)
{
    if (!cfg || !report)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_resolve", "invalid argument",
                         "config and report must be given");
    ttsm__canon c;
    ttsm_status st = ttsm__canonicalize(cfg, &c, err);
    if (st != TTSM_OK)
        return st;
    if (!c.manifest)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, cfg->engine, "nothing to resolve",
                         "only engines with a manifest have files to find (see ttsm engines)");
    ttsm__roots roots = {models_dirs, hf_cache, NULL};
    ttsm__resolution r;
    st = ttsm__resolve_model(c.manifest, c.model, &c.cfg, &roots, &r, err);
    if (st != TTSM_OK)
        return st;
    json_t *comps = json_array();
    for (size_t i = 0; i < r.n_comps; i++) {
        const ttsm__resolved_comp *rc = &r.comps[i];
        json_t *searched = json_array();
        if (rc->searched) {
            const char *p = rc->searched;
            while (*p) {
                const char *e = strstr(p, "; ");
                size_t n = e ? (size_t)(e - p) : strlen(p);
                json_array_append_new(searched, json_stringn(p, n));
                p += n + (e ? 2 : 0);
            }
        }
        json_t *files = json_array();
        for (size_t a = 0; rc->spec && a < rc->spec->n_files; a++)
            json_array_append_new(files, json_string(rc->spec->files[a]));
        json_array_append_new(
            comps,
            json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:b, s:b, s:o}", "name", rc->name,
                      "kind", rc->spec ? kind_name(rc->spec->kind) : "unknown", "files", files,
                      "path", rc->path ? json_string(rc->path) : json_null(), "origin",
                      rc->origin && rc->path ? json_string(rc->origin) : json_null(),
                      "from_model", rc->from_model ? json_string(rc->from_model) : json_null(),
                      "borrowed", rc->borrowed, "shared", rc->shared, "optional",
                      rc->spec && rc->spec->optional, "searched", searched));
    }
    /* Installed means some file of the model's own was found: the English
     * files French borrows, or the vocoder every F5 model shares, do not
     * make the other models installed. */
    size_t found = 0, own = 0, own_found = 0;
    for (size_t i = 0; i < r.n_comps; i++) {
        int mine = !r.comps[i].borrowed && !r.comps[i].shared;
        found += r.comps[i].path != NULL;
        own += mine;
        own_found += mine && r.comps[i].path != NULL;
    }
    if (own)
        found = own_found;
    char hub[PATH_MAX];
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:o, s:o}", "engine", c.manifest->name, "model",
        c.model->name, "model_type", c.cfg.model_type, "language",
        c.model->language ? json_string(c.model->language) : json_null(), "complete",
        r.n_missing == 0, "installed", found > 0, "missing", (json_int_t)r.n_missing, "hub_cache",
        ttsm__hub_dir(&roots, hub, sizeof hub) == 0 ? json_string(hub) : json_null(), "components",
        comps);
    ttsm__resolution_free(&r);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, cfg->engine, "out of memory", "report");
    *report = ttsm__strdup(text);
    free(text);
    if (!*report)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, cfg->engine, "out of memory", "report");
    return TTSM_OK;
}
