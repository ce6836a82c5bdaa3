/* pathwatch.c - see pathwatch.h. The canonical form of a model_path is its
 * realpath(), which depends on nothing but directory entries: the name of
 * each component in its directory, and what each symlink on the way says.
 * Each of those (directory, name) pairs is watched, so renaming, removing,
 * creating or relinking any of them is an event on the inotify descriptor,
 * queued by the kernel before the call that made the change returns; the
 * hit memo polls the descriptor (one system call) and re-resolves only when
 * something it depends on moved (docs/manager.md, "Hits"). */
#define _GNU_SOURCE
#include "cache/pathwatch.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/alloc.h"

/* What in a watched directory can change a resolution through it. */
#define DIR_EVENTS                                                                          \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |  \
     IN_ONLYDIR)
#define MAX_LINKS 40 /* as the kernel's own resolution */

/* One (watch descriptor, entry name) a resolution depends on. */
typedef struct interest {
    int wd;
    char *name; /* NULL: empty slot */
} interest;

struct ttsm__pathwatch {
    int fd;
    interest *set; /* open addressing, a power of two */
    size_t cap, n;
};

ttsm__pathwatch *ttsm__pathwatch_new(void)
{
    ttsm__pathwatch *w = ttsm__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        ttsm__free(w);
        return NULL;
    }
    return w;
}

void ttsm__pathwatch_free(ttsm__pathwatch *w)
{
    if (!w)
        return;
    close(w->fd);
    for (size_t i = 0; i < w->cap; i++)
        ttsm__free(w->set[i].name);
    ttsm__free(w->set);
    ttsm__free(w);
}

static size_t slot_of(const ttsm__pathwatch *w, int wd, const char *name, size_t len)
{
    uint64_t h = XXH3_64bits_withSeed(name, len, (uint64_t)wd);
    size_t mask = w->cap - 1, i = (size_t)h & mask;
    while (w->set[i].name &&
           !(w->set[i].wd == wd && strncmp(w->set[i].name, name, len) == 0 &&
             w->set[i].name[len] == '\0'))
        i = (i + 1) & mask;
    return i;
}

static int interested(const ttsm__pathwatch *w, int wd, const char *name)
{
    return w->cap && w->set[slot_of(w, wd, name, strlen(name))].name != NULL;
}

static int remember(ttsm__pathwatch *w, int wd, const char *name, size_t len)
{
    if ((w->n + 1) * 2 > w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        interest *old = w->set, *set = ttsm__calloc(ncap, sizeof *set);
        if (!set)
            return -1;
        size_t ocap = w->cap;
        w->set = set;
        w->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].name)
                w->set[slot_of(w, old[i].wd, old[i].name, strlen(old[i].name))] = old[i];
        ttsm__free(old);
    }
    size_t i = slot_of(w, wd, name, len);
    if (w->set[i].name)
        return 0;
    if (!(w->set[i].name = ttsm__strndup(name, len)))
        return -1;
    w->set[i].wd = wd;
    w->n++;
    return 0;
}

/* Watches entry `name` of directory `dir` ("" is the root). */
static int watch(ttsm__pathwatch *w, const char *dir, const char *name, size_t len)
{
    int wd = inotify_add_watch(w->fd, *dir ? dir : "/", DIR_EVENTS);
    return wd < 0 ? -1 : remember(w, wd, name, len);
}

/* Network file systems change under us without an event. */
static int remote(const char *path)
{
    struct statfs fs;
    if (statfs(path, &fs) != 0)
        return 1;
    switch ((unsigned long)fs.f_type) {
    case 0x6969:     /* NFS */
    case 0x517b:     /* SMB */
    case 0xff534d42: /* CIFS */
    case 0xfe534d42: /* SMB2 */
    case 0x65735546: /* FUSE */
    case 0x01021997: /* 9P */
    case 0x00c36400: /* Ceph */
    case 0x5346414f: /* AFS */
    case 0x73757245: /* Coda */
    case 0x47504653: /* GPFS */
    case 0x0bd00bd0: /* Lustre */
        return 1;
    }
    return 0;
}

int ttsm__pathwatch_add(ttsm__pathwatch *w, const char *path, char *resolved, size_t size)
{
    if (!w || !path || path[0] != '/')
        return -1;
    /* cur: the resolved prefix ("" is the root); rest: what is left. */
    char cur[PATH_MAX] = "", rest[PATH_MAX], tmp[PATH_MAX], link[PATH_MAX];
    size_t rl = strlen(path);
    if (rl >= sizeof rest)
        return -1;
    memcpy(rest, path, rl + 1);
    size_t at = 0, links = 0;
    while (rest[at]) {
        while (rest[at] == '/')
            at++;
        if (!rest[at])
            break;
        const char *c = rest + at;
        size_t cl = strcspn(c, "/");
        at += cl;
        if (cl == 1 && c[0] == '.')
            continue;
        if (cl == 2 && c[0] == '.' && c[1] == '.') {
            char *slash = strrchr(cur, '/');
            if (slash)
                *slash = '\0';
            continue;
        }
        /* Watch first, then read: a change after the read is an event. */
        if (watch(w, cur, c, cl) != 0)
            return -1;
        size_t pl = strlen(cur);
        if (pl + 1 + cl >= sizeof cur)
            return -1;
        char next[PATH_MAX];
        memcpy(next, cur, pl);
        next[pl] = '/';
        memcpy(next + pl + 1, c, cl);
        next[pl + 1 + cl] = '\0';
        struct stat sb;
        if (lstat(next, &sb) != 0)
            return -1;
        if (!S_ISLNK(sb.st_mode)) {
            memcpy(cur, next, pl + 1 + cl + 1);
            continue;
        }
        if (++links > MAX_LINKS)
            return -1;
        ssize_t ll = readlink(next, link, sizeof link - 1);
        if (ll <= 0)
            return -1;
        link[ll] = '\0';
        /* The link's target takes its place in what is left. */
        int n = snprintf(tmp, sizeof tmp, "%s%s", link, rest + at);
        if (n < 0 || (size_t)n >= sizeof tmp)
            return -1;
        memcpy(rest, tmp, (size_t)n + 1);
        at = 0;
        if (link[0] == '/')
            cur[0] = '\0';
    }
    const char *out = *cur ? cur : "/";
    if (strlen(out) >= size || remote(out))
        return -1;
    strcpy(resolved, out);
    return 0;
}

int ttsm__pathwatch_pending(const ttsm__pathwatch *w)
{
    struct pollfd p = {w->fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

int ttsm__pathwatch_drain(ttsm__pathwatch *w)
{
    _Alignas(struct inotify_event) char buf[8192];
    int changed = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF |
                            IN_UNMOUNT))
                changed = 1;
            else if (ev->len && interested(w, ev->wd, ev->name))
                changed = 1;
            p += sizeof *ev + ev->len;
        }
    }
    return changed;
}
