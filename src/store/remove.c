/* remove.c - `ttsm rm`: a model leaves the hub cache. Its files are the
 * ones the resolver finds there (so exactly what a load would read), each
 * removed from every snapshot of its repo; a blob goes once no snapshot
 * entry points at it, and a repo folder with nothing left goes whole.
 * Files of other models in the same repo (ChatterBox's languages in one
 * repo, the vocoder every F5 model shares) keep their blobs. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "formats/safetensors_index.h"
#include "store/hub_cache.h"
#include "store/remove.h"
#include "store/resolve.h"

typedef struct group {
    char folder[256];
    char id[128];
    ttsm__hub_repo repo;
    char **paths;
    size_t n;
} group;

static int add_path(group *g, const char *rest)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->paths[i], rest) == 0)
            return 0;
    char *c = ttsm__strdup(rest);
    char **np = c ? ttsm__realloc(g->paths, (g->n + 1) * sizeof *np) : NULL;
    if (!np) {
        ttsm__free(c);
        return -1;
    }
    np[g->n++] = c;
    g->paths = np;
    return 0;
}

/* The shards a sharded index names, as paths beside `rest`. */
static int add_shards(group *g, const char *local, const char *rest)
{
    static const char suffix[] = ".safetensors.index.json";
    size_t n = strlen(rest);
    if (n < sizeof suffix - 1 || strcmp(rest + n - (sizeof suffix - 1), suffix) != 0)
        return 0;
    int fd;
    struct stat sb;
    if (ttsm__open_regular(local, "cannot read index", NULL, &fd, &sb, NULL) != TTSM_OK)
        return 0;
    if (sb.st_size <= 0 || (uint64_t)sb.st_size > TTSM__ST_MAX_INDEX) {
        close(fd);
        return 0;
    }
    size_t len = (size_t)sb.st_size;
    char *buf = ttsm__malloc(len);
    ssize_t rd = buf ? read(fd, buf, len) : -1;
    size_t got = rd > 0 ? (size_t)rd : 0;
    close(fd);
    if (!buf)
        return -1;
    ttsm__st_index ix;
    ttsm_status st = got == len ? ttsm__st_index_parse(local, buf, len, &ix, NULL) : TTSM_ERR_IO;
    ttsm__free(buf);
    if (st != TTSM_OK)
        return st == TTSM_ERR_OUT_OF_MEMORY ? -1 : 0;
    const char *slash = strrchr(rest, '/');
    int rc = 0;
    for (size_t i = 0; i < ix.n_shards && rc == 0; i++) {
        char p[TTSM__HUB_PATH_MAX + 1];
        if (snprintf(p, sizeof p, "%.*s%s%s", slash ? (int)(slash - rest) : 0, rest,
                     slash ? "/" : "", ix.shards[i]) < (int)sizeof p)
            rc = add_path(g, p);
    }
    ttsm__st_index_free(&ix);
    return rc;
}

ttsm_status ttsm__remove_model(const ttsm__manifest *m, const ttsm__model_spec *ms,
                               const ttsm_load_config *cfg, const char *hf_cache, int dry_run,
                               json_t **report, ttsm_error *err)
{
    char subject[2 * TTSM_CONFIG_NAME_MAX], hub[PATH_MAX], hub_real[PATH_MAX];
    ttsm__format_trunc(subject, sizeof subject, "%s/%s", m->name, ms->name);
    ttsm__roots roots = {"", hf_cache, "", 0};
    if (ttsm__hub_dir(&roots, hub, sizeof hub) != 0)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, subject, "no hub cache",
                         "set HF_HUB_CACHE, HF_HOME or HOME, or name the cache (--hf-cache)");
    json_t *links = json_array(), *blobs = json_array(), *gone = json_array();
    uint64_t freed = 0;
    group *groups = NULL;
    size_t n_groups = 0;
    ttsm__resolution res;
    int have_res = 0;
    ttsm_status st = TTSM_OK;
    if (!realpath(hub, hub_real))
        goto report; /* no cache: nothing to remove */
    ttsm_load_config rcfg = *cfg;
    rcfg.model_path = NULL;
    st = ttsm__resolve_model(m, ms, &rcfg, &roots, &res, err);
    if (st != TTSM_OK)
        goto out;
    have_res = 1;
    for (size_t i = 0; i < res.n_comps; i++) {
        const ttsm__resolved_comp *rc = &res.comps[i];
        char folder[256], commit[41];
        const char *rest;
        if (!rc->path || rc->borrowed || rc->shared ||
            ttsm__hub_locate(hub_real, rc->path, folder, sizeof folder, commit, &rest) != 0)
            continue;
        group *g = NULL;
        for (size_t k = 0; k < n_groups && !g; k++)
            if (strcmp(groups[k].folder, folder) == 0)
                g = &groups[k];
        if (!g) {
            group *ng = ttsm__realloc(groups, (n_groups + 1) * sizeof *ng);
            if (!ng)
                goto nomem;
            groups = ng;
            g = &groups[n_groups];
            memset(g, 0, sizeof *g);
            snprintf(g->folder, sizeof g->folder, "%s", folder);
            if (ttsm__hub_folder_repo(folder, &g->repo, g->id, sizeof g->id) != 0)
                continue;
            g->repo.id = g->id;
            n_groups++;
        }
        if (add_path(g, rest) != 0 || add_shards(g, rc->path, rest) != 0)
            goto nomem;
    }
    for (size_t k = 0; k < n_groups && st == TTSM_OK; k++) {
        ttsm__hub_removal r;
        memset(&r, 0, sizeof r);
        st = ttsm__hub_remove(hub, &groups[k].repo, (const char *const *)groups[k].paths,
                              groups[k].n, dry_run, &r, err);
        for (size_t i = 0; st == TTSM_OK && i < r.n_links; i++)
            json_array_append_new(links, json_string(r.links[i]));
        for (size_t i = 0; st == TTSM_OK && i < r.n_blobs; i++)
            json_array_append_new(blobs, json_pack("{s:s, s:I}", "path", r.blobs[i], "bytes",
                                                   (json_int_t)r.blob_bytes[i]));
        if (r.repo_removed)
            json_array_append_new(gone, json_string(groups[k].repo.id));
        freed += r.freed;
        ttsm__hub_removal_free(&r);
    }
    if (st != TTSM_OK)
        goto out;
report:
    if (report) {
        *report = json_pack("{s:s, s:s, s:s, s:b, s:O, s:O, s:I, s:O}", "engine", m->name, "model",
                            ms->name, "hub_cache", hub, "dry_run", dry_run, "links", links,
                            "blobs", blobs, "freed_bytes", (json_int_t)freed, "repos_removed",
                            gone);
        if (!*report)
            goto nomem;
    }
    goto out;
nomem:
    st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory", "removing");
out:
    for (size_t k = 0; k < n_groups; k++) {
        for (size_t i = 0; i < groups[k].n; i++)
            ttsm__free(groups[k].paths[i]);
        ttsm__free(groups[k].paths);
    }
    ttsm__free(groups);
    if (have_res)
        ttsm__resolution_free(&res);
    json_decref(links);
    json_decref(blobs);
    json_decref(gone);
    return st;
}
