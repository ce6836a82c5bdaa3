/* entries.h - the cache's entries as a collection (entries.c): the LRU list,
 * the key index over it and the aliases (other keys of an entry, content.h).
 * Every function here runs under the manager's lock and does no more than
 * keep those three consistent; what an entry holds, and when it may go, is
 * the manager's (manager.c). */
#ifndef TTSM_CACHE_ENTRIES_H
#define TTSM_CACHE_ENTRIES_H

#include "cache/state.h"

/* An entry joins the cache as the most recently used. */
void ttsm__list_append(ttsm_manager *mgr, ttsm__entry *e);
/* An entry leaves the cache: off the list and out of the index, and its
 * aliases with it. */
void ttsm__list_remove(ttsm_manager *mgr, ttsm__entry *e);
/* A hit: the entry becomes the most recently used. */
void ttsm__list_touch(ttsm_manager *mgr, ttsm__entry *e);
/* The cached entry of `key`, through its own key or an alias; NULL if none. */
ttsm__entry *ttsm__entries_find(ttsm_manager *mgr, const char *key);
/* `key` names `e` too. @return 0, or -1 when out of memory (the caller then
 * keeps its own entry). */
int ttsm__alias_add(ttsm_manager *mgr, ttsm__entry *e, const char *key);
/* What ttsm_manager_list shows of `e` at `now`; `last_used` is e->last_used
 * read under the lock (the rest does not change once the entry is ready, or
 * is atomic). */
void ttsm__entry_info_of(const ttsm__entry *e, ttsm_entry_info *v, uint64_t now,
                         uint64_t last_used);

#endif
