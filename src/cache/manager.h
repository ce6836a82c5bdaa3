/* manager_internal.h - the manager's structures, shared by manager.c (the
 * cache, admission, eviction) and model.c (model descriptions, the shared
 * host checkpoint table, materialisation on a device). */
#ifndef TTSM_MANAGER_INTERNAL_H
#define TTSM_MANAGER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "devices/backend.h"
#include "ttsm.h"

/* One opened checkpoint, shared by every entry that uses its path. */
typedef struct ttsm__host {
    char *path; /* canonical */
    ttsm_checkpoint *ck;
    size_t refs;
    uint64_t identity; /* device, inode, size, mtime of its files when opened */
    int detached;      /* replaced on disk: out of the table, freed at refs 0 */
    struct ttsm__host *next;
} ttsm__host;

typedef struct ttsm__component {
    char *name;
    ttsm__host *host;           /* NULL for file components (json, blob) */
    char *path;                 /* file components: the canonical path */
    int kind;                   /* file components: TTSM_FILE_JSON / TTSM_FILE_BLOB */
    ttsm_model_tensor *tensors; /* one per checkpoint tensor, same order */
    void *block;                /* device allocation (non-host-visible devices) */
    uint64_t block_bytes;
} ttsm__component;

enum { TTSM__LOADING = 1, TTSM__READY, TTSM__ORPHAN, TTSM__FAILED };

struct ttsm_model {
    ttsm_manager *mgr;
    int state;
    char key[TTSM_KEY_HEX_SIZE];
    char *engine, *label; /* label: model name, path or repo id */
    char device[TTSM_DEVICE_NAME_MAX];
    ttsm_backend backend;
    int dev_index;
    int slot; /* in mgr->devs */
    uint64_t bytes;
    _Atomic size_t refs;
    size_t waiters; /* threads waiting for this load (under the lock) */
    int pinned;
    uint64_t last_used;
    ttsm__component *comps;
    size_t n_comps, cap_comps;
    void *engine_data;
    void (*engine_destroy)(void *);
    ttsm_synthesize_fn synthesize; /* from the engine's caps */
    ttsm_status fail_st;
    ttsm_error *fail_err; /* for waiters of a failed load */
    struct ttsm_model *prev, *next; /* cache list, least recently used first */
    struct ttsm_model *hnext;       /* the next entry in its key-index bucket */
};

struct ttsm_factory_ctx {
    ttsm_manager *mgr;
    ttsm_model *entry;
    const char *device;
    void *user;
    int recovering;
    int created;
};

/* The hit memo: a config seen before (without model_path, whose canonical
 * form depends on the file system) maps straight to its key, so a hit
 * skips canonicalisation. Valid while the process-wide configuration
 * generation (engines, backends, CUDA discovery) is unchanged. */
#define TTSM__MEMO_SLOTS 64
typedef struct ttsm__memo_slot {
    uint64_t hash, gen;
    char *raw; /* the config's fields as ttsm_load saw them */
    size_t raw_len;
    char key[TTSM_KEY_HEX_SIZE];
} ttsm__memo_slot;

typedef struct ttsm__devslot {
    char name[TTSM_DEVICE_NAME_MAX];
    uint64_t budget; /* configured; UINT64_MAX none */
    uint64_t in_use, reserved, peak;
    size_t entries;
} ttsm__devslot;

struct ttsm_manager {
    ttsm_manager_options opt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ttsm_model *head, *tail; /* the cache: LRU order */
    ttsm_model **buckets;    /* key index over the cache list (chained) */
    ttsm__memo_slot memo[TTSM__MEMO_SLOTS];
    size_t n_buckets;        /* 0 or a power of two */
    size_t n_cached, n_orphans, n_alive;
    int closing;
    ttsm__devslot devs[TTSM_MANAGER_MAX_DEVICES];
    size_t n_devs;
    char **invalid; /* keys invalidated and not rebuilt yet: recovery pending */
    size_t n_invalid, cap_invalid;
    ttsm_manager_stats stats;
    /* The shared host table has its own lock, taken after `lock` (never
     * before): opening headers must not stall hits on other keys. */
    pthread_mutex_t host_lock;
    ttsm__host *hosts;
    uint64_t host_opens; /* under host_lock */
};

/* model.c */
void ttsm__model_free_parts(ttsm_model *m); /* components, engine data, strings */
/* Bytes the model takes on its device (storages with tensors; 256-aligned
 * each when the device is not host-visible). */
ttsm_status ttsm__model_bytes(ttsm_model *m, uint64_t *out, ttsm_error *err);
/* Points or uploads every tensor; calls progress; undoes itself on failure. */
ttsm_status ttsm__model_materialise(ttsm_model *m, uint64_t total, ttsm_error *err);
void ttsm__model_dematerialise(ttsm_model *m);
void ttsm__log(ttsm_manager *mgr, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
