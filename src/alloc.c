/* alloc.c - the library's allocator wrappers and the fault-injection hook
 * used by the allocation torture tests. */
#include "alloc_internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Test-only process state: atomics, so torture runs are safe with threads. */
static atomic_long fail_at;  /* 0: never fail */
static atomic_long counter;

void ttsm__alloc_fail_after(long n)
{
    atomic_store(&counter, 0);
    atomic_store(&fail_at, n);
}

long ttsm__alloc_count(void)
{
    return atomic_load(&counter);
}

static int should_fail(void)
{
    long c = atomic_fetch_add(&counter, 1) + 1;
    long f = atomic_load(&fail_at);
    return f > 0 && c >= f;
}

void *ttsm__malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *ttsm__calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *ttsm__realloc(void *p, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(p, size ? size : 1);
}

void *ttsm__aligned_alloc(size_t align, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : 1) != 0)
        return NULL;
    return p;
}

void ttsm__free(void *p)
{
    free(p);
}

char *ttsm__strndup(const char *s, size_t n)
{
    char *d = ttsm__malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *ttsm__strdup(const char *s)
{
    return ttsm__strndup(s, strlen(s));
}

int ttsm__grow(void **buf, size_t *cap, size_t need, size_t elem, size_t max_elems)
{
    if (need <= *cap)
        return 0;
    if (need > max_elems)
        return -1;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > max_elems)
        ncap = max_elems;
    size_t bytes;
    if (__builtin_mul_overflow(ncap, elem, &bytes))
        return -1;
    void *n = ttsm__realloc(*buf, bytes);
    if (!n)
        return -1;
    *buf = n;
    *cap = ncap;
    return 0;
}
