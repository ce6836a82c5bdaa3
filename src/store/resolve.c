/* resolve.c - finds the file of every component of a model: the explicit
 * model_path, each models root in the ComfyUI layout (<root>/TTS/<engine
 * folder>/<model folder>; roots.c says which roots, in which order), the
 * engine's legacy folders, then the HuggingFace hub cache in its real
 * layout (refs -> snapshots -> blobs). Every place tried is recorded for
 * the not-found message, with where each file goes in every root. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "base/strbuf.h"
#include "formats/safetensors_index.h"
#include "store/resolve.h"


int ttsm__hub_dir(const ttsm__roots *roots, char *out, size_t size)
{
    const char *v;
    int n;
    if (roots && roots->no_hub)
        return -1;
    if (roots && roots->hf_cache && *roots->hf_cache)
        n = snprintf(out, size, "%s", roots->hf_cache);
    else if ((v = getenv("HF_HUB_CACHE")) && *v)
        n = snprintf(out, size, "%s", v);
    else if ((v = getenv("HF_HOME")) && *v)
        n = snprintf(out, size, "%s/hub", v);
    else if ((v = getenv("HOME")) && *v)
        n = snprintf(out, size, "%s/.cache/huggingface/hub", v);
    else
        return -1;
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A model file is found when its name exists and is not a folder: a FIFO
 * or a device in its place is found too, and refused by the opener, which
 * says what it is, instead of being passed over as "not found". */
static int is_entry(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Looks for `pattern` ("name", "model_*.pt", "{model}.pth") in `dir`. A '*'
 * matches the latest file in version order (model_1250000 after
 * model_200000). @return a malloc'd path or NULL; running out of memory sets
 * *oom, so it is not mistaken for a missing file. */
static char *match_in(const char *dir, const char *pattern, const char *model, int *oom)
{
    ttsm__sb pat = {0};
    for (const char *p = pattern; *p;) {
        if (strncmp(p, "{model}", 7) == 0) {
            ttsm__sb_adds(&pat, model);
            p += 7;
        } else {
            ttsm__sb_add(&pat, p++, 1);
        }
    }
    char *result = NULL;
    const char *pt = ttsm__sb_str(&pat);
    const char *star = strchr(pt, '*');
    if (pat.failed) {
        *oom = 1;
        goto out;
    }
    if (!star) {
        ttsm__sb full = {0};
        ttsm__sb_addf(&full, "%s/%s", dir, pt);
        *oom |= full.failed;
        if (!full.failed && is_entry(full.p) && !(result = ttsm__sb_take(&full)))
            *oom = 1;
        ttsm__sb_free(&full);
        goto out;
    }
    /* The star is in the last segment (the manifest checks that). */
    const char *slash = strrchr(pt, '/');
    ttsm__sb sub = {0};
    ttsm__sb_adds(&sub, dir);
    if (slash) {
        ttsm__sb_adds(&sub, "/");
        ttsm__sb_add(&sub, pt, (size_t)(slash - pt));
    }
    const char *name_pat = slash ? slash + 1 : pt;
    size_t pre = (size_t)(star - name_pat), post = strlen(star + 1);
    *oom |= sub.failed;
    DIR *d = sub.failed ? NULL : opendir(sub.p);
    char *best = NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < pre + post || strncmp(de->d_name, name_pat, pre) != 0 ||
            strcmp(de->d_name + l - post, star + 1) != 0)
            continue;
        if (!best || strverscmp(de->d_name, best) > 0) {
            char *c = ttsm__strdup(de->d_name);
            if (c) {
                ttsm__free(best);
                best = c;
            } else {
                *oom = 1;
            }
        }
    }
    if (d)
        closedir(d);
    if (best) {
        ttsm__sb full = {0};
        ttsm__sb_addf(&full, "%s/%s", ttsm__sb_str(&sub), best);
        *oom |= full.failed;
        if (!full.failed && is_entry(full.p) && !(result = ttsm__sb_take(&full)))
            *oom = 1;
        ttsm__sb_free(&full);
        ttsm__free(best);
    }
    ttsm__sb_free(&sub);
out:
    ttsm__sb_free(&pat);
    return result;
}

/* The commit a revision names in a hub repo folder: refs/<rev> holds it,
 * or the revision is a commit itself. @return 0 found, 1 absent, -1 a
 * malformed ref or one that is not a file (err and *why set). */
static int hub_commit(const char *repo_dir, const char *rev, char commit[41], ttsm_status *why,
                      ttsm_error *err)
{
    *why = TTSM_ERR_FORMAT;
    size_t rl = strlen(rev);
    int hex = rl == 40;
    for (size_t i = 0; hex && i < 40; i++)
        hex = (rev[i] >= '0' && rev[i] <= '9') || (rev[i] >= 'a' && rev[i] <= 'f');
    if (hex) {
        memcpy(commit, rev, 41);
        return 0;
    }
    if (strstr(rev, "..") || rev[0] == '/') {
        ttsm__err(err, TTSM_ERR_FORMAT, repo_dir, "unsafe revision",
                  "\"%s\" would leave the refs folder", rev);
        return -1;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev) >= (int)sizeof path)
        return 1;
    /* A ref that is a FIFO would block the resolution: refused, not read. */
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 1;
    int fd;
    ttsm_status st = ttsm__open_regular(path, "cannot read ref", NULL, &fd, NULL, err);
    if (st == TTSM_ERR_NOT_FOUND)
        return 1;
    if (st != TTSM_OK) {
        *why = st;
        return -1;
    }
    char buf[64];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    size_t n = got > 0 ? (size_t)got : 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    int ok = n == 40;
    for (size_t i = 0; ok && i < 40; i++)
        ok = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
    if (!ok) {
        ttsm__err(err, TTSM_ERR_FORMAT, path, "malformed ref",
                  "expected a 40-digit commit hash, found \"%.48s\"", buf);
        return -1;
    }
    memcpy(commit, buf, 41);
    return 0;
}

/* A file found in a snapshot must resolve (through its blob symlink) to a
 * place inside the repo's own folder, and that folder to a place inside the
 * hub cache. @return 0 ok, -1 escape (err set). */
static int check_inside(const char *hub, const char *repo_dir, const char *file, ttsm_error *err)
{
    char *real_hub = realpath(hub, NULL), *real_repo = realpath(repo_dir, NULL),
         *real_file = realpath(file, NULL);
    /* The repo folder itself must be inside the hub: one that is a symlink
     * to elsewhere would make everything below it "inside its repo". */
    size_t hl = real_hub && strcmp(real_hub, "/") != 0 ? strlen(real_hub) : 0;
    int repo_ok = real_hub && real_repo && strncmp(real_repo, real_hub, hl) == 0 &&
                  real_repo[hl] == '/';
    int ok = repo_ok && real_file && strncmp(real_file, real_repo, strlen(real_repo)) == 0 &&
             real_file[strlen(real_repo)] == '/';
    if (!repo_ok)
        ttsm__err(err, TTSM_ERR_FORMAT, file, "unsafe hub cache entry",
                  "its repo folder %s resolves to %s, outside the hub cache %s; the cache is "
                  "damaged or tampered with",
                  repo_dir, real_repo ? real_repo : "(nothing)", real_hub ? real_hub : hub);
    else if (!ok)
        ttsm__err(err, TTSM_ERR_FORMAT, file, "unsafe hub cache entry",
                  "it resolves to %s, outside its repo folder %s; the cache is damaged or "
                  "tampered with",
                  real_file ? real_file : "(nothing)", real_repo ? real_repo : repo_dir);
    free(real_hub);
    free(real_repo);
    free(real_file);
    return ok ? 0 : -1;
}

/* A sharded index found in the hub names shards that are symlinks into
 * blobs/ as well: each that exists must also resolve inside the repo
 * folder. An index that does not parse is left to its reader, which says
 * why at load. @return 0 ok, -1 escape (err set), -2 out of memory. */
static int check_shards_inside(const char *hub, const char *repo_dir, const char *index,
                               ttsm_error *err)
{
    static const char suffix[] = ".index.json";
    size_t n = strlen(index);
    const char *slash = strrchr(index, '/');
    if (!slash || n < sizeof suffix - 1 || strcmp(index + n - (sizeof suffix - 1), suffix) != 0)
        return 0;
    struct stat sb;
    int fd;
    FILE *fp = NULL;
    if (ttsm__open_regular(index, "cannot open", NULL, &fd, &sb, NULL) != TTSM_OK)
        return 0; /* not a file: the opener says what it is */
    if (!(fp = fdopen(fd, "rb")) || sb.st_size <= 0 ||
        (uint64_t)sb.st_size > TTSM__ST_MAX_INDEX) {
        if (fp)
            fclose(fp);
        else
            close(fd);
        return 0;
    }
    size_t len = (size_t)sb.st_size;
    char *buf = ttsm__malloc(len);
    size_t got = buf ? fread(buf, 1, len, fp) : 0;
    fclose(fp);
    if (!buf)
        return -2;
    ttsm__st_index ix;
    ttsm_status st = got == len ? ttsm__st_index_parse(index, buf, len, &ix, NULL) : TTSM_ERR_IO;
    ttsm__free(buf);
    if (st != TTSM_OK)
        return st == TTSM_ERR_OUT_OF_MEMORY ? -2 : 0;
    size_t dir_len = (size_t)(slash - index) + 1;
    int rc = 0;
    for (size_t i = 0; i < ix.n_shards && rc == 0; i++) {
        ttsm__sb path = {0};
        ttsm__sb_add(&path, index, dir_len);
        ttsm__sb_adds(&path, ix.shards[i]);
        if (path.failed)
            rc = -2;
        else if (stat(path.p, &sb) == 0 && check_inside(hub, repo_dir, path.p, err) != 0)
            rc = -1;
        ttsm__sb_free(&path);
    }
    ttsm__st_index_free(&ix);
    return rc;
}

typedef struct finder {
    const ttsm__manifest *m;
    const ttsm_load_config *cfg;
    const ttsm__roots *roots;
    const ttsm__rootset *rs;
    char hub[PATH_MAX];
    int have_hub;
    int oom; /* a path could not be built: out of memory, not "not found" */
} finder;

/* `pattern` with "{model}" replaced by `model`, appended to `b`. */
static void add_subst(ttsm__sb *b, const char *pattern, const char *model)
{
    for (const char *p = pattern; *p;) {
        if (strncmp(p, "{model}", 7) == 0) {
            ttsm__sb_adds(b, model);
            p += 7;
        } else {
            ttsm__sb_add(b, p++, 1);
        }
    }
}

/* A symlink at `path` whose target is gone: "<path> -> <target>", else NULL. */
static char *dangling(const char *path, int *oom)
{
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISLNK(sb.st_mode) || stat(path, &sb) == 0)
        return NULL;
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    ttsm__sb b = {0};
    ttsm__sb_addf(&b, "%s -> %s", path, n > 0 ? target : "?");
    *oom |= b.failed;
    char *r = b.failed ? NULL : ttsm__sb_take(&b);
    ttsm__sb_free(&b);
    return r;
}

/* Tries every alternative in `files` in `dir`. When none is there, a link
 * for one whose target is gone is kept in *broken (the first one). */
static char *try_dir(const char *dir, char *const *files, size_t n_files, const char *model,
                     ttsm__sb *tried, char **broken, int *oom)
{
    ttsm__sb_addf(tried, "%s%s", tried->len ? "; " : "", dir);
    if (!is_dir(dir))
        return NULL;
    for (size_t i = 0; i < n_files; i++) {
        char *p = match_in(dir, files[i], model, oom);
        if (p)
            return p;
    }
    for (size_t i = 0; i < n_files && !*broken; i++) {
        if (strchr(files[i], '*'))
            continue;
        ttsm__sb full = {0};
        ttsm__sb_addf(&full, "%s/", dir);
        add_subst(&full, files[i], model);
        *oom |= full.failed;
        if (!full.failed)
            *broken = dangling(full.p, oom);
        ttsm__sb_free(&full);
    }
    return NULL;
}

/* The folder model `ms` keeps its files in under root `root`:
 * <root>/TTS/<engine folder>/<model folder> or <root>/TTS/<dir>; a root
 * that is a TTS folder itself has no "TTS/". */
static void model_dir(const ttsm__manifest *m, const char *root, int kind,
                      const ttsm__model_spec *ms, ttsm__sb *dir)
{
    const char *tts = kind == TTSM__ROOT_TTS ? "" : "/TTS";
    if (ms->dir)
        ttsm__sb_addf(dir, "%s%s/%s", root, tts, ms->dir);
    else
        ttsm__sb_addf(dir, "%s%s/%s/%s", root, tts, m->folder, ms->folder ? ms->folder : ms->name);
}

/* What `ttsm resolve --where` and the not-found hint say: the folder the
 * files go in for every root, the local names looked for, and the repo path
 * to download (the repo's own name for the file). The first call for a
 * component wins: its own files come before a borrow's. @return 0, or -1
 * when out of memory. */
static int record_where(finder *f, const ttsm__model_spec *ms, const ttsm__comp_spec *cs,
                        const ttsm__repo *repo, int own_repo, ttsm__resolved_comp *rc)
{
    if (rc->want)
        return 0;
    ttsm__sb want = {0};
    for (size_t a = 0; a < cs->n_files; a++) {
        if (a)
            ttsm__sb_adds(&want, "|");
        add_subst(&want, cs->files[a], ms->name);
    }
    if (want.failed || !(rc->want = ttsm__sb_take(&want))) {
        ttsm__sb_free(&want);
        return -1;
    }
    if (f->rs->n && !(rc->where = ttsm__calloc(f->rs->n, sizeof *rc->where)))
        return -1;
    for (size_t r = 0; r < f->rs->n; r++) {
        ttsm__sb dir = {0};
        model_dir(f->m, f->rs->roots[r].path, f->rs->roots[r].kind, ms, &dir);
        if (cs->subfolder)
            ttsm__sb_addf(&dir, "/%s", cs->subfolder);
        if (dir.failed || !(rc->where[r] = ttsm__sb_take(&dir))) {
            ttsm__sb_free(&dir);
            return -1;
        }
    }
    size_t n_files = 0;
    char *const *files = repo ? ttsm__comp_repo_files(cs, repo->id, &n_files) : NULL;
    if (!n_files)
        return 0;
    ttsm__sb path = {0};
    if (repo->subfolder)
        ttsm__sb_addf(&path, "%s/", repo->subfolder);
    if (cs->subfolder && !own_repo)
        ttsm__sb_addf(&path, "%s/", cs->subfolder);
    add_subst(&path, files[0], ms->name);
    rc->dl_repo = ttsm__strdup(repo->id);
    rc->dl_revision = ttsm__strdup(repo->revision ? repo->revision : "main");
    rc->dl_path = path.failed ? NULL : ttsm__sb_take(&path);
    rc->dl_dataset = repo->dataset;
    ttsm__sb_free(&path);
    return rc->dl_repo && rc->dl_revision && rc->dl_path ? 0 : -1;
}

/* The hub repo folder of `repo`: <hub>/models--org--name (datasets--...). */
static void repo_folder(ttsm__sb *out, const char *hub, const ttsm__repo *repo)
{
    ttsm__sb_addf(out, "%s/%s--", hub, repo->dataset ? "datasets" : "models");
    for (const char *c = repo->id; *c; c++) {
        if (*c == '/')
            ttsm__sb_adds(out, "--");
        else
            ttsm__sb_add(out, c, 1);
    }
}

/* Looks for component `cs` in one hub repo. `own_repo`: the repo is the
 * component's own (its subfolder is the repo's only). A revision the
 * manifest pins is read from snapshots/<commit> only: Higgs Audio's main
 * moved to a layout the engine cannot use, and a main snapshot must not
 * stand in for the pinned one. @return TTSM_OK (*found set or not), or the
 * error of an unsafe entry or a malformed ref. */
static ttsm_status find_in_repo(finder *f, const ttsm__model_spec *ms, const ttsm__comp_spec *cs,
                                const ttsm__repo *repo, int own_repo, int pinned_by_manifest,
                                char **found, ttsm__sb *tried, int *said_hub, char **broken,
                                ttsm_error *err)
{
    size_t n_files;
    char *const *files = ttsm__comp_repo_files(cs, repo->id, &n_files);
    if (n_files == 0)
        return TTSM_OK; /* the manifest says this repo does not hold it */
    ttsm__sb repo_dir = {0}, dir = {0}, gone = {0};
    ttsm_status st = TTSM_OK;
    repo_folder(&repo_dir, f->hub, repo);
    const char *rev = repo->revision ? repo->revision : "main";
    char commit[41];
    f->oom |= repo_dir.failed;
    ttsm_status why;
    int hc = repo_dir.failed ? 1 : hub_commit(repo_dir.p, rev, commit, &why, err);
    if (hc < 0) {
        st = why;
        goto out;
    }
    if (hc == 0) {
        ttsm__sb_addf(&dir, "%s/snapshots/%s", repo_dir.p, commit);
        f->oom |= dir.failed;
        hc = !dir.failed && is_dir(dir.p) ? 0 : 1;
    }
    if (hc > 0) {
        /* Not in the cache. For a pinned repo say that another snapshot,
         * which is not used, is there. */
        char main_commit[41];
        int has_main = pinned_by_manifest && !repo_dir.failed &&
                       hub_commit(repo_dir.p, "main", main_commit, &why, NULL) == 0 &&
                       strcmp(main_commit, commit) != 0;
        if (has_main)
            ttsm__sb_addf(tried, "%shub %s@%s (pinned revision not in cache: refs/main is %.12s, "
                                 "which is not used)",
                          tried->len ? "; " : "", repo->id, rev, main_commit);
        else /* which cache was searched, said once per component */
            ttsm__sb_addf(tried, "%shub %s@%s (not in cache%s%s)", tried->len ? "; " : "",
                          repo->id, rev, *said_hub ? "" : " ", *said_hub ? "" : f->hub);
        *said_hub = 1;
        goto out;
    }
    /* Inside a snapshot: the repo subfolder, then (for the model's own
     * repos) the component's subfolder. */
    if (repo->subfolder)
        ttsm__sb_addf(&dir, "/%s", repo->subfolder);
    if (!own_repo && cs->subfolder)
        ttsm__sb_addf(&dir, "/%s", cs->subfolder);
    /* .no_exist/<commit>/<path> marks a file the hub said is absent. */
    ttsm__sb_addf(&gone, "%s/.no_exist/%s", repo_dir.p, commit);
    if (repo->subfolder)
        ttsm__sb_addf(&gone, "/%s", repo->subfolder);
    if (!own_repo && cs->subfolder)
        ttsm__sb_addf(&gone, "/%s", cs->subfolder);
    int all_gone = 1;
    for (size_t a = 0; a < n_files && all_gone; a++) {
        ttsm__sb g = {0};
        ttsm__sb_addf(&g, "%s/%s", ttsm__sb_str(&gone), files[a]);
        f->oom |= g.failed;
        all_gone = !g.failed && is_file(g.p);
        ttsm__sb_free(&g);
    }
    f->oom |= dir.failed || gone.failed;
    if (all_gone) {
        ttsm__sb_addf(tried, "%shub %s@%s (marked absent in .no_exist)", tried->len ? "; " : "",
                      repo->id, rev);
    } else if ((*found = try_dir(ttsm__sb_str(&dir), files, n_files, ms->name, tried, broken,
                                 &f->oom))) {
        int bad = check_inside(f->hub, repo_dir.p, *found, err) != 0 ? -1 : 0;
        if (!bad)
            bad = check_shards_inside(f->hub, repo_dir.p, *found, err);
        if (bad) {
            ttsm__free(*found);
            *found = NULL;
            st = bad == -2 ? ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->m->name, "out of memory",
                                       "checking shards")
                           : TTSM_ERR_FORMAT;
        }
    }
out:
    ttsm__sb_free(&gone);
    ttsm__sb_free(&dir);
    ttsm__sb_free(&repo_dir);
    return st;
}

/* Finds component `cs` of model `ms` (which may be a shared model). */
static ttsm_status find_comp(finder *f, const ttsm__model_spec *ms, int is_shared,
                             const ttsm__comp_spec *cs, ttsm__resolved_comp *rc, ttsm_error *err)
{
    ttsm__sb tried = {0};
    ttsm__sb dir = {0};
    char *found = NULL;
    const char *sub = cs->subfolder;
    const char *mfolder = ms->folder ? ms->folder : ms->name;
    const char *lfolder = ms->legacy_folder ? ms->legacy_folder : mfolder;

#define DIR_RESET() (f->oom |= dir.failed, ttsm__sb_free(&dir))
#define DIR_SUB()                                                                               \
    do {                                                                                        \
        if (sub)                                                                                \
            ttsm__sb_addf(&dir, "/%s", sub);                                                    \
    } while (0)
#define TRY_LOCAL()                                                                             \
    try_dir(ttsm__sb_str(&dir), cs->files, cs->n_files, ms->name, &tried, &rc->broken, &f->oom)

    /* 1. The explicit path names the model's folder (not for shared models:
     * an explicit path is one model, its auxiliaries still come from roots). */
    if (!found && f->cfg->model_path && !is_shared && is_dir(f->cfg->model_path)) {
        ttsm__sb_adds(&dir, f->cfg->model_path);
        DIR_SUB();
        if ((found = TRY_LOCAL()))
            rc->origin = "explicit";
        DIR_RESET();
    }
    /* 2. Models roots, ComfyUI layout; 3. legacy folders (below a models
     * root only: a TTS folder has no siblings of its own). */
    for (size_t r = 0; !found && r < f->rs->n; r++) {
        const ttsm__root *root = &f->rs->roots[r];
        model_dir(f->m, root->path, root->kind, ms, &dir);
        DIR_SUB();
        if ((found = TRY_LOCAL()))
            rc->origin = "models root";
        DIR_RESET();
        for (size_t l = 0; !found && l < f->m->n_legacy && !ms->dir &&
                           root->kind == TTSM__ROOT_MODELS; l++) {
            ttsm__sb_addf(&dir, "%s/%s/%s", root->path, f->m->legacy[l], lfolder);
            DIR_SUB();
            if ((found = TRY_LOCAL()))
                rc->origin = "legacy folder";
            DIR_RESET();
        }
    }
    /* System folders the manifest names (the Debian espeak-ng data). */
    for (size_t d = 0; !found && d < ms->n_system_dirs; d++) {
        ttsm__sb_adds(&dir, ms->system_dirs[d]);
        DIR_SUB();
        if ((found = TRY_LOCAL()))
            rc->origin = "system folder";
        DIR_RESET();
    }
#undef DIR_RESET
#undef DIR_SUB
#undef TRY_LOCAL
    /* 4. The hub cache: the component's own repo, else the model's repos in
     * order (the first is the primary, the rest are fallback repos); or
     * only the repo the config names. */
    ttsm__repo cfg_repo = {0};
    char cfg_id[TTSM_CONFIG_VALUE_MAX + 1];
    /* Only the requested model's own components: a shared or borrowed one
     * lives in its own model's repos. */
    if (!cs->repo && !is_shared)
        ttsm__config_repo(f->cfg, ms, &cfg_repo, cfg_id, sizeof cfg_id);
    /* A repo the caller names is the only one searched: its revision is
     * part of the cache key, so falling back to another repo (or to main)
     * would load files the key does not describe. */
    size_t n_repos = cs->repo || cfg_repo.id ? 1 : ms->n_repos;
    if (record_where(f, ms, cs,
                     cs->repo ? cs->repo : cfg_repo.id ? &cfg_repo : ms->n_repos ? &ms->repos[0] : NULL,
                     cs->repo != NULL, rc) != 0)
        f->oom = 1;
    int said_hub = 0;
    for (size_t i = 0; !found && f->have_hub && i < n_repos; i++) {
        const ttsm__repo *repo = cs->repo ? cs->repo : cfg_repo.id ? &cfg_repo : &ms->repos[i];
        ttsm_status st = find_in_repo(f, ms, cs, repo, cs->repo != NULL,
                                      repo != &cfg_repo && repo->revision, &found, &tried,
                                      &said_hub, &rc->broken, err);
        if (st != TTSM_OK) {
            ttsm__sb_free(&tried);
            return st;
        }
        if (found)
            rc->origin = "hub cache";
    }
    if (tried.failed || f->oom) {
        ttsm__free(found);
        ttsm__sb_free(&tried);
        ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->m->name, "out of memory", "resolving");
        return TTSM_ERR_OUT_OF_MEMORY;
    }
    if (found) {
        ttsm__free(rc->broken); /* a dead link elsewhere does not matter now */
        rc->broken = NULL;
        char loc[PATH_MAX];
        rc->path = ttsm__strdup(ttsm__path_location(found, loc, sizeof loc) == 0 ? loc : found);
        ttsm__free(found);
        if (!rc->path) {
            ttsm__sb_free(&tried);
            ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->m->name, "out of memory", "resolving");
            return TTSM_ERR_OUT_OF_MEMORY;
        }
    }
    rc->searched = ttsm__sb_take(&tried);
    return TTSM_OK;
}

static int wanted(const ttsm__comp_spec *cs, const ttsm_load_config *cfg, const ttsm__manifest *m)
{
    const char *type = cfg->model_type ? cfg->model_type : m->model_types[0];
    if (cs->n_types) {
        int ok = 0;
        for (size_t i = 0; i < cs->n_types && !ok; i++)
            ok = strcmp(cs->types[i], type) == 0;
        if (!ok)
            return 0;
    }
    if (cs->when_key) {
        const ttsm__param_spec *ps = ttsm__manifest_param(m, cs->when_key);
        const char *v = ps ? ps->def : NULL;
        for (size_t i = 0; i < cfg->n_params; i++)
            if (strcmp(cfg->params[i].key, cs->when_key) == 0)
                v = cfg->params[i].value;
        return v && strcmp(v, cs->when_value) == 0;
    }
    return 1;
}

const ttsm__comp_spec *ttsm__comp_named(const ttsm__model_spec *ms, const char *name,
                                        const ttsm_load_config *cfg, const ttsm__manifest *m)
{
    for (size_t i = 0; i < ms->n_comps; i++)
        if (strcmp(ms->comps[i].name, name) == 0 && ms->comps[i].files &&
            (!ms->comps[i].when_key || wanted(&ms->comps[i], cfg, m)))
            return &ms->comps[i];
    return NULL;
}

int ttsm__config_repo(const ttsm_load_config *cfg, const ttsm__model_spec *ms, ttsm__repo *out,
                      char *buf, size_t size)
{
    memset(out, 0, sizeof *out);
    if (!cfg->repo_id || snprintf(buf, size, "%s", cfg->repo_id) >= (int)size)
        return 0;
    char *at = strchr(buf, '@');
    if (at) {
        *at = '\0';
        out->revision = at + 1;
    }
    out->id = buf;
    /* One of the model's own repos at another revision keeps its layout. */
    for (size_t i = 0; ms && i < ms->n_repos; i++)
        if (strcmp(ms->repos[i].id, buf) == 0) {
            out->subfolder = ms->repos[i].subfolder;
            out->dataset = ms->repos[i].dataset;
            break;
        }
    return 1;
}

ttsm_status ttsm__resolve_model(const ttsm__manifest *m, const ttsm__model_spec *model,
                                const ttsm_load_config *cfg, const ttsm__roots *roots,
                                ttsm__resolution *out, ttsm_error *err)
{
    memset(out, 0, sizeof *out);
    out->manifest = m;
    out->model = model;
    out->model_type = cfg->model_type;
    out->repo_id = cfg->repo_id;
    finder f;
    memset(&f, 0, sizeof f);
    f.m = m;
    f.cfg = cfg;
    f.roots = roots;
    f.rs = &out->roots;
    ttsm_status st = ttsm__roots_collect(roots ? roots->models_dirs : NULL,
                                         roots ? roots->comfyui_dirs : NULL, &out->roots, err);
    if (st != TTSM_OK) {
        ttsm__rootset_free(&out->roots);
        return st;
    }
    f.have_hub = ttsm__hub_dir(roots, f.hub, sizeof f.hub) == 0;
    if (f.have_hub)
        memcpy(out->hub, f.hub, sizeof out->hub);

    out->comps = ttsm__calloc(model->n_comps ? model->n_comps : 1, sizeof *out->comps);
    if (!out->comps) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->name, "out of memory", "resolving");
        goto done;
    }
    for (size_t i = 0; i < model->n_comps; i++) {
        const ttsm__comp_spec *cs = &model->comps[i];
        if (!wanted(cs, cfg, m))
            continue;
        ttsm__resolved_comp *rc = &out->comps[out->n_comps++];
        rc->name = cs->name;
        rc->comp = cs;
        rc->owner = model;
        const ttsm__model_spec *src = model;
        int is_shared = 0;
        if (cs->files) {
            /* Its own files first; a borrow beside them is the fallback. */
            rc->spec = cs;
            st = find_comp(&f, model, 0, cs, rc, err);
            if (st != TTSM_OK)
                goto done;
            if (rc->path || !cs->borrow) {
                if (!rc->path && !cs->optional)
                    out->n_missing++;
                continue;
            }
        }
        if (cs->borrow) {
            src = ttsm__manifest_model(m, cs->borrow);
            rc->borrowed = 1;
            rc->from_model = cs->borrow;
        } else if (cs->shared) {
            src = ttsm__manifest_shared(m, cs->shared);
            rc->shared = is_shared = 1;
            rc->from_model = cs->shared;
        }
        const ttsm__comp_spec *spec = ttsm__comp_named(src, cs->name, cfg, m);
        char *own_searched = rc->searched;
        rc->searched = NULL;
        rc->spec = spec;
        if (src && !cs->files)
            rc->owner = src;
        if (!spec) { /* the manifest validated this; only a `when` can hide it */
            rc->searched = own_searched ? own_searched
                                        : ttsm__strdup("(no variant of this component for "
                                                       "these params)");
            rc->spec = cs->files ? cs : NULL;
            out->n_missing += !cs->optional;
            continue;
        }
        /* A borrowed component is looked for where its own model lives,
         * so the explicit path of this model does not apply to it. */
        ttsm_load_config sub = *cfg;
        if (rc->borrowed)
            sub.model_path = NULL, sub.repo_id = NULL;
        f.cfg = &sub;
        st = find_comp(&f, src, is_shared || rc->borrowed, spec, rc, err);
        f.cfg = cfg;
        if (st == TTSM_OK && own_searched) {
            /* Both places tried: the message lists them in order, and names
             * the component's own files when neither has one. */
            ttsm__sb both = {0};
            ttsm__sb_addf(&both, "%s; %s", own_searched, rc->searched ? rc->searched : "");
            ttsm__free(rc->searched);
            rc->searched = ttsm__sb_take(&both);
            ttsm__sb_free(&both);
            if (!rc->searched)
                st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->name, "out of memory", "resolving");
            if (!rc->path)
                rc->spec = cs, rc->borrowed = 0, rc->from_model = NULL, rc->owner = model;
        }
        ttsm__free(own_searched);
        if (st != TTSM_OK)
            goto done;
        if (!rc->path && !spec->optional && !cs->optional)
            out->n_missing++;
    }
done:
    if (st != TTSM_OK)
        ttsm__resolution_free(out);
    return st;
}

void ttsm__resolution_free(ttsm__resolution *r)
{
    for (size_t i = 0; r && r->comps && i < r->n_comps; i++) {
        ttsm__resolved_comp *rc = &r->comps[i];
        ttsm__free(rc->path);
        ttsm__free(rc->searched);
        ttsm__free(rc->want);
        for (size_t k = 0; rc->where && k < r->roots.n; k++)
            ttsm__free(rc->where[k]);
        ttsm__free(rc->where);
        ttsm__free(rc->broken);
        ttsm__free(rc->dl_repo);
        ttsm__free(rc->dl_revision);
        ttsm__free(rc->dl_path);
    }
    if (r) {
        ttsm__free(r->comps);
        r->comps = NULL;
        r->n_comps = 0;
        ttsm__rootset_free(&r->roots);
    }
}

/* Appends `v` to `b`, in single quotes unless it is plain. */
static void add_word(ttsm__sb *b, const char *v)
{
    int plain = *v != '\0';
    for (const char *c = v; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                strchr("-_.,:/@+=", *c) != NULL;
    if (plain) {
        ttsm__sb_adds(b, v);
        return;
    }
    ttsm__sb_adds(b, "'");
    for (const char *c = v; *c; c++) {
        if (*c == '\'')
            ttsm__sb_adds(b, "'\\''");
        else
            ttsm__sb_add(b, c, 1);
    }
    ttsm__sb_adds(b, "'");
}

void ttsm__pull_command(const ttsm__resolution *r, char *out, size_t size)
{
    ttsm__sb b = {0};
    ttsm__sb_adds(&b, "ttsm pull ");
    add_word(&b, r->manifest->name);
    /* The default model needs no --model. */
    if (!r->manifest->default_model || strcmp(r->manifest->default_model, r->model->name) != 0) {
        ttsm__sb_adds(&b, " --model ");
        add_word(&b, r->model->name);
    }
    if (r->model_type && r->manifest->n_model_types &&
        strcmp(r->model_type, r->manifest->model_types[0]) != 0) {
        ttsm__sb_adds(&b, " --type ");
        add_word(&b, r->model_type);
    }
    const char *at = r->repo_id ? strchr(r->repo_id, '@') : NULL;
    if (at && at[1]) {
        ttsm__sb_adds(&b, " --revision ");
        add_word(&b, at + 1);
    }
    ttsm__format_trunc(out, size, "%s", b.failed ? "ttsm pull" : ttsm__sb_str(&b));
    ttsm__sb_free(&b);
}

/* How to fetch a missing file from the Hub, appended to `b`: the exact
 * `ttsm pull` command (it fetches what the resolver would read, where it
 * would read it). */
static void download_hint(ttsm__sb *b, const ttsm__resolution *r, const ttsm__resolved_comp *rc)
{
    if (!rc->dl_repo)
        return;
    char cmd[160];
    ttsm__pull_command(r, cmd, sizeof cmd);
    ttsm__sb_addf(b, "; or run `%s` (or load with downloads on), which fetches %s from %s",
                  cmd, rc->dl_path, rc->dl_repo);
}

/* The first root that exists (else the first one): where to put files. */
static size_t best_root(const ttsm__resolution *r)
{
    for (size_t i = 0; i < r->roots.n; i++)
        if (r->roots.roots[i].exists)
            return i;
    return 0;
}

ttsm_status ttsm__resolution_error(const ttsm__resolution *r, const char *subject,
                                   ttsm_error *err)
{
    for (size_t i = 0; i < r->n_comps; i++) {
        const ttsm__resolved_comp *rc = &r->comps[i];
        if (rc->path || (rc->spec && rc->spec->optional))
            continue;
        const char *files = rc->want ? rc->want : "(no file for these params)";
        const char *first = rc->spec && rc->spec->n_files ? rc->spec->files[0] : NULL;
        ttsm_status st;
        ttsm__sb hint = {0};
        if (rc->broken) {
            st = ttsm__err(err, TTSM_ERR_NOT_FOUND, subject, "broken hub cache link",
                           "%s: %s, and its blob is gone", rc->name, rc->broken);
            if (rc->dl_repo) {
                char cmd[160];
                ttsm__pull_command(r, cmd, sizeof cmd);
                ttsm__sb_addf(&hint, "run `%s`: it fetches the blob of %s from %s again", cmd,
                              rc->dl_path ? rc->dl_path : files, rc->dl_repo);
            } else {
                ttsm__sb_addf(&hint, "delete that link, then put %s back", files);
            }
        } else {
            st = ttsm__err(err, TTSM_ERR_NOT_FOUND, subject, "file not found",
                           "%s%s%s%s (searched: %s)", files, rc->from_model ? " from " : "",
                           rc->from_model ? rc->from_model : "",
                           rc->borrowed ? " (borrowed)" : "",
                           rc->searched && *rc->searched
                               ? rc->searched
                               : "nowhere: no models root or hub cache");
            /* The exact place: the folder in the first models root (an
             * existing one), then the repo and file to download. */
            ttsm__sb name = {0};
            if (first)
                add_subst(&name, first, rc->owner ? rc->owner->name : r->model->name);
            if (r->roots.n && rc->where)
                ttsm__sb_addf(&hint, "put %s in %s/", ttsm__sb_str(&name),
                              rc->where[best_root(r)]);
            else if (rc->owner) {
                ttsm__sb_addf(&hint, "no models root is set: pass --models-dir DIR (or "
                                     "--comfyui) and put %s in ",
                              ttsm__sb_str(&name));
                model_dir(r->manifest, "DIR", TTSM__ROOT_MODELS, rc->owner, &hint);
                if (rc->spec && rc->spec->subfolder)
                    ttsm__sb_addf(&hint, "/%s", rc->spec->subfolder);
                ttsm__sb_adds(&hint, "/");
            }
            download_hint(&hint, r, rc);
            ttsm__sb_free(&name);
        }
        ttsm__err_hint(err, "%s", hint.failed ? "see ttsm resolve --where" : ttsm__sb_str(&hint));
        ttsm__sb_free(&hint);
        return st;
    }
    return TTSM_OK;
}
