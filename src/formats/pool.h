/* pool.h - opened checkpoints shared by path (pool.c). Every model that
 * names a file uses the one checkpoint opened for it; a file replaced on
 * disk since it was opened is opened again for the next user, while the
 * models holding the old one keep it. A manager owns one pool; its lock
 * guards the table, never an open, a read or a stat. */
#ifndef TTSM_FORMATS_POOL_H
#define TTSM_FORMATS_POOL_H

#include <pthread.h>

#include "ttsm.h"
#include "base/log.h"

enum { TTSM__HOST_OPENING, TTSM__HOST_READY, TTSM__HOST_FAILED };

/* One opened checkpoint (or one being opened: the first thread to want a
 * path opens it outside the lock, others wanting it wait for that one). */
typedef struct ttsm__host {
    char *path; /* canonical location (base/path.h) */
    ttsm_checkpoint *ck; /* set once READY, then never changed */
    size_t refs;
    int state;
    uint64_t identity; /* device, inode, size, mtime (+ content) when opened */
    int detached;      /* replaced on disk or failed: out of the table, freed at refs 0 */
    ttsm_status fail_st;    /* FAILED: what the open returned ... */
    ttsm_error *fail_err;   /* ... and its message, for the waiters */
    struct ttsm__host *next;
} ttsm__host;

typedef struct ttsm__pool {
    pthread_mutex_t lock; /* the table only: never held across I/O */
    pthread_cond_t cond;  /* an open finished */
    ttsm__host *hosts;
    uint64_t opens; /* checkpoints opened, for the manager's stats */
    ttsm_io_mode io_mode;
    int verify_content; /* verify_on_load: identity includes a content hash */
    ttsm__logger log;
} ttsm__pool;

void ttsm__pool_init(ttsm__pool *p, ttsm_io_mode io_mode, int verify_content, ttsm__logger log);
/* Every host must have been released. */
void ttsm__pool_destroy(ttsm__pool *p);

/* The checkpoint at `path`, opened now or shared. Opens of different paths
 * run in parallel; concurrent acquires of one path share one open and its
 * outcome. @return TTSM_OK, TTSM_ERR_NOT_FOUND, or what opening it
 * returned. Release each host once. */
ttsm_status ttsm__pool_acquire(ttsm__pool *p, const char *path, ttsm__host **out,
                               ttsm_error *err);
void ttsm__pool_release(ttsm__pool *p, ttsm__host *h);
uint64_t ttsm__pool_opens(ttsm__pool *p);

#endif
