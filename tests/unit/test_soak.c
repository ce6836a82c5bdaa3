/* test_soak.c - a timed concurrency soak: threads mix loads, releases, tensor
 * reads, C DLPack exports deleted on other threads, pins, unloads, invalidations,
 * sweeps, listings, device allocation failures and a device dropping out, with
 * the invariants checked after every operation. TTSM_SOAK_SECONDS (default 3);
 * .ci/run runs 60 s under ThreadSanitizer. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "dlpack.h"
#include "fake_backend.h"
#include "mgr_util.h"

#define THREADS 6
#define FILES 24
#define HELD_MAX 3
#define BUDGET (12 * 1024)
#define EXPORTS_MAX 64

enum { OP_LOAD, OP_RELEASE, OP_READ, OP_EXPORT, OP_DELETE_EXPORT, OP_PIN, OP_UNPIN, OP_UNLOAD,
       OP_INVALIDATE, OP_SWEEP, OP_LIST, OP_FAULT, OP_DEVICE_DROP, OP_COUNT };
static const char *const op_names[OP_COUNT] = {
    "load", "release", "tensor read", "DLPack export", "export deleted elsewhere", "pin",
    "unpin", "unload", "invalidate", "keep-alive sweep", "list + stats",
    "injected device alloc failure", "device drop (fake:1 gone for a while)"};

typedef struct config {
    ttsm_load_config cfg;
    char key[TTSM_KEY_HEX_SIZE];
    float base; /* file configs: element i of tensor "w" is base + i; else NAN */
    int budgeted;
} config;

static ttsm_manager *mgr;
static char *tmp, *comfy, *nowhere, *paths[FILES];
static config configs[FILES * 3 + 4];
static size_t n_configs;
static atomic_bool stop;
static atomic_long op_count[OP_COUNT], load_ok, load_oom, load_device, violations;
static atomic_uint_fast64_t clock_ns;

/* Exports handed between threads: made by one, deleted by another. */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static DLManagedTensorVersioned *queue[EXPORTS_MAX];
static size_t q_len;

#define VIOLATION(...)                                                                        \
    do {                                                                                      \
        fprintf(stderr, __VA_ARGS__);                                                         \
        fputc('\n', stderr);                                                                  \
        atomic_fetch_add(&violations, 1);                                                     \
    } while (0)

static uint64_t fake_clock(void *user)
{
    (void)user;
    return atomic_load(&clock_ns);
}

static void check_invariants(void)
{
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    for (size_t i = 0; i < s.n_devices; i++) {
        const ttsm_device_stats *d = &s.devices[i];
        if (d->in_use > (1ull << 40) || d->reserved > (1ull << 40) ||
            (d->budget != UINT64_MAX && (d->in_use + d->reserved > d->budget || d->peak > d->budget)))
            VIOLATION("%s: in use %llu reserved %llu peak %llu budget %llu", d->device,
                      (unsigned long long)d->in_use, (unsigned long long)d->reserved,
                      (unsigned long long)d->peak, (unsigned long long)d->budget);
    }
    if (fake_allocated(0) > BUDGET)
        VIOLATION("fake:0 holds %llu bytes, budget %d", (unsigned long long)fake_allocated(0),
                  BUDGET);
    if (s.loads + s.failures > s.misses)
        VIOLATION("loads %llu + failures %llu > misses %llu", (unsigned long long)s.loads,
                  (unsigned long long)s.failures, (unsigned long long)s.misses);
}

static void check_listing(void)
{
    ttsm_entry_info *v;
    size_t n;
    if (ttsm_manager_list(mgr, &v, &n, NULL) != TTSM_OK) {
        VIOLATION("listing failed");
        return;
    }
    uint64_t fake0 = 0;
    for (size_t i = 0; i < n; i++) {
        /* holders: each thread's models, the queued exports, in-flight ones */
        if (v[i].refs > THREADS * (HELD_MAX + 2) + EXPORTS_MAX)
            VIOLATION("entry %s has %zu references", v[i].key, v[i].refs);
        if (strcmp(v[i].device, "fake:0") == 0)
            fake0 += v[i].bytes;
    }
    if (fake0 > BUDGET)
        VIOLATION("listed fake:0 entries hold %llu bytes", (unsigned long long)fake0);
    ttsm_free(v);
}

/* The tensor says what the file says, on the device the config asked for. */
static void check_model(const config *c, ttsm_model *m)
{
    const char *want = c->cfg.device;
    if (strcmp(ttsm_model_device(m), want) != 0 || strcmp(ttsm_model_key(m), c->key) != 0)
        VIOLATION("model %s on %s, wanted %s on %s", ttsm_model_key(m), ttsm_model_device(m),
                  c->key, want);
    if (c->base != c->base) /* engine models: any tensor, readable */
        return;
    const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, 0);
    if (!t || t->nbytes < 4) {
        VIOLATION("model %s has no tensor", c->key);
        return;
    }
    /* fake devices are host memory behind the backend, so readable here */
    size_t n = (size_t)(t->nbytes / 4);
    const float *d = t->data;
    if (d[0] != c->base || d[n - 1] != c->base + (float)(n - 1))
        VIOLATION("model %s: tensor holds %g..%g, file says %g..%g", c->key, (double)d[0],
                  (double)d[n - 1], (double)c->base, (double)(c->base + (float)(n - 1)));
}

static void delete_one_export(void)
{
    pthread_mutex_lock(&q_lock);
    DLManagedTensorVersioned *t = q_len ? queue[--q_len] : NULL;
    pthread_mutex_unlock(&q_lock);
    if (t)
        t->deleter(t);
}

typedef struct held {
    ttsm_model *m;
    const config *c;
} held;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 7;
    held h[HELD_MAX];
    int n_held = 0;
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        const config *c = &configs[r % n_configs];
        unsigned pick = (r >> 10) % 100;
        int op = pick < 28   ? OP_LOAD
                 : pick < 44 ? OP_RELEASE
                 : pick < 54 ? OP_READ
                 : pick < 64 ? OP_EXPORT
                 : pick < 70 ? OP_DELETE_EXPORT
                 : pick < 74 ? OP_PIN
                 : pick < 78 ? OP_UNPIN
                 : pick < 84 ? OP_UNLOAD
                 : pick < 90 ? OP_INVALIDATE
                 : pick < 94 ? OP_SWEEP
                 : pick < 98 ? OP_LIST
                 : pick < 99 ? OP_FAULT
                             : OP_DEVICE_DROP;
        switch (op) {
        case OP_LOAD: {
            if (n_held == HELD_MAX) {
                ttsm_model_release(h[--n_held].m);
                op = OP_RELEASE;
                break;
            }
            ttsm_model *m;
            ttsm_error err;
            ttsm_status st = ttsm_load(mgr, &c->cfg, &m, &err);
            if (st == TTSM_OK) {
                check_model(c, m);
                h[n_held].m = m;
                h[n_held++].c = c;
                atomic_fetch_add(&load_ok, 1);
            } else if (st == TTSM_ERR_OUT_OF_MEMORY) {
                atomic_fetch_add(&load_oom, 1); /* over budget, or injected */
            } else if (st == TTSM_ERR_DEVICE && strstr(err.message, "fake:1")) {
                atomic_fetch_add(&load_device, 1); /* fake:1 was gone */
            } else {
                VIOLATION("load %s: %s: %s", c->key, ttsm_status_name(st), err.message);
            }
            break;
        }
        case OP_RELEASE:
            if (n_held)
                ttsm_model_release(h[--n_held].m);
            break;
        case OP_READ:
            if (n_held)
                check_model(h[r % (unsigned)n_held].c, h[r % (unsigned)n_held].m);
            break;
        case OP_EXPORT: {
            if (!n_held)
                break;
            held *x = &h[r % (unsigned)n_held];
            size_t comp = (r >> 3) % ttsm_model_component_count(x->m);
            size_t nt = ttsm_model_tensor_count(x->m, comp);
            if (!nt)
                break;
            size_t ti = (r >> 5) % nt;
            DLManagedTensorVersioned *t = NULL;
            ttsm_error err;
            ttsm_status st = ttsm_model_export_dlpack(x->m, comp, ti, TTSM_DLPACK_BYTES, &t, &err);
            int on_cpu = strcmp(ttsm_model_device(x->m), "cpu") == 0;
            if (st != TTSM_OK) {
                if (!(st == TTSM_ERR_DEVICE && !on_cpu))
                    VIOLATION("export from %s: %s: %s", ttsm_model_key(x->m), ttsm_status_name(st),
                              err.message);
                break;
            }
            const ttsm_model_tensor *mt = ttsm_model_get_tensor(x->m, comp, ti);
            if (!on_cpu || t->dl_tensor.device.device_type != kDLCPU ||
                (mt->nbytes && (const char *)t->dl_tensor.data + t->dl_tensor.byte_offset !=
                                   (const char *)mt->data) ||
                t->dl_tensor.shape[0] != (int64_t)mt->nbytes)
                VIOLATION("export of %s does not describe the tensor", mt->name);
            /* half are deleted by whoever comes next, on any thread, maybe
             * after this thread released the model */
            pthread_mutex_lock(&q_lock);
            if (q_len < EXPORTS_MAX && (r & 1)) {
                queue[q_len++] = t;
                t = NULL;
            }
            pthread_mutex_unlock(&q_lock);
            if (t)
                t->deleter(t);
            break;
        }
        case OP_DELETE_EXPORT:
            delete_one_export();
            break;
        case OP_PIN:
            ttsm_pin(mgr, c->key, NULL);
            break;
        case OP_UNPIN:
            ttsm_unpin(mgr, c->key, NULL);
            break;
        case OP_UNLOAD:
            ttsm_unload(mgr, c->key, NULL);
            break;
        case OP_INVALIDATE:
            ttsm_invalidate(mgr, c->key, NULL);
            break;
        case OP_SWEEP:
            atomic_fetch_add(&clock_ns, 20000000ull); /* 20 ms of fake time */
            ttsm_manager_sweep(mgr);
            break;
        case OP_LIST:
            check_listing();
            break;
        case OP_FAULT:
            fake_fail_alloc_after(1 + (long)(r % 3));
            break;
        case OP_DEVICE_DROP:
            fake_set_count(1);
            usleep(200);
            fake_set_count(2);
            break;
        }
        atomic_fetch_add(&op_count[op], 1);
        check_invariants();
    }
    while (n_held)
        ttsm_model_release(h[--n_held].m);
    return NULL;
}

static void add_config(const char *engine, const char *path, const char *model,
                       const char *language, const char *device, float base)
{
    config *c = &configs[n_configs++];
    c->cfg = ttsm_load_config_default();
    c->cfg.engine = engine;
    c->cfg.model_path = path;
    c->cfg.model_name = model;
    c->cfg.language = language;
    c->cfg.device = device;
    c->base = base;
    ttsm_error err;
    tu_assert_ok(ttsm_cache_key(&c->cfg, c->key, &err), &err);
}

static void test_soak(void **state)
{
    (void)state;
    const char *env = getenv("TTSM_SOAK_SECONDS");
    double seconds = env && *env ? atof(env) : 3.0;
    fake_backend_register();
    tmp = strdup(tu_mkdtemp());
    char *store = tu_path(tmp, "store");
    comfy = tu_path(store, "comfy");
    nowhere = tu_path(tmp, "nowhere");
    assert_int_equal(tu_system("/usr/bin/python3 '%s/tests/fixtures/gen_store.py' '%s' --layout "
                               "comfy --engines chatterbox,f5tts >/dev/null",
                               TTSM_SOURCE_DIR, store),
                     0);
    static const char *const devices[3] = {"fake:0", "fake:1", "cpu"};
    for (int i = 0; i < FILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%02d.safetensors", i);
        /* 0.5 to 2 KiB: a 12 KiB budget on fake:0 holds 6 to 24 of them */
        paths[i] = mu_write_st(tmp, name, 128 + (size_t)(i % 4) * 128, (float)(100 * i));
        for (int d = 0; d < 3; d++)
            add_config("file", paths[i], NULL, NULL, devices[d], (float)(100 * i));
    }
    float nan = __builtin_nanf("");
    add_config("chatterbox", NULL, NULL, NULL, "cpu", nan);
    add_config("chatterbox", NULL, NULL, "fr", "cpu", nan); /* borrows from English */
    add_config("chatterbox", NULL, NULL, "de", "cpu", nan);
    add_config("f5tts", NULL, NULL, NULL, "cpu", nan);

    ttsm_device_budget b[] = {{"fake:0", BUDGET}};
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = b;
    o.n_budgets = 1;
    o.keep_alive_ms = 500;
    o.clock = fake_clock;
    o.models_dirs = comfy;
    o.hf_cache = nowhere;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fake_fail_alloc_after(0);
    fake_set_count(2);
    while (q_len)
        delete_one_export();

    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    long total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        total += atomic_load(&op_count[i]);
    double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("soak: %d threads, %.1f s, %ld operations (%.0f/s), %ld violations\n", THREADS, el,
           total, (double)total / el, atomic_load(&violations));
    for (int i = 0; i < OP_COUNT; i++)
        printf("soak:   %-40s %ld\n", op_names[i], atomic_load(&op_count[i]));
    printf("soak: loads ok %ld, out of memory %ld, device gone %ld; manager: hits %llu misses "
           "%llu loads %llu failures %llu evictions %llu invalidations %llu unloads %llu "
           "opens %llu\n",
           atomic_load(&load_ok), atomic_load(&load_oom), atomic_load(&load_device),
           (unsigned long long)s.hits, (unsigned long long)s.misses,
           (unsigned long long)s.loads, (unsigned long long)s.failures,
           (unsigned long long)s.evictions, (unsigned long long)s.invalidations,
           (unsigned long long)s.unloads, (unsigned long long)s.checkpoint_opens);

    assert_int_equal(atomic_load(&violations), 0);
    assert_int_equal(s.hits + s.loads, (uint64_t)atomic_load(&load_ok));
    assert_int_equal(s.misses, s.loads + s.failures);
    assert_int_equal(s.orphans, 0);
    assert_true(s.evictions > 0 && s.invalidations > 0 && atomic_load(&op_count[OP_EXPORT]) > 0);
    /* everything unloads to zero */
    for (size_t i = 0; i < n_configs; i++) {
        ttsm_unpin(mgr, configs[i].key, NULL);
        ttsm_status st = ttsm_unload(mgr, configs[i].key, &err);
        if (st != TTSM_OK && st != TTSM_ERR_NOT_FOUND)
            fail_msg("unload %s: %s", configs[i].key, err.message);
    }
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    for (size_t i = 0; i < s.n_devices; i++) {
        assert_int_equal(s.devices[i].in_use, 0);
        assert_int_equal(s.devices[i].reserved, 0);
    }
    assert_int_equal(fake_allocated(0), 0);
    assert_int_equal(fake_allocated(1), 0);
    assert_true(fake_peak(0) <= BUDGET);
    ttsm_manager_destroy(mgr);
    for (int i = 0; i < FILES; i++)
        free(paths[i]);
    tu_rmtree(tmp);
    free(tmp);
    free(store);
    free(comfy);
    free(nowhere);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_soak)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
