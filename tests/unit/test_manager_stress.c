/* test_manager_stress.c - 8 threads x 20,000 random operations (load,
 * release, pin, unpin, unload, invalidate) over 32 configs on a fake device
 * with a small budget. After every operation the invariants hold; at the end
 * everything released and unloaded leaves zero bytes. CI runs it under
 * ThreadSanitizer (ctest -R unit/test_manager). */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "fake_backend.h"
#include "mgr_util.h"

#define THREADS 8
#define OPS 20000
#define CONFIGS 32
#ifndef HELD_MAX
#define HELD_MAX 2
#endif
#ifndef BUDGET
#define BUDGET (16 * 1024)
#endif

static ttsm_manager *mgr;
static char *paths[CONFIGS];
static char keys[CONFIGS][TTSM_KEY_HEX_SIZE];
static atomic_long ok_loads, oom_loads, violations;

static void check_invariants(void)
{
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    for (size_t i = 0; i < s.n_devices; i++) {
        const ttsm_device_stats *d = &s.devices[i];
        if (d->in_use + d->reserved > d->budget || d->peak > d->budget ||
            d->in_use > (1ull << 40) || d->reserved > (1ull << 40)) {
            fprintf(stderr, "%s: in use %llu reserved %llu peak %llu budget %llu\n", d->device,
                    (unsigned long long)d->in_use, (unsigned long long)d->reserved,
                    (unsigned long long)d->peak, (unsigned long long)d->budget);
            atomic_fetch_add(&violations, 1);
        }
    }
    if (fake_allocated(0) > BUDGET || s.loads + s.failures > s.misses) {
        fprintf(stderr, "fake allocated %llu; loads %llu failures %llu misses %llu\n",
                (unsigned long long)fake_allocated(0), (unsigned long long)s.loads,
                (unsigned long long)s.failures, (unsigned long long)s.misses);
        atomic_fetch_add(&violations, 1);
    }
}

static void check_listing(void)
{
    ttsm_entry_info *v;
    size_t n;
    if (ttsm_manager_list(mgr, &v, &n, NULL) != TTSM_OK) {
        atomic_fetch_add(&violations, 1);
        return;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].refs > THREADS * HELD_MAX) { /* a wrapped (negative) count */
            fprintf(stderr, "entry %s has %zu references\n", v[i].key, v[i].refs);
            atomic_fetch_add(&violations, 1);
        }
        sum += v[i].bytes;
    }
    if (sum > BUDGET) {
        fprintf(stderr, "listed entries hold %llu bytes\n", (unsigned long long)sum);
        atomic_fetch_add(&violations, 1);
    }
    ttsm_free(v);
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    ttsm_model *held[HELD_MAX];
    int n_held = 0;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        int k = (int)(r % CONFIGS);
        switch ((r >> 8) % 8) {
        case 0:
        case 1:
        case 2: {
            if (n_held == HELD_MAX) {
                ttsm_model_release(held[--n_held]);
                break;
            }
            ttsm_load_config c = mu_cfg("file", paths[k], "fake:0");
            ttsm_model *m;
            ttsm_error err;
            ttsm_status st = ttsm_load(mgr, &c, &m, &err);
            if (st == TTSM_OK) {
                if (strcmp(ttsm_model_device(m), "fake:0") != 0 ||
                    strcmp(ttsm_model_key(m), keys[k]) != 0)
                    atomic_fetch_add(&violations, 1);
                held[n_held++] = m;
                atomic_fetch_add(&ok_loads, 1);
            } else if (st == TTSM_ERR_OUT_OF_MEMORY) {
                atomic_fetch_add(&oom_loads, 1);
            } else {
                fprintf(stderr, "unexpected: %s\n", err.message);
                atomic_fetch_add(&violations, 1);
            }
            break;
        }
        case 3:
            if (n_held)
                ttsm_model_release(held[--n_held]);
            break;
        case 4:
            ttsm_pin(mgr, keys[k], NULL);
            break;
        case 5:
            ttsm_unpin(mgr, keys[k], NULL);
            break;
        case 6:
            ttsm_unload(mgr, keys[k], NULL);
            break;
        default:
            ttsm_invalidate(mgr, keys[k], NULL);
            break;
        }
        check_invariants();
        if (op % 256 == 0)
            check_listing();
    }
    while (n_held)
        ttsm_model_release(held[--n_held]);
    return NULL;
}

static void test_stress(void **state)
{
    (void)state;
    fake_backend_register();
    char *dir = strdup(tu_mkdtemp());
    for (int i = 0; i < CONFIGS; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%02d.safetensors", i);
        /* 1 KiB to 2 KiB on the device: a 16 KiB budget holds 8 to 16 */
        paths[i] = mu_write_st(dir, name, 128 + (size_t)(i % 5) * 64, (float)i);
        ttsm_load_config c = mu_cfg("file", paths[i], "fake:0");
        ttsm_error err;
        tu_assert_ok(ttsm_cache_key(&c, keys[i], &err), &err);
    }
    ttsm_device_budget b[] = {{"fake:0", BUDGET}};
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = b;
    o.n_budgets = 1;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    printf("stress: %d ops in %.2f s; %ld loads ok, %ld over budget; hits %llu misses %llu "
           "loads %llu evictions %llu failures %llu invalidations %llu unloads %llu\n",
           THREADS * OPS,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           atomic_load(&ok_loads), atomic_load(&oom_loads), (unsigned long long)s.hits,
           (unsigned long long)s.misses, (unsigned long long)s.loads,
           (unsigned long long)s.evictions, (unsigned long long)s.failures,
           (unsigned long long)s.invalidations, (unsigned long long)s.unloads);
    assert_int_equal(atomic_load(&violations), 0);
    /* Stats add up: every successful call was a hit or its own load; every
     * miss ended as a load or a failure. */
    assert_int_equal(s.hits + s.loads, atomic_load(&ok_loads));
    assert_int_equal(s.misses, s.loads + s.failures);
    assert_int_equal(s.orphans, 0);
    assert_true(s.loads > 100 && s.evictions > 10 && s.invalidations > 10);
    for (int i = 0; i < CONFIGS; i++) {
        ttsm_unpin(mgr, keys[i], NULL);
        ttsm_status st = ttsm_unload(mgr, keys[i], &err);
        assert_true(st == TTSM_OK || st == TTSM_ERR_NOT_FOUND);
    }
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.devices[0].in_use, 0);
    assert_int_equal(s.devices[0].reserved, 0);
    assert_true(s.devices[0].peak <= BUDGET);
    assert_int_equal(fake_allocated(0), 0);
    assert_true(fake_peak(0) <= BUDGET);
    ttsm_manager_destroy(mgr);
    for (int i = 0; i < CONFIGS; i++)
        free(paths[i]);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stress)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
