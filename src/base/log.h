/* log.h - the library never prints: it reports through the caller's log
 * callback (log.c). A logger is that callback and its user pointer. */
#ifndef TTSM_BASE_LOG_H
#define TTSM_BASE_LOG_H

#include "ttsm.h"
#include "base/error.h"

typedef struct ttsm__logger {
    ttsm_log_fn fn; /* NULL: nothing is logged */
    void *user;
} ttsm__logger;

/* Formats one line, whole however long, and hands it to the callback. */
void ttsm__logf(const ttsm__logger *lg, int level, const char *fmt, ...) TTSM__PRINTF(3, 4);

#endif
