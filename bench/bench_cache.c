/* bench_cache.c - the manager's cache: hit latency (one and two threads),
 * single-flight of a miss with 64 waiters, eviction churn (every load evicts)
 * on a cpu budget and on a registered non-host device, and the cost of a hit
 * and of a miss as the cache grows from 1 to 10,000 entries. Baselines come
 * from the same process: ttsm_cache_key() of the same config, the bare
 * checkpoint open a load must do, the clock's own cost.
 * Usage: bench_cache --dir TMPDIR [--samples N] [--churn N] [--max-entries N] */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ttsm.h"

/* ---- a registered engine: no files, or one checkpoint; may sleep ------- */

typedef struct engine_state {
    atomic_long calls;
    _Atomic uint64_t end_ns; /* when the last factory call finished */
} engine_state;

static const char *param(const ttsm_load_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_params; i++)
        if (strcmp(cfg->params[i].key, key) == 0)
            return cfg->params[i].value;
    return NULL;
}

static ttsm_status bench_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                 ttsm_model **out, ttsm_error *err)
{
    engine_state *es = ttsm_factory_ctx_user(ctx);
    atomic_fetch_add(&es->calls, 1);
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st != TTSM_OK)
        return st;
    const char *path = param(cfg, "path"), *sleep_ms = param(cfg, "sleep_ms");
    if (path && (st = ttsm_model_add_checkpoint(m, "w", path, err)) != TTSM_OK)
        return st;
    if (sleep_ms) {
        long ms = atol(sleep_ms);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_store(&es->end_ns, bu_now_ns());
    *out = m;
    return TTSM_OK;
}

/* ---- a device that does not share host memory (copies on upload) ------ */

static size_t dev_count(void *user)
{
    (void)user;
    return 1;
}

static ttsm_status dev_alloc(void *user, int index, uint64_t n, void **out, ttsm_error *err)
{
    (void)user;
    (void)index;
    (void)err;
    void *p = aligned_alloc(256, (size_t)((n + 255) / 256 * 256));
    if (!p)
        return TTSM_ERR_OUT_OF_MEMORY;
    *out = p;
    return TTSM_OK;
}

static void dev_free(void *user, int index, void *p, uint64_t n)
{
    (void)user;
    (void)index;
    (void)n;
    free(p);
}

static ttsm_status dev_upload(void *user, int index, void *dst, const void *src, uint64_t n,
                              ttsm_error *err)
{
    (void)user;
    (void)index;
    (void)err;
    memcpy(dst, src, (size_t)n);
    return TTSM_OK;
}

/* ---- helpers ------------------------------------------------------------ */

static void check(ttsm_status st, const ttsm_error *err, const char *what)
{
    if (st != TTSM_OK)
        bu_die(what, err->message);
}

/* Writes a safetensors file of one F32 tensor of `bytes` bytes. */
static void write_st(const char *path, size_t bytes)
{
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}",
                      bytes / 4, bytes / 4 * 4);
    while (hl % 8)
        hdr[hl++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f)
        bu_die("cannot write", path);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(hdr, 1, (size_t)hl, f);
    unsigned char *data = bu_xmalloc(bytes / 4 * 4);
    for (size_t i = 0; i < bytes / 4 * 4; i++)
        data[i] = (unsigned char)(i * 131u);
    fwrite(data, 1, bytes / 4 * 4, f);
    free(data);
    if (fclose(f) != 0)
        bu_die("cannot write", path);
}

static const char *models_dirs; /* --models-dir: for the manifest engine's hits */

static ttsm_manager *new_manager(const ttsm_device_budget *b, size_t nb)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = b;
    o.n_budgets = nb;
    o.models_dirs = models_dirs;
    ttsm_manager *m;
    ttsm_error err;
    check(ttsm_manager_create(&o, &m, &err), &err, "ttsm_manager_create");
    return m;
}

static uint64_t timer_floor(void)
{
    uint64_t v[10001];
    for (int i = 0; i < 10001; i++) {
        uint64_t a = bu_now_ns();
        v[i] = bu_now_ns() - a;
    }
    return bu_quantile(v, 10001, 0.5, 0);
}

/* ---- hit latency -------------------------------------------------------- */

typedef struct hit_job {
    ttsm_manager *mgr;
    const ttsm_load_config *cfg;
    uint64_t *t;
    size_t n;
    pthread_barrier_t *start;
} hit_job;

static void *hit_loop(void *arg)
{
    hit_job *j = arg;
    ttsm_error err;
    if (j->start)
        pthread_barrier_wait(j->start);
    for (size_t i = 0; i < j->n; i++) {
        ttsm_model *m;
        uint64_t t0 = bu_now_ns();
        ttsm_status st = ttsm_load(j->mgr, j->cfg, &m, &err);
        j->t[i] = bu_now_ns() - t0;
        check(st, &err, "ttsm_load (hit)");
        ttsm_model_release(m);
    }
    return NULL;
}

static void bench_hits(const char *label, const ttsm_load_config *cfg, size_t n)
{
    ttsm_error err;
    ttsm_manager *mgr = new_manager(NULL, 0);
    ttsm_model *m;
    check(ttsm_load(mgr, cfg, &m, &err), &err, "ttsm_load (miss)");
    ttsm_model_release(m);

    /* A hit and its baseline (the key alone) take turns, so a burst of
     * other work on the machine disturbs both alike. */
    uint64_t *k = bu_xmalloc(sizeof *k * n), *t = bu_xmalloc(sizeof *t * n * 2);
    char key[TTSM_KEY_HEX_SIZE];
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bu_now_ns();
        ttsm_status st = ttsm_cache_key(cfg, key, &err);
        uint64_t t1 = bu_now_ns();
        check(st, &err, "ttsm_cache_key");
        st = ttsm_load(mgr, cfg, &m, &err);
        uint64_t t2 = bu_now_ns();
        check(st, &err, "ttsm_load (hit)");
        ttsm_model_release(m);
        k[i] = t1 - t0;
        t[i] = t2 - t1;
    }
    bu_stats ks = bu_summarise(k, n), s1 = bu_summarise(t, n);

    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    hit_job two[2] = {{mgr, cfg, t, n, &bar}, {mgr, cfg, t + n, n, &bar}};
    pthread_t th;
    if (pthread_create(&th, NULL, hit_loop, &two[1]) != 0)
        bu_die("pthread_create", NULL);
    hit_loop(&two[0]);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&bar);
    bu_stats s2 = bu_summarise(t, 2 * n);

    ttsm_manager_stats st;
    ttsm_manager_get_stats(mgr, &st);
    bu_begin("cache_hit");
    bu_str("label", label);
    bu_stats_out("hit1", &s1);
    bu_stats_out("hit2", &s2);
    bu_stats_out("key", &ks);
    bu_u64("hits", st.hits);
    bu_u64("misses", st.misses);
    bu_end();
    free(t);
    free(k);
    ttsm_manager_destroy(mgr);
}

/* ---- single-flight ------------------------------------------------------ */

#define WAITERS 64

typedef struct sf_job {
    ttsm_manager *mgr;
    const ttsm_load_config *cfg;
    pthread_barrier_t *start;
    uint64_t t_start, t_ret;
    ttsm_status st;
} sf_job;

static void *sf_loop(void *arg)
{
    sf_job *j = arg;
    ttsm_error err;
    ttsm_model *m;
    pthread_barrier_wait(j->start);
    j->t_start = bu_now_ns();
    j->st = ttsm_load(j->mgr, j->cfg, &m, &err);
    j->t_ret = bu_now_ns();
    if (j->st == TTSM_OK)
        ttsm_model_release(m);
    return NULL;
}

static void bench_single_flight(engine_state *es, int rounds, long sleep_ms)
{
    uint64_t *wake = bu_xmalloc(sizeof *wake * WAITERS * (size_t)rounds);
    uint64_t *wall = bu_xmalloc(sizeof *wall * (size_t)rounds);
    size_t nw = 0;
    long calls = 0;
    uint64_t hits = 0, misses = 0;
    char sleep_v[32];
    snprintf(sleep_v, sizeof sleep_v, "%ld", sleep_ms);
    for (int r = 0; r < rounds; r++) {
        ttsm_manager *mgr = new_manager(NULL, 0);
        char round_v[32];
        snprintf(round_v, sizeof round_v, "%d", r);
        ttsm_param p[2] = {{"round", round_v}, {"sleep_ms", sleep_v}};
        ttsm_load_config cfg = ttsm_load_config_default();
        cfg.engine = "bench_null";
        cfg.device = "cpu";
        cfg.params = p;
        cfg.n_params = 2;
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, WAITERS);
        sf_job jobs[WAITERS];
        pthread_t th[WAITERS];
        long before = atomic_load(&es->calls);
        for (int i = 0; i < WAITERS; i++) {
            jobs[i] = (sf_job){mgr, &cfg, &bar, 0, 0, TTSM_OK};
            if (pthread_create(&th[i], NULL, sf_loop, &jobs[i]) != 0)
                bu_die("pthread_create", NULL);
        }
        for (int i = 0; i < WAITERS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        calls += atomic_load(&es->calls) - before;
        uint64_t end = atomic_load(&es->end_ns), first = UINT64_MAX, last = 0;
        for (int i = 0; i < WAITERS; i++) {
            if (jobs[i].st != TTSM_OK)
                bu_die("single-flight load failed", ttsm_status_name(jobs[i].st));
            first = jobs[i].t_start < first ? jobs[i].t_start : first;
            last = jobs[i].t_ret > last ? jobs[i].t_ret : last;
            wake[nw++] = jobs[i].t_ret > end ? jobs[i].t_ret - end : 0;
        }
        wall[r] = last - first;
        ttsm_manager_stats st;
        ttsm_manager_get_stats(mgr, &st);
        hits += st.hits;
        misses += st.misses;
        ttsm_manager_destroy(mgr);
    }
    bu_stats ws = bu_summarise(wake, nw), wl = bu_summarise(wall, (size_t)rounds);
    bu_begin("single_flight");
    bu_u64("waiters", WAITERS);
    bu_u64("rounds", (uint64_t)rounds);
    bu_u64("factory_calls", (uint64_t)calls);
    bu_u64("hits", hits);
    bu_u64("misses", misses);
    bu_u64("load_ns", (uint64_t)sleep_ms * 1000000u);
    bu_stats_out("wake", &ws);
    bu_stats_out("wall", &wl);
    bu_end();
    free(wake);
    free(wall);
}

/* ---- eviction churn ----------------------------------------------------- */

static void bench_churn(const char *label, const char *device, const char *const files[2],
                        uint64_t budget, size_t n, int copy_baseline)
{
    ttsm_device_budget b = {device, budget};
    ttsm_manager *mgr = new_manager(&b, 1);
    ttsm_error err;
    ttsm_load_config cfg[2];
    for (int i = 0; i < 2; i++) {
        cfg[i] = ttsm_load_config_default();
        cfg[i].engine = "file";
        cfg[i].model_path = files[i];
        cfg[i].device = device;
    }
    uint64_t t0 = bu_now_ns();
    for (size_t i = 0; i < n; i++) {
        ttsm_model *m;
        check(ttsm_load(mgr, &cfg[i % 2], &m, &err), &err, "ttsm_load (churn)");
        ttsm_model_release(m);
    }
    uint64_t dt = bu_now_ns() - t0;
    ttsm_manager_stats st;
    ttsm_manager_get_stats(mgr, &st);
    ttsm_manager_destroy(mgr);

    /* The least a load must do: open the checkpoint (and for a device that
     * does not share host memory, copy its bytes into a fresh buffer). */
    uint64_t b0 = bu_now_ns();
    for (size_t i = 0; i < n; i++) {
        ttsm_checkpoint *ck;
        check(ttsm_checkpoint_open(files[i % 2], NULL, &ck, &err), &err, "open");
        for (size_t k = 0; k < ttsm_checkpoint_tensor_count(ck); k++) {
            const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, k);
            const void *p;
            check(ttsm_checkpoint_tensor_data(ck, t, &p, &err), &err, "tensor_data");
            if (copy_baseline) {
                void *d = aligned_alloc(256, (size_t)((t->nbytes + 255) / 256 * 256));
                if (!d)
                    bu_die("out of memory", NULL);
                memcpy(d, p, (size_t)t->nbytes);
                volatile unsigned char sink = ((unsigned char *)d)[t->nbytes / 2];
                (void)sink;
                free(d);
            }
        }
        ttsm_checkpoint_close(ck);
    }
    uint64_t bt = bu_now_ns() - b0;
    bu_begin("churn");
    bu_str("label", label);
    bu_str("device", device);
    bu_u64("loads", n);
    bu_u64("budget", budget);
    bu_u64("evictions", st.evictions);
    bu_u64("manager_loads", st.loads);
    bu_u64("ns", dt);
    bu_u64("baseline_ns", bt);
    bu_f64("loads_per_s", (double)n * 1e9 / (double)dt);
    bu_f64("baseline_per_s", (double)n * 1e9 / (double)bt);
    bu_end();
}

/* ---- cost per operation as the cache grows ------------------------------ */

/* A reference for the hit's cost at N entries: one dependent read of a
 * random cache line in a buffer as large as what the cache's heap holds at
 * N (a hit makes a few such reads: the config, its memo slot, the entry's
 * reference count), in nanoseconds. */
static double random_read_ns(size_t bytes)
{
    size_t n = bytes / 64 < 64 ? 64 : bytes / 64;
    size_t *a = bu_xmalloc(n * 64), *perm = bu_xmalloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = n - 1; i > 0; i--) { /* one cycle through every line */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        a[perm[i] * 8] = perm[(i + 1) % n] * 8;
    size_t p = 0, steps = 400000;
    for (size_t i = 0; i < n; i++) /* fault in, warm what fits */
        p = a[p];
    uint64_t t0 = bu_now_ns();
    for (size_t i = 0; i < steps; i++)
        p = a[p];
    double ns = (double)(bu_now_ns() - t0) / (double)steps;
    static volatile size_t sink;
    sink = p; /* the chase must happen */
    free(a);
    free(perm);
    return ns;
}

static void bench_entries(size_t n_entries, size_t samples)
{
    ttsm_manager *mgr = new_manager(NULL, 0);
    ttsm_error err;
    size_t total = n_entries + samples;
    char(*vals)[24] = bu_xmalloc(sizeof *vals * total);
    for (size_t i = 0; i < total; i++)
        snprintf(vals[i], sizeof vals[i], "%zu", i);
    ttsm_param p = {"i", NULL};
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "bench_null";
    cfg.device = "cpu";
    cfg.params = &p;
    cfg.n_params = 1;
    struct mallinfo2 h0 = mallinfo2();
    uint64_t f0 = bu_now_ns();
    for (size_t i = 0; i < n_entries; i++) {
        ttsm_model *m;
        p.value = vals[i];
        check(ttsm_load(mgr, &cfg, &m, &err), &err, "ttsm_load (fill)");
        ttsm_model_release(m);
    }
    uint64_t fill = bu_now_ns() - f0;
    size_t heap = mallinfo2().uordblks - h0.uordblks;
    uint64_t *hit = bu_xmalloc(sizeof *hit * samples), *miss = bu_xmalloc(sizeof *miss * samples);
    uint64_t x = 88172645463325252ull; /* xorshift: hit entries in no cache-friendly order */
    for (size_t i = 0; i < samples; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p.value = vals[x % n_entries];
        ttsm_model *m;
        uint64_t t0 = bu_now_ns();
        ttsm_status st = ttsm_load(mgr, &cfg, &m, &err);
        hit[i] = bu_now_ns() - t0;
        check(st, &err, "ttsm_load (hit)");
        ttsm_model_release(m);
    }
    for (size_t i = 0; i < samples; i++) {
        p.value = vals[n_entries + i];
        ttsm_model *m;
        uint64_t t0 = bu_now_ns();
        ttsm_status st = ttsm_load(mgr, &cfg, &m, &err);
        miss[i] = bu_now_ns() - t0;
        check(st, &err, "ttsm_load (miss)");
        char key[TTSM_KEY_HEX_SIZE];
        memcpy(key, ttsm_model_key(m), sizeof key);
        ttsm_model_release(m);
        check(ttsm_unload(mgr, key, &err), &err, "ttsm_unload"); /* keeps n_entries */
    }
    ttsm_manager_stats st;
    ttsm_manager_get_stats(mgr, &st);
    bu_stats hs = bu_summarise(hit, samples), ms = bu_summarise(miss, samples);
    bu_begin("entries");
    bu_u64("entries", n_entries);
    bu_u64("cached_after", st.entries);
    bu_u64("fill_ns_per_load", n_entries ? fill / n_entries : 0);
    bu_u64("heap_bytes", heap);
    bu_f64("random_read_ns", random_read_ns(heap + n_entries * sizeof *vals));
    bu_stats_out("hit", &hs);
    bu_stats_out("miss", &ms);
    bu_end();
    free(hit);
    free(miss);
    free(vals);
    ttsm_manager_destroy(mgr);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    size_t samples = 100000, churn = 20000, max_entries = 10000, sf_rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc)
            samples = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--churn") == 0 && i + 1 < argc)
            churn = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--max-entries") == 0 && i + 1 < argc)
            max_entries = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            sf_rounds = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--models-dir") == 0 && i + 1 < argc)
            models_dirs = argv[++i];
        else
            bu_die("usage", "bench_cache --dir D [--samples N] [--churn N] [--max-entries N] "
                            "[--rounds N] [--models-dir D]");
    }
    if (!dir || samples < 100 || churn < 2 || max_entries < 1 || sf_rounds < 1)
        bu_die("usage", "bench_cache --dir D (samples >= 100, churn >= 2, rounds >= 1)");
    ttsm_error err;
    static engine_state es; /* outlives every manager: the registry keeps its address */
    ttsm_engine_caps caps = ttsm_engine_caps_default();
    caps.user = &es;
    check(ttsm_register_engine("bench_null", bench_factory, &caps, &err), &err,
          "ttsm_register_engine");
    ttsm_backend be = {TTSM_BACKEND_VERSION, "bdev", 0,        NULL,       dev_count,
                       NULL,                 dev_alloc, dev_free, dev_upload, NULL};
    check(ttsm_register_backend(&be, &err), &err, "ttsm_register_backend");

    char *small = bu_path(dir, "hit.safetensors");
    write_st(small, 4096);
    const size_t churn_bytes = 1u << 20;
    char *churn_f[2] = {bu_path(dir, "churn0.safetensors"), bu_path(dir, "churn1.safetensors")};
    for (int i = 0; i < 2; i++)
        write_st(churn_f[i], churn_bytes);

    bu_begin("timer");
    bu_u64("median_ns", timer_floor());
    bu_end();

    ttsm_load_config fcfg = ttsm_load_config_default();
    fcfg.engine = "file";
    fcfg.model_path = small;
    fcfg.device = "cpu";
    bench_hits("file engine, model_path (C)", &fcfg, samples);
    ttsm_load_config ncfg = ttsm_load_config_default();
    ncfg.engine = "bench_null";
    ncfg.device = "cpu";
    bench_hits("registered engine, no path (C)", &ncfg, samples);
    if (models_dirs) { /* the config peer_ttsm.py's Python hits use: the baseline they sit on */
        ttsm_load_config mcfg = ttsm_load_config_default();
        mcfg.engine = "chatterbox";
        mcfg.device = "cpu";
        bench_hits("manifest engine by name (C)", &mcfg, samples);
    }

    bench_single_flight(&es, (int)sf_rounds, 50);

    const char *cf[2] = {churn_f[0], churn_f[1]};
    /* A budget one model fits and two do not: every load evicts the other. */
    bench_churn("cpu budget", "cpu", cf, churn_bytes + churn_bytes / 2, churn, 0);
    bench_churn("registered device (copies)", "bdev:0", cf, churn_bytes + churn_bytes / 2, churn,
                1);

    size_t hs = samples / 10 < 1000 ? 1000 : samples / 10;
    for (size_t n = 1; n <= max_entries; n *= 10)
        bench_entries(n, hs);
    free(small);
    free(churn_f[0]);
    free(churn_f[1]);
    return 0;
}
