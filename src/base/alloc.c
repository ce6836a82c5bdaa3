/* alloc.c - the library's allocator wrappers and the fault-injection hook
 * used by the allocation torture tests: the N-th allocation fails, and the
 * call site of the first failure is recorded so a torture run can count the
 * distinct injection points it reached. */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Test-only process state: atomics, so torture runs are safe with threads. */
static atomic_long fail_at;  /* 0: never fail */
static atomic_long counter;
static _Atomic(void *) fail_site; /* return address of the first injected failure */

void ttsm__alloc_fail_after(long n)
{
    atomic_store(&counter, 0);
    atomic_store(&fail_site, NULL);
    atomic_store(&fail_at, n);
}

long ttsm__alloc_count(void)
{
    return atomic_load(&counter);
}

void *ttsm__alloc_fail_site(void)
{
    return atomic_load(&fail_site);
}

/* `site` is the caller's return address: which allocation in the library
 * this is, for the torture tests' count of distinct injection points. */
static int should_fail(void *site)
{
    long c = atomic_fetch_add(&counter, 1) + 1;
    long f = atomic_load(&fail_at);
    if (f <= 0 || c < f)
        return 0;
    if (c == f)
        atomic_store(&fail_site, site);
    return 1;
}

#define SITE() __builtin_return_address(0)

static void *malloc_at(size_t size, void *site)
{
    if (should_fail(site))
        return NULL;
    return malloc(size ? size : 1);
}

static void *realloc_at(void *p, size_t size, void *site)
{
    if (should_fail(site))
        return NULL;
    return realloc(p, size ? size : 1);
}

void *ttsm__malloc(size_t size)
{
    return malloc_at(size, SITE());
}

void *ttsm__calloc(size_t n, size_t size)
{
    if (should_fail(SITE()))
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *ttsm__realloc(void *p, size_t size)
{
    return realloc_at(p, size, SITE());
}

void *ttsm__aligned_alloc(size_t align, size_t size)
{
    if (should_fail(SITE()))
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

static char *strndup_at(const char *s, size_t n, void *site)
{
    char *d = malloc_at(n + 1, site);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *ttsm__strndup(const char *s, size_t n)
{
    return strndup_at(s, n, SITE());
}

char *ttsm__strdup(const char *s)
{
    return strndup_at(s, strlen(s), SITE());
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
    void *n = realloc_at(*buf, bytes, SITE());
    if (!n)
        return -1;
    *buf = n;
    *cap = ncap;
    return 0;
}
