/* state.h - the manager's state and its cache entries: what manager.c (the
 * cache's behaviour), entries.c (the list, key index and aliases) and memo.c
 * (the hit memo's table) share, declared once below all three. An entry
 * wraps the model its factory built (engines/model.h) with the cache's own
 * bookkeeping: state, references, waiters, pin, last use, list links. */
#ifndef TTSM_CACHE_STATE_H
#define TTSM_CACHE_STATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "ttsm.h"
#include "base/log.h"
#include "formats/pool.h"
#include "engines/model.h"
#include "cache/content.h"

/* MERGED: a miss whose files an entry already held (content.h); it never
 * joins the cache, its key becomes an alias of that entry. */
enum { TTSM__LOADING = 1, TTSM__READY, TTSM__ORPHAN, TTSM__FAILED, TTSM__MERGED };

/* Another key that names an entry: the key of a config spelled otherwise
 * whose files turned out to be the entry's (docs/cache-key.md). */
typedef struct ttsm__alias {
    char key[TTSM_KEY_HEX_SIZE];
    struct ttsm__entry *entry;
    struct ttsm__alias *next_of_entry; /* the entry's other aliases */
    struct ttsm__alias *hnext;         /* the next alias in its bucket */
} ttsm__alias;
#define TTSM__ALIAS_BUCKETS 64

/* Work an entry owes the host after the lock (manager.c, reap()). */
enum { TTSM__REAP_NOTIFY = 1, TTSM__REAP_DROP = 2 };

typedef struct ttsm__entry {
    ttsm_model m; /* first: the ttsm_model handle a caller holds is its entry */
    ttsm_manager *mgr;
    int state;
    int slot; /* in mgr->devs */
    _Atomic size_t refs;
    /* References of the entry's own engine data (TTSM_DLPACK_INNER exports,
     * ttsm_model_retain_inner) and of the reaper: they keep the memory, not
     * the place in the cache. */
    _Atomic size_t inner;
    size_t waiters; /* threads waiting for this load (under the lock) */
    int pinned;
    int counted;    /* its bytes are in its device's in_use */
    uint64_t last_used;
    pthread_t loader; /* the thread running its load (while loading) */
    ttsm_status fail_st;
    ttsm_error *fail_err;            /* for waiters of a failed load */
    struct ttsm__entry *prev, *next; /* cache list, least recently used first */
    struct ttsm__entry *hnext;       /* the next entry in its key-index bucket */
    unsigned reap, reaping;          /* TTSM__REAP_* queued / being done */
    const char *reap_why;            /* the on_evict reason (static text) */
    uint64_t reap_last_used;         /* last_used when its reaper took it */
    struct ttsm__entry *reap_next;   /* mgr->reap_head list */
    struct ttsm__entry *work_next;   /* the list its reaper works through */
    void *dying_data;                /* engine data taken by the reaper to destroy */
    void (*dying_destroy)(void *);
    char base[TTSM_KEY_HEX_SIZE];    /* key of the config without its source, or "" */
    ttsm__content content;           /* what its files are (content.h) */
    ttsm__alias *aliases;            /* other keys that name this entry */
} ttsm__entry;

/* The entry of a model handle the manager gave out. */
static inline ttsm__entry *ttsm__entry_of(ttsm_model *m)
{
    return (ttsm__entry *)(void *)m;
}

/* The hit memo: a config seen before maps straight to its key (and, while
 * no entry has been freed since, to its entry), so a hit skips
 * canonicalisation. Valid while the process-wide configuration generation
 * (engines, backends, CUDA discovery) is unchanged and, for a config with
 * an absolute model_path, while nothing its resolution went through has
 * changed (cache/pathwatch.c). Slots come four to a bucket; the table grows
 * with the cache (two slots per entry), so a hit costs about the same with
 * 10,000 entries as with one. */
typedef struct ttsm__memo_slot {
    /* XXH3-128 of the config's fields as ttsm_load saw them (the cache key
     * itself is an XXH3-128): a slot is found without reading the config
     * again, and a slot is one cache line. 0 and 0: empty. */
    _Alignas(64) uint64_t h_lo, h_hi;
    struct ttsm__entry *entry; /* valid while mgr->frees == frees */
    uint32_t frees, gen, fs_gen;
    uint8_t has_path;
    uint8_t on_cpu; /* entry's device is cpu: no device to check on a hit */
} ttsm__memo_slot;

typedef struct ttsm__devslot {
    char name[TTSM_DEVICE_NAME_MAX];
    uint64_t budget; /* configured; UINT64_MAX none */
    uint64_t in_use, reserved, peak;
    size_t entries;
} ttsm__devslot;

struct ttsm_manager {
    ttsm_manager_options opt;
    ttsm__logger log;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ttsm__entry *head, *tail; /* the cache: LRU order */
    ttsm__entry **buckets;    /* key index over the cache list (chained) */
    ttsm__memo_slot *memo;    /* memo_cap slots, NULL until the first fill */
    char (*memo_keys)[TTSM_KEY_HEX_SIZE]; /* each slot's key, read when its entry is looked up */
    size_t memo_cap;
    uint64_t frees;           /* entries freed so far: memo entry pointers go stale */
    /* model_path resolutions the memo trusts; set once, under the lock,
     * and polled outside it by hits */
    _Atomic(struct ttsm__pathwatch *) watch;
    uint64_t fs_gen;          /* bumped when one of them may have changed */
    int watch_failed;         /* inotify unavailable: paths are not memoised */
    ttsm__alias *alias_buckets[TTSM__ALIAS_BUCKETS];
    size_t n_aliases;
    size_t n_buckets;         /* 0 or a power of two */
    size_t n_cached, n_orphans, n_alive;
    int closing;
    ttsm__devslot devs[TTSM_MANAGER_MAX_DEVICES];
    size_t n_devs;
    char **invalid; /* keys invalidated and not rebuilt yet: recovery pending */
    size_t n_invalid, cap_invalid;
    ttsm_manager_stats stats;
    /* The opened checkpoints. The pool has its own lock, taken after `lock`
     * (never before): opening headers must not stall hits on other keys. */
    ttsm__pool pool;
    /* Entries that left the cache and owe the host work outside the lock
     * (on_evict, engine data destroy); reapers: threads doing or about to
     * do it (the manager is freed only when none is left). */
    ttsm__entry *reap_head;
    size_t reapers;
    /* The keep-alive timer (options.keep_alive_timer). */
    pthread_t sweeper;
    int sweeper_running, sweeper_stop;
    pthread_cond_t sweep_cond; /* CLOCK_MONOTONIC */
};

#endif
