/* manager.c - the one cache (DESIGN §9): keys to entries, single-flight
 * loads, references, per-device budgets with admission and LRU eviction,
 * pin, unload, invalidate, keep-alive (and its timer), stats and the
 * listing. One mutex guards the cache and the budgets; factories, build
 * hooks, uploads, engine data destroys and on_evict run outside it. The
 * entries as a collection (list, key index, aliases) are entries.c; the hit
 * memo's table is memo.c; both sit below this file and never call it. */
#define _GNU_SOURCE /* realpath */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/config.h"
#include "base/alloc.h"
#include "base/error.h"
#include "devices/backend.h"
#include "devices/device.h"
#include "engines/registry.h"
#include "cache/canonical.h"
#include "cache/content.h"
#include "cache/load_report.h"
#include "cache/state.h"
#include "cache/download.h"
#include "cache/entries.h"
#include "cache/materialise.h"
#include "cache/memo.h"
#include "cache/pathwatch.h"
#include "cache/prefetch.h"

ttsm_manager_options ttsm_manager_options_default(void)
{
    ttsm_manager_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.device_reserve_bytes = TTSM_DEFAULT_DEVICE_RESERVE;
    o.io_mode = TTSM_IO_MMAP;
    return o;
}

static uint64_t now_ns(ttsm_manager *mgr)
{
    if (mgr->opt.clock)
        return mgr->opt.clock(mgr->opt.clock_user);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *sweeper_main(void *arg);
static void manager_free(ttsm_manager *mgr);

/* @return the slot of `device`, adding it; -1 when the table is full. */
static int slot_of(ttsm_manager *mgr, const char *device)
{
    for (size_t i = 0; i < mgr->n_devs; i++)
        if (strcmp(mgr->devs[i].name, device) == 0)
            return (int)i;
    if (mgr->n_devs == TTSM_MANAGER_MAX_DEVICES)
        return -1;
    ttsm__devslot *d = &mgr->devs[mgr->n_devs];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", device);
    d->budget = UINT64_MAX;
    return (int)mgr->n_devs++;
}

ttsm_status ttsm_manager_create(const ttsm_manager_options *options, ttsm_manager **out,
                                ttsm_error *err)
{
    if (!out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "manager", "invalid argument",
                         "out is NULL");
    /* Check the size before copying: a struct from an older header is
     * smaller. The ones before comfyui_dirs, before keep_alive_timer,
     * before verify_on_load, before download and before prefetch are
     * accepted (their fields are a prefix of this one); the rest keep their
     * defaults. */
    const size_t before_comfyui = offsetof(ttsm_manager_options, comfyui_dirs);
    const size_t before_timer = offsetof(ttsm_manager_options, keep_alive_timer);
    const size_t before_verify = offsetof(ttsm_manager_options, verify_on_load);
    const size_t before_download = offsetof(ttsm_manager_options, download);
    const size_t before_prefetch = offsetof(ttsm_manager_options, prefetch);
    if (options && options->struct_size != sizeof *options &&
        options->struct_size != before_comfyui && options->struct_size != before_timer &&
        options->struct_size != before_verify && options->struct_size != before_download &&
        options->struct_size != before_prefetch)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "manager", "invalid argument",
                         "options.struct_size is %zu, expected %zu: use "
                         "ttsm_manager_options_default()", options->struct_size, sizeof *options);
    ttsm_manager_options o = ttsm_manager_options_default();
    if (options)
        memcpy(&o, options, options->struct_size);
    o.struct_size = sizeof o;
    if (o.download != TTSM_DOWNLOAD_NEVER && o.download != TTSM_DOWNLOAD_MISSING)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "manager", "invalid argument",
                         "download is %d: TTSM_DOWNLOAD_NEVER or TTSM_DOWNLOAD_MISSING",
                         o.download);
    if (o.download_jobs > TTSM_PULL_MAX_JOBS)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "manager", "invalid argument",
                         "download_jobs is %u, at most %d", o.download_jobs, TTSM_PULL_MAX_JOBS);
    if (o.engines_dir) {
        ttsm_status st = ttsm_engines_load_dir(o.engines_dir, err);
        if (st != TTSM_OK)
            return st;
    }
    if (o.n_budgets > TTSM_MANAGER_MAX_DEVICES || (o.n_budgets && !o.budgets))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "manager", "invalid argument",
                         "%zu budgets (at most %d, and budgets must be set)", o.n_budgets,
                         TTSM_MANAGER_MAX_DEVICES);
    if (o.io_mode != TTSM_IO_MMAP && o.io_mode != TTSM_IO_READ)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "manager", "invalid argument",
                         "io_mode %d", (int)o.io_mode);
    ttsm_manager *mgr = ttsm__calloc(1, sizeof *mgr);
    if (!mgr)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "manager", "out of memory", "manager");
    mgr->opt = o;
    mgr->opt.budgets = NULL;
    mgr->opt.n_budgets = 0;
    mgr->opt.engines_dir = NULL;
    mgr->opt.models_dirs = o.models_dirs ? ttsm__strdup(o.models_dirs) : NULL;
    mgr->opt.hf_cache = o.hf_cache ? ttsm__strdup(o.hf_cache) : NULL;
    mgr->opt.comfyui_dirs = o.comfyui_dirs ? ttsm__strdup(o.comfyui_dirs) : NULL;
    if ((o.models_dirs && !mgr->opt.models_dirs) || (o.hf_cache && !mgr->opt.hf_cache) ||
        (o.comfyui_dirs && !mgr->opt.comfyui_dirs)) {
        ttsm__free((void *)mgr->opt.models_dirs);
        ttsm__free((void *)mgr->opt.hf_cache);
        ttsm__free((void *)mgr->opt.comfyui_dirs);
        ttsm__free(mgr);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "manager", "out of memory", "options");
    }
    for (size_t i = 0; i < o.n_budgets; i++) {
        char dev[TTSM_DEVICE_NAME_MAX];
        ttsm_status st = ttsm_device_resolve(o.budgets[i].device, dev, sizeof dev, err);
        if (st != TTSM_OK) {
            ttsm__free((void *)mgr->opt.models_dirs);
            ttsm__free((void *)mgr->opt.hf_cache);
            ttsm__free((void *)mgr->opt.comfyui_dirs);
            ttsm__free(mgr);
            return st;
        }
        mgr->devs[slot_of(mgr, dev)].budget = o.budgets[i].bytes;
    }
    mgr->log = (ttsm__logger){o.log, o.log_user};
    ttsm__pool_init(&mgr->pool, o.io_mode, o.verify_on_load != 0, mgr->log);
    pthread_mutex_init(&mgr->lock, NULL);
    pthread_cond_init(&mgr->cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mgr->sweep_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (o.keep_alive_timer && o.keep_alive_ms) {
        int rc = pthread_create(&mgr->sweeper, NULL, sweeper_main, mgr);
        if (rc != 0) {
            manager_free(mgr);
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "manager", "cannot start the keep-alive "
                             "timer", "pthread_create: %s", strerror(rc));
        }
        mgr->sweeper_running = 1;
    }
    *out = mgr;
    return TTSM_OK;
}

static void manager_free(ttsm_manager *mgr)
{
    ttsm__free(mgr->memo);
    ttsm__free(mgr->memo_keys);
    ttsm__pathwatch_free(atomic_load(&mgr->watch));
    ttsm__free(mgr->buckets);
    ttsm__free((void *)mgr->opt.models_dirs);
    ttsm__free((void *)mgr->opt.hf_cache);
    ttsm__free((void *)mgr->opt.comfyui_dirs);
    for (size_t i = 0; i < mgr->n_invalid; i++)
        ttsm__free(mgr->invalid[i]);
    ttsm__free(mgr->invalid);
    pthread_mutex_destroy(&mgr->lock);
    ttsm__pool_destroy(&mgr->pool);
    pthread_cond_destroy(&mgr->cond);
    pthread_cond_destroy(&mgr->sweep_cond);
    ttsm__free(mgr);
}

static int manager_done(const ttsm_manager *mgr)
{
    return mgr->closing && mgr->n_alive == 0 && mgr->reapers == 0;
}

/* Frees an entry that no one can reach any more, returning its bytes. Under
 * the lock, so the bytes leave the books only once the memory is gone. An
 * engine data destroy left here has no reaper to run it (plain C data, the
 * manager's own failure paths): it runs here, under the lock, as it always
 * may for data without a destroy that reenters the library.
 * @return 1 when the manager is closing and this was its last object. */
static int entry_free(ttsm_manager *mgr, ttsm__entry *e)
{
    ttsm__prefetch_forget(&e->m);
    ttsm__model_dematerialise(&e->m);
    ttsm__model_free_parts(&e->m);
    if (e->counted) {
        ttsm__devslot *d = &mgr->devs[e->slot];
        d->in_use -= e->m.bytes;
        d->entries--;
    }
    ttsm__free(e->fail_err);
    if (e->state == TTSM__ORPHAN)
        mgr->n_orphans--;
    ttsm__free(e);
    mgr->frees++; /* memo slots pointing at entries must look them up again */
    mgr->n_alive--;
    return manager_done(mgr);
}

/* Queues work for after the lock; the queue holds `e` (it is not freed
 * while queued or reaped). */
static void owe(ttsm_manager *mgr, ttsm__entry *e, unsigned work, const char *why)
{
    if (!work)
        return;
    if (!e->reap) {
        e->reap_next = mgr->reap_head;
        mgr->reap_head = e;
    }
    e->reap |= work;
    if (why)
        e->reap_why = why;
}

/* An entry out of the cache (orphan, failed or merged) that no caller holds any
 * more: its engine data is dropped (after the lock: it may hold inner
 * references, and be Python), then, once nothing holds it - no inner
 * reference, no work owed - it is freed. @return entry_free's. */
static int settle(ttsm_manager *mgr, ttsm__entry *e)
{
    if ((e->state != TTSM__ORPHAN && e->state != TTSM__FAILED && e->state != TTSM__MERGED) ||
        atomic_load(&e->refs) || e->waiters)
        return 0;
    if (e->m.engine_destroy) {
        owe(mgr, e, TTSM__REAP_DROP, NULL);
        return 0;
    }
    if (atomic_load(&e->inner) || e->reap || e->reaping)
        return 0;
    return entry_free(mgr, e);
}

/* An entry leaves the cache (eviction, unload, invalidate, destroy): it
 * becomes an orphan, its bytes still counted, and is freed now unless
 * something is owed first: telling the host (on_evict), dropping its
 * engine data (which may hold inner references, and may be Python: never
 * under this lock), or the inner references themselves. Engine data is
 * dropped once no caller holds the entry. @return settle()'s. */
static int retire(ttsm_manager *mgr, ttsm__entry *e, const char *why, int notify)
{
    ttsm__list_remove(mgr, e);
    e->state = TTSM__ORPHAN;
    mgr->n_orphans++;
    owe(mgr, e, notify && mgr->opt.on_evict ? TTSM__REAP_NOTIFY : 0, why);
    return settle(mgr, e);
}


/* Callbacks this thread is running from reap() (nested ones included). */
static _Thread_local int reaping_here;

/* Does the queued work, outside the lock, until the queue is empty: the
 * caller has counted itself in mgr->reapers (unlock_reap does). Frees what
 * nothing holds afterwards, and the manager when it is done with.
 * @return how many entries it worked on (0: none it could take). */
static size_t reap(ttsm_manager *mgr)
{
    size_t done = 0;
    for (;;) {
        pthread_mutex_lock(&mgr->lock);
        /* Take what is queued, but not an entry another reaper is still
         * working on (owed more meanwhile): that reaper takes it next. */
        ttsm__entry *list = NULL, *rest = NULL;
        for (ttsm__entry *e = mgr->reap_head, *next; e; e = next) {
            next = e->reap_next;
            if (e->reaping) {
                e->reap_next = rest;
                rest = e;
                continue;
            }
            e->reaping = e->reap;
            e->reap = 0;
            e->reap_last_used = e->last_used; /* a release may change it meanwhile */
            if (e->reaping & TTSM__REAP_DROP) { /* taken under the lock: settle() reads it */
                e->dying_data = e->m.engine_data;
                e->dying_destroy = e->m.engine_destroy;
                e->m.engine_data = NULL;
                e->m.engine_destroy = NULL;
            }
            e->work_next = list;
            list = e;
        }
        mgr->reap_head = rest;
        if (!list) {
            mgr->reapers--;
            int last = manager_done(mgr);
            pthread_cond_broadcast(&mgr->cond);
            pthread_mutex_unlock(&mgr->lock);
            if (last)
                manager_free(mgr);
            return done;
        }
        uint64_t now = now_ns(mgr);
        pthread_mutex_unlock(&mgr->lock);
        /* Entries being reaped are out of the cache and not freed before
         * this reaper is done (e->reaping): what it reads stays valid. Their
         * reap_next may be reused meanwhile (more owed); work_next is ours. */
        reaping_here++;
        for (ttsm__entry *e = list; e; e = e->work_next) {
            if (e->reaping & TTSM__REAP_NOTIFY) {
                ttsm_entry_info info;
                ttsm__entry_info_of(e, &info, now, e->reap_last_used);
                mgr->opt.on_evict(mgr->opt.on_evict_user, &info, e->reap_why);
            }
            if (e->reaping & TTSM__REAP_DROP)
                e->dying_destroy(e->dying_data);
            done++;
        }
        reaping_here--;
        pthread_mutex_lock(&mgr->lock);
        for (ttsm__entry *e = list, *next; e; e = next) {
            next = e->work_next;
            e->reaping = 0;
            settle(mgr, e); /* never the last object: this reaper is counted */
        }
        pthread_mutex_unlock(&mgr->lock);
    }
}

/* Releases the lock and does what it left owed. */
static void unlock_reap(ttsm_manager *mgr)
{
    int work = mgr->reap_head != NULL;
    if (work)
        mgr->reapers++;
    pthread_mutex_unlock(&mgr->lock);
    if (work)
        reap(mgr);
}

static int evictable(const ttsm__entry *e)
{
    return e->state == TTSM__READY && atomic_load(&e->refs) == 0 && e->waiters == 0 &&
           !e->pinned;
}

/* `why` is what on_evict is told: "budget", "keep-alive", "free", "single-instance". */
static void evict(ttsm_manager *mgr, ttsm__entry *e, const char *why)
{
    ttsm__logf(&mgr->log, TTSM_LOG_INFO, "evict %s (%s/%s on %s, %llu bytes): %s", e->m.key, e->m.engine,
              e->m.label, e->m.device, (unsigned long long)e->m.bytes, why);
    mgr->stats.evictions++;
    retire(mgr, e, why, 1);
}

static size_t sweep_locked(ttsm_manager *mgr, uint64_t now)
{
    uint64_t ka = mgr->opt.keep_alive_ms;
    if (ka == 0)
        return 0;
    size_t n = 0;
    /* Entries move to the tail when loaded or released, so last use grows
     * along the list among unreferenced entries (a hit moves nothing: the
     * last release will): the first of those used recently ends the sweep. */
    for (ttsm__entry *e = mgr->head, *next; e; e = next) {
        next = e->next;
        if (now - e->last_used < ka * 1000000ull && e->state == TTSM__READY &&
            atomic_load(&e->refs) == 0)
            break;
        if (evictable(e) && now - e->last_used >= ka * 1000000ull) {
            evict(mgr, e, "keep-alive");
            n++;
        }
    }
    return n;
}

size_t ttsm_manager_sweep(ttsm_manager *mgr)
{
    if (!mgr)
        return 0;
    uint64_t now = now_ns(mgr);
    pthread_mutex_lock(&mgr->lock);
    size_t n = sweep_locked(mgr, now);
    unlock_reap(mgr);
    return n;
}

/* ---- admission --------------------------------------------------------- */

/* Reads the free memory of devices that do not share host memory, so a
 * budget never promises what the device does not have (docs/manager.md). */
static uint64_t device_limit(ttsm_manager *mgr, const ttsm__entry *e, uint64_t free_b, int known)
{
    const ttsm__devslot *d = &mgr->devs[e->slot];
    uint64_t limit = d->budget;
    if (known && !e->m.backend.host_visible) {
        uint64_t avail = free_b > mgr->opt.device_reserve_bytes
                             ? d->in_use + free_b - mgr->opt.device_reserve_bytes
                             : d->in_use;
        if (avail < limit)
            limit = avail;
    }
    return limit;
}

/* `what`: "needs N bytes", or what a build holds beyond its estimate. */
static ttsm_status over_budget(ttsm_manager *mgr, const ttsm__entry *e, const char *what,
                               uint64_t limit, ttsm_error *err)
{
    const ttsm__devslot *d = &mgr->devs[e->slot];
    char held[TTSM_ERROR_MESSAGE_MAX];
    size_t used = 0;
    held[0] = '\0';
    for (ttsm__entry *o = mgr->head; o && used < sizeof held; o = o->next) {
        if (o->slot != e->slot || o == e)
            continue;
        used += (size_t)snprintf(held + used, sizeof held - used, "%s%.8s %s/%s %llu B %s%s",
                                 used ? "; " : "", o->m.key, o->m.engine, o->m.label,
                                 (unsigned long long)o->m.bytes,
                                 o->state == TTSM__LOADING ? "loading"
                                 : atomic_load(&o->refs) ? "referenced" : "idle",
                                 o->pinned ? " pinned" : "");
    }
    if (mgr->n_orphans && used < sizeof held)
        snprintf(held + used, sizeof held - used,
                 "%sentries out of the cache still referenced (invalidated, or evicted while "
                 "their engine object lives)",
                 used ? "; " : "");
    ttsm_status st = ttsm__err(
        err, TTSM_ERR_OUT_OF_MEMORY, e->m.device, "over budget",
        "%s/%s %s; budget %llu, in use %llu, reserved %llu; held by: %s",
        e->m.engine, e->m.label, what, (unsigned long long)limit,
        (unsigned long long)d->in_use, (unsigned long long)d->reserved,
        held[0] ? held : "nothing");
    ttsm__err_hint(err, "release or unpin models on %s, or raise its budget%s", e->m.device,
                   mgr->opt.allow_cpu_fallback || strcmp(e->m.device, "cpu") == 0
                       ? ""
                       : " (or allow the cpu fallback)");
    return st;
}

/* 1 when evicting every evictable entry of `slot` could make `need` fit:
 * admission evicts nothing it cannot use. Memory already on its way out
 * (work owed after the lock) may free more: then it is not ruled out. */
static int could_fit(const ttsm_manager *mgr, int slot, uint64_t need, uint64_t limit)
{
    if (mgr->reap_head || mgr->reapers)
        return 1;
    const ttsm__devslot *d = &mgr->devs[slot];
    uint64_t idle = 0;
    for (const ttsm__entry *o = mgr->head; o; o = o->next)
        if (o->slot == slot && evictable(o))
            idle += o->m.bytes;
    uint64_t want;
    return !__builtin_add_overflow(d->in_use - idle, d->reserved, &want) &&
           !__builtin_add_overflow(want, need, &want) && want <= limit;
}

/* Evicts LRU entries of slot `slot` until `need` more bytes fit under
 * `limit` (with `all_or_nothing`, none when they could not). Evicted
 * entries whose memory waits for work after the lock (engine data to
 * drop) are reaped here, the lock released meanwhile, and memory other
 * threads are reaping is waited for: the bytes are only counted free once
 * they are. @return 1 when they fit, 0 when nothing more can be evicted.
 * Under the lock. */
static int make_room(ttsm_manager *mgr, int slot, uint64_t need, uint64_t limit, const char *why,
                     int all_or_nothing)
{
    ttsm__devslot *d = &mgr->devs[slot];
    for (;;) {
        uint64_t want;
        if (!__builtin_add_overflow(d->in_use, d->reserved, &want) &&
            !__builtin_add_overflow(want, need, &want) && want <= limit)
            return 1;
        if (all_or_nothing && !could_fit(mgr, slot, need, limit))
            return 0;
        /* Memory on its way out first, so no more is evicted than needed. */
        if (mgr->reap_head) {
            mgr->reapers++;
            pthread_mutex_unlock(&mgr->lock);
            size_t done = reap(mgr); /* never frees the manager: this call holds it */
            pthread_mutex_lock(&mgr->lock);
            if (done)
                continue;
        }
        /* What is left is another thread's to reap: wait for it (unless this
         * thread is a reaper itself, called back from engine data or
         * on_evict: it would wait on itself). */
        if (mgr->reapers && !reaping_here) {
            pthread_cond_wait(&mgr->cond, &mgr->lock);
            continue;
        }
        ttsm__entry *victim = NULL;
        for (ttsm__entry *o = mgr->head; o && !victim; o = o->next)
            if (o->slot == slot && evictable(o))
                victim = o;
        if (!victim)
            return 0;
        evict(mgr, victim, why);
    }
}

/* Makes room for `need` bytes of `e`, then reserves them. */
static ttsm_status admit(ttsm_manager *mgr, ttsm__entry *e, uint64_t need, uint64_t free_b,
                         int known, ttsm_error *err)
{
    ttsm__devslot *d = &mgr->devs[e->slot];
    uint64_t limit = device_limit(mgr, e, free_b, known);
    if (!make_room(mgr, e->slot, need, limit, "budget", 1)) {
        char what[64];
        snprintf(what, sizeof what, "needs %llu bytes", (unsigned long long)need);
        return over_budget(mgr, e, what, limit, err);
    }
    d->reserved += need;
    if (d->in_use + d->reserved > d->peak)
        d->peak = d->in_use + d->reserved;
    return TTSM_OK;
}

/* ---- loading ------------------------------------------------------------ */

static int take_invalid(ttsm_manager *mgr, const char *key)
{
    for (size_t i = 0; i < mgr->n_invalid; i++)
        if (strcmp(mgr->invalid[i], key) == 0) {
            ttsm__free(mgr->invalid[i]);
            mgr->invalid[i] = mgr->invalid[--mgr->n_invalid];
            return 1;
        }
    return 0;
}

static const char *label_of(const ttsm_load_config *cfg)
{
    return cfg->model_name ? cfg->model_name
           : cfg->model_path ? cfg->model_path
           : cfg->repo_id  ? cfg->repo_id
                           : "default";
}

/* A failure of a load in flight: it reaches every waiter, leaves no entry
 * (its memory goes once the last inner reference of a failed build does). */
static int fail_entry(ttsm_manager *mgr, ttsm__entry *e, ttsm_status st, const ttsm_error *err)
{
    ttsm__list_remove(mgr, e);
    mgr->stats.failures++;
    e->state = TTSM__FAILED;
    e->fail_st = st;
    if (e->waiters) {
        e->fail_err = ttsm__malloc(sizeof *e->fail_err);
        if (e->fail_err) {
            if (err)
                *e->fail_err = *err;
            else
                ttsm__err(e->fail_err, st, e->m.engine, "load failed", "%s", ttsm_status_name(st));
        }
    }
    pthread_cond_broadcast(&mgr->cond);
    return settle(mgr, e);
}

/* What admission reserves for an engine's build beyond the weights: the
 * caps' figures when set, else the manifest's engine_memory. Saturates. */
static uint64_t build_estimate(const ttsm__engine *eng, uint64_t weights)
{
    uint64_t extra = eng->caps.extra_bytes;
    double ratio = eng->caps.extra_ratio;
    if (!extra && ratio == 0 && eng->manifest) {
        extra = eng->manifest->extra_bytes;
        ratio = eng->manifest->extra_ratio;
    }
    double r = ratio * (double)weights;
    uint64_t by_ratio = r >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)r;
    uint64_t sum;
    return __builtin_add_overflow(extra, by_ratio, &sum) ? UINT64_MAX : sum;
}

/* Whether a's checkpoints are b's as opened: one location can hold another
 * file since a was built (a link retargeted, a file renamed over), and the
 * pool then opened the new one for b. */
static int same_opened_files(const ttsm__entry *a, const ttsm__entry *b)
{
    if (a->m.n_comps != b->m.n_comps)
        return 0;
    for (size_t i = 0; i < a->m.n_comps; i++) {
        const ttsm__host *x = a->m.comps[i].host, *y = b->m.comps[i].host;
        if ((x == NULL) != (y == NULL) || (x && x != y && x->identity != y->identity))
            return 0;
    }
    return 1;
}

/* A READY entry on e's device whose files are e's (content.h), or NULL. */
static ttsm__entry *content_twin(ttsm_manager *mgr, const ttsm__entry *e)
{
    if (!e->content.set)
        return NULL;
    for (ttsm__entry *o = mgr->head; o; o = o->next)
        if (o != e && o->state == TTSM__READY && o->slot == e->slot && o->content.set &&
            o->content.hi == e->content.hi && o->content.lo == e->content.lo &&
            same_opened_files(o, e))
            return o;
    return NULL;
}

/* Under the lock: e (still loading, not admitted) holds the files `twin`
 * holds already. Its key becomes an alias of twin, which the caller gets
 * with a new reference; e leaves without being charged. Its waiters wake,
 * find the alias and take twin too. @return 0, or -1 when the alias could
 * not be allocated (then e loads as usual). */
static int merge_into(ttsm_manager *mgr, ttsm__entry *e, ttsm__entry *twin)
{
    if (ttsm__alias_add(mgr, twin, e->m.key) != 0)
        return -1;
    ttsm__logf(&mgr->log, TTSM_LOG_INFO, "%s (%s/%s) holds the files of %s: one entry for both",
               e->m.key, e->m.engine, e->m.label, twin->m.key);
    atomic_fetch_add(&twin->refs, 1);
    twin->last_used = now_ns(mgr);
    ttsm__list_touch(mgr, twin);
    ttsm__list_remove(mgr, e);
    e->state = TTSM__MERGED;
    pthread_cond_broadcast(&mgr->cond);
    if (e->waiters == 0)
        entry_free(mgr, e); /* the caller holds the manager: never its last object */
    return 0;
}

static ttsm_status load_miss(ttsm_manager *mgr, ttsm__entry *e, const ttsm__engine *eng,
                             const ttsm_load_config *cfg, const ttsm_load_config *canonical,
                             int recovering, ttsm__entry **twin, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    ttsm_factory_ctx ctx = {&e->m, eng->manifest, mgr->opt.models_dirs, mgr->opt.hf_cache,
                            mgr->opt.comfyui_dirs, e->m.device, eng->caps.user, recovering, 0,
                            0, 0, 0};
    *twin = NULL;
    if (recovering && eng->caps.recover) {
        ttsm__logf(&mgr->log, TTSM_LOG_INFO, "recover %s (%s) before rebuilding it", e->m.key, e->m.engine);
        st = eng->caps.recover(eng->caps.user, cfg, err);
    }
    ttsm_model *made = NULL;
    e->m.synthesize = eng->caps.synthesize;
    /* Load on a miss: what the model lacks comes from the Hub first. */
    if (st == TTSM_OK)
        st = ttsm__download_missing(&mgr->opt, &mgr->log, eng->manifest, cfg, e->m.key, err);
    e->m.building = 1;
    if (st == TTSM_OK)
        st = eng->factory(cfg, &ctx, &made, err);
    e->m.building = 0;
    if (st != TTSM_OK && err && err->code != st) { /* a factory that half-filled err */
        if (err->message[0])
            err->code = st;
        else
            ttsm__err(err, st, e->m.engine, "factory failed", "it returned %s without a message",
                      ttsm_status_name(st));
    }
    if (st == TTSM_OK && made != &e->m)
        st = ttsm__err(err, TTSM_ERR_ENGINE, e->m.engine, "factory broke its contract",
                       "it returned success without the model from ttsm_model_create()");
    uint64_t bytes = 0, est = 0, admitted = 0;
    if (st == TTSM_OK)
        st = ttsm__model_bytes(&e->m, &bytes, err);
    if (st == TTSM_OK && eng->caps.build)
        est = build_estimate(eng, bytes);
    if (st == TTSM_OK && __builtin_add_overflow(bytes, est, &admitted))
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, e->m.engine, "too large",
                       "model size and engine estimate overflow 64 bits");
    /* Only a model made of files alone can share an entry (content.h);
     * the others skip the cost of the identity. An engine that builds an
     * object per load does not share either: its object is built for its
     * config, params that do not change the files included. */
    if (st == TTSM_OK && e->m.n_comps && !e->m.engine_data && !eng->caps.build &&
        ttsm__content_base(canonical, e->base, NULL) == TTSM_OK)
        e->content = ttsm__content_of(e->base, &e->m);
    uint64_t free_b = 0, total = 0;
    int known = 0;
    if (st == TTSM_OK && !e->m.backend.host_visible && e->m.backend.memory)
        known = e->m.backend.memory(e->m.backend.user, e->m.dev_index, &free_b, &total, NULL) ==
                TTSM_OK;
    pthread_mutex_lock(&mgr->lock);
    ttsm__entry *o = st == TTSM_OK ? content_twin(mgr, e) : NULL;
    if (o && merge_into(mgr, e, o) == 0) {
        pthread_mutex_unlock(&mgr->lock);
        *twin = o;
        return TTSM_OK;
    }
    e->m.bytes = admitted;
    if (st == TTSM_OK)
        st = admit(mgr, e, admitted, free_b, known, err);
    if (st != TTSM_OK)
        e->m.bytes = 0; /* never admitted: the listing shows it holds nothing */
    unlock_reap(mgr);
    if (st != TTSM_OK)
        return st;

    st = ttsm__model_materialise(&e->m, bytes, mgr->opt.progress, mgr->opt.progress_user, err);
    int materialised = st == TTSM_OK;
    if (st == TTSM_OK && eng->caps.build) {
        /* The engine object is built while the entry is still loading, so
         * every other load of the key waits for it, and with no lock held. */
        ctx.in_build = 1;
        ctx.estimate = est;
        st = eng->caps.build(cfg, &ctx, &e->m, err);
        ctx.in_build = 0;
        if (st != TTSM_OK && err && err->code != st) {
            if (err->message[0])
                err->code = st;
            else
                ttsm__err(err, st, e->m.engine, "engine build failed",
                          "it returned %s without a message", ttsm_status_name(st));
        }
    }
    uint64_t held = bytes;
    if (st == TTSM_OK && __builtin_add_overflow(bytes, ctx.charged, &held))
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, e->m.engine, "too large",
                       "charged bytes overflow 64 bits");

    pthread_mutex_lock(&mgr->lock);
    ttsm__devslot *d = &mgr->devs[e->slot];
    if (st == TTSM_OK && held > admitted) {
        /* The object holds more than was reserved for it: the rest must fit
         * as well (its memory exists already; the budget's limit is what
         * counts here, the driver's free memory includes it). */
        uint64_t limit = device_limit(mgr, e, 0, 0);
        if (make_room(mgr, e->slot, held - admitted, limit, "budget", 1)) {
            d->reserved += held - admitted;
            admitted = held;
            if (d->in_use + d->reserved > d->peak)
                d->peak = d->in_use + d->reserved;
        } else {
            char what[160];
            snprintf(what, sizeof what,
                     "holds %llu bytes beyond its weights, %llu more than the %llu reserved "
                     "for its engine object",
                     (unsigned long long)ctx.charged, (unsigned long long)(held - admitted),
                     (unsigned long long)est);
            st = over_budget(mgr, e, what, limit, err);
            ttsm__err_hint(err, "declare what the engine builds (manifest \"engine_memory\", "
                                "or extra_bytes when registering it) so admission reserves it "
                                "first, or raise the budget of %s", e->m.device);
        }
    }
    d->reserved -= admitted;
    if (st == TTSM_OK || (materialised && (e->m.engine_destroy || atomic_load(&e->inner)))) {
        /* Ready; or failed after its build made something that holds its
         * memory: that stays counted until it is gone (what was admitted
         * for it: more than that is what the failure is about, and goes
         * with the object, which is dropped next). */
        if (st != TTSM_OK && held > admitted)
            held = admitted;
        e->m.bytes = held;
        d->in_use += held;
        d->entries++;
        e->counted = 1;
    } else {
        /* A failed load stays listed until fail_entry() takes it out: with
         * its reservation returned it holds nothing (the soak test saw
         * listings sum past the budget). */
        e->m.bytes = 0;
    }
    if (st == TTSM_OK) {
        e->state = TTSM__READY;
        atomic_store(&e->refs, 1);
        e->last_used = now_ns(mgr);
        ttsm__list_touch(mgr, e); /* keep the list ordered by last use */
        mgr->stats.loads++;
        pthread_cond_broadcast(&mgr->cond);
    }
    unlock_reap(mgr);
    if (st == TTSM_OK)
        ttsm__logf(&mgr->log, TTSM_LOG_INFO, "loaded %s (%s/%s) on %s: %llu bytes", e->m.key, e->m.engine,
                  e->m.label, e->m.device, (unsigned long long)held);
    return st;
}

/* How load_once() got its model (a ttsm_load_report's hit and shared). */
enum { GOT_LOAD = 0, GOT_HIT, GOT_SHARED };

/* One load of a canonical config: the key names the entry, the factory
 * gets the canonical config with every param the caller gave. */
static ttsm_status load_once(ttsm_manager *mgr, const ttsm__canon *canon, ttsm_model **out,
                             int *got, ttsm_error *err)
{
    *got = GOT_LOAD;
    char key[TTSM_KEY_HEX_SIZE], device[TTSM_DEVICE_NAME_MAX];
    ttsm_load_config fcfg = canon->cfg;
    const ttsm_load_config *cfg = &fcfg;
    ttsm_status st = ttsm__cache_key_of(&canon->cfg, key, err);
    if (st != TTSM_OK || (st = ttsm_device_resolve(cfg->device, device, sizeof device, err)))
        return st;
    if (canon->manifest) {
        fcfg.params = canon->factory_params;
        fcfg.n_params = canon->n_factory_params;
    }
    ttsm__engine eng;
    if (ttsm__engine_lookup(cfg->engine, &eng) != 0)
        return ttsm__engine_not_found(cfg->engine, err);
    if (!ttsm__engine_supports(&eng, device))
        return ttsm__err(err, TTSM_ERR_DEVICE, cfg->engine, "device not supported",
                         "the engine runs on %s, not on %s", eng.caps.devices, device);
    ttsm_backend be;
    int dev_index;
    if (ttsm__backend_lookup(device, &be, &dev_index) != 0)
        return ttsm__err(err, TTSM_ERR_DEVICE, device, "no backend", "device has no backend");

    uint64_t now = now_ns(mgr);
    pthread_mutex_lock(&mgr->lock);
    sweep_locked(mgr, now);
    ttsm__entry *e;
again:
    e = ttsm__entries_find(mgr, key);
    if (e && e->state == TTSM__LOADING && pthread_equal(e->loader, pthread_self())) {
        /* A factory or build hook loading the model it is building would
         * wait for itself forever. */
        st = ttsm__err(err, TTSM_ERR_ENGINE, cfg->engine, "load of itself",
                       "%s (%s) is loaded again from inside its own factory or build hook",
                       key, e->m.label);
        pthread_mutex_unlock(&mgr->lock);
        return st;
    }
    if (e && e->state == TTSM__LOADING) {
        e->waiters++;
        while (e->state == TTSM__LOADING)
            pthread_cond_wait(&mgr->cond, &mgr->lock);
        e->waiters--;
        if (e->state == TTSM__FAILED) {
            st = e->fail_st;
            if (err && e->fail_err)
                *err = *e->fail_err;
            else
                ttsm__err(err, st, cfg->engine, "load failed", "a concurrent load failed");
            settle(mgr, e); /* the caller holds the manager: never the last */
            unlock_reap(mgr);
            return st;
        }
        if (e->state != TTSM__READY) { /* left the cache before we woke */
            settle(mgr, e);
            goto again;
        }
    }
    if (e) {
        atomic_fetch_add(&e->refs, 1);
        mgr->stats.hits++;
        e->last_used = now;
        ttsm__list_touch(mgr, e);
        unlock_reap(mgr);
        ttsm__logf(&mgr->log, TTSM_LOG_DEBUG, "hit %s (%s/%s on %s)", e->m.key, e->m.engine,
                   e->m.label, e->m.device);
        *out = &e->m;
        *got = GOT_HIT;
        return TTSM_OK;
    }
    if (eng.caps.single_instance) {
        for (ttsm__entry *o = mgr->head, *next; o; o = next) {
            next = o->next;
            if (strcmp(o->m.engine, cfg->engine) != 0)
                continue;
            if (!evictable(o)) {
                st = ttsm__err(err, TTSM_ERR_ENGINE, cfg->engine, "single instance",
                               "the engine allows one loaded model and %s (%s on %s) is in use",
                               o->m.key, o->m.label, o->m.device);
                unlock_reap(mgr);
                return st;
            }
            evict(mgr, o, "single-instance");
        }
    }
    int slot = slot_of(mgr, device);
    e = slot < 0 ? NULL : ttsm__calloc(1, sizeof *e);
    if (!e || !(e->m.engine = ttsm__strdup(cfg->engine)) || !(e->m.label = ttsm__strdup(label_of(cfg)))) {
        if (e)
            ttsm__free(e->m.engine);
        ttsm__free(e);
        unlock_reap(mgr);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, cfg->engine, "out of memory",
                         slot < 0 ? "more than %d devices in one manager" : "entry (%d)",
                         TTSM_MANAGER_MAX_DEVICES);
    }
    e->mgr = mgr;
    e->m.pool = &mgr->pool;
    e->state = TTSM__LOADING;
    memcpy(e->m.key, key, sizeof key);
    memcpy(e->m.device, device, sizeof device);
    e->m.backend = be;
    e->m.dev_index = dev_index;
    e->m.convert = canon->dtype;
    e->slot = slot;
    e->loader = pthread_self();
    ttsm__list_append(mgr, e);
    mgr->n_alive++;
    mgr->stats.misses++;
    int recovering = take_invalid(mgr, key);
    unlock_reap(mgr);

    ttsm__entry *twin;
    st = load_miss(mgr, e, &eng, cfg, &canon->cfg, recovering, &twin, err);
    if (st == TTSM_OK) {
        *out = twin ? &twin->m : &e->m;
        *got = twin ? GOT_SHARED : GOT_LOAD;
        return TTSM_OK;
    }
    ttsm__logf(&mgr->log, TTSM_LOG_WARN, "load of %s (%s/%s on %s) failed: %s", key, cfg->engine,
              label_of(cfg), device, err ? err->message : ttsm_status_name(st));
    pthread_mutex_lock(&mgr->lock);
    if (recovering && mgr->n_invalid < mgr->cap_invalid) { /* still owed to the next load */
        char *copy = ttsm__strdup(key);
        if (copy)
            mgr->invalid[mgr->n_invalid++] = copy;
    }
    fail_entry(mgr, e, st, err);
    unlock_reap(mgr);
    return st;
}

/* A step of a manifest's fallback chain: the caller's config with another
 * model (and, falling back across languages, no language). */
typedef struct chain_step {
    ttsm_manager *mgr;
    ttsm_load_config cfg;
    const ttsm__canon *canon; /* cfg already canonical (the first try), or NULL */
    ttsm_load_report *rep;    /* where each attempt is recorded; may be NULL */
} chain_step;

/* Every attempt of a load passes here, so the report sees each one: the
 * model asked for, the chain's steps, the device fallback. */
static ttsm_status load_step(void *user, ttsm_model **out, ttsm_error *err)
{
    chain_step *cs = user;
    ttsm__canon c;
    const ttsm__canon *canon = cs->canon;
    int got = GOT_LOAD;
    ttsm_error mine;
    ttsm_error *e = err ? err : &mine;
    ttsm_status st = TTSM_OK;
    if (!canon && (st = ttsm__canonicalize(&cs->cfg, &c, e)) == TTSM_OK)
        canon = &c;
    if (st == TTSM_OK) {
        ttsm__logf(&cs->mgr->log, TTSM_LOG_DEBUG, "try %s/%s on %s", canon->cfg.engine,
                   label_of(&canon->cfg), canon->cfg.device ? canon->cfg.device : "auto");
        st = load_once(cs->mgr, canon, out, &got, e);
    }
    if (cs->rep) {
        const ttsm_load_config *k = canon ? &canon->cfg : &cs->cfg;
        char dev[TTSM_DEVICE_NAME_MAX];
        if (ttsm_device_resolve(k->device, dev, sizeof dev, NULL) != TTSM_OK)
            ttsm__format_trunc(dev, sizeof dev, "%s", k->device ? k->device : "auto");
        ttsm__report_step(cs->rep, label_of(k), dev, st, e);
        if (st == TTSM_OK) {
            cs->rep->hit = got == GOT_HIT;
            cs->rep->shared = got == GOT_SHARED;
        }
    }
    return st;
}

/* Device -> cpu when the caller allowed it (a manager option, since params
 * are part of the key). */
static ttsm_status load_with_device_fallback(ttsm_manager *mgr, const ttsm_load_config *cfg,
                                             const ttsm__canon *canon, ttsm_load_report *rep,
                                             ttsm_model **out, ttsm_error *err)
{
    ttsm_error first;
    chain_step cs = {mgr, *cfg, canon, rep};
    ttsm_status st = load_step(&cs, out, &first);
    if (st == TTSM_OK)
        return st;
    char dev[TTSM_DEVICE_NAME_MAX];
    if (st == TTSM_ERR_OUT_OF_MEMORY && mgr->opt.allow_cpu_fallback &&
        ttsm_device_resolve(cfg->device, dev, sizeof dev, NULL) == TTSM_OK &&
        strcmp(dev, "cpu") != 0) {
        cs.cfg.device = "cpu";
        cs.canon = NULL;
        ttsm__logf(&mgr->log, TTSM_LOG_WARN, "falling back to cpu: %s", first.message);
        st = load_step(&cs, out, err);
        if (st != TTSM_OK)
            ttsm__err_add_attempt(err, first.code, first.message);
        return st;
    }
    if (err)
        *err = first;
    return st;
}

static ttsm_status load_device_step(void *user, ttsm_model **out, ttsm_error *err)
{
    chain_step *cs = user;
    return load_with_device_fallback(cs->mgr, &cs->cfg, cs->canon, cs->rep, out, err);
}

/* A hit through the memo. @return 1 with *out set, or 0: take the full path. */
static int memo_hit(ttsm_manager *mgr, XXH128_hash_t h, int has_path, ttsm_model **out)
{
    /* One poll, outside the lock, tells whether a path the memo trusts may
     * have moved; events are queued before the change's system call returns. */
    struct ttsm__pathwatch *w = has_path ? atomic_load(&mgr->watch) : NULL;
    int pending = w && ttsm__pathwatch_pending(w);
    /* The time matters only to the keep-alive sweep: a hit's entry is
     * referenced, and its last use is set when the reference goes. */
    uint64_t now = mgr->opt.keep_alive_ms ? now_ns(mgr) : 0, gen = ttsm__config_generation();
    int hit = 0;
    pthread_mutex_lock(&mgr->lock);
    if (pending)
        ttsm__memo_watch_drain(mgr);
    ttsm__memo_slot *slot = ttsm__memo_find(mgr, h);
    if (slot && slot->gen == (uint32_t)gen &&
        (!slot->has_path || slot->fs_gen == (uint32_t)mgr->fs_gen)) {
        if (now)
            sweep_locked(mgr, now);
        ttsm__entry *e = slot->frees == (uint32_t)mgr->frees ? slot->entry : NULL;
        if (!e || e->state != TTSM__READY) {
            e = ttsm__entries_find(mgr, mgr->memo_keys[slot - mgr->memo]);
            slot->entry = e;
            slot->frees = (uint32_t)mgr->frees;
            slot->on_cpu = e && strcmp(e->m.device, "cpu") == 0;
        }
        if (e && e->state == TTSM__READY) {
            /* Not moved in the list: the last release moves it (and a
             * referenced entry is neither evicted nor swept). */
            atomic_fetch_add(&e->refs, 1);
            *out = &e->m;
            hit = slot->on_cpu ? 1 : 2;
            if (hit == 1)
                mgr->stats.hits++;
        }
    }
    unlock_reap(mgr);
    if (hit == 2) {
        /* A device can go away (a registered backend's count, a driver
         * reset): the full path then says so, as it would for a new key.
         * Asked outside the lock, since the backend is the caller's code. */
        const ttsm_backend *b = &(*out)->backend;
        if (b->count && (size_t)(*out)->dev_index >= b->count(b->user)) {
            ttsm_model_release(*out);
            *out = NULL;
            return 0;
        }
        pthread_mutex_lock(&mgr->lock);
        mgr->stats.hits++;
        unlock_reap(mgr);
    }
    return hit != 0;
}

ttsm_status ttsm_load(ttsm_manager *mgr, const ttsm_load_config *cfg, ttsm_model **out,
                      ttsm_error *err)
{
    return ttsm_load_with_report(mgr, cfg, out, NULL, err);
}

/* The chain a manifest declares (ENGINES.md): the model asked for; a
 * variant's base model; for a language other than English, the engine's
 * language_fallback model. Each step is a full load, so a fallback that
 * lands on an entry already cached is a hit. */
static ttsm_status load_chain(ttsm_manager *mgr, const ttsm_load_config *cfg,
                              const ttsm__canon *c, ttsm_load_report *rep, ttsm_model **out,
                              ttsm_error *err)
{
    const ttsm__manifest *m = c->manifest;
    const ttsm__model_spec *ms = c->model;
    chain_step steps[3];
    ttsm_fallback_step fs[3];
    size_t n = 0;
    steps[n] = (chain_step){mgr, *cfg, c, rep};
    fs[n] = (ttsm_fallback_step){ms->name, load_device_step, &steps[n], NULL, NULL};
    n++;
    if (ms->variant_of) {
        steps[n] = (chain_step){mgr, *cfg, NULL, rep};
        steps[n].cfg.model_name = ms->variant_of;
        steps[n].cfg.model_path = steps[n].cfg.repo_id = NULL;
        fs[n] = (ttsm_fallback_step){ms->variant_of, load_device_step, &steps[n],
                                     ttsm_fallback_if_missing_or_bad, NULL};
        n++;
    }
    const ttsm__model_spec *lf = ttsm__manifest_model(m, m->language_fallback);
    if (lf && lf != ms && ms->language && lf->language && strcmp(ms->language, lf->language) != 0) {
        steps[n] = (chain_step){mgr, *cfg, NULL, rep};
        steps[n].cfg.model_name = lf->name;
        steps[n].cfg.language = NULL;
        steps[n].cfg.model_path = steps[n].cfg.repo_id = NULL;
        fs[n] = (ttsm_fallback_step){lf->name, load_device_step, &steps[n],
                                     ttsm_fallback_if_missing_or_bad, NULL};
        n++;
    }
    if (n == 1)
        return load_with_device_fallback(mgr, cfg, c, rep, out, err);
    ttsm_status st = ttsm_fallback_run(fs, n, out, err);
    if (st == TTSM_OK && strcmp((*out)->label, ms->name) != 0)
        ttsm__logf(&mgr->log, TTSM_LOG_WARN, "%s/%s not available: loaded %s instead", m->name,
                   ms->name, (*out)->label);
    return st;
}

static ttsm_status load(ttsm_manager *mgr, const ttsm_load_config *cfg, XXH128_hash_t *h,
                        ttsm_model **out, ttsm_load_report *rep, ttsm_error *err);

ttsm_status ttsm_load_with_report(ttsm_manager *mgr, const ttsm_load_config *cfg,
                                  ttsm_model **out, ttsm_load_report *rep, ttsm_error *err)
{
    XXH128_hash_t h = {0, 0};
    ttsm_status st = load(mgr, cfg, &h, out, rep, err);
    if (st == TTSM_OK && (h.low64 | h.high64))
        ttsm__memo_link(mgr, h, *out);
    if (st == TTSM_OK && mgr->opt.prefetch && ttsm_model_prefetch(*out, NULL) != TTSM_OK)
        ttsm__logf(&mgr->log, TTSM_LOG_WARN, "prefetch of %s not started", (*out)->key);
    return st;
}

/* @param h set to the hash of the config as given (0, 0: nothing to link). */
static ttsm_status load(ttsm_manager *mgr, const ttsm_load_config *cfg, XXH128_hash_t *h,
                        ttsm_model **out, ttsm_load_report *rep, ttsm_error *err)
{
    if (!mgr || !cfg || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_load", "invalid argument",
                         "manager, config and out must not be NULL");
    ttsm_status st = ttsm__report_begin(rep, err);
    if (st != TTSM_OK)
        return st;
    char raw[1024];
    size_t raw_len = ttsm_load_config_validate(cfg, NULL) == TTSM_OK
                         ? ttsm__memo_raw_config(cfg, raw, sizeof raw)
                         : 0;
    if (raw_len)
        *h = XXH3_128bits(raw, raw_len);
    if (raw_len && memo_hit(mgr, *h, cfg->model_path != NULL, out)) {
        *h = (XXH128_hash_t){0, 0}; /* its slot already points at the entry */
        if (rep) {
            ttsm__report_step(rep, (*out)->label, (*out)->device, TTSM_OK, NULL);
            rep->hit = 1;
            ttsm__report_finish(rep, *out);
        }
        return TTSM_OK;
    }
    ttsm__canon c;
    st = ttsm__canonicalize(cfg, &c, err);
    if (st != TTSM_OK) {
        ttsm__report_step(rep, cfg->model_name ? cfg->model_name : label_of(cfg), cfg->device,
                          st, err);
        ttsm__report_finish(rep, NULL);
        return st;
    }
    /* A relabelled config (a repo id that holds another model's files)
     * stays off the memo: a memo hit could not report what it asked. */
    if (c.asked) {
        char why[TTSM_ERROR_MESSAGE_MAX];
        ttsm__format_trunc(why, sizeof why,
                           "%s/%s: the repo %s holds the files of %s, so that is what loads",
                           c.manifest->name, c.asked->name, cfg->repo_id, c.model->name);
        ttsm__report_relabel(rep, c.asked->name, why);
        *h = (XXH128_hash_t){0, 0};
    } else if (raw_len) {
        ttsm__memo_fill(mgr, *h, &c.cfg, cfg->model_path);
    }
    /* The full path canonicalises once: the first try reuses `c`. */
    if (!c.manifest || !c.manifest->has_fallback)
        st = load_with_device_fallback(mgr, cfg, &c, rep, out, err);
    else
        st = load_chain(mgr, cfg, &c, rep, out, err);
    ttsm__report_finish(rep, st == TTSM_OK ? *out : NULL);
    return st;
}

ttsm_status ttsm_model_prefetch(ttsm_model *model, ttsm_error *err)
{
    if (!model)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_prefetch",
                         "invalid argument", "model must not be NULL");
    ttsm_model_retain(model); /* the pass's own, dropped when it is done */
    return ttsm__prefetch_start(model, ttsm_model_release, err);
}

/* ---- references, pin, unload, invalidate ------------------------------- */

void ttsm_model_retain(ttsm_model *model)
{
    if (model)
        atomic_fetch_add(&ttsm__entry_of(model)->refs, 1);
}

void ttsm_model_release(ttsm_model *model)
{
    if (!model)
        return;
    ttsm__entry *m = ttsm__entry_of(model);
    ttsm_manager *mgr = m->mgr;
    uint64_t now = now_ns(mgr);
    int last = 0;
    pthread_mutex_lock(&mgr->lock);
    size_t before = atomic_fetch_sub(&m->refs, 1);
    if (before == 1) {
        m->last_used = now;
        /* The list stays ordered by last use, so eviction takes the least
         * recently used and the keep-alive sweep can stop early. */
        if (m->state == TTSM__READY)
            ttsm__list_touch(mgr, m);
        if (m->state == TTSM__ORPHAN)
            last = settle(mgr, m);
    }
    if (last) {
        pthread_mutex_unlock(&mgr->lock);
        manager_free(mgr);
        return;
    }
    unlock_reap(mgr);
}

void ttsm_model_retain_inner(ttsm_model *model)
{
    if (model)
        atomic_fetch_add(&ttsm__entry_of(model)->inner, 1);
}

void ttsm_model_release_inner(ttsm_model *model)
{
    if (!model)
        return;
    ttsm__entry *m = ttsm__entry_of(model);
    ttsm_manager *mgr = m->mgr;
    pthread_mutex_lock(&mgr->lock);
    atomic_fetch_sub(&m->inner, 1);
    if (settle(mgr, m)) {
        pthread_mutex_unlock(&mgr->lock);
        manager_free(mgr);
        return;
    }
    unlock_reap(mgr);
}

static ttsm_status with_entry(ttsm_manager *mgr, const char *key, ttsm__entry **out,
                              ttsm_error *err)
{
    *out = key ? ttsm__entries_find(mgr, key) : NULL;
    if (!*out)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, key ? key : "(null)", "not loaded",
                         "no cache entry has this key");
    return TTSM_OK;
}

static ttsm_status set_pin(ttsm_manager *mgr, const char *key, int pin, ttsm_error *err)
{
    if (!mgr)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "pin", "invalid argument", "manager");
    pthread_mutex_lock(&mgr->lock);
    ttsm__entry *e;
    ttsm_status st = with_entry(mgr, key, &e, err);
    if (st == TTSM_OK)
        e->pinned = pin;
    pthread_mutex_unlock(&mgr->lock);
    return st;
}

ttsm_status ttsm_pin(ttsm_manager *mgr, const char *key, ttsm_error *err)
{
    return set_pin(mgr, key, 1, err);
}

ttsm_status ttsm_unpin(ttsm_manager *mgr, const char *key, ttsm_error *err)
{
    return set_pin(mgr, key, 0, err);
}

ttsm_status ttsm_unload(ttsm_manager *mgr, const char *key, ttsm_error *err)
{
    if (!mgr)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "unload", "invalid argument", "manager");
    pthread_mutex_lock(&mgr->lock);
    ttsm__entry *e;
    ttsm_status st = with_entry(mgr, key, &e, err);
    if (st == TTSM_OK) {
        size_t refs = atomic_load(&e->refs);
        if (e->state == TTSM__LOADING || refs || e->waiters) {
            st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, key, "in use",
                           e->state == TTSM__LOADING ? "the entry is still loading"
                                                     : "the entry has %zu references",
                           refs);
            ttsm__err_hint(err, "release the model first, or invalidate it");
        } else {
            ttsm__logf(&mgr->log, TTSM_LOG_INFO, "unload %s (%s/%s on %s)", e->m.key, e->m.engine,
                      e->m.label, e->m.device);
            mgr->stats.unloads++;
            retire(mgr, e, "unload", 1);
        }
    }
    unlock_reap(mgr);
    return st;
}

ttsm_status ttsm_invalidate(ttsm_manager *mgr, const char *key, ttsm_error *err)
{
    if (!mgr)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "invalidate", "invalid argument",
                         "manager");
    pthread_mutex_lock(&mgr->lock);
    ttsm__entry *e;
    ttsm_status st = with_entry(mgr, key, &e, err);
    if (st == TTSM_OK && e->state == TTSM__LOADING)
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, key, "in use", "the entry is still loading");
    if (st == TTSM_OK) {
        int known = 0;
        for (size_t i = 0; i < mgr->n_invalid && !known; i++)
            known = strcmp(mgr->invalid[i], key) == 0;
        char *copy = known ? NULL : ttsm__strdup(key);
        if (!known && (!copy || ttsm__grow((void **)&mgr->invalid, &mgr->cap_invalid,
                                           mgr->n_invalid + 1, sizeof *mgr->invalid,
                                           1u << 20) != 0)) {
            ttsm__free(copy);
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, key, "out of memory", "invalidation");
        } else {
            if (copy)
                mgr->invalid[mgr->n_invalid++] = copy;
            /* Its other keys owe the recovery too: the next load through
             * any of them rebuilds the same files (best effort when memory
             * runs out; the key asked for is always recorded). */
            for (ttsm__alias *a = e->aliases; a; a = a->next_of_entry) {
                int owed = 0;
                for (size_t i = 0; i < mgr->n_invalid && !owed; i++)
                    owed = strcmp(mgr->invalid[i], a->key) == 0;
                char *k = owed ? NULL : ttsm__strdup(a->key);
                if (k && ttsm__grow((void **)&mgr->invalid, &mgr->cap_invalid, mgr->n_invalid + 1,
                                    sizeof *mgr->invalid, 1u << 20) == 0)
                    mgr->invalid[mgr->n_invalid++] = k;
                else
                    ttsm__free(k);
            }
            ttsm__logf(&mgr->log, TTSM_LOG_INFO, "invalidate %s (%s/%s on %s)", e->m.key, e->m.engine,
                      e->m.label, e->m.device);
            mgr->stats.invalidations++;
            retire(mgr, e, "invalidate", 1);
        }
    }
    unlock_reap(mgr);
    return st;
}

void ttsm_manager_destroy(ttsm_manager *mgr)
{
    if (!mgr)
        return;
    pthread_mutex_lock(&mgr->lock);
    int timer = mgr->sweeper_running;
    mgr->sweeper_stop = 1;
    pthread_cond_signal(&mgr->sweep_cond);
    pthread_mutex_unlock(&mgr->lock);
    if (timer)
        pthread_join(mgr->sweeper, NULL);
    pthread_mutex_lock(&mgr->lock);
    mgr->sweeper_running = 0;
    mgr->closing = 1;
    /* Counted as a reaper until the end, so nothing frees the manager under
     * this call: the last of its objects (here or later) does. */
    mgr->reapers++;
    while (mgr->head)
        retire(mgr, mgr->head, NULL, 0);
    pthread_mutex_unlock(&mgr->lock);
    reap(mgr);
}

/* ---- the keep-alive timer and free() ------------------------------------ */

/* Sleeps until the least recently used idle entry's keep-alive ends (or a
 * keep-alive from now, when none is idle), sweeps, repeats; wakes at once
 * to stop. Deadlines are in the manager's clock, the sleep in real time. */
static void *sweeper_main(void *arg)
{
    ttsm_manager *mgr = arg;
    uint64_t ka = mgr->opt.keep_alive_ms * 1000000ull;
    pthread_mutex_lock(&mgr->lock);
    while (!mgr->sweeper_stop) {
        uint64_t now = now_ns(mgr);
        sweep_locked(mgr, now);
        if (mgr->reap_head) {
            unlock_reap(mgr);
            pthread_mutex_lock(&mgr->lock);
            continue;
        }
        uint64_t wait = ka;
        for (ttsm__entry *e = mgr->head; e; e = e->next)
            if (evictable(e)) {
                uint64_t end = e->last_used + ka;
                wait = end > now ? end - now : 0;
                break;
            }
        if (wait < 1000000)
            wait = 1000000; /* 1 ms: the clock may lag what the entry was stamped with */
        if (wait > 3600000000000ull)
            wait = 3600000000000ull; /* an hour, then look again */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + wait % 1000000000ull;
        ts.tv_sec += (time_t)(wait / 1000000000ull + ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        int rc = pthread_cond_timedwait(&mgr->sweep_cond, &mgr->lock, &ts);
        (void)rc; /* ETIMEDOUT or a signal: either way, look again */
    }
    pthread_mutex_unlock(&mgr->lock);
    return NULL;
}

ttsm_status ttsm_manager_free(ttsm_manager *mgr, const char *device, uint64_t nbytes,
                              uint64_t *available, ttsm_error *err)
{
    if (!mgr)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "free", "invalid argument", "manager");
    char dev[TTSM_DEVICE_NAME_MAX];
    ttsm_status st = ttsm_device_resolve(device, dev, sizeof dev, err);
    if (st != TTSM_OK)
        return st;
    ttsm_backend be;
    int dev_index;
    if (ttsm__backend_lookup(dev, &be, &dev_index) != 0)
        return ttsm__err(err, TTSM_ERR_DEVICE, dev, "no backend", "device has no backend");
    uint64_t free_b = 0, total = 0;
    int known = !be.host_visible && be.memory &&
                be.memory(be.user, dev_index, &free_b, &total, NULL) == TTSM_OK;
    pthread_mutex_lock(&mgr->lock);
    int slot = slot_of(mgr, dev);
    uint64_t fits = UINT64_MAX;
    if (slot >= 0) {
        ttsm__entry probe; /* device_limit reads the slot and the backend */
        memset(&probe, 0, sizeof probe);
        probe.slot = slot;
        probe.m.backend = be;
        uint64_t limit = device_limit(mgr, &probe, free_b, known);
        ttsm__devslot *d = &mgr->devs[slot];
        if (limit != UINT64_MAX)
            make_room(mgr, slot, nbytes, limit, "free", 0);
        uint64_t used = d->in_use + d->reserved;
        fits = limit == UINT64_MAX ? UINT64_MAX : limit > used ? limit - used : 0;
    }
    unlock_reap(mgr);
    if (available)
        *available = fits;
    return TTSM_OK;
}

/* ---- listing and stats -------------------------------------------------- */

ttsm_status ttsm_manager_list(ttsm_manager *mgr, ttsm_entry_info **out, size_t *n,
                              ttsm_error *err)
{
    if (!mgr || !out || !n)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "list", "invalid argument",
                         "manager, out and n must not be NULL");
    uint64_t now = now_ns(mgr);
    pthread_mutex_lock(&mgr->lock);
    sweep_locked(mgr, now);
    size_t count = mgr->n_cached;
    ttsm_entry_info *v = ttsm__calloc(count ? count : 1, sizeof *v);
    if (!v) {
        unlock_reap(mgr);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "list", "out of memory", "listing");
    }
    size_t i = 0;
    for (ttsm__entry *e = mgr->head; e; e = e->next, i++)
        ttsm__entry_info_of(e, &v[i], now, e->last_used);
    unlock_reap(mgr);
    *out = v;
    *n = count;
    return TTSM_OK;
}

void ttsm_manager_get_stats(ttsm_manager *mgr, ttsm_manager_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!mgr)
        return;
    pthread_mutex_lock(&mgr->lock);
    *out = mgr->stats;
    out->entries = mgr->n_cached;
    out->orphans = mgr->n_orphans;
    out->n_devices = mgr->n_devs;
    out->checkpoint_opens = ttsm__pool_opens(&mgr->pool);
    for (size_t i = 0; i < mgr->n_devs; i++) {
        ttsm_device_stats *d = &out->devices[i];
        memcpy(d->device, mgr->devs[i].name, sizeof d->device);
        d->budget = mgr->devs[i].budget;
        d->in_use = mgr->devs[i].in_use;
        d->reserved = mgr->devs[i].reserved;
        d->peak = mgr->devs[i].peak;
        d->entries = mgr->devs[i].entries;
    }
    pthread_mutex_unlock(&mgr->lock);
}
