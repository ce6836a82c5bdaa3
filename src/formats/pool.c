/* pool.c - opened checkpoints shared by path (pool.h). A file is keyed by
 * its location and checked by its identity on every acquire, so a file
 * renamed over, rewritten or truncated is opened again (docs/reliability.md). */
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "formats/pool.h"
#include "formats/table.h"

void ttsm__pool_init(ttsm__pool *p, ttsm_io_mode io_mode, ttsm__logger log)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->io_mode = io_mode;
    p->log = log;
}

void ttsm__pool_destroy(ttsm__pool *p)
{
    pthread_mutex_destroy(&p->lock);
}

uint64_t ttsm__pool_opens(ttsm__pool *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t n = p->opens;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* Folds what identifies a file's contents - device, inode, size and
 * modification time - into `h`. A file renamed over, rewritten or
 * truncated since gives another value (docs/reliability.md). */
static uint64_t identity_add(uint64_t h, const struct stat *sb, int ok)
{
    uint64_t v[5] = {ok ? (uint64_t)sb->st_dev : UINT64_MAX, ok ? (uint64_t)sb->st_ino : 0,
                     ok ? (uint64_t)sb->st_size : 0, ok ? (uint64_t)sb->st_mtim.tv_sec : 0,
                     ok ? (uint64_t)sb->st_mtim.tv_nsec : 0};
    for (int i = 0; i < 5; i++)
        h = (h ^ v[i]) * 0x100000001b3ull;
    return h;
}

/* The identity of the files a checkpoint reads: as opened (fstat of its
 * descriptors) or as they are now on disk (stat of their paths). `top` is
 * the stat of the path the table is keyed by (an index is not among the
 * checkpoint's files once its shards are open). */
static uint64_t identity_of(const ttsm_checkpoint *ck, const struct stat *top, int opened)
{
    uint64_t h = identity_add(0xcbf29ce484222325ull, top, 1);
    for (size_t i = 0; i < ck->n_files; i++) {
        struct stat sb;
        int ok = opened ? ck->files[i].fd >= 0 && fstat(ck->files[i].fd, &sb) == 0
                        : stat(ck->files[i].path, &sb) == 0;
        h = identity_add(h, &sb, ok);
    }
    return h;
}

ttsm_status ttsm__pool_acquire(ttsm__pool *p, const char *path, ttsm__host **out,
                               ttsm_error *err)
{
    /* Keyed by location, not by symlink target: a sharded index in a hub
     * snapshot finds its shards next to the snapshot entry, not in blobs/. */
    char canon[PATH_MAX];
    struct stat sb;
    if (stat(path, &sb) != 0 || ttsm__path_location(path, canon, sizeof canon) != 0)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, path, "file not found", "no such file");
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&p->lock);
    ttsm__host *h, **pp;
    for (pp = &p->hosts; (h = *pp) != NULL; pp = &h->next)
        if (strcmp(h->path, canon) == 0)
            break;
    /* A file replaced since it was opened is opened again: this load gets
     * the new contents, entries holding the old checkpoint keep it. */
    if (h && identity_of(h->ck, &sb, 0) != h->identity) {
        ttsm__logf(&p->log, TTSM_LOG_INFO, "%s changed on disk since it was opened: opening it again",
                   canon);
        *pp = h->next;
        h->next = NULL;
        h->detached = 1;
        h = NULL;
    }
    if (h) {
        h->refs++;
    } else {
        h = ttsm__calloc(1, sizeof *h);
        if (!h || !(h->path = ttsm__strdup(canon))) {
            ttsm__free(h);
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "host table");
            goto out;
        }
        ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
        o.io_mode = p->io_mode;
        st = ttsm_checkpoint_open(canon, &o, &h->ck, err);
        if (st != TTSM_OK) {
            ttsm__free(h->path);
            ttsm__free(h);
            goto out;
        }
        h->refs = 1;
        h->identity = identity_of(h->ck, &sb, 1);
        h->next = p->hosts;
        p->hosts = h;
        p->opens++;
    }
    *out = h;
out:
    pthread_mutex_unlock(&p->lock);
    return st;
}

/* Called with or without the manager's lock held (the pool's lock nests
 * inside it). */
void ttsm__pool_release(ttsm__pool *p, ttsm__host *h)
{
    pthread_mutex_lock(&p->lock);
    if (--h->refs == 0) {
        ttsm__host **pp = &p->hosts;
        while (!h->detached && *pp != h)
            pp = &(*pp)->next;
        if (!h->detached)
            *pp = h->next;
        ttsm_checkpoint_close(h->ck);
        ttsm__free(h->path);
        ttsm__free(h);
    }
    pthread_mutex_unlock(&p->lock);
}
