/* path.c - the canonical location of a file, shared by model resolution
 * and the host table (both key files by where they are, not by target);
 * opening files from paths that may name a FIFO or a device. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
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

const char *ttsm__file_type_name(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
    }
}

static ttsm_status not_regular(const char *path, const char *what, unsigned mode,
                               const char *dir_advice, ttsm_error *err)
{
    if (S_ISDIR(mode))
        return ttsm__err(err, TTSM_ERR_IO, path, what, "is a directory%s%s",
                         dir_advice ? "; " : "", dir_advice ? dir_advice : "");
    return ttsm__err(err, TTSM_ERR_IO, path, what, "not a regular file: it is %s",
                     ttsm__file_type_name(mode));
}

ttsm_status ttsm__open_regular(const char *path, const char *what, const char *dir_advice,
                               int *fd_out, struct stat *sb_out, ttsm_error *err)
{
    /* Look before opening: opening a FIFO for reading blocks until a writer
     * comes, and opening a device can have effects of its own. */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return ttsm__err(err, e == ENOENT || e == ENOTDIR ? TTSM_ERR_NOT_FOUND : TTSM_ERR_IO,
                         path, e == ENOENT || e == ENOTDIR ? "file not found" : what, "%s",
                         strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return not_regular(path, what, (unsigned)sb.st_mode, dir_advice, err);
    /* O_NONBLOCK: the path may be swapped for a FIFO between the stat and
     * the open; the fstat below then refuses it without a wait. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return ttsm__err(err, e == ENOENT || e == ENOTDIR ? TTSM_ERR_NOT_FOUND : TTSM_ERR_IO,
                         path, e == ENOENT || e == ENOTDIR ? "file not found" : what, "%s",
                         strerror(e));
    }
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ttsm__err(err, TTSM_ERR_IO, path, "cannot stat", "%s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return not_regular(path, what, (unsigned)sb.st_mode, dir_advice, err);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    if (sb_out)
        *sb_out = sb;
    return TTSM_OK;
}
