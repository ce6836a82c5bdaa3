/* memo.h - the hit memo's table (memo.c; the slots are described in
 * state.h): filling a slot after a load, finding one, linking it to the
 * entry the load made. The hit itself, which takes references and may
 * sweep, stays with the manager (manager.c). */
#ifndef TTSM_CACHE_MEMO_H
#define TTSM_CACHE_MEMO_H

#include <xxhash.h>

#include "cache/state.h"

/* The config's fields, each as a presence byte and the string with its NUL,
 * into `buf`: what the memo hashes. 0 when it does not fit, or holds a
 * relative model_path (whose meaning moves with the working directory). */
size_t ttsm__memo_raw_config(const ttsm_load_config *c, char *buf, size_t size);
/* Under the lock: the slot of the config hashed `h`, or NULL. */
ttsm__memo_slot *ttsm__memo_find(ttsm_manager *mgr, XXH128_hash_t h);
/* Under the lock: events on the watched paths invalidate every memoised
 * path at once. */
void ttsm__memo_watch_drain(ttsm_manager *mgr);
/* Takes the lock: remembers the key of config `h` (`canonical`, resolved
 * from `model_path` when it has one, watched from then on). */
void ttsm__memo_fill(ttsm_manager *mgr, XXH128_hash_t h, const ttsm_load_config *canonical,
                     const char *model_path);
/* Takes the lock: points config `h`'s slot at the entry of `m`, when it is
 * the slot's own key. */
void ttsm__memo_link(ttsm_manager *mgr, XXH128_hash_t h, ttsm_model *m);

#endif
