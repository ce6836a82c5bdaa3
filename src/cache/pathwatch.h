/* pathwatch.h - knowing, without resolving a path again, that its
 * resolution may have changed (pathwatch.c): the directory entries a
 * resolution went through are watched with inotify, and the hit memo asks
 * "anything changed?" with one poll instead of a realpath walk. */
#ifndef TTSM_CACHE_PATHWATCH_H
#define TTSM_CACHE_PATHWATCH_H

#include <stddef.h>

typedef struct ttsm__pathwatch ttsm__pathwatch;

/* NULL when inotify is not available (the memo then skips paths). */
ttsm__pathwatch *ttsm__pathwatch_new(void);
void ttsm__pathwatch_free(ttsm__pathwatch *w);

/* Resolves the absolute `path` as realpath() does, watching every directory
 * entry the resolution reads (each component, each symlink and what it
 * points through) before reading it, and writes the result to `resolved`.
 * @return 0, or -1: a relative path, a path that does not resolve, a file
 * on a network file system (whose changes inotify does not see), no
 * watches left. Not thread-safe (the manager calls it under its lock). */
int ttsm__pathwatch_add(ttsm__pathwatch *w, const char *path, char *resolved, size_t size);

/* 1 when an event is waiting: a poll, no blocking. Thread-safe. */
int ttsm__pathwatch_pending(const ttsm__pathwatch *w);
/* Reads the waiting events. @return 1 when one touched a watched entry (or
 * the queue overflowed), 0 otherwise. Not thread-safe. */
int ttsm__pathwatch_drain(ttsm__pathwatch *w);

#endif
