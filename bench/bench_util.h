/* bench_util.h - shared by the bench_*.c programs: a monotonic clock, order
 * statistics of samples, JSON-lines output for bench/report.py, and dropping
 * a file from the page cache (with a residency check, so "cold" is measured,
 * not assumed). Header-only: each benchmark stays one source file. */
#ifndef TTSM_BENCH_UTIL_H
#define TTSM_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void bu_die(const char *what, const char *detail)
{
    fprintf(stderr, "bench: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static inline void *bu_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bu_die("out of memory", NULL);
    return p;
}

/* "dir/name" in a malloc'd string: paths are never cut to a fixed size. */
static inline char *bu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = bu_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int bu_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts `v` in place; q in [0,1] (nearest rank). */
static inline uint64_t bu_quantile(uint64_t *v, size_t n, double q, int sorted)
{
    if (n == 0)
        return 0;
    if (!sorted)
        qsort(v, n, sizeof *v, bu_cmp_u64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

typedef struct bu_stats {
    uint64_t min, median, p90, p99, max;
    size_t n;
} bu_stats;

static inline bu_stats bu_summarise(uint64_t *v, size_t n)
{
    bu_stats s = {0, 0, 0, 0, 0, n};
    if (n == 0)
        return s;
    qsort(v, n, sizeof *v, bu_cmp_u64);
    s.min = v[0];
    s.median = bu_quantile(v, n, 0.5, 1);
    s.p90 = bu_quantile(v, n, 0.9, 1);
    s.p99 = bu_quantile(v, n, 0.99, 1);
    s.max = v[n - 1];
    return s;
}

/* JSON lines: bu_begin("open"); bu_str("format", f); bu_u64(...); bu_end(). */
static inline void bu_begin(const char *bench)
{
    printf("{\"bench\":\"%s\"", bench);
}

static inline void bu_str(const char *key, const char *value)
{
    printf(",\"%s\":\"", key);
    for (const char *p = value ? value : ""; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static inline void bu_u64(const char *key, uint64_t v)
{
    printf(",\"%s\":%llu", key, (unsigned long long)v);
}

static inline void bu_f64(const char *key, double v)
{
    printf(",\"%s\":%.6g", key, v);
}

static inline void bu_stats_out(const char *prefix, const bu_stats *s)
{
    char k[64];
    snprintf(k, sizeof k, "%s_min_ns", prefix);
    bu_u64(k, s->min);
    snprintf(k, sizeof k, "%s_median_ns", prefix);
    bu_u64(k, s->median);
    snprintf(k, sizeof k, "%s_p90_ns", prefix);
    bu_u64(k, s->p90);
    snprintf(k, sizeof k, "%s_p99_ns", prefix);
    bu_u64(k, s->p99);
    snprintf(k, sizeof k, "%s_max_ns", prefix);
    bu_u64(k, s->max);
    snprintf(k, sizeof k, "%s_n", prefix);
    bu_u64(k, s->n);
}

static inline void bu_end(void)
{
    printf("}\n");
    fflush(stdout);
}

/* Fraction (0..1) of `path`'s pages in the page cache now, or -1. */
static inline double bu_resident(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat sb;
    double r = -1;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
        size_t len = (size_t)sb.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            size_t pages = (len + page - 1) / page;
            unsigned char *vec = bu_xmalloc(pages);
            if (mincore(m, len, vec) == 0) {
                size_t in = 0;
                for (size_t i = 0; i < pages; i++)
                    in += vec[i] & 1;
                r = (double)in / (double)pages;
            }
            free(vec);
            munmap(m, len);
        }
    }
    close(fd);
    return r;
}

/* Evicts `paths` from the page cache: the whole cache through
 * /proc/sys/vm/drop_caches when we may write it (root), else each file with
 * posix_fadvise(DONTNEED), which drops its clean pages without privileges.
 * @return "drop_caches", "fadvise" or "none" (nothing worked). */
static inline const char *bu_drop_cache(const char *const *paths, size_t n)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = write(fd, "3\n", 2);
        close(fd);
        if (w == 2)
            return "drop_caches";
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        int f = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (f < 0 || fdatasync(f) != 0 || posix_fadvise(f, 0, 0, POSIX_FADV_DONTNEED) != 0)
            ok = 0;
        if (f >= 0)
            close(f);
    }
    return ok ? "fadvise" : "none";
}

/* Reads the whole file into `buf` (at least its size) with read(). */
static inline uint64_t bu_read_all(const char *path, unsigned char *buf, uint64_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bu_die("open", path);
    uint64_t got = 0;
    for (;;) {
        size_t want = cap - got > (1u << 30) ? (1u << 30) : (size_t)(cap - got);
        if (want == 0)
            break;
        ssize_t r = read(fd, buf + got, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            bu_die("read", path);
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    close(fd);
    return got;
}

static inline uint64_t bu_file_size(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        bu_die("stat", path);
    return (uint64_t)sb.st_size;
}

#endif
