/* report.c - ttsm_resolve(): what `ttsm resolve` and `ttsm ls` show of a
 * model, as JSON - every component, the file found or every place searched,
 * where each file goes in every root, and for files found their size, age
 * and place (root, or hub repo, revision and commit); ttsm_search_paths():
 * the roots themselves. It canonicalises the config first, so it sits above
 * the store. */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/alloc.h"
#include "base/error.h"
#include "formats/safetensors_index.h"
#include "engines/registry.h"
#include "store/resolve.h"
#include "store/roots.h"
#include "cache/canonical.h"

static const char *kind_name(int kind)
{
    return kind == TTSM__KIND_TENSORS ? "tensors" : kind == TTSM__KIND_JSON ? "json" : "blob";
}

/* The places to look, from manager options (or the environment). */
static ttsm_status roots_of(const ttsm_manager_options *o, ttsm__roots *out, ttsm_error *err)
{
    memset(out, 0, sizeof *out);
    if (!o)
        return TTSM_OK;
    const size_t old = offsetof(ttsm_manager_options, comfyui_dirs);
    if (o->struct_size != sizeof *o && o->struct_size != old)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_resolve", "invalid argument",
                         "options.struct_size is %zu, expected %zu: use "
                         "ttsm_manager_options_default()",
                         o->struct_size, sizeof *o);
    out->models_dirs = o->models_dirs;
    out->hf_cache = o->hf_cache;
    out->comfyui_dirs = o->struct_size == sizeof *o ? o->comfyui_dirs : NULL;
    return TTSM_OK;
}

static json_t *roots_json(const ttsm__rootset *rs)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rs->n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:b}", "path", rs->roots[i].path, "kind",
                         rs->roots[i].kind == TTSM__ROOT_TTS ? "TTS folder" : "models root",
                         "origin", rs->roots[i].origin, "exists", rs->roots[i].exists));
    return a;
}

static json_t *warnings_json(const ttsm__rootset *rs)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rs->n_warnings; i++)
        json_array_append_new(a, json_string(rs->warnings[i]));
    if (rs->n_warnings_dropped) {
        char buf[64];
        snprintf(buf, sizeof buf, "%zu more warnings", rs->n_warnings_dropped);
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

/* Bytes on disk and newest modification of a file found, with the shards
 * of a sharded index. */
static void size_and_age(const char *path, uint64_t *bytes, int64_t *mtime)
{
    struct stat sb;
    *bytes = 0;
    *mtime = 0;
    if (stat(path, &sb) != 0)
        return;
    *bytes = (uint64_t)sb.st_size;
    *mtime = (int64_t)sb.st_mtime;
    static const char suffix[] = ".index.json";
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    if (!slash || n < sizeof suffix || strcmp(path + n - (sizeof suffix - 1), suffix) != 0 ||
        (uint64_t)sb.st_size > TTSM__ST_MAX_INDEX)
        return;
    FILE *f = fopen(path, "rb");
    char *buf = f ? ttsm__malloc((size_t)sb.st_size + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    if (f)
        fclose(f);
    ttsm__st_index ix;
    if (buf && got == (size_t)sb.st_size &&
        ttsm__st_index_parse(path, buf, got, &ix, NULL) == TTSM_OK) {
        for (size_t i = 0; i < ix.n_shards; i++) {
            char shard[PATH_MAX];
            struct stat ss;
            if (snprintf(shard, sizeof shard, "%.*s/%s", (int)(slash - path), path,
                         ix.shards[i]) < (int)sizeof shard &&
                stat(shard, &ss) == 0) {
                *bytes += (uint64_t)ss.st_size;
                if ((int64_t)ss.st_mtime > *mtime)
                    *mtime = (int64_t)ss.st_mtime;
            }
        }
        ttsm__st_index_free(&ix);
    }
    ttsm__free(buf);
}

/* Where a file found is: the root it is under, or its hub repo, the
 * revision naming its commit (a refs/ file) and the commit. */
static json_t *location(const char *path, const char *hub, const ttsm__rootset *rs,
                        char *const *real_roots)
{
    size_t hl = strlen(hub);
    if (hl && strncmp(path, hub, hl) == 0 && path[hl] == '/') {
        const char *repo = path + hl + 1;
        const char *snap = strstr(repo, "/snapshots/");
        const char *kind_end = strstr(repo, "--");
        if (snap && kind_end && kind_end < snap) {
            char id[512], commit[64] = "", rev[256] = "";
            size_t o = 0;
            for (const char *c = kind_end + 2; c < snap && o + 1 < sizeof id; c++) {
                if (c[0] == '-' && c[1] == '-') {
                    id[o++] = '/';
                    c++;
                } else {
                    id[o++] = *c;
                }
            }
            id[o] = '\0';
            const char *cs = snap + 11, *ce = strchr(cs, '/');
            if (ce && (size_t)(ce - cs) < sizeof commit)
                snprintf(commit, sizeof commit, "%.*s", (int)(ce - cs), cs);
            /* The ref that names the commit: main first, else any. */
            char refs[PATH_MAX];
            snprintf(refs, sizeof refs, "%.*s/refs", (int)(snap - path), path);
            DIR *d = opendir(refs);
            struct dirent *de;
            while (d && (de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.')
                    continue;
                char rp[PATH_MAX + 256], buf[64];
                snprintf(rp, sizeof rp, "%s/%s", refs, de->d_name);
                FILE *f = fopen(rp, "rb");
                size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
                if (f)
                    fclose(f);
                buf[n] = '\0';
                buf[strcspn(buf, "\r\n ")] = '\0';
                if (strcmp(buf, commit) == 0 && (!rev[0] || strcmp(de->d_name, "main") == 0))
                    snprintf(rev, sizeof rev, "%s", de->d_name);
            }
            if (d)
                closedir(d);
            return json_pack("{s:s, s:o, s:s}", "repo", id, "revision",
                             rev[0] ? json_string(rev) : json_null(), "commit", commit);
        }
    }
    for (size_t i = 0; i < rs->n; i++) {
        const char *r = real_roots[i];
        size_t rl = r ? strlen(r) : 0;
        if (rl && strncmp(path, r, rl) == 0 && path[rl] == '/')
            return json_pack("{s:s}", "root", rs->roots[i].path);
    }
    return json_null();
}

static json_t *component_json(const ttsm__resolution *r, const ttsm__resolved_comp *rc,
                              const char *real_hub, char *const *real_roots)
{
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
    json_t *files = json_array(), *names = json_array(), *where = json_array();
    for (size_t a = 0; rc->spec && a < rc->spec->n_files; a++)
        json_array_append_new(files, json_string(rc->spec->files[a]));
    for (const char *p = rc->want; p && *p;) {
        size_t n = strcspn(p, "|");
        json_array_append_new(names, json_stringn(p, n));
        p += n + (p[n] == '|');
    }
    for (size_t i = 0; rc->where && i < r->roots.n; i++)
        json_array_append_new(where, json_string(rc->where[i]));
    json_t *dl = rc->dl_repo ? json_pack("{s:s, s:s, s:s, s:b}", "repo", rc->dl_repo, "revision",
                                         rc->dl_revision, "path", rc->dl_path, "dataset",
                                         rc->dl_dataset)
                             : json_null();
    json_t *c = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:b, s:b, s:o, s:o, s:o, s:o, s:o}", "name",
        rc->name, "kind", rc->spec ? kind_name(rc->spec->kind) : "unknown", "files", files,
        "path", rc->path ? json_string(rc->path) : json_null(), "origin",
        rc->origin && rc->path ? json_string(rc->origin) : json_null(), "from_model",
        rc->from_model ? json_string(rc->from_model) : json_null(), "borrowed", rc->borrowed,
        "shared", rc->shared, "optional", rc->spec && rc->spec->optional, "searched", searched,
        "names", names, "where", where, "download", dl, "broken",
        rc->broken ? json_string(rc->broken) : json_null());
    if (c && rc->path) {
        uint64_t bytes;
        int64_t mtime;
        size_and_age(rc->path, &bytes, &mtime);
        json_object_set_new(c, "bytes", json_integer((json_int_t)bytes));
        json_object_set_new(c, "modified", json_integer((json_int_t)mtime));
        json_object_set_new(c, "location",
                            location(rc->path, real_hub ? real_hub : r->hub, &r->roots, real_roots));
    }
    return c;
}

ttsm_status ttsm_resolve_with(const ttsm_load_config *cfg, const ttsm_manager_options *where,
                              char **report, ttsm_error *err)
{
    if (!cfg || !report)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_resolve", "invalid argument",
                         "config and report must be given");
    ttsm__roots roots;
    ttsm_status st = roots_of(where, &roots, err);
    if (st != TTSM_OK)
        return st;
    ttsm__canon c;
    st = ttsm__canonicalize(cfg, &c, err);
    if (st != TTSM_OK)
        return st;
    if (!c.manifest && !ttsm_engine_find(cfg->engine))
        return ttsm__engine_not_found(cfg->engine, err);
    if (!c.manifest)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, cfg->engine, "nothing to resolve",
                         "only engines with a manifest have files to find (see ttsm engines)");
    ttsm__resolution r;
    st = ttsm__resolve_model(c.manifest, c.model, &c.cfg, &roots, &r, err);
    if (st != TTSM_OK)
        return st;
    /* Found files have canonical paths: compare them with canonical roots. */
    char *real_roots[TTSM__MAX_ROOTS] = {0};
    for (size_t i = 0; i < r.roots.n; i++)
        real_roots[i] = realpath(r.roots.roots[i].path, NULL);
    char *real_hub = r.hub[0] ? realpath(r.hub, NULL) : NULL;
    json_t *comps = json_array();
    for (size_t i = 0; i < r.n_comps; i++)
        json_array_append_new(comps, component_json(&r, &r.comps[i], real_hub, real_roots));
    for (size_t i = 0; i < r.roots.n; i++)
        free(real_roots[i]); /* from realpath(), the C library's allocator */
    free(real_hub);
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
    /* What a pull would add: the required components without a file, and
     * the command that fetches them. */
    json_t *adds = json_array();
    for (size_t i = 0; i < r.n_comps; i++) {
        const ttsm__resolved_comp *rc = &r.comps[i];
        if (!rc->path && !(rc->spec && rc->spec->optional) && !(rc->comp && rc->comp->optional))
            json_array_append_new(adds, json_string(rc->name));
    }
    char cmd[160];
    ttsm__pull_command(&r, cmd, sizeof cmd);
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:o, s:o, s:o, s:o}", "engine", c.manifest->name,
        "model", c.model->name, "model_type", c.cfg.model_type, "language",
        c.model->language ? json_string(c.model->language) : json_null(), "complete",
        r.n_missing == 0, "installed", found > 0, "missing", (json_int_t)r.n_missing, "hub_cache",
        r.hub[0] ? json_string(r.hub) : json_null(), "roots", roots_json(&r.roots), "warnings",
        warnings_json(&r.roots), "components", comps);
    json_object_set_new(root, "pull", json_pack("{s:o, s:o}", "components", adds, "command",
                                                r.n_missing ? json_string(cmd) : json_null()));
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

ttsm_status ttsm_resolve(const ttsm_load_config *cfg, const char *models_dirs,
                         const char *hf_cache, char **report, ttsm_error *err)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = models_dirs;
    o.hf_cache = hf_cache;
    return ttsm_resolve_with(cfg, &o, report, err);
}

ttsm_status ttsm_search_paths(const ttsm_manager_options *where, char **json, ttsm_error *err)
{
    if (!json)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_search_paths",
                         "invalid argument", "json must be given");
    ttsm__roots roots;
    ttsm_status st = roots_of(where, &roots, err);
    if (st != TTSM_OK)
        return st;
    ttsm__rootset rs;
    st = ttsm__roots_collect(roots.models_dirs, roots.comfyui_dirs, &rs, err);
    if (st != TTSM_OK) {
        ttsm__rootset_free(&rs);
        return st;
    }
    char hub[PATH_MAX];
    json_t *o = json_pack("{s:o, s:o, s:o}", "roots", roots_json(&rs), "hub_cache",
                          ttsm__hub_dir(&roots, hub, sizeof hub) == 0 ? json_string(hub)
                                                                      : json_null(),
                          "warnings", warnings_json(&rs));
    ttsm__rootset_free(&rs);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *json = text ? ttsm__strdup(text) : NULL;
    free(text);
    if (!*json)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "ttsm_search_paths", "out of memory",
                         "report");
    return TTSM_OK;
}
