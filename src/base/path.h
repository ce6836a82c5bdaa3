/* path.h - file-system path helpers (path.c). */
#ifndef TTSM_BASE_PATH_H
#define TTSM_BASE_PATH_H

#include <stddef.h>

/* The canonical location of a file: its folder with symlinks, "." and ".."
 * resolved, then its own name, not followed. A hub snapshot entry is a
 * symlink into blobs/; following it would lose the folder a sharded index
 * names its shards in (they sit next to the index, as symlinks too). Writes
 * `out` (PATH_MAX bytes). @return 0, or -1 when the folder does not exist
 * or the result does not fit. */
int ttsm__path_location(const char *path, char *out, size_t size);

#endif
