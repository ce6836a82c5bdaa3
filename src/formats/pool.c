/* pool.c - opened checkpoints shared by path (pool.h). A file is keyed by
 * its location and checked by its identity on every acquire, so a file
 * renamed over, rewritten or truncated is opened again (docs/reliability.md).
 * Opens are single-flight per path and run outside the pool's lock, so a
 * slow or hung file stalls only the loads that need it. */
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "formats/pool.h"
#include "formats/table.h"

#define CONTENT_EDGE (64u << 10) /* verify_on_load: bytes hashed at each end */
#define CONTENT_HEADER_MAX (128ull << 20) /* and of the header, at most */

void ttsm__pool_init(ttsm__pool *p, ttsm_io_mode io_mode, int verify_content, ttsm__logger log)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->io_mode = io_mode;
    p->verify_content = verify_content;
    p->log = log;
}

void ttsm__pool_destroy(ttsm__pool *p)
{
    pthread_cond_destroy(&p->cond);
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

/* Where the header of file `fi` ends: the first byte of tensor data in it,
 * or its end when it holds none. */
static uint64_t header_end(const ttsm_checkpoint *ck, size_t fi)
{
    uint64_t end = ck->files[fi].size;
    for (size_t s = 0; s < ck->n_storages; s++)
        if (ck->storages[s].file_index == fi && ck->storages[s].file_offset < end)
            end = ck->storages[s].file_offset;
    return end;
}

/* Hashes `len` bytes of `fd` at `off` into `st` (pread, a buffer at a
 * time). @return 0, or -1 when the file could not be read. */
static int hash_range(XXH3_state_t *st, int fd, uint64_t off, uint64_t len, unsigned char *buf)
{
    while (len > 0) {
        size_t n = len < CONTENT_EDGE ? (size_t)len : CONTENT_EDGE;
        ssize_t got = pread(fd, buf, n, (off_t)off);
        if (got <= 0)
            return -1;
        XXH3_64bits_update(st, buf, (size_t)got);
        off += (uint64_t)got;
        len -= (uint64_t)got;
    }
    return 0;
}

/* verify_on_load: the content of the files a checkpoint reads, as far as a
 * cheap look can tell - every header (the bytes before the first tensor,
 * capped), the first and the last 64 KiB - read from the paths as they are
 * now. A same-size rewrite with its modification time put back changes
 * this value unless it touches only the middle of the tensor data. */
static uint64_t content_of(const ttsm_checkpoint *ck)
{
    XXH3_state_t *st = XXH3_createState();
    unsigned char *buf = ttsm__malloc(CONTENT_EDGE);
    uint64_t h = UINT64_MAX; /* unreadable: never equal to a real value */
    if (!st || !buf || XXH3_64bits_reset(st) != XXH_OK)
        goto out;
    for (size_t i = 0; i < ck->n_files; i++) {
        const ttsm__file *f = &ck->files[i];
        int fd = -1;
        struct stat sb;
        if (f->fd < 0 || ttsm__open_regular(f->path, "cannot open", NULL, &fd, &sb, NULL) != TTSM_OK)
            goto out;
        uint64_t size = (uint64_t)sb.st_size, head = header_end(ck, i);
        if (head > CONTENT_HEADER_MAX)
            head = CONTENT_HEADER_MAX;
        if (head < CONTENT_EDGE)
            head = CONTENT_EDGE;
        if (head > size)
            head = size;
        uint64_t tail = size - head < CONTENT_EDGE ? size - head : CONTENT_EDGE;
        XXH3_64bits_update(st, &size, sizeof size);
        int bad = hash_range(st, fd, 0, head, buf) != 0 ||
                  hash_range(st, fd, size - tail, tail, buf) != 0;
        close(fd);
        if (bad)
            goto out;
    }
    h = XXH3_64bits_digest(st);
out:
    ttsm__free(buf);
    XXH3_freeState(st);
    return h;
}

/* The identity of the files a checkpoint reads: as opened (fstat of its
 * descriptors) or as they are now on disk (stat of their paths). `top` is
 * the stat of the path the table is keyed by (an index is not among the
 * checkpoint's files once its shards are open). Called without the lock:
 * it does I/O. */
static uint64_t identity_of(const ttsm__pool *p, const ttsm_checkpoint *ck,
                            const struct stat *top, int opened)
{
    uint64_t h = identity_add(0xcbf29ce484222325ull, top, 1);
    for (size_t i = 0; i < ck->n_files; i++) {
        struct stat sb;
        int ok = opened ? ck->files[i].fd >= 0 && fstat(ck->files[i].fd, &sb) == 0
                        : stat(ck->files[i].path, &sb) == 0;
        h = identity_add(h, &sb, ok);
    }
    if (p->verify_content)
        h = (h ^ content_of(ck)) * 0x100000001b3ull;
    return h;
}

static void host_free(ttsm__host *h)
{
    ttsm_checkpoint_close(h->ck);
    ttsm__free(h->fail_err);
    ttsm__free(h->path);
    ttsm__free(h);
}

static void unlink_host(ttsm__pool *p, ttsm__host *h)
{
    for (ttsm__host **pp = &p->hosts; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    h->next = NULL;
    h->detached = 1;
}

/* Drops a reference under the lock. @return the host when it is to be
 * freed (by the caller, after unlocking: closing is not done under it). */
static ttsm__host *unref_locked(ttsm__pool *p, ttsm__host *h)
{
    if (--h->refs > 0)
        return NULL;
    if (!h->detached)
        unlink_host(p, h);
    return h;
}

/* Opens the checkpoint of a host this thread created (state OPENING),
 * outside the lock; then publishes the outcome to the threads waiting. */
static ttsm_status open_host(ttsm__pool *p, ttsm__host *h, const struct stat *sb,
                             ttsm_error *err)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = p->io_mode;
    ttsm_checkpoint *ck = NULL;
    ttsm_status st = ttsm_checkpoint_open(h->path, &o, &ck, err);
    uint64_t id = st == TTSM_OK ? identity_of(p, ck, sb, 1) : 0;
    ttsm_error *copy = NULL;
    if (st != TTSM_OK && (copy = ttsm__malloc(sizeof *copy)) != NULL) {
        if (err)
            *copy = *err;
        else
            ttsm__err(copy, st, h->path, "cannot open", "%s", ttsm_status_name(st));
    }
    pthread_mutex_lock(&p->lock);
    if (st == TTSM_OK) {
        h->ck = ck;
        h->identity = id;
        h->state = TTSM__HOST_READY;
        p->opens++;
    } else {
        /* Out of the table at once: the next acquire tries again; the
         * threads of this flight share its outcome. */
        h->state = TTSM__HOST_FAILED;
        h->fail_st = st;
        h->fail_err = copy;
        unlink_host(p, h);
    }
    pthread_cond_broadcast(&p->cond);
    ttsm__host *gone = st == TTSM_OK ? NULL : unref_locked(p, h);
    pthread_mutex_unlock(&p->lock);
    if (gone)
        host_free(gone);
    return st;
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
    for (;;) {
        pthread_mutex_lock(&p->lock);
        ttsm__host *h;
        for (h = p->hosts; h; h = h->next)
            if (strcmp(h->path, canon) == 0)
                break;
        if (!h) {
            /* This thread opens it; others wanting the path wait for it. */
            h = ttsm__calloc(1, sizeof *h);
            if (!h || !(h->path = ttsm__strdup(canon))) {
                ttsm__free(h);
                pthread_mutex_unlock(&p->lock);
                return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                                 "host table");
            }
            h->state = TTSM__HOST_OPENING;
            h->refs = 1;
            h->next = p->hosts;
            p->hosts = h;
            pthread_mutex_unlock(&p->lock);
            ttsm_status st = open_host(p, h, &sb, err);
            if (st == TTSM_OK)
                *out = h;
            return st;
        }
        h->refs++;
        while (h->state == TTSM__HOST_OPENING)
            pthread_cond_wait(&p->cond, &p->lock);
        if (h->state == TTSM__HOST_FAILED) {
            ttsm_status st = h->fail_st;
            if (err && h->fail_err)
                *err = *h->fail_err;
            else
                ttsm__err(err, st, path, "cannot open", "a concurrent open failed");
            ttsm__host *gone = unref_locked(p, h);
            pthread_mutex_unlock(&p->lock);
            if (gone)
                host_free(gone);
            return st;
        }
        pthread_mutex_unlock(&p->lock);
        /* A file replaced since it was opened is opened again: this load
         * gets the new contents, entries holding the old checkpoint keep
         * it. The check reads the disk, so it runs unlocked, holding a
         * reference; the checkpoint of a ready host never changes. */
        if (identity_of(p, h->ck, &sb, 0) == h->identity) {
            *out = h;
            return TTSM_OK;
        }
        ttsm__logf(&p->log, TTSM_LOG_INFO,
                   "%s changed on disk since it was opened: opening it again", canon);
        pthread_mutex_lock(&p->lock);
        if (!h->detached)
            unlink_host(p, h);
        ttsm__host *gone = unref_locked(p, h);
        pthread_mutex_unlock(&p->lock);
        if (gone)
            host_free(gone);
    }
}

/* Called with or without the manager's lock held (the pool's lock nests
 * inside it); the checkpoint is closed after the pool's lock is let go. */
void ttsm__pool_release(ttsm__pool *p, ttsm__host *h)
{
    pthread_mutex_lock(&p->lock);
    ttsm__host *gone = unref_locked(p, h);
    pthread_mutex_unlock(&p->lock);
    if (gone)
        host_free(gone);
}
