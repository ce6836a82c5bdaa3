/* memo.c - the hit memo's table (memo.h). */
#define _GNU_SOURCE /* realpath */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/config.h"
#include "cache/canonical.h"
#include "cache/memo.h"
#include "cache/pathwatch.h"

/* The config's fields, each as a presence byte and the string with its NUL;
 * 0 when it does not fit, or holds a relative model_path (whose meaning
 * moves with the working directory). */
size_t ttsm__memo_raw_config(const ttsm_load_config *c, char *buf, size_t size)
{
    if (c->model_path && c->model_path[0] != '/')
        return 0;
    const char *f[] = {c->engine, c->model_type, c->model_name, c->device, c->language,
                       c->repo_id, c->model_path};
    size_t n = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0] + 2 * c->n_params; i++) {
        size_t k = i - sizeof f / sizeof f[0];
        const char *v = i < sizeof f / sizeof f[0] ? f[i]
                        : k % 2 == 0             ? c->params[k / 2].key
                                                 : c->params[k / 2].value;
        size_t l = v ? strlen(v) + 1 : 0;
        if (n + 1 + l > size)
            return 0;
        buf[n++] = v ? 1 : 0;
        if (v) {
            memcpy(buf + n, v, l);
            n += l;
        }
    }
    return n;
}

/* The memo's bucket of four slots for hash `h`. */
static ttsm__memo_slot *memo_bucket(ttsm_manager *mgr, XXH128_hash_t h)
{
    return &mgr->memo[((size_t)h.low64 & (mgr->memo_cap / 4 - 1)) * 4];
}

/* Under the lock: the slot of the config hashed `h`, or NULL. */
ttsm__memo_slot *ttsm__memo_find(ttsm_manager *mgr, XXH128_hash_t h)
{
    if (!mgr->memo)
        return NULL;
    ttsm__memo_slot *b = memo_bucket(mgr, h);
    for (int i = 0; i < 4; i++)
        if (b[i].h_lo == h.low64 && b[i].h_hi == h.high64 && (h.low64 | h.high64))
            return &b[i];
    return NULL;
}

/* Under the lock: new events on the watched paths invalidate every memoised
 * path at once (refilling one costs a resolution). */
void ttsm__memo_watch_drain(ttsm_manager *mgr)
{
    struct ttsm__pathwatch *w = atomic_load(&mgr->watch);
    if (w && ttsm__pathwatch_drain(w))
        mgr->fs_gen++;
}

/* Under the lock: room for two slots per cached entry. */
static void memo_grow(ttsm_manager *mgr)
{
    size_t want = 64;
    while (want < 2 * (mgr->n_cached + 1))
        want *= 2;
    if (want <= mgr->memo_cap)
        return;
    ttsm__memo_slot *old = mgr->memo, *m = ttsm__aligned_alloc(64, want * sizeof *m);
    char(*okeys)[TTSM_KEY_HEX_SIZE] = mgr->memo_keys;
    char(*keys)[TTSM_KEY_HEX_SIZE] = ttsm__malloc(want * sizeof *keys);
    if (!m || !keys) {
        ttsm__free(m);
        ttsm__free(keys);
        return; /* the memo is an optimisation: the old table stays */
    }
    memset(m, 0, want * sizeof *m);
    size_t ocap = mgr->memo_cap;
    mgr->memo = m;
    mgr->memo_keys = keys;
    mgr->memo_cap = want;
    for (size_t i = 0; i < ocap; i++) {
        const ttsm__memo_slot *o = &old[i];
        if (!(o->h_lo | o->h_hi))
            continue;
        XXH128_hash_t h = {o->h_lo, o->h_hi};
        ttsm__memo_slot *b = memo_bucket(mgr, h);
        for (int k = 0; k < 4; k++)
            if (!(b[k].h_lo | b[k].h_hi)) {
                b[k] = *o;
                memcpy(keys[&b[k] - m], okeys[i], TTSM_KEY_HEX_SIZE);
                break;
            }
    }
    ttsm__free(old);
    ttsm__free(okeys);
}

void ttsm__memo_fill(ttsm_manager *mgr, XXH128_hash_t h, const ttsm_load_config *canonical,
                      const char *model_path)
{
    char key[TTSM_KEY_HEX_SIZE];
    if (!(h.low64 | h.high64))
        return;
    pthread_mutex_lock(&mgr->lock);
    uint64_t fs_gen = 0;
    if (model_path) {
        /* Watch what the resolution goes through, then resolve and key it:
         * a change after the watches is an event, one before them is seen. */
        struct ttsm__pathwatch *w = atomic_load(&mgr->watch);
        if (!w && !mgr->watch_failed && !(w = ttsm__pathwatch_new()))
            mgr->watch_failed = 1;
        if (!w)
            goto out;
        atomic_store(&mgr->watch, w);
        ttsm__memo_watch_drain(mgr);
        fs_gen = mgr->fs_gen;
        char walked[PATH_MAX];
        if (ttsm__pathwatch_add(w, model_path, walked, sizeof walked) != 0)
            goto out;
        char *real = realpath(model_path, NULL);
        int same = real && strcmp(real, walked) == 0;
        free(real); /* from realpath(), the C library's allocator */
        if (!same)
            goto out;
    }
    if (ttsm__cache_key_of(canonical, key, NULL) != TTSM_OK)
        goto out;
    memo_grow(mgr);
    if (!mgr->memo)
        goto out;
    ttsm__memo_slot *slot = ttsm__memo_find(mgr, h);
    if (!slot) {
        ttsm__memo_slot *b = memo_bucket(mgr, h);
        slot = &b[(h.high64 >> 62) & 3]; /* a full bucket loses a slot picked by hash */
        for (int k = 0; k < 4; k++)
            if (!(b[k].h_lo | b[k].h_hi)) {
                slot = &b[k];
                break;
            }
    }
    slot->h_lo = h.low64;
    slot->h_hi = h.high64;
    slot->gen = (uint32_t)ttsm__config_generation();
    slot->has_path = model_path != NULL;
    slot->fs_gen = (uint32_t)fs_gen;
    slot->entry = NULL;
    slot->frees = (uint32_t)mgr->frees;
    memcpy(mgr->memo_keys[slot - mgr->memo], key, sizeof key);
out:
    pthread_mutex_unlock(&mgr->lock);
}

/* After a load: points the config's slot at the entry it loaded, so the
 * first hit is as cheap as the others (no key-index walk). Only the
 * entry of the slot's own key: a fallback that loaded another model is
 * tried again on the next call. */
void ttsm__memo_link(ttsm_manager *mgr, XXH128_hash_t h, ttsm_model *m)
{
    ttsm__entry *e = ttsm__entry_of(m);
    pthread_mutex_lock(&mgr->lock);
    ttsm__memo_slot *slot = ttsm__memo_find(mgr, h);
    if (slot && !slot->entry && e->state == TTSM__READY &&
        memcmp(mgr->memo_keys[slot - mgr->memo], m->key, TTSM_KEY_HEX_SIZE) == 0) {
        slot->entry = e;
        slot->frees = (uint32_t)mgr->frees;
        slot->on_cpu = strcmp(m->device, "cpu") == 0;
    }
    pthread_mutex_unlock(&mgr->lock);
}
