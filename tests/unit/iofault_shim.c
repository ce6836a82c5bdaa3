/* iofault_shim.c - I/O faults by symbol interposition (open, pread, read, fwrite,
 * fsync, mkstemp) on files whose path contains a given text: errno, short counts,
 * EINTR, or a delay (a slow or hung disk). Linked into test_io_faults and the
 * concurrency tests (iofault_set()) and built as a shared library for
 * LD_PRELOAD under the CLI (TTSM_IOFAULT); spec syntax below. Test code: one
 * rule at a time, set while no other thread does I/O; delayed calls may run
 * on many threads at once (their counters are atomic, their wait a
 * condition variable that iofault_release() ends). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "iofault_shim.h"

typedef struct rule {
    char op[16];
    char path[512];
    int err;        /* errno to fail with; 0: none */
    long short_max; /* reads: at most this many bytes per call; 0: no limit */
    int eintr;
    long skip;      /* matching calls that pass before faults start */
    long long after; /* fwrite: bytes that pass before the fault */
    long delay_ms;   /* matching calls wait this long (or until released) first */
} rule;

static rule cur;
static int armed, env_read;
static atomic_long hits, calls;
static long long written;
static int eintr_flip;
static pthread_mutex_t delay_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t delay_cond = PTHREAD_COND_INITIALIZER;
static int released;
static atomic_long waiting, delayed;

static const struct {
    const char *name;
    int value;
} errnos[] = {{"EIO", EIO},       {"EACCES", EACCES}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
              {"EFBIG", EFBIG},   {"EMFILE", EMFILE}, {"ENOMEM", ENOMEM}, {"EROFS", EROFS},
              {"EPERM", EPERM},   {"EINTR", EINTR},   {"ESTALE", ESTALE}, {"ENXIO", ENXIO}};

/* The spec, comma-separated: op=open|pread|read|fwrite|fsync|mkstemp (fsync
 * covers fdatasync), path=TEXT, errno=EIO|EACCES|ENOSPC|..., short=K (reads
 * return at most K bytes), eintr (every other read fails with EINTR), skip=N
 * (N matching calls pass first), after=BYTES (fwrite: fails past BYTES),
 * delay=MS (each matching call first waits MS milliseconds, or until
 * iofault_release()). */
static int parse(const char *spec, rule *r)
{
    memset(r, 0, sizeof *r);
    char buf[1024];
    /* a spec that does not fit is refused, never cut: a cut path pattern
     * would match other files */
    if (strlen(spec) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        const char *v = eq ? eq + 1 : "";
        if (eq)
            *eq = '\0';
        if (strcmp(t, "op") == 0)
            snprintf(r->op, sizeof r->op, "%s", v);
        else if (strcmp(t, "path") == 0) {
            if (strlen(v) >= sizeof r->path)
                return -1;
            snprintf(r->path, sizeof r->path, "%s", v);
        }
        else if (strcmp(t, "short") == 0)
            r->short_max = atol(v);
        else if (strcmp(t, "skip") == 0)
            r->skip = atol(v);
        else if (strcmp(t, "after") == 0)
            r->after = atoll(v);
        else if (strcmp(t, "delay") == 0)
            r->delay_ms = atol(v);
        else if (strcmp(t, "eintr") == 0)
            r->eintr = 1;
        else if (strcmp(t, "errno") == 0) {
            for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
                if (strcmp(errnos[i].name, v) == 0)
                    r->err = errnos[i].value;
            if (!r->err)
                return -1;
        } else {
            return -1;
        }
    }
    return r->op[0] ? 0 : -1;
}

int iofault_set(const char *spec)
{
    env_read = 1;
    armed = 0;
    atomic_store(&hits, 0);
    atomic_store(&calls, 0);
    written = 0;
    eintr_flip = 0;
    pthread_mutex_lock(&delay_lock);
    released = 0;
    pthread_mutex_unlock(&delay_lock);
    atomic_store(&delayed, 0);
    if (!spec)
        return 0;
    if (parse(spec, &cur) != 0)
        return -1;
    armed = 1;
    return 0;
}

long iofault_hits(void)
{
    return atomic_load(&hits);
}

long iofault_waiting(void)
{
    return atomic_load(&waiting);
}

long iofault_delayed(void)
{
    return atomic_load(&delayed);
}

void iofault_release(void)
{
    pthread_mutex_lock(&delay_lock);
    released = 1;
    pthread_cond_broadcast(&delay_cond);
    pthread_mutex_unlock(&delay_lock);
}

/* A slow disk: waits the rule's delay, or until iofault_release(). */
static void delay_call(const rule *r)
{
    if (r->delay_ms <= 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += r->delay_ms / 1000;
    until.tv_nsec += (r->delay_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    atomic_fetch_add(&delayed, 1);
    atomic_fetch_add(&waiting, 1);
    pthread_mutex_lock(&delay_lock);
    while (!released && pthread_cond_timedwait(&delay_cond, &delay_lock, &until) == 0)
        ;
    pthread_mutex_unlock(&delay_lock);
    atomic_fetch_sub(&waiting, 1);
}

static const rule *active(const char *op)
{
    if (!env_read) {
        env_read = 1;
        const char *e = getenv("TTSM_IOFAULT");
        if (e && *e && parse(e, &cur) == 0)
            armed = 1;
    }
    return armed && strcmp(cur.op, op) == 0 ? &cur : NULL;
}

static int path_matches(const rule *r, const char *path)
{
    return path && (!r->path[0] || strstr(path, r->path) != NULL);
}

static int fd_matches(const rule *r, int fd)
{
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return 0;
    target[n] = '\0';
    return path_matches(r, target);
}

/* A matching call: 1 when this one gets the fault (after `skip` passed). */
static int fault_now(const rule *r)
{
    return atomic_fetch_add(&calls, 1) >= r->skip;
}

#define REAL(name, type)                                                                      \
    static type real_##name;                                                                  \
    if (!real_##name)                                                                         \
        real_##name = (type)dlsym(RTLD_NEXT, #name)

/* ---- open ------------------------------------------------------------- */

static int open_fault(const char *path)
{
    const rule *r = active("open");
    if (r && r->delay_ms && path_matches(r, path))
        delay_call(r);
    if (r && r->err && path_matches(r, path) && fault_now(r)) {
        atomic_fetch_add(&hits, 1);
        errno = r->err;
        return -1;
    }
    return 0;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

int open(const char *path, int flags, ...)
{
    REAL(open, open_fn);
    mode_t mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (open_fault(path))
        return -1;
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    REAL(open64, open_fn);
    mode_t mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (open_fault(path))
        return -1;
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    REAL(openat, openat_fn);
    mode_t mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (open_fault(path))
        return -1;
    return real_openat(dirfd, path, flags, mode);
}

typedef int (*mkstemp_fn)(char *);
int mkstemp(char *tmpl)
{
    REAL(mkstemp, mkstemp_fn);
    const rule *r = active("mkstemp");
    if (r && r->err && path_matches(r, tmpl) && fault_now(r)) {
        atomic_fetch_add(&hits, 1);
        errno = r->err;
        return -1;
    }
    return real_mkstemp(tmpl);
}

/* ---- reads ------------------------------------------------------------ */

/* What a read of `n` bytes from `fd` should do: -1 fail (errno set), else
 * the number of bytes to ask the real call for. */
static ssize_t read_plan(const char *op, int fd, size_t n)
{
    const rule *r = active(op);
    if (!r || !fd_matches(r, fd) || !fault_now(r))
        return (ssize_t)n;
    delay_call(r);
    if (r->eintr && (eintr_flip ^= 1)) {
        atomic_fetch_add(&hits, 1);
        errno = EINTR;
        return -1;
    }
    if (r->err) {
        atomic_fetch_add(&hits, 1);
        errno = r->err;
        return -1;
    }
    if (r->short_max > 0 && n > (size_t)r->short_max) {
        atomic_fetch_add(&hits, 1);
        return (ssize_t)r->short_max;
    }
    return (ssize_t)n;
}

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*read_fn)(int, void *, size_t);

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    REAL(pread, pread_fn);
    ssize_t k = read_plan("pread", fd, n);
    return k < 0 ? -1 : real_pread(fd, buf, (size_t)k, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    REAL(pread64, pread_fn);
    ssize_t k = read_plan("pread", fd, n);
    return k < 0 ? -1 : real_pread64(fd, buf, (size_t)k, off);
}

ssize_t read(int fd, void *buf, size_t n)
{
    REAL(read, read_fn);
    ssize_t k = read_plan("read", fd, n);
    return k < 0 ? -1 : real_read(fd, buf, (size_t)k);
}

/* ---- writes ------------------------------------------------------------ */

typedef size_t (*fwrite_fn)(const void *, size_t, size_t, FILE *);
typedef int (*fsync_fn)(int);

/* A disk that fills up: the bytes before `after` are written, the rest of
 * the call is refused with the errno, as write(2) reports a short count
 * and then ENOSPC. */
size_t fwrite(const void *p, size_t size, size_t n, FILE *fp)
{
    REAL(fwrite, fwrite_fn);
    const rule *r = active("fwrite");
    if (r && r->delay_ms && size && fd_matches(r, fileno(fp)))
        delay_call(r);
    if (!r || !r->err || size == 0 || !fd_matches(r, fileno(fp)))
        return real_fwrite(p, size, n, fp);
    long long room = r->after - written;
    size_t fit = 0;
    if (room > 0) {
        unsigned long long items = (unsigned long long)room / size;
        fit = items < n ? (size_t)items : n;
    }
    size_t done = fit ? real_fwrite(p, size, fit, fp) : 0;
    written += (long long)(done * size);
    if (done < n) {
        atomic_fetch_add(&hits, 1);
        errno = r->err;
    }
    return done;
}

static int sync_fault(const char *op, int fd)
{
    const rule *r = active(op);
    if (r && r->err && fd_matches(r, fd) && fault_now(r)) {
        atomic_fetch_add(&hits, 1);
        errno = r->err;
        return -1;
    }
    return 0;
}

int fsync(int fd)
{
    REAL(fsync, fsync_fn);
    return sync_fault("fsync", fd) ? -1 : real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync, fsync_fn);
    return sync_fault("fsync", fd) ? -1 : real_fdatasync(fd);
}
