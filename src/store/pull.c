/* pull.c - fetches the files of a manifest model from the Hub. The planner
 * resolves the model first (resolve.c): what a models root or the hub cache
 * has stays, and a hub-cache file costs one HEAD per repo to learn whether
 * its revision still names the same commit. For each missing component it
 * walks the same places the resolver reads - the component's own repo, the
 * config's repo, or the model's repos in order; a borrowed or shared
 * component where its model lives - and asks the Hub: a single file by a
 * HEAD (a 404 with a commit leaves a .no_exist marker), alternatives from
 * the revision's listing (the first the repo has), a deliberate pattern
 * from the folder's tree. The files then download on a small pool of
 * threads, each into its blob and its snapshot link; shards of a sharded
 * index follow it; refs are written last, once every file of a repo is in. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "base/strbuf.h"
#include "formats/safetensors_index.h"
#include "store/hub.h"
#include "store/hub_cache.h"
#include "store/pull.h"
#include "store/resolve.h"

#define MAX_CANDS 16

enum { F_TODO = 1, F_LINK, F_PRESENT, F_DONE, F_ABSENT };

typedef struct pfile {
    const char *component;
    char *repo_id;
    int kind;             /* TTSM__REPO_* */
    char *rev;            /* as asked: a branch, tag or commit */
    char *path;           /* in the repo ("" for a file of a models root) */
    char *dest, *lock;    /* a pull into a models root: the file and its lock */
    char *local;          /* where the file is once present */
    ttsm__hub_meta *meta; /* NULL for present files */
    int state, optional, fetched, tensors;
    uint64_t size, done;
} pfile;

/* A revision's listing, fetched once per repo and revision. */
typedef struct revinfo {
    char *id, *rev;
    int kind;
    ttsm_status st;
    int why;
    ttsm_error err;
    char commit[41];
    ttsm__hub_list sib;
} revinfo;

/* Whether a repo's revision still names the commit the cache has. */
typedef struct freshness {
    char *id, *rev;
    int kind;
    char remote[41]; /* "" when the Hub could not say */
} freshness;

/* A repo and revision a pull used: its ref is written at the end. */
typedef struct touched {
    char *id, *rev;
    int kind;
    char commit[41];
    int failed;
} touched;

typedef struct cand {
    ttsm__repo repo;      /* id may point into `idbuf` */
    char idbuf[TTSM_CONFIG_VALUE_MAX + 1];
    const char *rev;
    char scope[TTSM__HUB_PATH_MAX + 1]; /* repo subfolder / component subfolder */
    char *const *files;   /* this repo's names for the component */
    size_t n_files;
} cand;

typedef struct planner {
    const ttsm__manifest *m;
    const ttsm__model_spec *ms;
    const ttsm_load_config *cfg;
    const ttsm_pull_options *o;
    char subject[2 * TTSM_CONFIG_NAME_MAX];
    ttsm__hub hub;
    ttsm__http *conn;
    char hub_real[PATH_MAX]; /* the hub cache with links resolved, to read found paths */
    pfile *f;
    size_t n, cap;
    revinfo *ri;
    size_t n_ri, cap_ri;
    freshness *fr;
    size_t n_fr, cap_fr;
    touched *t;
    size_t n_t, cap_t;
    /* the downloads */
    pthread_mutex_t mu;
    size_t next;
    uint64_t done, total;
    size_t files_done, files_total;
    int stop;
    ttsm_status st;
    ttsm_error err;
} planner;

static ttsm_status oom(planner *p, ttsm_error *err)
{
    return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, p->subject, "out of memory", "planning the pull");
}

static int is_kind(const ttsm__repo *r)
{
    return r->dataset ? TTSM__REPO_DATASET : TTSM__REPO_MODEL;
}

/* `a/b` (or whichever of them is not empty) into `out`; -1, with `out`
 * empty, when it does not fit: a path longer than a repository path may be
 * is in no repository, so callers treat it as absent, never truncate it. */
static int join(char *out, size_t size, const char *a, const char *b)
{
    int n;
    if (a && *a && b && *b)
        n = snprintf(out, size, "%s/%s", a, b);
    else
        n = snprintf(out, size, "%s", a && *a ? a : b ? b : "");
    if (n < 0 || (size_t)n >= size) {
        if (size)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

/* `name` with "{model}" replaced by `model`, into `out`. */
static void subst(const char *name, const char *model, char *out, size_t size)
{
    ttsm__sb b = {0};
    for (const char *c = name; *c;) {
        if (strncmp(c, "{model}", 7) == 0) {
            ttsm__sb_adds(&b, model);
            c += 7;
        } else {
            ttsm__sb_add(&b, c++, 1);
        }
    }
    snprintf(out, size, "%s", b.failed ? "" : ttsm__sb_str(&b));
    ttsm__sb_free(&b);
}

static void pfile_free(pfile *f)
{
    ttsm__free(f->repo_id);
    ttsm__free(f->rev);
    ttsm__free(f->path);
    ttsm__free(f->dest);
    ttsm__free(f->lock);
    ttsm__free(f->local);
    ttsm__free(f->meta);
}

static pfile *new_file(planner *p)
{
    if (ttsm__grow((void **)&p->f, &p->cap, p->n + 1, sizeof *p->f, 1u << 20) != 0)
        return NULL;
    pfile *f = &p->f[p->n++];
    memset(f, 0, sizeof *f);
    return f;
}

/* ---- repos and revisions ------------------------------------------------- */

static touched *touch(planner *p, const ttsm__hub_repo *r, const char *rev, const char *commit)
{
    for (size_t i = 0; i < p->n_t; i++)
        if (strcmp(p->t[i].id, r->id) == 0 && strcmp(p->t[i].rev, rev) == 0 &&
            p->t[i].kind == r->kind) {
            if (commit && !p->t[i].commit[0])
                memcpy(p->t[i].commit, commit, 41);
            return &p->t[i];
        }
    if (ttsm__grow((void **)&p->t, &p->cap_t, p->n_t + 1, sizeof *p->t, 4096) != 0)
        return NULL;
    touched *t = &p->t[p->n_t];
    memset(t, 0, sizeof *t);
    t->id = ttsm__strdup(r->id);
    t->rev = ttsm__strdup(rev);
    t->kind = r->kind;
    if (!t->id || !t->rev) {
        ttsm__free(t->id);
        ttsm__free(t->rev);
        return NULL;
    }
    if (commit)
        memcpy(t->commit, commit, 41);
    p->n_t++;
    return t;
}

static revinfo *listing(planner *p, const ttsm__hub_repo *r, const char *rev)
{
    for (size_t i = 0; i < p->n_ri; i++)
        if (strcmp(p->ri[i].id, r->id) == 0 && strcmp(p->ri[i].rev, rev) == 0 &&
            p->ri[i].kind == r->kind)
            return &p->ri[i];
    if (ttsm__grow((void **)&p->ri, &p->cap_ri, p->n_ri + 1, sizeof *p->ri, 4096) != 0)
        return NULL;
    revinfo *ri = &p->ri[p->n_ri];
    memset(ri, 0, sizeof *ri);
    ri->id = ttsm__strdup(r->id);
    ri->rev = ttsm__strdup(rev);
    ri->kind = r->kind;
    if (!ri->id || !ri->rev) {
        ttsm__free(ri->id);
        ttsm__free(ri->rev);
        return NULL;
    }
    p->n_ri++;
    ri->st = ttsm__hub_revision(&p->hub, p->conn, r, rev, ri->commit, &ri->sib, &ri->why,
                                &ri->err);
    return ri;
}

/* The places component `spec` of model `src` is searched in the hub, in
 * order, as the resolver reads them (find_comp in resolve.c). */
static size_t candidates(planner *p, const ttsm__model_spec *src, int own,
                         const ttsm__comp_spec *spec, cand *out)
{
    size_t n = 0;
    const char *comp_sub = spec->repo ? NULL : spec->subfolder;
    if (spec->repo) {
        out[n].repo = *spec->repo;
        n++;
    } else if (own && ttsm__config_repo(p->cfg, src, &out[0].repo, out[0].idbuf,
                                        sizeof out[0].idbuf)) {
        n++;
    } else {
        for (size_t i = 0; i < src->n_repos && n < MAX_CANDS; i++)
            out[n++].repo = src->repos[i];
    }
    for (size_t i = 0; i < n; i++) {
        out[i].rev = out[i].repo.revision ? out[i].repo.revision : "main";
        out[i].files = ttsm__comp_repo_files(spec, out[i].repo.id, &out[i].n_files);
        if (join(out[i].scope, sizeof out[i].scope, out[i].repo.subfolder, comp_sub))
            out[i].n_files = 0; /* no repository holds a path that long */
    }
    return n;
}

/* ---- planning one component ---------------------------------------------- */

/* How bad a failure is, to report the most telling one when no repo has a
 * component: a refused or broken request says more than an absent file. */
static int rank(int why)
{
    switch (why) {
    case TTSM__HUB_DENIED: return 5;
    case TTSM__HUB_FAILED: return 4;
    case TTSM__HUB_NO_REVISION: return 3;
    case TTSM__HUB_NO_REPO: return 2;
    default: return 1;
    }
}

/* Errors no other repo can mend: the pull stops on them. */
static int stops(ttsm_status st)
{
    return st == TTSM_ERR_CANCELLED || st == TTSM_ERR_FORMAT || st == TTSM_ERR_OUT_OF_MEMORY ||
           st == TTSM_ERR_INVALID_ARGUMENT;
}

/* The models-root destination of a file of `src`: <root>/TTS/<model dir>/
 * <component subfolder>/<local name>. The local name is the alternative
 * the repo file is (its last segment), else the first plain one. */
static int comfy_dest(planner *p, const ttsm__model_spec *src, const ttsm__comp_spec *spec,
                      const char *repo_path, pfile *f)
{
    char dir[TTSM__HUB_PATH_MAX + 1], rel[2 * TTSM__HUB_PATH_MAX + 8], name[512];
    if (src->dir)
        snprintf(dir, sizeof dir, "%s", src->dir);
    else
        snprintf(dir, sizeof dir, "%s/%s", p->m->folder, src->folder ? src->folder : src->name);
    const char *base = strrchr(repo_path, '/');
    base = base ? base + 1 : repo_path;
    name[0] = '\0';
    for (size_t i = 0; i < spec->n_files && !name[0]; i++) {
        char alt[512];
        subst(spec->files[i], src->name, alt, sizeof alt);
        const char *ab = strrchr(alt, '/');
        if (strcmp(ab ? ab + 1 : alt, base) == 0)
            snprintf(name, sizeof name, "%s", alt);
    }
    for (size_t i = 0; i < spec->n_files && !name[0]; i++) {
        char alt[512];
        subst(spec->files[i], src->name, alt, sizeof alt);
        if (!strchr(alt, '*'))
            snprintf(name, sizeof name, "%s", alt);
    }
    if (!name[0])
        snprintf(name, sizeof name, "%s", base);
    char sub[TTSM__HUB_PATH_MAX + 1];
    if (join(sub, sizeof sub, dir, spec->subfolder) || join(rel, sizeof rel, sub, name) ||
        !ttsm__hub_path_ok(rel))
        return -1;
    ttsm__sb d = {0}, l = {0};
    ttsm__sb_addf(&d, "%s/TTS/%s", p->o->to_models_root, rel);
    ttsm__sb_addf(&l, "%s/TTS/.locks/%s.lock", p->o->to_models_root, rel);
    f->dest = ttsm__sb_take(&d);
    f->lock = ttsm__sb_take(&l);
    ttsm__sb_free(&d);
    ttsm__sb_free(&l);
    return f->dest && f->lock ? 0 : -2;
}

static int blob_there(planner *p, const ttsm__hub_repo *r, const ttsm__hub_meta *meta)
{
    char dir[PATH_MAX], b[PATH_MAX + 80];
    struct stat sb;
    if (ttsm__hub_repo_dir(p->hub.cache, r, dir, sizeof dir) != 0)
        return 0;
    snprintf(b, sizeof b, "%s/blobs/%s", dir, meta->etag);
    return stat(b, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == meta->size;
}

/* Adds the file `path` of repo `c`, described by `meta` (taken over). */
static ttsm_status add_remote(planner *p, const char *component, const cand *c,
                              const ttsm__model_spec *src, const ttsm__comp_spec *spec,
                              const char *path, ttsm__hub_meta *meta, ttsm_error *err)
{
    ttsm__hub_repo r = {c->repo.id, is_kind(&c->repo)};
    for (size_t i = 0; i < p->n; i++) /* one file, however many components name it */
        if (p->f[i].meta && strcmp(p->f[i].repo_id, r.id) == 0 &&
            strcmp(p->f[i].path, path) == 0 && strcmp(p->f[i].meta->commit, meta->commit) == 0) {
            ttsm__free(meta);
            return TTSM_OK;
        }
    pfile *f = new_file(p);
    if (!f) {
        ttsm__free(meta);
        return oom(p, err);
    }
    f->component = component;
    f->kind = r.kind;
    f->repo_id = ttsm__strdup(r.id);
    f->rev = ttsm__strdup(c->rev);
    f->path = ttsm__strdup(path);
    f->meta = meta;
    f->size = meta->size;
    f->optional = spec->optional;
    f->tensors = spec->kind == TTSM__KIND_TENSORS;
    if (!f->repo_id || !f->rev || !f->path)
        return oom(p, err);
    if (p->o->to_models_root) {
        int rc = comfy_dest(p, src, spec, path, f);
        if (rc == -2)
            return oom(p, err);
        if (rc != 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, p->subject, "unsafe destination",
                             "the models-root folder for %s would leave %s", path,
                             p->o->to_models_root);
        f->state = F_TODO;
    } else {
        f->state = blob_there(p, &r, meta) ? F_LINK : F_TODO;
    }
    if (f->state == F_TODO)
        p->total += meta->size;
    touched *t = touch(p, &r, c->rev, meta->commit);
    return t ? TTSM_OK : oom(p, err);
}

/* The newest file (version order) in `dir` of the listing whose name
 * matches `pattern` (one '*'). */
static int match_pattern(const ttsm__hub_list *l, const char *dir, const char *pattern,
                         char *out, size_t size)
{
    const char *star = strchr(pattern, '*');
    size_t pre = (size_t)(star - pattern), post = strlen(star + 1), dl = strlen(dir);
    const char *best = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->e[i].path;
        if (dl && (strncmp(p, dir, dl) != 0 || p[dl] != '/'))
            continue;
        const char *name = dl ? p + dl + 1 : p;
        size_t n = strlen(name);
        if (strchr(name, '/') || n < pre + post || strncmp(name, pattern, pre) != 0 ||
            strcmp(name + n - post, star + 1) != 0)
            continue;
        if (!best || strverscmp(name, best) > 0)
            best = name;
    }
    if (!best)
        return 0;
    return join(out, size, dir, best) == 0;
}

/* Looks for the component in the hub: each candidate repo in order, each
 * alternative in order. @return TTSM_OK with the file added, or marked
 * absent when it is optional; else the most telling failure. */
static ttsm_status plan_in(planner *p, const char *component, const ttsm__model_spec *src,
                           int own, const ttsm__comp_spec *spec, int optional, int *found,
                           ttsm_error *best, int *best_rank, ttsm__sb *tried)
{
    cand *cs = ttsm__calloc(MAX_CANDS, sizeof *cs);
    if (!cs)
        return oom(p, best);
    size_t nc = candidates(p, src, own, spec, cs);
    ttsm_status st = TTSM_OK;
    ttsm_error e;
    *found = 0;
    for (size_t ci = 0; ci < nc && !*found; ci++) {
        cand *c = &cs[ci];
        if (c->n_files == 0)
            continue; /* the manifest says this repo does not hold it */
        ttsm__hub_repo r = {c->repo.id, is_kind(&c->repo)};
        ttsm__sb_addf(tried, "%s%s@%s", tried->len ? ", " : "", r.id, c->rev);
        int single = c->n_files == 1 && !strchr(c->files[0], '*');
        char path[TTSM__HUB_PATH_MAX + 1];
        const char *commit = NULL;
        int why = TTSM__HUB_ABSENT;
        ttsm_error_clear(&e);
        if (single) {
            char name[512];
            subst(c->files[0], src->name, name, sizeof name);
            if (join(path, sizeof path, c->scope, name))
                continue;
        } else {
            /* Alternatives: the first one the revision's listing holds. */
            revinfo *ri = listing(p, &r, c->rev);
            if (!ri) {
                st = oom(p, best);
                break;
            }
            if (ri->st != TTSM_OK) {
                if (stops(ri->st)) {
                    *best = ri->err;
                    st = ri->st;
                    break;
                }
                if (rank(ri->why) > *best_rank) {
                    *best = ri->err;
                    *best_rank = rank(ri->why);
                }
                continue;
            }
            path[0] = '\0';
            for (size_t a = 0; a < c->n_files && !path[0]; a++) {
                char name[512], full[TTSM__HUB_PATH_MAX + 1];
                subst(c->files[a], src->name, name, sizeof name);
                if (join(full, sizeof full, c->scope, name))
                    continue;
                if (strchr(full, '*')) {
                    /* A deliberate pattern: the folder's files, the newest match. */
                    const char *slash = strrchr(full, '/');
                    char dir[TTSM__HUB_PATH_MAX + 1];
                    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - full) : 0, full);
                    ttsm__hub_list tree = {0};
                    ttsm_status ts = ttsm__hub_tree(&p->hub, p->conn, &r, ri->commit, dir, 0,
                                                    &tree, &why, &e);
                    if (ts != TTSM_OK) {
                        ttsm__hub_list_free(&tree);
                        if (stops(ts)) {
                            *best = e;
                            st = ts;
                            goto out;
                        }
                        break;
                    }
                    match_pattern(&tree, dir, slash ? slash + 1 : full, path, sizeof path);
                    ttsm__hub_list_free(&tree);
                } else if (ttsm__hub_list_find(&ri->sib, full)) {
                    snprintf(path, sizeof path, "%s", full);
                }
            }
            if (!path[0]) {
                if (why == TTSM__HUB_ABSENT) {
                    /* Not in this repo; remember it, as a 404 would. */
                    char dir[PATH_MAX];
                    touch(p, &r, c->rev, ri->commit);
                    for (size_t a = 0; optional && !p->hub.no_markers && a < c->n_files; a++) {
                        char name[512], full[TTSM__HUB_PATH_MAX + 1];
                        subst(c->files[a], src->name, name, sizeof name);
                        if (join(full, sizeof full, c->scope, name) == 0 && !strchr(full, '*') &&
                            ttsm__hub_repo_dir(p->hub.cache, &r, dir, sizeof dir) == 0)
                            ttsm__hub_mark_absent(dir, ri->commit, full, NULL);
                    }
                    ttsm__err(&e, TTSM_ERR_NOT_FOUND, r.id, "file not in repository",
                              "%s@%s has none of the component's files", r.id, c->rev);
                }
                if (rank(why) > *best_rank) {
                    *best = e;
                    *best_rank = rank(why);
                }
                continue;
            }
            commit = ri->commit;
        }
        ttsm__hub_meta *meta = ttsm__malloc(sizeof *meta);
        if (!meta) {
            st = oom(p, best);
            break;
        }
        if (!commit) {
            /* Once one file of a repo named a commit, the rest of the pull
             * asks for that commit: a push in between cannot mix two. */
            for (size_t k = 0; k < p->n_t && !commit; k++)
                if (strcmp(p->t[k].id, r.id) == 0 && strcmp(p->t[k].rev, c->rev) == 0 &&
                    p->t[k].kind == r.kind && p->t[k].commit[0])
                    commit = p->t[k].commit;
        }
        ttsm_status hs = ttsm__hub_head(&p->hub, p->conn, &r, commit ? commit : c->rev, path,
                                        meta, &why, &e);
        if (hs == TTSM_OK) {
            st = add_remote(p, component, c, src, spec, path, meta, best);
            if (st == TTSM_OK)
                *found = 1;
            break;
        }
        if (why == TTSM__HUB_ABSENT && ttsm__hub_is_commit(meta->commit))
            touch(p, &r, c->rev, meta->commit); /* the ref names that commit, as on a 404 */
        ttsm__free(meta);
        if (stops(hs)) {
            *best = e;
            st = hs;
            break;
        }
        if (rank(why) > *best_rank) {
            *best = e;
            *best_rank = rank(why);
        }
    }
out:
    ttsm__free(cs);
    return st;
}

static ttsm_status mark_absent_optional(planner *p, const char *component, ttsm_error *err)
{
    pfile *f = new_file(p);
    if (!f)
        return oom(p, err);
    f->component = component;
    f->state = F_ABSENT;
    f->optional = 1;
    return TTSM_OK;
}

/* A missing component: its own files, then (own files with a borrow) the
 * lender's, or the shared model's. */
static ttsm_status plan_comp(planner *p, const ttsm__resolved_comp *rc, ttsm_error *err)
{
    const ttsm__comp_spec *cs = rc->comp;
    int optional = cs->optional || (rc->spec && rc->spec->optional);
    ttsm_error best;
    int best_rank = 0, found = 0;
    ttsm__sb tried = {0};
    ttsm__err(&best, TTSM_ERR_NOT_FOUND, p->subject, "not on the Hub", "%s", cs->name);
    ttsm_status st = TTSM_OK;
    if (p->hub.offline) {
        ttsm__sb_free(&tried);
        if (optional)
            return mark_absent_optional(p, cs->name, err);
        ttsm__err(err, TTSM_ERR_NOT_FOUND, p->subject, "offline",
                  "HF_HUB_OFFLINE is set and %s is not in the cache or a models root", cs->name);
        ttsm__err_hint(err, "unset HF_HUB_OFFLINE to download it");
        return TTSM_ERR_NOT_FOUND;
    }
    if (cs->files) {
        st = plan_in(p, cs->name, p->ms, 1, cs, optional, &found, &best, &best_rank, &tried);
        if (st != TTSM_OK)
            goto fail;
    }
    if (!found && (cs->borrow || cs->shared)) {
        const ttsm__model_spec *src = cs->borrow ? ttsm__manifest_model(p->m, cs->borrow)
                                                 : ttsm__manifest_shared(p->m, cs->shared);
        const ttsm__comp_spec *spec = src ? ttsm__comp_named(src, cs->name, p->cfg, p->m) : NULL;
        if (spec) {
            st = plan_in(p, cs->name, src, 0, spec, optional || spec->optional, &found, &best,
                         &best_rank, &tried);
            if (st != TTSM_OK)
                goto fail;
        }
    }
    if (found || optional) {
        ttsm__sb_free(&tried);
        return found ? TTSM_OK : mark_absent_optional(p, cs->name, err);
    }
    if (best_rank <= 1) {
        /* Every repo answered, and none has it. */
        ttsm__sb names = {0};
        for (size_t i = 0; cs->files && i < cs->n_files; i++)
            ttsm__sb_addf(&names, "%s%s", i ? "|" : "", cs->files[i]);
        ttsm__err(&best, TTSM_ERR_NOT_FOUND, p->subject, "not on the Hub",
                  "%s (component %s) is in no repo (tried %s)",
                  names.len ? ttsm__sb_str(&names) : cs->name, cs->name,
                  tried.len ? ttsm__sb_str(&tried) : "none: the manifest names no repo");
        ttsm__sb_free(&names);
        ttsm__err_hint(&best, "the manifest's repos or file names are out of date, or the "
                              "files must be put in a models root by hand");
    }
    st = best.code != TTSM_OK ? best.code : TTSM_ERR_NOT_FOUND;
fail:
    ttsm__sb_free(&tried);
    if (err)
        *err = best;
    return st;
}

/* ---- what is there already ----------------------------------------------- */

/* 1 when the file found at `rc->path` in the hub cache is current: its
 * revision is a commit, the pull is offline, the Hub says the revision
 * still names that commit, or the Hub cannot be asked (a warning says
 * the cached files are used). 0 when the revision moved. */
static int fresh(planner *p, const char *folder, const char *commit, const char *rest,
                 const cand **which, cand *cs, size_t nc)
{
    *which = NULL;
    for (size_t i = 0; i < nc; i++) {
        char f[256];
        ttsm__hub_repo r = {cs[i].repo.id, is_kind(&cs[i].repo)};
        if (ttsm__hub_folder(&r, f, sizeof f) == 0 && strcmp(f, folder) == 0) {
            *which = &cs[i];
            break;
        }
    }
    if (!*which || ttsm__hub_is_commit((*which)->rev) || p->hub.offline)
        return 1;
    const cand *c = *which;
    ttsm__hub_repo r = {c->repo.id, is_kind(&c->repo)};
    freshness *fr = NULL;
    for (size_t i = 0; i < p->n_fr && !fr; i++)
        if (strcmp(p->fr[i].id, r.id) == 0 && strcmp(p->fr[i].rev, c->rev) == 0 &&
            p->fr[i].kind == r.kind)
            fr = &p->fr[i];
    if (!fr) {
        if (ttsm__grow((void **)&p->fr, &p->cap_fr, p->n_fr + 1, sizeof *p->fr, 4096) != 0)
            return 1;
        fr = &p->fr[p->n_fr];
        memset(fr, 0, sizeof *fr);
        fr->id = ttsm__strdup(r.id);
        fr->rev = ttsm__strdup(c->rev);
        fr->kind = r.kind;
        if (!fr->id || !fr->rev) {
            ttsm__free(fr->id);
            ttsm__free(fr->rev);
            return 1;
        }
        p->n_fr++;
        ttsm__hub_meta *meta = ttsm__malloc(sizeof *meta);
        ttsm_error e;
        int why = TTSM__HUB_FAILED;
        /* One quick question: a network that is down must not hold up
         * files that are here. */
        unsigned retries = p->hub.retries;
        p->hub.retries = retries > 1 ? 1 : retries;
        ttsm_status st = meta ? ttsm__hub_head(&p->hub, p->conn, &r, c->rev, rest, meta, &why, &e)
                              : TTSM_ERR_OUT_OF_MEMORY;
        p->hub.retries = retries;
        if (st == TTSM_OK || (why == TTSM__HUB_ABSENT && meta && ttsm__hub_is_commit(meta->commit)))
            memcpy(fr->remote, meta->commit, 41);
        else
            ttsm__logf(&p->hub.log, TTSM_LOG_WARN,
                       "cannot ask the Hub whether %s@%s changed (%s); using the cached files",
                       r.id, c->rev, st == TTSM_ERR_OUT_OF_MEMORY ? "out of memory" : e.message);
        ttsm__free(meta);
        if (fr->remote[0] && strcmp(fr->remote, commit) != 0)
            ttsm__logf(&p->hub.log, TTSM_LOG_INFO, "%s@%s moved from %.12s to %.12s: updating",
                       r.id, c->rev, commit, fr->remote);
    }
    return !fr->remote[0] || strcmp(fr->remote, commit) == 0;
}

static ttsm_status add_present(planner *p, const ttsm__resolved_comp *rc, const cand *c,
                               const char *commit, const char *rest, ttsm_error *err)
{
    pfile *f = new_file(p);
    if (!f)
        return oom(p, err);
    f->component = rc->name;
    f->state = F_PRESENT;
    f->local = ttsm__strdup(rc->path);
    f->tensors = rc->spec && rc->spec->kind == TTSM__KIND_TENSORS;
    struct stat sb;
    if (f->local && stat(f->local, &sb) == 0)
        f->size = (uint64_t)sb.st_size;
    if (c) {
        f->repo_id = ttsm__strdup(c->repo.id);
        f->kind = is_kind(&c->repo);
        f->rev = ttsm__strdup(c->rev);
        f->path = ttsm__strdup(rest);
        if (!f->repo_id || !f->rev || !f->path || !(f->meta = ttsm__calloc(1, sizeof *f->meta)))
            return oom(p, err);
        memcpy(f->meta->commit, commit, 41);
    }
    return f->local ? TTSM_OK : oom(p, err);
}

/* ---- shards --------------------------------------------------------------- */

/* Where a pulled or present file is now (or will be, for the index of a
 * dry run whose blob is there). */
static int local_of(const planner *p, const pfile *f, char *out, size_t size)
{
    if (f->local)
        return snprintf(out, size, "%s", f->local) < (int)size ? 0 : -1;
    if (f->dest)
        return snprintf(out, size, "%s", f->dest) < (int)size ? 0 : -1;
    if (!f->meta)
        return -1;
    char dir[PATH_MAX];
    ttsm__hub_repo r = {f->repo_id, f->kind};
    if (ttsm__hub_repo_dir(p->hub.cache, &r, dir, sizeof dir) != 0)
        return -1;
    if (f->state == F_TODO || f->state == F_LINK)
        /* not linked yet (a dry run): read its blob */
        return snprintf(out, size, "%s/blobs/%s", dir, f->meta->etag) < (int)size ? 0 : -1;
    return snprintf(out, size, "%s/snapshots/%s/%s", dir, f->meta->commit, f->path) < (int)size
               ? 0
               : -1;
}

/* Plans the shards a sharded index names that are not beside it. */
static ttsm_status plan_shards(planner *p, size_t upto, ttsm_error *err)
{
    static const char suffix[] = ".safetensors.index.json";
    for (size_t i = 0; i < upto; i++) {
        pfile *f = &p->f[i];
        const char *name = f->path && f->path[0] ? f->path : f->local;
        size_t nl = name ? strlen(name) : 0;
        if (!f->tensors || !name || nl < sizeof suffix - 1 ||
            strcmp(name + nl - (sizeof suffix - 1), suffix) != 0 || f->state == F_ABSENT)
            continue;
        char local[PATH_MAX];
        if (local_of(p, f, local, sizeof local) != 0)
            continue;
        /* Never waits on a FIFO put where the index goes; a dry run's index
         * may not be here yet; the reader says at load what is wrong. */
        int fd;
        struct stat sb;
        if (ttsm__open_regular(local, "cannot read index", NULL, &fd, &sb, NULL) != TTSM_OK)
            continue;
        if (sb.st_size <= 0 || (uint64_t)sb.st_size > TTSM__ST_MAX_INDEX) {
            close(fd);
            continue;
        }
        size_t len = (size_t)sb.st_size;
        char *buf = ttsm__malloc(len);
        ssize_t rd = buf ? read(fd, buf, len) : -1;
        size_t got = rd > 0 ? (size_t)rd : 0;
        close(fd);
        if (!buf)
            return oom(p, err);
        ttsm__st_index ix;
        ttsm_status st = got == len ? ttsm__st_index_parse(local, buf, len, &ix, NULL) : TTSM_ERR_IO;
        ttsm__free(buf);
        if (st == TTSM_ERR_OUT_OF_MEMORY)
            return oom(p, err);
        if (st != TTSM_OK)
            continue;
        /* Shards sit beside the index: locally and in the repo. */
        const char *lslash = strrchr(f->local ? f->local : f->dest ? f->dest : "", '/');
        char ldir[PATH_MAX] = "";
        if (lslash) {
            const char *base = f->local ? f->local : f->dest;
            snprintf(ldir, sizeof ldir, "%.*s", (int)(lslash - base), base);
        } else if (f->meta) {
            char dir[PATH_MAX];
            ttsm__hub_repo r = {f->repo_id, f->kind};
            const char *ps = strrchr(f->path, '/');
            if (ttsm__hub_repo_dir(p->hub.cache, &r, dir, sizeof dir) != 0 ||
                snprintf(ldir, sizeof ldir, "%s/snapshots/%s%s%.*s", dir, f->meta->commit,
                         ps ? "/" : "", ps ? (int)(ps - f->path) : 0,
                         f->path) >= (int)sizeof ldir)
                ldir[0] = '\0';
        }
        for (size_t s = 0; s < ix.n_shards && st == TTSM_OK; s++) {
            if (!f->meta || !f->repo_id)
                continue; /* an index from a models root: its shards are not ours to fetch */
            char path[TTSM__HUB_PATH_MAX + 1];
            const char *ps = strrchr(f->path, '/');
            snprintf(path, sizeof path, "%.*s%s%s", ps ? (int)(ps - f->path) : 0, f->path,
                     ps ? "/" : "", ix.shards[s]);
            int known = 0;
            for (size_t k = 0; k < p->n && !known; k++)
                known = p->f[k].path && p->f[k].repo_id &&
                        strcmp(p->f[k].repo_id, f->repo_id) == 0 &&
                        strcmp(p->f[k].path, path) == 0;
            if (known)
                continue;
            char shard_local[PATH_MAX];
            if (ldir[0] &&
                snprintf(shard_local, sizeof shard_local, "%s/%s", ldir, ix.shards[s]) <
                    (int)sizeof shard_local &&
                stat(shard_local, &sb) == 0 && S_ISREG(sb.st_mode)) {
                /* There already, beside its index: listed as present. */
                pfile *nf = new_file(p);
                if (!nf) {
                    st = oom(p, err);
                    break;
                }
                f = &p->f[i];
                nf->component = f->component;
                nf->state = F_PRESENT;
                nf->tensors = 1;
                nf->size = (uint64_t)sb.st_size;
                nf->kind = f->kind;
                nf->local = ttsm__strdup(shard_local);
                nf->repo_id = ttsm__strdup(f->repo_id);
                nf->rev = ttsm__strdup(f->rev);
                nf->path = ttsm__strdup(path);
                nf->meta = ttsm__calloc(1, sizeof *nf->meta);
                if (!nf->local || !nf->repo_id || !nf->rev || !nf->path || !nf->meta)
                    st = oom(p, err);
                else
                    memcpy(nf->meta->commit, f->meta->commit, 41);
                continue;
            }
            if (p->hub.offline) {
                ttsm__err(err, TTSM_ERR_NOT_FOUND, p->subject, "offline",
                          "HF_HUB_OFFLINE is set and shard %s is not in the cache", ix.shards[s]);
                ttsm__st_index_free(&ix);
                return TTSM_ERR_NOT_FOUND;
            }
            ttsm__hub_repo r = {f->repo_id, f->kind};
            ttsm__hub_meta *meta = ttsm__malloc(sizeof *meta);
            if (!meta) {
                st = oom(p, err);
                break;
            }
            int why;
            st = ttsm__hub_head(&p->hub, p->conn, &r, f->meta->commit, path, meta, &why, err);
            if (st != TTSM_OK) {
                ttsm__free(meta);
                break;
            }
            cand c;
            memset(&c, 0, sizeof c);
            c.repo.id = f->repo_id;
            c.repo.dataset = f->kind == TTSM__REPO_DATASET;
            c.rev = f->rev;
            /* The index's component decides where a models-root shard goes. */
            ttsm__comp_spec shard_spec;
            memset(&shard_spec, 0, sizeof shard_spec);
            shard_spec.kind = TTSM__KIND_TENSORS;
            char shard_name[TTSM__HUB_PATH_MAX + 1];
            snprintf(shard_name, sizeof shard_name, "%s", ix.shards[s]);
            char *one[1] = {shard_name};
            shard_spec.files = one;
            shard_spec.n_files = 1;
            size_t before = p->n;
            st = add_remote(p, f->component, &c, p->ms, &shard_spec, path, meta, err);
            f = &p->f[i]; /* the table may have moved */
            if (st == TTSM_OK && f->dest && p->n > before) {
                /* beside the index in the models root */
                pfile *nf = &p->f[p->n - 1];
                ttsm__sb d = {0}, l = {0};
                ttsm__sb_addf(&d, "%s/%s", ldir, ix.shards[s]);
                ttsm__sb_addf(&l, "%s.%s.lock", f->lock, ix.shards[s]);
                ttsm__free(nf->dest);
                ttsm__free(nf->lock);
                nf->dest = ttsm__sb_take(&d);
                nf->lock = ttsm__sb_take(&l);
                ttsm__sb_free(&d);
                ttsm__sb_free(&l);
                if (!nf->dest || !nf->lock)
                    st = oom(p, err);
            }
        }
        ttsm__st_index_free(&ix);
        if (st != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

/* ---- downloading ---------------------------------------------------------- */

typedef struct job {
    planner *p;
    pfile *f;
} job;

static int report_progress(planner *p, const pfile *f, int finished)
{
    if (!p->o->progress)
        return 0;
    ttsm_pull_progress pr = {f->repo_id, f->path, f->done, f->size, p->done, p->total,
                             p->files_done, p->files_total, finished};
    return p->o->progress(p->o->progress_user, &pr);
}

static int on_bytes(void *user, uint64_t done, uint64_t total)
{
    job *j = user;
    planner *p = j->p;
    pthread_mutex_lock(&p->mu);
    p->done = p->done - j->f->done + done;
    j->f->done = done;
    (void)total;
    int rc = report_progress(p, j->f, 0);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void run_file(planner *p, ttsm__http *conn, pfile *f)
{
    ttsm_error e;
    job j = {p, f};
    ttsm__hub_repo r = {f->repo_id, f->kind};
    ttsm_status st = TTSM_OK;
    if (f->state == F_TODO)
        st = ttsm__hub_fetch(&p->hub, conn, &r, f->path, f->meta, f->dest, f->lock, on_bytes, &j,
                             &f->fetched, &e);
    if (st == TTSM_OK && !f->dest) {
        char dir[PATH_MAX];
        if (ttsm__hub_repo_dir(p->hub.cache, &r, dir, sizeof dir) != 0)
            st = ttsm__err(&e, TTSM_ERR_INVALID_ARGUMENT, r.id, "invalid repo id", "%s", r.id);
        else
            st = ttsm__hub_link(dir, f->meta->commit, f->path, f->meta->etag, &e);
    }
    pthread_mutex_lock(&p->mu);
    if (st == TTSM_OK) {
        if (f->state == F_TODO && !f->fetched) {
            /* another process fetched it while this one waited for the lock */
            p->done = p->done - f->done + f->size;
            f->done = f->size;
        }
        f->state = F_DONE;
        p->files_done++;
        if (report_progress(p, f, 1))
            atomic_store(&p->hub.cancel, 1);
    } else {
        if (p->st == TTSM_OK || (p->st == TTSM_ERR_CANCELLED && st != TTSM_ERR_CANCELLED)) {
            p->st = st;
            p->err = e;
        }
        p->stop = 1;
        touched *t = touch(p, &r, f->rev, NULL);
        if (t)
            t->failed = 1;
    }
    pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg)
{
    planner *p = arg;
    ttsm__http *conn = ttsm__http_open(&p->hub.lim, &p->hub.cancel);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        pfile *f = NULL;
        if (!conn && p->st == TTSM_OK) {
            p->st = ttsm__err(&p->err, TTSM_ERR_OUT_OF_MEMORY, p->subject, "out of memory",
                              "opening a connection");
            p->stop = 1;
        }
        while (conn && !p->stop && !atomic_load(&p->hub.cancel) && p->next < p->n && !f) {
            pfile *c = &p->f[p->next++];
            if (c->state == F_TODO || c->state == F_LINK)
                f = c;
        }
        pthread_mutex_unlock(&p->mu);
        if (!f)
            break;
        run_file(p, conn, f);
    }
    ttsm__http_close(conn);
    return NULL;
}

/* Fetches every planned file from index `from` on, with up to `jobs` threads. */
static ttsm_status download(planner *p, size_t from, ttsm_error *err)
{
    size_t todo = 0;
    for (size_t i = from; i < p->n; i++)
        todo += p->f[i].state == F_TODO || p->f[i].state == F_LINK;
    p->files_total += todo;
    if (!todo)
        return TTSM_OK;
    p->next = from;
    unsigned jobs = p->o->jobs ? p->o->jobs : TTSM_PULL_DEFAULT_JOBS;
    if (jobs > TTSM_PULL_MAX_JOBS)
        jobs = TTSM_PULL_MAX_JOBS;
    if (jobs > todo)
        jobs = (unsigned)todo;
    pthread_t th[TTSM_PULL_MAX_JOBS];
    unsigned started = 0;
    for (unsigned i = 1; i < jobs; i++) {
        if (pthread_create(&th[started], NULL, worker, p) != 0)
            break; /* fewer threads: the ones running take the rest */
        started++;
    }
    worker(p);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (p->st != TTSM_OK) {
        if (err)
            *err = p->err;
        return p->st;
    }
    if (atomic_load(&p->hub.cancel))
        return ttsm__err(err, TTSM_ERR_CANCELLED, p->subject, "cancelled",
                         "by the progress callback");
    return TTSM_OK;
}

/* ---- the report ----------------------------------------------------------- */

static const char *status_name(const pfile *f, int dry)
{
    switch (f->state) {
    case F_PRESENT: return "present";
    case F_ABSENT: return "absent";
    case F_TODO: return dry ? "would download" : "failed";
    case F_LINK: return dry ? "would link" : "failed";
    default: return f->fetched ? "downloaded" : "linked";
    }
}

static json_t *report_of(planner *p)
{
    json_t *files = json_array();
    uint64_t total = 0, dl = 0;
    json_int_t n_dl = 0, n_present = 0;
    for (size_t i = 0; i < p->n; i++) {
        const pfile *f = &p->f[i];
        char local[PATH_MAX];
        int have_local = f->state != F_ABSENT && local_of(p, f, local, sizeof local) == 0;
        if (have_local && (f->state == F_TODO || f->state == F_LINK) && !f->dest) {
            /* where it will be: its snapshot entry */
            char dir[PATH_MAX];
            ttsm__hub_repo r = {f->repo_id, f->kind};
            have_local = ttsm__hub_repo_dir(p->hub.cache, &r, dir, sizeof dir) == 0 &&
                         snprintf(local, sizeof local, "%s/snapshots/%s/%s", dir,
                                  f->meta->commit, f->path) < (int)sizeof local;
        }
        total += f->state == F_ABSENT ? 0 : f->size;
        if (f->state == F_TODO || (f->state == F_DONE && f->fetched)) {
            dl += f->size;
            n_dl++;
        }
        n_present += f->state == F_PRESENT;
        json_array_append_new(
            files,
            json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:b, s:o}", "component", f->component,
                      "repo", f->repo_id ? json_string(f->repo_id) : json_null(), "revision",
                      f->rev ? json_string(f->rev) : json_null(), "commit",
                      f->meta && f->meta->commit[0] ? json_string(f->meta->commit) : json_null(),
                      "path", f->path ? json_string(f->path) : json_null(), "size",
                      f->state == F_ABSENT ? json_null() : json_integer((json_int_t)f->size),
                      "status", status_name(f, p->o->dry_run), "optional", f->optional, "local",
                      have_local ? json_string(local) : json_null()));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:I, s:I, s:I, s:I}", "engine",
                     p->m->name, "model", p->ms->name, "target",
                     p->o->to_models_root ? "models root" : "hub cache", "root",
                     p->o->to_models_root ? p->o->to_models_root : p->hub.cache, "dry_run",
                     p->o->dry_run, "offline", p->hub.offline, "files", files, "total_bytes",
                     (json_int_t)total, "download_bytes", (json_int_t)dl, "downloaded", n_dl,
                     "present", n_present);
}

/* ---- the whole pull ------------------------------------------------------- */

static void planner_free(planner *p)
{
    for (size_t i = 0; i < p->n; i++)
        pfile_free(&p->f[i]);
    ttsm__free(p->f);
    for (size_t i = 0; i < p->n_ri; i++) {
        ttsm__free(p->ri[i].id);
        ttsm__free(p->ri[i].rev);
        ttsm__hub_list_free(&p->ri[i].sib);
    }
    ttsm__free(p->ri);
    for (size_t i = 0; i < p->n_fr; i++) {
        ttsm__free(p->fr[i].id);
        ttsm__free(p->fr[i].rev);
    }
    ttsm__free(p->fr);
    for (size_t i = 0; i < p->n_t; i++) {
        ttsm__free(p->t[i].id);
        ttsm__free(p->t[i].rev);
    }
    ttsm__free(p->t);
    ttsm__http_close(p->conn);
    ttsm__hub_free(&p->hub);
    pthread_mutex_destroy(&p->mu);
}

/* Decides, for each component the resolver reports, whether it is there
 * (and current) or must be planned. */
static ttsm_status plan_model(planner *p, const ttsm__resolution *res, ttsm_error *err)
{
    cand *cs = ttsm__calloc(MAX_CANDS, sizeof *cs);
    if (!cs)
        return oom(p, err);
    ttsm_status st = TTSM_OK;
    for (size_t i = 0; i < res->n_comps && st == TTSM_OK; i++) {
        const ttsm__resolved_comp *rc = &res->comps[i];
        if (rc->path) {
            char folder[256], commit[41];
            const char *rest;
            const cand *which = NULL;
            if (!p->o->to_models_root &&
                ttsm__hub_locate(p->hub_real, rc->path, folder, sizeof folder, commit, &rest) == 0 && rc->spec) {
                const ttsm__model_spec *src =
                    rc->borrowed ? ttsm__manifest_model(p->m, rc->from_model)
                    : rc->shared ? ttsm__manifest_shared(p->m, rc->from_model)
                                 : p->ms;
                size_t nc = src ? candidates(p, src, !rc->borrowed && !rc->shared, rc->spec, cs)
                                : 0;
                if (!fresh(p, folder, commit, rest, &which, cs, nc)) {
                    st = plan_comp(p, rc, err);
                    continue;
                }
            }
            st = add_present(p, rc, which, which ? commit : NULL, which ? rest : NULL, err);
            continue;
        }
        st = plan_comp(p, rc, err);
    }
    ttsm__free(cs);
    return st;
}

ttsm_status ttsm__pull_model(const ttsm__manifest *m, const ttsm__model_spec *ms,
                             const ttsm_load_config *cfg, const ttsm_pull_options *o,
                             json_t **report, ttsm_error *err)
{
    planner *p = ttsm__calloc(1, sizeof *p);
    if (!p)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->name, "out of memory", "pull");
    p->m = m;
    p->ms = ms;
    p->cfg = cfg;
    p->o = o;
    pthread_mutex_init(&p->mu, NULL);
    ttsm__format_trunc(p->subject, sizeof p->subject, "%s/%s", m->name, ms->name);
    ttsm__hub_config hc = {o->endpoint, o->token, o->hf_cache, (long)o->connect_timeout_ms,
                           (long)o->stall_timeout_ms, o->retries, 0, {o->log, o->log_user}};
    ttsm_status st = ttsm__hub_init(&p->hub, &hc, err);
    ttsm__resolution res;
    int have_res = 0;
    if (st != TTSM_OK) {
        pthread_mutex_destroy(&p->mu);
        ttsm__free(p);
        return st;
    }
    p->hub.no_markers = o->to_models_root != NULL || o->dry_run;
    if (!realpath(p->hub.cache, p->hub_real))
        p->hub_real[0] = '\0';
    if (!p->hub.offline && !(p->conn = ttsm__http_open(&p->hub.lim, &p->hub.cancel))) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, p->subject, "cannot start libcurl",
                       "out of memory");
        goto done;
    }
    /* What is there: a pull into a models root looks only there. */
    ttsm__roots roots = {o->to_models_root ? o->to_models_root : o->models_dirs, o->hf_cache,
                         o->to_models_root ? "" : o->comfyui_dirs, o->to_models_root != NULL};
    ttsm_load_config rcfg = *cfg;
    rcfg.model_path = NULL; /* a pull fills the standard places, not a folder of its own */
    p->cfg = &rcfg;
    st = ttsm__resolve_model(m, ms, &rcfg, &roots, &res, err);
    if (st != TTSM_OK)
        goto done;
    have_res = 1;
    if (o->to_models_root && !ttsm__hub_path_ok(m->folder))
        st = ttsm__err(err, TTSM_ERR_FORMAT, p->subject, "unsafe folder", "%s", m->folder);
    if (st == TTSM_OK)
        st = plan_model(p, &res, err);
    size_t first = 0;
    if (st == TTSM_OK && !o->dry_run) {
        /* Shards of indexes already here go with the first round. */
        size_t planned = p->n;
        st = plan_shards(p, planned, err);
        for (int round = 0; st == TTSM_OK && round < 2; round++) {
            size_t upto = p->n;
            st = download(p, first, err);
            first = upto;
            if (st == TTSM_OK && round == 0)
                st = plan_shards(p, upto, err); /* indexes that just arrived */
            if (p->n == upto)
                break;
        }
    } else if (st == TTSM_OK) {
        st = plan_shards(p, p->n, err);
    }
    /* Refs last: a ref names a snapshot that is all there. */
    for (size_t i = 0; !o->dry_run && !o->to_models_root && i < p->n_t; i++) {
        touched *t = &p->t[i];
        char dir[PATH_MAX];
        ttsm__hub_repo r = {t->id, t->kind};
        if (t->failed || !t->commit[0] || ttsm__hub_is_commit(t->rev) ||
            ttsm__hub_repo_dir(p->hub.cache, &r, dir, sizeof dir) != 0)
            continue;
        if (st != TTSM_OK) {
            /* Only repos whose planned files all arrived. */
            int all = 1;
            for (size_t k = 0; k < p->n && all; k++)
                if (p->f[k].repo_id && strcmp(p->f[k].repo_id, t->id) == 0 &&
                    (p->f[k].state == F_TODO || p->f[k].state == F_LINK))
                    all = 0;
            if (!all)
                continue;
        }
        ttsm_error e;
        ttsm_status rs = ttsm__hub_write_ref(dir, t->rev, t->commit, &e);
        if (rs != TTSM_OK && st == TTSM_OK) {
            st = rs;
            if (err)
                *err = e;
        }
    }
    if (report && (st == TTSM_OK || o->dry_run) && !(*report = report_of(p)) && st == TTSM_OK)
        st = oom(p, err);
done:
    if (have_res)
        ttsm__resolution_free(&res);
    planner_free(p);
    ttsm__free(p);
    return st;
}
