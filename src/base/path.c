/* path.c - the canonical location of a file, shared by model resolution
 * and the host table (both key files by where they are, not by target). */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/path.h"

int ttsm__path_location(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[PATH_MAX], real[PATH_MAX];
    size_t dl = slash ? (size_t)(slash - path) : 0;
    if (dl >= sizeof dir)
        return -1;
    if (slash) {
        memcpy(dir, path, dl);
        dir[dl] = '\0';
    }
    if (!realpath(slash ? (dl ? dir : "/") : ".", real))
        return -1;
    /* A name that is itself a folder step: resolve the whole path. */
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return realpath(path, real) && strlen(real) < size ? (strcpy(out, real), 0) : -1;
    int n = snprintf(out, size, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    return n > 0 && (size_t)n < size ? 0 : -1;
}
