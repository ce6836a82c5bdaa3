/* hub_writer.c - a ring of buffers between the thread that receives a
 * download (libcurl's write callback) and one that hashes and writes it.
 * The receiver fills one buffer while the writer drains the others; a full
 * ring makes the receiver wait, so memory stays bounded (RING x BUF). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "store/hub_writer.h"

#define RING 4
#define BUF (4u << 20)

struct ttsm__writer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    EVP_MD_CTX *md;
    char *buf[RING];
    size_t len[RING];
    size_t fill, drain, full; /* the buffer being filled, the next to drain, how many are queued */
    int busy;                 /* the writer is working on buffer `drain` */
    int err, quit;
};

static int write_all(int fd, const char *d, size_t n)
{
    while (n) {
        ssize_t w = write(fd, d, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *run(void *arg)
{
    ttsm__writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->full && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->full)
            break;
        size_t i = w->drain;
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);
        int e = 0;
        if (EVP_DigestUpdate(w->md, w->buf[i], w->len[i]) != 1)
            e = ENOMEM;
        if (!e)
            e = write_all(w->fd, w->buf[i], w->len[i]);
        pthread_mutex_lock(&w->mu);
        if (e && !w->err)
            w->err = e;
        w->len[i] = 0;
        w->drain = (w->drain + 1) % RING;
        w->full--;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

ttsm__writer *ttsm__writer_start(int fd, EVP_MD_CTX *md)
{
    ttsm__writer *w = ttsm__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fd = fd;
    w->md = md;
    for (int i = 0; i < RING; i++)
        if (!(w->buf[i] = ttsm__malloc(BUF)))
            goto fail;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, run, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        goto fail;
    }
    return w;
fail:
    for (int i = 0; i < RING; i++)
        ttsm__free(w->buf[i]);
    ttsm__free(w);
    return NULL;
}

/* Hands the buffer being filled to the writer (under the lock), waiting
 * for a free one to fill next. */
static void push(ttsm__writer *w)
{
    while (w->full == RING - 1)
        pthread_cond_wait(&w->cv, &w->mu);
    w->full++;
    w->fill = (w->fill + 1) % RING;
    pthread_cond_broadcast(&w->cv);
}

int ttsm__writer_put(ttsm__writer *w, const char *d, size_t n)
{
    while (n) {
        size_t room = BUF - w->len[w->fill];
        size_t k = n < room ? n : room;
        memcpy(w->buf[w->fill] + w->len[w->fill], d, k);
        w->len[w->fill] += k;
        d += k;
        n -= k;
        if (w->len[w->fill] == BUF) {
            pthread_mutex_lock(&w->mu);
            push(w);
            int e = w->err;
            pthread_mutex_unlock(&w->mu);
            if (e)
                return e;
        }
    }
    return 0;
}

int ttsm__writer_flush(ttsm__writer *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->len[w->fill])
        push(w);
    while (w->full || w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    int e = w->err;
    pthread_mutex_unlock(&w->mu);
    return e;
}

void ttsm__writer_stop(ttsm__writer *w)
{
    if (!w)
        return;
    ttsm__writer_flush(w);
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    for (int i = 0; i < RING; i++)
        ttsm__free(w->buf[i]);
    ttsm__free(w);
}
