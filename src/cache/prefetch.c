/* prefetch.c - the `prefetch` load option: once a model is admitted, a
 * background thread asks the kernel to read its mapped checkpoint files
 * ahead (MADV_WILLNEED) and maps their pages (MADV_POPULATE_READ, or one read
 * per page where the kernel has no such call), so that a first pass over the
 * weights finds them in memory instead of waiting on a page fault per page.
 * Read mode and device copies already hold their bytes: nothing to do. The
 * thread holds a model reference until it is done (docs/manager.md). */
#define _GNU_SOURCE
#include "cache/prefetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "formats/table.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

/* A step of the populate pass: small enough that the first pass over the
 * weights, running at the same time, follows closely behind. */
#define STEP ((size_t)8 << 20)

struct ttsm__prefetch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;       /* the pass is over and its model reference dropped */
    uint64_t bytes; /* bytes brought in (the mapped ranges) */
    ttsm_model *model;
    void (*release)(ttsm_model *);
    /* The model's and the thread's: the thread signals `done` after its
     * model reference is gone, which may have freed the model. */
    _Atomic int refs;
};

static void unref(struct ttsm__prefetch *pf)
{
    if (atomic_fetch_sub(&pf->refs, 1) != 1)
        return;
    pthread_cond_destroy(&pf->cond);
    pthread_mutex_destroy(&pf->lock);
    ttsm__free(pf);
}

static void populate(unsigned char *p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~((uintptr_t)page - 1);
    size_t len = (size_t)((uintptr_t)p + n - a);
    /* Start reading the whole range at once: large requests, queued ahead. */
    madvise((void *)a, len, MADV_WILLNEED);
    for (size_t at = 0; at < len; at += STEP) {
        size_t k = len - at < STEP ? len - at : STEP;
        if (madvise((void *)(a + at), k, MADV_POPULATE_READ) == 0)
            continue;
        /* An older kernel: one read per page maps it just the same. */
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < k; i += (size_t)page)
            sink ^= ((volatile unsigned char *)(a + at))[i];
        (void)sink;
    }
}

static void *run(void *arg)
{
    struct ttsm__prefetch *pf = arg;
    ttsm_model *m = pf->model;
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->n_comps; i++) {
        const ttsm__component *c = &m->comps[i];
        if (!c->host || !m->backend.host_visible)
            continue;
        const ttsm_checkpoint *ck = c->host->ck;
        for (size_t f = 0; f < ck->n_files; f++)
            if (ck->files[f].map && ck->files[f].map_len) {
                populate(ck->files[f].map, ck->files[f].map_len);
                bytes += ck->files[f].map_len;
            }
    }
    /* The reference goes first, so that a caller back from
     * ttsm_model_prefetch_wait() holds the last word on the model: its
     * release and a manager destroy then unmap the files at once. */
    pf->release(m);
    pthread_mutex_lock(&pf->lock);
    pf->bytes = bytes;
    pf->done = 1;
    pthread_cond_broadcast(&pf->cond);
    pthread_mutex_unlock(&pf->lock);
    unref(pf);
    return NULL;
}

ttsm_status ttsm__prefetch_start(ttsm_model *model, void (*release)(ttsm_model *), ttsm_error *err)
{
    struct ttsm__prefetch *pf = atomic_load(&model->prefetch) ? NULL : ttsm__calloc(1, sizeof *pf);
    if (!pf) {
        int started = atomic_load(&model->prefetch) != NULL;
        release(model);
        return started ? TTSM_OK
                       : ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, model->engine, "out of memory",
                                   "starting a prefetch");
    }
    pthread_mutex_init(&pf->lock, NULL);
    pthread_cond_init(&pf->cond, NULL);
    pf->model = model;
    pf->release = release;
    atomic_init(&pf->refs, 2);
    struct ttsm__prefetch *none = NULL;
    if (!atomic_compare_exchange_strong(&model->prefetch, &none, pf)) {
        pthread_cond_destroy(&pf->cond);
        pthread_mutex_destroy(&pf->lock);
        ttsm__free(pf);
        release(model);
        return TTSM_OK; /* another thread started it */
    }
    pthread_attr_t attr;
    pthread_t t;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, run, pf);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        pthread_mutex_lock(&pf->lock);
        pf->done = 1; /* nothing runs: waiters return at once */
        pthread_mutex_unlock(&pf->lock);
        unref(pf); /* the thread's */
        release(model);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, model->engine, "cannot prefetch",
                         "no thread could be started");
    }
    return TTSM_OK;
}

uint64_t ttsm_model_prefetch_wait(ttsm_model *model)
{
    struct ttsm__prefetch *pf = model ? atomic_load(&model->prefetch) : NULL;
    if (!pf)
        return 0;
    pthread_mutex_lock(&pf->lock);
    while (!pf->done)
        pthread_cond_wait(&pf->cond, &pf->lock);
    uint64_t b = pf->bytes;
    pthread_mutex_unlock(&pf->lock);
    return b;
}

void ttsm__prefetch_forget(ttsm_model *m)
{
    struct ttsm__prefetch *pf = atomic_exchange(&m->prefetch, NULL);
    if (pf)
        unref(pf); /* the thread may still be signalling */
}
