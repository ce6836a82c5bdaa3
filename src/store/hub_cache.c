/* hub_cache.c - writes and prunes the hub cache in huggingface_hub's
 * layout: <cache>/<models|datasets>--org--name/{refs,blobs,snapshots,
 * .no_exist} and <cache>/.locks/<folder>/. Every name comes through
 * ttsm__hub_path_ok() first, and every change lands by a rename, so a
 * reader never sees half of one. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "base/text.h"
#include "store/hub_cache.h"

#define WALK_DEPTH_MAX 64

int ttsm__hub_is_commit(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 40;
}

int ttsm__hub_repo_id_ok(const char *id)
{
    size_t n = strlen(id), slashes = 0;
    if (n == 0 || n > 96 || strstr(id, "--") || strstr(id, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (c == '/') {
            if (++slashes > 1 || i == 0 || i + 1 == n)
                return 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return id[0] != '.' && id[0] != '-' && id[n - 1] != '.' && id[n - 1] != '-';
}


int ttsm__hub_path_ok(const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n > TTSM__HUB_PATH_MAX || path[0] == '/')
        return 0;
    if (ttsm__utf8_check((const unsigned char *)path, n) != n)
        return 0;
    const char *seg = path;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t l = end ? (size_t)(end - seg) : strlen(seg);
        if (l == 0 || l > 255 || (l == 1 && seg[0] == '.') ||
            (l == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
                return 0;
        if (!end)
            return 1;
        seg = end + 1;
    }
}

int ttsm__hub_folder(const ttsm__hub_repo *repo, char *out, size_t size)
{
    static const char *const prefix[] = {"models", "datasets", "spaces"};
    if (repo->kind < 0 || repo->kind > 2 || !ttsm__hub_repo_id_ok(repo->id))
        return -1;
    size_t o = 0;
    int n = snprintf(out, size, "%s--", prefix[repo->kind]);
    if (n < 0 || (size_t)n >= size)
        return -1;
    o = (size_t)n;
    for (const char *c = repo->id; *c; c++) {
        if (o + 3 >= size)
            return -1;
        if (*c == '/') {
            out[o++] = '-';
            out[o++] = '-';
        } else {
            out[o++] = *c;
        }
    }
    out[o] = '\0';
    return 0;
}

int ttsm__hub_repo_dir(const char *cache, const ttsm__hub_repo *repo, char *out, size_t size)
{
    char folder[256];
    if (ttsm__hub_folder(repo, folder, sizeof folder) != 0)
        return -1;
    int n = snprintf(out, size, "%s/%s", cache, folder);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int ttsm__hub_locate(const char *hub_real, const char *path, char *folder, size_t fsize,
                     char commit[41], const char **rest)
{
    size_t hl = strlen(hub_real);
    if (!hl || strncmp(path, hub_real, hl) != 0 || path[hl] != '/')
        return -1;
    const char *a = path + hl + 1, *s1 = strchr(a, '/');
    if (!s1 || (size_t)(s1 - a) >= fsize || strncmp(s1, "/snapshots/", 11) != 0)
        return -1;
    const char *c = s1 + 11, *s2 = strchr(c, '/');
    if (!s2 || s2 - c != 40)
        return -1;
    memcpy(folder, a, (size_t)(s1 - a));
    folder[s1 - a] = '\0';
    memcpy(commit, c, 40);
    commit[40] = '\0';
    if (!ttsm__hub_is_commit(commit))
        return -1;
    *rest = s2 + 1;
    return 0;
}

int ttsm__hub_folder_repo(const char *folder, ttsm__hub_repo *out, char *idbuf, size_t size)
{
    static const char *const prefix[] = {"models--", "datasets--", "spaces--"};
    for (int k = 0; k < 3; k++) {
        size_t pl = strlen(prefix[k]);
        if (strncmp(folder, prefix[k], pl) != 0)
            continue;
        const char *id = folder + pl, *sep = strstr(id, "--");
        int n = sep ? snprintf(idbuf, size, "%.*s/%s", (int)(sep - id), id, sep + 2)
                    : snprintf(idbuf, size, "%s", id);
        if (n <= 0 || (size_t)n >= size || !ttsm__hub_repo_id_ok(idbuf))
            return -1;
        out->id = idbuf;
        out->kind = k;
        return 0;
    }
    return -1;
}

int ttsm__mkdirs(const char *dir)
{
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        p[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

void ttsm__random_hex(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[8];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* No entropy source: the name only has to differ from its neighbours. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                     ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)out;
        memcpy(b, &v, sizeof b);
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[16] = '\0';
}

/* The folder part of `path` (everything before the last '/'), in `out`. */
static void dir_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s", path);
    char *s = strrchr(out, '/');
    if (s)
        *s = '\0';
}

int ttsm__hub_read_ref(const char *repo_dir, const char *rev, char commit[41])
{
    if (!ttsm__hub_path_ok(rev))
        return -1;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev) >= (int)sizeof path)
        return 1;
    int fd;
    ttsm_status st = ttsm__open_regular(path, "cannot read ref", NULL, &fd, NULL, NULL);
    if (st == TTSM_ERR_NOT_FOUND)
        return 1;
    if (st != TTSM_OK)
        return -1; /* a FIFO or a folder where the ref goes: refused, never waited on */
    char buf[64];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    size_t n = got > 0 ? (size_t)got : 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (!ttsm__hub_is_commit(buf))
        return -1;
    memcpy(commit, buf, 41);
    return 0;
}

/* Writes `data` to `path` through a temporary file in the same folder. */
static int write_atomic(const char *path, const char *data, size_t n)
{
    char dir[PATH_MAX], tmp[PATH_MAX], rnd[17];
    dir_of(path, dir, sizeof dir);
    ttsm__random_hex(rnd);
    const char *base = strrchr(path, '/');
    if (snprintf(tmp, sizeof tmp, "%s/.%s.%s.tmp", dir, base ? base + 1 : path, rnd) >=
        (int)sizeof tmp)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, n);
    if (close(fd) != 0 || w != (ssize_t)n || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    return 0;
}

ttsm_status ttsm__hub_write_ref(const char *repo_dir, const char *rev, const char *commit,
                                ttsm_error *err)
{
    if (!ttsm__hub_path_ok(rev) || !ttsm__hub_is_commit(commit))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo_dir, "invalid ref",
                         "revision names must stay inside refs/ and commits have 40 digits");
    if (ttsm__hub_is_commit(rev))
        return TTSM_OK; /* a commit names itself: no ref */
    char path[PATH_MAX], dir[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev) >= (int)sizeof path)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo_dir, "path too long", "refs/%s", rev);
    dir_of(path, dir, sizeof dir);
    if (ttsm__mkdirs(dir) != 0 || write_atomic(path, commit, 40) != 0)
        return ttsm__err(err, TTSM_ERR_IO, path, "cannot write ref", "%s", strerror(errno));
    return TTSM_OK;
}

ttsm_status ttsm__hub_link(const char *repo_dir, const char *commit, const char *path,
                           const char *etag, ttsm_error *err)
{
    if (!ttsm__hub_path_ok(path) || !ttsm__hub_is_commit(commit) || !ttsm__hub_path_ok(etag) ||
        strchr(etag, '/'))
        return ttsm__err(err, TTSM_ERR_FORMAT, repo_dir, "unsafe snapshot entry",
                         "\"%.200s\" would leave the snapshot folder", path);
    char p[PATH_MAX], dir[PATH_MAX], target[PATH_MAX], tmp[PATH_MAX], rnd[17];
    if (snprintf(p, sizeof p, "%s/snapshots/%s/%s", repo_dir, commit, path) >= (int)sizeof p)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo_dir, "path too long", "%s", path);
    /* ../../blobs/<etag> from snapshots/<commit>/, one more ../ per folder. */
    size_t o = 0;
    target[0] = '\0';
    for (const char *c = path; *c; c++)
        if (*c == '/')
            o += (size_t)snprintf(target + o, sizeof target - o, "../");
    snprintf(target + o, sizeof target - o, "../../blobs/%s", etag);
    char have[PATH_MAX];
    ssize_t hl = readlink(p, have, sizeof have - 1);
    if (hl >= 0) {
        have[hl] = '\0';
        if (strcmp(have, target) == 0)
            return TTSM_OK;
    }
    dir_of(p, dir, sizeof dir);
    ttsm__random_hex(rnd);
    const char *base = strrchr(p, '/') + 1;
    if (snprintf(tmp, sizeof tmp, "%s/.%s.%s.tmp", dir, base, rnd) >= (int)sizeof tmp)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo_dir, "path too long", "%s", path);
    if (ttsm__mkdirs(dir) != 0)
        return ttsm__err(err, TTSM_ERR_IO, dir, "cannot create folder", "%s", strerror(errno));
    if (symlink(target, tmp) != 0)
        return ttsm__err(err, TTSM_ERR_IO, tmp, "cannot create link", "%s", strerror(errno));
    if (rename(tmp, p) != 0) {
        int e = errno;
        unlink(tmp);
        return ttsm__err(err, TTSM_ERR_IO, p, "cannot place link", "%s", strerror(e));
    }
    return TTSM_OK;
}

ttsm_status ttsm__hub_mark_absent(const char *repo_dir, const char *commit, const char *path,
                                  ttsm_error *err)
{
    if (!ttsm__hub_path_ok(path) || !ttsm__hub_is_commit(commit))
        return ttsm__err(err, TTSM_ERR_FORMAT, repo_dir, "unsafe marker",
                         "\"%.200s\" would leave the .no_exist folder", path);
    char p[PATH_MAX], dir[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/.no_exist/%s/%s", repo_dir, commit, path) >= (int)sizeof p)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo_dir, "path too long", "%s", path);
    dir_of(p, dir, sizeof dir);
    int fd = ttsm__mkdirs(dir) == 0 ? open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd < 0)
        return ttsm__err(err, TTSM_ERR_IO, p, "cannot write marker", "%s", strerror(errno));
    close(fd);
    return TTSM_OK;
}

int ttsm__hub_marked_absent(const char *repo_dir, const char *commit, const char *path)
{
    char p[PATH_MAX];
    struct stat sb;
    return ttsm__hub_path_ok(path) &&
           snprintf(p, sizeof p, "%s/.no_exist/%s/%s", repo_dir, commit, path) < (int)sizeof p &&
           stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---- removal ------------------------------------------------------------- */

typedef struct strs {
    char **v;
    size_t n, cap;
    int failed;
} strs;

static void strs_add(strs *s, const char *p)
{
    char *c = ttsm__strdup(p);
    if (!c || ttsm__grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v, SIZE_MAX / 16) != 0) {
        ttsm__free(c);
        s->failed = 1;
        return;
    }
    s->v[s->n++] = c;
}

static int strs_has(const strs *s, const char *p)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], p) == 0)
            return 1;
    return 0;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        ttsm__free(s->v[i]);
    ttsm__free(s->v);
    memset(s, 0, sizeof *s);
}

/* Every entry below `dir` that is not a folder: links record the blob
 * they point at in `blobs`; `skip` are entries being removed. @return the
 * count of entries that stay. */
static size_t walk(const char *dir, int depth, const strs *skip, strs *blobs)
{
    DIR *d = depth < WALK_DEPTH_MAX ? opendir(dir) : NULL;
    size_t count = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        struct stat sb;
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p || lstat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            count += walk(p, depth + 1, skip, blobs);
            continue;
        }
        if (strs_has(skip, p))
            continue;
        count++;
        char t[PATH_MAX];
        ssize_t n = S_ISLNK(sb.st_mode) ? readlink(p, t, sizeof t - 1) : -1;
        if (n > 0) {
            t[n] = '\0';
            const char *b = strrchr(t, '/');
            strs_add(blobs, b ? b + 1 : t);
        }
    }
    if (d)
        closedir(d);
    return count;
}

/* Removes empty folders from `dir` up to (not including) `stop`. */
static void prune_up(const char *dir, const char *stop)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    size_t sl = strlen(stop);
    while (strlen(p) > sl && strncmp(p, stop, sl) == 0 && rmdir(p) == 0) {
        char *s = strrchr(p, '/');
        if (!s)
            break;
        *s = '\0';
    }
}

/* rm -r of a folder inside the cache (no link is followed). */
static void remove_tree(const char *dir, int depth)
{
    DIR *d = depth < WALK_DEPTH_MAX ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        struct stat sb;
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p || lstat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            remove_tree(p, depth + 1);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int push(char ***v, size_t *n, const char *p)
{
    char *c = ttsm__strdup(p);
    char **nv = c ? ttsm__realloc(*v, (*n + 1) * sizeof **v) : NULL;
    if (!nv) {
        ttsm__free(c);
        return -1;
    }
    nv[(*n)++] = c;
    *v = nv;
    return 0;
}

static int add_blob(ttsm__hub_removal *out, const char *path, uint64_t bytes)
{
    uint64_t *nb = ttsm__realloc(out->blob_bytes, (out->n_blobs + 1) * sizeof *nb);
    if (!nb)
        return -1;
    out->blob_bytes = nb;
    nb[out->n_blobs] = bytes;
    if (push(&out->blobs, &out->n_blobs, path) != 0)
        return -1;
    out->freed += bytes;
    return 0;
}

ttsm_status ttsm__hub_remove(const char *cache, const ttsm__hub_repo *repo,
                             const char *const *paths, size_t n_paths, int dry_run,
                             ttsm__hub_removal *out, ttsm_error *err)
{
    char repo_dir[PATH_MAX], snaps[PATH_MAX], blobs_dir[PATH_MAX];
    if (ttsm__hub_repo_dir(cache, repo, repo_dir, sizeof repo_dir) != 0)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo->id, "invalid repo id", "%s",
                         repo->id);
    if (snprintf(snaps, sizeof snaps, "%s/snapshots", repo_dir) >= (int)sizeof snaps ||
        snprintf(blobs_dir, sizeof blobs_dir, "%s/blobs", repo_dir) >= (int)sizeof blobs_dir)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo->id, "path too long", "%s",
                         repo_dir);
    for (size_t i = 0; i < n_paths; i++)
        if (!ttsm__hub_path_ok(paths[i]))
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo->id, "unsafe path",
                             "\"%.200s\" is not a path inside the repository", paths[i]);
    strs gone = {0}, kept = {0};
    int oom = 0;
    /* 1. The model's entries in every snapshot. */
    DIR *d = opendir(snaps);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!ttsm__hub_is_commit(de->d_name))
            continue;
        for (size_t i = 0; i < n_paths; i++) {
            char p[PATH_MAX];
            struct stat sb;
            if (snprintf(p, sizeof p, "%s/%s/%s", snaps, de->d_name, paths[i]) >= (int)sizeof p ||
                lstat(p, &sb) != 0 || S_ISDIR(sb.st_mode))
                continue;
            strs_add(&gone, p);
        }
    }
    if (d)
        closedir(d);
    /* 2. What every other entry still references. */
    size_t staying = walk(snaps, 0, &gone, &kept);
    oom |= gone.failed || kept.failed;
    if (oom)
        goto nomem;
    strs mine = {0}; /* the blobs the removed entries point at */
    for (size_t i = 0; i < gone.n; i++) {
        char t[PATH_MAX];
        ssize_t n = readlink(gone.v[i], t, sizeof t - 1);
        if (n > 0) {
            t[n] = '\0';
            const char *b = strrchr(t, '/');
            strs_add(&mine, b ? b + 1 : t);
        }
        if (push(&out->links, &out->n_links, gone.v[i]) != 0)
            oom = 1;
        if (!dry_run) {
            unlink(gone.v[i]);
            char dir[PATH_MAX];
            dir_of(gone.v[i], dir, sizeof dir);
            prune_up(dir, snaps);
        }
    }
    /* 3. Of those blobs, the ones no other entry references. Blobs that no
     * removed entry named are left alone: a pull running now may have just
     * put one there. */
    for (size_t i = 0; i < mine.n && !oom; i++) {
        if (strs_has(&kept, mine.v[i]) || !ttsm__hub_path_ok(mine.v[i]))
            continue;
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++)
            dup = strcmp(mine.v[k], mine.v[i]) == 0;
        char p[PATH_MAX];
        struct stat sb;
        if (dup || snprintf(p, sizeof p, "%s/%s", blobs_dir, mine.v[i]) >= (int)sizeof p ||
            lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (add_blob(out, p, (uint64_t)sb.st_size) != 0)
            oom = 1;
        else if (!dry_run)
            unlink(p);
    }
    oom |= mine.failed;
    strs_free(&mine);
    if (oom)
        goto nomem;
    /* 4. A folder with nothing left goes whole. */
    if (staying == 0 && gone.n > 0) {
        out->repo_removed = 1;
        if (!dry_run) {
            char locks[PATH_MAX], folder[256];
            remove_tree(repo_dir, 0);
            if (ttsm__hub_folder(repo, folder, sizeof folder) == 0 &&
                snprintf(locks, sizeof locks, "%s/.locks/%s", cache, folder) < (int)sizeof locks)
                remove_tree(locks, 0);
        }
    }
    strs_free(&gone);
    strs_free(&kept);
    return TTSM_OK;
nomem:
    strs_free(&gone);
    strs_free(&kept);
    return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo->id, "out of memory", "removing");
}

void ttsm__hub_removal_free(ttsm__hub_removal *r)
{
    for (size_t i = 0; i < r->n_links; i++)
        ttsm__free(r->links[i]);
    for (size_t i = 0; i < r->n_blobs; i++)
        ttsm__free(r->blobs[i]);
    ttsm__free(r->links);
    ttsm__free(r->blobs);
    ttsm__free(r->blob_bytes);
    memset(r, 0, sizeof *r);
}
