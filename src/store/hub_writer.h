/* hub_writer.h - the tail of a download on its own thread (hub_writer.c):
 * bytes received are copied into a few large buffers, and a second thread
 * hashes and writes them, so the SHA-256 of a large file overlaps with the
 * network instead of following it. */
#ifndef TTSM_STORE_HUB_WRITER_H
#define TTSM_STORE_HUB_WRITER_H

#include <stddef.h>

#include <openssl/evp.h>

typedef struct ttsm__writer ttsm__writer;

/* Starts a writer that appends to `fd` and feeds `md` (both stay the
 * caller's; neither may be touched until ttsm__writer_flush returns).
 * @return NULL when memory or a thread cannot be had (write inline then). */
ttsm__writer *ttsm__writer_start(int fd, EVP_MD_CTX *md);
/* Queues `n` bytes. @return 0, or the errno of a write that failed earlier. */
int ttsm__writer_put(ttsm__writer *w, const char *d, size_t n);
/* Waits until every byte queued is hashed and written. @return 0 or errno. */
int ttsm__writer_flush(ttsm__writer *w);
/* Flushes, stops the thread and frees the writer. NULL is ignored. */
void ttsm__writer_stop(ttsm__writer *w);

#endif
