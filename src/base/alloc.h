/* alloc.h - every heap allocation of the library goes through these,
 * so tests can make the N-th allocation fail (curl-style torture) and prove
 * that each failure returns an error and leaks nothing. */
#ifndef TTSM_ALLOC_INTERNAL_H
#define TTSM_ALLOC_INTERNAL_H

#include <stddef.h>

void *ttsm__malloc(size_t size);
void *ttsm__calloc(size_t n, size_t size);
void *ttsm__realloc(void *p, size_t size);
/* Allocation aligned to `align` (a power of two >= sizeof(void *)). */
void *ttsm__aligned_alloc(size_t align, size_t size);
void ttsm__free(void *p);
char *ttsm__strdup(const char *s);
char *ttsm__strndup(const char *s, size_t n);

/* Test hook: the `n`-th allocation from now fails (1 = the next one), and
 * every one after it until reset; 0 disables. Thread-safe counters. */
void ttsm__alloc_fail_after(long n);
/* Allocations attempted since the last ttsm__alloc_fail_after() call. */
long ttsm__alloc_count(void);
/* The call site (a code address in the library: the caller of ttsm__malloc
 * and friends, of ttsm__strdup or of ttsm__grow) of the allocation the hook
 * made fail first since the last ttsm__alloc_fail_after(); NULL when none
 * failed. Torture tests count distinct sites as injection points. */
void *ttsm__alloc_fail_site(void);

/* Grows *buf (element size `elem`) to hold at least `need` elements,
 * doubling; refuses to exceed `max_elems`. @return 0, or -1 when out of
 * memory or over the cap (the buffer is then unchanged). */
int ttsm__grow(void **buf, size_t *cap, size_t need, size_t elem, size_t max_elems);

#endif
