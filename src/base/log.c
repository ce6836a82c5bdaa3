/* log.c - one formatted line to the caller's log callback. */
#include <stdarg.h>
#include <stdio.h>

#include "base/alloc.h"
#include "base/log.h"

void ttsm__logf(const ttsm__logger *lg, int level, const char *fmt, ...)
{
    if (!lg || !lg->fn)
        return;
    /* Most lines fit the stack buffer; one naming a deep path is formatted
     * again at its full length, and cut only if that allocation fails. */
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    char *line = NULL;
    if (n >= (int)sizeof small && (line = ttsm__malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(line, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    lg->fn(lg->user, level, line ? line : small);
    ttsm__free(line);
}
