/* log.c - one formatted line to the caller's log callback. */
#include <stdarg.h>
#include <stdio.h>

#include "base/log.h"

void ttsm__logf(const ttsm__logger *lg, int level, const char *fmt, ...)
{
    if (!lg || !lg->fn)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lg->fn(lg->user, level, buf);
}
