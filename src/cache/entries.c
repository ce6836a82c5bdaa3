/* entries.c - the cache's entries as a collection (entries.h): the LRU
 * list, the key index and the aliases, all under the manager's lock. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "cache/entries.h"

/* The key index: a chained hash over the cached entries, so a hit costs
 * the same with 10,000 entries as with one. Keys are hex digests already,
 * so their first 16 digits are the hash. */
static size_t bucket_of(const ttsm_manager *mgr, const char *key)
{
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = key[i];
        h = h << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return (size_t)h & (mgr->n_buckets - 1);
}

/* Doubles the index when it is full. A failed allocation keeps the old
 * one: chains grow longer, lookups stay correct. */
static void index_grow(ttsm_manager *mgr)
{
    if (mgr->n_cached < mgr->n_buckets)
        return;
    size_t n = mgr->n_buckets ? mgr->n_buckets * 2 : 64;
    ttsm__entry **b = ttsm__calloc(n, sizeof *b);
    if (!b)
        return;
    ttsm__entry **old = mgr->buckets;
    size_t old_n = mgr->n_buckets;
    mgr->buckets = b;
    mgr->n_buckets = n;
    for (size_t i = 0; i < old_n; i++)
        for (ttsm__entry *e = old[i], *next; e; e = next) {
            next = e->hnext;
            size_t k = bucket_of(mgr, e->m.key);
            e->hnext = b[k];
            b[k] = e;
        }
    ttsm__free(old);
}

static void list_unlink(ttsm_manager *mgr, ttsm__entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        mgr->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        mgr->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_link_tail(ttsm_manager *mgr, ttsm__entry *e)
{
    e->prev = mgr->tail;
    e->next = NULL;
    if (mgr->tail)
        mgr->tail->next = e;
    else
        mgr->head = e;
    mgr->tail = e;
}

/* ---- aliases: other keys of an entry (content.h) ------------------------ */

static size_t alias_bucket(const char *key)
{
    return (size_t)((key[0] <= '9' ? key[0] - '0' : key[0] - 'a' + 10) << 4 |
                    (key[1] <= '9' ? key[1] - '0' : key[1] - 'a' + 10)) %
           TTSM__ALIAS_BUCKETS;
}

static ttsm__entry *alias_find(ttsm_manager *mgr, const char *key)
{
    for (ttsm__alias *a = mgr->alias_buckets[alias_bucket(key)]; a; a = a->hnext)
        if (strcmp(a->key, key) == 0)
            return a->entry;
    return NULL;
}

/* @return 0, or -1 when out of memory (the caller then keeps its own entry). */
int ttsm__alias_add(ttsm_manager *mgr, ttsm__entry *e, const char *key)
{
    ttsm__alias *a = ttsm__malloc(sizeof *a);
    if (!a)
        return -1;
    memcpy(a->key, key, sizeof a->key);
    a->entry = e;
    a->next_of_entry = e->aliases;
    e->aliases = a;
    size_t b = alias_bucket(key);
    a->hnext = mgr->alias_buckets[b];
    mgr->alias_buckets[b] = a;
    mgr->n_aliases++;
    return 0;
}

static void alias_drop_all(ttsm_manager *mgr, ttsm__entry *e)
{
    while (e->aliases) {
        ttsm__alias *a = e->aliases;
        e->aliases = a->next_of_entry;
        ttsm__alias **pp = &mgr->alias_buckets[alias_bucket(a->key)];
        while (*pp && *pp != a)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = a->hnext;
        mgr->n_aliases--;
        ttsm__free(a);
    }
}

/* An entry leaves the cache: off the list and out of the index, and its
 * aliases with it. */
void ttsm__list_remove(ttsm_manager *mgr, ttsm__entry *e)
{
    alias_drop_all(mgr, e);
    list_unlink(mgr, e);
    if (mgr->n_buckets) {
        ttsm__entry **pp = &mgr->buckets[bucket_of(mgr, e->m.key)];
        while (*pp && *pp != e)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = e->hnext;
    }
    e->hnext = NULL;
    mgr->n_cached--;
}

/* An entry joins the cache as the most recently used. */
void ttsm__list_append(ttsm_manager *mgr, ttsm__entry *e)
{
    index_grow(mgr);
    list_link_tail(mgr, e);
    e->hnext = NULL;
    if (mgr->n_buckets) {
        size_t k = bucket_of(mgr, e->m.key);
        e->hnext = mgr->buckets[k];
        mgr->buckets[k] = e;
    }
    mgr->n_cached++;
}

/* A hit: the entry becomes the most recently used; the index is unchanged. */
void ttsm__list_touch(ttsm_manager *mgr, ttsm__entry *e)
{
    if (mgr->tail == e)
        return;
    list_unlink(mgr, e);
    list_link_tail(mgr, e);
}

ttsm__entry *ttsm__entries_find(ttsm_manager *mgr, const char *key)
{
    if (!mgr->n_buckets) { /* the index could never be allocated */
        for (ttsm__entry *e = mgr->head; e; e = e->next)
            if (strcmp(e->m.key, key) == 0)
                return e;
    } else {
        for (ttsm__entry *e = mgr->buckets[bucket_of(mgr, key)]; e; e = e->hnext)
            if (strcmp(e->m.key, key) == 0)
                return e;
    }
    return mgr->n_aliases ? alias_find(mgr, key) : NULL;
}

/* The manager is closed and nothing of it is left: free it (after the lock). */

/* `last_used`: e->last_used read under the lock (the rest does not change
 * once the entry is ready, or is atomic). */
void ttsm__entry_info_of(const ttsm__entry *e, ttsm_entry_info *v, uint64_t now,
                         uint64_t last_used)
{
    memset(v, 0, sizeof *v);
    memcpy(v->key, e->m.key, sizeof v->key);
    ttsm__format_trunc(v->engine, sizeof v->engine, "%s", e->m.engine);
    ttsm__format_trunc(v->model, sizeof v->model, "%s", e->m.label);
    memcpy(v->device, e->m.device, sizeof v->device);
    v->bytes = e->m.bytes;
    v->refs = atomic_load(&e->refs);
    v->pinned = e->pinned;
    v->loading = e->state == TTSM__LOADING;
    v->idle_seconds = v->refs || v->loading || now < last_used
                          ? 0.0
                          : (double)(now - last_used) / 1e9;
}
