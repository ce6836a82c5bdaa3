/* download.c - the public face of the Hub client: ttsm_pull() and
 * ttsm_remove() canonicalise the config (the language picks the model, as
 * for a load), then hand the manifest model to the store (store/pull.c,
 * store/remove.c); and the manager's load on a miss. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "cache/canonical.h"
#include "cache/download.h"
#include "store/pull.h"
#include "store/remove.h"
#include "store/resolve.h"

ttsm_pull_options ttsm_pull_options_default(void)
{
    ttsm_pull_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.jobs = TTSM_PULL_DEFAULT_JOBS;
    o.retries = 5;
    return o;
}

static ttsm_status to_json(json_t *j, char **out, const char *subject, ttsm_error *err)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    *out = text ? ttsm__strdup(text) : NULL;
    free(text);
    return *out ? TTSM_OK
                : ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory", "report");
}

/* The canonical config of a manifest model, with every param the caller
 * gave (the `when` of a component reads them, as at load). */
static ttsm_status canon_model(const ttsm_load_config *cfg, ttsm__canon *c, const char *what,
                               ttsm_error *err)
{
    if (!cfg)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, what, "invalid argument",
                         "config must be given");
    ttsm_status st = ttsm__canonicalize(cfg, c, err);
    if (st != TTSM_OK)
        return st;
    if (!c->manifest && !ttsm_engine_find(cfg->engine)) {
        ttsm_error why;
        st = ttsm__err(err, TTSM_ERR_NOT_FOUND, cfg->engine, "engine not found",
                       "no engine of this name is registered (see ttsm engines)");
        if (ttsm_engines_status(&why) != TTSM_OK)
            ttsm__err_hint(err, "TTSM_ENGINES_PATH was not read: %s", why.message);
        return st;
    }
    if (!c->manifest)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, cfg->engine, "no files to fetch",
                         "only engines with a manifest name their files (see ttsm engines)");
    c->cfg.params = c->factory_params;
    c->cfg.n_params = c->n_factory_params;
    return TTSM_OK;
}

static int revision_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 255 || r[0] == '/' || strstr(r, ".."))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r[i] <= ' ' || (unsigned char)r[i] >= 0x7f)
            return 0;
    return 1;
}

ttsm_status ttsm_pull(const ttsm_pull_options *options, const ttsm_load_config *cfg,
                      char **report, ttsm_error *err)
{
    if (report)
        *report = NULL;
    if (options && options->struct_size != sizeof *options)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_pull", "invalid argument",
                         "options.struct_size is %zu, expected %zu: use "
                         "ttsm_pull_options_default()",
                         options->struct_size, sizeof *options);
    ttsm_pull_options o = options ? *options : ttsm_pull_options_default();
    if (o.jobs > TTSM_PULL_MAX_JOBS)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_pull", "invalid argument",
                         "jobs is %u, at most %d", o.jobs, TTSM_PULL_MAX_JOBS);
    if (o.retries > 100)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_pull", "invalid argument",
                         "retries is %u, at most 100", o.retries);
    ttsm__canon c;
    ttsm_status st = canon_model(cfg, &c, "ttsm_pull", err);
    if (st != TTSM_OK)
        return st;
    char repo_at[TTSM_CONFIG_VALUE_MAX + 1];
    if (o.revision) {
        /* The model's first repo at that revision, as a load names it. */
        if (!revision_ok(o.revision))
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, cfg->engine, "invalid revision",
                             "a branch, tag or commit without spaces, control characters "
                             "or \"..\"");
        if (cfg->repo_id)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, cfg->engine, "invalid argument",
                             "give a revision or a repo_id with @revision, not both");
        if (!c.model->n_repos)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, c.manifest->name, "no repo",
                             "model %s names no Hub repo to take a revision of", c.model->name);
        ttsm__format_trunc(repo_at, sizeof repo_at, "%s@%s", c.model->repos[0].id, o.revision);
        c.cfg.repo_id = repo_at;
    }
    json_t *j = NULL;
    st = ttsm__pull_model(c.manifest, c.model, &c.cfg, &o, report ? &j : NULL, err);
    if (j && report) {
        ttsm_status js = to_json(j, report, c.manifest->name, err);
        if (st == TTSM_OK)
            st = js;
    } else {
        json_decref(j);
    }
    return st;
}

ttsm_status ttsm_remove(const ttsm_load_config *cfg, const char *hf_cache, int dry_run,
                        char **report, ttsm_error *err)
{
    if (report)
        *report = NULL;
    ttsm__canon c;
    ttsm_status st = canon_model(cfg, &c, "ttsm_remove", err);
    if (st != TTSM_OK)
        return st;
    json_t *j = NULL;
    st = ttsm__remove_model(c.manifest, c.model, &c.cfg, hf_cache, dry_run, report ? &j : NULL,
                            err);
    if (st == TTSM_OK && report)
        return to_json(j, report, c.manifest->name, err);
    json_decref(j);
    return st;
}

/* ---- load on a miss ------------------------------------------------------- */

typedef struct relay {
    const ttsm_manager_options *mo;
    const char *key;
} relay;

static int relay_progress(void *user, const ttsm_pull_progress *p)
{
    relay *r = user;
    return r->mo->progress(r->mo->progress_user, r->key, p->done, p->total);
}

ttsm_status ttsm__download_missing(const ttsm_manager_options *mo, const ttsm__logger *log,
                                   const ttsm__manifest *m, const ttsm_load_config *cfg,
                                   const char *key, ttsm_error *err)
{
    if (mo->download != TTSM_DOWNLOAD_MISSING || !m || m->factory || !cfg->model_name)
        return TTSM_OK;
    const ttsm__model_spec *ms = ttsm__manifest_model(m, cfg->model_name);
    if (!ms)
        return TTSM_OK; /* the factory says what is wrong */
    ttsm__roots roots = {mo->models_dirs, mo->hf_cache, mo->comfyui_dirs, 0};
    ttsm__resolution r;
    ttsm_status st = ttsm__resolve_model(m, ms, cfg, &roots, &r, err);
    if (st != TTSM_OK)
        return st;
    size_t missing = r.n_missing;
    ttsm__resolution_free(&r);
    if (!missing)
        return TTSM_OK;
    ttsm__logf(log, TTSM_LOG_INFO, "%s/%s: %zu file%s missing: pulling from the Hub", m->name,
               ms->name, missing, missing == 1 ? "" : "s");
    ttsm_pull_options o = ttsm_pull_options_default();
    o.models_dirs = mo->models_dirs;
    o.comfyui_dirs = mo->comfyui_dirs;
    o.hf_cache = mo->hf_cache;
    o.jobs = mo->download_jobs ? mo->download_jobs : TTSM_PULL_DEFAULT_JOBS;
    o.log = mo->log;
    o.log_user = mo->log_user;
    relay rl = {mo, key};
    if (mo->progress) {
        o.progress = relay_progress;
        o.progress_user = &rl;
    }
    return ttsm__pull_model(m, ms, cfg, &o, NULL, err);
}
