/* path.h - file-system path helpers (path.c). */
#ifndef TTSM_BASE_PATH_H
#define TTSM_BASE_PATH_H

#include <stddef.h>
#include <sys/stat.h>

#include "ttsm.h"

/* The canonical location of a file: its folder with symlinks, "." and ".."
 * resolved, then its own name, not followed. A hub snapshot entry is a
 * symlink into blobs/; following it would lose the folder a sharded index
 * names its shards in (they sit next to the index, as symlinks too). Writes
 * `out` (PATH_MAX bytes). @return 0, or -1 when the folder does not exist
 * or the result does not fit. */
int ttsm__path_location(const char *path, char *out, size_t size);

/* "a FIFO (named pipe)", "a directory", "a character device", ... */
const char *ttsm__file_type_name(unsigned mode);

/* Opens `path` read-only (O_CLOEXEC) when it is a regular file, and never
 * waits: a FIFO, device or socket is refused before it is opened (and
 * again by fstat, with O_NONBLOCK, if it was swapped in between), so a
 * named pipe cannot hang the caller. Errors name the path and what it is:
 * TTSM_ERR_NOT_FOUND when absent, else TTSM_ERR_IO with `what` as the
 * message's rule ("cannot open"); a directory says "is a directory",
 * followed by `dir_advice` when given. `sb_out` may be NULL. */
ttsm_status ttsm__open_regular(const char *path, const char *what, const char *dir_advice,
                               int *fd_out, struct stat *sb_out, ttsm_error *err);

#endif
